"""Ozonetel CloudAgent deleteCampaignData: the live leads of one number in a campaign deleted
(VENDOR-APIS.md section G; docs/ozonetel.md).

The vendor checks a request in a fixed order and answers HTTP 200 with its own pair for each
refusal (429 for its rate limit); `delete_campaign_data` replays that order and names the first
check that failed (`Refusal`), or what was done. The leads are found by the number's dedupe key
(every spelling of it), and by `name` too when one is given, under the campaign's lock, and
deleted as every dialect deletes (LeadDeleted, reason api): gone from every read, kept in their
history.
"""

from __future__ import annotations

import enum
from typing import Final

import asyncpg
import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.credentials import key_digest
from lead_ledger.ledger.envelope import Actor
from lead_ledger.ledger.events import RateLimits
from lead_ledger.ledger.locks import lock_campaigns
from lead_ledger.ledger.phones import dedupe_key
from lead_ledger.service import rate_limits
from lead_ledger.service.leads import delete_leads
from lead_ledger.service.ozonetel_values import Scalar, given, key_matches, lookup, names_account
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.writer import Origin

BUCKET: Final = "ozonetel_delete"

# The key's credential, its account and settings, and the campaign named (in that account only).
SELECT_CONTEXT: Final = """
SELECT c.account_id, c.credential_id, c.key_sha256, a.name AS account_name,
       s.rate_limits, s.default_region, k.campaign_id
FROM credentials c
JOIN accounts a ON a.account_id = c.account_id
JOIN settings s ON s.account_id = c.account_id
LEFT JOIN campaigns k ON k.account_id = c.account_id AND k.name = $2
WHERE c.key_sha256 = $1 AND c.dialect = 'ozonetel' AND NOT c.revoked
"""
# The campaign's live leads holding the number, with that name when one is given.
SELECT_HOLDERS: Final = """
SELECT l.lead_id FROM contacts c JOIN leads l USING (lead_id)
WHERE c.campaign_id = $1 AND c.kind = 'phone' AND c.value = $2
  AND ($3::text IS NULL OR l.name = $3)
ORDER BY l.lead_id
"""


class DeleteCampaignData(msgspec.Struct, frozen=True, kw_only=True):
    """The JSON body. Every field is optional here: the checks decide, in the vendor's order;
    `phoneNumber` as a list is a request for several numbers, which the vendor refuses."""

    campaignName: Scalar = None  # noqa: N815 - the vendor's names
    phoneNumber: Scalar | list[Scalar] = None  # noqa: N815
    userName: Scalar = None  # noqa: N815
    name: Scalar = None


class Refusal(enum.Enum):
    NO_API_KEY = enum.auto()
    INVALID_USER = enum.auto()
    NO_USERNAME = enum.auto()
    NO_CAMPAIGN = enum.auto()
    UNKNOWN_CAMPAIGN = enum.auto()
    NO_PHONE = enum.auto()
    SEVERAL_PHONES = enum.auto()
    RATE_LIMITED = enum.auto()
    NOT_FOUND = enum.auto()


class Deleted(msgspec.Struct, frozen=True):
    lead_ids: list[int]


async def delete_campaign_data(
    conn: Connection, *, api_key: str | None, body: DeleteCampaignData, origin: Origin
) -> Refusal | Deleted:
    """The vendor's checks in order, then every live lead of the number (and name) deleted. A
    missing key (None) is NO_API_KEY; an empty one matches no user (INVALID_USER)."""
    if api_key is None:
        return Refusal.NO_API_KEY
    digest = key_digest(api_key)
    row = await conn.fetchrow(SELECT_CONTEXT, digest, lookup(given(_scalar(body.campaignName))))
    if not key_matches(row, digest):
        return Refusal.INVALID_USER
    refused = _check(row, body)
    if refused is not None:
        return refused
    limits = msgspec.json.decode(row["rate_limits"], type=RateLimits)
    limit = limits.ozonetel_delete_per_minute
    if not await rate_limits.take(conn, row["account_id"], BUCKET, limit):
        return Refusal.RATE_LIMITED
    actor = Actor(
        dialect="ozonetel", account_id=row["account_id"], credential_id=row["credential_id"]
    )
    key = dedupe_key(str(given(_scalar(body.phoneNumber))), row["default_region"])
    name = lookup(given(_scalar(body.name)))
    async with write_transaction(conn):
        # Which leads hold the number is decided under the campaign's lock, as every write is.
        await lock_campaigns(conn, [row["campaign_id"]])
        holders = await conn.fetch(SELECT_HOLDERS, row["campaign_id"], key, name)
        if not holders:
            return Refusal.NOT_FOUND
        deleted = await delete_leads(
            conn,
            origin.context(actor),
            account_id=row["account_id"],
            lead_ids=[r["lead_id"] for r in holders],
        )
    return Deleted(deleted)


def _check(row: asyncpg.Record, body: DeleteCampaignData) -> Refusal | None:  # noqa: PLR0911 - a return per documented answer
    """Checks 3-8: the userName names the key's account, a campaign of it is named, and one
    number (not a list of them)."""
    username = given(_scalar(body.userName))
    if username is None:
        return Refusal.NO_USERNAME
    if not names_account(username, row):
        return Refusal.INVALID_USER
    if given(_scalar(body.campaignName)) is None:
        return Refusal.NO_CAMPAIGN
    if row["campaign_id"] is None:
        return Refusal.UNKNOWN_CAMPAIGN
    phone = body.phoneNumber
    if isinstance(phone, list):
        return Refusal.SEVERAL_PHONES if phone else Refusal.NO_PHONE
    if lookup(given(phone)) is None:
        return Refusal.NO_PHONE
    return None


def _scalar(value: Scalar | list[Scalar]) -> Scalar:
    """A field the vendor reads as text: a list there is no text."""
    return None if isinstance(value, list) else value
