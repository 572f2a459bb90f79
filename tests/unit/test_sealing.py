"""Events as stored: personal data sealed per subject, opened back exactly, and read as erased
(never an error) once a subject's key is gone."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import msgspec

from lead_ledger.ledger import subject_keys
from lead_ledger.ledger.envelope import EventMetadata
from lead_ledger.ledger.events import (
    DomainEvent,
    FieldChange,
    LeadArchived,
    LeadFields,
    LeadInserted,
    LeadRejected,
    LeadUpdated,
)
from lead_ledger.ledger.job_events import JobCompleted, RejectedRow
from lead_ledger.ledger.opening import shown_body
from lead_ledger.ledger.sealing import (
    PERSONAL_FIELDS,
    inserted_secret_json,
    open_event,
    open_metadata,
    seal_event,
    seal_metadata,
    subjects_to_seal,
    updated_secret_json,
)

EVENT_ID = uuid.UUID(int=42)
SECRET = subject_keys.new_data_key()
DIGEST = subject_keys.digester(SECRET)
FIELDS = LeadFields(
    phone_numbers=["+919876543210", "+919812345678"],
    name="Asha Rao",
    email="asha@example.org",
    city="Pune",
    state="MH",
    user_data="CRM-77",
    crm={"customer:id": "C-9"},
    extra={"note": "call after 6"},
    agent="agent-1",
    priority=5,
    expires_at=datetime(2027, 1, 1, tzinfo=UTC),
)
INSERTED = LeadInserted(
    lead_id=7,
    account_id=1,
    campaign_id=3,
    fields=FIELDS,
    dedupe_keys=["+919876543210", "+919812345678"],
)
PERSONAL_TEXT = ("9876543210", "9812345678", "Asha", "asha@", "Pune", "CRM-77", "C-9", "call after")


def _keys(event: DomainEvent) -> dict[str, bytes]:
    return {s: subject_keys.new_data_key() for s in subjects_to_seal(event, EVENT_ID)}


def _stored(event: DomainEvent, keys: dict[str, bytes]) -> bytes:
    return msgspec.json.encode(seal_event(event, EVENT_ID, keys, DIGEST))


def _reread(stored: bytes) -> DomainEvent:
    decoded: DomainEvent = msgspec.json.decode(stored, type=DomainEvent)
    return decoded


def test_an_inserted_lead_is_stored_without_its_personal_data_and_opens_back_exactly() -> None:
    """No phone spelling, name, email, city, user_data or CRM value in the stored bytes; the
    clear fields (state, agent, priority, expiry) stay readable; opening gives the event back."""
    keys = _keys(INSERTED)
    stored = _stored(INSERTED, keys)
    assert not [text for text in PERSONAL_TEXT if text in stored.decode()]
    clear = _reread(stored)
    assert isinstance(clear, LeadInserted)
    assert (clear.fields.state, clear.fields.agent, clear.fields.priority) == ("MH", "agent-1", 5)
    assert clear.dedupe_keys == [DIGEST("+919876543210"), DIGEST("+919812345678")]
    assert open_event(clear, keys) == INSERTED


def test_a_lead_whose_key_is_gone_opens_as_erased() -> None:
    """Personal fields at their defaults and `erased` set; ids and clear fields kept."""
    stored = _stored(INSERTED, _keys(INSERTED))
    opened = open_event(_reread(stored), {})
    assert isinstance(opened, LeadInserted)
    assert opened.erased
    assert opened.fields.phone_numbers == []
    assert opened.fields.name is None
    assert opened.fields.agent == "agent-1"
    assert opened.dedupe_keys == []
    assert (opened.lead_id, opened.campaign_id) == (7, 3)


def test_an_update_seals_personal_values_and_keeps_field_names_and_order() -> None:
    """The audit still shows which fields changed; values of personal ones are sealed; the
    opened diff is the original, in its order; erased, personal values read as defaults."""
    update = LeadUpdated(
        lead_id=7,
        changes=[
            FieldChange("phone_numbers", ["+919876543210"], ["+919812345678"]),
            FieldChange("agent", "agent-1", "agent-2"),
            FieldChange("email", None, "asha@example.org"),
        ],
        dedupe_keys=["+919812345678"],
    )
    keys = _keys(update)
    stored = _stored(update, keys)
    assert "9812345678" not in stored.decode()
    assert "asha@" not in stored.decode()
    clear = _reread(stored)
    assert isinstance(clear, LeadUpdated)
    assert [c.field for c in clear.changes] == ["phone_numbers", "agent", "email"]
    assert clear.changes[1] == FieldChange("agent", "agent-1", "agent-2")
    assert open_event(clear, keys) == update
    erased = open_event(clear, {})
    assert isinstance(erased, LeadUpdated)
    assert erased.erased
    assert erased.changes[0] == FieldChange("phone_numbers", [], [])
    assert erased.changes[1] == FieldChange("agent", "agent-1", "agent-2")


def test_the_rebuilds_opened_parts_hold_what_open_event_gives() -> None:
    """The set-based rebuild's `[fields, dedupe_keys]`: an insert's opened fields and keys, an
    update's last new value of each personal change, and for an erased subject the defaults."""
    keys = _keys(INSERTED)
    inserted = _reread(_stored(INSERTED, keys))
    assert isinstance(inserted, LeadInserted)
    assert inserted.sealed is not None
    subject, data = inserted.sealed.subject, base64.b64decode(inserted.sealed.data)
    fields, dedupe_keys = msgspec.json.decode(inserted_secret_json(keys[subject], subject, data))
    assert msgspec.convert(fields, LeadFields) == FIELDS
    assert dedupe_keys == INSERTED.dedupe_keys
    assert msgspec.json.decode(inserted_secret_json(None, subject, data)) == [None, []]

    update = LeadUpdated(
        lead_id=7,
        changes=[
            FieldChange("phone_numbers", ["+919876543210"], ["+919812345678"]),
            FieldChange("agent", "agent-1", "agent-2"),
            FieldChange("phone_numbers", ["+919812345678"], ["+919800000000"]),
            FieldChange("email", None, "asha@example.org"),
        ],
        dedupe_keys=["+919800000000"],
    )
    stored = _reread(_stored(update, keys))
    assert isinstance(stored, LeadUpdated)
    assert stored.sealed is not None
    data, changes = base64.b64decode(stored.sealed.data), msgspec.json.encode(stored.changes)
    opened = updated_secret_json(keys[subject], subject, data, changes, has_dedupe_keys=True)
    assert msgspec.json.decode(opened) == [
        {"phone_numbers": ["+919800000000"], "email": "asha@example.org"},
        ["+919800000000"],
    ]
    erased = updated_secret_json(None, subject, data, changes, has_dedupe_keys=True)
    assert msgspec.json.decode(erased) == [{"phone_numbers": [], "email": None}, []]
    without_keys = updated_secret_json(None, subject, data, changes, has_dedupe_keys=False)
    assert msgspec.json.decode(without_keys)[1] is None


def test_an_update_without_personal_changes_needs_no_key() -> None:
    """A priority change is stored as it is: no subject, no seal."""
    update = LeadUpdated(lead_id=7, changes=[FieldChange("priority", 1, 9)])
    assert subjects_to_seal(update, EVENT_ID) == []
    assert seal_event(update, EVENT_ID, {}, DIGEST) == update


def test_archive_copies_are_sealed_like_inserts() -> None:
    """An archive snapshot holds the same personal fields: sealed, and opened back."""
    archived = LeadArchived(
        lead_id=7,
        account_id=1,
        campaign_id=3,
        snapshot=FIELDS,
        dedupe_keys=INSERTED.dedupe_keys,
        source_version=2,
    )
    keys = _keys(archived)
    stored = _stored(archived, keys)
    assert "Asha" not in stored.decode()
    assert open_event(_reread(stored), keys) == archived


def test_a_refused_row_is_a_subject_of_its_own() -> None:
    """Sealed for refused-<event id>, not for the lead it duplicated; erased, row reads empty."""
    refused = LeadRejected(
        account_id=1,
        campaign_id=3,
        reason="duplicate phone number in campaign",
        row={"phone_numbers": "+919876543210"},
        existing_lead_ids=[7],
    )
    assert subjects_to_seal(refused, EVENT_ID) == [f"refused-{EVENT_ID}"]
    keys = _keys(refused)
    stored = _stored(refused, keys)
    assert "9876543210" not in stored.decode()
    assert open_event(_reread(stored), keys) == refused
    erased = open_event(_reread(stored), {})
    assert isinstance(erased, LeadRejected)
    assert erased.erased
    assert erased.existing_lead_ids == [7]
    assert b'"row":null' in shown_body(erased)


def test_each_rejected_row_of_a_job_is_erased_alone() -> None:
    """Two rejected rows, two subjects: with one key gone, only that row reads erased."""
    job = JobCompleted(
        job_id=5,
        inserted=1,
        rejected=2,
        rejected_rows=[
            RejectedRow(row_number=2, row={"phone": "9876543210"}, description="bad agent"),
            RejectedRow(row_number=4, row={"phone": "9812345678"}, description="bad agent"),
        ],
    )
    keys = _keys(job)
    assert sorted(keys) == ["rejected-5-2", "rejected-5-4"]
    stored = _stored(job, keys)
    assert "9876543210" not in stored.decode()
    assert open_event(_reread(stored), keys) == job
    half = open_event(_reread(stored), {"rejected-5-4": keys["rejected-5-4"]})
    assert isinstance(half, JobCompleted)
    first, second = half.rejected_rows
    assert (first.row, first.erased, first.description) == (None, True, "bad agent")
    assert second.row == {"phone": "9812345678"}
    assert not second.erased


def test_the_client_address_in_metadata_is_sealed_for_the_stream() -> None:
    """Stored without the address; opened with the stream's key; erased, it reads None."""
    keys = {"lead-7": subject_keys.new_data_key()}
    meta = EventMetadata(request_id="r-1", client_address="203.0.113.9")
    stored = msgspec.json.encode(seal_metadata(meta, "lead-7", keys))
    assert b"203.0.113.9" not in stored
    reread = msgspec.json.decode(stored, type=EventMetadata)
    assert open_metadata(reread, keys) == meta
    assert open_metadata(reread, {}).client_address is None
    assert open_metadata(reread, {}).request_id == "r-1"


def test_an_erased_event_shows_every_personal_field_as_null() -> None:
    """The shown form names each personal field with null, and says `erased`."""
    erased = open_event(_reread(_stored(INSERTED, _keys(INSERTED))), {})
    body = msgspec.json.decode(shown_body(erased))
    assert body["erased"] is True
    assert all(body["fields"][name] is None for name in PERSONAL_FIELDS)
    assert body["fields"]["agent"] == "agent-1"
    assert body["dedupe_keys"] is None
