"""Account configuration: accounts, credentials, users, agents, skills, campaigns, settings.

Every write is one transaction: take the advisory locks, check the projection tables, then
`record()` the events on `account-<id>`. The locks make the checks exact under concurrency, and
they also serialise appends to one account stream, which are made at ANY_VERSION.
Lock order is always the global names lock first, then the account's, so writers never deadlock.
The SQL, the views writes answer with and the reads are in account_reads.py.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import zoneinfo
from collections.abc import Sequence
from typing import Annotated, Final

import msgspec
import phonenumbers
from msgspec import UNSET, Meta, UnsetType

from lead_ledger.ledger import key_store
from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.credentials import key_digest, login_token, new_key
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
    SettingsChanged,
    SkillAdded,
    UserCreated,
    stream_of_account,
)
from lead_ledger.ledger.locks import GLOBAL_NAMES_KEY, LOCK_XACT, account_lock_key
from lead_ledger.service.account_reads import (
    NEXT_ACCOUNT_ID,
    NEXT_CAMPAIGN_ID,
    SELECT_ACCOUNT_NAME_TAKEN,
    SELECT_AGENT_TAKEN,
    SELECT_CAMPAIGN_NAME_TAKEN,
    SELECT_LOGIN_CREDENTIAL,
    SELECT_SKILL_TAKEN,
    SELECT_USERNAME_TAKEN,
    Account,
    AccountRef,
    Agent,
    Campaign,
    IssuedCredential,
    Skill,
    User,
    credential_revoked,
    get_campaign,
    get_settings,
    require_account,
)
from lead_ledger.service.errors import Conflict, Invalid, NotFound
from lead_ledger.service.passwords import hash_password
from lead_ledger.service.transactions import write_transaction
from lead_ledger.service.writer import Context, record, stream_append


# Lock keys (and their namespaces) all live in ledger/locks.py, so none can collide.
async def lock_global_names(conn: Connection) -> None:
    await conn.execute(LOCK_XACT, GLOBAL_NAMES_KEY)


async def lock_account(conn: Connection, account_id: int) -> None:
    await conn.execute(LOCK_XACT, account_lock_key(account_id))


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
    vicidial_campaign: Name | None = None


class CampaignChanges(_Input, frozen=True):
    """A PATCH: only the fields given change; `crm_fields: null` and `vicidial_campaign: null`
    clear them."""

    name: Name | UnsetType = UNSET
    direction: Direction | UnsetType = UNSET
    assignment: Assignment | UnsetType = UNSET
    dial_mode: DialMode | UnsetType = UNSET
    state: CampaignState | UnsetType = UNSET
    crm_fields: list[str] | UnsetType | None = UNSET
    vicidial_campaign: Name | UnsetType | None = UNSET


class OfficeHoursInput(_Input, frozen=True):
    timezone: str
    days: Weekdays
    start: Clock
    end: Clock


class RateLimitsInput(_Input, frozen=True):
    """Only the limits given change; the others keep their current values."""

    ozonetel_bulk_per_minute: PerMinute | UnsetType = UNSET
    ozonetel_add_per_minute: PerMinute | UnsetType = UNSET
    ozonetel_delete_per_minute: PerMinute | UnsetType = UNSET
    ozonetel_bulk_v4_per_minute: PerMinute | UnsetType = UNSET


class SettingsChanges(_Input, frozen=True):
    """A PATCH: only the fields given change; null clears default_region and office_hours."""

    api_authentication: ApiAuthentication | UnsetType = UNSET
    default_region: str | UnsetType | None = UNSET
    office_hours: OfficeHoursInput | UnsetType | None = UNSET
    rate_limits: RateLimitsInput | UnsetType = UNSET


# --- validation the types cannot express --------------------------------------------------------

# Names appear in URL paths and vendor payloads: no slashes, no control characters.
_NAME_CHARS: Final = re.compile(r"[^/\x00-\x1f\x7f]+")
_CRM_FIELD: Final = re.compile(r"[^:\s\x00-\x1f\x7f]+:[^:\s\x00-\x1f\x7f]+")


def _check_name(field: str, value: str) -> str:
    if value != value.strip() or not _NAME_CHARS.fullmatch(value):
        raise Invalid(field, "must not contain '/', control characters or outer spaces")
    return value


def _region(value: str | None) -> str | None:
    if value is None:
        return None
    # ASCII first: Unicode case mapping turns other letters into these (a dotless i into I).
    region = value.upper() if value.isascii() else value
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


def _vicidial_campaign(value: str | None) -> str | None:
    return None if value is None else _check_name("vicidial_campaign", value)


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
    async with write_transaction(conn):
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
    # Only the digest is stored (lead_ledger.api.auth finds keys by it), so the key is shown here
    # once and never again.
    key = new_key()
    credential_id = f"cred_{secrets.token_hex(8)}"
    async with write_transaction(conn):
        ref = await _locked_account(conn, account)
        issued = CredentialIssued(
            account_id=ref.id,
            credential_id=credential_id,
            dialect=new.api,
            key_sha256=key_digest(key),
        )
        await _append(conn, ctx, ref.id, [issued])
    return IssuedCredential(id=credential_id, api=new.api, key=key)


async def issue_login_token(
    conn: Connection, ctx: Context, account_id: int, username: str, dialect: Dialect
) -> str:
    """The key of the user's login credential of this dialect: the one a login issued before,
    while it is not revoked, else a new one (CredentialIssued naming the user), as Django REST
    framework's ObtainAuthToken answers a user's one token. Its key is derived from the
    account's secret (ledger/credentials.py), so it can be answered again although only its
    digest is stored, and it stays the same through `keys rotate`."""
    async with write_transaction(conn):
        # Under the account's lock: logins of one user racing get one credential between them.
        ref = await _locked_account(conn, account_id)
        secret = await key_store.account_secret(conn, key_store.master_key(), ref.id)
        credential_id = await conn.fetchval(SELECT_LOGIN_CREDENTIAL, ref.id, username, dialect)
        if credential_id is None:
            credential_id = f"cred_{secrets.token_hex(8)}"
            issued = CredentialIssued(
                account_id=ref.id,
                credential_id=credential_id,
                dialect=dialect,
                key_sha256=key_digest(login_token(secret, credential_id)),
                username=username,
            )
            await _append(conn, ctx, ref.id, [issued])
    return login_token(secret, credential_id)


async def revoke_credential(
    conn: Connection, ctx: Context, account: str | int, credential_id: str
) -> None:
    """Revoke; revoking a revoked credential again records nothing (a retry is harmless)."""
    async with write_transaction(conn):
        ref = await _locked_account(conn, account)
        revoked = await credential_revoked(conn, ref.id, credential_id)
        if revoked is None:
            raise NotFound(f"account {ref.name!r} has no credential {credential_id!r}")
        if not revoked:
            event = CredentialRevoked(account_id=ref.id, credential_id=credential_id)
            await _append(conn, ctx, ref.id, [event])


async def create_user(conn: Connection, ctx: Context, account: str | int, new: NewUser) -> User:
    username = _check_name("username", new.username)
    # scrypt takes tens of milliseconds: off the event loop, and before any lock is held.
    password_hash = await asyncio.to_thread(hash_password, new.password)
    async with write_transaction(conn):
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
    async with write_transaction(conn):
        ref = await _locked_account(conn, account)
        if await conn.fetchval(SELECT_AGENT_TAKEN, ref.id, agent_id):
            raise Conflict(f"account {ref.name!r} has an agent {agent_id!r}")
        event = AgentAdded(account_id=ref.id, agent_id=agent_id, name=new.name)
        await _append(conn, ctx, ref.id, [event])
    return Agent(agent_id=agent_id, name=new.name)


async def add_skill(conn: Connection, ctx: Context, account: str | int, new: NewSkill) -> Skill:
    name = _check_name("name", new.name)
    async with write_transaction(conn):
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
        vicidial_campaign=_vicidial_campaign(new.vicidial_campaign),
    )
    async with write_transaction(conn):
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
    if "vicidial_campaign" in given:
        _vicidial_campaign(given["vicidial_campaign"])
    async with write_transaction(conn):
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
    async with write_transaction(conn):
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
