"""Schemathesis against /openapi.json (issue 11, "Also"): every documented operation, the vendor
routes with their own credentials, through a real HTTP server.

Fails on a 5xx unless the operation documents it and it is not the dialect's answer to an
unexpected failure (Vicidial's malformed-JSON 500 is the vendor's own answer and documented), and
on any status, content type or body that the document does not describe. Examples are bounded so
that the run stays under a minute on two cores.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Final

import hypothesis
import hypothesis.errors
import msgspec
import schemathesis
from aiohttp.test_utils import TestServer
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from lead_ledger.api.app import create_app
from lead_ledger.settings import Settings
from tests.api.test_edge import account_with_every_key
from tests.api.test_hostile_inputs import ADMIN, auth_headers
from tests.support import Client

EXAMPLES: Final = 25  # per operation and mode: about 2,000 requests in 30-40 s on two cores
# The stream never ends by design: a valid request would hold the run open (its bad inputs are
# in test_hostile_inputs.py).
SKIPPED: Final = {("GET", "/v1/events/stream")}
# What each dialect answers to a failure of ours: never acceptable, documented or not.
UNEXPECTED: Final = (
    {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "internal error",
    },
    {"message": "An error has occurred.", "lead_errors": 0, "lead_ids": []},
    {"status": 500, "error": "Internal server error"},
    {"errors": "Oops Something went wrong, Please contact Administrator"},
    {"status": "error", "message": "Internal Server Error"},
)


def expected_server_error(
    ctx: Any, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> None:
    """A 5xx only where the operation documents it and it is not an unexpected failure."""
    status = response.status_code
    if status < 500:
        return
    documented = str(status) in case.operation.definition.raw.get("responses", {})
    try:
        body = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        body = None
    assert documented, f"{case.operation.label}: undocumented {status}: {response.content[:300]!r}"
    assert body not in UNEXPECTED, f"{case.operation.label}: a failure of ours: {body}"


CHECKS: Final = [
    expected_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _dialect(path: str) -> str | None:
    prefixes = (
        ("/v1/admin", "admin"),
        ("/v1/", "native"),
        ("/openapi.json", "native"),
        ("/vicidial/", "vicidial"),
        ("/rest/", "jtel"),
        ("/api/bulkphonebookupload/", "flexydial"),
        ("/ca_apis/", "ozonetel"),
    )
    return next((dialect for prefix, dialect in prefixes if path.startswith(prefix)), None)


def fuzz(
    base_url: str, document: dict[str, Any], keys: dict[str, str], account_id: int
) -> list[str]:
    """Run every operation's examples; the failures, one text each (empty: all passed)."""
    schema = schemathesis.openapi.from_dict(document)
    failures: list[str] = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            failures.append(f"the document: {result.err()}")
            continue
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        headers = auth_headers(_dialect(operation.path), keys)
        path = {"ClientsID": account_id} if "{ClientsID}" in operation.path else None
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(mode, headers=headers, path_parameters=path)
            try:
                _examples(strategy, base_url, headers)
            except hypothesis.errors.Unsatisfiable:
                pass  # no negative example exists (only free-form strings to break)
            except (Exception, BaseExceptionGroup) as error:  # noqa: BLE001 - each is reported
                failures.append(f"{operation.label} [{mode.value}]: {error}")
    return failures


def _examples(strategy: Any, base_url: str, headers: dict[str, str]) -> None:
    """Call and check EXAMPLES cases drawn from `strategy`; raises the first failure."""

    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.generate],
    )
    @hypothesis.given(case=strategy)
    def run(case: schemathesis.Case[Any]) -> None:
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        case.validate_response(response, checks=CHECKS)

    run()


async def test_schemathesis_finds_no_undocumented_answer(
    database_url: str, settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    """Every operation, positive and negative examples: no 5xx of ours, no undocumented answer."""
    server = TestServer(create_app(settings, database_url))
    api = await aiohttp_client(server)
    world = await account_with_every_key(api)
    document = await (await api.get("/openapi.json", headers=ADMIN)).json()
    base_url = str(server.make_url("")).rstrip("/")
    failures = await asyncio.to_thread(fuzz, base_url, document, world.keys, world.account_id)
    assert failures == [], "\n\n".join(failures)
    assert (await api.get("/healthz")).status == 200
