"""Property: the lead aggregate's fold and the lead views' fold tell the same story.

Sequences of commands go through the domain's own decide functions (so every event sequence is
one the service could record); each decision's events are encoded, recorded at one time (one
transaction), decoded and folded by LeadsProjection, ArchiveProjection and ContactsProjection
into in-memory rows. After every command the rows must be what the domain state says: a live
row exactly when the lead is live, with its fields, keys and version; an archive row exactly
when it has an archive copy; contacts from its live fields and keys; the times the rule of
ledger/row_times.py gives. Pure: no database, no clock.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from lead_ledger.ledger.envelope import RecordedEvent
from lead_ledger.ledger.events import (
    LeadArchived,
    LeadArchiveSynced,
    LeadEvent,
    LeadFields,
    decode_event,
    encode_event,
)
from lead_ledger.ledger.lead import (
    LeadError,
    LeadState,
    RowTimes,
    decide_archive,
    decide_dearchive,
    decide_delete,
    decide_insert,
    decide_update,
    fold,
)
from lead_ledger.ledger.row_times import LeadTimes, times_after
from lead_ledger.projections.base import Row, Rows
from lead_ledger.projections.leads import (
    ARCHIVE_COLUMNS,
    LEAD_COLUMNS,
    ArchiveProjection,
    ContactsProjection,
    LeadsProjection,
    contact_rows,
)

LEAD = 41
ACCOUNT = 3
CAMPAIGN = 5
REGION = "IN"
START = datetime(2024, 1, 1, tzinfo=UTC)

text = st.text(max_size=5)
optional_text = st.none() | text
phones = st.lists(st.from_regex(r"\+?[0-9]{7,12}", fullmatch=True), min_size=1, max_size=3)
crm = st.dictionaries(st.sampled_from(["plan", "tier", "zone"]), text, max_size=3)
expiry = st.none() | st.datetimes(timezones=st.just(UTC)) | st.datetimes()
# Finite floats only: JSON has no infinity or NaN (msgspec writes null), and the views fold what
# a reader decodes.
extra_value = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
field_values: dict[str, st.SearchStrategy[Any]] = {
    "phone_numbers": phones,
    "name": optional_text,
    "city": optional_text,
    "user_data": optional_text,
    "reference_number": optional_text,
    "crm": crm,
    "agent": st.none() | st.sampled_from(["ravi", "asha"]),
    "status": st.sampled_from(["new", "called", "done"]),
    "priority": st.integers(-5, 9),
    "expires_at": expiry,
    "extra": st.dictionaries(st.sampled_from(["a", "b", "c"]), extra_value, max_size=3),
}
lead_fields = st.fixed_dictionaries(
    {"phone_numbers": phones},
    optional={name: values for name, values in field_values.items() if name != "phone_numbers"},
).map(lambda values: msgspec.convert(values, LeadFields))
patches = st.fixed_dictionaries({}, optional=field_values)
commands = st.lists(
    st.one_of(
        st.tuples(st.just("update"), patches),
        st.tuples(st.just("delete")),
        st.tuples(st.just("archive"), st.booleans(), st.booleans(), st.booleans()),
        st.tuples(st.just("dearchive"), st.booleans(), st.booleans()),
    ),
    max_size=12,
)


class Story:
    """One lead's stream as the domain decides it and as the views fold it, side by side."""

    def __init__(self) -> None:
        self.state: LeadState | None = None
        self.times: LeadTimes | None = None  # the live row's times under the rule
        self.archive_times = RowTimes()
        self.archived_at: datetime | None = None
        self.recorded: list[RecordedEvent] = []
        self.leads, self.archive, self.contacts = Rows(), Rows(), Rows()

    def record(self, events: list[LeadEvent]) -> None:
        """Record one decision's events in one transaction and fold them on both sides."""
        at = START + timedelta(seconds=len(self.recorded))
        for event in events:
            version = len(self.recorded) + 1
            new = encode_event(event, uuid.UUID(int=version))
            recorded = RecordedEvent(
                position=version,
                event_id=new.event_id,
                stream_id=f"lead-{LEAD}",
                stream_version=version,
                type=new.type,
                schema_version=new.schema_version,
                data=new.data,
                metadata=b"{}",
                recorded_at=at,
                transaction_id=1,
            )
            self.recorded.append(recorded)
            self.state = fold([event], self.state)
            self.times = times_after(self.times, event, at)
            if isinstance(event, LeadArchived | LeadArchiveSynced):
                self.archive_times = RowTimes(
                    entry_at=event.entry_at, modified_at=event.modified_at
                )
                self.archived_at = at
            # The views fold what a reader decodes, not the objects the writer held.
            pair = [(recorded, decode_event(recorded))]
            LeadsProjection().fold_all(self.leads, pair)
            ArchiveProjection().fold_all(self.archive, pair)
            ContactsProjection().fold_all(self.contacts, pair)

    def run(self, command: tuple[Any, ...]) -> None:
        """Decide a command on the domain state; a refused one records nothing."""
        state = self.state
        assert state is not None
        live_times = RowTimes() if self.times is None else RowTimes(**self.times._asdict())
        try:
            match command:
                case ("update", patch):
                    events = decide_update(state, patch, REGION)
                case ("delete",):
                    events = [decide_delete(state)]
                case ("archive", insert, update, delete):
                    outcome = decide_archive(
                        state, insert=insert, update=update, delete=delete, times=live_times
                    )
                    events = outcome.events
                case ("dearchive", insert, delete):
                    outcome = decide_dearchive(
                        state,
                        insert=insert,
                        delete=delete,
                        default_region=REGION,
                        entry_at=self.archive_times.entry_at,  # the archive row's, as served
                    )
                    events = outcome.events
                case _:
                    raise AssertionError(f"no such command: {command!r}")
        except LeadError:
            return
        if events:
            self.record(events)

    def expected_lead_row(self) -> Row | None:
        state = self.state
        if state is None or state.fields is None or self.times is None:
            return None
        return {
            "lead_id": state.lead_id,
            "account_id": state.account_id,
            "campaign_id": state.campaign_id,
            "version": state.version,
            "dedupe_keys": state.dedupe_keys,
            **msgspec.structs.asdict(state.fields),
            "entry_at": self.times.entry_at,
            "modified_at": self.times.modified_at,
        }

    def expected_archive_row(self) -> Row | None:
        state = self.state
        if state is None or state.archive is None:
            return None
        copy = state.archive
        return {
            "lead_id": state.lead_id,
            "account_id": state.account_id,
            "campaign_id": state.campaign_id,
            "version": copy.source_version,
            "dedupe_keys": copy.dedupe_keys,
            **msgspec.structs.asdict(copy.snapshot),
            "entry_at": self.archive_times.entry_at,
            "modified_at": self.archive_times.modified_at,
            "source_version": copy.source_version,
            "archive_version": copy.archive_version,
            "archived_at": self.archived_at,
        }

    def expected_contacts(self) -> list[Row]:
        state = self.state
        if state is None or state.fields is None:
            return []
        return contact_rows(state.lead_id, state.campaign_id, state.fields, state.dedupe_keys)

    def check(self) -> None:
        """The views' rows are the domain state's, column for column."""
        live, archived = self.leads.get(LEAD), self.archive.get(LEAD)
        assert live == self.expected_lead_row()
        assert archived == self.expected_archive_row()
        assert self.contacts.group(LEAD) == self.expected_contacts()
        assert live is None or tuple(live) == LEAD_COLUMNS
        assert archived is None or tuple(archived) == ARCHIVE_COLUMNS


@settings(max_examples=300, deadline=None)
@given(fields=lead_fields, script=commands)
def test_domain_and_projection_folds_agree(
    fields: LeadFields, script: list[tuple[Any, ...]]
) -> None:
    """After every decided command, the lead, archive and contact rows match the domain state."""
    story = Story()
    try:
        inserted = decide_insert(
            lead_id=LEAD,
            account_id=ACCOUNT,
            campaign_id=CAMPAIGN,
            fields=fields,
            default_region=REGION,
        )
    except LeadError:
        return  # numbers without a dialable key: the service refuses the lead
    story.record([inserted])
    story.check()
    for command in script:
        story.run(command)
        story.check()
