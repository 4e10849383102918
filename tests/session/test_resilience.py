"""Redis outages, health, graceful shutdown and metrics of a real service process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.helpers.redis import RedisProcess, free_port, start_redis
from tests.session.conftest import ServerFactory, create, error_info, fails, seconds, struct
from tggod.session.v1 import session_service_pb2 as pb
from tggod.session.v1 import session_service_pb2_grpc as pb_grpc

Code = grpc.StatusCode
SESSION_ID = "sess-drain-7f3a"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A Redis that fsyncs every write before acknowledging it."""
    server = start_redis(tmp_path / "durable", appendfsync="always")
    yield server
    server.stop()


async def _health(channel: grpc.aio.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    reply = await stub.Check(
        health_pb2.HealthCheckRequest(service="tggod.session.v1.SessionService"), timeout=5
    )
    return int(reply.status)


async def _wait_for_health(channel: grpc.aio.Channel, wanted: int, within: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        if await _health(channel) == wanted:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"health did not become {wanted} within {within}s")


async def test_redis_outage_fails_fast_flips_health_and_loses_nothing(
    durable_redis: RedisProcess, make_server: ServerFactory
) -> None:
    async with make_server(
        REDIS_URL=durable_redis.url,
        SESSION_HEALTH_INTERVAL_SECONDS="0.2",
        REDIS_CONNECT_TIMEOUT_SECONDS="0.5",
        REDIS_COMMAND_TIMEOUT_SECONDS="0.5",
    ) as served:
        stub, channel = served.stub, served.channel
        assert await _health(channel) == SERVING
        acked: dict[str, float] = {}
        await asyncio.gather(*(create(stub, f"w{i}", n=0) for i in range(8)))
        acked.update({f"w{i}": 0 for i in range(8)})
        stop_writing = asyncio.Event()
        failures: list[tuple[grpc.StatusCode, str, float]] = []

        async def writer(session_id: str) -> None:
            n = 0
            while not stop_writing.is_set():
                n += 1
                started = time.monotonic()
                try:
                    await stub.UpdateSession(
                        pb.UpdateSessionRequest(session_id=session_id, data=struct(n=n)), timeout=5
                    )
                except grpc.aio.AioRpcError as exc:
                    failures.append(
                        (exc.code(), error_info(exc).reason, time.monotonic() - started)
                    )
                    await asyncio.sleep(0.05)
                else:
                    acked[session_id] = n

        writers = [asyncio.ensure_future(writer(s)) for s in list(acked)]
        await asyncio.sleep(0.5)
        durable_redis.kill()  # a crash: only what was fsynced survives
        await _wait_for_health(channel, NOT_SERVING, within=5)
        await asyncio.sleep(0.5)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetSession(pb.GetSessionRequest(session_id="w0"), timeout=10)
        assert caught.value.code() == Code.UNAVAILABLE
        assert error_info(caught.value).reason == "STORE_UNAVAILABLE"
        await asyncio.to_thread(durable_redis.start)
        await _wait_for_health(channel, SERVING, within=10)
        stop_writing.set()
        await asyncio.gather(*writers)

        assert failures, "the outage was never observed"
        assert {(code, reason) for code, reason, _ in failures} <= {
            (Code.UNAVAILABLE, "STORE_UNAVAILABLE")
        }
        assert max(elapsed for *_, elapsed in failures) < 3  # fast, not a hang until the deadline
        for session_id, n in acked.items():
            got = await stub.GetSession(pb.GetSessionRequest(session_id=session_id), timeout=5)
            assert got.session.data.fields["n"].number_value >= n, session_id


@pytest.fixture
def service_process(
    redis_url: str, encryption_keys: str
) -> Iterator[tuple[subprocess.Popen[bytes], int, int]]:
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "SESSION_HOST": "127.0.0.1",
        "SESSION_PORT": str(port),
        "SESSION_METRICS_PORT": str(metrics_port),
        "REDIS_URL": redis_url,
        "SESSION_ENCRYPTION_KEYS": encryption_keys,
        "SESSION_SHUTDOWN_GRACE_SECONDS": "5",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "session_service"], env=env, stderr=subprocess.PIPE
    )
    try:
        yield process, port, metrics_port
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        return str(reply.read().decode())


async def test_sigterm_drains_in_flight_calls_and_exits(
    service_process: tuple[subprocess.Popen[bytes], int, int],
) -> None:
    process, port, metrics_port = service_process
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await channel.channel_ready()
        await _wait_for_health(channel, SERVING, within=20)
        stub = pb_grpc.SessionServiceStub(channel)
        await create(stub, SESSION_ID)
        holder = await stub.AcquireLock(pb.AcquireLockRequest(session_id=SESSION_ID))
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.GetSession(pb.GetSessionRequest(session_id="absent"))
        text = await asyncio.to_thread(_metrics, metrics_port)
        assert 'session_rpc_requests_total{code="NOT_FOUND",method="GetSession"} 1.0' in text
        assert "session_rpc_duration_seconds_bucket" in text
        assert "session_lock_wait_seconds_count" in text
        assert SESSION_ID not in text

        # An in-flight call (a lock wait) is still answered after SIGTERM.
        waiter = asyncio.ensure_future(
            stub.AcquireLock(
                pb.AcquireLockRequest(session_id=SESSION_ID, wait_timeout=seconds(1)), timeout=10
            )
        )
        await asyncio.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await waiter
        assert caught.value.code() == Code.ABORTED
        assert holder.lock_token
    assert await asyncio.to_thread(process.wait, 15) == 0
    assert process.stderr is not None
    lines = [json.loads(line) for line in process.stderr.read().decode().splitlines()]
    messages = {line["message"] for line in lines}
    assert {"session service started", "shutting down"} <= messages
    assert all(SESSION_ID not in json.dumps(line) for line in lines)


async def test_starts_not_serving_without_redis_and_recovers(
    tmp_path: Path, make_server: ServerFactory
) -> None:
    port = free_port()
    async with make_server(
        REDIS_URL=f"redis://127.0.0.1:{port}/0",
        SESSION_HEALTH_INTERVAL_SECONDS="0.2",
        REDIS_CONNECT_TIMEOUT_SECONDS="0.5",
    ) as served:
        assert await _health(served.channel) == NOT_SERVING
        late = await asyncio.to_thread(start_redis, tmp_path / "late", port=port)
        try:
            await _wait_for_health(served.channel, SERVING, within=10)
            await create(served.stub, "after-start")
            got = await served.stub.GetSession(pb.GetSessionRequest(session_id="after-start"))
            assert got.session.metadata.version == 1
        finally:
            late.stop()


async def test_liveness_stays_serving_while_redis_is_unreachable(
    make_server: ServerFactory,
) -> None:
    port = free_port()
    async with make_server(
        REDIS_URL=f"redis://127.0.0.1:{port}/0",
        SESSION_HEALTH_INTERVAL_SECONDS="0.2",
        REDIS_CONNECT_TIMEOUT_SECONDS="0.5",
    ) as served:
        stub = health_pb2_grpc.HealthStub(served.channel)
        overall = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert await _health(served.channel) == NOT_SERVING
        assert overall.status == SERVING


async def test_a_hung_redis_fails_calls_at_the_command_timeout(
    tmp_path: Path, make_server: ServerFactory
) -> None:
    hung = start_redis(tmp_path / "hung")
    try:
        async with make_server(
            REDIS_URL=hung.url, REDIS_COMMAND_TIMEOUT_SECONDS="0.3", REDIS_RETRIES="1"
        ) as served:
            await create(served.stub, "stalled")
            assert hung.process is not None
            hung.process.send_signal(signal.SIGSTOP)  # accepts connections, never answers
            try:
                for call in (
                    served.stub.GetSession(pb.GetSessionRequest(session_id="stalled"), timeout=20),
                    served.stub.UpdateSession(
                        pb.UpdateSessionRequest(session_id="stalled", data=struct()), timeout=20
                    ),
                ):
                    started = time.monotonic()
                    with pytest.raises(grpc.aio.AioRpcError) as caught:
                        await call
                    assert caught.value.code() == Code.UNAVAILABLE
                    # One timeout per attempt (a read may be retried once), not the deadline.
                    assert time.monotonic() - started < 3
            finally:
                hung.process.send_signal(signal.SIGCONT)
    finally:
        hung.stop()


async def test_reads_ride_out_a_stall_by_retrying_and_writes_are_not_repeated(
    tmp_path: Path, make_server: ServerFactory
) -> None:
    stalling = start_redis(tmp_path / "stalling")
    try:
        async with make_server(
            REDIS_URL=stalling.url, REDIS_COMMAND_TIMEOUT_SECONDS="0.3", REDIS_RETRIES="8"
        ) as served:
            await create(served.stub, "paused", n=1)
            with stalling.client() as admin:
                admin.execute_command("CLIENT", "PAUSE", "1000", "ALL")
            started = time.monotonic()
            got = await served.stub.GetSession(pb.GetSessionRequest(session_id="paused"))
            assert got.session.data["n"] == 1  # attempts timed out, a retry got through
            assert time.monotonic() - started > 0.5
            with stalling.client() as admin:
                admin.execute_command("CLIENT", "PAUSE", "1000", "ALL")
            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await served.stub.UpdateSession(
                    pb.UpdateSessionRequest(session_id="paused", data=struct(n=2))
                )
            assert caught.value.code() == Code.UNAVAILABLE
            assert time.monotonic() - started < 0.9  # one attempt, no retries
    finally:
        stalling.stop()


async def test_shutdown_tells_health_watchers_not_serving_before_closing(
    make_server: ServerFactory,
) -> None:
    async with make_server() as served:
        health = health_pb2_grpc.HealthStub(served.channel)
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert (await watch.read()).status == SERVING
        stopping = asyncio.ensure_future(served.running.stop(1.0))
        # A watching load balancer hears NOT_SERVING while calls still drain.
        assert (await watch.read()).status == NOT_SERVING
        await stopping


async def test_a_read_retries_only_while_its_deadline_leaves_room_to_answer(
    tmp_path: Path, make_server: ServerFactory
) -> None:
    hung = start_redis(tmp_path / "hung-read")
    try:
        async with make_server(
            REDIS_URL=hung.url, REDIS_COMMAND_TIMEOUT_SECONDS="0.5", REDIS_RETRIES="5"
        ) as served:
            await create(served.stub, "slow")
            assert hung.process is not None
            hung.process.send_signal(signal.SIGSTOP)
            try:
                # Six attempts of 0.5 s do not fit in 1.5 s: the service must stop retrying in
                # time to say why, or the caller only sees its own deadline pass.
                await fails(
                    served.stub.GetSession(pb.GetSessionRequest(session_id="slow"), timeout=1.5),
                    Code.UNAVAILABLE,
                    "STORE_UNAVAILABLE",
                )
            finally:
                hung.process.send_signal(signal.SIGCONT)
    finally:
        hung.stop()
