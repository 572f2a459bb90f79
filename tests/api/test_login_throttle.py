"""Failed Flexydial logins are throttled per username and per client address, in PostgreSQL:
DRF's 429 with `Retry-After`, across server processes, until the window ends."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest

from lead_ledger.api.app import create_app
from lead_ledger.api.keys import POOL
from lead_ledger.settings import Settings
from tests.api.test_flexydial import PASSWORD, TOKEN_PATH, UNABLE, admin_post
from tests.support import Client

MakeApi = Callable[..., Awaitable[Client]]
THROTTLED = re.compile(r"Request was throttled\. Expected available in (\d+) seconds?\.")


@pytest.fixture
def make_api(
    database_url: str, settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]
) -> MakeApi:
    """Starts an app on the test's database with the given throttle limits."""

    async def start(per_username: int = 3, per_address: int = 100, window: int = 900) -> Client:
        limited = msgspec.structs.replace(
            settings,
            login_failures_per_username=per_username,
            login_failures_per_address=per_address,
            login_throttle_window_seconds=window,
        )
        return await aiohttp_client(create_app(limited, database_url))

    return start


async def _user(api: Client, username: str) -> None:
    account = await admin_post(api, "/accounts", {"name": f"{username}-co"})
    await admin_post(
        api, f"/accounts/{account['id']}/users", {"username": username, "password": PASSWORD}
    )


async def _login(api: Client, username: str, password: str) -> tuple[int, Any, str | None]:
    response = await api.post(TOKEN_PATH, json={"username": username, "password": password})
    return response.status, await response.json(), response.headers.get("Retry-After")


def _wait_of(answer: tuple[int, Any, str | None], window: int) -> int:
    """The wait a throttled answer gives; asserts it is DRF's shape, and that the header and
    the text agree and fall within the window."""
    status, body, retry_after = answer
    assert status == 429, answer
    assert set(body) == {"detail"}
    match = THROTTLED.fullmatch(body["detail"])
    assert match is not None, body
    assert retry_after is not None
    assert retry_after == match.group(1)
    wait = int(retry_after)
    assert 1 <= wait <= window
    return wait


async def test_a_username_is_throttled_after_its_failures_even_with_the_right_password(
    make_api: MakeApi,
) -> None:
    """Three wrong passwords, then a 429 for the fourth attempt, whatever its password; another
    username from the same address still logs in."""
    api = await make_api(per_username=3)
    await _user(api, "alice")
    await _user(api, "bob")
    for _ in range(3):
        assert (await _login(api, "alice", "guess"))[:2] == (400, UNABLE)
    _wait_of(await _login(api, "alice", "guess"), 900)
    _wait_of(await _login(api, "alice", PASSWORD), 900)
    assert (await _login(api, "bob", PASSWORD))[0] == 200


async def test_unknown_usernames_are_throttled_like_known_ones(make_api: MakeApi) -> None:
    """A username nobody has is counted the same way: the answers never tell the two apart."""
    api = await make_api(per_username=2)
    for _ in range(2):
        assert (await _login(api, "nobody", "guess"))[:2] == (400, UNABLE)
    _wait_of(await _login(api, "nobody", "guess"), 900)


async def test_an_address_is_throttled_across_usernames(make_api: MakeApi) -> None:
    """Failures spread over many usernames from one address meet the address's limit."""
    api = await make_api(per_username=100, per_address=5)
    await _user(api, "alice")
    for n in range(5):
        assert (await _login(api, f"user{n}", "guess"))[0] == 400
    _wait_of(await _login(api, "alice", PASSWORD), 900)


async def test_successful_logins_do_not_count(make_api: MakeApi) -> None:
    """Only failures use up the limit: a user who logs in often is never throttled, and a
    success between failures leaves the failures' count as it was."""
    api = await make_api(per_username=2, per_address=3)
    await _user(api, "alice")
    for _ in range(6):
        assert (await _login(api, "alice", PASSWORD))[0] == 200
    assert (await _login(api, "alice", "guess"))[0] == 400
    assert (await _login(api, "alice", PASSWORD))[0] == 200
    assert (await _login(api, "alice", "guess"))[0] == 400
    _wait_of(await _login(api, "alice", PASSWORD), 900)


async def test_the_count_is_shared_by_every_server(make_api: MakeApi) -> None:
    """Two apps on one database: failures on either count against the same limit, and
    concurrent guesses never check more passwords than the limit allows."""
    first, second = await make_api(per_username=4), await make_api(per_username=4)
    await _user(first, "alice")
    answers = await asyncio.gather(
        *(_login(api, "alice", f"guess{n}") for api in (first, second) for n in range(10))
    )
    statuses = sorted(status for status, _, _ in answers)
    assert statuses == [400] * 4 + [429] * 16


async def test_the_login_works_again_when_the_window_ends(make_api: MakeApi) -> None:
    """A throttled username logs in once the wait it was given has passed."""
    api = await make_api(per_username=1, window=2)
    await _user(api, "alice")
    # Guess until throttled: a guess that lands in a new window is a plain failure again.
    for _ in range(5):
        answer = await _login(api, "alice", "guess")
        if answer[0] == 429:
            break
    await asyncio.sleep(_wait_of(answer, 2))
    assert (await _login(api, "alice", PASSWORD))[0] == 200


async def test_field_errors_are_not_counted(make_api: MakeApi) -> None:
    """A body without a password checks no password, so it uses up nothing."""
    api = await make_api(per_username=1)
    await _user(api, "alice")
    for _ in range(3):
        response = await api.post(TOKEN_PATH, json={"username": "alice"})
        assert response.status == 400
    assert (await _login(api, "alice", PASSWORD))[0] == 200


async def test_a_username_of_any_length_is_counted(make_api: MakeApi) -> None:
    """The counters keep a digest, so a 100,000-character username is a 400 like any other."""
    api = await make_api(per_username=1)
    assert (await _login(api, "u" * 100_000, "guess"))[:2] == (400, UNABLE)
    _wait_of(await _login(api, "u" * 100_000, "guess"), 900)


async def test_a_usernames_failures_count_across_the_apis_it_logs_in_to(
    make_api: MakeApi,
) -> None:
    """One user logs in to Flexydial and to Vicidial's non-agent API: its failures on either
    count against one limit, so two APIs do not double the guesses a window allows."""
    api = await make_api(per_username=3)
    await _user(api, "alice")
    for _ in range(3):
        assert (await _login(api, "alice", "guess"))[:2] == (400, UNABLE)
    locked = await api.get(
        "/vicidial/non_agent_api.php",
        params={
            "function": "lead_search",
            "user": "alice",
            "pass": PASSWORD,
            "source": "test",
            "phone_number": "9876543210",
        },
    )
    assert "|alice|LOCK|" in await locked.text()


async def _vicidial_search(api: Client, username: str, password: str) -> str:
    response = await api.get(
        "/vicidial/non_agent_api.php",
        params={
            "function": "lead_search",
            "user": username,
            "pass": password,
            "source": "test",
            "phone_number": "9876543210",
        },
    )
    return await response.text()


async def test_a_burst_of_right_logins_is_never_throttled(make_api: MakeApi) -> None:
    """Many workers of one client logging in at once with the right password, on two servers:
    each server checks the password once for all of them, so none is throttled, on Flexydial
    and on Vicidial's non-agent API alike."""
    first, second = await make_api(per_username=3), await make_api(per_username=3)
    await _user(first, "alice")
    answers = await asyncio.gather(
        *(_login(api, "alice", PASSWORD) for api in (first, second) for _ in range(15))
    )
    assert sorted(status for status, _, _ in answers) == [200] * 30
    assert len({body["token"] for _, body, _ in answers}) == 1
    await _user(first, "vici")
    searches = await asyncio.gather(
        *(_vicidial_search(api, "vici", PASSWORD) for api in (first, second) for _ in range(15))
    )
    assert [s for s in searches if "LOCK" in s or "Login incorrect" in s] == []


async def test_a_throttled_attempt_is_not_counted(make_api: MakeApi) -> None:
    """Attempts refused while over the limit check no password and use up nothing: after a
    burst of guesses the username's count is its failures, and the address's too, so a burst
    does not lock a client out for longer (nor fill the address's limit) with attempts that
    were never checked."""
    api = await make_api(per_username=2, per_address=50)
    await _user(api, "alice")
    answers = await asyncio.gather(*(_login(api, "alice", f"guess{n}") for n in range(12)))
    assert sorted(status for status, _, _ in answers) == [400] * 2 + [429] * 10
    assert api.app is not None
    async with api.app[POOL].acquire() as conn:
        counts = await conn.fetch("SELECT attempts FROM login_throttle ORDER BY subject")
    assert [row["attempts"] for row in counts] == [2, 2]  # the address, the username
