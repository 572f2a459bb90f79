"""`lead-ledger admin ...` and `lead-ledger demo`: in process through cli_admin.run, and once as
the installed console script."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest

from lead_ledger import cli_admin
from lead_ledger.api.app import create_app
from lead_ledger.api.auth import SELECT_CREDENTIAL, key_digest
from lead_ledger.ledger.events import DIALECTS
from lead_ledger.service.account_reads import authenticate_user
from lead_ledger.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.support import Client

CLI = str(Path(sys.executable).parent / "lead-ledger")
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
Run = Callable[..., Awaitable[tuple[int, str, str]]]


@pytest.fixture
def run(database_url: str, capsys: pytest.CaptureFixture[str]) -> Run:
    """Parse argv with the admin commands and run them on this test's database."""
    parser = argparse.ArgumentParser(prog="lead-ledger")
    cli_admin.add_commands(parser.add_subparsers(dest="command", required=True))

    async def invoke(*argv: str) -> tuple[int, str, str]:
        code = await cli_admin.run(parser.parse_args(argv), Settings(database_url=database_url))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


async def ok(run: Run, *argv: str) -> Any:
    code, out, err = await run(*argv)
    assert (code, err) == (0, "")
    return msgspec.json.decode(out)


async def test_accounts_create_list_and_show(run: Run) -> None:
    """accounts create prints the account as JSON; list and show find it by name or id."""
    created = await ok(run, "admin", "accounts", "create", "acme", "--default-region", "de")
    assert (created["name"], created["settings"]["default_region"]) == ("acme", "DE")
    assert [created] == await ok(run, "admin", "accounts", "list")
    shown = await ok(run, "admin", "accounts", "show", str(created["id"]))
    assert (shown["name"], shown["campaigns"], shown["credentials"]) == ("acme", [], [])


async def test_an_account_without_a_region_is_created_with_a_warning(run: Run) -> None:
    """Leaving the region out is allowed, but stderr says what it costs and how to set one."""
    code, out, err = await run("admin", "accounts", "create", "acme")
    assert (code, msgspec.json.decode(out)["settings"]["default_region"]) == (0, None)
    warning = (
        "lead-ledger: warning: acme has no default region, so national numbers are compared as"
        " their digits (9876543210 and 09876543210 are two numbers); set one before the first"
        " lead: lead-ledger admin settings set acme --default-region IN"
    )
    assert err.splitlines() == [warning]


async def test_credentials_users_agents_and_skills(run: Run, pool: asyncpg.Pool) -> None:
    """Keys issued by the CLI authenticate; a generated user password is shown and works."""
    await ok(run, "admin", "accounts", "create", "acme", "--default-region", "IN")
    issued = await ok(run, "admin", "credentials", "issue", "acme", "ozonetel")
    assert await pool.fetchrow(SELECT_CREDENTIAL, key_digest(issued["key"]), "ozonetel")
    user = await ok(run, "admin", "users", "create", "acme", "asha")
    async with pool.acquire() as conn:
        assert await authenticate_user(conn, "asha", user["password"]) is not None
    given = await ok(run, "admin", "users", "create", "acme", "ravi", "--password", "s3cret-pw")
    assert given == {"username": "ravi", "account": "acme"}
    await ok(run, "admin", "agents", "add", "acme", "a1", "--name", "Asha")
    await ok(run, "admin", "skills", "add", "acme", "sales")
    code, out, _ = await run("admin", "credentials", "revoke", "acme", issued["id"])
    assert (code, out) == (0, "")
    shown = await ok(run, "admin", "accounts", "show", "acme")
    assert (
        [c["revoked"] for c in shown["credentials"]],
        shown["agents"],
        shown["skills"],
        [u["username"] for u in shown["users"]],
    ) == (
        [True],
        [{"agent_id": "a1", "name": "Asha"}],
        [{"name": "sales"}],
        ["asha", "ravi"],
    )


async def test_campaigns_create_update_and_list(run: Run) -> None:
    """campaigns create takes the options; update changes only those given."""
    await ok(run, "admin", "accounts", "create", "acme", "--default-region", "IN")
    created = await ok(
        run, "admin", "campaigns", "create", "acme", "Sales", "--assignment", "skillwise",
        "--crm-field", "customer:id", "--crm-field", "customer:city",
    )  # fmt: skip
    assert (
        created["assignment"],
        created["crm_fields"],
    ) == ("skillwise", ["customer:id", "customer:city"])
    updated = await ok(
        run, "admin", "campaigns", "update", "acme", "Sales", "--rename", "Sales2",
        "--state", "running", "--clear-crm-fields",
    )  # fmt: skip
    assert created | {"name": "Sales2", "state": "running", "crm_fields": None} == updated
    assert [updated] == await ok(run, "admin", "campaigns", "list", "acme")


async def test_vicidial_campaign_none_clears_it_and_empty_is_named(run: Run) -> None:
    """--vicidial-campaign none clears it (as --default-region none does); an empty one exits 2
    with one line naming the option, and changes nothing."""
    await ok(run, "admin", "accounts", "create", "acme", "--default-region", "IN")
    created = await ok(
        run, "admin", "campaigns", "create", "acme", "beta", "--vicidial-campaign", "none"
    )
    assert created["vicidial_campaign"] is None
    joined = await ok(
        run, "admin", "campaigns", "update", "acme", "beta", "--vicidial-campaign", "X"
    )
    assert joined["vicidial_campaign"] == "X"
    for action in ("update", "create"):
        code, out, err = await run(
            "admin", "campaigns", action, "acme", "beta", "--vicidial-campaign", ""
        )
        assert (code, out, len(err.splitlines())) == (2, "", 1)
        assert err.startswith("lead-ledger: invalid input: --vicidial-campaign: "), err
        assert "Expected" not in err
    cleared = await ok(
        run, "admin", "campaigns", "update", "acme", "beta", "--vicidial-campaign", "none"
    )
    assert cleared == joined | {"vicidial_campaign": None}
    assert [cleared] == await ok(run, "admin", "campaigns", "list", "acme")


async def test_settings_show_and_set(run: Run) -> None:
    """settings set changes only the options given, 'none' clears, rate limits merge."""
    await ok(run, "admin", "accounts", "create", "acme", "--default-region", "IN")
    hours = '{"timezone": "Europe/Berlin", "days": [1, 2], "start": "08:00", "end": "16:00"}'
    changed = await ok(
        run, "admin", "settings", "set", "acme", "--office-hours", hours,
        "--ozonetel-add-per-minute", "50", "--api-authentication", "TOKEN_AUTH",
    )  # fmt: skip
    expected = {
        "api_authentication": "TOKEN_AUTH",
        "default_region": "IN",
        "office_hours": msgspec.json.decode(hours),
        "rate_limits": {
            "ozonetel_bulk_per_minute": 1,
            "ozonetel_add_per_minute": 50,
            "ozonetel_delete_per_minute": 100,
            "ozonetel_bulk_v4_per_minute": 5,
        },
    }
    assert expected == changed
    cleared = await ok(
        run, "admin", "settings", "set", "acme", "--office-hours", "none", "--default-region",
        "none",
    )  # fmt: skip
    assert expected | {"office_hours": None, "default_region": None} == cleared
    assert cleared == await ok(run, "admin", "settings", "show", "acme")


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (("admin", "accounts", "show", "nope"), 1, "no account 'nope'"),
        (("admin", "accounts", "create", "acme"), 1, "exists"),
        (("admin", "accounts", "create", "x", "--default-region", "QQ"), 2, "default_region"),
        (("admin", "users", "create", "acme", "u", "--password", "short"), 2, "password"),
        (("admin", "settings", "set", "acme", "--office-hours", "{"), 2, "office_hours"),
        (("admin", "campaigns", "update", "acme", "Nope", "--state", "running"), 1, "Nope"),
    ],
)
async def test_refusals_exit_non_zero_with_one_line(
    run: Run, argv: tuple[str, ...], code: int, message: str
) -> None:
    """Unknown names exit 1, invalid input exits 2; one line on stderr, nothing on stdout."""
    await ok(run, "admin", "accounts", "create", "acme", "--default-region", "IN")
    actual_code, out, err = await run(*argv)
    assert (code, "", 1) == (actual_code, out, len(err.splitlines()))
    assert message in err


async def test_demo_is_rerunnable_and_issues_fresh_keys(
    run: Run,
    pool: asyncpg.Pool,
    database_url: str,
    settings: Settings,
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> None:
    """demo sets up one account once; every run prints new working keys and curl examples,
    and its agents and skills, which the database and the admin API hold once; a re-run says
    so."""
    first_code, first, _ = await run("demo", "--base-url", "http://ledger.test:9000/")
    second_code, second, _ = await run("demo")
    assert (first_code, second_code) == (0, 0)
    # A re-run says that it reused the account and that its keys are new ones.
    assert "already existed" not in first
    assert second.startswith("The demo account already existed: it is reused")
    agents = [("agent-1", "Asha Rao"), ("agent-2", "Ravi Kumar")]
    skills = ["sales", "support"]
    stored = await pool.fetch("SELECT agent_id, name FROM agents ORDER BY agent_id")
    assert agents == [tuple(row) for row in stored]
    assert skills == await pool.fetchval("SELECT array_agg(name ORDER BY name) FROM skills")
    admin = await aiohttp_client(create_app(settings, database_url))
    response = await admin.get("/v1/admin/accounts/demo", headers=ADMIN)
    assert response.status == 200
    shown = await response.json()
    assert (
        [(a["agent_id"], a["name"]) for a in shown["agents"]],
        [s["name"] for s in shown["skills"]],
    ) == (agents, skills)
    for output in (first, second):
        lines = output.splitlines()
        assert "Agents: agent-1 (Asha Rao), agent-2 (Ravi Kumar)" in lines
        assert "Skills: sales, support" in lines
    accounts = await pool.fetch("SELECT account_id FROM accounts")
    campaigns = await pool.fetch("SELECT name, direction, assignment FROM campaigns")
    assert len(accounts) == 1
    assert {
        ("demo-outbound", "outbound", "none"),
        ("demo-agentwise", "outbound", "agentwise"),
        ("demo-skillwise", "outbound", "skillwise"),
        ("demo-inbound", "inbound", "none"),
    } == {tuple(row) for row in campaigns}
    for output in (first, second):
        keys = dict(
            line.split()
            for line in output.splitlines()
            if line.split()[:1] in [[d] for d in DIALECTS]
        )
        assert list(DIALECTS) == list(keys)
        for dialect, key in keys.items():
            assert await pool.fetchrow(SELECT_CREDENTIAL, key_digest(key), dialect)
    assert "http://ledger.test:9000/api/generate-token/" in first
    assert "http://127.0.0.1:8080/rest/v1.0/" in second
    for path in ("bulkphonebookupload", "AddCampaignData", "bulk/upload", "leads/archive",
                 "contacts/import", "/v1/leads"):  # fmt: skip
        assert path in second
    assert await pool.fetchval("SELECT count(*) FROM credentials") == 10
    assert await pool.fetchval("SELECT count(*) FROM users") == 2


async def test_console_script_runs_admin_and_demo(
    database_factory: Callable[..., Awaitable[str]],
) -> None:
    """The installed `lead-ledger` has `admin` and `demo` wired in (cli.py calls cli_admin)."""
    url = await database_factory()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env |= {"LEDGER_DATABASE_URL": url, "LEDGER_LOG_FORMAT": "json"}

    async def invoke(*argv: str) -> str:
        process = await asyncio.create_subprocess_exec(
            CLI, *argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode == 0, err.decode()
        return out.decode()

    created = msgspec.json.decode(await invoke("admin", "accounts", "create", "acme"))
    assert created["name"] == "acme"
    assert "/api/generate-token/" in await invoke("demo")
