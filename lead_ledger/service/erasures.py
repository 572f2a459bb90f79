"""Erasure: every subject of an account that a phone number, a lead id or a user_data names,
crypto-shredded in one transaction (docs/erasure.md).

The subjects are found by the digests the key store holds for them (live, archived and deleted
leads, refused rows, jobs' rejected rows, in every campaign). Under the campaign locks of the
leads among them, each lead gets a terminal LeadErased (the views drop its rows), each job with
erased rows a JobRowsErased (the job views drop the rows' cells), the erasure itself a
SubjectErased with no personal data, every stored export file of the account goes (when leads
are erased), and then the subjects' keys are destroyed, so what the log holds of them can never
be opened again.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Final

import msgspec

from lead_ledger.ledger import key_store, subject_keys
from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.envelope import ANY_VERSION, NO_STREAM, Actor, RecordedEvent
from lead_ledger.ledger.events import (
    ErasureBy,
    LeadErased,
    SubjectErased,
    stream_of_erasure,
    stream_of_lead,
)
from lead_ledger.ledger.job_events import JobRowsErased, stream_of_job
from lead_ledger.ledger.locks import lock_campaigns
from lead_ledger.ledger.phones import dedupe_key, digits_only
from lead_ledger.ledger.sealing import lead_subject
from lead_ledger.ledger.store import read_stream
from lead_ledger.ledger.subject_lookup import MIN_PHONE_DIGITS, phone_tokens, user_data_token
from lead_ledger.projections.jobs import erased_rows
from lead_ledger.service.account_reads import default_region
from lead_ledger.service.campaign_locks import LocksOutgrown, retried_until_locked
from lead_ledger.service.exports import remove_account_files
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.writer import (
    Context,
    PendingAppend,
    contact_tokens,
    record,
    stream_append,
)

SELECT_LIVE: Final = """
SELECT DISTINCT c.lead_id FROM contacts c
JOIN campaigns k ON k.campaign_id = c.campaign_id
WHERE k.account_id = $1 AND c.kind = $2 AND c.value = ANY($3::text[])
"""
SELECT_SUBJECT: Final = """
SELECT subject_id FROM subject_keys
WHERE subject_id = $1 AND account_id = $2 AND wrapped_key IS NOT NULL
"""
# What a lead's refusals can share with it: its values in the views (writer.contact_tokens), and
# the digests of those that left them (old numbers, a deleted lead's).
SELECT_LEAD_DIGESTS: Final = """
SELECT digest FROM subject_lookup WHERE subject_id = $1 AND account_id = $2
"""
# Of those refusals, the ones that name the lead as the live lead they duplicate (ids are clear
# in a LeadRejected; only its row is sealed).
SELECT_REFUSALS_OF: Final = """
SELECT 'refused-' || event_id AS subject_id FROM events
WHERE event_id = ANY($1::uuid[]) AND account_id = $2 AND type = 'LeadRejected'
  AND data->'existing_lead_ids' @> jsonb_build_array($3::bigint)
"""
# Of the jobs' rejected rows found so, the ones refused as duplicates of the lead.
SELECT_REJECTED_OF: Final = """
SELECT 'rejected-' || j.job_id || '-' || (r->>'row_number') AS subject_id
FROM jobs j, jsonb_array_elements(j.rejected_rows) r
WHERE j.job_id = ANY($1::bigint[]) AND j.account_id = $2
  AND r->'existing_lead_ids' @> jsonb_build_array($3::bigint)
"""
# The campaigns whose writers could touch these leads: a live lead's, an archived copy's.
SELECT_CAMPAIGNS: Final = """
SELECT campaign_id FROM leads WHERE lead_id = ANY($1::bigint[])
UNION SELECT campaign_id FROM lead_archive WHERE lead_id = ANY($1::bigint[])
"""


# Callbacks not delivered yet carry the generic body's rejected rows as sent.
SELECT_PENDING_BODIES: Final = """
SELECT job_id, body FROM callback_outbox
WHERE job_id = ANY($1::bigint[]) AND delivered_at IS NULL AND abandoned_at IS NULL
  AND jsonb_typeof(body::jsonb->'rejected_rows') = 'array'
FOR UPDATE
"""
UPDATE_BODY: Final = "UPDATE callback_outbox SET body = $2 WHERE job_id = $1"
# The jobs' callback rows, locked before the erasure's first write: the dispatcher appends its
# CallbackAttempted to the same job streams under these rows' locks, and two appends to one
# stream at once would both take its next version.
LOCK_CALLBACKS: Final = """
SELECT job_id FROM callback_outbox WHERE job_id = ANY($1::bigint[]) ORDER BY job_id FOR UPDATE
"""


class ErasureRequestError(ValueError):
    """A request that names no one, or more than one person: `field` is where (None: the
    whole body)."""

    def __init__(self, detail: str, field: str | None) -> None:
        super().__init__(detail)
        self.field = field


class ErasureRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What to erase: exactly one of a phone number (any spelling), a lead id, a user_data."""

    phone: str | None = None
    lead_id: int | None = None
    user_data: str | None = None

    def given(self) -> tuple[ErasureBy, str]:
        """The one thing asked for; ErasureRequestError unless exactly one is given, and it
        can name one person."""
        asked: list[tuple[ErasureBy, str]] = []
        if self.phone is not None:
            asked.append(("phone", self.phone))
        if self.lead_id is not None:
            asked.append(("lead_id", str(self.lead_id)))
        if self.user_data is not None:
            asked.append(("user_data", self.user_data))
        if len(asked) != 1:
            raise ErasureRequestError("give exactly one of phone, lead_id and user_data", None)
        by, value = asked[0]
        if not value.strip():
            raise ErasureRequestError(f"{by} is empty", by)
        if by == "phone":
            _one_number(value)
        return by, value


def _one_number(phone: str) -> None:
    if not digits_only(phone):
        # Its dedupe key and lookup tokens would be empty: it can name no one, and an
        # erasure of nothing would be recorded for what is likely a pasted wrong value.
        raise ErasureRequestError("phone holds no digits: it is no phone number", "phone")
    # A cell's comma-separated numbers are each looked up (subject_lookup.phone_tokens), so
    # "A,B" would erase the people of both numbers under one record "by phone". A comma
    # before a few digits is Vicidial's dialling pause, part of one number.
    if sum(len(digits_only(part)) >= MIN_PHONE_DIGITS for part in phone.split(",")) > 1:
        raise ErasureRequestError(
            "phone holds more than one number (separated by a comma): erase each on its own",
            "phone",
        )


# A rejected row as the API shows it: [job id, row number]. A list of two, not a tuple: the
# schema of a tuple (prefixItems, items false) is one some OpenAPI tools cannot read.
RejectedRow = Annotated[
    list[int], msgspec.Meta(min_length=2, max_length=2, description="[job id, row number]")
]


class Erasure(msgspec.Struct, frozen=True, kw_only=True):
    """An erasure as the API shows it: what it destroyed, never what it was asked for."""

    erasure_id: str
    by: ErasureBy
    subjects: int
    lead_ids: list[int]
    rejected_rows: list[RejectedRow]
    erased_at: str
    actor: Actor | None = None


class ErasurePreview(msgspec.Struct, frozen=True, kw_only=True):
    """What an erasure would take now, before it is asked for: nothing is erased, and no event
    recorded."""

    by: ErasureBy
    subjects: int
    lead_ids: list[int]
    rejected_rows: list[RejectedRow]


async def preview(conn: Connection, account_id: int, request: ErasureRequest) -> ErasurePreview:
    """The subjects the request names now, as `erase` would find them (it reads them again
    under its locks: a write in between may add a row of the person's)."""
    by, value = request.given()
    digest = subject_keys.digester(
        await key_store.account_secret(conn, key_store.master_key(), account_id)
    )
    subjects = await _subjects(conn, account_id, by, value, digest)
    return ErasurePreview(
        by=by,
        subjects=len(subjects),
        lead_ids=_lead_ids(subjects),
        rejected_rows=[list(row) for row in _rejected(subjects)],
    )


async def erase(
    conn: Connection, ctx: Context, account_id: int, request: ErasureRequest
) -> Erasure:
    """Erase every subject of the account the request names (none found is an erasure of
    nothing, recorded all the same)."""
    by, value = request.given()
    erasure_id = str(uuid.uuid4())
    return await retried_until_locked(
        conn, lambda: _erase(conn, ctx, account_id, (by, value), erasure_id)
    )


async def _erase(
    conn: Connection,
    ctx: Context,
    account_id: int,
    asked: tuple[ErasureBy, str],
    erasure_id: str,
) -> Erasure:
    by, value = asked
    async with write_transaction(conn):
        master = key_store.master_key()
        digest = subject_keys.digester(await key_store.account_secret(conn, master, account_id))
        subjects = await _locked_subjects(conn, account_id, asked, digest)
        lead_ids = _lead_ids(subjects)
        rejected = _rejected(subjects)
        await conn.execute(LOCK_CALLBACKS, sorted({job_id for job_id, _ in rejected}))
        if lead_ids:
            # Any file of the account may hold the leads (an export as of a time holds deleted
            # and archived ones too), and a file is plaintext no key opens: they all go. Its
            # lock comes after the campaign locks, never before: one order for every holder.
            await remove_account_files(conn, ctx, account_id)
        event = SubjectErased(
            erasure_id=erasure_id,
            account_id=account_id,
            by=by,
            request_digest=digest(f"erasure:{by}:{value.strip()}"),
            subjects=subjects,
            lead_ids=lead_ids,
            rejected_rows=rejected,
        )
        appends = _appends(ctx, account_id, event)
        result = await record(conn, appends)
        await _redact_callbacks(conn, rejected)
        # After the appends: their metadata was sealed with these very keys.
        await key_store.erase(conn, subjects)
    return _shown(event, result.events[-1])


async def _locked_subjects(
    conn: Connection, account_id: int, asked: tuple[ErasureBy, str], digest: subject_keys.Digest
) -> list[str]:
    """The subjects asked for, read again once the campaigns of their leads are locked.

    A writer of such a campaign may be committing, as the locks are awaited, a row that saw the
    person's lead live (a duplicate refused because of it): that row came before the erasure
    and is the person's, so it is read with the rest. A lead of theirs found then in a campaign
    not locked raises LocksOutgrown: the erasure runs again with its campaign locked too (never
    locked after the others, which could deadlock with a writer holding it and waiting for
    them).
    """
    found = await _subjects(conn, account_id, *asked, digest)
    locked = await lock_campaigns(conn, await _campaigns(conn, found))
    subjects = await _subjects(conn, account_id, *asked, digest)
    if not set(await _campaigns(conn, subjects)) <= set(locked):
        raise LocksOutgrown
    return subjects


def _rejected(subjects: list[str]) -> list[tuple[int, int]]:
    return sorted(_rejected_row(s) for s in subjects if s.startswith("rejected-"))


def _lead_ids(subjects: list[str]) -> list[int]:
    return sorted(int(s.removeprefix("lead-")) for s in subjects if s.startswith("lead-"))


async def _campaigns(conn: Connection, subjects: list[str]) -> list[int]:
    """The campaigns whose writers could touch the subjects' leads."""
    return [r["campaign_id"] for r in await conn.fetch(SELECT_CAMPAIGNS, _lead_ids(subjects))]


async def _subjects(
    conn: Connection, account_id: int, by: ErasureBy, value: str, digest: subject_keys.Digest
) -> list[str]:
    if by == "lead_id":
        found = await conn.fetchval(SELECT_SUBJECT, f"lead-{int(value)}", account_id)
        if found is None:
            return []
        return sorted({found, *await _refusals_of(conn, account_id, int(value), digest)})
    if by == "phone":
        region = await default_region(conn, account_id)
        values = {dedupe_key(value, region), *phone_tokens(value, region)}
        kind, tokens = "phone", set(values)
    else:
        # As given, and without surrounding spaces, which the digests of the refused and
        # deleted rows leave out (user_data_token): one request finds all of a person's rows.
        values = {value, value.strip()}
        kind, tokens = "user_data", {user_data_token(value)}
    # Live leads through the contact index; everything else through the lookup digests.
    rows = await conn.fetch(SELECT_LIVE, account_id, kind, sorted(values))
    others = await key_store.subjects_with(conn, account_id, map(digest, tokens))
    return sorted({lead_subject(r["lead_id"]) for r in rows} | set(others))


async def _refusals_of(
    conn: Connection, account_id: int, lead_id: int, digest: subject_keys.Digest
) -> list[str]:
    """The refused rows (LeadRejected, and jobs' rejected rows) that name the lead as the live
    lead they duplicate: refused because of it, they hold its number (or user_data), so they
    are found by its values' digests, then kept only if they name it."""
    tokens = (await contact_tokens(conn, {lead_id})).get(lead_subject(lead_id), set())
    digests = {digest(t) for t in tokens}
    digests.update(
        r["digest"]
        for r in await conn.fetch(SELECT_LEAD_DIGESTS, lead_subject(lead_id), account_id)
    )
    found = await key_store.subjects_with(conn, account_id, digests)
    refused = [s.removeprefix("refused-") for s in found if s.startswith("refused-")]
    jobs = sorted({_rejected_row(s)[0] for s in found if s.startswith("rejected-")})
    named: list[str] = []
    if refused:
        rows = await conn.fetch(SELECT_REFUSALS_OF, refused, account_id, lead_id)
        named.extend(r["subject_id"] for r in rows)
    if jobs:
        rows = await conn.fetch(SELECT_REJECTED_OF, jobs, account_id, lead_id)
        candidates = set(found)
        named.extend(r["subject_id"] for r in rows if r["subject_id"] in candidates)
    return named


async def _redact_callbacks(conn: Connection, rejected: list[tuple[int, int]]) -> None:
    """Pending callbacks of the jobs lose the erased rows' cells, as the job views do."""
    by_job: dict[int, list[int]] = {}
    for job_id, row_number in rejected:
        by_job.setdefault(job_id, []).append(row_number)
    for row in await conn.fetch(SELECT_PENDING_BODIES, sorted(by_job)):
        body = msgspec.json.decode(row["body"])
        body["rejected_rows"] = erased_rows(body["rejected_rows"], by_job[row["job_id"]])
        await conn.execute(UPDATE_BODY, row["job_id"], msgspec.json.encode(body).decode())


def _rejected_row(subject: str) -> tuple[int, int]:
    _, job_id, row_number = subject.split("-")
    return int(job_id), int(row_number)


def _appends(ctx: Context, account_id: int, event: SubjectErased) -> list[PendingAppend]:
    appends = [
        stream_append(
            ctx,
            stream_of_lead(lead_id),
            ANY_VERSION,
            [LeadErased(lead_id=lead_id, erasure_id=event.erasure_id)],
            account_id=account_id,
        )
        for lead_id in event.lead_ids
    ]
    by_job: dict[int, list[int]] = {}
    for job_id, row_number in event.rejected_rows:
        by_job.setdefault(job_id, []).append(row_number)
    appends.extend(
        stream_append(
            ctx,
            stream_of_job(job_id),
            ANY_VERSION,
            [JobRowsErased(job_id=job_id, row_numbers=rows, erasure_id=event.erasure_id)],
            account_id=account_id,
        )
        for job_id, rows in sorted(by_job.items())
    )
    erasure = stream_of_erasure(event.erasure_id)
    appends.append(stream_append(ctx, erasure, NO_STREAM, [event], account_id=account_id))
    return appends


def _shown(event: SubjectErased, recorded: RecordedEvent) -> Erasure:
    return Erasure(
        erasure_id=event.erasure_id,
        by=event.by,
        subjects=len(event.subjects),
        lead_ids=event.lead_ids,
        rejected_rows=[list(row) for row in event.rejected_rows],
        erased_at=recorded.recorded_at.isoformat(),
        actor=recorded.decoded_metadata().actor,
    )


async def find_erasure(conn: Connection, account_id: int, erasure_id: str) -> Erasure | None:
    """The erasure's record, if it is this account's."""
    try:
        erasure_id = str(uuid.UUID(erasure_id))
    except ValueError:
        return None
    events = await read_stream(conn, stream_of_erasure(erasure_id), up_to_version=1)
    if not events:
        return None
    event = msgspec.json.decode(events[0].data, type=SubjectErased)
    if event.account_id != account_id:
        return None
    return _shown(event, events[0])
