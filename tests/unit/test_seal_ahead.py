"""Appends of new leads sealed before their write's turn on the connection: keys made in the
process, the events and client addresses sealed with them, and anything that needs the
database (contacts leaving the views, lookup digests) refused."""

from __future__ import annotations

import msgspec
import pytest

from lead_ledger.ledger import key_store, subject_keys
from lead_ledger.ledger.envelope import Actor
from lead_ledger.ledger.events import (
    DomainEvent,
    FieldChange,
    LeadFields,
    LeadInserted,
    LeadUpdated,
)
from lead_ledger.ledger.sealing import open_event, open_metadata
from lead_ledger.service.writer import Context, made_keys, seal_ahead, stream_append

CTX = Context(actor=Actor(dialect="native", account_id=1), client_address="203.0.113.9")
DIGEST = subject_keys.digester(subject_keys.new_data_key())
INSERTED = LeadInserted(
    lead_id=41,
    account_id=1,
    campaign_id=2,
    fields=LeadFields(phone_numbers=["9876543210"], name="Asha Rao", agent="a1"),
    dedupe_keys=["+919876543210"],
)


def test_new_leads_are_sealed_with_keys_made_here() -> None:
    """The stored body holds neither number nor name, its dedupe key is the account's digest,
    and the wrapped key made for `lead-41` opens the event and the client address back."""
    append = stream_append(CTX, "lead-41", 0, [INSERTED], account_id=1)
    sealed = seal_ahead([append], 1, DIGEST)
    assert list(sealed.wrapped_keys) == ["lead-41"]
    key = subject_keys.unwrap(key_store.master_key(), sealed.wrapped_keys["lead-41"])
    (stored,) = sealed.stored
    body = stored.events[0].data
    assert b"9876543210" not in body
    assert b"Asha" not in body
    clear = msgspec.json.decode(body, type=DomainEvent)
    assert isinstance(clear, LeadInserted)
    assert clear.dedupe_keys == [DIGEST("+919876543210")]
    assert open_event(clear, {"lead-41": key}) == INSERTED
    assert stored.metadata.client_address is None
    assert open_metadata(stored.metadata, {"lead-41": key}).client_address == "203.0.113.9"


def test_events_that_need_the_database_are_refused() -> None:
    """A change of numbers takes contacts out of the views, which only `record` notes; an
    append of another account would be sealed under the wrong digest."""
    update = LeadUpdated(
        lead_id=41,
        changes=[FieldChange("phone_numbers", ["9876543210"], ["9812345678"])],
        dedupe_keys=["+919812345678"],
    )
    with pytest.raises(ValueError, match="LeadUpdated needs record"):
        seal_ahead([stream_append(CTX, "lead-41", 1, [update], account_id=1)], 1, DIGEST)
    with pytest.raises(ValueError, match="another account"):
        seal_ahead([stream_append(CTX, "lead-41", 0, [INSERTED], account_id=2)], 1, DIGEST)


def test_keys_made_and_stored_ahead_seal_and_are_not_stored_again() -> None:
    """With every lead's key made at once (`made_keys`, stored by the caller), a chunk is sealed
    with its leads' keys and carries no key of its own to store; the wrapped keys open to the
    data keys."""
    keys, wrapped = made_keys(["lead-41", "lead-42"])
    assert subject_keys.unwrap(key_store.master_key(), wrapped["lead-42"]) == keys["lead-42"]
    assert keys["lead-41"] != keys["lead-42"]
    append = stream_append(CTX, "lead-41", 0, [INSERTED], account_id=1)
    sealed = seal_ahead([append], 1, DIGEST, keys)
    assert sealed.wrapped_keys == {}
    clear = msgspec.json.decode(sealed.stored[0].events[0].data, type=DomainEvent)
    assert open_event(clear, {"lead-41": keys["lead-41"]}) == INSERTED
    with pytest.raises(subject_keys.SubjectKeyError):
        open_event(clear, {"lead-41": keys["lead-42"]})
