"""Group commit: concurrent callers share one database round trip.

A caller hands in one item and awaits its own result. While up to `max_running` batches are in the
database, whoever arrives meanwhile waits for the next batch (of at most `max_batch` items), so under
load one statement (or transaction) serves many callers, and when idle a lone item goes out at once.
A batch that fails as a whole is retried item by item: one item the database refuses never fails
another caller.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger("kassa.db")

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    def __init__(
        self,
        run: Callable[[list[T]], Awaitable[Sequence[R]]],
        *,
        name: str,
        max_batch: int = 64,
        max_running: int = 4,
    ) -> None:
        """`run` writes a batch and returns one result per item, in order."""
        self._run = run
        self.name = name
        self.max_batch = max_batch
        self.max_running = max_running
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()  # held, so a running batch is never collected

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._running < self.max_running:
            self._running += 1
            task = asyncio.create_task(self._drain(), name=f"kassa-{self.name}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                await self._write(batch)
        finally:
            self._running -= 1

    async def _write(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._run([item for item, _ in batch])
        except BaseException as exc:
            if not isinstance(exc, Exception) or len(batch) == 1:  # canceled: nobody may wait forever
                for _, future in batch:
                    _settle(future, exc)
                if not isinstance(exc, Exception):
                    raise
                return
            log.warning("%s: a batch of %d failed (%s); writing them one by one", self.name, len(batch), exc)
            for entry in batch:
                await self._write([entry])
            return
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result)


def _settle(future: asyncio.Future[R], outcome: R | BaseException) -> None:
    if future.done():  # the caller went away (its request was canceled)
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
