"""The do-not-call registry of an account: entries added, changed and removed as events on
their own streams, and the check every path that sets a lead's numbers asks (docs/dnc.md).

An entry blocks when it is Active and not expired (`expires_at` compared with the database's
now, so an entry expires without any job running), for every campaign of the account or for
its one campaign. Numbers are matched by the keyed digest of their dedupe key, as the log
stores dedupe keys. Writes take the campaign locks the entry covers (every campaign of the
account for an account-wide entry), the locks inserts take before their duplicate check, so a
check sees every entry committed before its write began.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Final, Literal, NamedTuple

import asyncpg
import msgspec

from lead_ledger.ledger import key_store
from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.dnc_events import (
    DncNumberAdded,
    DncNumberChanged,
    DncNumberRemoved,
    DncScope,
    DncStatus,
    dnc_subject,
    stream_of_dnc,
)
from lead_ledger.ledger.envelope import ANY_VERSION, NO_STREAM
from lead_ledger.ledger.errors import LedgerError
from lead_ledger.ledger.events import DomainEvent, LeadEvent, LeadUpdated
from lead_ledger.ledger.lead import LeadState
from lead_ledger.ledger.locks import lock_campaigns
from lead_ledger.ledger.phones import dedupe_key, digits_only
from lead_ledger.ledger.subject_keys import Digest
from lead_ledger.ledger.subject_lookup import MIN_PHONE_DIGITS, phone_tokens
from lead_ledger.service import dnc_marks
from lead_ledger.service.account_reads import default_region
from lead_ledger.service.campaign_locks import lock_every_campaign, retried_until_locked
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.writer import (
    Context,
    SealedAhead,
    account_digest,
    record,
    record_sealed,
    seal_ahead,
    stream_append,
)

MAX_ENTRIES: Final = 10_000
MAX_PHONE_DIGITS: Final = 15  # E.164's longest
_PHONE: Final = re.compile(r"\+?[0-9 ()./-]+")

SELECT_CAMPAIGNS: Final = "SELECT campaign_id, name FROM campaigns WHERE account_id = $1"
NEXT_ENTRY_IDS: Final = "SELECT array(SELECT nextval('dnc_entry_ids') FROM generate_series(1, $1))"
SELECT_SAME_SCOPE: Final = """
SELECT digest, campaign_id FROM dnc
WHERE account_id = $1 AND digest = ANY($2::text[])
"""
_COLUMNS: Final = """
d.entry_id, d.number, c.name AS campaign, d.status, d.expires_at, d.source, d.added_at,
d.changed_at,
d.status = 'Active' AND (d.expires_at IS NULL OR d.expires_at > now()) AS blocking
"""
SELECT_ENTRIES_OF: Final = f"""
SELECT d.campaign_id, {_COLUMNS} FROM dnc d LEFT JOIN campaigns c USING (campaign_id)
WHERE d.account_id = $1 AND d.entry_id = ANY($2::bigint[])
ORDER BY d.entry_id
"""
SELECT_ENTRY: Final = f"""
SELECT d.campaign_id, {_COLUMNS} FROM dnc d LEFT JOIN campaigns c USING (campaign_id)
WHERE d.account_id = $1 AND d.entry_id = $2
"""
SELECT_ENTRIES: Final = f"""
SELECT {_COLUMNS} FROM dnc d LEFT JOIN campaigns c USING (campaign_id)
WHERE d.entry_id = ANY($1::bigint[]) ORDER BY d.entry_id
"""
# The check: one index probe per number; account-wide entries and the campaign's own.
SELECT_BLOCKING: Final = f"""
SELECT d.digest, {_COLUMNS} FROM dnc d LEFT JOIN campaigns c USING (campaign_id)
WHERE d.account_id = $1 AND d.digest = ANY($2::text[])
  AND (d.campaign_id IS NULL OR d.campaign_id = $3)
  AND d.status = 'Active' AND (d.expires_at IS NULL OR d.expires_at > now())
ORDER BY d.entry_id
"""
# A view row's blocked dedupe keys, for reads that flag numbers (jtel's bPhoneNumberNInvalid):
# a subquery over a `leads` row named `l`.
BLOCKED_KEYS_OF_LEAD: Final = """
ARRAY(SELECT d.number FROM dnc d
      WHERE d.account_id = l.account_id AND d.number = ANY(l.dedupe_keys)
        AND (d.campaign_id IS NULL OR d.campaign_id = l.campaign_id)
        AND d.status = 'Active' AND (d.expires_at IS NULL OR d.expires_at > now()))
"""
# What inserts ask: the Active, unexpired entries of these digests, in entry order.
SELECT_BLOCKING_DIGESTS: Final = """
SELECT digest, entry_id, campaign_id, expires_at FROM dnc
WHERE account_id = $1 AND digest = ANY($2::text[])
  AND status = 'Active' AND (expires_at IS NULL OR expires_at > now())
ORDER BY entry_id
"""
SELECT_PAGE: Final = f"""
SELECT {_COLUMNS} FROM dnc d LEFT JOIN campaigns c USING (campaign_id)
WHERE d.account_id = $1 AND d.entry_id > $2
  AND ($3::bigint IS NULL OR d.campaign_id = $3)
  AND ($4::text IS NULL OR d.digest = $4)
  AND ($5::text IS NULL OR d.status = $5)
ORDER BY d.entry_id
LIMIT $6
"""


DncFault = Literal["batch", "number", "campaign", "exists"]


class DncError(LedgerError):
    """A registry request refused: `index` is the entry (0-based) of a batch, when one is at
    fault; `field` the field; `fault` what is wrong (each dialect words it its own way)."""

    def __init__(
        self,
        message: str,
        *,
        index: int | None = None,
        field: str | None = None,
        fault: DncFault = "batch",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.index = index
        self.field = field
        self.fault = fault


class DncNotFoundError(DncError):
    """No such entry in this account."""


class NewDncEntry(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A number to keep from being called: in every campaign, or in `campaign` (its name)."""

    phone: str
    campaign: str | None = None
    status: DncStatus = "Active"
    expires_at: datetime | None = None


class DncEntry(msgspec.Struct, frozen=True, kw_only=True):
    """An entry as listed: its number as a dedupe key, its scope (`campaign` null: every
    campaign), and whether it blocks now."""

    entry_id: int
    phone: str
    campaign: str | None
    status: DncStatus
    expires_at: datetime | None
    blocking: bool
    source: str
    added_at: datetime
    changed_at: datetime


class DncCheck(msgspec.Struct, frozen=True, kw_only=True):
    """Whether a number is blocked (in a campaign, or in every one), and by which entries."""

    phone: str
    blocked: bool
    entries: list[DncEntry]


class DncBlock(msgspec.Struct, frozen=True, kw_only=True):
    """The entry that keeps a lead out: account-wide (`campaign_id` None) or its campaign's."""

    entry_id: int
    campaign_id: int | None
    expires_at: datetime | None = None

    @property
    def scope(self) -> DncScope:
        return "account" if self.campaign_id is None else "campaign"


class Blocking:
    """The registry's blocking entries for a batch's dedupe keys, read once under its locks."""

    def __init__(self, entries: dict[str, list[DncBlock]]) -> None:
        self._entries = entries

    def __bool__(self) -> bool:
        """Whether any key has an entry: an empty registry blocks and marks nothing."""
        return bool(self._entries)

    def block(self, dedupe_keys: Sequence[str], campaign_id: int) -> DncBlock | None:
        """What blocks a lead with these keys in this campaign: an account-wide entry before a
        campaign's (so a client is told "globally" when both apply), the oldest first."""
        found = [
            entry
            for key in dedupe_keys
            for entry in self._entries.get(key, ())
            if entry.campaign_id is None or entry.campaign_id == campaign_id
        ]
        if not found:
            return None
        return min(found, key=lambda e: (e.campaign_id is not None, e.entry_id))

    def of_key(self, dedupe_key: str) -> list[DncBlock]:
        """Every blocking entry of one number, account-wide and every campaign's."""
        return list(self._entries.get(dedupe_key, ()))

    def every_block(self, dedupe_keys: Sequence[str], campaign_id: int) -> list[DncBlock]:
        """Every entry that blocks one of these keys in this campaign, in entry order: the
        entries that mark a lead loaded with them (docs/dnc.md, "Marked leads")."""
        found = {
            entry.entry_id: entry
            for key in dedupe_keys
            for entry in self._entries.get(key, ())
            if entry.campaign_id is None or entry.campaign_id == campaign_id
        }
        return [found[entry_id] for entry_id in sorted(found)]

    def block_all(self, dedupe_keys: Sequence[str], campaign_id: int) -> DncBlock | None:
        """For a lead whose numbers are flagged one by one (jtel): blocked only when every
        number is; the entry that blocks the first."""
        if not dedupe_keys or any(self.block([k], campaign_id) is None for k in dedupe_keys):
            return None
        return self.block(dedupe_keys[:1], campaign_id)


async def blocking(
    conn: Connection, account_id: int, digest: Digest, dedupe_keys: Iterable[str]
) -> Blocking:
    """The blocking entries of these keys (one indexed probe each), for `Blocking.block`. Run
    it under the campaign locks of the write, so it sees every entry committed before."""
    by_digest = digested(digest, dedupe_keys)
    if not by_digest:
        return Blocking({})
    rows = await conn.fetch(SELECT_BLOCKING_DIGESTS, account_id, list(by_digest))
    return blocking_of(rows, by_digest)


def digested(digest: Digest, dedupe_keys: Iterable[str]) -> dict[str, str]:
    """Each key by its digest: what SELECT_BLOCKING_DIGESTS looks up ($2, the dict's keys)."""
    by_digest: dict[str, str] = {}
    for key in dedupe_keys:
        by_digest.setdefault(digest(key), key)
    return by_digest


# The entries that can block leads of these campaigns ($2) of an account: account-wide ones and
# theirs, as SELECT_BLOCKING_DIGESTS filters them; no more than $3. No ORDER BY, so that an
# account with a long registry stops at the limit instead of sorting all of it.
SELECT_CAMPAIGNS_BLOCKING: Final = """
SELECT digest, entry_id, campaign_id, expires_at FROM dnc
WHERE account_id = $1 AND (campaign_id IS NULL OR campaign_id = ANY($2::bigint[]))
  AND status = 'Active' AND (expires_at IS NULL OR expires_at > now())
LIMIT $3
"""
# Up to this many blocking entries, a long write reads them all once instead of probing the
# registry for each chunk's keys (~7 ms a chunk of 4,096 leads, on the write's critical path).
HELD_AT_MOST: Final = 10_000


class HeldRegistry:
    """The registry as a long write (one transaction, chunk by chunk, under its campaigns'
    locks) checks it: read whole at its start when few entries can block its campaigns, so
    that its chunks are checked in memory (none at all when no entry can block); probed chunk
    by chunk otherwise. Exact either way: entry writes take the same campaign locks, and `now()`
    is the transaction's start, so no entry starts or stops blocking while the write runs."""

    def __init__(
        self, account_id: int, digest: Digest, held: dict[str, list[asyncpg.Record]] | None
    ) -> None:
        self._account_id = account_id
        self._digest = digest
        self._held = held

    @classmethod
    async def read(
        cls, conn: Connection, account_id: int, campaign_ids: Sequence[int], digest: Digest
    ) -> HeldRegistry:
        """Read under the write's locks, before its first chunk."""
        rows = await conn.fetch(
            SELECT_CAMPAIGNS_BLOCKING, account_id, list(campaign_ids), HELD_AT_MOST + 1
        )
        if len(rows) > HELD_AT_MOST:
            return cls(account_id, digest, None)
        held: dict[str, list[asyncpg.Record]] = {}
        for row in sorted(rows, key=lambda r: r["entry_id"]):  # SELECT_BLOCKING_DIGESTS's order
            held.setdefault(row["digest"], []).append(row)
        return cls(account_id, digest, held)

    async def blocking(self, conn: Connection, dedupe_keys: Iterable[str]) -> Blocking:
        """`blocking` of these keys, for one chunk of the write."""
        if self._held is None:
            return await blocking(conn, self._account_id, self._digest, dedupe_keys)
        if not self._held:
            return Blocking({})
        held = self._held
        by_digest = digested(self._digest, dedupe_keys)
        return blocking_of((row for d in by_digest for row in held.get(d, ())), by_digest)


def blocking_of(rows: Iterable[asyncpg.Record], by_digest: Mapping[str, str]) -> Blocking:
    """`Blocking` from the rows of SELECT_BLOCKING_DIGESTS (or a statement that includes it)."""
    entries: dict[str, list[DncBlock]] = {}
    for row in rows:
        block = DncBlock(
            entry_id=row["entry_id"],
            campaign_id=row["campaign_id"],
            expires_at=row["expires_at"],
        )
        entries.setdefault(by_digest[row["digest"]], []).append(block)
    return Blocking(entries)


class CheckedUpdates(NamedTuple):
    """What the registry says of an update: the leads it must leave as they were (by id, with
    the entry that blocks them), and for the others the do-not-call marks their new numbers
    bring or drop (events to append after the update's own)."""

    blocked: dict[int, DncBlock]
    marks: dict[int, list[LeadEvent]]


async def check_updates(
    conn: Connection,
    account_id: int,
    changes: Mapping[int, tuple[LeadState, Sequence[DomainEvent]]],
    *,
    when_all: bool = False,
    marked: bool = False,
) -> CheckedUpdates:
    """The leads (by id; each with its state and the events an update decided) that the update
    would give a number the registry blocks in their campaign, checked as an insert is
    (`when_all`: only when every number of the lead would be blocked; `marked`: never, the
    lead is marked instead), and the marks of the rest. Run it under the campaign locks of the
    update."""
    new_keys = {
        lead_id: event.dedupe_keys
        for lead_id, (_, events) in changes.items()
        for event in events
        if isinstance(event, LeadUpdated) and event.dedupe_keys is not None
    }
    if not new_keys:
        return CheckedUpdates(blocked={}, marks={})
    digest = await account_digest(conn, account_id)
    registry = await blocking(conn, account_id, digest, (k for ks in new_keys.values() for k in ks))
    numbers = await dnc_marks.entry_numbers(
        conn, (entry_id for lead_id in new_keys for entry_id in changes[lead_id][0].dnc_marks)
    )
    checked = CheckedUpdates(blocked={}, marks={})
    for lead_id, keys in new_keys.items():
        state = changes[lead_id][0]
        if marked:
            block = None
        elif when_all:
            block = registry.block_all(keys, state.campaign_id)
        else:
            block = registry.block(keys, state.campaign_id)
        if block is not None:
            checked.blocked[lead_id] = block
            continue
        marks = dnc_marks.lead_mark_events(
            lead_id,
            state.dnc_marks,
            registry.every_block(keys, state.campaign_id),
            dropped=(e for e in state.dnc_marks if numbers.get(e) not in keys),
        )
        if marks:
            checked.marks[lead_id] = marks
    return checked


def valid_number(phone: str) -> bool:
    """A number a registry entry can hold: phone characters only, 6 to 15 digits."""
    text = phone.strip()
    return (
        bool(_PHONE.fullmatch(text))
        and MIN_PHONE_DIGITS <= len(digits_only(text)) <= MAX_PHONE_DIGITS
    )


def _entry(row: asyncpg.Record) -> DncEntry:
    return DncEntry(
        entry_id=row["entry_id"],
        phone=row["number"],
        campaign=row["campaign"],
        status=row["status"],
        expires_at=row["expires_at"],
        blocking=row["blocking"],
        source=row["source"],
        added_at=row["added_at"],
        changed_at=row["changed_at"],
    )


async def add_entries(
    conn: Connection,
    ctx: Context,
    account_id: int,
    entries: Sequence[NewDncEntry],
    *,
    skip_listed: bool = False,
) -> list[DncEntry]:
    """Add every entry or none: the first entry at fault refuses the batch (DncError with its
    index). A number already in the same scope (the account, or that campaign), in the
    registry or earlier in the batch, is at fault; with `skip_listed` it is left out instead
    (an import that runs again adds what it did not add before). Returns the entries added."""
    entry_ids = await add_numbers(conn, ctx, account_id, entries, skip_listed=skip_listed)
    if not entry_ids:
        return []
    return [_entry(row) for row in await conn.fetch(SELECT_ENTRIES, entry_ids)]


async def add_numbers(
    conn: Connection,
    ctx: Context,
    account_id: int,
    entries: Sequence[NewDncEntry],
    *,
    skip_listed: bool = False,
) -> list[int]:
    """`add_entries`, answering only the ids of the entries added."""
    campaigns = await campaigns_by_name(conn, account_id)
    region = await default_region(conn, account_id)
    scoped = scope_entries(entries, campaigns, region)
    digest = await account_digest(conn, account_id)
    entry_ids = await draw_entry_ids(conn, len(entries))
    prepared = prepare_entries(ctx, account_id, entries, scoped, digest, entry_ids)
    return await write_prepared(conn, ctx, prepared, skip_listed=skip_listed)


class PreparedEntries(NamedTuple):
    """A batch of entries as events, sealed before their transaction (`prepare_entries`)."""

    account_id: int
    scoped: list[tuple[str, int | None]]
    digests: list[str]
    entry_ids: list[int]
    sealed: SealedAhead


async def draw_entry_ids(conn: Connection, count: int) -> list[int]:
    """Ids for a batch's entries, drawn before it is prepared: those of entries it leaves out
    (numbers already listed) are never used, as a sequence's ids may not be."""
    entry_ids: list[int] = await conn.fetchval(NEXT_ENTRY_IDS, count)
    return entry_ids


def scope_entries(
    entries: Sequence[NewDncEntry],
    campaigns: dict[str, int],
    region: str | None,
    keys: Sequence[str] | None = None,
) -> list[tuple[str, int | None]]:
    """Each entry's number as a dedupe key and its campaign id (None: every campaign), checked
    (DncError with the index of the first at fault). `keys`: the dedupe keys, in order, when
    the caller computed them already (an import does, in worker processes)."""
    if not entries:
        raise DncError("give at least one entry")
    if len(entries) > MAX_ENTRIES:
        raise DncError(f"at most {MAX_ENTRIES:,} entries at once")
    if keys is not None and len(keys) != len(entries):
        raise ValueError(f"{len(keys)} keys for {len(entries)} entries")
    return _scoped(entries, campaigns, region, keys)


def prepare_entries(
    ctx: Context,
    account_id: int,
    entries: Sequence[NewDncEntry],
    scoped: list[tuple[str, int | None]],
    digest: Digest,
    entry_ids: list[int],
) -> PreparedEntries:
    """The entries' DncNumberAdded events, sealed: no database, so that an import prepares
    its next batch (on a thread) while the server writes this one."""
    digests = [digest(number) for number, _ in scoped]
    appends = [
        stream_append(
            ctx,
            stream_of_dnc(entry_id),
            NO_STREAM,
            [
                DncNumberAdded(
                    entry_id=entry_id,
                    account_id=account_id,
                    campaign_id=campaign_id,
                    number=number,
                    digest=hashed,
                    status=entry.status,
                    expires_at=entry.expires_at,
                    source=ctx.actor.dialect,
                )
            ],
            account_id=account_id,
        )
        for entry_id, entry, (number, campaign_id), hashed in zip(
            entry_ids, entries, scoped, digests, strict=True
        )
    ]
    sealed = seal_ahead(appends, account_id, digest)
    return PreparedEntries(account_id, scoped, digests, entry_ids, sealed)


async def write_prepared(
    conn: Connection,
    ctx: Context,
    prepared: PreparedEntries,
    *,
    skip_listed: bool,
) -> list[int]:
    """Write a prepared batch, all or nothing, under the locks of the campaigns it covers;
    the ids of the entries added. Which numbers are already listed is decided here, under the
    locks; with `skip_listed` those entries are left out, else the first refuses the batch."""
    return await retried_until_locked(
        conn, lambda: _write_prepared(conn, ctx, prepared, skip_listed=skip_listed)
    )


async def _write_prepared(
    conn: Connection, ctx: Context, prepared: PreparedEntries, *, skip_listed: bool
) -> list[int]:
    scoped, account_id = prepared.scoped, prepared.account_id
    async with write_transaction(conn):
        if any(campaign_id is None for _, campaign_id in scoped):
            await lock_every_campaign(conn, account_id)
        else:
            await lock_campaigns(conn, {c for _, c in scoped if c is not None})
        taken = {
            (row["digest"], row["campaign_id"])
            for row in await conn.fetch(
                SELECT_SAME_SCOPE, account_id, sorted(set(prepared.digests))
            )
        }
        kept = _unlisted(scoped, prepared.digests, taken, skip_listed=skip_listed)
        if not kept:
            return []
        entry_ids = [prepared.entry_ids[index] for index in kept]
        left_out = set(prepared.entry_ids) - set(entry_ids)
        sealed = prepared.sealed
        if left_out:
            sealed = sealed.without({stream_of_dnc(entry_id) for entry_id in left_out})
        await record_sealed(conn, sealed)
        await dnc_marks.mark_new_entries(conn, ctx, account_id, entry_ids)
    return entry_ids


def _scoped(
    entries: Sequence[NewDncEntry],
    campaigns: dict[str, int],
    region: str | None,
    keys: Sequence[str] | None,
) -> list[tuple[str, int | None]]:
    """Each entry's number as a dedupe key (`keys`' when given) and its campaign id (None:
    every campaign)."""
    scoped: list[tuple[str, int | None]] = []
    for index, entry in enumerate(entries):
        if not valid_number(entry.phone):
            raise DncError(
                f"{entry.phone!r} is not a phone number", index=index, field="phone", fault="number"
            )
        campaign_id = None
        if entry.campaign is not None:
            campaign_id = campaigns.get(entry.campaign)
            if campaign_id is None:
                raise DncError(
                    f"no campaign {entry.campaign!r}",
                    index=index,
                    field="campaign",
                    fault="campaign",
                )
        key = dedupe_key(entry.phone, region) if keys is None else keys[index]
        scoped.append((key, campaign_id))
    return scoped


def _unlisted(
    scoped: Sequence[tuple[str, int | None]],
    digests: Sequence[str],
    taken: set[tuple[str, int | None]],
    *,
    skip_listed: bool,
) -> list[int]:
    """The entries (by index) whose number is not yet in their scope, nor earlier in the batch;
    DncError for the first that is, unless `skip_listed`."""
    kept: list[int] = []
    for index, ((number, campaign_id), hashed) in enumerate(zip(scoped, digests, strict=True)):
        if (hashed, campaign_id) in taken:
            if skip_listed:
                continue
            raise DncError(
                f"{number} is already in this scope", index=index, field="phone", fault="exists"
            )
        taken.add((hashed, campaign_id))
        kept.append(index)
    return kept


async def _locked_entries(
    conn: Connection, account_id: int, entry_ids: Sequence[int]
) -> list[asyncpg.Record]:
    """The account's entries among these, read again under the locks of the campaigns they
    cover (every campaign for an account-wide one, `lock_every_campaign`)."""
    rows = await conn.fetch(SELECT_ENTRIES_OF, account_id, list(entry_ids))
    if any(row["campaign_id"] is None for row in rows):
        await lock_every_campaign(conn, account_id)
    else:
        await lock_campaigns(conn, [row["campaign_id"] for row in rows])
    return list(await conn.fetch(SELECT_ENTRIES_OF, account_id, list(entry_ids)))


async def _locked_entry(conn: Connection, account_id: int, entry_id: int) -> asyncpg.Record:
    rows = await _locked_entries(conn, account_id, [entry_id])
    if not rows:
        raise DncNotFoundError("no such entry in this account")
    return rows[0]


async def change_entry(
    conn: Connection,
    ctx: Context,
    account_id: int,
    entry_id: int,
    *,
    status: DncStatus | None = None,
    expires_at: datetime | msgspec.UnsetType | None = msgspec.UNSET,
) -> DncEntry:
    """Set an entry's status and/or expiry (`expires_at` None: never expires)."""
    return await retried_until_locked(
        conn, lambda: _change_entry(conn, ctx, account_id, entry_id, status, expires_at)
    )


async def _change_entry(
    conn: Connection,
    ctx: Context,
    account_id: int,
    entry_id: int,
    status: DncStatus | None,
    expires_at: datetime | msgspec.UnsetType | None,
) -> DncEntry:
    async with write_transaction(conn):
        row = await _locked_entry(conn, account_id, entry_id)
        event = DncNumberChanged(
            entry_id=entry_id,
            account_id=account_id,
            status=status or row["status"],
            expires_at=row["expires_at"] if expires_at is msgspec.UNSET else expires_at,
        )
        # A change to what the entry holds already records nothing: a client that sends its
        # PATCH again (a retry) leaves one event, as one change was made.
        if (event.status, event.expires_at) != (row["status"], row["expires_at"]):
            append = stream_append(
                ctx, stream_of_dnc(entry_id), ANY_VERSION, [event], account_id=account_id
            )
            await record(conn, [append])
            await dnc_marks.follow_entries(conn, ctx, account_id, [entry_id])
        changed = await conn.fetchrow(SELECT_ENTRY, account_id, entry_id)
    if changed is None:  # the view folds the change into the row it read above
        raise RuntimeError(f"dnc entry {entry_id} is gone after its change")
    return _entry(changed)


async def remove_entry(conn: Connection, ctx: Context, account_id: int, entry_id: int) -> None:
    """Take an entry out of the registry (`remove_entries`); DncNotFoundError when it is not
    the account's."""
    if not await remove_entries(conn, ctx, account_id, [entry_id]):
        raise DncNotFoundError("no such entry in this account")


async def remove_entries(
    conn: Connection, ctx: Context, account_id: int, entry_ids: Sequence[int]
) -> list[int]:
    """Take entries out of the registry, in one transaction; returns those removed (the
    account's, still there). Their numbers leave the view, so their digests are recorded for
    an erasure to find them by (docs/erasure.md): only then can a person's number be erased
    from the log for good."""
    return await retried_until_locked(
        conn, lambda: _remove_entries(conn, ctx, account_id, entry_ids)
    )


async def _remove_entries(
    conn: Connection, ctx: Context, account_id: int, entry_ids: Sequence[int]
) -> list[int]:
    async with write_transaction(conn):
        rows = await _locked_entries(conn, account_id, entry_ids)
        if not rows:
            return []
        region = await default_region(conn, account_id)
        digest = await account_digest(conn, account_id)
        await key_store.add_lookup(
            conn,
            account_id,
            {
                dnc_subject(row["entry_id"]): map(
                    digest, {row["number"], *phone_tokens(row["number"], region)}
                )
                for row in rows
            },
        )
        appends = [
            stream_append(
                ctx,
                stream_of_dnc(row["entry_id"]),
                ANY_VERSION,
                [DncNumberRemoved(entry_id=row["entry_id"], account_id=account_id)],
                account_id=account_id,
            )
            for row in rows
        ]
        await record(conn, appends)
        await dnc_marks.follow_entries(conn, ctx, account_id, [row["entry_id"] for row in rows])
    return [row["entry_id"] for row in rows]


SELECT_BY_DIGESTS: Final = """
SELECT digest, entry_id, campaign_id FROM dnc
WHERE account_id = $1 AND digest = ANY($2::text[])
ORDER BY entry_id
"""


async def entries_holding(
    conn: Connection, account_id: int, phones: Sequence[str]
) -> list[list[DncBlock]]:
    """For each number (any spelling), every entry that holds it, in one query."""
    region = await default_region(conn, account_id)
    digest = await account_digest(conn, account_id)
    hashed = [digest(dedupe_key(phone, region)) for phone in phones]
    held: dict[str, list[DncBlock]] = {}
    for row in await conn.fetch(SELECT_BY_DIGESTS, account_id, sorted(set(hashed))):
        block = DncBlock(entry_id=row["entry_id"], campaign_id=row["campaign_id"])
        held.setdefault(row["digest"], []).append(block)
    return [held.get(h, []) for h in hashed]


async def campaigns_by_name(conn: Connection, account_id: int) -> dict[str, int]:
    """The account's campaigns: name to id."""
    return {r["name"]: r["campaign_id"] for r in await conn.fetch(SELECT_CAMPAIGNS, account_id)}


async def check(conn: Connection, account_id: int, phone: str, campaign_id: int | None) -> DncCheck:
    """Whether the number is blocked now, account-wide or in the campaign (None: account-wide
    entries only), and by which entries."""
    number = dedupe_key(phone, await default_region(conn, account_id))
    digest = await account_digest(conn, account_id)
    rows = await conn.fetch(SELECT_BLOCKING, account_id, [digest(number)], campaign_id)
    entries = [_entry(row) for row in rows]
    return DncCheck(phone=number, blocked=bool(entries), entries=entries)


async def list_entries(
    conn: Connection,
    account_id: int,
    *,
    campaign_id: int | None = None,
    phone: str | None = None,
    status: DncStatus | None = None,
    limit: int = 100,
    after: int = 0,
) -> list[DncEntry]:
    """A page of the registry in entry order (keyset: pass the last entry id as `after`)."""
    hashed = None
    if phone is not None:
        digest = await account_digest(conn, account_id)
        hashed = digest(dedupe_key(phone, await default_region(conn, account_id)))
    rows = await conn.fetch(SELECT_PAGE, account_id, after, campaign_id, hashed, status, limit)
    return [_entry(row) for row in rows]
