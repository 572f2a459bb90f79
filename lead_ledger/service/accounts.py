"""Account configuration: accounts, credentials, users, agents, skills, campaigns, settings.

Every write is one transaction: take the advisory locks, check the projection tables, then
`record()` the events on `account-<id>`. The locks make the checks exact under concurrency, and
they also serialise appends to one account stream, which are made at ANY_VERSION.
Lock order is always the global names lock first, then the account's, so writers never deadlock.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import re
import secrets
import zoneinfo
from collections.abc import Sequence
from typing import Annotated, Final

import asyncpg
import msgspec
import phonenumbers
from msgspec import UNSET, Meta, UnsetType

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.envelope import ANY_VERSION, NO_STREAM
from lead_ledger.ledger.events import (
    AccountCreated,
    AccountEvent,
    AccountSettings,
    AgentAdded,
    ApiAuthentication,
    Assignment,
    CampaignConfig,
    CampaignCreated,
    CampaignStarted,
    CampaignState,
    CampaignStopped,
    CampaignUpdated,
    CredentialIssued,
    CredentialRevoked,
    Dialect,
    DialMode,
    Direction,
    OfficeHours,
    RateLimits,
    SettingsChanged,
    SkillAdded,
    UserCreated,
    stream_of_account,
)
from lead_ledger.ledger.locks import LOCK_XACT
from lead_ledger.service.errors import Conflict, Invalid, NotFound
from lead_ledger.service.passwords import hash_password
from lead_ledger.service.passwords import verify_password as verify_password  # noqa: PLC0414 - re-exported for generate-token
from lead_ledger.service.writer import Context, record, stream_append

# Advisory lock keys share one bigint space with every other user of the server: the upper 32
# bits say what is locked (0x4C4C_0001 is campaigns, in ledger/locks.py), the lower the id.
_ACCOUNT_CONFIG_NAMESPACE: Final = 0x4C4C_0002
# Account names and usernames are unique across accounts, so their checks share one key.
GLOBAL_NAMES_LOCK_KEY: Final = 0x4C4C_0003 << 32


def account_lock_key(account_id: int) -> int:
    if not 0 <= account_id < 1 << 32:
        raise ValueError(f"account id {account_id} is outside the lockable range")
    return (_ACCOUNT_CONFIG_NAMESPACE << 32) | account_id


async def lock_global_names(conn: Connection) -> None:
    await conn.execute(LOCK_XACT, GLOBAL_NAMES_LOCK_KEY)


async def lock_account(conn: Connection, account_id: int) -> None:
    await conn.execute(LOCK_XACT, account_lock_key(account_id))


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
_CAMPAIGN_COLUMNS: Final = "campaign_id, name, direction, assignment, dial_mode, state, crm_fields"
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
SELECT credential_id, dialect, revoked FROM credentials WHERE account_id = $1 ORDER BY issued_at
"""
SELECT_CREDENTIAL_REVOKED: Final = (
    "SELECT revoked FROM credentials WHERE account_id = $1 AND credential_id = $2"
)


# --- views: what reads return, encoded as is by the admin API and the CLI ---------------------


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


class AccountDetail(Account, frozen=True, kw_only=True):
    campaigns: list[Campaign]
    agents: list[Agent]
    skills: list[Skill]
    users: list[User]
    credentials: list[Credential]


# --- commands: typed inputs, decoded from JSON by the API and built by the CLI ------------------

Name = Annotated[str, Meta(min_length=1, max_length=100)]
Clock = Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
Weekdays = Annotated[list[Annotated[int, Meta(ge=1, le=7)]], Meta(min_length=1, max_length=7)]
PerMinute = Annotated[int, Meta(ge=1, le=100_000)]


class _Input(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class NewAccount(_Input, frozen=True):
    name: Name
    default_region: str | None = None


class NewCredential(_Input, frozen=True):
    api: Dialect


class NewUser(_Input, frozen=True):
    username: Name
    password: Annotated[str, Meta(min_length=8, max_length=1024)]


class NewAgent(_Input, frozen=True):
    agent_id: Name
    name: Annotated[str, Meta(max_length=200)] | None = None


class NewSkill(_Input, frozen=True):
    name: Name


class NewCampaign(_Input, frozen=True):
    name: Name
    direction: Direction = "outbound"
    assignment: Assignment = "none"
    dial_mode: DialMode = "Progressive"
    state: CampaignState = "stopped"
    crm_fields: list[str] | None = None


class CampaignChanges(_Input, frozen=True):
    """A PATCH: only the fields given change; `crm_fields: null` clears them."""

    name: Name | UnsetType = UNSET
    direction: Direction | UnsetType = UNSET
    assignment: Assignment | UnsetType = UNSET
    dial_mode: DialMode | UnsetType = UNSET
    state: CampaignState | UnsetType = UNSET
    crm_fields: list[str] | UnsetType | None = UNSET


class OfficeHoursInput(_Input, frozen=True):
    timezone: str
    days: Weekdays
    start: Clock
    end: Clock


class RateLimitsInput(_Input, frozen=True):
    """Only the limits given change; the others keep their current values."""

    ozonetel_bulk_per_minute: PerMinute | UnsetType = UNSET
    ozonetel_add_per_minute: PerMinute | UnsetType = UNSET


class SettingsChanges(_Input, frozen=True):
    """A PATCH: only the fields given change; null clears default_region and office_hours."""

    api_authentication: ApiAuthentication | UnsetType = UNSET
    default_region: str | UnsetType | None = UNSET
    office_hours: OfficeHoursInput | UnsetType | None = UNSET
    rate_limits: RateLimitsInput | UnsetType = UNSET


class IssuedCredential(msgspec.Struct, frozen=True, kw_only=True):
    """The one place a key appears in plain text: the answer to issuing it."""

    id: str
    api: Dialect
    key: str


# --- validation the types cannot express --------------------------------------------------------

# Names appear in URL paths and vendor payloads: no slashes, no control characters.
_NAME_CHARS: Final = re.compile(r"[^/\x00-\x1f\x7f]+")
_CRM_FIELD: Final = re.compile(r"[^:\s\x00-\x1f\x7f]+:[^:\s\x00-\x1f\x7f]+")
# PostgreSQL text cannot hold NUL: a looked-up name containing one names nothing.
_NUL: Final = "\x00"


def _check_name(field: str, value: str) -> str:
    if value != value.strip() or not _NAME_CHARS.fullmatch(value):
        raise Invalid(field, "must not contain '/', control characters or outer spaces")
    return value


def _region(value: str | None) -> str | None:
    if value is None:
        return None
    region = value.upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise Invalid("default_region", f"{value!r} is not a supported ISO 3166 alpha-2 region")
    return region


def _crm_fields(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    for i, name in enumerate(value):
        if not _CRM_FIELD.fullmatch(name):
            raise Invalid(f"crm_fields[{i}]", f"{name!r} is not a 'section:field' name")
    if len(set(value)) != len(value):
        raise Invalid("crm_fields", "names must not repeat")
    return value


def _office_hours(value: OfficeHoursInput | None) -> OfficeHours | None:
    if value is None:
        return None
    try:
        zoneinfo.ZoneInfo(value.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as error:
        raise Invalid("office_hours.timezone", f"{value.timezone!r} is no IANA zone") from error
    if value.start == value.end:
        raise Invalid("office_hours.end", "must differ from start (end < start spans midnight)")
    return OfficeHours(
        timezone=value.timezone, days=sorted(set(value.days)), start=value.start, end=value.end
    )


def _changed(old: msgspec.Struct, new: msgspec.Struct) -> list[str]:
    return [f for f in old.__struct_fields__ if getattr(old, f) != getattr(new, f)]


async def _append(
    conn: Connection,
    ctx: Context,
    account_id: int,
    events: Sequence[AccountEvent],
    expected: int = ANY_VERSION,
) -> None:
    stream = stream_of_account(account_id)
    await record(conn, [stream_append(ctx, stream, expected, events, account_id=account_id)])


async def _locked_account(conn: Connection, account: str | int) -> AccountRef:
    ref = await require_account(conn, account)
    await lock_account(conn, ref.id)
    return ref


# --- writes -------------------------------------------------------------------------------------


async def create_account(conn: Connection, ctx: Context, new: NewAccount) -> Account:
    name = _check_name("name", new.name)
    if name.isdigit():
        # `{account}` in paths is a name or an id; an all-digit name would be ambiguous.
        raise Invalid("name", "must not be all digits")
    settings = AccountSettings(default_region=_region(new.default_region))
    async with conn.transaction():
        await lock_global_names(conn)
        if await conn.fetchval(SELECT_ACCOUNT_NAME_TAKEN, name):
            raise Conflict(f"an account named {name!r} exists")
        account_id: int = await conn.fetchval(NEXT_ACCOUNT_ID)
        created = AccountCreated(account_id=account_id, name=name, settings=settings)
        await _append(conn, ctx, account_id, [created], NO_STREAM)
    return Account(id=account_id, name=name, settings=settings)


async def issue_credential(
    conn: Connection, ctx: Context, account: str | int, new: NewCredential
) -> IssuedCredential:
    # Same key shape and digest as lead_ledger.api.auth (new_key, key_digest); only the digest
    # is stored, so the key is shown here once and never again.
    key = secrets.token_urlsafe(32)
    credential_id = f"cred_{secrets.token_hex(8)}"
    async with conn.transaction():
        ref = await _locked_account(conn, account)
        issued = CredentialIssued(
            account_id=ref.id,
            credential_id=credential_id,
            dialect=new.api,
            key_sha256=hashlib.sha256(key.encode()).hexdigest(),
        )
        await _append(conn, ctx, ref.id, [issued])
    return IssuedCredential(id=credential_id, api=new.api, key=key)


async def revoke_credential(
    conn: Connection, ctx: Context, account: str | int, credential_id: str
) -> None:
    """Revoke; revoking a revoked credential again records nothing (a retry is harmless)."""
    async with conn.transaction():
        ref = await _locked_account(conn, account)
        revoked = None
        if _NUL not in credential_id:
            revoked = await conn.fetchval(SELECT_CREDENTIAL_REVOKED, ref.id, credential_id)
        if revoked is None:
            raise NotFound(f"account {ref.name!r} has no credential {credential_id!r}")
        if not revoked:
            event = CredentialRevoked(account_id=ref.id, credential_id=credential_id)
            await _append(conn, ctx, ref.id, [event])


async def create_user(conn: Connection, ctx: Context, account: str | int, new: NewUser) -> User:
    username = _check_name("username", new.username)
    # scrypt takes tens of milliseconds: off the event loop, and before any lock is held.
    password_hash = await asyncio.to_thread(hash_password, new.password)
    async with conn.transaction():
        await lock_global_names(conn)
        ref = await _locked_account(conn, account)
        if await conn.fetchval(SELECT_USERNAME_TAKEN, username):
            raise Conflict(f"the username {username!r} is taken")
        event = UserCreated(account_id=ref.id, username=username, password_hash=password_hash)
        await _append(conn, ctx, ref.id, [event])
    return User(username=username, account=ref.name)


async def add_agent(conn: Connection, ctx: Context, account: str | int, new: NewAgent) -> Agent:
    agent_id = _check_name("agent_id", new.agent_id)
    if new.name is not None and not new.name.isprintable():
        raise Invalid("name", "must not contain control characters")
    async with conn.transaction():
        ref = await _locked_account(conn, account)
        if await conn.fetchval(SELECT_AGENT_TAKEN, ref.id, agent_id):
            raise Conflict(f"account {ref.name!r} has an agent {agent_id!r}")
        event = AgentAdded(account_id=ref.id, agent_id=agent_id, name=new.name)
        await _append(conn, ctx, ref.id, [event])
    return Agent(agent_id=agent_id, name=new.name)


async def add_skill(conn: Connection, ctx: Context, account: str | int, new: NewSkill) -> Skill:
    name = _check_name("name", new.name)
    async with conn.transaction():
        ref = await _locked_account(conn, account)
        if await conn.fetchval(SELECT_SKILL_TAKEN, ref.id, name):
            raise Conflict(f"account {ref.name!r} has a skill {name!r}")
        await _append(conn, ctx, ref.id, [SkillAdded(account_id=ref.id, name=name)])
    return Skill(name=name)


async def create_campaign(
    conn: Connection, ctx: Context, account: str | int, new: NewCampaign
) -> Campaign:
    config = CampaignConfig(
        name=_check_name("name", new.name),
        direction=new.direction,
        assignment=new.assignment,
        dial_mode=new.dial_mode,
        state=new.state,
        crm_fields=_crm_fields(new.crm_fields),
    )
    async with conn.transaction():
        ref = await _locked_account(conn, account)
        if await conn.fetchval(SELECT_CAMPAIGN_NAME_TAKEN, ref.id, config.name):
            raise Conflict(f"account {ref.name!r} has a campaign {config.name!r}")
        # Global, from a sequence: jtel addresses campaigns by this number (DiallerCampaignsID).
        campaign_id: int = await conn.fetchval(NEXT_CAMPAIGN_ID)
        event = CampaignCreated(account_id=ref.id, campaign_id=campaign_id, config=config)
        await _append(conn, ctx, ref.id, [event])
    return Campaign.of(campaign_id, config)


async def update_campaign(
    conn: Connection, ctx: Context, account: str | int, name: str, changes: CampaignChanges
) -> Campaign:
    """Apply a PATCH. A change of the state alone is recorded as CampaignStarted/Stopped (what
    happened, for the audit trail and for side effects such as auto-start); any other change as
    CampaignUpdated with the whole new configuration. A PATCH that changes nothing records none.
    """
    given = {f: v for f in changes.__struct_fields__ if (v := getattr(changes, f)) is not UNSET}
    if "name" in given:
        _check_name("name", given["name"])
    if "crm_fields" in given:
        _crm_fields(given["crm_fields"])
    async with conn.transaction():
        ref = await _locked_account(conn, account)
        current = await get_campaign(conn, ref.id, name)
        old = current.config()
        new = msgspec.structs.replace(old, **given)
        changed = _changed(old, new)
        if "name" in changed and await conn.fetchval(SELECT_CAMPAIGN_NAME_TAKEN, ref.id, new.name):
            raise Conflict(f"account {ref.name!r} has a campaign {new.name!r}")
        event: AccountEvent
        if changed == ["state"]:
            state_event = CampaignStarted if new.state == "running" else CampaignStopped
            event = state_event(account_id=ref.id, campaign_id=current.id)
        else:
            event = CampaignUpdated(
                account_id=ref.id, campaign_id=current.id, config=new, changed=changed
            )
        if changed:
            await _append(conn, ctx, ref.id, [event])
    return Campaign.of(current.id, new)


async def change_settings(
    conn: Connection, ctx: Context, account: str | int, changes: SettingsChanges
) -> AccountSettings:
    """Apply a PATCH; SettingsChanged carries the whole new settings and the names changed."""
    given: dict[str, object] = {}
    if changes.api_authentication is not UNSET:
        given["api_authentication"] = changes.api_authentication
    if changes.default_region is not UNSET:
        given["default_region"] = _region(changes.default_region)
    if changes.office_hours is not UNSET:
        given["office_hours"] = _office_hours(changes.office_hours)
    async with conn.transaction():
        ref = await _locked_account(conn, account)
        old = await get_settings(conn, ref.id)
        if changes.rate_limits is not UNSET:
            limits = msgspec.to_builtins(changes.rate_limits)  # leaves out the UNSET ones
            given["rate_limits"] = msgspec.structs.replace(old.rate_limits, **limits)
        new = msgspec.structs.replace(old, **given)
        changed = _changed(old, new)
        if changed:
            event = SettingsChanged(account_id=ref.id, settings=new, changed=changed)
            await _append(conn, ctx, ref.id, [event])
    return new


# --- reads --------------------------------------------------------------------------------------


async def find_account(conn: Connection, name_or_id: str | int) -> AccountRef | None:
    """The account a path names: digits are an id, anything else a name (case-insensitive)."""
    if isinstance(name_or_id, int) or (name_or_id.isascii() and name_or_id.isdigit()):
        account_id = int(name_or_id)
        if account_id >= 1 << 63:  # beyond bigint: no such account, not a database error
            return None
        row = await conn.fetchrow(SELECT_ACCOUNT_BY_ID, account_id)
    elif _NUL in name_or_id:
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
    )


async def list_campaigns(conn: Connection, account: str | int) -> list[Campaign]:
    ref = await require_account(conn, account)
    return [_campaign(row) for row in await conn.fetch(SELECT_CAMPAIGNS, ref.id)]


async def get_campaign(conn: Connection, account: str | int, name: str) -> Campaign:
    ref = await require_account(conn, account)
    row = None if _NUL in name else await conn.fetchrow(SELECT_CAMPAIGN, ref.id, name)
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
            Credential(id=r["credential_id"], api=r["dialect"], revoked=r["revoked"])
            for r in await conn.fetch(SELECT_CREDENTIALS, ref.id)
        ],
    )


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
