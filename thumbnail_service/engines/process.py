"""Run one libav command-line tool as a killable child process.

The child gets its own process group (so a kill reaches anything it
spawned), address-space and CPU-time limits, a wall-clock deadline, a bounded
stdout (the picture) and a stderr that is always drained (an unread pipe
stalls ffmpeg) into a bounded buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections.abc import Sequence
from dataclasses import dataclass

from thumbnail_service.errors import MediaError

STDERR_LIMIT = 64 * 1024
READ_SIZE = 64 * 1024


@dataclass(frozen=True, slots=True)
class ProcessLimits:
    memory_bytes: int
    cpu_seconds: int


@dataclass(frozen=True, slots=True)
class Completed:
    returncode: int
    stdout: bytes
    stderr: str


async def _read_bounded(stream: asyncio.StreamReader, limit: int) -> bytes:
    data = bytearray()
    while chunk := await stream.read(READ_SIZE):
        data += chunk
        if len(data) > limit:
            raise MediaError("INTERNAL", "the decoder wrote more output than expected")
    return bytes(data)


async def _drain_tail(stream: asyncio.StreamReader, limit: int) -> str:
    tail = bytearray()
    while chunk := await stream.read(READ_SIZE):
        tail += chunk
        del tail[:-limit]
    return tail.decode("utf-8", "replace")


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def prlimit_binary() -> str:
    """util-linux's prlimit, which every Debian system has (it is Essential)."""
    binary = shutil.which("prlimit")
    if binary is None:
        raise RuntimeError("prlimit (util-linux) is missing: decoders cannot be resource-limited")
    return binary


def limited(argv: Sequence[str], limits: ProcessLimits) -> list[str]:
    """``argv`` run under address-space and CPU-time limits from its first instruction.

    prlimit sets the limits on itself and then execs the tool, keeping the pid and the process
    group. preexec_fn could do the same but is unsafe in a process that runs gRPC threads, and
    limiting the child after it started leaves a window in which a hostile file runs unlimited.
    """
    return [
        prlimit_binary(),
        f"--as={limits.memory_bytes}",
        f"--cpu={limits.cpu_seconds}",
        "--",
        *argv,
    ]


async def run(
    argv: Sequence[str], *, deadline: float, stdout_limit: int, limits: ProcessLimits
) -> Completed:
    """Run ``argv`` to completion before ``deadline`` (event-loop clock) or kill it.

    Cancellation kills the process group too, so a client that goes away takes
    its ffmpeg with it.
    """
    loop = asyncio.get_running_loop()
    if deadline <= loop.time():
        raise MediaError("PROCESSING_TIMEOUT", "the processing time limit was reached")
    proc = await asyncio.create_subprocess_exec(
        *limited(argv, limits),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stderr is not None
        async with asyncio.timeout_at(deadline):
            stdout, stderr = await asyncio.gather(
                _read_bounded(proc.stdout, stdout_limit), _drain_tail(proc.stderr, STDERR_LIMIT)
            )
            returncode = await proc.wait()
    except TimeoutError:
        raise MediaError(
            "PROCESSING_TIMEOUT", "the processing time limit was reached; the decoder was killed"
        ) from None
    finally:
        if proc.returncode is None:
            _kill_group(proc.pid)
            await asyncio.shield(proc.wait())
    if returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        raise MediaError("PROCESSING_TIMEOUT", "the decoder ran out of CPU time and was stopped")
    return Completed(returncode, stdout, stderr)
