"""The one way events are written: seal, append, then update every inline projection, in the
caller's transaction, so a request reads its own writes and duplicate checks see every commit."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import msgspec

from lead_ledger.ledger import key_store, subject_keys
from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.envelope import NO_STREAM, Actor, EventMetadata, StreamAppend
from lead_ledger.ledger.event_ids import new_event_id
from lead_ledger.ledger.events import DomainEvent, LeadInserted, encode_event
from lead_ledger.ledger.sealing import (
    Keys,
    lead_subject,
    seal_event,
    seal_metadata,
    subjects_to_seal,
)
from lead_ledger.ledger.store import AppendResult, append_events, one_statement
from lead_ledger.ledger.subject_lookup import (
    LEAD_CONTACT_KINDS,
    contact_token,
    event_tokens,
    leaving_contacts,
    needs_region,
)
from lead_ledger.projections.fresh_inserts import along_append
from lead_ledger.projections.registry import apply_inline
from lead_ledger.service.account_reads import default_region
from lead_ledger.service.transactions import APPENDED_TYPES

SELECT_CONTACTS: Final = """
SELECT lead_id, kind, value FROM contacts
WHERE lead_id = ANY($1::bigint[]) AND kind = ANY($2::text[])
"""


class Origin(msgspec.Struct, frozen=True, kw_only=True):
    """Where a request came from, before anyone knows who sent it (a vendor's own checks may
    authenticate the caller later, in their order)."""

    request_id: str | None = None
    client_address: str | None = None

    def context(self, actor: Actor) -> Context:
        return Context(actor=actor, request_id=self.request_id, client_address=self.client_address)


class Context(msgspec.Struct, frozen=True, kw_only=True):
    """Who is asking and through what: becomes every written event's metadata."""

    actor: Actor
    request_id: str | None = None
    job_id: str | None = None
    correlation_id: str | None = None
    client_address: str | None = None

    def metadata(self) -> EventMetadata:
        return EventMetadata(
            actor=self.actor,
            request_id=self.request_id,
            job_id=self.job_id,
            correlation_id=self.correlation_id or self.request_id,
            client_address=self.client_address,
        )


@dataclass(frozen=True, slots=True)
class PendingAppend:
    """Domain events for one stream, with their ids, before sealing: `record` seals them with
    their subjects' keys in the transaction that appends them."""

    stream_id: str
    expected_version: int
    events: list[tuple[uuid.UUID, DomainEvent]]
    metadata: EventMetadata = field(default_factory=EventMetadata)
    account_id: int | None = None


def rejections_stream(ctx: Context, account_id: int) -> str:
    """The stream a request's refusals (LeadRejected) are recorded on: its request id within
    its account. A caller chooses its X-Request-ID, so two accounts may send the same one, and
    a stream is one account's."""
    return f"request-{account_id}-{ctx.request_id or uuid.uuid4().hex}"


def stream_append(
    ctx: Context,
    stream_id: str,
    expected_version: int,
    events: Sequence[DomainEvent],
    *,
    account_id: int | None,
) -> PendingAppend:
    """Domain events for one stream. Event ids are drawn here (UUIDv7, time-ordered with random
    bits), never in the domain."""
    return PendingAppend(
        stream_id=stream_id,
        expected_version=expected_version,
        events=[(new_event_id(), event) for event in events],
        metadata=ctx.metadata(),
        account_id=account_id,
    )


async def record(
    conn: Connection,
    appends: Sequence[PendingAppend],
    *,
    detect_retries: bool = False,
    digests: Mapping[int, subject_keys.Digest] | None = None,
    new_subjects: bool = False,
) -> AppendResult:
    """Seal, append and project. Must run inside the caller's transaction (and its locks),
    which should be a `service.transactions.write_transaction` so that it holds the write gate.

    `stream_append` gives every event a fresh id (UUIDv7), so such appends cannot be retries;
    pass `detect_retries=True` only for events with ids derived from something replayable.
    Raises key_store.SubjectErasedError for a write to an erased subject. `digests`: accounts'
    dedupe digests the caller already holds (`account_digest`), so they are not read again.
    `new_subjects`: every subject of these appends should have no key yet (leads with ids just
    drawn, and their request's refusals): keys are made here and stored by the events' own
    statement. If one had a key after all (a request id sent again), that statement appends
    nothing, and the appends are sealed again with the stored keys, as without the hint.
    """
    if not conn.is_in_transaction():
        raise RuntimeError("record() must run inside a transaction")
    if new_subjects and not detect_retries:
        made = {a: made_keys(_subjects(group)) for a, group in _by_account(appends).items()}
        sealed = await seal_appends(
            conn, appends, digests, made={a: k for a, (k, _) in made.items()}
        )
        new_keys = key_store.NewKeys({a: wrapped for a, (_, wrapped) in made.items()})
        with contextlib.suppress(key_store.KeysExistedError):
            return await _append_and_project(
                conn, appends, sealed, detect_retries=False, new_keys=new_keys
            )
    sealed = await seal_appends(conn, appends, digests)
    return await _append_and_project(conn, appends, sealed, detect_retries=detect_retries)


@dataclass(frozen=True, slots=True)
class SealedAhead:
    """Appends of new subjects only (leads with ids just drawn), sealed before their turn on
    the connection: their keys are made here and stored with them (`record_sealed`)."""

    appends: Sequence[PendingAppend]
    stored: list[StreamAppend]
    account_id: int
    wrapped_keys: dict[str, bytes]

    def without(self, streams: Collection[str]) -> SealedAhead:
        """These appends but those to `streams` (whose subjects are their stream ids), which
        will not be written after all, and the keys made for them."""
        kept = [i for i, append in enumerate(self.appends) if append.stream_id not in streams]
        return SealedAhead(
            [self.appends[i] for i in kept],
            [self.stored[i] for i in kept],
            self.account_id,
            {s: key for s, key in self.wrapped_keys.items() if s not in streams},
        )


def seal_ahead(
    appends: Sequence[PendingAppend],
    account_id: int,
    digest: subject_keys.Digest,
    stored_keys: Keys | None = None,
) -> SealedAhead:
    """Seal appends whose every subject is new, with fresh keys, without the database: a
    large insert seals its next chunk while the server writes the last one. `digest` is the
    account's (`account_digest`). `stored_keys`: keys already made and stored, in this
    transaction, for every subject of these appends (`made_keys`); else keys are made here, and
    `record_sealed` stores them. Appends that take contacts out of the views or record lookup
    digests go through `record`, which does both."""
    for append in appends:
        if append.account_id != account_id:
            raise ValueError("seal_ahead: appends of another account")
        for event_id, event in append.events:
            if leaving_contacts(event) is not None or event_tokens(event, event_id, None):
                raise ValueError(f"seal_ahead: {type(event).__name__} needs record()")
    if stored_keys is None:
        keys, to_store = made_keys(_subjects(appends))
    else:
        keys, to_store = stored_keys, {}
    stored = [_stored(append, keys, digest) for append in appends]
    return SealedAhead(appends, stored, account_id, to_store)


def made_keys(subjects: Iterable[str]) -> tuple[Keys, dict[str, bytes]]:
    """Fresh keys for subjects that have none (leads with ids just drawn), and the same keys
    wrapped under the master key, as they are stored: by the events' INSERT (`record` with
    `new_subjects`), with a chunk (`seal_ahead`), or all of a large insert's at once, before its
    chunks are sealed with them (`seal_ahead(stored_keys=...)`)."""
    master = key_store.master_key()
    keys = {subject: subject_keys.new_data_key() for subject in subjects}
    return keys, {subject: subject_keys.wrap(master, key) for subject, key in keys.items()}


async def account_digest(conn: Connection, account_id: int) -> subject_keys.Digest:
    """The account's dedupe digest, for `seal_ahead`."""
    return subject_keys.digester(
        await key_store.account_secret(conn, key_store.master_key(), account_id)
    )


class AccountDigests:
    """Accounts' dedupe digests for a long-lived writer (one per app, so per database): an
    account's secret is made once and never changes (`keys rotate` re-wraps it, the secret
    stays), so a group writer reads it once instead of once per transaction."""

    def __init__(self) -> None:
        self._secrets: dict[int, bytes] = {}

    async def get(self, conn: Connection, account_id: int) -> subject_keys.Digest:
        secret = self._secrets.get(account_id)
        if secret is None:
            secret = await key_store.account_secret(conn, key_store.master_key(), account_id)
            # Kept only once committed: a secret made inside a transaction that then rolls
            # back was never the account's.
            if not conn.is_in_transaction():
                self._secrets[account_id] = secret
        # A digester per call: each remembers the values it hashed, for one write's span.
        return subject_keys.digester(secret)


async def record_sealed(
    conn: Connection, sealed: SealedAhead, appended: Callable[[], None] | None = None
) -> AppendResult:
    """`record` for appends sealed ahead: their keys stored, then appended and projected.
    `appended` is called once the events are in, before they are projected.
    Raises key_store.SubjectErasedError or KeyConflictError if a subject had a key after all."""
    if not conn.is_in_transaction():
        raise RuntimeError("record_sealed() must run inside a transaction")
    if sealed.wrapped_keys:
        await key_store.store_new_keys(conn, sealed.account_id, sealed.wrapped_keys)
    return await _append_and_project(
        conn, sealed.appends, sealed.stored, detect_retries=False, appended=appended
    )


async def _append_and_project(
    conn: Connection,
    appends: Sequence[PendingAppend],
    sealed: list[StreamAppend],
    *,
    detect_retries: bool,
    new_keys: key_store.NewKeys | None = None,
    appended: Callable[[], None] | None = None,
) -> AppendResult:
    # New leads' rows go in with their events, in one round trip, where one statement appends
    # them with their keys.
    fresh = _new_leads(appends) if new_keys is not None and one_statement(sealed) else {}
    along = along_append(conn, list(fresh.values()))
    result = await append_events(
        conn, sealed, detect_retries=detect_retries, new_keys=new_keys, along=along
    )
    if appended is not None:
        appended()
    if not result.already_stored:
        # The projections fold the events as written, not as stored: nothing to open.
        plain = [event for append in appends for _, event in append.events]
        await apply_inline(
            conn,
            list(zip(result.events, plain, strict=True)),
            projected=fresh.keys() if along is not None else (),
        )
        counted = APPENDED_TYPES.get()
        if counted is not None:
            counted.extend(event.type for event in result.events)
    return result


def _new_leads(appends: Sequence[PendingAppend]) -> dict[uuid.UUID, LeadInserted]:
    """The LeadInserted events that open new streams (each at version 1), by event id."""
    return {
        append.events[0][0]: event
        for append in appends
        if append.expected_version == NO_STREAM
        and append.events
        and isinstance(event := append.events[0][1], LeadInserted)
    }


async def seal_appends(
    conn: Connection,
    appends: Sequence[PendingAppend],
    digests: Mapping[int, subject_keys.Digest] | None = None,
    *,
    made: Mapping[int, Keys] | None = None,
) -> list[StreamAppend]:
    """The appends as stored: each account's subjects get their keys (made where new, with the
    digests an erasure finds them by), then every event and client address is sealed. `made`:
    keys made for every subject of an account, used as they are (stored by the caller)."""
    sealed: dict[int, StreamAppend] = {}
    for account_id, group in _by_account(appends).items():
        known = (digests or {}).get(account_id)
        keys = None if made is None else made.get(account_id, {})
        stored_group = await _seal_account(conn, account_id, group, known, keys)
        for append, stored in zip(group, stored_group, strict=True):
            sealed[id(append)] = stored
    return [sealed[id(append)] for append in appends]


def _by_account(appends: Sequence[PendingAppend]) -> dict[int, list[PendingAppend]]:
    by_account: dict[int, list[PendingAppend]] = {}
    for append in appends:
        by_account.setdefault(append.account_id or 0, []).append(append)
    return by_account


def _subjects(appends: Sequence[PendingAppend]) -> set[str]:
    """Every subject sealing these appends needs a key of: the events' personal data, and each
    client address (the append's stream is its subject)."""
    subjects: set[str] = set()
    for append in appends:
        if append.metadata.client_address is not None:
            subjects.add(append.stream_id)
        for event_id, event in append.events:
            subjects.update(subjects_to_seal(event, event_id))
    return subjects


async def _seal_account(
    conn: Connection,
    account_id: int,
    appends: Sequence[PendingAppend],
    known: subject_keys.Digest | None,
    made: Keys | None = None,
) -> list[StreamAppend]:
    master = key_store.master_key()
    subjects = _subjects(appends)
    leaving = {
        lead_id
        for append in appends
        for _, event in append.events
        if (lead_id := leaving_contacts(event)) is not None
    }
    if not subjects and not leaving:
        return [_stored(append, {}, str) for append in appends]
    digest = known or subject_keys.digester(
        await key_store.account_secret(conn, master, account_id)
    )
    keys = (
        made
        if made is not None
        else await key_store.keys_for_writing(conn, master, account_id, subjects)
    )
    tokens = await contact_tokens(conn, leaving)
    region = await _region_if_needed(conn, account_id, appends)
    for append in appends:
        for event_id, event in append.events:
            for subject, found in event_tokens(event, event_id, region).items():
                tokens.setdefault(subject, set()).update(found)
    await key_store.add_lookup(
        conn, account_id, {subject: map(digest, found) for subject, found in tokens.items()}
    )
    return [_stored(append, keys, digest) for append in appends]


async def contact_tokens(conn: Connection, lead_ids: set[int]) -> dict[str, set[str]]:
    """The lookup tokens of these leads' contact values as the views hold them now, by subject:
    before a write that may take them out (ledger/subject_lookup.py), or to find what shares
    them (an erasure by lead id)."""
    tokens: dict[str, set[str]] = {}
    if not lead_ids:
        return tokens
    for row in await conn.fetch(SELECT_CONTACTS, sorted(lead_ids), list(LEAD_CONTACT_KINDS)):
        token = contact_token(row["kind"], row["value"])
        if token is not None:
            tokens.setdefault(lead_subject(row["lead_id"]), set()).add(token)
    return tokens


async def _region_if_needed(
    conn: Connection, account_id: int, appends: Sequence[PendingAppend]
) -> str | None:
    if not any(needs_region(event) for append in appends for _, event in append.events):
        return None
    return await default_region(conn, account_id)


def _stored(append: PendingAppend, keys: Keys, digest: subject_keys.Digest) -> StreamAppend:
    return StreamAppend(
        stream_id=append.stream_id,
        expected_version=append.expected_version,
        events=[
            encode_event(seal_event(event, event_id, keys, digest), event_id)
            for event_id, event in append.events
        ],
        metadata=seal_metadata(append.metadata, append.stream_id, keys),
        account_id=append.account_id,
    )
