"""Fixtures of the session service tests: stubs, raw Redis access and custom servers."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import pytest_asyncio
import redis
from google.protobuf import duration_pb2, struct_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from session_service import server
from session_service.config import Settings
from tests.helpers.redis import RedisProcess
from tggod.session.v1 import session_service_pb2 as pb
from tggod.session.v1 import session_service_pb2_grpc as pb_grpc


@dataclass
class Served:
    """A server started by ``make_server`` and a channel to it."""

    stub: pb_grpc.SessionServiceAsyncStub
    channel: grpc.aio.Channel
    running: server.RunningServer


ServerFactory = Callable[..., contextlib.AbstractAsyncContextManager[Served]]


def struct(**values: Any) -> struct_pb2.Struct:
    result = struct_pb2.Struct()
    result.update(values)
    return result


def seconds(value: float) -> duration_pb2.Duration:
    result = duration_pb2.Duration()
    result.FromMilliseconds(int(value * 1000))
    return result


def error_info(exc: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    """The single ErrorInfo of a failed call (asserts there is exactly one)."""
    status = rpc_status.from_call(exc)
    assert status is not None
    infos = []
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            infos.append(info)
    assert len(infos) == 1
    assert infos[0].domain == "tggod.session.v1.SessionService"
    return infos[0]


def violations(exc: grpc.aio.AioRpcError) -> set[str]:
    status = rpc_status.from_call(exc)
    assert status is not None
    fields = set()
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            fields |= {v.field for v in bad.field_violations}
    return fields


async def fails(call: Any, code: grpc.StatusCode, reason: str) -> grpc.aio.AioRpcError:
    """Await ``call``, assert it failed with ``code`` and ``reason``, return the error."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    assert error_info(caught.value).reason == reason
    return caught.value


@pytest.fixture
def stub(session_channel: grpc.aio.Channel) -> pb_grpc.SessionServiceAsyncStub:
    return pb_grpc.SessionServiceStub(session_channel)


@pytest.fixture
def raw(redis_server: RedisProcess, redis_url: str) -> redis.Redis:
    """A plain client on the test's Redis, to look at and tamper with what the service stored."""
    return redis_server.client()


@pytest_asyncio.fixture
async def make_server(session_env: dict[str, str]) -> AsyncIterator[ServerFactory]:
    """Start extra servers with environment overrides; all are stopped after the test."""
    running: list[server.RunningServer] = []

    @contextlib.asynccontextmanager
    async def factory(**overrides: str) -> AsyncIterator[Served]:
        env = {**session_env, **overrides}
        started = await server.start(Settings.from_env(env))
        running.append(started)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{started.port}") as channel:
            yield Served(pb_grpc.SessionServiceStub(channel), channel, started)

    yield factory
    for started in running:
        await started.stop(0.5)


async def create(
    stub: pb_grpc.SessionServiceAsyncStub, session_id: str = "s1", **fields: Any
) -> pb.SessionMetadata:
    reply = await stub.CreateSession(
        pb.CreateSessionRequest(session_id=session_id, data=struct(**fields)), timeout=10
    )
    return reply.metadata


def stored_bytes(client: redis.Redis) -> list[Any]:
    """Every key name and every stored value, read type by type (DUMP may compress)."""
    found: list[Any] = []
    for key in client.scan_iter(count=1000):
        found.append(key)
        kind = client.type(key)
        if kind == b"hash":
            for field, value in client.hgetall(key).items():
                found += [field, value]
        elif kind == b"string":
            found.append(client.get(key) or b"")
        elif kind == b"list":
            found += client.lrange(key, 0, -1)
        else:
            raise AssertionError(f"unexpected key type {kind!r}")
    return found


@contextlib.asynccontextmanager
async def network_commands(server: RedisProcess) -> AsyncIterator[list[str]]:
    """Collect the commands clients send over the network (not those Lua scripts run)."""
    commands: list[str] = []
    marker = f"end-of-capture-{id(commands)}"
    ready = threading.Event()

    def watch() -> None:
        with server.client() as client, client.monitor() as monitor:
            ready.set()
            while True:
                seen = monitor.next_command()
                if seen["command"] == f"ECHO {marker}":
                    return
                if seen["client_type"] != "lua" and seen["command"].upper() != "PING":
                    commands.append(seen["command"])

    with server.client() as sender:
        sender.ping()  # connect now so this client's handshake is not captured
        thread = asyncio.ensure_future(asyncio.to_thread(watch))
        await asyncio.to_thread(ready.wait, 10)
        try:
            yield commands
        finally:
            sender.echo(marker)
            await asyncio.wait_for(thread, 10)
