"""`GET /metrics`: requests by route and status, events by type, jobs, callbacks, the queue, the
pool, and projection lag, in Prometheus text format, scraped like Prometheus would."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from lead_ledger.api import ozonetel_bulk
from tests.api.test_ozonetel_bulk import (
    ACCEPTED,
    GOOD_ROWS,
    make_account,
    make_client,
    upload,
    write_csv,
)
from tests.support import Client, serve_process, stop, until_ready

__all__ = ["make_client"]  # a fixture, imported to be found here

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 when the series does not exist yet."""
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(api: Client) -> Samples:
    response = await api.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return parse(await response.text())


async def test_metrics_count_what_the_service_did(
    make_client: Callable[..., Awaitable[Client]], tmp_path: Path
) -> None:
    """An account, an upload run as a job, its refused callback and an unrouted request each
    move their series by exactly what happened; the gauges read the database and the pool."""
    api = await make_client(callback_allow_private=False)
    before = await scrape(api)
    account = await make_account(api)
    data = write_csv(tmp_path / "leads.csv", GOOD_ROWS)
    callback = "http://127.0.0.1:9/callback"  # refused: a private target
    assert await upload(api, account, data, callBackUrl=callback) == (200, ACCEPTED)
    assert (await api.get("/no/such/route")).status == 404

    deadline = time.monotonic() + 60
    while True:
        after = await scrape(api)
        refused = value(after, "lead_ledger_callback_attempts_total", outcome="refused")
        if refused > value(before, "lead_ledger_callback_attempts_total", outcome="refused"):
            break
        assert time.monotonic() < deadline, "the callback was never attempted"
        await asyncio.sleep(0.1)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "lead_ledger_http_requests_total"
    assert delta(requests, route="/v1/admin/accounts", method="POST", status="201") == 1
    assert delta(requests, route="unmatched", method="GET", status="404") == 1
    upload_route = ozonetel_bulk.PATH
    assert delta(requests, route=upload_route, method="POST", status="200") == 1
    assert (
        delta("lead_ledger_http_request_duration_seconds_count", route=upload_route, method="POST")
        == 1
    )
    assert delta("lead_ledger_events_appended_total", type="AccountCreated") == 1
    assert delta("lead_ledger_events_appended_total", type="JobSubmitted") == 1
    assert delta("lead_ledger_events_appended_total", type="JobCompleted") == 1
    assert delta("lead_ledger_events_appended_total", type="CallbackAttempted") == 1
    assert delta("lead_ledger_job_duration_seconds_count", state="done") == 1
    assert delta("lead_ledger_callback_attempts_total", outcome="refused") == 1
    assert value(after, "lead_ledger_job_queue_jobs", state="queued") == 0
    assert value(after, "lead_ledger_job_queue_jobs", state="running") == 0
    assert value(after, "lead_ledger_callbacks_pending") == 0
    assert value(after, "lead_ledger_log_head_position") > value(
        before, "lead_ledger_log_head_position"
    )
    assert value(after, "lead_ledger_projection_lag_events", projection="leads") == 0
    assert value(after, "lead_ledger_db_pool_connections", state="size") >= 1
    assert value(after, "lead_ledger_db_pool_connections", state="max") == 8


async def test_a_queued_job_shows_in_the_queue_gauge(
    make_client: Callable[..., Awaitable[Client]], tmp_path: Path
) -> None:
    """With no worker running, an accepted upload is a queued job until one claims it."""
    api = await make_client(worker=False)
    account = await make_account(api)
    data = write_csv(tmp_path / "leads.csv", GOOD_ROWS)
    assert await upload(api, account, data) == (200, ACCEPTED)
    assert value(await scrape(api), "lead_ledger_job_queue_jobs", state="queued") == 1


async def test_each_serve_process_reports_its_own_requests(database_url: str) -> None:
    """Two `serve` processes on one database: each /metrics counts the requests it answered
    itself, and both report the same database gauges."""
    first, second = serve_process(database_url), serve_process(database_url)
    try:
        await asyncio.gather(until_ready(first), until_ready(second))
        async with aiohttp.ClientSession() as session:
            for _ in range(3):
                async with session.get(f"{first.base_url}/healthz") as response:
                    assert response.status == 200
            scraped = []
            for served in (first, second):
                async with session.get(f"{served.base_url}/metrics") as response:
                    scraped.append(parse(await response.text()))
    finally:
        stop(first)
        stop(second)
    healthz = {"route": "/healthz", "method": "GET", "status": "200"}
    assert value(scraped[0], "lead_ledger_http_requests_total", **healthz) == 3
    assert value(scraped[1], "lead_ledger_http_requests_total", **healthz) == 0
    heads = [value(s, "lead_ledger_log_head_position") for s in scraped]
    assert heads[0] == heads[1]
