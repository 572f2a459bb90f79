"""Property: whatever lead commands run through the real write path, a replay equals live."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.events import LeadFields
from lead_ledger.ledger.lead import (
    LeadError,
    decide_archive,
    decide_dearchive,
    decide_delete,
)
from lead_ledger.projections.rebuild import verify
from tests.integration.test_rebuild import (
    REGION,
    change_lead,
    create_account,
    insert_lead,
    update,
)

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
    except LeadError:
        pass  # not live / not archived: the service would refuse it and record nothing


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
        account_id, campaigns = await create_account(conn, f"p{next(_accounts)}", 3)
        leads: list[int] = []
        for command in script:
            await run_command(conn, account_id, campaigns, leads, command)
    report = await verify(pool)
    assert [(t.name, t.differences) for t in report.tables if not t.ok] == []
