"""Process-wide Prometheus metrics: what this process did (requests, events, jobs, callbacks).

They live in prometheus-client's default registry, one per process: each `serve` process
answers its own `/metrics`, and Prometheus sums them across processes by their `instance` label.
What belongs to the database rather than to a process (queue depth, the log's head) is read
when `/metrics` is scraped (`api/metrics.py`), so every process reports the same truth.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Histogram

# Seconds: a health probe takes a millisecond, a 50,000-row upload several seconds.
_REQUEST_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_JOB_BUCKETS: Final = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

HTTP_REQUESTS: Final = Counter(
    "lead_ledger_http_requests",
    "HTTP requests answered, by route template, method and status",
    ["route", "method", "status"],
)
HTTP_REQUEST_SECONDS: Final = Histogram(
    "lead_ledger_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template and method",
    ["route", "method"],
    buckets=_REQUEST_BUCKETS,
)
EVENTS_APPENDED: Final = Counter(
    "lead_ledger_events_appended",
    "Events this process appended to the log and committed, by event type",
    ["type"],
)
JOB_SECONDS: Final = Histogram(
    "lead_ledger_job_duration_seconds",
    "Time a job's run took, by its queue state after the run (done, failed, queued, lost)",
    ["state"],
    buckets=_JOB_BUCKETS,
)
CALLBACK_ATTEMPTS: Final = Counter(
    "lead_ledger_callback_attempts",
    "Callback attempts, by outcome (delivered, failed: retried or abandoned, refused: final)",
    ["outcome"],
)
