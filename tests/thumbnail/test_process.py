"""The decoder subprocess runs limited from its first instruction, and dies with its deadline."""

from __future__ import annotations

import asyncio

import pytest

from thumbnail_service.engines.process import ProcessLimits, run
from thumbnail_service.errors import MediaError

LIMITS = ProcessLimits(memory_bytes=768 << 20, cpu_seconds=7)


def _soft_limits(text: str) -> dict[str, str]:
    lines = text.splitlines()[1:]
    return {line[:26].strip(): line[26:47].strip() for line in lines}


async def test_the_tool_sees_its_limits_as_its_first_act() -> None:
    # `cat` reads its own limits as its very first act, so the limits are in place
    # when the tool starts (prlimit sets them before exec), not some time after.
    loop = asyncio.get_running_loop()
    done = await run(
        ["cat", "/proc/self/limits"],
        deadline=loop.time() + 10,
        stdout_limit=1 << 16,
        limits=LIMITS,
    )
    limits = _soft_limits(done.stdout.decode())
    assert done.returncode == 0
    assert limits["Max address space"] == str(768 << 20)
    assert limits["Max cpu time"] == "7"


async def test_the_wall_clock_deadline_kills_the_tool() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(MediaError) as caught:
        await run(["sleep", "30"], deadline=started + 0.3, stdout_limit=1, limits=LIMITS)
    assert caught.value.reason == "PROCESSING_TIMEOUT"
    assert loop.time() - started < 5
