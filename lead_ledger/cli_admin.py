"""`lead-ledger admin ...` and `lead-ledger demo`: the admin API's service calls, from a shell.

They run against the database directly (no server needed) and record the same events, with the
admin as actor. Results print as JSON; refusals print one line on stderr and exit non-zero.
"""

from __future__ import annotations

import argparse
import secrets
import string
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Final, get_args

import msgspec

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.database import database_urls, open_database
from lead_ledger.ledger.envelope import Actor
from lead_ledger.ledger.events import (
    DIALECTS,
    ApiAuthentication,
    Assignment,
    CampaignState,
    DialMode,
    Direction,
)
from lead_ledger.service import account_reads, accounts
from lead_ledger.service.errors import Conflict, Invalid, ServiceError
from lead_ledger.service.writer import Context
from lead_ledger.settings import Settings, is_http_base_url

DEFAULT_BASE_URL: Final = "http://127.0.0.1:8080"
Command = Callable[[Connection, Context, argparse.Namespace], Awaitable[object]]


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `admin` and `demo` to the `lead-ledger` parser."""
    admin = subparsers.add_parser("admin", help="configure accounts (directly in the database)")
    objects = admin.add_subparsers(dest="admin_object", required=True, metavar="OBJECT")

    def actions(name: str, help_: str) -> argparse._SubParsersAction[argparse.ArgumentParser]:
        parser = objects.add_parser(name, help=help_)
        return parser.add_subparsers(dest="admin_action", required=True, metavar="ACTION")

    account_actions = actions("accounts", "create, list and show accounts")
    create = account_actions.add_parser("create", help="create an account")
    create.add_argument("name")
    create.add_argument(
        "--default-region",
        help="ISO 3166 alpha-2, e.g. IN: the region of numbers given without a country code"
        " (docs/admin.md; without one, 9876543210 and 09876543210 are two numbers)",
    )
    account_actions.add_parser("list", help="list accounts")
    _with_account(account_actions.add_parser("show", help="an account and its configuration"))

    credential_actions = actions("credentials", "issue and revoke API keys")
    issue = _with_account(credential_actions.add_parser("issue", help="issue a key (shown once)"))
    issue.add_argument("api", choices=DIALECTS)
    revoke = _with_account(credential_actions.add_parser("revoke", help="revoke a key"))
    revoke.add_argument("credential_id")

    user = _with_account(actions("users", "create users").add_parser("create", help="add a user"))
    user.add_argument("username")
    user.add_argument("--password", help="at least 8 characters (default: a random one, shown)")

    agent = _with_account(actions("agents", "add agents").add_parser("add", help="add an agent"))
    agent.add_argument("agent_id")
    agent.add_argument("--name")

    skill = _with_account(actions("skills", "add skills").add_parser("add", help="add a skill"))
    skill.add_argument("name")

    campaign_actions = actions("campaigns", "create, update and list campaigns")
    new_campaign = _with_account(campaign_actions.add_parser("create", help="create a campaign"))
    new_campaign.add_argument("name")
    _campaign_options(new_campaign)
    update = _with_account(campaign_actions.add_parser("update", help="change a campaign"))
    update.add_argument("name")
    update.add_argument("--rename", metavar="NEW_NAME", help="give the campaign a new name")
    _campaign_options(update)
    update.add_argument("--clear-crm-fields", action="store_true", help="remove the crm fields")
    _with_account(campaign_actions.add_parser("list", help="an account's campaigns"))

    settings_actions = actions("settings", "show and change account settings")
    _with_account(settings_actions.add_parser("show", help="an account's settings"))
    change = _with_account(settings_actions.add_parser("set", help="change settings"))
    change.add_argument("--api-authentication", choices=get_args(ApiAuthentication))
    change.add_argument("--default-region", help="ISO 3166 alpha-2; 'none' clears it")
    change.add_argument(
        "--office-hours",
        metavar="JSON",
        help='e.g. \'{"timezone":"Asia/Kolkata","days":[1,2,3,4,5],"start":"09:00",'
        '"end":"18:00"}\'; \'none\' clears them',
    )
    change.add_argument("--ozonetel-bulk-per-minute", type=int, metavar="N")
    change.add_argument("--ozonetel-add-per-minute", type=int, metavar="N")
    change.add_argument("--ozonetel-delete-per-minute", type=int, metavar="N")
    change.add_argument("--ozonetel-bulk-v4-per-minute", type=int, metavar="N")

    demo = subparsers.add_parser(
        "demo", help="create (or re-show) a demo account with fresh keys and curl examples"
    )
    demo.add_argument(
        "--base-url",
        type=_server_url,
        default=DEFAULT_BASE_URL,
        help=f"server URL in the examples (default {DEFAULT_BASE_URL})",
    )


def _server_url(text: str) -> str:
    """An argparse type: the URL the demo's curl examples call (as LEDGER_PUBLIC_URL takes)."""
    if not is_http_base_url(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a server URL: use http:// or https://, a host, an optional :port"
            f" and path ({DEFAULT_BASE_URL})"
        )
    return text


def _with_account(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("account", help="account name or numeric id")
    return parser


def _campaign_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--direction", choices=get_args(Direction))
    parser.add_argument("--assignment", choices=get_args(Assignment))
    parser.add_argument("--dial-mode", choices=get_args(DialMode))
    parser.add_argument("--state", choices=get_args(CampaignState))
    parser.add_argument("--crm-field", action="append", dest="crm_fields", metavar="SECTION:FIELD")
    parser.add_argument(
        "--vicidial-campaign",
        metavar="NAME",
        help="the Vicidial campaign whose lists it joins; 'none' clears it",
    )


def _given(args: argparse.Namespace, *names: str) -> dict[str, object]:
    """The options the user gave (argparse leaves the others None)."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


_CAMPAIGN_FIELDS: Final = ("direction", "assignment", "dial_mode", "state", "crm_fields")
_NAME_RULE: Final = get_args(accounts.Name)[1]


def _vicidial_campaign(args: argparse.Namespace) -> dict[str, object]:
    """--vicidial-campaign as a campaign field: 'none' is null, which clears it (as for
    --default-region); a name msgspec would refuse is refused naming the option, not the
    field's JSON path."""
    name: str | None = args.vicidial_campaign
    if name is None:
        return {}
    if name == "none":
        return {"vicidial_campaign": None}
    if not _NAME_RULE.min_length <= len(name) <= _NAME_RULE.max_length:
        raise Invalid(
            "--vicidial-campaign",
            f"{name!r} is no name: use {_NAME_RULE.min_length} to {_NAME_RULE.max_length}"
            " characters, or none to clear it",
        )
    return {"vicidial_campaign": name}


async def _create_user(conn: Connection, ctx: Context, args: argparse.Namespace) -> object:
    password = args.password or secrets.token_urlsafe(12)
    new = msgspec.convert({"username": args.username, "password": password}, accounts.NewUser)
    user = await accounts.create_user(conn, ctx, args.account, new)
    # A generated password is shown once, like a credential key; a given one is not echoed.
    return msgspec.structs.asdict(user) | ({} if args.password else {"password": password})


async def _update_campaign(conn: Connection, ctx: Context, args: argparse.Namespace) -> object:
    changes = _given(args, *_CAMPAIGN_FIELDS, "rename") | _vicidial_campaign(args)
    if "rename" in changes:
        changes["name"] = changes.pop("rename")
    if args.clear_crm_fields:
        changes["crm_fields"] = None
    typed = msgspec.convert(changes, accounts.CampaignChanges)
    return await accounts.update_campaign(conn, ctx, args.account, args.name, typed)


async def _set_settings(conn: Connection, ctx: Context, args: argparse.Namespace) -> object:
    changes: dict[str, object] = _given(args, "api_authentication")
    if args.default_region is not None:
        changes["default_region"] = None if args.default_region == "none" else args.default_region
    if args.office_hours is not None:
        try:
            changes["office_hours"] = (
                None if args.office_hours == "none" else msgspec.json.decode(args.office_hours)
            )
        except msgspec.DecodeError as error:
            raise Invalid("office_hours", f"not JSON: {error}") from error
    limits = _given(
        args,
        "ozonetel_bulk_per_minute",
        "ozonetel_add_per_minute",
        "ozonetel_delete_per_minute",
        "ozonetel_bulk_v4_per_minute",
    )
    if limits:
        changes["rate_limits"] = limits
    typed = msgspec.convert(changes, accounts.SettingsChanges)
    return await accounts.change_settings(conn, ctx, args.account, typed)


_COMMANDS: Final[dict[tuple[str, str], Command]] = {
    ("accounts", "create"): lambda conn, ctx, args: accounts.create_account(
        conn,
        ctx,
        msgspec.convert(_given(args, "name", "default_region"), accounts.NewAccount),
    ),
    ("accounts", "list"): lambda conn, _ctx, _args: account_reads.list_accounts(conn),
    ("accounts", "show"): lambda conn, _ctx, args: account_reads.get_account(conn, args.account),
    ("credentials", "issue"): lambda conn, ctx, args: accounts.issue_credential(
        conn, ctx, args.account, accounts.NewCredential(api=args.api)
    ),
    ("credentials", "revoke"): lambda conn, ctx, args: accounts.revoke_credential(
        conn, ctx, args.account, args.credential_id
    ),
    ("users", "create"): _create_user,
    ("agents", "add"): lambda conn, ctx, args: accounts.add_agent(
        conn,
        ctx,
        args.account,
        msgspec.convert(_given(args, "agent_id", "name"), accounts.NewAgent),
    ),
    ("skills", "add"): lambda conn, ctx, args: accounts.add_skill(
        conn, ctx, args.account, msgspec.convert({"name": args.name}, accounts.NewSkill)
    ),
    ("campaigns", "create"): lambda conn, ctx, args: accounts.create_campaign(
        conn,
        ctx,
        args.account,
        msgspec.convert(
            _given(args, "name", *_CAMPAIGN_FIELDS) | _vicidial_campaign(args),
            accounts.NewCampaign,
        ),
    ),
    ("campaigns", "update"): _update_campaign,
    ("campaigns", "list"): lambda conn, _ctx, args: account_reads.list_campaigns(
        conn, args.account
    ),
    ("settings", "show"): lambda conn, _ctx, args: account_reads.account_settings(
        conn, args.account
    ),
    ("settings", "set"): _set_settings,
}


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run `admin ...` or `demo`: 0 on success, 1 when refused, 2 for invalid input."""
    urls = await database_urls(settings)
    pool = await open_database(urls.service, migration_url=urls.migration, min_size=1, max_size=2)
    # One request id for everything a command records, so its events can be found together.
    ctx = Context(actor=Actor(dialect="admin"), request_id=f"cli-{uuid.uuid4().hex}")
    try:
        async with pool.acquire() as conn:
            if args.command == "demo":
                sys.stdout.write(await demo(conn, ctx, args.base_url))
                return 0
            result = await _COMMANDS[args.admin_object, args.admin_action](conn, ctx, args)
    except (msgspec.ValidationError, Invalid) as error:
        sys.stderr.write(f"lead-ledger: invalid input: {error}\n")
        return 2
    except ServiceError as error:
        sys.stderr.write(f"lead-ledger: {error}\n")
        return 1
    finally:
        await pool.close()
    if result is not None:
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(result), indent=2).decode() + "\n")
    if (args.admin_object, args.admin_action) == ("accounts", "create") and not args.default_region:
        sys.stderr.write(NO_REGION_WARNING.format(account=args.name))
    return 0


NO_REGION_WARNING: Final = (
    "lead-ledger: warning: {account} has no default region, so national numbers are compared"
    " as their digits (9876543210 and 09876543210 are two numbers); set one before the first"
    " lead: lead-ledger admin settings set {account} --default-region IN\n"
)


# --- demo ---------------------------------------------------------------------------------------

DEMO_ACCOUNT: Final = "demo"
_DEMO_CRM_FIELDS: Final = ["customer_info:customer_id", "customer_info:city"]
DEMO_CAMPAIGNS: Final = (
    accounts.NewCampaign(name="demo-outbound", crm_fields=_DEMO_CRM_FIELDS),
    accounts.NewCampaign(name="demo-agentwise", assignment="agentwise", dial_mode="Preview"),
    accounts.NewCampaign(name="demo-skillwise", assignment="skillwise", dial_mode="Predictive"),
    accounts.NewCampaign(name="demo-inbound", direction="inbound"),
)
DEMO_AGENTS: Final = (
    accounts.NewAgent(agent_id="agent-1", name="Asha Rao"),
    accounts.NewAgent(agent_id="agent-2", name="Ravi Kumar"),
)
DEMO_SKILLS: Final = (accounts.NewSkill(name="sales"), accounts.NewSkill(name="support"))


async def _ensure(step: Awaitable[object]) -> bool:
    """Create unless it exists: a re-run (or a run after a partial one) fills only the gaps.
    True when it was created now."""
    try:
        await step
    except Conflict:
        return False
    return True


async def demo(conn: Connection, ctx: Context, base_url: str) -> str:
    """Set up the demo account, issue fresh keys and a fresh user, and explain how to use them.

    Keys and passwords are stored only as hashes, so a re-run cannot show the old ones again:
    it issues new ones (the old stay valid until revoked).
    """
    created = await _ensure(
        accounts.create_account(
            conn, ctx, accounts.NewAccount(name=DEMO_ACCOUNT, default_region="IN")
        )
    )
    for campaign in DEMO_CAMPAIGNS:
        await _ensure(accounts.create_campaign(conn, ctx, DEMO_ACCOUNT, campaign))
    for agent in DEMO_AGENTS:
        await _ensure(accounts.add_agent(conn, ctx, DEMO_ACCOUNT, agent))
    for skill in DEMO_SKILLS:
        await _ensure(accounts.add_skill(conn, ctx, DEMO_ACCOUNT, skill))
    keys: dict[str, str] = {
        dialect: (
            await accounts.issue_credential(
                conn, ctx, DEMO_ACCOUNT, accounts.NewCredential(api=dialect)
            )
        ).key
        for dialect in DIALECTS
    }
    # Usernames are global and a password cannot be shown twice: a new user on every run.
    password = secrets.token_urlsafe(12)
    user = await accounts.create_user(
        conn,
        ctx,
        DEMO_ACCOUNT,
        accounts.NewUser(username=f"demo-flexydial-{secrets.token_hex(3)}", password=password),
    )
    detail = await account_reads.get_account(conn, DEMO_ACCOUNT)
    text = _demo_text(detail, keys, user.username, password, base_url.rstrip("/"))
    return text if created else _REUSED + text


_REUSED: Final = """\
The demo account already existed: it is reused, with its campaigns, agents, skills and leads.
The keys and the user below are new. Keys and passwords are stored only as SHA-256 digests and
cannot be shown again, so every run issues its own; the ones earlier runs printed keep working
until revoked (lead-ledger admin accounts show demo lists them; lead-ledger admin credentials
revoke demo <credential id> revokes one).

"""

# Each example is a block: a title, commands that paste into a shell as they are (JSON bodies
# wrap inside their single quotes, as JSON allows newlines between tokens), then `# -> ` lines
# with the answer it gives, and what it means. tests/e2e/test_demo.py runs every block against a
# real server, twice, and checks both answers.
_EXAMPLES: Final = string.Template("""
# Flexydial: log in for a token, then bulk upload with it (run as a job)
TOKEN=$$(curl -s -X POST '$base/api/generate-token/' -H 'Content-Type: application/json' \\
  -d '{"username": "$username", "password": "$password"}' \\
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
curl -s -X POST '$base/api/bulkphonebookupload/v1/' -H "Authorization: Token $$TOKEN" \\
  -H 'Content-Type: application/json' \\
  -d '{"campaign": "demo-outbound", "bulk_data": [{"numeric": "9876543210",
       "customer_info:customer_id": "C-1001", "customer_info:city": "Pune"}]}'
# -> {"success":"Reference/Phonebook Name:flexydial_<ref>","job_id":"<job>"}
#    accepted: the rows run as a job; GET /api/bulkphonebookupload/status/<job>/ (same token)
#    tells how each row went. Pasted again, the same answer: a new job, whose row is refused
#    as a duplicate of the first upload's lead (its status says so).

# Ozonetel: add one number to a campaign and start the campaign (AddCampaignData)
curl -s -X POST '$base/ca_apis/AddCampaignData' -H 'Content-Type: application/json' \\
  -H 'apiKey: $ozonetel' \\
  -d '{"campaignName": "demo-agentwise", "phoneNumber": "9876543211", "Name": "Meera",
       "agentId": "agent-1", "userName": "$account", "checkDuplicate": "true",
       "action": "start"}'
# -> {"status":"SUCCESS","message":"SuccessFully Updated, Preview was started"}
#    added, and the stopped campaign was started. Pasted again:
#    {"status":"SUCCESS","message":"Number Already Exist"}: checkDuplicate found the number
#    in the campaign, so nothing was added.

# Ozonetel: upload a file of leads (run as a job; no callBackUrl, so no callback is sent)
printf 'PhoneNumber,Name,skill\\n9876543212,Kiran,sales\\n' > leads.csv
curl -s -X POST '$base/endpoint/dailer/data/bulk/upload' -F username=$account \\
  -F apiKey=$ozonetel -F file=@leads.csv -F campaignName=demo-skillwise -F action=none
# -> {"status":"success","message":"Data processing"}
#    accepted as a job: GET /v1/jobs (native key, below) lists it with its outcome. Pasted
#    again at once, while that job is still queued: "Upload is in progress for campaign
#    demo-skillwise"; once it has run, within the minute: "Request limit exhausted", the
#    vendor's one upload per minute per account (a Retry-After header says when to retry).

# Vicidial (TForge lead archive): copy lead 1, this database's first lead, into the archive
curl -s -X POST '$base/vicidial/leads/archive' -H 'Authorization: Key=$vicidial' \\
  -H 'Content-Type: application/json' \\
  -d '{"insert_leads": true, "update_leads": true, "delete_leads": false, "lead_ids": [1]}'
# -> {"message":"lead_ids batch was successfully processed","select_count":1,...}
#    found live (select_count 1), copied into the archive (insert_count 1), kept live
#    (delete_count 0, as delete_leads is false). Pasted again: "insert_count":0, as the
#    archive copy is already equal. {"message":"lead_ids does not exist",...}: lead 1 is not
#    this account's (the database had leads before the demo); use an id from /v1/leads below.

# jtel: import a contact (ClientsID = account id $account_id, DiallerCampaignsID = $campaign_id)
curl -s -X POST '$base/rest/v1.0/$account_id/dialler/contacts/import?overwriteDuplicates=true' \\
  -H 'Authorization: Bearer $jtel' -H 'Content-Type: application/json' \\
  -d '{"DiallerCampaignsID": $campaign_id, "Name": "Mustermann",
       "PhoneNumber1": "+919876543213", "UserData": "demo-1"}'
# -> {"records":[{"ID":<id>,...}],...}
#    created, and answered whole as jtel does. Pasted again, the same ID: overwriteDuplicates
#    found the contact by its UserData and left it as it was.

# native: the account's leads, then its jobs
curl -s '$base/v1/leads' -H 'Authorization: Bearer $native'
# -> {"leads":[...],"next_after":null}
#    the leads the examples above added, each with its lead_id, fields and times.
curl -s '$base/v1/jobs' -H 'Authorization: Bearer $native'
# -> {"jobs":[{"job_id":<id>,...}],"next_before":null}
#    every upload's job, newest first, with its state, counts and callback outcome.
""")


def _demo_text(
    account: account_reads.AccountDetail,
    keys: dict[str, str],
    username: str,
    password: str,
    base: str,
) -> str:
    campaigns = [
        f"  {c.id:>5}  {c.name:<16} {c.direction:<9} {c.assignment:<10} {c.dial_mode:<12} {c.state}"
        for c in account.campaigns
    ]
    summary = [
        f"Demo account {account.name!r}, id {account.id}, region {account.settings.default_region}",
        "",
        "Campaigns:",
        *campaigns,
        "Agents: " + ", ".join(f"{a.agent_id} ({a.name})" for a in account.agents),
        "Skills: " + ", ".join(s.name for s in account.skills),
        "",
        "New credentials (shown once; stored only as SHA-256):",
        *(f"  {dialect:<9} {key}" for dialect, key in keys.items()),
        f"  Flexydial user: {username}  password: {password}",
    ]
    examples = demo_examples(
        base,
        keys=keys,
        username=username,
        password=password,
        account=account.name,
        account_id=account.id,
        campaign_id=next(c.id for c in account.campaigns if c.name == "demo-outbound"),
    )
    return "\n".join(summary) + "\n" + examples


def demo_examples(
    base: str,
    *,
    keys: dict[str, str],
    username: str,
    password: str,
    account: str,
    account_id: int,
    campaign_id: int,
) -> str:
    """The curl examples for a server at `base`, each URL in single quotes, so that a character
    of `base` a shell reads (`&`, `;`) reaches curl; a quote of its own is closed, escaped and
    reopened."""
    return _EXAMPLES.substitute(
        keys,
        base=base.replace("'", "'\\''"),
        username=username,
        password=password,
        account=account,
        account_id=account_id,
        campaign_id=campaign_id,
    )
