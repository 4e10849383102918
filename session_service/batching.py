"""Automatic pipelining: the script calls issued in one event-loop tick share one write.

Under load many RPCs reach Redis at once. Sent one by one, each costs its own
syscalls and its own event-loop wake-ups, and in a ``grpc.aio`` process those
wake-ups are what limits throughput. Here every call still is one EVALSHA and
one round trip for its caller; calls that arrive together just travel in the
same pipeline (no MULTI: they stay independent, and each gets its own reply or
error). Used for a single Redis and Sentinel; Cluster clients route per slot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis import exceptions as redis_errors


@dataclass(frozen=True, slots=True)
class _Call:
    script: Any
    numkeys: int
    args: Sequence[Any]
    future: asyncio.Future[Any]


class Batcher:
    def __init__(self, client: Any, timeout: float) -> None:
        self._client = client
        self._timeout = timeout
        self._pending: list[_Call] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def evalsha(self, script: Any, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append(_Call(script, len(keys), [*keys, *args], future))
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.create_task(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[_Call]) -> None:
        replies: list[Any]
        try:
            async with asyncio.timeout(self._timeout):
                replies = await self._execute(batch)
        except TimeoutError:
            replies = [redis_errors.TimeoutError("redis pipeline timed out")] * len(batch)
        except Exception as exc:  # every caller of the batch sees the transport failure
            replies = [exc] * len(batch)
        for call, reply in zip(batch, replies, strict=True):
            if call.future.done():
                continue
            if isinstance(reply, Exception):
                call.future.set_exception(reply)
            else:
                call.future.set_result(reply)

    async def _execute(self, batch: list[_Call]) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for call in batch:
            pipe.execute_command("EVALSHA", call.script.sha, call.numkeys, *call.args)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        for index, reply in enumerate(replies):
            if isinstance(reply, redis_errors.NoScriptError):
                # A restarted or failed-over Redis has lost its script cache.
                call = batch[index]
                call.script.sha = await self._client.script_load(call.script.script)
                replies[index] = await self._client.evalsha(
                    call.script.sha, call.numkeys, *call.args
                )
        return replies

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
