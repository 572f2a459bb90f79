"""Property: whatever lead commands run through the real write path, a replay equals live."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import msgspec
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from msgspec import UNSET, UnsetType

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.events import (
    AccountSettings,
    CampaignConfig,
    Dialect,
    LeadFields,
    OfficeHours,
)
from lead_ledger.ledger.lead import (
    LeadError,
    decide_archive,
    decide_dearchive,
    decide_delete,
)
from lead_ledger.ledger.phones import dedupe_keys
from lead_ledger.ledger.store import read_stream
from lead_ledger.projections.rebuild import verify
from lead_ledger.service.account_reads import (
    AccountDetail,
    Agent,
    Campaign,
    Credential,
    Skill,
    User,
    get_account,
)
from lead_ledger.service.accounts import (
    CampaignChanges,
    NewAccount,
    NewAgent,
    NewCampaign,
    NewCredential,
    NewSkill,
    NewUser,
    OfficeHoursInput,
    RateLimitsInput,
    SettingsChanges,
    add_agent,
    add_skill,
    change_settings,
    create_account,
    create_campaign,
    create_user,
    issue_credential,
    revoke_credential,
    update_campaign,
)
from lead_ledger.service.erasures import ErasureRequest, erase
from lead_ledger.service.errors import Conflict, Invalid, NotFound, ServiceError
from lead_ledger.service.lead_inserts import insert_leads
from lead_ledger.service.leads import (
    ArchiveCounts,
    archive_leads,
    dearchive_leads,
    delete_leads,
    update_leads,
)
from lead_ledger.service.transactions import write_transaction
from tests.factories import ADMIN, NATIVE
from tests.integration.test_rebuild import (
    REGION,
    change_lead,
    insert_lead,
    update,
)
from tests.integration.test_rebuild import create_account as seed_account


@pytest.fixture
def pool(owner_pool: asyncpg.Pool) -> asyncpg.Pool:
    """Verify creates shadow tables, the owner's work: this module's pool logs in as the owner."""
    return owner_pool


_accounts = itertools.count()

# Text PostgreSQL accepts (no NUL), with some non-ASCII to exercise encoding end to end.
text = st.text(alphabet="abcXYZ019 -éü", max_size=6)
optional_text = st.none() | text
phones = st.lists(st.from_regex(r"\+?[0-9]{7,12}", fullmatch=True), min_size=1, max_size=2)
crm = st.dictionaries(st.sampled_from(["crm:plan", "crm:tier", "crm:zone"]), text, max_size=2)
# Hypothesis takes naive bounds; `timezones` makes the drawn values aware.
expiry = st.none() | st.datetimes(
    min_value=datetime(2020, 1, 1),  # noqa: DTZ001
    max_value=datetime(2030, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)
patches = st.fixed_dictionaries(
    {},
    optional={
        "phone_numbers": phones,
        "name": optional_text,
        "city": optional_text,
        "user_data": optional_text,
        "reference_number": optional_text,
        "crm": crm,
        "status": st.sampled_from(["new", "called", "done"]),
        "priority": st.integers(0, 9),
        "expires_at": expiry,
        "extra": st.dictionaries(st.sampled_from(["a", "b"]), st.none() | st.integers(0, 5)),
    },
)
flags = st.tuples(st.booleans(), st.booleans(), st.booleans())
commands = st.lists(
    st.one_of(
        st.tuples(st.just("insert"), st.integers(0, 2), phones, optional_text, crm),
        st.tuples(st.just("update"), st.integers(0, 99), patches),
        st.tuples(st.just("reassign"), st.integers(0, 99), st.none() | st.sampled_from("ab")),
        st.tuples(st.just("delete"), st.integers(0, 99)),
        st.tuples(st.just("archive"), st.integers(0, 99), flags),
        st.tuples(st.just("dearchive"), st.integers(0, 99), st.booleans(), st.booleans()),
        st.tuples(st.just("erase"), st.integers(0, 99), st.booleans()),
    ),
    min_size=1,
    max_size=25,
)


async def run_command(
    conn: Connection,
    account_id: int,
    campaigns: list[int],
    leads: list[int],
    command: tuple[Any, ...],
) -> None:
    """One command through decide + record(); a command the lead's state refuses does nothing."""
    kind = command[0]
    if kind == "insert":
        _, campaign, phone_numbers, name, crm_fields = command
        fields = LeadFields(phone_numbers=phone_numbers, name=name, crm=crm_fields)
        leads.append(await insert_lead(conn, account_id, campaigns[campaign], fields))
        return
    if not leads:
        return
    lead_id = leads[command[1] % len(leads)]
    try:
        match command:
            case ("update", _, patch):
                await change_lead(conn, lead_id, update(patch))
            case ("reassign", _, agent):
                await change_lead(conn, lead_id, update({"agent": agent}))
            case ("delete", _):
                await change_lead(conn, lead_id, lambda s, _t: [decide_delete(s)])
            case ("archive", _, (insert, upd, delete)):
                await change_lead(
                    conn,
                    lead_id,
                    lambda s, t: (
                        decide_archive(s, insert=insert, update=upd, delete=delete, times=t).events
                    ),
                )
            case ("erase", _, by_phone):
                # By lead id, or by the lead's first number (every lead that shares it goes).
                phone = await conn.fetchval(PHONE_OF_LEAD, lead_id)
                asked = (
                    ErasureRequest(phone=phone)
                    if by_phone and phone
                    else ErasureRequest(lead_id=lead_id)
                )
                await erase(conn, NATIVE, account_id, asked)
            case ("dearchive", _, insert, delete):
                await change_lead(
                    conn,
                    lead_id,
                    lambda s, _t: (
                        decide_dearchive(
                            s, insert=insert, delete=delete, default_region=REGION
                        ).events
                    ),
                )
            case _:
                pytest.fail(f"no such command: {command!r}")
    except LeadError:
        pass  # not live / not archived: the service would refuse it and record nothing


# A lead's first number, from the live row or its archive copy (none once deleted or erased).
PHONE_OF_LEAD = """
SELECT phone_numbers[1] FROM leads WHERE lead_id = $1
UNION ALL SELECT phone_numbers[1] FROM lead_archive WHERE lead_id = $1
LIMIT 1
"""


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(commands)
async def test_replay_equals_live_for_any_command_sequence(
    pool: asyncpg.Pool, script: list[tuple[Any, ...]]
) -> None:
    """Random lead commands over three campaigns: verify finds live == rebuilt every time."""
    async with pool.acquire() as conn:
        account_id, campaigns = await seed_account(conn, f"p{next(_accounts)}", 3)
        leads: list[int] = []
        for command in script:
            await run_command(conn, account_id, campaigns, leads, command)
    report = await verify(pool)
    assert [(t.name, t.differences) for t in report.tables if not t.ok] == []


# --- the same property through the services: configuration and lead commands --------------------

CAMPAIGN_NAMES = ["c0", "c1", "c2", "c/3"]  # the last one is refused as a name
# Spellings of the same numbers: under region IN each group has one dedupe key.
SAME_NUMBER = {
    "+919876543210": "A",
    "09876543210": "A",
    "98765 43210": "A",
    "919876543210": "A",
    "+91 98765 43211": "B",
    "9876543211": "B",
    "08123456789": "C",
    "+918123456789": "C",
    "+1 202 555 0100": "D",
}
PASSWORD = "correct horse"
T = TypeVar("T")

account_index = st.sampled_from([0, 0, 0, 1])
unset = st.just(UNSET)  # a PATCH field not given
lead_phones = st.lists(st.sampled_from(sorted(SAME_NUMBER)), min_size=1, max_size=2)
crm_field_lists = st.sampled_from([None, ["crm:plan"], ["crm:plan", "crm:tier"], ["nocolon"]])
campaign_config = {
    "direction": st.sampled_from(["outbound", "inbound"]),
    "assignment": st.sampled_from(["none", "agentwise", "skillwise"]),
    "dial_mode": st.sampled_from(["Progressive", "Predictive", "Preview", "IVR"]),
    "state": st.sampled_from(["running", "stopped"]),
    "crm_fields": crm_field_lists,
}
new_campaigns = st.builds(NewCampaign, name=st.sampled_from(CAMPAIGN_NAMES), **campaign_config)
campaign_changes = st.builds(
    CampaignChanges,
    **{
        f: unset | values
        for f, values in {"name": st.sampled_from(CAMPAIGN_NAMES), **campaign_config}.items()
    },
) | st.builds(CampaignChanges, state=campaign_config["state"])  # a start or a stop alone
office_hours = st.builds(
    OfficeHoursInput,
    timezone=st.sampled_from(["Asia/Kolkata", "UTC", "Mars/Olympus"]),
    days=st.lists(st.integers(1, 7), min_size=1, max_size=3),
    start=st.sampled_from(["09:00", "18:00"]),
    end=st.sampled_from(["18:00", "02:30"]),
)
rate_limits = st.builds(
    RateLimitsInput,
    ozonetel_bulk_per_minute=unset | st.integers(1, 500),
    ozonetel_add_per_minute=unset | st.integers(1, 500),
)
settings_changes = st.builds(
    SettingsChanges,
    api_authentication=unset | st.sampled_from(["BASIC_AUTH", "TOKEN_AUTH", "NONE"]),
    # "XX" is no region: refused.
    default_region=unset | st.sampled_from(["IN", "in", "US", "XX", None]),
    office_hours=unset | st.none() | office_hours,
    rate_limits=unset | rate_limits,
)
lead_rows = st.lists(st.tuples(lead_phones, optional_text), min_size=1, max_size=4)
patch_fields = {
    "phone_numbers": lead_phones,
    "name": optional_text,
    "status": st.sampled_from(["new", "called"]),
    "agent": st.none() | st.sampled_from(["a1", "a2"]),
    "crm": crm,
}
# One field for certain, maybe more.
lead_patches = st.tuples(
    st.sampled_from(sorted(patch_fields)).flatmap(
        lambda name: patch_fields[name].map(lambda value: {name: value})
    ),
    st.fixed_dictionaries({}, optional=patch_fields),
).map(lambda drawn: {**drawn[1], **drawn[0]})
some_leads = st.lists(st.integers(0, 99), min_size=1, max_size=2)
campaign_updates = st.tuples(
    st.just("update_campaign"),
    account_index,
    st.sampled_from(["c0", "c0", *CAMPAIGN_NAMES]),  # c0 exists from the start
    campaign_changes,
)
credentials = st.tuples(
    st.just("credential"),
    account_index,
    st.sampled_from(["flexydial", "ozonetel", "vicidial", "jtel", "native"]),
)
revokes = st.tuples(st.just("revoke"), account_index, st.integers(0, 9))
# Campaign updates, credentials and revokes twice as often as the rest: updates and revokes act
# on what other commands created.
config_commands = st.sampled_from(
    [
        st.tuples(st.just("campaign"), account_index, new_campaigns),
        campaign_updates,
        campaign_updates,
        st.tuples(st.just("settings"), account_index, settings_changes),
        credentials,
        credentials,
        revokes,
        revokes,
        st.tuples(st.just("user"), account_index, st.sampled_from(["ann", "bob", " cy"])),
        st.tuples(
            st.just("agent"), account_index, st.sampled_from(["a1", "a2", "a/3"]), optional_text
        ),
        st.tuples(st.just("skill"), account_index, st.sampled_from(["s1", "s2", "s3 "])),
    ]
).flatmap(lambda command: command)
inserts = st.tuples(st.just("insert"), account_index, st.integers(0, 9), st.booleans(), lead_rows)
archives = st.tuples(st.just("archive"), account_index, st.integers(0, 99), flags)
dearchives = st.tuples(
    st.just("dearchive"), account_index, st.integers(0, 99), st.booleans(), st.booleans()
)
round_trips = st.tuples(
    st.just("round_trip"), account_index, st.integers(0, 99), flags, st.booleans(), st.booleans()
)
other_lead_commands = st.sampled_from(
    [
        st.tuples(st.just("update"), account_index, some_leads, lead_patches),
        st.tuples(st.just("delete"), account_index, some_leads),
        archives,
        dearchives,
        round_trips,
    ]
).flatmap(lambda command: command)
# A third each: configuration, inserts, other lead commands (st.one_of would flatten the groups
# into one uniform choice). Most commands are on the first account; the second account's lead
# commands also name the first one's leads, which the services must skip.
service_commands = st.lists(
    st.sampled_from([config_commands, inserts, other_lead_commands]).flatmap(lambda group: group),
    min_size=10,
    max_size=20,
)


@dataclass
class AccountModel:
    """What the service answers say an account holds; the views must come to the same."""

    id: int
    name: str
    settings: AccountSettings
    campaigns: dict[int, Campaign] = field(default_factory=dict)
    credentials: dict[str, Credential] = field(default_factory=dict)
    users: set[str] = field(default_factory=set)
    agents: dict[str, str | None] = field(default_factory=dict)
    skills: set[str] = field(default_factory=set)

    def campaign_named(self, name: str) -> Campaign | None:
        return next((c for c in self.campaigns.values() if c.name == name), None)

    def detail(self) -> AccountDetail:
        return AccountDetail(
            id=self.id,
            name=self.name,
            settings=self.settings,
            campaigns=sorted(self.campaigns.values(), key=lambda c: c.id),
            agents=[Agent(agent_id=a, name=n) for a, n in sorted(self.agents.items())],
            skills=[Skill(name=s) for s in sorted(self.skills)],
            users=[User(username=u, account=self.name) for u in sorted(self.users)],
            credentials=sorted(self.credentials.values(), key=lambda c: c.id),
        )


@dataclass
class LeadModel:
    """A lead as the commands accepted so far leave it."""

    account_id: int
    campaign_id: int
    fields: LeadFields | None  # None while not live
    keys: list[str]
    archive: tuple[LeadFields, list[str]] | None = None  # the archived copy and its keys

    def patched(self, patch: dict[str, Any], region: str | None) -> tuple[LeadFields, list[str]]:
        """Fields and keys after a patch: crm merges, the rest replaces; keys follow numbers."""
        assert self.fields is not None
        given = dict(patch)
        if "crm" in given:
            given["crm"] = {**self.fields.crm, **given["crm"]}
        fields = msgspec.structs.replace(self.fields, **given)
        if fields.phone_numbers == self.fields.phone_numbers:
            return fields, self.keys
        return fields, dedupe_keys(fields.phone_numbers, region)


@dataclass
class ExampleModel:
    prefix: str
    accounts: list[AccountModel]
    usernames: set[str] = field(default_factory=set)
    credential_ids: list[str] = field(default_factory=list)
    leads: dict[int, LeadModel] = field(default_factory=dict)  # every lead ever inserted
    # Per rejections stream: (row number, the existing lead ids) of each refused row.
    rejections: dict[str, list[tuple[int, list[int]]]] = field(default_factory=dict)

    def pick_leads(
        self, indexes: list[int], account: AccountModel, *, live: bool = True
    ) -> list[int]:
        """Leads a command names: an even index picks among the account's live (or, with
        live=False, archived) leads, an odd one among all, maybe another account's or gone."""
        ids = list(self.leads)
        picked = set()
        for i in indexes:
            fitting = self.owned(account, ids, live=live) if i % 2 == 0 else []
            choices = fitting or ids
            picked.add(choices[i // 2 % len(choices)])
        return sorted(picked)

    def owned(self, account: AccountModel, lead_ids: list[int], *, live: bool) -> list[int]:
        """Those of the account's leads that are live (or, with live=False, archived)."""
        return [
            i
            for i in lead_ids
            if self.leads[i].account_id == account.id
            and (self.leads[i].fields is not None if live else self.leads[i].archive is not None)
        ]

    def expected_duplicates(
        self, campaign_id: int, keys: list[list[str]]
    ) -> dict[int, tuple[list[int], list[int]]]:
        """Rows refused when every row checks duplicates: (live leads, earlier rows) it repeats."""
        owners: dict[str, set[int]] = {}
        for lead_id, lead in self.leads.items():
            if lead.campaign_id == campaign_id and lead.fields is not None:
                for key in lead.keys:
                    owners.setdefault(key, set()).add(lead_id)
        refused: dict[int, tuple[list[int], list[int]]] = {}
        seen: dict[str, int] = {}
        for row, row_keys in enumerate(keys):
            found = sorted({lead for key in row_keys for lead in owners.get(key, ())})
            earlier = sorted({seen[key] for key in row_keys if key in seen})
            if found or earlier:
                refused[row] = (found, earlier)
            else:
                for key in row_keys:
                    seen.setdefault(key, row)
        return refused


def _valid_name(name: str) -> bool:
    return name == name.strip() and "/" not in name


def _valid_crm(crm_fields: list[str] | None) -> bool:
    return crm_fields is None or all(":" in f for f in crm_fields)


def _expected_settings(old: AccountSettings, changes: SettingsChanges) -> AccountSettings | None:
    """The settings a PATCH leads to, or None when the service must refuse it (Invalid)."""
    new = old
    if not isinstance(changes.api_authentication, UnsetType):
        new = msgspec.structs.replace(new, api_authentication=changes.api_authentication)
    if not isinstance(changes.default_region, UnsetType):
        region = changes.default_region
        if region is not None and region.upper() == "XX":
            return None
        new = msgspec.structs.replace(new, default_region=region and region.upper())
    if not isinstance(changes.office_hours, UnsetType):
        hours = changes.office_hours
        if hours is not None and (hours.timezone == "Mars/Olympus" or hours.start == hours.end):
            return None
        new = msgspec.structs.replace(
            new,
            office_hours=None
            if hours is None
            else OfficeHours(
                timezone=hours.timezone,
                days=sorted(set(hours.days)),
                start=hours.start,
                end=hours.end,
            ),
        )
    if not isinstance(changes.rate_limits, UnsetType):
        limits = msgspec.to_builtins(changes.rate_limits)
        new = msgspec.structs.replace(
            new, rate_limits=msgspec.structs.replace(new.rate_limits, **limits)
        )
    return new


async def attempt(refusal: type[ServiceError] | None, call: Awaitable[T]) -> T | None:
    """Await a service call; when the model expects a refusal, it must be exactly that one."""
    if refusal is None:
        return await call
    with pytest.raises(refusal):
        await call
    event(f"refused: {refusal.__name__}")
    return None


# Each command through its service. The model says beforehand whether the service must refuse
# it and with what; an accepted command updates the model from the service's answer.


async def cmd_new_campaign(
    conn: Connection, model: ExampleModel, account: AccountModel, new: NewCampaign
) -> None:
    refusal: type[ServiceError] | None = None
    if not (_valid_name(new.name) and _valid_crm(new.crm_fields)):
        refusal = Invalid
    elif account.campaign_named(new.name):
        refusal = Conflict
    created = await attempt(refusal, create_campaign(conn, ADMIN, account.id, new))
    if created is not None:
        assert created.config() == CampaignConfig(**msgspec.structs.asdict(new))
        account.campaigns[created.id] = created


async def cmd_change_campaign(
    conn: Connection,
    model: ExampleModel,
    account: AccountModel,
    name: str,
    changes: CampaignChanges,
) -> None:
    given = {f: v for f in changes.__struct_fields__ if (v := getattr(changes, f)) is not UNSET}
    current = account.campaign_named(name)
    expected = None if current is None else msgspec.structs.replace(current, **given)
    refusal: type[ServiceError] | None = None
    if not (_valid_name(given.get("name", "ok")) and _valid_crm(given.get("crm_fields"))):
        refusal = Invalid
    elif expected is None:
        refusal = NotFound
    elif expected.name != name and account.campaign_named(expected.name):
        refusal = Conflict
    updated = await attempt(refusal, update_campaign(conn, ADMIN, account.id, name, changes))
    if updated is not None:
        assert updated == expected
        account.campaigns[updated.id] = updated
        if updated != current:
            event("campaign changed")


async def cmd_patch_settings(
    conn: Connection, model: ExampleModel, account: AccountModel, changes: SettingsChanges
) -> None:
    expected = _expected_settings(account.settings, changes)
    refusal = Invalid if expected is None else None
    answer = await attempt(refusal, change_settings(conn, ADMIN, account.id, changes))
    if answer is not None:
        assert answer == expected
        account.settings = answer


async def cmd_new_credential(
    conn: Connection, model: ExampleModel, account: AccountModel, api: Dialect
) -> None:
    issued = await issue_credential(conn, ADMIN, account.id, NewCredential(api=api))
    assert issued.api == api
    account.credentials[issued.id] = Credential(id=issued.id, api=api, revoked=False)
    model.credential_ids.append(issued.id)


async def cmd_revoke(
    conn: Connection, model: ExampleModel, account: AccountModel, index: int
) -> None:
    """Revoke a credential: an even index picks one of the account's own, an odd one any of the
    example's (maybe another account's or revoked already) or one that does not exist."""
    own = [c for c in account.credentials if index % 2 == 0]
    choices = own or [*model.credential_ids, "cred_missing"]
    credential_id = choices[index // 2 % len(choices)]
    credential = account.credentials.get(credential_id)
    refusal = NotFound if credential is None else None
    await attempt(refusal, revoke_credential(conn, ADMIN, account.id, credential_id))
    if credential is not None:
        account.credentials[credential_id] = msgspec.structs.replace(credential, revoked=True)
        event("credential revoked")


async def cmd_new_user(
    conn: Connection, model: ExampleModel, account: AccountModel, name: str
) -> None:
    username = f"{name}.{model.prefix}"
    refusal: type[ServiceError] | None = None
    if not _valid_name(username):
        refusal = Invalid
    elif username in model.usernames:
        refusal = Conflict  # usernames are unique over all accounts
    user = NewUser(username=username, password=PASSWORD)
    if await attempt(refusal, create_user(conn, ADMIN, account.id, user)):
        account.users.add(username)
        model.usernames.add(username)


async def cmd_new_agent(
    conn: Connection, model: ExampleModel, account: AccountModel, agent_id: str, name: str | None
) -> None:
    refusal: type[ServiceError] | None = None
    if not _valid_name(agent_id):
        refusal = Invalid
    elif agent_id in account.agents:
        refusal = Conflict
    agent = NewAgent(agent_id=agent_id, name=name)
    if await attempt(refusal, add_agent(conn, ADMIN, account.id, agent)):
        account.agents[agent_id] = name


async def cmd_new_skill(
    conn: Connection, model: ExampleModel, account: AccountModel, name: str
) -> None:
    refusal: type[ServiceError] | None = None
    if not _valid_name(name):
        refusal = Invalid
    elif name in account.skills:
        refusal = Conflict
    if await attempt(refusal, add_skill(conn, ADMIN, account.id, NewSkill(name=name))):
        account.skills.add(name)


async def cmd_insert(
    conn: Connection,
    model: ExampleModel,
    account: AccountModel,
    index: int,
    check: bool,
    rows: list[tuple[list[str], str | None]],
) -> None:
    campaign_ids = sorted(account.campaigns)
    campaign_id = campaign_ids[index % len(campaign_ids)]
    stream = f"request-{model.prefix}-{len(model.rejections)}"
    region = account.settings.default_region
    keys = [dedupe_keys(phones, region) for phones, _ in rows]
    expected = model.expected_duplicates(campaign_id, keys) if check else {}
    async with write_transaction(conn):
        result = await insert_leads(
            conn,
            NATIVE,
            account_id=account.id,
            campaign_id=campaign_id,
            rows=[LeadFields(phone_numbers=phones, name=name) for phones, name in rows],
            check_duplicates=check,
            rejections_stream=stream,
        )
    assert sorted(result.duplicates) == sorted(expected)
    assert sorted(result.inserted) == [i for i in range(len(rows)) if i not in expected]
    for row, (found, earlier) in expected.items():
        assert result.duplicates[row] == (found or sorted(result.inserted[e] for e in earlier))
    if check and region == "IN":
        # Spelled differently, still one number: a row sharing one with an earlier one-number
        # row of the batch is refused, whether that earlier row was inserted or refused.
        for i, (phones, _) in enumerate(rows):
            numbers = {SAME_NUMBER[p] for p in phones}
            if any(len(e) == 1 and SAME_NUMBER[e[0]] in numbers for e, _ in rows[:i]):
                assert i in result.duplicates
    for row, lead_id in result.inserted.items():
        phones, name = rows[row]
        fields = LeadFields(phone_numbers=phones, name=name)
        model.leads[lead_id] = LeadModel(account.id, campaign_id, fields, keys[row])
    if result.duplicates:
        event("duplicates refused")
        model.rejections[stream] = sorted((row + 1, ids) for row, ids in result.duplicates.items())


async def cmd_update(
    conn: Connection,
    model: ExampleModel,
    account: AccountModel,
    indexes: list[int],
    patch: dict[str, Any],
) -> None:
    lead_ids = model.pick_leads(indexes, account)
    region = account.settings.default_region
    expected = {
        i: model.leads[i].patched(patch, region) for i in model.owned(account, lead_ids, live=True)
    }
    async with write_transaction(conn):
        updated = await update_leads(
            conn, NATIVE, account_id=account.id, patches=dict.fromkeys(lead_ids, patch)
        )
    written = updated.written
    assert sorted(written) == sorted(expected)
    for lead_id, (fields, keys) in expected.items():
        # Events only for real changes.
        assert bool(written[lead_id]) == (fields != model.leads[lead_id].fields)
        model.leads[lead_id].fields, model.leads[lead_id].keys = fields, keys


async def cmd_delete(
    conn: Connection, model: ExampleModel, account: AccountModel, indexes: list[int]
) -> None:
    lead_ids = model.pick_leads(indexes, account)
    async with write_transaction(conn):
        deleted = await delete_leads(conn, NATIVE, account_id=account.id, lead_ids=lead_ids)
    assert deleted == model.owned(account, lead_ids, live=True)
    for lead_id in deleted:
        model.leads[lead_id].fields = None


async def cmd_archive(
    conn: Connection,
    model: ExampleModel,
    account: AccountModel,
    index: int,
    archive_flags: tuple[bool, bool, bool],
) -> None:
    """Archive one lead; the model foresees the copy, re-sync and safe delete (Vicidial's order)."""
    copy, sync, remove = archive_flags
    named = model.pick_leads([index], account)
    lead_ids = model.owned(account, named, live=True)
    expected = dict.fromkeys(["insert_count", "update_count", "delete_count"], 0)
    for lead_id in lead_ids:
        lead = model.leads[lead_id]
        assert lead.fields is not None
        if copy and lead.archive is None:
            lead.archive = (lead.fields, lead.keys)
            expected["insert_count"] += 1
        elif sync and lead.archive is not None and lead.archive[0] != lead.fields:
            lead.archive = (lead.fields, lead.keys)
            expected["update_count"] += 1
        if remove and lead.archive is not None and lead.archive[0] == lead.fields:
            lead.fields = None
            expected["delete_count"] += 1
            event("lead archived away")
    async with write_transaction(conn):
        counts = await archive_leads(
            conn,
            NATIVE,
            account_id=account.id,
            lead_ids=named,
            insert=copy,
            update=sync,
            delete=remove,
        )
    assert counts == ArchiveCounts(select_count=len(lead_ids), **expected)


async def cmd_dearchive(
    conn: Connection,
    model: ExampleModel,
    account: AccountModel,
    index: int,
    restore: bool,
    remove: bool,
) -> None:
    """Dearchive one lead: restore it when not live, then drop the copy when equal to live."""
    named = model.pick_leads([index], account, live=False)
    lead_ids = model.owned(account, named, live=False)
    expected = dict.fromkeys(["insert_count", "update_count", "delete_count"], 0)
    for lead_id in lead_ids:
        lead = model.leads[lead_id]
        assert lead.archive is not None
        if restore and lead.fields is None:
            lead.fields, lead.keys = lead.archive
            expected["insert_count"] += 1
            event("lead restored")
        if remove and lead.fields == lead.archive[0]:
            lead.archive = None
            expected["delete_count"] += 1
    async with write_transaction(conn):
        counts = await dearchive_leads(
            conn,
            NATIVE,
            account_id=account.id,
            lead_ids=named,
            insert=restore,
            delete=remove,
        )
    assert counts == ArchiveCounts(select_count=len(lead_ids), **expected)


async def cmd_round_trip(
    conn: Connection,
    model: ExampleModel,
    account: AccountModel,
    index: int,
    archive_flags: tuple[bool, bool, bool],
    restore: bool,
    remove: bool,
) -> None:
    """Archive a lead, then dearchive it (whatever the archive left)."""
    lead_ids = model.pick_leads([index], account)
    await cmd_archive(conn, model, account, index, archive_flags)
    if lead_ids and model.leads[lead_ids[0]].archive is not None:
        index = list(model.leads).index(lead_ids[0]) * 2 + 1  # an odd index names it directly
        await cmd_dearchive(conn, model, account, index, restore, remove)


COMMANDS: dict[str, Callable[..., Awaitable[None]]] = {
    "campaign": cmd_new_campaign,
    "update_campaign": cmd_change_campaign,
    "settings": cmd_patch_settings,
    "credential": cmd_new_credential,
    "revoke": cmd_revoke,
    "user": cmd_new_user,
    "agent": cmd_new_agent,
    "skill": cmd_new_skill,
    "insert": cmd_insert,
    "update": cmd_update,
    "delete": cmd_delete,
    "archive": cmd_archive,
    "dearchive": cmd_dearchive,
    "round_trip": cmd_round_trip,
}
NEEDS_LEADS = frozenset({"update", "delete", "archive", "dearchive", "round_trip"})


LEAD_ROW = "lead_id, campaign_id, dedupe_keys, phone_numbers, name, status, agent, crm"


def _lead_rows(rows: list[asyncpg.Record]) -> dict[int, tuple[Any, ...]]:
    # jsonb arrives as raw JSON text (ledger/database.py).
    return {
        r["lead_id"]: (
            r["campaign_id"],
            r["dedupe_keys"],
            LeadFields(
                phone_numbers=r["phone_numbers"],
                name=r["name"],
                status=r["status"],
                agent=r["agent"],
                crm=msgspec.json.decode(r["crm"]),
            ),
        )
        for r in rows
    }


async def check_views(conn: Connection, model: ExampleModel) -> None:
    """The views hold what the service answers and the model say: configuration, live and
    archived leads, phone contacts, and the refusals recorded."""
    for account in model.accounts:
        detail = await get_account(conn, account.id)
        # Sorted here, not by the database's collation.
        detail.agents.sort(key=lambda a: a.agent_id)
        detail.skills.sort(key=lambda s: s.name)
        detail.users.sort(key=lambda u: u.username)
        detail.credentials.sort(key=lambda c: c.id)
        assert detail == account.detail()
    lead_ids = list(model.leads)
    live = await conn.fetch(f"SELECT {LEAD_ROW} FROM leads WHERE lead_id = ANY($1)", lead_ids)
    assert _lead_rows(live) == {
        i: (lead.campaign_id, lead.keys, lead.fields)
        for i, lead in model.leads.items()
        if lead.fields is not None
    }
    archived = await conn.fetch(
        f"SELECT {LEAD_ROW} FROM lead_archive WHERE lead_id = ANY($1)", lead_ids
    )
    assert _lead_rows(archived) == {
        i: (lead.campaign_id, lead.archive[1], lead.archive[0])
        for i, lead in model.leads.items()
        if lead.archive is not None
    }
    phones = await conn.fetch(
        "SELECT lead_id, campaign_id, value FROM contacts "
        "WHERE kind = 'phone' AND lead_id = ANY($1)",
        lead_ids,
    )
    assert {tuple(r) for r in phones} == {
        (i, lead.campaign_id, key)
        for i, lead in model.leads.items()
        if lead.fields is not None
        for key in lead.keys
    }
    for stream, refused in model.rejections.items():
        refusals = [msgspec.json.decode(r.data) for r in await read_stream(conn, stream)]
        assert [(r["row_number"], r["existing_lead_ids"]) for r in refusals] == refused


_service_examples = itertools.count()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(service_commands)
async def test_replay_equals_live_for_service_commands(
    pool: asyncpg.Pool, script: list[tuple[Any, ...]]
) -> None:
    """Configuration and lead commands through the services over two accounts: every refusal is
    the one expected, the views hold what the answers said, and verify finds live == rebuilt."""
    prefix = f"s{next(_service_examples)}"
    async with pool.acquire() as conn:
        accounts = []
        for n in range(2):
            created = await create_account(
                conn, ADMIN, NewAccount(name=f"{prefix}a{n}", default_region="IN")
            )
            account = AccountModel(id=created.id, name=created.name, settings=created.settings)
            first = await create_campaign(conn, ADMIN, created.id, NewCampaign(name="c0"))
            account.campaigns[first.id] = first
            accounts.append(account)
        model = ExampleModel(prefix=prefix, accounts=accounts)
        for kind, which, *arguments in script:
            if kind in NEEDS_LEADS and not model.leads:
                continue
            await COMMANDS[kind](conn, model, model.accounts[which], *arguments)
        await check_views(conn, model)
    report = await verify(pool)
    assert [(t.name, t.differences) for t in report.tables if not t.ok] == []
