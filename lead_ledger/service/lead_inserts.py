"""Inserting leads: one request's rows, or many requests' leads batched into one transaction.

Every dialect inserts through these, under the same campaign locks (ascending ids, all taken
before the first write). With duplicate checks, the phone dedupe keys of the batch are read
against the campaign's live leads while the locks are held, so the checks are exact across
processes; refused leads become LeadRejected events on their request's rejections stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import msgspec
import structlog
from msgspec import UNSET, UnsetType

from lead_ledger.ledger import key_store
from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.envelope import ANY_VERSION, NO_STREAM
from lead_ledger.ledger.events import (
    DomainEvent,
    ExtraValue,
    LeadEvent,
    LeadFields,
    LeadInserted,
    LeadRejected,
    stream_of_lead,
)
from lead_ledger.ledger.lead import decide_insert
from lead_ledger.ledger.locks import campaign_lock_key
from lead_ledger.ledger.sealing import Keys, lead_subject
from lead_ledger.ledger.subject_keys import Digest
from lead_ledger.service import dnc, dnc_marks
from lead_ledger.service.account_reads import default_region
from lead_ledger.service.dnc import DncBlock
from lead_ledger.service.key_workers import KeyWorkers
from lead_ledger.service.phone_keys import CHUNK_LEADS, KeysAhead
from lead_ledger.service.writer import (
    Context,
    PendingAppend,
    SealedAhead,
    account_digest,
    made_keys,
    record,
    record_sealed,
    seal_ahead,
    stream_append,
)

log = structlog.get_logger(__name__)

DNC_REASON: Final = "dnc"  # LeadRejected.reason of a lead a do-not-call entry kept out

# Ids first, then the campaign lock, in one round trip: the select list is evaluated left to
# right, and drawing ids needs no lock (sequences are not transactional).
NEXT_IDS_THEN_LOCK: Final = """
SELECT array(SELECT nextval('lead_ids') FROM generate_series(1, $1)) AS ids,
       pg_advisory_xact_lock($2) IS NULL AS locked
"""
CUSTOM_PLANS: Final = "SET LOCAL plan_cache_mode = force_custom_plan"
SELECT_PHONE_OWNERS: Final = """
SELECT value, lead_id FROM contacts
WHERE campaign_id = $1 AND kind = 'phone' AND value = ANY($2::text[])
ORDER BY lead_id
"""
# Whether each campaign ($1) holds a live lead's number: read by a long write as it takes its
# locks, so that the chunks of a campaign that held none skip the duplicate probe (only the
# write's own leads can hold its numbers then, and `Seen` knows those).
SELECT_CAMPAIGNS_HOLDING: Final = """
SELECT c.campaign_id,
       EXISTS (SELECT 1 FROM contacts WHERE campaign_id = c.campaign_id AND kind = 'phone')
           AS holding
FROM unnest($1::bigint[]) AS c(campaign_id)
"""
# The do-not-call entries of a write's keys ($1 account, $2 digests) and the live holders of
# the checked keys in its one campaign ($3, $4), in one round trip: both are read under the
# campaign lock and neither depends on the other (a blocked lead's holders are read and unused).
SELECT_BLOCKING_AND_OWNERS: Final = f"""
SELECT digest, entry_id, campaign_id, expires_at, NULL::text AS value, NULL::bigint AS lead_id
FROM ({dnc.SELECT_BLOCKING_DIGESTS}) AS blocking
UNION ALL
SELECT NULL, NULL, NULL, NULL, value, lead_id
FROM ({SELECT_PHONE_OWNERS.replace("$1", "$3").replace("$2", "$4")}) AS owners
"""
# Archived leads of the campaign holding any of the keys (lead_archive_dedupe_idx), one row per
# key held: for checks that count a number as present whatever became of its lead.
SELECT_ARCHIVED_OWNERS: Final = """
SELECT k.value, a.lead_id FROM lead_archive a, unnest(a.dedupe_keys) AS k(value)
WHERE a.dedupe_keys && $2::text[] AND a.campaign_id = $1 AND k.value = ANY($2::text[])
ORDER BY a.lead_id
"""


@dataclass(frozen=True, slots=True)
class Prepared:
    """What a small write drew and computed before its transaction, which it began with its
    campaigns' locks (`write_transaction(conn, campaigns=...)`): each campaign's lead ids (one
    per lead, ascending, from `lead_ids`) and every lead's dedupe keys, campaigns in ascending
    order, leads in order."""

    ids: Mapping[int, list[int]]
    keys: Sequence[list[str]]


class InsertResult(msgspec.Struct, frozen=True, kw_only=True):
    """Per input row (by index): the new lead id, the leads it duplicates, or the do-not-call
    entry that blocks it."""

    inserted: dict[int, int]
    duplicates: dict[int, list[int]]
    blocked: dict[int, DncBlock] = {}


class NewLead(msgspec.Struct, frozen=True, kw_only=True):
    """One lead to insert, with the request it came from (its own metadata and refusal stream)."""

    fields: LeadFields
    ctx: Context
    check_duplicates: bool = False
    # With check_duplicates: archived leads of the campaign count too (Ozonetel's isDelete).
    check_archived: bool = False
    rejections_stream: str | None = None
    # Refused only when every number is on the do-not-call list (jtel flags them one by one);
    # otherwise any blocked number refuses the lead.
    blocked_when_all: bool = False
    # Never refused for the do-not-call list, but marked (Vicidial's add_lead without its
    # dnc_check options: the caller asked for no check, and the lead must still not be dialled).
    blocked_marked: bool = False
    # Other spellings the registry is to check for this lead, beside its keys (a Vicidial
    # number as its phone_code dials it): they refuse or mark it as its keys would. Read by the
    # writes decided whole (`_insert_decided`), the paths single requests take.
    also_blocked_as: list[str] = msgspec.field(default_factory=list)


async def insert_leads(  # noqa: PLR0913 - the request's keywords, and the workers for its keys
    conn: Connection,
    ctx: Context,
    *,
    account_id: int,
    campaign_id: int,
    rows: Sequence[LeadFields],
    check_duplicates: bool,
    rejections_stream: str | None = None,
    region: str | UnsetType | None = UNSET,
    key_workers: KeyWorkers | None = None,
    blocked_when_all: bool = False,
    check_archived: bool = False,
) -> InsertResult:
    """Insert leads of one request into one campaign; with `check_duplicates`, refuse rows whose
    phone dedupe key is already live in the campaign (or archived in it, with `check_archived`)
    or in an earlier row of the same batch.

    Pass the account's `region` when already read, to keep a round trip out of the locked part,
    and the app's `key_workers` where a batch may be large (bulk jobs): without them a large
    batch's keys are computed in this process, slower.
    """
    leads = [
        NewLead(
            fields=fields,
            ctx=ctx,
            check_duplicates=check_duplicates,
            check_archived=check_archived,
            rejections_stream=rejections_stream,
            blocked_when_all=blocked_when_all,
        )
        for fields in rows
    ]
    return await insert_lead_batch(
        conn,
        account_id=account_id,
        campaign_id=campaign_id,
        leads=leads,
        region=region,
        key_workers=key_workers,
    )


async def insert_lead_batch(
    conn: Connection,
    *,
    account_id: int,
    campaign_id: int,
    leads: Sequence[NewLead],
    region: str | UnsetType | None = UNSET,
    key_workers: KeyWorkers | None = None,
) -> InsertResult:
    """Insert leads, possibly of several requests, into one campaign under one lock.

    The outcome is what the leads would get one after another in this order: a lead checking
    duplicates is refused when its key is live in the campaign or belongs to an earlier lead of
    the batch that was inserted. Refusals go to each lead's own rejections stream.
    """
    results = await insert_lead_groups(
        conn,
        account_id=account_id,
        groups={campaign_id: leads},
        region=region,
        key_workers=key_workers,
    )
    return results[campaign_id]


async def insert_lead_groups(
    conn: Connection,
    *,
    account_id: int,
    groups: Mapping[int, Sequence[NewLead]],
    region: str | UnsetType | None = UNSET,
    key_workers: KeyWorkers | None = None,
    digest: Digest | None = None,
    prepared: Prepared | None = None,
) -> dict[int, InsertResult]:
    """`insert_lead_batch` for several campaigns of one account in one transaction.
    `digest`: the account's dedupe digest when the caller holds it (read here otherwise).
    `prepared`: the ids and keys a small write drew and computed before its transaction, whose
    BEGIN took the locks: nothing is drawn, computed or locked here.

    Every campaign is locked, in ascending id order, before anything is written: the order
    keeps concurrent groups deadlock-free, and locking before the first write keeps the feed in
    stream order (docs/decisions.md).
    """
    # Ids and the region are read before the locks: neither depends on the campaign's leads,
    # and every round trip inside a lock is one that all writers of the campaign wait for.
    if isinstance(region, UnsetType):
        region = await default_region(conn, account_id)
    ordered = sorted(groups)
    if prepared is not None:
        return await _insert_decided(
            conn, account_id, groups, prepared.ids, prepared.keys, region, digest
        )
    # So are the dedupe keys, the costliest part of a large insert: worker processes compute
    # them ahead, chunk by chunk, starting now (`key_workers`; a thread of this process without
    # them). Nothing needs the whole batch's keys at once: each chunk is checked, appended and
    # projected as soon as its keys arrive, while the workers compute the next
    # (`_insert_as_keys_arrive`); duplicates of an earlier chunk's leads are found as they
    # would be in one batch (`Seen`).
    keys = KeysAhead(
        [lead.fields.phone_numbers for campaign_id in ordered for lead in groups[campaign_id]],
        region,
        streaming=True,
        workers=key_workers,
    )
    try:
        if keys.chunked:
            ids = await _ids_and_locks(conn, groups)
            return await _insert_as_keys_arrive(conn, account_id, groups, ids, region, keys)
        # Otherwise every key before the locks: a small batch has them at once, and deciding
        # duplicates needs the whole batch's.
        all_keys = await keys.take(sum(len(leads) for leads in groups.values()))
    finally:
        keys.cancel()
    ids = await _ids_and_locks(conn, groups)
    return await _insert_decided(conn, account_id, groups, ids, all_keys, region, digest)


async def _insert_decided(
    conn: Connection,
    account_id: int,
    groups: Mapping[int, Sequence[NewLead]],
    ids: Mapping[int, list[int]],
    all_keys: Sequence[list[str]],
    region: str | None,
    digest: Digest | None,
) -> dict[int, InsertResult]:
    """A small write under its locks: decide each campaign's leads (with their ids and keys),
    check them against the registry and the campaign's leads, and record what goes in."""
    ordered = sorted(groups)
    decided: dict[int, list[LeadInserted]] = {}
    start = 0
    for campaign_id in ordered:
        leads = groups[campaign_id]
        lead_keys = all_keys[start : start + len(leads)]
        start += len(leads)
        decided[campaign_id] = _decide(
            account_id, campaign_id, leads, ids[campaign_id], lead_keys, region
        )
    # The do-not-call check first (a blocked lead is refused as such, not as a duplicate),
    # under the locks: it sees every entry committed before them.
    if digest is None:
        digest = await account_digest(conn, account_id)
    also = [
        k for campaign_id in ordered for lead in groups[campaign_id] for k in lead.also_blocked_as
    ]
    registry, owners = await _blocking_and_owners(
        conn, account_id, digest, [*(k for ks in all_keys for k in ks), *also], groups, decided
    )
    appends: list[PendingAppend] = []
    results: dict[int, InsertResult] = {}
    for campaign_id in ordered:
        leads, events = groups[campaign_id], decided[campaign_id]
        blocked = _blocked(registry, campaign_id, leads, dict(enumerate(events)))
        checks = [lead.check_duplicates and i not in blocked for i, lead in enumerate(leads)]
        archived = [
            check and lead.check_archived for check, lead in zip(checks, leads, strict=True)
        ]
        duplicates = (
            await _duplicates(
                conn,
                campaign_id,
                events,
                checks,
                archived,
                Seen(),
                [i in blocked for i in range(len(events))],
                owners.get(campaign_id),
            )
            if any(checks)
            else {}
        )
        refused = duplicates.keys() | blocked.keys()
        # A lead let in with some numbers blocked (jtel flags them one by one) is marked.
        marks = _admitted_marks(registry, campaign_id, leads, dict(enumerate(events)), refused)
        appends.extend(_lead_appends(account_id, leads, events, refused, marks))
        appends.extend(
            _refusals(account_id, campaign_id, leads, dict(enumerate(events)), duplicates, blocked)
        )
        inserted = {i: e.lead_id for i, e in enumerate(events) if i not in refused}
        results[campaign_id] = InsertResult(
            inserted=inserted, duplicates=duplicates, blocked=blocked
        )
    # Every subject here is new: leads with ids just drawn, refusals of this write.
    await record(conn, appends, digests={account_id: digest}, new_subjects=True)
    return results


def _blocking_keys(event: LeadInserted, lead: NewLead) -> list[str]:
    """The keys the do-not-call registry is asked about for a new lead: its own, and the other
    spellings it would be dialled as (`NewLead.also_blocked_as`)."""
    return [*event.dedupe_keys, *lead.also_blocked_as]


def _blocked(
    registry: dnc.Blocking,
    campaign_id: int,
    leads: Sequence[NewLead],
    events: Mapping[int, LeadInserted],
) -> dict[int, DncBlock]:
    """The leads (by index) a do-not-call entry keeps out of the campaign: any of their numbers
    blocked is enough, so that no blocked number is ever dialled (all of them, for a lead whose
    numbers are flagged one by one)."""
    blocked: dict[int, DncBlock] = {}
    if not registry:
        return blocked
    for i, event in events.items():
        if leads[i].blocked_marked:
            continue
        keys = _blocking_keys(event, leads[i])
        if leads[i].blocked_when_all:
            block = registry.block_all(keys, campaign_id)
        else:
            block = registry.block(keys, campaign_id)
        if block is not None:
            blocked[i] = block
    return blocked


async def _ids_and_locks(
    conn: Connection, groups: Mapping[int, Sequence[NewLead]]
) -> dict[int, list[int]]:
    """Lead ids for every campaign's leads, and its lock, in ascending campaign order: every
    lock before the first write. Ids and a lock are one round trip."""
    ids: dict[int, list[int]] = {}
    for campaign_id in sorted(groups):
        drawn = await conn.fetchrow(
            NEXT_IDS_THEN_LOCK, len(groups[campaign_id]), campaign_lock_key(campaign_id)
        )
        ids[campaign_id] = drawn["ids"] if drawn is not None else []
    return ids


async def _insert_as_keys_arrive(
    conn: Connection,
    account_id: int,
    groups: Mapping[int, Sequence[NewLead]],
    ids: Mapping[int, list[int]],
    region: str | None,
    keys: KeysAhead,
) -> dict[int, InsertResult]:
    """Append and project leads chunk by chunk (no duplicate checks), in campaign order.

    Each chunk's events are built while the server still writes the previous chunk: its
    append and projection run as a task, awaited only before the connection is needed again.
    """
    results: dict[int, InsertResult] = {}
    blocked: dict[int, dict[int, DncBlock]] = {}
    duplicates: dict[int, dict[int, list[int]]] = {}
    writing: asyncio.Future[None] | None = None
    copied: asyncio.Event | None = None
    # Every chunk's statements planned for their own parameters: asyncpg prepares them, and
    # from the sixth execution PostgreSQL may keep a generic plan made while `contacts` looked
    # small; with the rows of the earlier chunks in it (this transaction's, so no statistics
    # know them) the duplicate check's generic plan scanned the table comparing every row with
    # every key, ~1.5 s a chunk. Planning a statement over 4,096 leads costs nothing beside it.
    await conn.execute(CUSTOM_PLANS)
    digest = await account_digest(conn, account_id)
    registry = await dnc.HeldRegistry.read(conn, account_id, sorted(groups), digest)
    holding = await _campaigns_holding(conn, groups)
    loop = asyncio.get_running_loop()
    try:
        # Every lead's key at once: made on a thread while the key workers compute the first
        # chunk's dedupe keys, stored by one COPY that the first chunk's write waits for, and
        # each chunk sealed with them; a COPY per chunk put its key rows on every write's path.
        subjects = [lead_subject(lead_id) for c in sorted(groups) for lead_id in ids[c]]
        lead_keys, wrapped = await loop.run_in_executor(None, made_keys, subjects)
        writing = asyncio.ensure_future(key_store.store_new_keys(conn, account_id, wrapped))
        for campaign_id in sorted(groups):
            leads, lead_ids = groups[campaign_id], ids[campaign_id]
            written = _Written(
                blocked.setdefault(campaign_id, {}),
                duplicates.setdefault(campaign_id, {}),
                Seen(own=frozenset(lead_ids)),
                registry,
                holding.get(campaign_id, False),
            )
            for start in range(0, len(leads), CHUNK_LEADS):
                chunk = leads[start : start + CHUNK_LEADS]
                chunk_ids = lead_ids[start : start + CHUNK_LEADS]
                chunk_keys = await keys.take(len(chunk))
                sealed = await _sealed_beside(
                    copied,
                    _Chunk(account_id, campaign_id, chunk, chunk_ids, chunk_keys, region),
                    digest,
                    lead_keys,
                )
                if writing is not None:
                    await writing
                copied = asyncio.Event()
                writing = asyncio.ensure_future(
                    _write_chunk(
                        conn, campaign_id, leads, start, sealed, digest, written, copied.set
                    )
                )
                # A write that ends before its events are in (refused, failed) frees the next.
                writing.add_done_callback(_setter(copied))
                # Let the write send its first statement before this task builds the next
                # chunk: when that chunk's keys are ready, nothing else would yield to it.
                await asyncio.sleep(0)
        if writing is not None:
            await writing
        for campaign_id, lead_ids in ids.items():
            kept_out = blocked.get(campaign_id, {})
            doubles = dict(sorted(duplicates.get(campaign_id, {}).items()))
            inserted = {
                i: lead_id
                for i, lead_id in enumerate(lead_ids)
                if i not in kept_out and i not in doubles
            }
            results[campaign_id] = InsertResult(
                inserted=inserted, duplicates=doubles, blocked=kept_out
            )
    except BaseException as error:
        if writing is not None and not writing.done():
            # Failed while a chunk was being written: the connection is the caller's to roll
            # back, once this write has let go of it.
            writing.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writing
        elif writing is not None and not writing.cancelled():
            # A write that failed while this task waited for keys, which then ended otherwise
            # (cancelled): its error is not the one raised, but it is retrieved and logged.
            failed = writing.exception()
            if failed is not None and failed is not error:
                log.warning("chunk write failed", error=repr(failed))
        raise
    return results


def _setter(event: asyncio.Event) -> Callable[[object], None]:
    def done(_: object) -> None:
        event.set()

    return done


async def _sealed_beside(
    copied: asyncio.Event | None, chunk: _Chunk, digest: Digest, lead_keys: Keys
) -> SealedAhead:
    """The chunk's new leads decided and sealed on a thread, beside the previous chunk's
    projection: once that chunk's events are in, or its write is over (`copied`).

    On a thread, so that the event loop keeps driving the write meanwhile (a thread takes the
    GIL from it every few milliseconds, where a task would hold it for the whole chunk and leave
    the server idle). After the events' COPY, because this process builds the COPY's rows as it
    streams them: a thread sealing meanwhile took the GIL from it and the server waited for
    rows, while during the projection statement this process has nothing else to do."""
    if copied is not None:
        await copied.wait()
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, _sealed_chunk, chunk, digest, lead_keys)


@dataclass(frozen=True, slots=True)
class _Written:
    """What the chunks of one campaign have refused so far, by the lead's index among the
    campaign's leads, and the keys its inserted leads hold; what the write read as it took its
    locks: the do-not-call registry, and whether live leads of the campaign held numbers."""

    blocked: dict[int, DncBlock]
    duplicates: dict[int, list[int]]
    seen: Seen
    registry: dnc.HeldRegistry
    holding: bool


async def _campaigns_holding(
    conn: Connection, groups: Mapping[int, Sequence[NewLead]]
) -> dict[int, bool]:
    """SELECT_CAMPAIGNS_HOLDING of the campaigns with a lead that checks duplicates."""
    checking = [c for c, leads in groups.items() if any(lead.check_duplicates for lead in leads)]
    if not checking:
        return {}
    rows = await conn.fetch(SELECT_CAMPAIGNS_HOLDING, checking)
    return {row["campaign_id"]: row["holding"] for row in rows}


async def _write_chunk(
    conn: Connection,
    campaign_id: int,
    leads: Sequence[NewLead],
    start: int,
    sealed: SealedAhead,
    digest: Digest,
    written: _Written,
    copied: Callable[[], None] | None = None,
) -> None:
    """Write a chunk sealed ahead, but the leads the do-not-call registry keeps out and the
    duplicates (both checked here, under the campaign lock, on the connection the writes take
    turns on); note those refused in `written`."""
    events = {
        start + i: event
        for i, append in enumerate(sealed.appends)
        for _, event in append.events
        if isinstance(event, LeadInserted)
    }
    registry = await written.registry.blocking(
        conn, (k for e in events.values() for k in e.dedupe_keys)
    )
    kept_out = _blocked(registry, campaign_id, leads, events)
    # As in one batch: a blocked lead is refused as such, not checked as a duplicate.
    order = sorted(events)
    checks = [leads[i].check_duplicates and i not in kept_out for i in order]
    archived = [check and leads[i].check_archived for check, i in zip(checks, order, strict=True)]
    found = await _duplicates(
        conn,
        campaign_id,
        [events[i] for i in order],
        checks,
        archived,
        written.seen,
        [i in kept_out for i in order],
        None if written.holding else {},
    )
    doubles = {order[n]: owners for n, owners in found.items()}
    refused = kept_out.keys() | doubles.keys()
    if refused:
        sealed = sealed.without({stream_of_lead(events[i].lead_id) for i in refused})
        # Their keys went in at the job's start; they will seal nothing.
        await key_store.forget_unused(conn, [lead_subject(events[i].lead_id) for i in refused])
    await record_sealed(conn, sealed, copied)
    marks = _admitted_marks(registry, campaign_id, leads, events, refused)
    if marks:  # after the chunk's LeadInserted events, each at stream version 1
        appends = [
            stream_append(
                leads[i].ctx,
                stream_of_lead(events[i].lead_id),
                1,
                lead_marks,
                account_id=sealed.account_id,
            )
            for i, lead_marks in marks.items()
        ]
        await record(conn, appends, digests={sealed.account_id: digest})
    if refused:
        written.blocked.update(kept_out)
        written.duplicates.update(doubles)
        refusals = _refusals(sealed.account_id, campaign_id, leads, events, doubles, kept_out)
        if refusals:
            await record(conn, refusals, digests={sealed.account_id: digest})


def _admitted_marks(
    registry: dnc.Blocking,
    campaign_id: int,
    leads: Sequence[NewLead],
    events: Mapping[int, LeadInserted],
    refused: Collection[int],
) -> dict[int, list[LeadEvent]]:
    """The do-not-call marks (by index) of leads let in with blocked numbers
    (`blocked_when_all`, `blocked_marked`), to follow their LeadInserted."""
    marks: dict[int, list[LeadEvent]] = {}
    if not registry:
        return marks
    for i, event in events.items():
        if i in refused or not (leads[i].blocked_when_all or leads[i].blocked_marked):
            continue
        blocks = registry.every_block(_blocking_keys(event, leads[i]), campaign_id)
        if blocks:
            marks[i] = dnc_marks.lead_mark_events(event.lead_id, {}, blocks)
    return marks


@dataclass(frozen=True, slots=True)
class _Chunk:
    account_id: int
    campaign_id: int
    leads: Sequence[NewLead]
    lead_ids: Sequence[int]
    keys: Sequence[list[str]]
    region: str | None


def _sealed_chunk(chunk: _Chunk, digest: Digest, stored_keys: Keys) -> SealedAhead:
    events = _decide(
        chunk.account_id, chunk.campaign_id, chunk.leads, chunk.lead_ids, chunk.keys, chunk.region
    )
    appends = _lead_appends(chunk.account_id, chunk.leads, events, {}, {})
    return seal_ahead(appends, chunk.account_id, digest, stored_keys)


def _decide(
    account_id: int,
    campaign_id: int,
    leads: Sequence[NewLead],
    lead_ids: Sequence[int],
    keys: Sequence[list[str]],
    region: str | None,
) -> list[LeadInserted]:
    return [
        decide_insert(
            lead_id=lead_id,
            account_id=account_id,
            campaign_id=campaign_id,
            fields=lead.fields,
            default_region=region,
            keys=lead_keys,
        )
        for lead_id, lead, lead_keys in zip(lead_ids, leads, keys, strict=True)
    ]


def _lead_appends(
    account_id: int,
    leads: Sequence[NewLead],
    events: Sequence[LeadInserted],
    refused: Collection[int],
    marks: Mapping[int, Sequence[LeadEvent]],
) -> list[PendingAppend]:
    """One new stream per inserted lead, with its own request's metadata (and the lead's
    do-not-call marks, by index, after its LeadInserted)."""
    return [
        stream_append(
            leads[i].ctx,
            stream_of_lead(e.lead_id),
            NO_STREAM,
            [e, *marks.get(i, ())],
            account_id=account_id,
        )
        for i, e in enumerate(events)
        if i not in refused
    ]


def _refusals(
    account_id: int,
    campaign_id: int,
    leads: Sequence[NewLead],
    decided: Mapping[int, LeadInserted],
    duplicates: Mapping[int, list[int]],
    blocked: Mapping[int, DncBlock],
) -> list[PendingAppend]:
    """LeadRejected events, one append per rejections stream (one stream per request)."""
    by_stream: dict[str, list[int]] = {}
    for i in sorted(duplicates.keys() | blocked.keys()):
        stream = leads[i].rejections_stream
        if stream:
            by_stream.setdefault(stream, []).append(i)
    appends = []
    for stream, indexes in by_stream.items():
        refusals: list[DomainEvent] = [
            _refusal(account_id, campaign_id, leads, decided, i, duplicates, blocked)
            for i in indexes
        ]
        ctx = leads[indexes[0]].ctx
        appends.append(stream_append(ctx, stream, ANY_VERSION, refusals, account_id=account_id))
    return appends


def _refusal(
    account_id: int,
    campaign_id: int,
    leads: Sequence[NewLead],
    decided: Mapping[int, LeadInserted],
    index: int,
    duplicates: Mapping[int, list[int]],
    blocked: Mapping[int, DncBlock],
) -> LeadRejected:
    row: dict[str, ExtraValue] = {"phone_numbers": ", ".join(decided[index].fields.phone_numbers)}
    block = blocked.get(index)
    if block is not None:
        return LeadRejected(
            account_id=account_id,
            campaign_id=campaign_id,
            reason=DNC_REASON,
            row=row,
            row_number=_row_number(leads, index),
            dnc_entry_id=block.entry_id,
            dnc_scope=block.scope,
        )
    return LeadRejected(
        account_id=account_id,
        campaign_id=campaign_id,
        reason="duplicate phone number in campaign",
        row=row,
        row_number=_row_number(leads, index),
        existing_lead_ids=duplicates[index],
    )


def _row_number(leads: Sequence[NewLead], index: int) -> int:
    """1-based position of the lead among those of its own request (its rejections stream)."""
    stream = leads[index].rejections_stream
    return sum(1 for lead in leads[: index + 1] if lead.rejections_stream == stream)


@dataclass(slots=True)
class Seen:
    """The dedupe keys the leads inserted so far by this batch hold (key -> the first lead to
    hold it), and the ids drawn for the batch: a batch written chunk by chunk has projected its
    earlier chunks, and their leads must count as the batch's earlier leads (`earlier`), not
    as leads that were live before it (`found`), exactly as in one write."""

    keys: dict[str, int] = field(default_factory=dict)
    own: frozenset[int] = frozenset()


async def _duplicates(
    conn: Connection,
    campaign_id: int,
    decided: Sequence[LeadInserted],
    checks: Sequence[bool],
    archived: Sequence[bool],
    seen: Seen,
    blocked: Sequence[bool],
    read: Mapping[str, list[int]] | None = None,
) -> dict[int, list[int]]:
    """The leads (by index) that duplicate live (or archived) leads of the campaign, or an
    earlier lead of the batch. `read`: the live holders of (at least) the checked keys, when
    already read with the do-not-call entries (`{}`: the campaign held no number before the
    batch, whose own leads `seen` knows)."""
    keys = sorted(
        {key for e, check in zip(decided, checks, strict=True) if check for key in e.dedupe_keys}
    )
    owners = (
        dict(read)
        if read is not None
        else await _owners(conn, SELECT_PHONE_OWNERS, campaign_id, keys)
    )
    if seen.own:
        owners = {
            key: kept
            for key, leads in owners.items()
            if (kept := [n for n in leads if n not in seen.own])
        }
    archived_keys = sorted(
        {key for e, check in zip(decided, archived, strict=True) if check for key in e.dedupe_keys}
    )
    archived_owners = (
        await _owners(conn, SELECT_ARCHIVED_OWNERS, campaign_id, archived_keys)
        if archived_keys
        else {}
    )
    duplicates: dict[int, list[int]] = {}
    seen_in_batch = seen.keys
    for i, event in enumerate(decided):
        if checks[i]:
            holders = [owners, archived_owners] if archived[i] else [owners]
            found = sorted(
                {
                    lead
                    for key in event.dedupe_keys
                    for held in holders
                    for lead in held.get(key, [])
                }
            )
            earlier = [seen_in_batch[key] for key in event.dedupe_keys if key in seen_in_batch]
            if found or earlier:
                duplicates[i] = found or sorted(set(earlier))
                continue
        if blocked[i]:
            continue  # kept out by the do-not-call list: never inserted, it holds no number
        for key in event.dedupe_keys:
            seen_in_batch.setdefault(key, event.lead_id)
    return duplicates


async def _blocking_and_owners(
    conn: Connection,
    account_id: int,
    digest: Digest,
    keys: Sequence[str],
    groups: Mapping[int, Sequence[NewLead]],
    decided: Mapping[int, Sequence[LeadInserted]],
) -> tuple[dnc.Blocking, dict[int, dict[str, list[int]]]]:
    """The do-not-call entries of every key of the write, and, for a write to one campaign, the
    live holders of the keys its leads check, in one statement (by campaign); a write to
    several campaigns reads the holders of each as it checks it."""
    if len(groups) != 1:
        return await dnc.blocking(conn, account_id, digest, keys), {}
    [(campaign_id, leads)] = groups.items()
    checked = sorted(
        {
            key
            for lead, event in zip(leads, decided[campaign_id], strict=True)
            if lead.check_duplicates
            for key in event.dedupe_keys
        }
    )
    if not checked:
        return await dnc.blocking(conn, account_id, digest, keys), {}
    by_digest = dnc.digested(digest, keys)
    rows = await conn.fetch(
        SELECT_BLOCKING_AND_OWNERS, account_id, list(by_digest), campaign_id, checked
    )
    owners: dict[str, list[int]] = {}
    for row in rows:
        if row["lead_id"] is not None:
            owners.setdefault(row["value"], []).append(row["lead_id"])
    for holders in owners.values():
        holders.sort()  # as SELECT_PHONE_OWNERS orders them: a UNION ALL keeps no order
    registry = dnc.blocking_of((row for row in rows if row["lead_id"] is None), by_digest)
    return registry, {campaign_id: owners}


async def _owners(
    conn: Connection, query: str, campaign_id: int, keys: Sequence[str]
) -> dict[str, list[int]]:
    """Lead ids by dedupe key, from `query` (live or archived holders in the campaign); no
    query for no keys (a chunk none of whose leads checks)."""
    owners: dict[str, list[int]] = {}
    if not keys:
        return owners
    for row in await conn.fetch(query, campaign_id, keys):
        owners.setdefault(row["value"], []).append(row["lead_id"])
    return owners
