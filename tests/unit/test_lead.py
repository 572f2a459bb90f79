"""The lead aggregate, given events / when a command / then events.

Each test folds a history (`given`), asks a decide function for its decision, and compares the
exact events (or the exact refusal); where it matters, the decided events are folded on to show
the state the next decision sees.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

import msgspec
import pytest

from lead_ledger.ledger.events import (
    FieldChange,
    LeadArchived,
    LeadArchiveRemoved,
    LeadArchiveSynced,
    LeadDeleted,
    LeadEvent,
    LeadFields,
    LeadInserted,
    LeadReassigned,
    LeadRejected,
    LeadRestored,
    LeadUpdated,
)
from lead_ledger.ledger.lead import (
    MAX_PHONES,
    ArchiveCopy,
    ArchiveOutcome,
    LeadError,
    LeadState,
    RowTimes,
    decide_archive,
    decide_dearchive,
    decide_delete,
    decide_insert,
    decide_update,
    evolve,
    fold,
)

LEAD = 101
ACCOUNT = 7
CAMPAIGN = 3
REGION = "IN"
PHONE = "+919876543210"
OTHER_PHONE = "+14155550123"
FIELDS = LeadFields(phone_numbers=[PHONE], name="Asha", city="Pune", crm={"plan": "gold"})
ENTRY = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
MODIFIED = datetime(2024, 3, 2, 17, 0, tzinfo=UTC)
TIMES = RowTimes(entry_at=ENTRY, modified_at=MODIFIED)


# --- helpers --------------------------------------------------------------------------------------


def given(*events: LeadEvent) -> LeadState:
    """The state a decision sees after `events`."""
    state = fold(events)
    assert state is not None
    return state


def fields(**changes: object) -> LeadFields:
    return msgspec.structs.replace(FIELDS, **changes)


def inserted(lead_fields: LeadFields = FIELDS, keys: list[str] | None = None) -> LeadInserted:
    return LeadInserted(
        lead_id=LEAD,
        account_id=ACCOUNT,
        campaign_id=CAMPAIGN,
        fields=lead_fields,
        dedupe_keys=[PHONE] if keys is None else keys,
    )


def archived(
    snapshot: LeadFields = FIELDS,
    source_version: int = 1,
    keys: list[str] | None = None,
) -> LeadArchived:
    return LeadArchived(
        lead_id=LEAD,
        account_id=ACCOUNT,
        campaign_id=CAMPAIGN,
        snapshot=snapshot,
        dedupe_keys=[PHONE] if keys is None else keys,
        source_version=source_version,
        entry_at=ENTRY,
        modified_at=MODIFIED,
    )


def synced(snapshot: LeadFields, source_version: int) -> LeadArchiveSynced:
    return LeadArchiveSynced(
        lead_id=LEAD,
        account_id=ACCOUNT,
        campaign_id=CAMPAIGN,
        snapshot=snapshot,
        dedupe_keys=[PHONE],
        source_version=source_version,
        entry_at=ENTRY,
        modified_at=MODIFIED,
    )


def copy_of(
    snapshot: LeadFields,
    *,
    source_version: int,
    archive_version: int,
    keys: list[str] | None = None,
) -> ArchiveCopy:
    """The archive copy the state holds after an archive event."""
    return ArchiveCopy(
        snapshot=snapshot,
        dedupe_keys=[PHONE] if keys is None else keys,
        source_version=source_version,
        archive_version=archive_version,
    )


def renamed(old: str, new: str) -> LeadUpdated:
    return LeadUpdated(lead_id=LEAD, changes=[FieldChange("name", old, new)])


API_DELETE = LeadDeleted(lead_id=LEAD, reason="api")


def archive_delete(archive_version: int) -> LeadDeleted:
    return LeadDeleted(lead_id=LEAD, reason="archived", archive_version=archive_version)


# --- insert ---------------------------------------------------------------------------------------


def test_insert_normalises_the_numbers_of_one_contact_to_one_key() -> None:
    """With the account's region, every way of writing the same Indian number is one key."""
    numbers = ["+919876543210", "919876543210", "09876543210", "98765 43210"]
    lead_fields = fields(phone_numbers=numbers)

    event = decide_insert(
        lead_id=LEAD,
        account_id=ACCOUNT,
        campaign_id=CAMPAIGN,
        fields=lead_fields,
        default_region=REGION,
    )

    assert event == LeadInserted(
        lead_id=LEAD,
        account_id=ACCOUNT,
        campaign_id=CAMPAIGN,
        fields=lead_fields,
        dedupe_keys=["+919876543210"],
    )
    assert given(event) == LeadState(
        lead_id=LEAD,
        account_id=ACCOUNT,
        campaign_id=CAMPAIGN,
        version=1,
        fields=lead_fields,
        dedupe_keys=["+919876543210"],
        archive=None,
    )
    assert given(event).live


def test_insert_without_region_keys_by_digits() -> None:
    """Without a region only a leading + places a number; the rest are compared as digits."""
    numbers = ["98765 43210", "98765-43210", "098765 43210", "+91 98765 43210"]

    event = decide_insert(
        lead_id=LEAD,
        account_id=ACCOUNT,
        campaign_id=CAMPAIGN,
        fields=fields(phone_numbers=numbers),
        default_region=None,
    )

    assert event.dedupe_keys == ["9876543210", "09876543210", "+919876543210"]


def test_insert_keeps_keys_computed_by_the_caller() -> None:
    """Keys passed in by the caller are recorded as they are, not recomputed from the numbers."""
    event = decide_insert(
        lead_id=LEAD,
        account_id=ACCOUNT,
        campaign_id=CAMPAIGN,
        fields=FIELDS,
        default_region=REGION,
        keys=["+911111111111"],
    )

    assert event == inserted(keys=["+911111111111"])


@pytest.mark.parametrize(
    ("numbers", "keys"),
    [
        ([], None),
        (["", "  ", "n/a"], None),
        ([PHONE], []),  # keys computed by the caller, and none of them usable
    ],
)
def test_insert_refuses_a_lead_without_a_dialable_number(
    numbers: list[str], keys: list[str] | None
) -> None:
    """No number, only blank or junk numbers, or caller keys all unusable: the insert is refused."""
    with pytest.raises(LeadError, match=r"^a lead needs at least one phone number$"):
        decide_insert(
            lead_id=LEAD,
            account_id=ACCOUNT,
            campaign_id=CAMPAIGN,
            fields=fields(phone_numbers=numbers),
            default_region=REGION,
            keys=keys,
        )


def test_insert_takes_six_numbers_and_refuses_seven() -> None:
    """MAX_PHONES (6) numbers are inserted with a key each; a seventh is refused by name."""
    numbers = [f"+9198765432{n:02d}" for n in range(MAX_PHONES + 1)]

    six = decide_insert(
        lead_id=LEAD,
        account_id=ACCOUNT,
        campaign_id=CAMPAIGN,
        fields=fields(phone_numbers=numbers[:MAX_PHONES]),
        default_region=REGION,
    )
    assert six.dedupe_keys == numbers[:MAX_PHONES]

    with pytest.raises(LeadError, match=r"^a lead has at most 6 phone numbers, not 7$"):
        decide_insert(
            lead_id=LEAD,
            account_id=ACCOUNT,
            campaign_id=CAMPAIGN,
            fields=fields(phone_numbers=numbers),
            default_region=REGION,
        )


# --- update ---------------------------------------------------------------------------------------


def test_update_records_only_the_fields_that_change() -> None:
    """A field given its current value is left out of LeadUpdated: only real changes are kept."""
    state = given(inserted())

    events = decide_update(state, {"name": "Asha", "city": "Mumbai", "priority": 3}, REGION)

    assert events == [
        LeadUpdated(
            lead_id=LEAD,
            changes=[FieldChange("city", "Pune", "Mumbai"), FieldChange("priority", 1, 3)],
            dedupe_keys=None,
        )
    ]
    assert fold(events, state) == msgspec.structs.replace(
        state, version=2, fields=fields(city="Mumbai", priority=3)
    )


def test_update_that_changes_nothing_decides_nothing() -> None:
    """Values equal to the current ones, a CRM subset already held, the same agent: no event,
    so the stream (and the version the next decision sees) stays as it was."""
    state = given(inserted(fields(agent="ravi", crm={"plan": "gold", "tier": "2"})))

    events = decide_update(
        state,
        {
            "name": "Asha",
            "city": "Pune",
            "phone_numbers": [PHONE],
            "crm": {"tier": "2"},
            "agent": "ravi",
        },
        REGION,
    )

    assert events == []
    assert fold(events, state) == state


def test_empty_update_decides_nothing() -> None:
    """An update with no fields at all decides no event."""
    assert decide_update(given(inserted()), {}, REGION) == []


def test_update_merges_crm_and_extra_into_what_the_lead_has() -> None:
    """crm and extra are merged key by key into the lead's own, and the change shows both maps."""
    state = given(inserted(fields(crm={"plan": "gold", "tier": "2"}, extra={"score": 4})))

    events = decide_update(state, {"crm": {"tier": "3"}, "extra": {"vip": True}}, REGION)

    assert events == [
        LeadUpdated(
            lead_id=LEAD,
            changes=[
                FieldChange("crm", {"plan": "gold", "tier": "2"}, {"plan": "gold", "tier": "3"}),
                FieldChange("extra", {"score": 4}, {"score": 4, "vip": True}),
            ],
        )
    ]
    after = fold(events, state)
    assert after is not None
    assert after.fields is not None
    assert after.fields.crm == {"plan": "gold", "tier": "3"}
    assert after.fields.extra == {"score": 4, "vip": True}


def test_update_of_the_numbers_recomputes_the_keys() -> None:
    """New numbers bring new dedupe keys, keyed with the region given (digits without one)."""
    state = given(inserted())
    numbers = ["09876543210", "(415) 555-0123 "]

    events = decide_update(state, {"phone_numbers": ["09876543210", OTHER_PHONE]}, REGION)

    assert events == [
        LeadUpdated(
            lead_id=LEAD,
            changes=[FieldChange("phone_numbers", [PHONE], ["09876543210", OTHER_PHONE])],
            dedupe_keys=[PHONE, OTHER_PHONE],
        )
    ]
    after = fold(events, state)
    assert after is not None
    assert after.dedupe_keys == [PHONE, OTHER_PHONE]
    assert after.version == 2

    # The region decides how local numbers are keyed: without one, digits.
    (no_region,) = decide_update(state, {"phone_numbers": numbers}, None)
    assert isinstance(no_region, LeadUpdated)
    assert no_region.dedupe_keys == ["09876543210", "4155550123"]


def test_numbers_rewritten_in_another_format_are_a_change_with_the_same_keys() -> None:
    """The stored text changes (so it is recorded), the contact it keys to does not."""
    state = given(inserted())

    events = decide_update(state, {"phone_numbers": ["98765 43210"]}, REGION)

    assert events == [
        LeadUpdated(
            lead_id=LEAD,
            changes=[FieldChange("phone_numbers", [PHONE], ["98765 43210"])],
            dedupe_keys=[PHONE],
        )
    ]


def test_update_without_new_numbers_keeps_the_keys_of_the_insert() -> None:
    """Keys were decided with the region of the insert; an update of other fields does not
    re-normalise them (the region passed now is not even consulted)."""
    state = given(inserted(keys=["9876543210"]))

    events = decide_update(state, {"email": "asha@example.com"}, REGION)

    assert events == [
        LeadUpdated(lead_id=LEAD, changes=[FieldChange("email", None, "asha@example.com")])
    ]
    after = fold(events, state)
    assert after is not None
    assert after.dedupe_keys == ["9876543210"]


def test_expiry_travels_as_text_and_folds_back_to_a_datetime() -> None:
    """expires_at is recorded as ISO text and folds back to an equal datetime, then is no change."""
    state = given(inserted())
    expiry = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)

    events = decide_update(state, {"expires_at": expiry}, REGION)

    assert events == [
        LeadUpdated(lead_id=LEAD, changes=[FieldChange("expires_at", None, "2025-01-02T03:04:05Z")])
    ]
    after = fold(events, state)
    assert after is not None
    assert after.fields == fields(expires_at=expiry)
    # Once folded, the same expiry is no change.
    assert decide_update(after, {"expires_at": expiry}, REGION) == []


def test_decided_events_survive_the_log() -> None:
    """Encoded and decoded as the store does, the decided events fold to the same state."""
    state = given(inserted(fields(agent="ravi")))
    events: list[LeadEvent] = decide_update(
        state,
        {
            "phone_numbers": [PHONE, OTHER_PHONE],
            "priority": 5,
            "crm": {"tier": "1"},
            "expires_at": datetime(2025, 6, 1, tzinfo=UTC),
            "agent": None,
        },
        REGION,
    )
    events.append(decide_delete(given(inserted(fields(agent="ravi")), *events)))

    decoded = msgspec.json.decode(msgspec.json.encode(events), type=list[LeadEvent])

    assert decoded == events
    assert fold(decoded, state) == fold(events, state)


def test_update_refuses_unknown_fields() -> None:
    """Fields the lead does not have are refused, named in sorted order, even beside known ones."""
    with pytest.raises(LeadError, match=r"^unknown lead fields: colour, nickname$"):
        decide_update(given(inserted()), {"nickname": "A", "name": "B", "colour": "red"}, REGION)


@pytest.mark.parametrize(
    ("numbers", "message"),
    [
        ([], r"^a lead needs at least one phone number$"),
        (["", "-"], r"^a lead needs at least one phone number$"),
        ([f"+9198765432{n:02d}" for n in range(7)], r"^a lead has at most 6 phone numbers, not 7$"),
    ],
)
def test_update_refuses_numbers_a_lead_cannot_have(numbers: list[str], message: str) -> None:
    """An update to no dialable number, or to more than six, is refused as an insert would be."""
    with pytest.raises(LeadError, match=message):
        decide_update(given(inserted()), {"phone_numbers": numbers}, REGION)


def test_update_of_a_deleted_lead_is_refused() -> None:
    """A deleted lead cannot be updated: 'lead N is not live'."""
    with pytest.raises(LeadError, match=f"^lead {LEAD} is not live$"):
        decide_update(given(inserted(), API_DELETE), {"name": "B"}, REGION)


def test_update_of_a_lead_archived_away_is_refused() -> None:
    """A lead archived and deleted from live cannot be updated: 'lead N is not live'."""
    state = given(inserted(), archived(), archive_delete(2))

    with pytest.raises(LeadError, match=f"^lead {LEAD} is not live$"):
        decide_update(state, {"name": "B"}, REGION)


def test_update_of_an_archived_live_lead_leaves_the_archive_copy_as_it_was() -> None:
    """Updating a live lead that has an archive copy changes live only; the copy stays as is."""
    state = given(inserted(), archived())

    events = decide_update(state, {"name": "Bina"}, REGION)

    assert events == [renamed("Asha", "Bina")]
    after = fold(events, state)
    assert after is not None
    assert after.fields == fields(name="Bina")
    assert after.archive == copy_of(FIELDS, source_version=1, archive_version=2)


# --- reassignment ---------------------------------------------------------------------------------


def test_a_new_agent_is_a_reassignment_not_a_field_change() -> None:
    """Setting an agent decides LeadReassigned, not a LeadUpdated field change."""
    state = given(inserted())

    events = decide_update(state, {"agent": "ravi"}, REGION)

    assert events == [LeadReassigned(lead_id=LEAD, from_agent=None, to_agent="ravi")]
    assert fold(events, state) == msgspec.structs.replace(
        state, version=2, fields=fields(agent="ravi")
    )


def test_agent_and_fields_together_give_the_update_first_then_the_reassignment() -> None:
    """An agent and other fields in one update decide LeadUpdated, then LeadReassigned."""
    state = given(inserted(fields(agent="ravi")))

    events = decide_update(state, {"agent": "meera", "name": "Bina"}, REGION)

    assert events == [
        renamed("Asha", "Bina"),
        LeadReassigned(lead_id=LEAD, from_agent="ravi", to_agent="meera"),
    ]
    assert fold(events, state) == msgspec.structs.replace(
        state, version=3, fields=fields(agent="meera", name="Bina")
    )


def test_unassigning_is_a_reassignment_to_nobody() -> None:
    """agent=None is a LeadReassigned to no agent, folding back to a lead without one."""
    state = given(inserted(fields(agent="ravi")))

    events = decide_update(state, {"agent": None}, REGION)

    assert events == [LeadReassigned(lead_id=LEAD, from_agent="ravi", to_agent=None)]
    after = fold(events, state)
    assert after is not None
    assert after.fields == FIELDS


def test_reassignment_of_a_deleted_lead_is_refused() -> None:
    """A deleted lead cannot be reassigned: 'lead N is not live'."""
    with pytest.raises(LeadError, match=f"^lead {LEAD} is not live$"):
        decide_update(given(inserted(), API_DELETE), {"agent": "ravi"}, REGION)


# --- delete ---------------------------------------------------------------------------------------


def test_delete() -> None:
    """Deleting a live lead decides LeadDeleted (reason api) and folds to a lead no longer live."""
    state = given(inserted())

    event = decide_delete(state)

    assert event == LeadDeleted(lead_id=LEAD, reason="api", archive_version=None)
    after = evolve(state, event)
    assert after == msgspec.structs.replace(state, version=2, fields=None)
    assert not after.live


def test_deleting_twice_is_refused() -> None:
    """A lead already deleted cannot be deleted again: 'lead N is not live'."""
    state = given(inserted())
    once = evolve(state, decide_delete(state))

    with pytest.raises(LeadError, match=f"^lead {LEAD} is not live$"):
        decide_delete(once)


def test_deleting_a_lead_archived_away_is_refused() -> None:
    """A lead archived and deleted from live cannot be deleted again: 'lead N is not live'."""
    with pytest.raises(LeadError, match=f"^lead {LEAD} is not live$"):
        decide_delete(given(inserted(), archived(), archive_delete(2)))


# --- archive --------------------------------------------------------------------------------------


def test_archive_insert_copies_the_live_lead() -> None:
    """Archive insert records a copy of the live fields with the row times, and says it inserted."""
    state = given(inserted())

    outcome = decide_archive(state, insert=True, update=False, delete=False, times=TIMES)

    assert outcome == ArchiveOutcome(events=[archived(source_version=1)], inserted=True)
    after = fold(outcome.events, state)
    assert after == msgspec.structs.replace(
        state,
        version=2,
        archive=copy_of(FIELDS, source_version=1, archive_version=2),
    )


def test_archive_without_row_times_records_none() -> None:
    """Archived without row times, the copy's entry_at and modified_at are None."""
    outcome = decide_archive(given(inserted()), insert=True, update=False, delete=False)

    assert outcome.events == [msgspec.structs.replace(archived(), entry_at=None, modified_at=None)]


def test_archive_insert_of_an_archived_lead_does_nothing() -> None:
    """Even when live changed since: re-syncing is the update flag's job, not insert's."""
    state = given(inserted(), archived(), renamed("Asha", "Bina"))

    outcome = decide_archive(state, insert=True, update=False, delete=False, times=TIMES)

    assert outcome == ArchiveOutcome(events=[])


def test_archive_update_resyncs_a_copy_that_differs_from_live() -> None:
    """Archive update re-syncs a copy that differs from live, as LeadArchiveSynced."""
    state = given(inserted(), archived(), renamed("Asha", "Bina"))
    live = fields(name="Bina")

    outcome = decide_archive(state, insert=True, update=True, delete=False, times=TIMES)

    assert outcome == ArchiveOutcome(events=[synced(live, source_version=3)], synced=True)
    after = fold(outcome.events, state)
    assert after is not None
    assert after.version == 4
    assert after.archive == copy_of(live, source_version=3, archive_version=4)


@pytest.mark.parametrize(
    "history",
    [
        pytest.param([inserted()], id="never-archived"),
        pytest.param([inserted(), archived()], id="copy-equals-live"),
    ],
)
def test_archive_update_alone_changes_nothing(history: list[LeadEvent]) -> None:
    """Update re-syncs only a copy that exists and differs: not a lead never archived (that
    is insert's job), nor a copy already equal to live."""
    outcome = decide_archive(given(*history), insert=False, update=True, delete=False)

    assert outcome == ArchiveOutcome(events=[])


def test_archive_insert_and_update_on_a_new_lead_only_inserts() -> None:
    """A copy made in this request never counts as re-synced."""
    outcome = decide_archive(given(inserted()), insert=True, update=True, delete=False, times=TIMES)

    assert outcome == ArchiveOutcome(events=[archived()], inserted=True)


def test_archive_insert_and_delete_moves_the_lead_to_the_archive() -> None:
    """Insert and delete together copy the lead to the archive, then delete it from live."""
    state = given(inserted())

    outcome = decide_archive(state, insert=True, update=False, delete=True, times=TIMES)

    assert outcome == ArchiveOutcome(
        events=[archived(), archive_delete(2)], inserted=True, deleted=True
    )
    after = fold(outcome.events, state)
    assert after == LeadState(
        lead_id=LEAD,
        account_id=ACCOUNT,
        campaign_id=CAMPAIGN,
        version=3,
        fields=None,
        dedupe_keys=[PHONE],
        archive=copy_of(FIELDS, source_version=1, archive_version=2),
    )


def test_archive_delete_of_a_lead_equal_to_its_copy() -> None:
    """Archive delete removes from live a lead whose archive copy equals it."""
    state = given(inserted(), archived())

    outcome = decide_archive(state, insert=False, update=False, delete=True)

    assert outcome == ArchiveOutcome(events=[archive_delete(2)], deleted=True)
    after = fold(outcome.events, state)
    assert after is not None
    assert not after.live


@pytest.mark.parametrize("insert", [False, True])
def test_archive_delete_keeps_a_lead_changed_since_it_was_archived(insert: bool) -> None:
    """The safe delete: a stale copy is not the lead, so the lead stays live."""
    state = given(inserted(), archived(), renamed("Asha", "Bina"))

    outcome = decide_archive(state, insert=insert, update=False, delete=True)

    assert outcome == ArchiveOutcome(events=[])


@pytest.mark.parametrize("insert", [False, True])
def test_archive_update_and_delete_resyncs_then_deletes(insert: bool) -> None:
    """A stale copy with update and delete: re-synced first, then the lead is deleted from live."""
    state = given(inserted(), archived(), renamed("Asha", "Bina"))
    live = fields(name="Bina")

    outcome = decide_archive(state, insert=insert, update=True, delete=True, times=TIMES)

    assert outcome == ArchiveOutcome(
        events=[synced(live, source_version=3), archive_delete(4)], synced=True, deleted=True
    )
    after = fold(outcome.events, state)
    assert after is not None
    assert after.fields is None
    assert after.archive == copy_of(live, source_version=3, archive_version=4)
    assert after.version == 5


def test_archive_without_flags_does_nothing() -> None:
    """Archive with insert, update and delete all false decides no event."""
    outcome = decide_archive(given(inserted()), insert=False, update=False, delete=False)

    assert outcome == ArchiveOutcome(events=[])


@pytest.mark.parametrize(
    "history",
    [
        pytest.param([inserted(), API_DELETE], id="deleted"),
        pytest.param([inserted(), archived(), archive_delete(2)], id="archived-away"),
    ],
)
def test_archive_of_a_lead_that_is_not_live_is_refused(history: list[LeadEvent]) -> None:
    """A deleted or archived-away lead cannot be archived: 'lead N is not live'."""
    with pytest.raises(LeadError, match=f"^lead {LEAD} is not live$"):
        decide_archive(given(*history), insert=True, update=True, delete=True)


# --- dearchive ------------------------------------------------------------------------------------


def restored(
    snapshot: LeadFields = FIELDS, archive_version: int = 2, keys: list[str] | None = None
) -> LeadRestored:
    return LeadRestored(
        lead_id=LEAD,
        account_id=ACCOUNT,
        campaign_id=CAMPAIGN,
        snapshot=snapshot,
        dedupe_keys=[PHONE] if keys is None else keys,
        archive_version=archive_version,
        entry_at=ENTRY,
    )


def test_dearchive_insert_restores_the_archived_lead() -> None:
    """Dearchive insert restores an archived-away lead to live from its copy, keeping the copy."""
    state = given(inserted(), archived(), archive_delete(2))

    outcome = decide_dearchive(
        state, insert=True, delete=False, default_region=REGION, entry_at=ENTRY
    )

    assert outcome == ArchiveOutcome(events=[restored()], inserted=True)
    after = fold(outcome.events, state)
    assert after == msgspec.structs.replace(state, version=4, fields=FIELDS)
    assert after is not None
    assert after.archive == copy_of(FIELDS, source_version=1, archive_version=2)


def test_dearchive_insert_and_delete_moves_the_lead_back_to_live() -> None:
    """Dearchive insert and delete restore the lead and drop its copy; archiving again recopies."""
    state = given(inserted(), archived(), archive_delete(2))

    outcome = decide_dearchive(
        state, insert=True, delete=True, default_region=REGION, entry_at=ENTRY
    )

    assert outcome == ArchiveOutcome(
        events=[restored(), LeadArchiveRemoved(lead_id=LEAD, live_version=4)],
        inserted=True,
        deleted=True,
    )
    after = fold(outcome.events, state)
    assert after == LeadState(
        lead_id=LEAD,
        account_id=ACCOUNT,
        campaign_id=CAMPAIGN,
        version=5,
        fields=FIELDS,
        dedupe_keys=[PHONE],
        archive=None,
    )
    # Back to where it started: archiving again makes a fresh copy of the current version.
    assert decide_archive(after, insert=True, update=False, delete=False, times=TIMES).events == [
        archived(source_version=5)
    ]


def test_dearchive_restores_the_archived_numbers_with_their_own_keys() -> None:
    """Numbers changed after archiving, then the lead deleted: the restored lead has the
    archived numbers, so it must carry their keys, not those of the numbers it had last."""
    state = given(
        inserted(),
        archived(),
        LeadUpdated(
            lead_id=LEAD,
            changes=[FieldChange("phone_numbers", [PHONE], [OTHER_PHONE])],
            dedupe_keys=[OTHER_PHONE],
        ),
        API_DELETE,
    )

    outcome = decide_dearchive(
        state, insert=True, delete=True, default_region=REGION, entry_at=ENTRY
    )

    assert outcome == ArchiveOutcome(
        events=[restored(), LeadArchiveRemoved(lead_id=LEAD, live_version=5)],
        inserted=True,
        deleted=True,
    )
    after = fold(outcome.events, state)
    assert after is not None
    assert (after.fields, after.dedupe_keys) == (FIELDS, [PHONE])


def test_dearchive_after_a_resync_restores_the_resynced_numbers() -> None:
    """A copy re-synced after the numbers changed carries the new numbers and their keys."""
    moved = fields(phone_numbers=[OTHER_PHONE])
    state = given(
        inserted(),
        archived(),
        LeadUpdated(
            lead_id=LEAD,
            changes=[FieldChange("phone_numbers", [PHONE], [OTHER_PHONE])],
            dedupe_keys=[OTHER_PHONE],
        ),
    )
    archiving = decide_archive(state, insert=False, update=True, delete=True, times=TIMES)
    assert [type(e) for e in archiving.events] == [LeadArchiveSynced, LeadDeleted]
    away = fold(archiving.events, state)
    assert away is not None
    assert away.archive == copy_of(moved, source_version=3, archive_version=4, keys=[OTHER_PHONE])

    outcome = decide_dearchive(away, insert=True, delete=False, default_region=REGION)

    assert outcome.events == [
        msgspec.structs.replace(
            restored(moved, archive_version=4, keys=[OTHER_PHONE]), entry_at=None
        )
    ]


def test_dearchive_delete_drops_a_copy_equal_to_live() -> None:
    """Dearchive delete removes an archive copy equal to the live lead (LeadArchiveRemoved)."""
    state = given(inserted(), archived())

    outcome = decide_dearchive(state, insert=False, delete=True, default_region=REGION)

    assert outcome == ArchiveOutcome(
        events=[LeadArchiveRemoved(lead_id=LEAD, live_version=2)], deleted=True
    )
    after = fold(outcome.events, state)
    assert after == msgspec.structs.replace(state, version=3, archive=None)


@pytest.mark.parametrize("insert", [False, True])
def test_dearchive_keeps_a_copy_that_differs_from_live(insert: bool) -> None:
    """The live lead changed after archiving: the copy is not a duplicate of it, and a live
    lead is not restored over."""
    state = given(inserted(), archived(), renamed("Asha", "Bina"))

    outcome = decide_dearchive(state, insert=insert, delete=True, default_region=REGION)

    assert outcome == ArchiveOutcome(events=[])


def test_dearchive_insert_of_a_live_lead_does_nothing() -> None:
    """Dearchive insert of a lead that is still live decides no event."""
    outcome = decide_dearchive(
        given(inserted(), archived()), insert=True, delete=False, default_region=REGION
    )

    assert outcome == ArchiveOutcome(events=[])


def test_dearchive_delete_alone_keeps_the_only_copy_of_a_lead_archived_away() -> None:
    """Dearchive delete without insert keeps the copy of a lead archived away: its only copy."""
    state = given(inserted(), archived(), archive_delete(2))

    outcome = decide_dearchive(state, insert=False, delete=True, default_region=REGION)

    assert outcome == ArchiveOutcome(events=[])


@pytest.mark.parametrize(
    "history",
    [
        pytest.param([inserted()], id="never-archived"),
        pytest.param([inserted(), API_DELETE], id="deleted-never-archived"),
        pytest.param(
            [inserted(), archived(), LeadArchiveRemoved(lead_id=LEAD, live_version=2)],
            id="copy-removed",
        ),
    ],
)
def test_dearchive_of_a_lead_not_archived_is_refused(history: list[LeadEvent]) -> None:
    """A lead never archived, or whose copy was removed, cannot be dearchived: 'not archived'."""
    with pytest.raises(LeadError, match=f"^lead {LEAD} is not archived$"):
        decide_dearchive(given(*history), insert=True, delete=True, default_region=REGION)


# --- evolve / fold --------------------------------------------------------------------------------


def test_versions_count_the_events_of_the_stream() -> None:
    """Each event moves the version by one and live/archive follow the lifecycle; fold agrees."""
    history: list[LeadEvent] = [
        inserted(),
        renamed("Asha", "Bina"),
        LeadReassigned(lead_id=LEAD, from_agent=None, to_agent="ravi"),
        archived(fields(name="Bina", agent="ravi"), source_version=3),
        archive_delete(4),
        restored(fields(name="Bina", agent="ravi"), archive_version=4),
        LeadArchiveRemoved(lead_id=LEAD, live_version=6),
        API_DELETE,
    ]
    state: LeadState | None = None
    seen = []
    for event in history:
        state = evolve(state, event)
        seen.append((state.version, state.live, state.archive is not None))

    assert seen == [
        (1, True, False),
        (2, True, False),
        (3, True, False),
        (4, True, True),
        (5, False, True),
        (6, True, True),
        (7, True, False),
        (8, False, False),
    ]
    assert fold(history) == state


def test_fold_continues_from_a_state() -> None:
    """fold from a state applies only the new events; with none it returns that same state."""
    start = given(inserted())

    assert fold([], start) is start
    assert fold([renamed("Asha", "Bina")], start) == given(inserted(), renamed("Asha", "Bina"))


def test_fold_of_nothing_is_no_lead() -> None:
    """Folding no events gives no lead (None)."""
    assert fold([]) is None


@pytest.mark.parametrize(
    "event",
    [renamed("Asha", "Bina"), API_DELETE, archived()],
    ids=lambda e: type(e).__name__,
)
def test_events_before_the_insert_are_refused(event: LeadEvent) -> None:
    """An update, delete or archive event with no LeadInserted before it is refused by name."""
    with pytest.raises(
        LeadError, match=f"^{type(event).__name__} before LeadInserted for lead {LEAD}$"
    ):
        evolve(None, event)


@pytest.mark.parametrize(
    "event",
    [
        renamed("Asha", "Bina"),
        LeadReassigned(lead_id=LEAD, from_agent=None, to_agent="ravi"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_field_events_on_a_lead_that_is_not_live_are_refused(event: LeadEvent) -> None:
    """LeadUpdated or LeadReassigned folded onto a deleted lead is refused: 'not live'."""
    with pytest.raises(LeadError, match=f"^lead {LEAD} is not live$"):
        evolve(given(inserted(), API_DELETE), event)


def test_an_event_of_another_stream_is_refused() -> None:
    """evolve refuses an event that is no lead event (LeadRejected) as unknown."""
    stray = LeadRejected(account_id=ACCOUNT, campaign_id=CAMPAIGN, reason="duplicate")

    with pytest.raises(LeadError, match=r"^unknown lead event LeadRejected$"):
        evolve(given(inserted()), cast("LeadEvent", stray))
