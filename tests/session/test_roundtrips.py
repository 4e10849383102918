"""One network round trip per plain operation, counted on the Redis server itself."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import redis

from tests.helpers.redis import RedisProcess
from tests.session.conftest import create, network_commands, seconds, struct
from tggod.session.v1 import session_service_pb2 as pb
from tggod.session.v1 import session_service_pb2_grpc as pb_grpc


def _evalsha_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def test_plain_operations_cost_one_round_trip(
    stub: pb_grpc.SessionServiceAsyncStub, redis_server: RedisProcess, raw: redis.Redis
) -> None:
    await create(stub, "warm")
    await create(stub, "rt", phone="+15550002")
    operations: dict[str, Callable[[], Awaitable[object]]] = {
        "create": lambda: stub.CreateSession(
            pb.CreateSessionRequest(session_id="rt2", data=struct(a=1))
        ),
        "get": lambda: stub.GetSession(pb.GetSessionRequest(session_id="rt")),
        "touch": lambda: stub.GetSession(pb.GetSessionRequest(session_id="rt", touch=True)),
        "update": lambda: stub.UpdateSession(
            pb.UpdateSessionRequest(session_id="rt", data=struct(b=2))
        ),
        "extend": lambda: stub.ExtendSession(
            pb.ExtendSessionRequest(session_id="rt", extension=seconds(5))
        ),
        "consume": lambda: stub.ConsumeSession(pb.ConsumeSessionRequest(session_id="rt")),
        "delete": lambda: stub.DeleteSession(pb.DeleteSessionRequest(session_id="rt2")),
    }
    for name, call in operations.items():
        before = _evalsha_calls(raw)
        async with network_commands(redis_server) as sent:
            await call()
        assert len(sent) == 1, (name, sent)
        assert sent[0].startswith("EVALSHA"), (name, sent)
        assert _evalsha_calls(raw) - before == 1, name


async def test_scripts_are_reloaded_after_the_cache_is_flushed(
    stub: pb_grpc.SessionServiceAsyncStub, redis_server: RedisProcess, raw: redis.Redis
) -> None:
    await create(stub, "flushed", a=1)
    raw.script_flush()
    # Concurrent calls share a pipeline: every one of them must recover from NOSCRIPT.
    replies = await asyncio.gather(
        *(stub.GetSession(pb.GetSessionRequest(session_id="flushed")) for _ in range(20))
    )
    assert {r.session.data["a"] for r in replies} == {1}
    async with network_commands(redis_server) as sent:
        await stub.GetSession(pb.GetSessionRequest(session_id="flushed"))
    assert len(sent) == 1  # reloaded: back to a single EVALSHA
    assert sent[0].startswith("EVALSHA")
