"""Group the single-lead requests of one account that arrive together into one transaction.

Writers to a campaign are serialised by its lock, so under load single-lead requests queue up
behind it, each about to pay the same round trips (begin, lock, checks, append, projections,
commit, flush). Here the first request of an account is written at once; requests that arrive
while it is being written wait, and the next group takes all of them (up to `max_group`). An
idle account adds no delay; a busy one pays one transaction per group instead of one per
request.

Groups are per key: an account id, or whatever stands for one before the account is known (an
API key's digest: one key is one account's). `write` decides a whole group and answers each
item's outcome, in order, exactly as the items would have fared one after another. If a group's
write fails, its items are written again one by one, so one bad item fails alone. Per process:
processes still coordinate through the campaign locks the writes take.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)
Item = TypeVar("Item")
Outcome = TypeVar("Outcome")

MAX_GROUP: Final = 64


@dataclass(slots=True)
class _Waiting(Generic[Item, Outcome]):
    item: Item
    future: asyncio.Future[Outcome] = field(repr=False)


class AccountGroups(Generic[Key, Item, Outcome]):
    """Items of each key, written in groups by `write(key, items)`."""

    def __init__(
        self,
        write: Callable[[Key, Sequence[Item]], Awaitable[Sequence[Outcome]]],
        *,
        max_group: int = MAX_GROUP,
    ) -> None:
        self._write_group = write
        self._max_group = max_group
        self._waiting: dict[Key, list[_Waiting[Item, Outcome]]] = {}
        self._writing: set[Key] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, key: Key, item: Item) -> Outcome:
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(_Waiting(item, future))
        if key not in self._writing:
            self._writing.add(key)
            task = asyncio.create_task(self._drain(key))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # Shielded: a caller that goes away does not cancel the group its item is part of.
        return await asyncio.shield(future)

    async def close(self) -> None:
        """Stop the groups still being written (on shutdown, once the HTTP server has let its
        requests finish and cut the rest, before the pool closes). A group still running then
        belongs to requests that were cut: it is cancelled, so its transaction rolls back and
        nothing of them is written (a retried request is not a duplicate), and the process does
        not wait on a write that may be stuck behind a lock."""
        while self._tasks:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _drain(self, key: Key) -> None:
        try:
            while group := self._take(key):
                await self._write(key, group)
        finally:
            # No await between the last empty _take and here: nothing can slip in unserved.
            self._writing.discard(key)

    def _take(self, key: Key) -> list[_Waiting[Item, Outcome]]:
        waiting = self._waiting.get(key, [])
        group, rest = waiting[: self._max_group], waiting[self._max_group :]
        if rest:
            self._waiting[key] = rest
        else:
            self._waiting.pop(key, None)
        return group

    async def _write(self, key: Key, group: list[_Waiting[Item, Outcome]]) -> None:
        try:
            outcomes = await self._write_group(key, [w.item for w in group])
        except Exception as error:  # noqa: BLE001 - handed to the waiting request(s)
            if len(group) == 1:
                _settle(group[0].future, error=error)
                return
            for waiting in group:  # isolate the item that failed
                await self._write(key, [waiting])
            return
        for waiting, outcome in zip(group, outcomes, strict=True):
            _settle(waiting.future, outcome)


def _settle(
    future: asyncio.Future[Outcome],
    result: Outcome | None = None,
    *,
    error: BaseException | None = None,
) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    elif result is not None:
        future.set_result(result)
