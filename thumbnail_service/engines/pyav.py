"""The ``pyav`` engine: in-process libav decoding in a pool of warm, killable workers.

Workers are started through a ``forkserver`` (never ``fork`` from the gRPC
process, whose threads and locks do not survive a fork). pebble kills a
worker whose task times out or is cancelled, and replaces it; a worker that
dies on a file (a decoder crash, the address-space limit) is reported as an
engine failure so the caller may fall back to the ``ffmpeg`` engine.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

from pebble import ProcessExpired, ProcessPool

from thumbnail_service.engines import file_url, pyav_worker
from thumbnail_service.errors import MediaError
from thumbnail_service.model import Limits, Spec, Thumbnail

WORKER_MODULE = pyav_worker.__name__


class PyavEngine:
    name = "pyav"

    def __init__(
        self,
        workers: int,
        limits: Limits,
        memory_bytes: int,
        cpu_seconds: int,
        max_tasks: int,
    ) -> None:
        context = multiprocessing.get_context("forkserver")
        # Workers fork from a server that has already imported libav, so a
        # replacement for a killed worker is ready in milliseconds.
        context.set_forkserver_preload([WORKER_MODULE])
        self._limits = limits
        self._pool = ProcessPool(
            max_workers=workers,
            max_tasks=max_tasks,
            initializer=pyav_worker.init_worker,
            initargs=(memory_bytes, cpu_seconds),
            context=context,
        )

    async def start(self) -> None:
        """Start the workers now rather than on the first request."""
        await asyncio.wrap_future(self._pool.schedule(pyav_worker.warm))

    async def render(self, path: Path, size_bytes: int, spec: Spec, deadline: float) -> Thumbnail:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise MediaError("PROCESSING_TIMEOUT", "the processing time limit was reached")
        future = self._pool.schedule(
            pyav_worker.render,
            args=(file_url(path), size_bytes, spec, self._limits),
            timeout=remaining,
        )
        try:
            # Cancelling the wrapper cancels the pebble future, which kills the worker.
            result: Thumbnail = await asyncio.wrap_future(future)
        except FutureTimeout:
            raise MediaError(
                "PROCESSING_TIMEOUT", "the processing time limit was reached; the worker was killed"
            ) from None
        except ProcessExpired as exc:
            if exc.exitcode in (-signal.SIGXCPU, -signal.SIGKILL):
                raise MediaError(
                    "PROCESSING_TIMEOUT", "the worker ran out of CPU time and was stopped"
                ) from None
            raise MediaError("NOT_A_VIDEO", "the decoder process died on this file") from None
        return result

    async def close(self) -> None:
        self._pool.stop()  # type: ignore[no-untyped-call]
        await asyncio.to_thread(self._pool.join, 10)
