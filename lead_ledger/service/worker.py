"""The job worker loop: LISTEN wakes it when a job is submitted; polling is the backstop."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Final, Literal

import asyncpg
import structlog

from lead_ledger.ledger.connection import Connection
from lead_ledger.metrics import JOB_SECONDS
from lead_ledger.service import jobs

log = structlog.get_logger(__name__)


# What a background loop meets while the database is down or restarting: logged as one line,
# not a traceback every poll interval for as long as it lasts.
DATABASE_UNAVAILABLE: Final = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,  # the connection closed mid-operation, or refused
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, starting, terminated
)


# How often a listener whose connection was lost tries to listen again.
RELISTEN_SECONDS = 1.0


@asynccontextmanager
async def listening(
    pool: asyncpg.Pool, channel: str, listen_url: str | None = None
) -> AsyncIterator[asyncio.Event]:
    """An event set on every NOTIFY on `channel`.

    With `listen_url`, on a connection of its own: a listener holds its connection for good, and
    the app's pool should stay free for requests (and be seen idle when it is).

    The connection may be lost (the server restarted, the session terminated): the event is
    then set, so its loop looks at once for what a lost notification would have told it, and a
    new connection listens again (every RELISTEN_SECONDS until one does). Without that, the
    loop would rely on its poll interval alone for the rest of the process's life.
    """
    listener = _Listener(pool, channel, listen_url)
    await listener.listen()
    keeper = asyncio.create_task(listener.keep())
    try:
        yield listener.wake
    finally:
        keeper.cancel()
        await asyncio.wait([keeper])
        await listener.release()


async def _nothing() -> None:
    return None


class _Listener:
    """One LISTEN, on a pooled connection or one of its own, listened again when lost."""

    def __init__(self, pool: asyncpg.Pool, channel: str, listen_url: str | None) -> None:
        self.wake = asyncio.Event()
        self._lost = asyncio.Event()
        self._pool, self._channel, self._url = pool, channel, listen_url
        self._conn: Connection | None = None
        self._give_back: Callable[[], Awaitable[object]] = _nothing

    async def listen(self) -> None:
        conn: Connection
        if self._url:
            own = await asyncpg.connect(self._url)
            conn, self._give_back = own, own.close
        else:
            pooled = await self._pool.acquire()
            conn, self._give_back = pooled, lambda: self._pool.release(pooled)
        try:
            conn.add_termination_listener(self._terminated)
            await conn.add_listener(self._channel, self._notified)
        except BaseException:
            await self._quietly(self._give_back)
            raise
        self._conn = conn

    async def keep(self) -> None:
        while True:
            await self._lost.wait()
            self._lost.clear()
            await self.release()
            while True:
                try:
                    await self.listen()
                except Exception as error:  # noqa: BLE001 - logged; this task must not end
                    # A database still restarting, or a pooled connection that died before the
                    # client saw it (InternalClientError): try again.
                    log.warning("listen_failed", channel=self._channel, error=type(error).__name__)
                    await asyncio.sleep(RELISTEN_SECONDS)
                else:
                    self.wake.set()  # what was notified while nothing listened
                    break

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        # A lost pooled connection is already detached from its proxy: each step may refuse.
        with contextlib.suppress(asyncpg.InterfaceError):
            conn.remove_termination_listener(self._terminated)
        await self._quietly(lambda: conn.remove_listener(self._channel, self._notified))
        await self._quietly(self._give_back)

    @staticmethod
    async def _quietly(step: Callable[[], Awaitable[object]]) -> None:
        with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            await step()

    def _notified(self, *_: object) -> None:
        self.wake.set()

    def _terminated(self, _conn: object) -> None:
        self.wake.set()
        self._lost.set()


class Wakes:
    """One LISTEN fanned out to any number of waiters, none of which holds a connection while
    it waits (the app's event streams: a connection each would let a few clients take the
    pool from every request)."""

    def __init__(self) -> None:
        self._next = asyncio.Event()

    def next(self) -> asyncio.Event:
        """The event the next notification sets. Take it before reading what a notification
        would announce, then wait on it: one that arrives in between is not missed."""
        return self._next

    def notify(self) -> None:
        self._next.set()
        self._next = asyncio.Event()


@asynccontextmanager
async def fanned_out(
    pool: asyncpg.Pool, channel: str, listen_url: str | None = None
) -> AsyncIterator[Wakes]:
    """`listening` on `channel`, each notification handed to every waiter of the Wakes."""
    wakes = Wakes()

    async def relay(wake: asyncio.Event) -> None:
        while True:
            await wake.wait()
            wake.clear()
            wakes.notify()

    async with listening(pool, channel, listen_url) as wake:
        task = asyncio.create_task(relay(wake))
        try:
            yield wakes
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def sleep_until(wake: asyncio.Event, stop: asyncio.Event, seconds: float) -> None:
    """Wait for a notification, a stop or the poll interval, whichever comes first."""
    waiters = {asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop.wait())}
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    wake.clear()


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait `seconds` (none when not positive), or until a stop."""
    if seconds > 0 and not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)


async def run_worker(  # noqa: PLR0913 - what to run, and one keyword per knob
    pool: asyncpg.Pool,
    stop: asyncio.Event,
    *,
    kinds: jobs.JobKinds,
    worker_id: str,
    poll_seconds: float = 5.0,
    lease_seconds: float = 300.0,
    max_attempts: int = jobs.MAX_ATTEMPTS,
    retry_seconds: float = jobs.RETRY_SECONDS,
    listen_url: str | None = None,
) -> None:
    """Claim and run jobs of `kinds` until `stop` is set; a job interrupted by the stop is
    handed back. A job of a kind missing from `kinds` fails."""
    async with listening(pool, jobs.CHANNEL, listen_url) as wake:
        while not stop.is_set():
            try:
                ran = await _one(
                    pool, stop, kinds, worker_id, lease_seconds, max_attempts, retry_seconds
                )
            except DATABASE_UNAVAILABLE as error:
                # The lease expires and the job is claimed again; back off a poll interval.
                log.warning("job_worker_error", worker_id=worker_id, error=type(error).__name__)
                ran = False
            except Exception:  # the loop must outlive any one job
                # The job's transaction failed outside the handler: as above.
                log.exception("job_worker_error", worker_id=worker_id)
                ran = False
            if not ran:
                await sleep_until(wake, stop, poll_seconds)


async def _one(
    pool: asyncpg.Pool,
    stop: asyncio.Event,
    kinds: jobs.JobKinds,
    worker_id: str,
    lease_seconds: float,
    max_attempts: int,
    retry_seconds: float,
) -> bool:
    """Claim and run one job; False when none was runnable."""
    async with pool.acquire() as conn:
        try:
            claim = await jobs.claim_next(conn, worker_id, lease_seconds)
        except BaseException:
            # Cut or failed after the server ran the claim, this session may hold a liveness
            # lock no one will let go (the serving pools send no reset): it ends here.
            conn.terminate()
            raise
        if claim is None:
            return False
        try:
            broken = await _run(conn, stop, kinds, worker_id, claim, max_attempts, retry_seconds)
        finally:
            await jobs.let_go(conn, claim)
        if broken is False:
            return True
    async with pool.acquire() as conn:
        if isinstance(broken, Exception):
            # The attempt failed and could not be handed back on its own connection (the
            # server ended it): do it on this one, with backoff, rather than leave the job
            # claimed, and its campaign's later jobs waiting, until its lease ends.
            state = await jobs.after_error(
                conn, worker_id, claim, kinds, broken, max_attempts, retry_seconds
            )
            log.info("job_ran", job_id=claim.job_id, state=state, worker_id=worker_id)
            return True
        await jobs.release(conn, claim.job_id, worker_id)
    log.info("job_released", job_id=claim.job_id, worker_id=worker_id)
    return True


async def _run(
    conn: Connection,
    stop: asyncio.Event,
    kinds: jobs.JobKinds,
    worker_id: str,
    claim: jobs.Claim,
    max_attempts: int,
    retry_seconds: float,
) -> BaseException | Literal[False] | None:
    """Run the claimed job on its claiming connection until it ends or the stop: False when
    it ran, the error when it broke, None when the stop cut it (to be handed back)."""
    log.info("job_claimed", job_id=claim.job_id, attempt=claim.attempts, worker_id=worker_id)
    started = time.perf_counter()
    run = asyncio.ensure_future(
        jobs.run_job(
            conn,
            worker_id,
            claim,
            kinds,
            max_attempts=max_attempts,
            retry_seconds=retry_seconds,
        )
    )
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({run, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if run.done():
        broken = run.exception()
        if broken is None:
            state = run.result()
            JOB_SECONDS.labels(state).observe(time.perf_counter() - started)
            log.info("job_ran", job_id=claim.job_id, state=state, worker_id=worker_id)
            return False
        return broken
    # Stopping: the job's transaction rolls back when cancelled; the job is handed back on
    # another connection, as this one may be unusable after the cancellation.
    run.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await run
    return None
