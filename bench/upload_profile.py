"""Where the time of a 50,000-row bulk upload job goes, phase by phase: an Ozonetel csv file
upload job and a Flexydial bulk insert job of the same rows, beside bench/bulk_upload.py's raw
binary COPY of the upload's events (its `copy_baseline`, run in the same rounds).

Run it from the repository root:

    .venv/bin/python bench/upload_profile.py
    .venv/bin/python bench/upload_profile.py --rows 50000 --rounds 3
    LEDGER_BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/upload_profile.py --rounds 3

Everything runs in this process, through the service's own path, on a scratch database made and
seeded as bench/bulk_upload.py makes it, with what `serve` uses: uvloop, its GC and GIL settings
(`lead_ledger.cli._tune_runtime`), its phone key workers started warm (`KeyWorkers().warm()`), the
upload parser's worker process, the job kinds bound to those workers (`job_kinds`). Each round
takes new rows and new campaigns; per job: the request (`ozonetel_bulk.upload` with the csv
file, or Flexydial's `parse_structure` + `submit_bulk` with the JSON body; no HTTP), then the
job (`claim_next` + `run_job`, claim to durable commit), then what ends it for the client (the
callback's dispatch and arrival in this process; Flexydial's status check). Each round runs
both jobs once more with the timers switched off (the same rows, other campaigns): the cost of
the timers shows as the difference in wall time. The four jobs of a round run in alternating
order, each after a CHECKPOINT. A warm-up job of each kind (5,000 rows) runs first.

The timers are the bench's own: service functions, asyncpg's Connection methods and the key
workers' chunk calls are wrapped at run time (module attributes replaced in this process;
nothing in lead_ledger/ changes). Each phase gets two figures:
- inside: seconds spent in the phase (its own time, without the timed steps nested in it; key
  chunks: seconds per chunk call, summed over the worker lanes);
- exposed: the job's wall time, instant by instant, given to one phase: the statement on the
  connection when one is in flight, else the innermost timed step running on the event loop, else
  the step running on the seal-ahead thread, else the wait for keys, else "other". Exposed times
  add up to the wall time; a phase is on the critical path when most of its inside time is
  exposed, and overlapped when it ran while something else held the job up.
Sealing and encoding are split within their steps by per-call timers (`_stored`,
`encode_event`, `new_data_key`, `wrap`), whose own cost is estimated and printed. The exit
status is 0: a measurement to read.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import itertools
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar

import asyncpg
import psutil
import uvloop

from lead_ledger import cli
from lead_ledger.api.callback_http import callback_session, poster
from lead_ledger.ledger import key_store, locks, store, subject_keys
from lead_ledger.ledger.connection import Connection
from lead_ledger.ledger.database import connect, create_pool
from lead_ledger.ledger.envelope import Actor
from lead_ledger.projections import fresh_inserts, registry
from lead_ledger.service import (
    account_reads,
    accounts,
    callbacks,
    dnc,
    flexydial,
    flexydial_jobs,
    flexydial_payload,
    jobs,
    lead_inserts,
    ozonetel_bulk,
    phone_keys,
    rate_limits,
    transactions,
    writer,
)
from lead_ledger.service.file_parser import FileParser
from lead_ledger.service.job_kinds import job_kinds
from lead_ledger.service.jobs import JobKinds, lifecycle
from lead_ledger.service.key_workers import KeyWorkers
from lead_ledger.settings import Settings

if TYPE_CHECKING:
    from bench import bulk_upload
    from bench._support import (
        Phones,
        bench_database,
        bench_server,
        checkpoint,
        machine_description,
        median,
        print_notes,
        print_pairs,
        print_table,
        quiet_logs,
        receiving,
        server_description,
    )
else:
    import bulk_upload
    from _support import (
        Phones,
        bench_database,
        bench_server,
        checkpoint,
        machine_description,
        median,
        print_notes,
        print_pairs,
        print_table,
        quiet_logs,
        receiving,
        server_description,
    )

P = ParamSpec("P")
R = TypeVar("R")

WORKER_ID: Final = "upload-profile"
WARM_ROWS: Final = 5_000
OZONETEL: Final = "ozonetel csv"
FLEXYDIAL: Final = "flexydial insert"

# --- phases -------------------------------------------------------------------------------------

START: Final = "job start: claim, load, BEGIN, locks"
DECODE: Final = "payload decode (JSON -> structs)"
ROWS: Final = "row mapping + checks (row_to_fields)"
IDS: Final = "region, lead ids + campaign lock, secret"
KEYS: Final = "dedupe keys (key workers)"
DECIDE: Final = "decide LeadInserted + event ids"
DNC: Final = "DNC check (digests + query)"
DUPS: Final = "duplicate check (query + Python)"
DATA_KEYS: Final = "data keys: make + wrap"
SEAL: Final = "sealing (digests, AES-GCM, base64)"
ENCODE: Final = "event encoding (JSON, metadata)"
KEY_ROWS: Final = "key rows insert (subject_keys)"
COPY: Final = "event COPY (positions + COPY)"
PROJ_IN: Final = "projection input (events -> JSON again)"
PROJ: Final = "projection SQL (leads + contacts)"
DONE: Final = "completion (JobCompleted, outbox, queue)"
COMMIT: Final = "commit + WAL flush"
OTHER: Final = "other (untimed Python, loop)"
JOB_PHASES: Final = (
    START,
    DECODE,
    ROWS,
    IDS,
    KEYS,
    DECIDE,
    DNC,
    DUPS,
    DATA_KEYS,
    SEAL,
    ENCODE,
    KEY_ROWS,
    COPY,
    PROJ_IN,
    PROJ,
    DONE,
    COMMIT,
    OTHER,
)
# Split by the per-call timers into DATA_KEYS, SEAL and ENCODE.
SEAL_GROUP: Final = "(sealing step)"

REQ_PARSE: Final = "parse + validate the payload"
REQ_CHECKS: Final = "checks (auth, campaign, rate limit)"
REQ_ENCODE: Final = "encode the job payload"
REQ_SUBMIT: Final = "submit (JobSubmitted, payload, queue)"
REQUEST_PHASES: Final = (REQ_PARSE, REQ_CHECKS, REQ_ENCODE, REQ_SUBMIT, COMMIT, OTHER)

# Statements by their text: (label, phase in a job, phase in a request).
STATEMENTS: Final[dict[str, tuple[str, str, str]]] = {
    lifecycle.CLAIM_NEXT: ("claim", START, OTHER),
    store.SELECT_STREAM: ("read stream", START, OTHER),
    lifecycle.SELECT_PAYLOAD: ("read payload", START, OTHER),
    transactions.BEGIN_WRITE: ("BEGIN", START, REQ_SUBMIT),
    locks.LOCK_XACT: ("campaign lock", START, REQ_SUBMIT),
    lifecycle.LOCK_CLAIMED: ("queue row lock", START, OTHER),
    account_reads.SELECT_REGION: ("region", IDS, OTHER),
    lead_inserts.NEXT_IDS_THEN_LOCK: ("lead ids + lock", IDS, OTHER),
    key_store.SELECT_ACCOUNT_WRAPPED: ("account secret", IDS, OTHER),
    flexydial_jobs.SELECT_KNOWN_AGENTS: ("agents", ROWS, OTHER),
    dnc.SELECT_BLOCKING_DIGESTS: ("DNC digests", DNC, OTHER),
    lead_inserts.SELECT_PHONE_OWNERS: ("phone owners", DUPS, OTHER),
    lead_inserts.SELECT_ARCHIVED_OWNERS: ("archived owners", DUPS, OTHER),
    key_store.INSERT_KEYS: ("INSERT subject_keys", KEY_ROWS, OTHER),
    key_store.SELECT_KEYS_FOR_WRITING: ("SELECT subject_keys", KEY_ROWS, OTHER),
    store.DRAW_POSITIONS: ("draw positions", COPY, OTHER),
    store.INSERT_EVENTS: ("INSERT events", COPY, REQ_SUBMIT),
    store.SELECT_STREAM_VERSIONS: ("stream versions", COPY, REQ_SUBMIT),
    fresh_inserts.USE_UTC: ("time zone UTC", PROJ, OTHER),
    fresh_inserts.APPLY_FRESH_LEADS: ("leads + contacts", PROJ, OTHER),
    fresh_inserts.RESTORE_TIME_ZONE: ("time zone back", PROJ, OTHER),
    account_reads.SELECT_CAMPAIGN: ("campaign", OTHER, REQ_CHECKS),
    transactions.COMMIT_DURABLY: ("COMMIT + flush", COMMIT, COMMIT),
}

# Timed steps: label -> (phase in a job, phase in a request). Kinds: "loop" (a step on the event
# loop, or on a thread when called there), "bucket" (everything inside is its phase), "outer"
# (only what nothing else covers), "wait" (the writer waits for keys), "keys" (a chunk's call to
# a key worker: background work, exposed only through the waits).
STEPS: Final[dict[str, tuple[str, str]]] = {
    "load_job": (START, OTHER),
    "complete": (DONE, OTHER),
    "payload decode": (DECODE, OTHER),
    "row mapping": (ROWS, OTHER),
    "decode request": (DECODE, OTHER),
    "known agents": (ROWS, OTHER),
    "default_region": (IDS, OTHER),
    "ids_and_locks": (IDS, OTHER),
    "account_digest": (IDS, OTHER),
    "wait for keys": (KEYS, OTHER),
    "key chunk": (KEYS, OTHER),
    "decide": (DECIDE, OTHER),
    "lead_appends": (DECIDE, OTHER),
    "dnc.blocking": (DNC, OTHER),
    "duplicates": (DUPS, OTHER),
    "seal_appends": (SEAL_GROUP, OTHER),
    "seal_account": (SEAL_GROUP, OTHER),
    "seal_ahead": (SEAL_GROUP, OTHER),
    "sealed_chunk": (SEAL_GROUP, OTHER),
    "keys_for_writing": (DATA_KEYS, OTHER),
    "store_new_keys": (KEY_ROWS, OTHER),
    "append_events": (ENCODE, OTHER),
    "apply_inline": (PROJ_IN, OTHER),
    "apply_fresh_inserts": (PROJ_IN, OTHER),
    "parse file": (OTHER, REQ_PARSE),
    "parse_structure": (OTHER, REQ_PARSE),
    "request checks": (OTHER, REQ_CHECKS),
    "rate limit": (OTHER, REQ_CHECKS),
    "check_headers": (OTHER, REQ_CHECKS),
    "submit_bulk": (OTHER, REQ_ENCODE),
    "submit_job": (OTHER, REQ_SUBMIT),
}
# Order of precedence when several timed steps cover one instant.
PRECEDENCE: Final = {"bucket": 0, "db": 1, "loop": 2, "thread": 3, "wait": 4, "outer": 5}


# --- the recorder -------------------------------------------------------------------------------


@dataclasses.dataclass
class Span:
    id: int
    parent: int
    label: str
    kind: str
    start: float
    end: float = 0.0
    cpu: float = 0.0  # thread CPU seconds, for steps run on a thread


# The innermost open span of this task (or thread): a step's parent.
_CURRENT: ContextVar[int] = ContextVar("upload_profile_span", default=0)


class Recorder:
    """Spans of the timed steps, while `on`; per-call seconds by (enclosing span, function)."""

    def __init__(self) -> None:
        self.on = False
        self.spans: list[Span] = []
        self.calls: dict[tuple[int, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
        self._ids = itertools.count(1)
        self.handler_started = 0.0

    def reset(self) -> None:
        self.spans = []
        self.calls = defaultdict(lambda: [0.0, 0.0])

    def begin(self, label: str, kind: str, start: float | None = None) -> tuple[Span, Token[int]]:
        on_thread = threading.current_thread() is not threading.main_thread()
        if on_thread and kind == "loop":
            kind = "thread"
        span = Span(
            next(self._ids),
            _CURRENT.get(),
            label,
            kind,
            time.perf_counter() if start is None else start,
        )
        if on_thread:
            span.cpu = -time.thread_time()
        self.spans.append(span)
        return span, _CURRENT.set(span.id)

    def end(self, span: Span, token: Token[int]) -> None:
        span.end = time.perf_counter()
        if span.kind == "thread":
            span.cpu += time.thread_time()
        _CURRENT.reset(token)

    def call(self, name: str, seconds: float) -> None:
        entry = self.calls[_CURRENT.get(), name]
        entry[0] += seconds
        entry[1] += 1


REC: Final = Recorder()


def timed(label: str, kind: str = "loop") -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A span around each call of a plain function."""

    def wrap(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def inner(*args: P.args, **kwargs: P.kwargs) -> R:
            if not REC.on:
                return function(*args, **kwargs)
            span, token = REC.begin(label, kind)
            try:
                return function(*args, **kwargs)
            finally:
                REC.end(span, token)

        return inner

    return wrap


def timed_async(
    label: str, kind: str = "loop"
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """A span around each await of a coroutine function."""

    def wrap(function: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(function)
        async def inner(*args: P.args, **kwargs: P.kwargs) -> R:
            if not REC.on:
                return await function(*args, **kwargs)
            span, token = REC.begin(label, kind)
            try:
                return await function(*args, **kwargs)
            finally:
                REC.end(span, token)

        return inner

    return wrap


def counted(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Seconds and calls of a function called per event, added to its enclosing span's."""

    def wrap(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def inner(*args: P.args, **kwargs: P.kwargs) -> R:
            if not REC.on:
                return function(*args, **kwargs)
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                REC.call(name, time.perf_counter() - started)

        return inner

    return wrap


def statement_label(method: str, first: object) -> str:
    if method == "copy_records_to_table":
        return f"COPY {first}"
    if isinstance(first, str):
        known = STATEMENTS.get(first)
        if known is not None:
            return known[0]
        return "SQL " + " ".join(first.split())[:40]
    return method


def timed_statement(method: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A span around each call of one of asyncpg's Connection methods, labelled by statement."""

    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        async def inner(
            self: asyncpg.Connection, first: object, *args: object, **kwargs: object
        ) -> Any:  # noqa: ANN401 - whatever asyncpg answers
            if not REC.on:
                return await original(self, first, *args, **kwargs)
            span, token = REC.begin(statement_label(method, first), "db")
            try:
                return await original(self, first, *args, **kwargs)
            finally:
                REC.end(span, token)

        return inner

    return wrap


# Statement texts by label, for the phase of a statement span.
_BY_LABEL: Final = {label: (job, request) for label, job, request in STATEMENTS.values()} | {
    "COPY events": (COPY, OTHER),
    "COPY subject_keys": (KEY_ROWS, OTHER),
}


class Patches:
    """Module attributes replaced for the run, put back after."""

    def __init__(self) -> None:
        self.undo: list[tuple[object, str, object]] = []

    def wrap(self, owner: object, name: str, make: Callable[[Any], Any]) -> None:
        original = getattr(owner, name)
        setattr(owner, name, make(original))
        self.undo.append((owner, name, original))

    def restore(self) -> None:
        for owner, name, original in reversed(self.undo):
            setattr(owner, name, original)
        self.undo = []


def _prologue_then(label: str) -> Callable[[Any], Any]:
    """`insert_leads` as a handler calls it: the handler's work before it becomes a span
    (`label`), and the insert itself an outer one."""

    def make(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def inner(*args: object, **kwargs: object) -> Any:  # noqa: ANN401 - InsertResult
            if REC.on:
                now = time.perf_counter()
                prologue, token = REC.begin(label, "loop", start=REC.handler_started)
                REC.end(prologue, token)
                prologue.end = now
                # The steps timed inside the prologue (Flexydial's decode) are its children.
                for span in REC.spans:
                    if (
                        span.parent == prologue.parent
                        and span is not prologue
                        and span.start >= prologue.start
                        and span.end <= now
                    ):
                        span.parent = prologue.id
            return await timed_async("insert_leads", "outer")(original)(*args, **kwargs)

        return inner

    return make


def install() -> Patches:
    """Wrap the service's steps (and asyncpg's statements) with the recorder's timers."""
    patches = Patches()
    for method in (
        "execute",
        "executemany",
        "fetch",
        "fetchrow",
        "fetchval",
        "copy_records_to_table",
    ):
        patches.wrap(asyncpg.Connection, method, timed_statement(method))
    patches.wrap(lifecycle, "load_job", timed_async("load_job", "bucket"))
    patches.wrap(lifecycle, "_complete", timed_async("complete", "bucket"))
    patches.wrap(ozonetel_bulk, "insert_leads", _prologue_then("payload decode"))
    patches.wrap(flexydial_jobs, "insert_leads", _prologue_then("row mapping"))
    patches.wrap(flexydial_jobs, "_decode_request", timed("decode request"))
    patches.wrap(flexydial_jobs, "_known_agents", timed_async("known agents"))
    patches.wrap(lead_inserts, "default_region", timed_async("default_region"))
    patches.wrap(lead_inserts, "_ids_and_locks", timed_async("ids_and_locks"))
    patches.wrap(lead_inserts, "account_digest", timed_async("account_digest"))
    patches.wrap(phone_keys.KeysAhead, "take", timed_async("wait for keys", "wait"))
    patches.wrap(phone_keys, "_keys_of_chunk", timed_async("key chunk", "keys"))
    patches.wrap(lead_inserts, "_decide", timed("decide"))
    patches.wrap(lead_inserts, "_lead_appends", timed("lead_appends"))
    patches.wrap(lead_inserts, "_sealed_chunk", timed("sealed_chunk"))
    patches.wrap(lead_inserts, "seal_ahead", timed("seal_ahead"))
    patches.wrap(dnc, "blocking", timed_async("dnc.blocking"))
    patches.wrap(lead_inserts, "_duplicates", timed_async("duplicates"))
    patches.wrap(writer, "seal_appends", timed_async("seal_appends"))
    patches.wrap(writer, "_seal_account", timed_async("seal_account"))
    patches.wrap(key_store, "keys_for_writing", timed_async("keys_for_writing"))
    patches.wrap(key_store, "store_new_keys", timed_async("store_new_keys"))
    patches.wrap(writer, "append_events", timed_async("append_events"))
    patches.wrap(writer, "apply_inline", timed_async("apply_inline"))
    patches.wrap(registry, "apply_fresh_inserts", timed_async("apply_fresh_inserts"))
    patches.wrap(writer, "_stored", counted("_stored"))
    patches.wrap(writer, "encode_event", counted("encode_event"))
    patches.wrap(subject_keys, "new_data_key", counted("new_data_key"))
    patches.wrap(subject_keys, "wrap", counted("wrap"))
    # The request side.
    patches.wrap(ozonetel_bulk, "_check", timed_async("request checks"))
    patches.wrap(rate_limits, "take", timed_async("rate limit"))
    patches.wrap(jobs, "submit_job", timed_async("submit_job", "bucket"))
    patches.wrap(flexydial, "check_headers", timed("check_headers"))
    patches.wrap(FileParser, "parse", timed_async("parse file"))
    return patches


def timed_kinds(kinds: JobKinds) -> JobKinds:
    """The kinds with each handler timed (an outer span, and the start of its prologue)."""

    def make(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def inner(*args: object, **kwargs: object) -> Any:  # noqa: ANN401 - JobOutcome
            REC.handler_started = time.perf_counter()
            return await timed_async("handler", "outer")(handler)(*args, **kwargs)

        return inner

    return {
        name: dataclasses.replace(kind, handler=make(kind.handler)) for name, kind in kinds.items()
    }


# --- attribution --------------------------------------------------------------------------------


@dataclasses.dataclass
class Breakdown:
    """One timeline's phases: own seconds inside each, and the wall time given to each."""

    wall: float
    inside: dict[str, float]
    exposed: dict[str, float]
    statements: int = 0
    # Per timed step (statements by label): own seconds inside, exposed seconds; per-call
    # timers: seconds and calls.
    steps_inside: dict[str, float] = dataclasses.field(default_factory=dict)
    steps_exposed: dict[str, float] = dataclasses.field(default_factory=dict)
    calls: dict[str, tuple[float, int]] = dataclasses.field(default_factory=dict)


def _phase(span: Span, spans: dict[int, Span], *, request: bool) -> str:
    which = 1 if request else 0
    if span.kind == "db":
        known = _BY_LABEL.get(span.label)
        if known is not None and known[which] != OTHER:
            return known[which]
        parent = spans.get(span.parent)
        return _phase(parent, spans, request=request) if parent is not None else OTHER
    step = STEPS.get(span.label)
    if step is None:
        return OTHER
    return step[which]


def _bucket(span: Span, spans: dict[int, Span]) -> Span | None:
    """The outermost bucket span around `span` (itself included), if any."""
    found = None
    current: Span | None = span
    while current is not None:
        if current.kind == "bucket":
            found = current
        current = spans.get(current.parent)
    return found


def _seal_split(
    span: Span, calls: dict[tuple[int, str], list[float]], own: float
) -> dict[str, float]:
    """A sealing step's own time, split by its per-call timers."""
    encode = calls.get((span.id, "encode_event"), [0.0])[0]
    keys = calls.get((span.id, "new_data_key"), [0.0])[0] + calls.get((span.id, "wrap"), [0.0])[0]
    encode, keys = min(encode, own), min(keys, max(own - encode, 0.0))
    return {ENCODE: encode, DATA_KEYS: keys, SEAL: max(own - encode - keys, 0.0)}


def breakdown(  # noqa: C901, PLR0912, PLR0915 - one pass per figure
    spans: Sequence[Span],
    calls: dict[tuple[int, str], list[float]],
    start: float,
    end: float,
    *,
    request: bool = False,
) -> Breakdown:
    by_id = {span.id: span for span in spans}
    children: dict[int, float] = defaultdict(float)
    for span in spans:
        if span.kind not in ("keys", "wait"):
            children[span.parent] += span.end - span.start
    # Inside: each span's own time (its duration less its timed children's), by phase.
    inside: dict[str, float] = defaultdict(float)
    steps_inside: dict[str, float] = defaultdict(float)
    for span in spans:
        bucket = _bucket(span, by_id)
        if bucket is not None:
            if bucket is span:
                inside[_phase(span, by_id, request=request)] += span.end - span.start
            continue
        if span.kind in ("outer", "wait"):
            continue
        if span.kind == "keys":
            inside[KEYS] += span.end - span.start
            continue
        own = max(span.end - span.start - children[span.id], 0.0)
        steps_inside[span.label] += own
        phase = _phase(span, by_id, request=request)
        if phase == SEAL_GROUP:
            for part, seconds in _seal_split(span, calls, own).items():
                inside[part] += seconds
        else:
            inside[phase] += own
    # Exposed: each instant of the wall time to the span that holds the job up then.
    candidates = [s for s in spans if s.kind != "keys" and s.end > start and s.start < end]
    depth: dict[int, int] = {}
    for span in sorted(candidates, key=lambda s: s.start):
        depth[span.id] = depth.get(span.parent, 0) + 1
    bounds = sorted(
        {start, end, *(max(s.start, start) for s in candidates)}
        | {min(s.end, end) for s in candidates}
    )
    given: dict[int, float] = defaultdict(float)
    unclaimed = 0.0
    for left, right in itertools.pairwise(bounds):
        if right <= left:
            continue
        covering = [s for s in candidates if s.start <= left and s.end >= right]
        if not covering:
            unclaimed += right - left
            continue
        best = min(covering, key=lambda s: (PRECEDENCE[s.kind], -depth.get(s.id, 0), -s.start))
        if best.kind == "outer":
            unclaimed += right - left
            continue
        bucket = _bucket(best, by_id)
        given[(bucket or best).id] += right - left
    exposed: dict[str, float] = defaultdict(float)
    labels: dict[str, float] = defaultdict(float)
    exposed[OTHER] += unclaimed
    for span_id, seconds in given.items():
        span = by_id[span_id]
        labels[span.label] += seconds
        phase = _phase(span, by_id, request=request)
        if phase == SEAL_GROUP:
            own = max(span.end - span.start - children[span.id], 0.0)
            split = _seal_split(span, calls, own)
            total = sum(split.values())
            for part, share in split.items():
                exposed[part] += seconds * (share / total if total > 0 else 1 / len(split))
        else:
            exposed[phase] += seconds
    inside[OTHER] = exposed[OTHER]  # what no timed step covers: inside it is only its exposure
    statements = sum(1 for s in spans if s.kind == "db")
    per_call: dict[str, tuple[float, int]] = {}
    for (_, name), (seconds, count) in calls.items():
        before = per_call.get(name, (0.0, 0))
        per_call[name] = (before[0] + seconds, before[1] + int(count))
    return Breakdown(
        end - start,
        dict(inside),
        dict(exposed),
        statements,
        dict(steps_inside),
        dict(labels),
        per_call,
    )


# --- one job ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Profile:
    """One job: the request, the job's phases, what ends it for the client, and facts."""

    request: Breakdown
    job: Breakdown
    after: float  # the callback's dispatch and arrival; Flexydial: its status check
    facts: dict[str, float]


@dataclasses.dataclass
class Setup:
    url: str
    pool: asyncpg.Pool
    parser: FileParser
    key_workers: KeyWorkers
    kinds: JobKinds
    ozonetel_key: str
    account_id: int
    flexydial_ctx: writer.Context
    receiver: bulk_upload.Callbacks
    callback_url: str
    post: callbacks.Post


def cpu_seconds(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


SIZES: Final = """
SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c
WHERE c.relname IN ('events', 'leads', 'contacts', 'subject_keys') AND c.relkind = 'r'
"""
EVENT_FACTS: Final = """
SELECT count(*), coalesce(avg(octet_length(data::text)), 0),
       coalesce(avg(octet_length(metadata::text)), 0)
FROM events WHERE type = 'LeadInserted' AND (data->>'campaign_id')::bigint = $1
"""
CONTACTS: Final = "SELECT count(*) FROM contacts WHERE campaign_id = $1"
CAMPAIGN_ID: Final = "SELECT campaign_id FROM campaigns WHERE name = $1"


async def sizes(conn: Connection) -> dict[str, int]:
    return {row[0]: row[1] for row in await conn.fetch(SIZES)}


@contextlib.contextmanager
def recording(on: bool = True) -> Iterator[Recorder]:
    """Spans of what runs inside, when `on`; otherwise only the spans begun by hand."""
    REC.reset()
    REC.on = on
    try:
        yield REC
    finally:
        REC.on = False


async def run_job(setup: Setup, facts: dict[str, float], *, timers: bool) -> Breakdown:
    """Claim the queued job and run it as the worker does: claim to durable commit, its steps
    timed with `timers`."""
    async with setup.pool.acquire() as conn:
        backend = conn.get_server_pid()
        workers = setup.key_workers.pids()
        cpu = (time.process_time(), cpu_seconds(workers), cpu_seconds([backend]))
        with recording(timers) as rec:
            root, token = rec.begin("job", "outer")
            claim = await jobs.claim_next(conn, WORKER_ID, 300.0)
            if claim is None:
                raise RuntimeError("no job to claim")
            state = await jobs.run_job(conn, WORKER_ID, claim, setup.kinds)
            rec.end(root, token)
        if state != "done":
            raise RuntimeError(f"job {claim.job_id} ended {state}")
        facts["CPU s: this process (loop + threads)"] = time.process_time() - cpu[0]
        facts["CPU s: key worker processes"] = cpu_seconds(workers) - cpu[1]
        facts["CPU s: the job's PostgreSQL backend"] = cpu_seconds([backend]) - cpu[2]
    if not timers:
        return Breakdown(root.end - root.start, {}, {})
    spans = list(rec.spans)
    result = breakdown(spans, rec.calls, root.start, root.end)
    chunks = [s for s in spans if s.kind == "keys"]
    threads = [s for s in spans if s.label == "sealed_chunk"]
    facts["key chunks (4,096 leads each)"] = len(chunks)
    facts["key chunk s, median"] = median([s.end - s.start for s in chunks]) if chunks else 0.0
    facts["DB statements in the job"] = result.statements
    if threads:
        facts["seal-ahead thread: wall s"] = sum(s.end - s.start for s in threads)
        facts["seal-ahead thread: CPU s"] = sum(s.cpu for s in threads)
    calls = sum(int(entry[1]) for entry in rec.calls.values())
    facts["per-call timers: calls"] = calls
    facts["per-call timers: est. overhead s"] = calls * TIMER_COST[0]
    return result


async def table_facts(
    setup: Setup, campaign: str, before: dict[str, int], facts: dict[str, float]
) -> None:
    conn = await connect(setup.url)
    try:
        after = await sizes(conn)
        campaign_id = await conn.fetchval(CAMPAIGN_ID, campaign)
        events = await conn.fetchrow(EVENT_FACTS, campaign_id)
        contacts = await conn.fetchval(CONTACTS, campaign_id)
    finally:
        await conn.close()
    if events is None:
        raise RuntimeError("no event figures")
    facts["LeadInserted events"] = events[0]
    facts["stored event data, bytes avg"] = float(events[1])
    facts["stored event metadata, bytes avg"] = float(events[2])
    facts["contacts rows written"] = contacts
    for table in ("events", "leads", "contacts", "subject_keys"):
        facts[f"{table} grew, MB (with indexes)"] = (after[table] - before[table]) / 1024 / 1024


async def profile_ozonetel(
    setup: Setup, campaign: str, rows: Sequence[Sequence[str]], *, timers: bool = True
) -> Profile:
    form = ozonetel_bulk.UploadForm(
        username=bulk_upload.ACCOUNT,
        api_key=setup.ozonetel_key,
        campaign_name=campaign,
        callback_url=setup.callback_url,
        file=bulk_upload.csv_bytes(rows),
        filename="leads.csv",
    )
    origin = writer.Origin(request_id=f"profile-{campaign}", client_address="127.0.0.1")
    before = await _sizes(setup.url)
    with recording(timers) as rec:
        root, token = rec.begin("request", "outer")
        outcome = await ozonetel_bulk.upload(setup.pool, setup.parser, form, origin)
        rec.end(root, token)
    if not isinstance(outcome, ozonetel_bulk.Submitted):
        raise RuntimeError(f"upload refused: {outcome}")  # noqa: TRY004 - refused, not mistyped
    request = breakdown(rec.spans, rec.calls, root.start, root.end, request=True)
    facts: dict[str, float] = {}
    job = await run_job(setup, facts, timers=timers)
    arrival = setup.receiver.expect(campaign)
    started = time.perf_counter()
    await callbacks.dispatch_due(setup.pool, setup.post, allow_private=True)
    _, body = await asyncio.wait_for(arrival, timeout=60)
    after = time.perf_counter() - started
    if body.get("status") != "success":
        raise RuntimeError(f"callback: {body}")
    await table_facts(setup, campaign, before, facts)
    return Profile(request, job, after, facts)


async def profile_flexydial(
    setup: Setup, campaign: str, rows: Sequence[Sequence[str]], *, timers: bool = True
) -> Profile:
    body = bulk_upload.flexydial_body(campaign, rows)
    before = await _sizes(setup.url)
    with recording(timers) as rec:
        root, token = rec.begin("request", "outer")
        parse = timed("parse_structure")(flexydial_payload.parse_structure)
        submit = timed_async("submit_bulk")(flexydial.submit_bulk)
        parsed = parse(body)
        if isinstance(parsed, str):
            raise RuntimeError(f"Flexydial body refused: {parsed}")  # noqa: TRY004 - as above
        outcome = await submit(setup.pool, setup.flexydial_ctx, setup.account_id, parsed)
        rec.end(root, token)
    if not isinstance(outcome, flexydial.Submitted):
        raise RuntimeError(f"Flexydial insert refused: {outcome}")  # noqa: TRY004 - as above
    request = breakdown(rec.spans, rec.calls, root.start, root.end, request=True)
    facts: dict[str, float] = {}
    job = await run_job(setup, facts, timers=timers)
    started = time.perf_counter()
    async with setup.pool.acquire() as conn:
        status = await flexydial.job_status(conn, setup.account_id, str(outcome.job_id))
    after = time.perf_counter() - started
    if status is None or status.status != flexydial.COMPLETED:
        raise RuntimeError(f"Flexydial job status: {status}")
    await table_facts(setup, campaign, before, facts)
    return Profile(request, job, after, facts)


async def _sizes(url: str) -> dict[str, int]:
    conn = await connect(url)
    try:
        return await sizes(conn)
    finally:
        await conn.close()


async def _checkpoint(url: str) -> bool:
    conn = await connect(url)
    try:
        return await checkpoint(conn)
    finally:
        await conn.close()


# --- the timer's own cost -----------------------------------------------------------------------

TIMER_COST: Final = [0.0]  # seconds a per-call timer adds to one call, measured at start


def measure_timer_cost() -> float:
    def plain(value: int) -> int:
        return value

    wrapped = counted("calibration")(plain)
    calls = 200_000
    REC.on = True
    try:
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            for i in range(calls):
                plain(i)
            bare = time.perf_counter() - started
            started = time.perf_counter()
            for i in range(calls):
                wrapped(i)
            timings.append((time.perf_counter() - started - bare) / calls)
    finally:
        REC.on = False
        REC.reset()
    return median(timings)


# --- the run ------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=50_000, help="rows per upload")
    parser.add_argument("--rounds", type=int, default=3, help="jobs of each kind")
    return parser.parse_args()


@dataclasses.dataclass
class Results:
    profiles: dict[str, list[Profile]] = dataclasses.field(
        default_factory=lambda: {OZONETEL: [], FLEXYDIAL: []}
    )
    # Job walls of the same jobs run without the timers (the wrappers installed, switched off).
    untimed: dict[str, list[float]] = dataclasses.field(
        default_factory=lambda: {OZONETEL: [], FLEXYDIAL: []}
    )
    copy_seconds: list[float] = dataclasses.field(default_factory=list)
    copy_flexydial: list[float] = dataclasses.field(default_factory=list)
    checkpoints: bool = True


async def flexydial_context(url: str) -> tuple[int, writer.Context]:
    """The account's id, and the context of a request made with a new `flexydial` credential
    (as generate-token issues one): the actor Flexydial's requests record."""
    conn = await connect(url)
    try:
        admin = writer.Context(actor=Actor(dialect="admin"), request_id="profile")
        issued = await accounts.issue_credential(
            conn, admin, bulk_upload.ACCOUNT, accounts.NewCredential(api=flexydial.DIALECT)
        )
        account_id: int = await conn.fetchval(
            "SELECT account_id FROM accounts WHERE name = $1", bulk_upload.ACCOUNT
        )
    finally:
        await conn.close()
    actor = Actor(dialect=flexydial.DIALECT, account_id=account_id, credential_id=issued.id)
    ctx = writer.Origin(request_id="profile", client_address="127.0.0.1").context(actor)
    return account_id, ctx


async def run(args: argparse.Namespace) -> None:
    quiet_logs()
    print(f"Bulk upload jobs, phase by phase: {args.rows:,} rows, {args.rounds} round(s)")
    phones = Phones(seed=42)
    names = {
        (case, r): f"profile-{case.replace(' ', '-')}-{r}"
        for case in (OZONETEL, FLEXYDIAL, f"untimed {OZONETEL}", f"untimed {FLEXYDIAL}", "warm")
        for r in range(args.rounds if case != "warm" else 2)
    }
    results = Results()
    receiver = bulk_upload.Callbacks()
    settings = Settings()
    async with (
        receiving({"/callback": receiver.receive}) as hooks,
        bench_server() as server,
        bench_database(server.url, "bench_profile") as url,
    ):
        print_pairs([("server", server.source), *await server_description(server.url)])
        print_pairs(machine_description())
        key = await bulk_upload.seed(url, list(names.values()))
        account_id, flexydial_ctx = await flexydial_context(url)
        pool = await create_pool(url, min_size=settings.db_pool_min, max_size=settings.db_pool_max)
        patches = install()
        try:
            with (
                KeyWorkers() as key_workers,
                FileParser(
                    memory_bytes=settings.parser_memory_bytes,
                    timeout_seconds=settings.parser_timeout_seconds,
                ) as parser,
            ):
                key_workers.warm()
                cli._tune_runtime()  # noqa: SLF001 - serve's own settings, not a copy of them
                TIMER_COST[0] = measure_timer_cost()
                async with callback_session(allow_private=True) as session:
                    setup = Setup(
                        url=url,
                        pool=pool,
                        parser=parser,
                        key_workers=key_workers,
                        kinds=timed_kinds(job_kinds(key_workers)),
                        ozonetel_key=key,
                        account_id=account_id,
                        flexydial_ctx=flexydial_ctx,
                        receiver=receiver,
                        callback_url=f"{hooks}/callback",
                        post=poster(session),
                    )
                    print_pairs(
                        [
                            ("key workers", f"{key_workers.count} (pids {key_workers.pids()})"),
                            ("timer cost", f"{TIMER_COST[0] * 1e6:.2f} us per timed call"),
                        ]
                    )
                    warm_rows = bulk_upload.make_rows(WARM_ROWS, phones)
                    await profile_ozonetel(setup, names["warm", 0], warm_rows)
                    await profile_flexydial(setup, names["warm", 1], warm_rows)
                    await rounds(args, setup, phones, names, results)
        finally:
            patches.restore()
            await pool.close()
    report(args, results)


async def rounds(
    args: argparse.Namespace,
    setup: Setup,
    phones: Phones,
    names: dict[tuple[str, int], str],
    results: Results,
) -> None:
    for r in range(args.rounds):
        rows = bulk_upload.make_rows(args.rows, phones)  # the same rows for every job
        order = [(OZONETEL, True), (FLEXYDIAL, True), (OZONETEL, False), (FLEXYDIAL, False)]
        if r % 2:
            order.reverse()
        for case, timers in order:
            results.checkpoints &= await _checkpoint(setup.url)
            profile = profile_ozonetel if case == OZONETEL else profile_flexydial
            name = names[case if timers else f"untimed {case}", r]
            done = await profile(setup, name, rows, timers=timers)
            if timers:
                results.profiles[case].append(done)
            else:
                results.untimed[case].append(done.job.wall)
        results.checkpoints &= await _checkpoint(setup.url)
        results.copy_seconds.append(await bulk_upload.copy_baseline(setup.url, names[OZONETEL, r]))
        results.copy_flexydial.append(
            await bulk_upload.copy_baseline(setup.url, names[FLEXYDIAL, r])
        )
        oz, fx = results.profiles[OZONETEL][-1], results.profiles[FLEXYDIAL][-1]
        oz_bare, fx_bare = results.untimed[OZONETEL][-1], results.untimed[FLEXYDIAL][-1]
        print(
            f"  round {r + 1}: ozonetel job {oz.job.wall:.2f} s (untimed {oz_bare:.2f} s,"
            f" request {oz.request.wall:.2f} s), flexydial job {fx.job.wall:.2f} s"
            f" (untimed {fx_bare:.2f} s, request {fx.request.wall:.2f} s), flexydial / ozonetel"
            f" {fx.job.wall / oz.job.wall:.2f}x (untimed {fx_bare / oz_bare:.2f}x),"
            f" COPY {results.copy_seconds[-1]:.2f} s"
        )


# --- the report ---------------------------------------------------------------------------------


def _median_of(values: Sequence[float]) -> float:
    return median(values) if values else 0.0


def _critical(inside: float, exposed: float, wall: float) -> str:
    if inside < 0.005 * wall and exposed < 0.005 * wall:
        return "-"
    if inside <= 0 or exposed >= 0.5 * inside:
        return "yes"
    if exposed >= 0.1 * inside:
        return "partly"
    return "no (overlapped)"


def phase_table(
    breakdowns: Sequence[Breakdown], phases: Sequence[str], copy: float, label: str
) -> None:
    wall = _median_of([b.wall for b in breakdowns])
    rows = [
        [
            "phase",
            "inside s",
            "x COPY",
            "exposed s",
            "exposed range",
            "% of wall",
            "critical path",
        ]
    ]
    for phase in phases:
        inside = _median_of([b.inside.get(phase, 0.0) for b in breakdowns])
        exposed_all = [b.exposed.get(phase, 0.0) for b in breakdowns]
        exposed = _median_of(exposed_all)
        if inside < 0.0005 and exposed < 0.0005:
            continue
        rows.append(
            [
                phase,
                f"{inside:.3f}",
                f"{inside / copy:.2f}x",
                f"{exposed:.3f}",
                f"{min(exposed_all):.3f}-{max(exposed_all):.3f}",
                f"{100 * exposed / wall:.1f}%",
                _critical(inside, exposed, wall),
            ]
        )
    walls = [b.wall for b in breakdowns]
    rows.append(
        [
            label,
            "",
            f"{wall / copy:.2f}x",
            f"{wall:.3f}",
            f"{min(walls):.3f}-{max(walls):.3f}",
            "100.0%",
            "",
        ]
    )
    print_table(rows)


def steps_table(breakdowns: Sequence[Breakdown]) -> None:
    """Each timed step and statement: own seconds, exposed seconds; per-call timers."""
    labels = dict.fromkeys(
        label for b in breakdowns for label in [*b.steps_inside, *b.steps_exposed]
    )
    rows = [["step or statement", "inside s", "exposed s"]]
    for label in labels:
        inside = _median_of([b.steps_inside.get(label, 0.0) for b in breakdowns])
        exposed = _median_of([b.steps_exposed.get(label, 0.0) for b in breakdowns])
        if inside >= 0.001 or exposed >= 0.001:
            rows.append([label, f"{inside:.3f}", f"{exposed:.3f}"])
    for name in dict.fromkeys(name for b in breakdowns for name in b.calls):
        seconds = _median_of([b.calls.get(name, (0.0, 0))[0] for b in breakdowns])
        count = _median_of([b.calls.get(name, (0.0, 0))[1] for b in breakdowns])
        if count:
            rows.append(
                [
                    f"per call: {name} ({count:,.0f} calls, {1e6 * seconds / count:.1f} us)",
                    f"{seconds:.3f}",
                    "",
                ]
            )
    print_table(rows)


def report(args: argparse.Namespace, results: Results) -> None:
    copy = median(results.copy_seconds)
    print()
    print(
        f"Baseline: binary COPY of the Ozonetel job's {args.rows:,} LeadInserted events"
        f" (bench/bulk_upload.py copy_baseline): median {copy:.3f} s"
        f" (rounds {', '.join(f'{s:.3f}' for s in results.copy_seconds)});"
        f" of the Flexydial job's events: {median(results.copy_flexydial):.3f} s"
    )
    for case in (OZONETEL, FLEXYDIAL):
        profiles = results.profiles[case]
        print()
        print(f"{case}: the job, claim to durable commit (medians of {len(profiles)})")
        phase_table([p.job for p in profiles], JOB_PHASES, copy, "job wall")
        print()
        print(f"{case}: the job's timed steps (medians)")
        steps_table([p.job for p in profiles])
        print()
        print(f"{case}: the request before it (in process, no HTTP)")
        phase_table([p.request for p in profiles], REQUEST_PHASES, copy, "request wall")
        after = _median_of([p.after for p in profiles])
        total = _median_of([p.request.wall + p.job.wall + p.after for p in profiles])
        print_pairs(
            [
                (
                    "after the job",
                    f"{after:.3f} s ("
                    + (
                        "callback: claim the outbox row, POST, record the attempt, arrival"
                        if case == OZONETEL
                        else "one status check answering Completed"
                    )
                    + ")",
                ),
                ("request + job + after", f"{total:.3f} s, {total / copy:.2f}x COPY"),
                (
                    "job without timers",
                    f"{median(results.untimed[case]):.3f} s, the same rows, another campaign"
                    " (rounds: " + ", ".join(f"{s:.3f}" for s in results.untimed[case]) + ")",
                ),
            ]
        )
    print()
    print("Where the difference is: exposed seconds, medians (they add up to each job's wall)")
    oz = [p.job for p in results.profiles[OZONETEL]]
    fx = [p.job for p in results.profiles[FLEXYDIAL]]
    rows = [["phase", "ozonetel s", "flexydial s", "flexydial - ozonetel s"]]
    for phase in JOB_PHASES:
        a = _median_of([b.exposed.get(phase, 0.0) for b in oz])
        b = _median_of([b.exposed.get(phase, 0.0) for b in fx])
        if a < 0.0005 and b < 0.0005:
            continue
        rows.append([phase, f"{a:.3f}", f"{b:.3f}", f"{b - a:+.3f}"])
    oz_wall, fx_wall = _median_of([b.wall for b in oz]), _median_of([b.wall for b in fx])
    ratios = [f.wall / o.wall for o, f in zip(oz, fx, strict=True)]
    rows.append(["job wall", f"{oz_wall:.3f}", f"{fx_wall:.3f}", f"{fx_wall - oz_wall:+.3f}"])
    print_table(rows)
    print_pairs(
        [
            (
                "flexydial / ozonetel",
                f"job {fx_wall / oz_wall:.2f}x (per round: "
                + ", ".join(f"{r:.2f}x" for r in ratios)
                + ")",
            ),
            (
                "without timers",
                f"job {median(results.untimed[FLEXYDIAL]) / median(results.untimed[OZONETEL]):.2f}x"
                " (per round: "
                + ", ".join(
                    f"{f / o:.2f}x"
                    for o, f in zip(
                        results.untimed[OZONETEL], results.untimed[FLEXYDIAL], strict=True
                    )
                )
                + ")",
            ),
        ]
    )
    print()
    print("Facts per job (medians)")
    keys = list(
        dict.fromkeys(
            k for p in results.profiles[OZONETEL] + results.profiles[FLEXYDIAL] for k in p.facts
        )
    )
    rows = [["", "ozonetel", "flexydial"]]
    for key in keys:
        values = [
            _median_of([p.facts[key] for p in results.profiles[case] if key in p.facts])
            if any(key in p.facts for p in results.profiles[case])
            else None
            for case in (OZONETEL, FLEXYDIAL)
        ]
        rows.append([key, *("-" if v is None else _fact(v) for v in values)])
    print_table(rows)
    print()
    print_notes(
        [
            (
                f"Medians of {args.rounds} round(s), each phase on its own, so a column's medians"
                " need not add up to the median wall. 'inside': the phase's own seconds (a step"
                " less the timed steps nested in it; key chunks: per chunk call, summed over"
                " the lanes); 'x COPY': inside / the COPY baseline. 'exposed': the wall time"
                " given to the phase, instant by instant (the statement in flight, else the"
                " innermost step on the loop, else on the seal-ahead thread, else the wait for"
                " keys); exposed times add up to the wall. 'critical path': yes when at least"
                " half of the inside time is exposed, partly at 10-50 %, no below."
            ),
            (
                "Statements' seconds are asyncpg round trips seen from this process: the"
                " server's work, the wire and asyncpg's encoding (a COPY's rows are built while"
                " it streams). Steps on the seal-ahead thread count wall seconds, GIL waits"
                " included (its CPU seconds are in the facts)."
            ),
            (
                "Sealing vs encoding vs data keys inside the sealing steps is split by per-call"
                " timers; their own cost (calls x the measured cost per call) is in the facts"
                " and is included in the figures above."
            ),
            (
                "The job runs as the worker runs it (claim_next + run_job) right after the"
                " request; serve's worker is woken by NOTIFY instead (a few ms). The callback"
                " dispatch is called directly, as the dispatcher does when woken."
            ),
            (
                "CHECKPOINT before each job and before the COPY baselines"
                if results.checkpoints
                else "CHECKPOINT was refused (role): jobs pay for the previous writes' flush"
            ),
            (
                "The machine (2 cores) and the server may be shared with other runs: compare"
                " proportions within a round, not absolute seconds across runs."
            ),
        ]
    )


def _fact(value: float) -> str:
    if abs(value - round(value)) < 1e-9 and abs(value) >= 1:
        return f"{value:,.0f}"
    return f"{value:,.3f}"


def main() -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run(parse_args()))


if __name__ == "__main__":
    main()
