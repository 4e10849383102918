"""Session service throughput and latency next to a bare Redis + AEAD baseline, same run.

Run: ``.venv/bin/python -m tests.benchmarks.session_bench``. It starts its own
redis-server and a ``python -m session_service`` process, drives them with 64
concurrent callers for a few seconds per figure, and prints what it measured.
It never fails because the machine is slow.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import redis.asyncio
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf import duration_pb2, struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.helpers.redis import free_port, start_redis
from tggod.session.v1 import session_service_pb2 as pb
from tggod.session.v1 import session_service_pb2_grpc as pb_grpc

CONCURRENCY = 64
PHASE_SECONDS = 5.0
HANDOVERS = 200
SESSIONS = 256
PAYLOAD: dict[str, str | int] = {
    "phone": "+447700900123",
    "phone_code_hash": "a1b2c3d4e5f60718",
    "step": "code_sent",
    "attempts": 1,
}


class Figures:
    def __init__(self, name: str, latencies: list[float], seconds: float) -> None:
        self.name = name
        self.rate = len(latencies) / seconds
        ordered = sorted(latencies)
        self.p50 = ordered[len(ordered) // 2] * 1000
        self.p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000

    def line(self) -> str:
        return (
            f"{self.name:<34} {self.rate:>9,.0f}/s   "
            f"p50 {self.p50:6.2f} ms   p99 {self.p99:6.2f} ms"
        )


async def _drive(name: str, operation: Callable[[int], Awaitable[object]]) -> Figures:
    latencies: list[float] = []
    stop_at = time.perf_counter() + PHASE_SECONDS

    async def caller(index: int) -> None:
        n = index
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            await operation(n)
            latencies.append(time.perf_counter() - started)
            n += CONCURRENCY

    started = time.perf_counter()
    await asyncio.gather(*(caller(i) for i in range(CONCURRENCY)))
    return Figures(name, latencies, time.perf_counter() - started)


async def _baseline(url: str) -> Figures:
    """What one GET plus one AES-GCM decrypt costs in-process, no gRPC and no service."""
    client = redis.asyncio.Redis.from_url(url, max_connections=CONCURRENCY)
    aead = AESGCM(AESGCM.generate_key(bit_length=256))
    plain = struct_pb2.Struct()
    plain.update(PAYLOAD)
    for i in range(SESSIONS):
        nonce = os.urandom(12)
        await client.set(
            f"bench:{i}", nonce + aead.encrypt(nonce, plain.SerializeToString(), b"ad")
        )

    async def get(n: int) -> object:
        blob = await client.get(f"bench:{n % SESSIONS}")
        assert isinstance(blob, bytes)
        return aead.decrypt(blob[:12], blob[12:], b"ad")

    try:
        return await _drive("baseline redis GET + AEAD decrypt", get)
    finally:
        await client.aclose()


async def _handover(stub: pb_grpc.SessionServiceAsyncStub) -> Figures:
    """Two parties take turns on one lease; time from release call to the waiter's grant."""
    await stub.CreateSession(
        pb.CreateSessionRequest(session_id="lock-bench", data=struct_pb2.Struct())
    )
    wait = duration_pb2.Duration(seconds=5)
    held = await stub.AcquireLock(pb.AcquireLockRequest(session_id="lock-bench"))
    latencies: list[float] = []
    started = time.perf_counter()
    for _ in range(HANDOVERS):
        waiter = asyncio.ensure_future(
            stub.AcquireLock(pb.AcquireLockRequest(session_id="lock-bench", wait_timeout=wait))
        )
        await asyncio.sleep(0.003)  # let the waiter block on the held lease
        released_at = time.perf_counter()
        await stub.ReleaseLock(
            pb.ReleaseLockRequest(session_id="lock-bench", lock_token=held.lock_token)
        )
        held = await waiter
        latencies.append(time.perf_counter() - released_at)
    return Figures("lock handover (release -> grant)", latencies, time.perf_counter() - started)


async def _wait_serving(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for _ in range(200):
        try:
            reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.aio.AioRpcError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the session service did not become SERVING")


async def _run(url: str, port: int) -> list[Figures]:
    baseline = await _baseline(url)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await _wait_serving(channel)
        stub = pb_grpc.SessionServiceStub(channel)
        data = struct_pb2.Struct()
        data.update(PAYLOAD)
        ttl = duration_pb2.Duration(seconds=3600)
        for i in range(SESSIONS):
            await stub.CreateSession(
                pb.CreateSessionRequest(session_id=f"s{i}", data=data, ttl=ttl)
            )

        async def get(n: int) -> object:
            return await stub.GetSession(pb.GetSessionRequest(session_id=f"s{n % SESSIONS}"))

        async def update(n: int) -> object:
            return await stub.UpdateSession(
                pb.UpdateSessionRequest(session_id=f"s{n % SESSIONS}", data=data)
            )

        health = health_pb2_grpc.HealthStub(channel)

        async def check(_n: int) -> object:
            return await health.Check(health_pb2.HealthCheckRequest())

        # What the same gRPC stack does with no work at all: the ceiling for any handler.
        floor = await _drive("no-op gRPC floor (health Check)", check)
        gets = await _drive("GetSession over gRPC", get)
        updates = await _drive("UpdateSession over gRPC", update)
        handover = await _handover(stub)
    return [baseline, floor, gets, updates, handover]


def main() -> None:
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    with tempfile.TemporaryDirectory(prefix="session-bench-") as tmp:
        server = start_redis(Path(tmp) / "redis")
        port = free_port()
        env = {
            **os.environ,
            "SESSION_HOST": "127.0.0.1",
            "SESSION_PORT": str(port),
            "SESSION_METRICS_PORT": "0",
            "REDIS_URL": server.url,
            "SESSION_ENCRYPTION_KEYS": f"bench:{key}",
            "LOG_LEVEL": "WARNING",
        }
        service = subprocess.Popen([sys.executable, "-m", "session_service"], env=env)
        try:
            baseline, floor, gets, updates, handover = asyncio.run(_run(server.url, port))
        finally:
            service.terminate()
            service.wait(timeout=30)
            server.stop()
    print(f"session service, {CONCURRENCY} concurrent callers, {PHASE_SECONDS:.0f} s per figure")
    for figures in (baseline, floor, gets, updates):
        print(figures.line())
    print(f"GetSession / baseline throughput    {gets.rate / baseline.rate:6.2f}x")
    print(f"UpdateSession / baseline throughput {updates.rate / baseline.rate:6.2f}x")
    print(f"GetSession / no-op gRPC floor       {gets.rate / floor.rate:6.2f}x")
    print(f"{handover.name:<34} p50 {handover.p50:.2f} ms   p99 {handover.p99:.2f} ms")
    print("targets: GetSession >= 3,000/s with p99 <= 20 ms; lock handover p50 <= 2 ms")


if __name__ == "__main__":
    main()
