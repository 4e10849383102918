"""Admission control: a bounded number of requests at work, a bounded queue, refusal beyond.

A request is admitted when it arrives (so slow uploads count against the
queue and cannot pile up without bound) and takes a processing slot only for
decoding. With every slot and queue place taken, a new request is refused at
once with RESOURCE_EXHAUSTED / OVERLOADED, so a client can retry elsewhere
instead of waiting behind a backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

from thumbnail_service import metrics
from thumbnail_service.errors import MediaError


class Admission:
    def __init__(self, concurrency: int, queue: int) -> None:
        self.capacity = concurrency + queue
        self._slots = asyncio.Semaphore(concurrency)
        self._admitted = 0
        self._waiting = 0

    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        if self._admitted >= self.capacity:
            raise MediaError("OVERLOADED", "every worker and queue slot is busy; retry later")
        self._admitted += 1
        try:
            yield
        finally:
            self._admitted -= 1

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        self._waiting += 1
        metrics.QUEUE_DEPTH.set(self._waiting)
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
            metrics.QUEUE_DEPTH.set(self._waiting)
        metrics.IN_FLIGHT.inc()
        try:
            yield
        finally:
            metrics.IN_FLIGHT.dec()
            self._slots.release()
