"""Vicidial's `update_lead` and `batch_update_lead` (non_agent_api.php; docs/vicidial.md).

update_lead finds leads by lead_id, then (if none) by vendor_lead_code, then (if none) by
phone_number, newest first, `records` of them, in the account (or the list); then deletes them
(`delete_lead=Y`), reports them (`no_update=Y`), or updates each with the fields given. Not
found, it can insert (`insert_if_not_found=Y`). batch_update_lead sets the same fields on up to
`records` leads by id. Updates are LeadUpdated events with the changed fields only, under the
campaign locks; a new number the do-not-call registry blocks is not refused (Vicidial's
update has no DNC check) but marks the lead, so it is never dialled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, NamedTuple

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.events import LeadReassigned, LeadUpdated
from lead_ledger.ledger.locks import lock_campaigns
from lead_ledger.ledger.phones import dedupe_key
from lead_ledger.service.account_reads import default_region
from lead_ledger.service.dialled_numbers import record_dialled_of
from lead_ledger.service.leads import delete_leads, lock_live_leads, update_leads
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.vicidial_add_lead import insert_lead, read_account
from lead_ledger.service.vicidial_fields import UPDATED, given_values, lead_patch
from lead_ledger.service.vicidial_login import ApiUser
from lead_ledger.service.vicidial_params import Params, dialable, join, line, piped
from lead_ledger.service.writer import Context

UPDATE: Final = "update_lead"
BATCH: Final = "batch_update_lead"
METHODS: Final = ("LEAD_ID", "VENDOR_LEAD_CODE", "PHONE_NUMBER")
MIN_METHOD: Final = 6  # shorter than any method's name: LEAD_ID, Vicidial's default
MIN_SEARCH_PHONE, MAX_SEARCH_PHONE = 6, 18
MIN_INSERT_PHONE, MAX_INSERT_PHONE = 6, 18
MAX_LEAD_ID_DIGITS: Final = 18  # a lead id is a bigint; a longer one matches no lead
DEFAULT_BATCH_RECORDS: Final = 1000
MAX_RECORDS: Final = 100_000

# Newest first: Vicidial's `order by entry_date desc limit $records`, scoped to the account
# and, for LIST and CAMPAIGN, to their lists ($3 null: the whole account).
_SCOPED: Final = """
  AND l.account_id = $1 AND ($3::bigint[] IS NULL OR l.campaign_id = ANY($3::bigint[]))
ORDER BY l.entry_at DESC, l.lead_id DESC
LIMIT $4"""
FIND_BY_ID: Final = f"""
SELECT l.lead_id, l.campaign_id, l.phone_numbers FROM leads l
WHERE l.lead_id = $2 {_SCOPED}"""
FIND_BY_VENDOR_CODE: Final = f"""
SELECT l.lead_id, l.campaign_id, l.phone_numbers
FROM contacts c JOIN leads l USING (lead_id)
WHERE c.kind = 'user_data' AND c.value = $2 {_SCOPED}"""
FIND_BY_PHONE: Final = f"""
SELECT l.lead_id, l.campaign_id, l.phone_numbers
FROM contacts c JOIN leads l USING (lead_id)
WHERE c.kind = 'phone' AND c.value = $2 AND l.dedupe_keys[1] = $2 {_SCOPED}"""
FIND_BATCH: Final = """
SELECT lead_id, campaign_id, phone_numbers FROM leads
WHERE account_id = $1 AND lead_id = ANY($2::bigint[])
ORDER BY lead_id DESC
LIMIT $3
"""
SELECT_PHONES: Final = "SELECT lead_id, phone_numbers FROM leads WHERE lead_id = ANY($1::bigint[])"


class Found(NamedTuple):
    lead_id: int
    campaign_id: int
    phone_numbers: list[str]


async def update_lead(conn: Connection, ctx: Context, user: ApiUser, params: Params) -> list[str]:
    """The lines update_lead answers."""
    method = params.get("search_method")
    if len(method) < MIN_METHOD:
        method = "LEAD_ID"
    lead_id, code = params.get("lead_id"), params.get("vendor_lead_code")
    phone = params.get("phone_number")
    by_id = "LEAD_ID" in method and bool(lead_id) and len(lead_id) < 19
    by_code = "VENDOR_LEAD_CODE" in method and bool(code)
    by_phone = "PHONE_NUMBER" in method and MIN_SEARCH_PHONE <= len(phone) <= MAX_SEARCH_PHONE
    if not (by_id or by_code or by_phone):
        data = join(user.username, method, lead_id, code, phone)
        return [line("ERROR", f"{UPDATE} NO VALID SEARCH METHOD", data)]
    lists, _, _ = await read_account(conn, user.account_id)
    campaigns = set(lists.names)
    list_id = _list_id(params.get("list_id"), campaigns)
    location = params.get("search_location")
    # LIST: the list; CAMPAIGN: the lists of its Vicidial campaign; else the whole account.
    scope: set[int] | None = None
    if list_id is not None and location in ("LIST", "CAMPAIGN"):
        scope = lists.scope(list_id, "LIST" if location == "LIST" else "CAMP")
    insert = params.flag("insert_if_not_found")
    async with write_transaction(conn):
        if insert:
            # Two calls inserting one missing lead must not both insert: search under locks.
            await lock_campaigns(conn, campaigns if scope is None else scope)
        found = await _search(conn, user, params, (by_id, by_code, by_phone), scope)
        if not found:
            return await _not_found(conn, ctx, user, params, list_id, insert=insert)
        return await _act(conn, ctx, user, params, found)


async def _search(
    conn: Connection,
    user: ApiUser,
    params: Params,
    methods: tuple[bool, bool, bool],
    scope: set[int] | None,
) -> list[Found]:
    """By lead id, else by vendor code, else by phone: the first method that finds any."""
    records = params.number("records", default=1, cap=MAX_RECORDS)
    lead_id, code, phone = (params.get(n) for n in ("lead_id", "vendor_lead_code", "phone_number"))
    by_id, by_code, by_phone = methods
    found: list[Found] = []
    if by_id:
        found = await _find(conn, FIND_BY_ID, user, int(lead_id), scope, records)
    if by_code and not found:
        found = await _find(conn, FIND_BY_VENDOR_CODE, user, code, scope, records)
    if by_phone and not found:
        key = dedupe_key(phone, await default_region(conn, user.account_id))
        found = await _find(conn, FIND_BY_PHONE, user, key, scope, records)
    return found


async def _find(
    conn: Connection, sql: str, user: ApiUser, value: object, scope: set[int] | None, records: int
) -> list[Found]:
    lists = None if scope is None else sorted(scope)
    return [Found(*row) for row in await conn.fetch(sql, user.account_id, value, lists, records)]


async def _act(
    conn: Connection, ctx: Context, user: ApiUser, params: Params, found: Sequence[Found]
) -> list[str]:
    """What update_lead does with the leads it found: report, delete, or update each."""
    lead_id, code, phone = (params.get(n) for n in ("lead_id", "vendor_lead_code", "phone_number"))
    if params.flag("no_update"):
        first = found[0]
        # The last field is Vicidial's entry_list_id, 0 unless a lead moved lists.
        data = join(user.username, lead_id or first.lead_id, code, phone, first.campaign_id, 0)
        return [piped("NOTICE", f"{UPDATE} LEADS FOUND IN THE SYSTEM", data)]
    ids = [f.lead_id for f in found]
    if params.flag("delete_lead"):
        deleted = set(await delete_leads(conn, ctx, account_id=user.account_id, lead_ids=ids))
        reason = f"{UPDATE} LEAD HAS BEEN DELETED 0|0"
        return [
            line("SUCCESS", reason, join(user.username, i, int(i in deleted), 0, 0, ""))
            for i in ids
        ]
    # A number without a digit is not set, as an empty one is not (a lead needs one to dial).
    new_phone = phone if params.flag("update_phone_number") and dialable(phone) else None
    changed = await _update(conn, ctx, user, params, ids, new_phone)
    if changed is None:
        return []  # nothing to set: Vicidial prints no line
    reason = f"{UPDATE} LEAD HAS BEEN UPDATED"
    return [
        line("SUCCESS", reason, join(user.username, i, int(i in changed), "", "", "")) for i in ids
    ]


def _list_id(text: str, campaigns: set[int]) -> int | None:
    """The list a call names, when it is one of the account's campaigns."""
    if not text.isdigit() or len(text) > 18:
        return None
    return int(text) if int(text) in campaigns else None


async def _update(
    conn: Connection,
    ctx: Context,
    user: ApiUser,
    params: Params,
    ids: Sequence[int],
    new_phone: str | None,
) -> set[int] | None:
    """Update the leads with the call's fields; the ids of those it changed, or None when the
    call gives nothing to set. Each lead's patch is made from its numbers as they are under the
    campaign locks."""
    values = given_values(params, UPDATED)
    if not values and not new_phone:
        return None
    live = await lock_live_leads(conn, user.account_id, ids)
    phones = {r["lead_id"]: r["phone_numbers"] for r in await conn.fetch(SELECT_PHONES, list(live))}
    patches = {i: lead_patch(values, phones[i], new_phone) for i in sorted(live)}
    if not any(patches.values()):
        return set()
    updated = await update_leads(
        conn, ctx, account_id=user.account_id, patches=patches, dnc_marked=True
    )
    if new_phone or {"phone_code", "alt_phone"} & set(values):
        region = await default_region(conn, user.account_id)
        await record_dialled_of(conn, user.account_id, region, updated.written)
    return {
        lead_id
        for lead_id, events in updated.written.items()
        if any(isinstance(e, LeadUpdated | LeadReassigned) for e in events)
    }


async def _not_found(
    conn: Connection,
    ctx: Context,
    user: ApiUser,
    params: Params,
    list_id: int | None,
    *,
    insert: bool,
) -> list[str]:
    """No lead matched: Vicidial's line (NOTICE when it goes on to insert), then the insert."""
    phone, code = params.get("phone_number"), params.get("vendor_lead_code")
    data = join(user.username, params.get("lead_id"), code, phone)
    reason = f"{UPDATE} NO MATCHES FOUND IN THE SYSTEM"
    if params.flag("no_update") or not insert:
        result = "NOTICE" if params.flag("no_update") else "ERROR"
        return [piped(result, reason, data)]
    lines = [piped("NOTICE", reason, data)]
    phone_code, given_list = params.get("phone_code"), params.get("list_id")
    if (
        not (MIN_INSERT_PHONE <= len(phone) <= MAX_INSERT_PHONE)
        or not dialable(phone)
        or not phone_code
        or not given_list
    ):
        invalid = join(
            user.username, phone, phone_code, given_list, params.get("insert_if_not_found")
        )
        return [*lines, line("ERROR", f"{UPDATE} INVALID DATA FOR LEAD INSERTION", invalid)]
    if list_id is None:
        return [
            *lines,
            line("ERROR", f"{UPDATE} NOT AN ALLOWED LIST ID, INSERT", join(phone, given_list)),
        ]
    await lock_campaigns(conn, [list_id])
    lead_id, gmt = await insert_lead(
        conn, ctx, user.account_id, list_id, phone, given_values(params, UPDATED)
    )
    added = join(phone, list_id, lead_id, gmt, user.username)
    return [*lines, line("SUCCESS", f"{UPDATE} LEAD HAS BEEN ADDED", added)]


async def batch_update_lead(
    conn: Connection, ctx: Context, user: ApiUser, params: Params
) -> list[str]:
    """The lines batch_update_lead answers: the leads among `lead_ids` (up to `records`,
    highest id first) get the fields given; the phone number is not one of them."""
    given = params.get("lead_ids")
    if not given:
        return [line("ERROR", f"{BATCH} NO LEADS DEFINED", join(user.username, ""))]
    # Vicidial searches `lead_id IN(<lead_ids>)` for whatever digits and commas are left: ids
    # no lead can have (past a bigint, or none between the commas) match nothing.
    ids = sorted(
        {int(part) for part in given.split(",") if part and len(part) <= MAX_LEAD_ID_DIGITS}
    )
    records = params.number("records", default=DEFAULT_BATCH_RECORDS, cap=MAX_RECORDS)
    async with write_transaction(conn):
        rows = await conn.fetch(FIND_BATCH, user.account_id, ids, records)
        if not rows:
            return [
                piped(
                    "ERROR", f"{BATCH} NO MATCHES FOUND IN THE SYSTEM", join(user.username, given)
                )
            ]
        found = [row["lead_id"] for row in rows]
        changed = await _update(conn, ctx, user, params, found, None)
    if changed is None:
        return []  # nothing to set: Vicidial prints no line
    data = join(user.username, len(changed), len(found), ",".join(map(str, found)))
    return [line("SUCCESS", f"{BATCH} LEADS HAVE BEEN UPDATED", data)]
