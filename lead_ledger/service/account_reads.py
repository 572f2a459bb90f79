"""Reads of account configuration: the SQL on the configuration views, what reads return, and the
read functions (lookups by name or id, details, settings, campaigns, a user's login).

The views are encoded as they are by the admin API and the CLI. accounts.py writes; it checks
against the same tables with the SQL here, so the queries on those tables live in one place.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
from typing import Final

import asyncpg
import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.events import (
    AccountSettings,
    Assignment,
    CampaignConfig,
    CampaignState,
    Dialect,
    DialMode,
    Direction,
    OfficeHours,
    RateLimits,
)
from lead_ledger.service.errors import NotFound
from lead_ledger.service.inputs import BIGINT_MAX, NUL, decimal
from lead_ledger.service.passwords import hash_password, verify_password

# --- SQL: the projection tables of projections/config.py ----------------------------------------

NEXT_ACCOUNT_ID: Final = "SELECT nextval('account_ids')"
NEXT_CAMPAIGN_ID: Final = "SELECT nextval('campaign_ids')"
SELECT_ACCOUNT_BY_ID: Final = "SELECT account_id, name FROM accounts WHERE account_id = $1"
# Account names are unique case-insensitively (the accounts_name_key index is on lower(name)).
SELECT_ACCOUNT_BY_NAME: Final = (
    "SELECT account_id, name FROM accounts WHERE lower(name) = lower($1)"
)
SELECT_ACCOUNT_NAME_TAKEN: Final = "SELECT true FROM accounts WHERE lower(name) = lower($1)"
SELECT_ACCOUNTS: Final = "SELECT account_id, name FROM accounts ORDER BY account_id"
SELECT_SETTINGS: Final = """
SELECT account_id, api_authentication, default_region, office_hours, rate_limits
FROM settings WHERE account_id = ANY($1::bigint[])
"""
_CAMPAIGN_COLUMNS: Final = (
    "campaign_id, name, direction, assignment, dial_mode, state, crm_fields, vicidial_campaign"
)
SELECT_CAMPAIGNS: Final = (
    f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns WHERE account_id = $1 ORDER BY campaign_id"
)
SELECT_CAMPAIGN: Final = (
    f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns WHERE account_id = $1 AND name = $2"
)
SELECT_CAMPAIGN_NAME_TAKEN: Final = "SELECT true FROM campaigns WHERE account_id = $1 AND name = $2"
SELECT_AGENTS: Final = "SELECT agent_id, name FROM agents WHERE account_id = $1 ORDER BY agent_id"
SELECT_AGENT_TAKEN: Final = "SELECT true FROM agents WHERE account_id = $1 AND agent_id = $2"
SELECT_SKILLS: Final = "SELECT name FROM skills WHERE account_id = $1 ORDER BY name"
SELECT_SKILL_TAKEN: Final = "SELECT true FROM skills WHERE account_id = $1 AND name = $2"
SELECT_USERS: Final = "SELECT username FROM users WHERE account_id = $1 ORDER BY username"
SELECT_USERNAME_TAKEN: Final = "SELECT true FROM users WHERE username = $1"
SELECT_USER_LOGIN: Final = """
SELECT u.password_hash, a.name AS account_name
FROM users u JOIN accounts a USING (account_id)
WHERE u.username = $1
"""
SELECT_CREDENTIALS: Final = """
SELECT credential_id, dialect, revoked, username
FROM credentials WHERE account_id = $1 ORDER BY issued_at
"""
# The user's live login credential (credentials_login_idx); the oldest, should there be two.
SELECT_LOGIN_CREDENTIAL: Final = """
SELECT credential_id FROM credentials
WHERE account_id = $1 AND username = $2 AND dialect = $3 AND username IS NOT NULL AND NOT revoked
ORDER BY issued_at, credential_id LIMIT 1
"""
SELECT_CREDENTIAL_REVOKED: Final = (
    "SELECT revoked FROM credentials WHERE account_id = $1 AND credential_id = $2"
)


# --- views: what reads and writes return, encoded as is by the admin API and the CLI ----------


class AccountRef(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str


class Account(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str
    settings: AccountSettings


class Campaign(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str
    direction: Direction
    assignment: Assignment
    dial_mode: DialMode
    state: CampaignState
    crm_fields: list[str] | None
    vicidial_campaign: str | None = None

    @classmethod
    def of(cls, campaign_id: int, config: CampaignConfig) -> Campaign:
        return cls(id=campaign_id, **msgspec.structs.asdict(config))

    def config(self) -> CampaignConfig:
        fields = msgspec.structs.asdict(self)
        del fields["id"]
        return CampaignConfig(**fields)


class Agent(msgspec.Struct, frozen=True, kw_only=True):
    agent_id: str
    name: str | None


class Skill(msgspec.Struct, frozen=True, kw_only=True):
    name: str


class User(msgspec.Struct, frozen=True, kw_only=True):
    username: str
    account: str


class Credential(msgspec.Struct, frozen=True, kw_only=True):
    """A credential as listed: never its key, nor the key's hash."""

    id: str
    api: Dialect
    revoked: bool
    # The user a login issued it to (Flexydial's generate-token); None when the admin did.
    username: str | None = None


class AccountDetail(Account, frozen=True, kw_only=True):
    campaigns: list[Campaign]
    agents: list[Agent]
    skills: list[Skill]
    users: list[User]
    credentials: list[Credential]


class IssuedCredential(msgspec.Struct, frozen=True, kw_only=True):
    """The one place a key appears in plain text: the answer to issuing it."""

    id: str
    api: Dialect
    key: str


# --- reads --------------------------------------------------------------------------------------


async def find_account(conn: Connection, name_or_id: str | int) -> AccountRef | None:
    """The account a path names: digits are an id, anything else a name (case-insensitive)."""
    if isinstance(name_or_id, int) or (name_or_id.isascii() and name_or_id.isdigit()):
        account_id = name_or_id if isinstance(name_or_id, int) else decimal(name_or_id)
        if account_id is None or account_id > BIGINT_MAX:  # no such account, no database error
            return None
        row = await conn.fetchrow(SELECT_ACCOUNT_BY_ID, account_id)
    elif NUL in name_or_id:
        return None
    else:
        row = await conn.fetchrow(SELECT_ACCOUNT_BY_NAME, name_or_id)
    return None if row is None else AccountRef(id=row["account_id"], name=row["name"])


async def require_account(conn: Connection, name_or_id: str | int) -> AccountRef:
    ref = await find_account(conn, name_or_id)
    if ref is None:
        raise NotFound(f"no account {str(name_or_id)!r}")
    return ref


def _settings(row: asyncpg.Record) -> AccountSettings:
    # jsonb arrives as raw JSON (see ledger/database.py init_connection); msgspec types it.
    office_hours = row["office_hours"]
    return AccountSettings(
        api_authentication=row["api_authentication"],
        default_region=row["default_region"],
        office_hours=None
        if office_hours is None
        else msgspec.json.decode(office_hours, type=OfficeHours | None),
        rate_limits=msgspec.json.decode(row["rate_limits"], type=RateLimits),
    )


async def _settings_of(conn: Connection, account_ids: list[int]) -> dict[int, AccountSettings]:
    rows = await conn.fetch(SELECT_SETTINGS, account_ids)
    return {row["account_id"]: _settings(row) for row in rows}


async def get_settings(conn: Connection, account_id: int) -> AccountSettings:
    settings = (await _settings_of(conn, [account_id])).get(account_id)
    if settings is None:
        raise NotFound(f"no account {account_id}")
    return settings


async def account_settings(conn: Connection, account: str | int) -> AccountSettings:
    return await get_settings(conn, (await require_account(conn, account)).id)


async def list_accounts(conn: Connection) -> list[Account]:
    rows = await conn.fetch(SELECT_ACCOUNTS)
    settings = await _settings_of(conn, [row["account_id"] for row in rows])
    return [
        Account(id=row["account_id"], name=row["name"], settings=settings[row["account_id"]])
        for row in rows
    ]


def _campaign(row: asyncpg.Record) -> Campaign:
    return Campaign(
        id=row["campaign_id"],
        name=row["name"],
        direction=row["direction"],
        assignment=row["assignment"],
        dial_mode=row["dial_mode"],
        state=row["state"],
        crm_fields=row["crm_fields"],
        vicidial_campaign=row["vicidial_campaign"],
    )


async def list_campaigns(conn: Connection, account: str | int) -> list[Campaign]:
    ref = await require_account(conn, account)
    return [_campaign(row) for row in await conn.fetch(SELECT_CAMPAIGNS, ref.id)]


async def get_campaign(conn: Connection, account: str | int, name: str) -> Campaign:
    ref = await require_account(conn, account)
    row = None if NUL in name else await conn.fetchrow(SELECT_CAMPAIGN, ref.id, name)
    if row is None:
        raise NotFound(f"account {ref.name!r} has no campaign {name!r}")
    return _campaign(row)


async def get_account(conn: Connection, account: str | int) -> AccountDetail:
    ref = await require_account(conn, account)
    return AccountDetail(
        id=ref.id,
        name=ref.name,
        settings=await get_settings(conn, ref.id),
        campaigns=[_campaign(row) for row in await conn.fetch(SELECT_CAMPAIGNS, ref.id)],
        agents=[
            Agent(agent_id=r["agent_id"], name=r["name"])
            for r in await conn.fetch(SELECT_AGENTS, ref.id)
        ],
        skills=[Skill(name=r["name"]) for r in await conn.fetch(SELECT_SKILLS, ref.id)],
        users=[
            User(username=r["username"], account=ref.name)
            for r in await conn.fetch(SELECT_USERS, ref.id)
        ],
        credentials=[
            Credential(
                id=r["credential_id"],
                api=r["dialect"],
                revoked=r["revoked"],
                username=r["username"],
            )
            for r in await conn.fetch(SELECT_CREDENTIALS, ref.id)
        ],
    )


async def credential_revoked(conn: Connection, account_id: int, credential_id: str) -> bool | None:
    """Whether the account's credential is revoked; None when the account has no such one."""
    if NUL in credential_id:
        return None
    revoked: bool | None = await conn.fetchval(SELECT_CREDENTIAL_REVOKED, account_id, credential_id)
    return revoked


@functools.cache
def _dummy_hash() -> str:
    """A valid hash of a random password, made once on first use (not at import: scrypt is slow)."""
    return hash_password(secrets.token_urlsafe(16))


def _password_matches(password: str, encoded: str | None) -> bool:
    # An unknown user is checked against the dummy hash, so that refusing them takes as long as
    # refusing a wrong password and timing does not reveal which usernames exist.
    return verify_password(password, _dummy_hash() if encoded is None else encoded)


async def authenticate_user(conn: Connection, username: str, password: str) -> User | None:
    """The user when the password is theirs, else None (Flexydial's generate-token uses it)."""
    row = await conn.fetchrow(SELECT_USER_LOGIN, username)
    encoded = None if row is None else row["password_hash"]
    matches = await asyncio.to_thread(_password_matches, password, encoded)
    if row is None or not matches:
        return None
    return User(username=username, account=row["account_name"])


SELECT_REGION: Final = "SELECT default_region FROM settings WHERE account_id = $1"


async def default_region(conn: Connection, account_id: int) -> str | None:
    """The account's default region for phone numbers (None: numbers compare as digits)."""
    region: str | None = await conn.fetchval(SELECT_REGION, account_id)
    return region
