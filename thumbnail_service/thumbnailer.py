"""The thumbnail use case: pick the engine, fall back when it cannot read a file, time it."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Mapping
from pathlib import Path

from thumbnail_service import metrics
from thumbnail_service.config import Settings
from thumbnail_service.engines import FALLBACK_REASONS, Engine
from thumbnail_service.engines.ffmpeg import FfmpegEngine
from thumbnail_service.engines.process import ProcessLimits
from thumbnail_service.engines.pyav import PyavEngine
from thumbnail_service.errors import MediaError
from thumbnail_service.model import Limits, Spec, Thumbnail, VideoInfo
from thumbnail_service.probe import refuse_playlists

log = logging.getLogger(__name__)

DEADLINE_MARGIN_SECONDS = 0.1


def limits_from(settings: Settings) -> Limits:
    return Limits(
        max_pixels=settings.max_pixels,
        max_output_bytes=settings.max_output_bytes,
        probe_size_bytes=settings.probe_size_bytes,
        analyze_duration_us=int(settings.analyze_duration_seconds * 1_000_000),
    )


class Thumbnailer:
    def __init__(
        self,
        engines: Mapping[str, Engine],
        default_engine: str,
        prober: FfmpegEngine,
        timeout: float,
    ) -> None:
        self.engines = dict(engines)
        self.default_engine = default_engine
        self.prober = prober
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> Thumbnailer:
        limits = limits_from(settings)
        ffmpeg = FfmpegEngine(
            settings.ffmpeg_binary,
            settings.ffprobe_binary,
            limits,
            ProcessLimits(settings.worker_memory_bytes, settings.worker_cpu_seconds),
        )
        pyav = PyavEngine(
            settings.max_concurrency,
            limits,
            settings.worker_memory_bytes,
            settings.worker_cpu_seconds,
            settings.worker_max_tasks,
        )
        engines: dict[str, Engine] = {"ffmpeg": ffmpeg, "pyav": pyav}
        return cls(engines, settings.default_engine, ffmpeg, settings.processing_timeout_seconds)

    async def start(self) -> None:
        for engine in self.engines.values():
            await engine.start()

    async def close(self) -> None:
        await asyncio.gather(*(engine.close() for engine in self.engines.values()))

    def _deadline(self, budget: float | None) -> float:
        if budget is not None:
            # Stop a little before the caller's deadline so it receives a
            # PROCESSING_TIMEOUT status rather than its own bare timeout.
            budget = max(0.0, budget - DEADLINE_MARGIN_SECONDS)
        seconds = self.timeout if budget is None else min(self.timeout, budget)
        return asyncio.get_running_loop().time() + seconds

    async def _timed(
        self, engine: Engine, path: Path, size: int, spec: Spec, deadline: float
    ) -> Thumbnail:
        started = time.perf_counter()
        outcome = "error"
        try:
            result = await engine.render(path, size, spec, deadline)
            outcome = "ok"
            return result
        finally:
            metrics.LATENCY.labels(engine.name, outcome).observe(time.perf_counter() - started)

    async def render(
        self, path: Path, size: int, spec: Spec, engine: str | None, budget: float | None
    ) -> Thumbnail:
        """A thumbnail from the named engine, or from the default one with fallback."""
        deadline = self._deadline(budget)
        refuse_playlists(path)
        first = self.engines[engine or self.default_engine]
        try:
            return await self._timed(first, path, size, spec, deadline)
        except MediaError as exc:
            if engine is not None or exc.reason not in FALLBACK_REASONS:
                raise
            second = next(e for e in self.engines.values() if e is not first)
            log.info(
                "engine fallback",
                extra={"from_engine": first.name, "to_engine": second.name, "reason": exc.reason},
            )
            metrics.FALLBACKS.labels(first.name, second.name).inc()
            result = await self._timed(second, path, size, spec, deadline)
            return dataclasses.replace(result, fallback_used=True)

    async def probe(self, path: Path, size: int, budget: float | None) -> VideoInfo:
        refuse_playlists(path)
        return await self.prober.probe(path, size, self._deadline(budget))
