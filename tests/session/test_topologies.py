"""The service on a 3-primary Redis Cluster and behind Sentinel."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.helpers.redis import RedisProcess
from tests.session.conftest import ServerFactory, create, fails, seconds, struct
from tests.session.topologies import redis_cluster, redis_sentinel
from tggod.session.v1 import session_service_pb2 as pb

Code = grpc.StatusCode


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RedisProcess]]:
    with redis_cluster(tmp_path_factory.mktemp("cluster")) as nodes:
        yield nodes


async def test_cluster_operations_and_listing_walk_every_primary(
    cluster: list[RedisProcess], make_server: ServerFactory
) -> None:
    for node in cluster:
        with node.client() as client:
            for key in client.scan_iter():
                client.delete(key)
    async with make_server(REDIS_URL=cluster[0].url, REDIS_CLUSTER="true") as served:
        stub = served.stub
        ids = {f"c{i}" for i in range(30)}
        await asyncio.gather(*(create(stub, i, n=1) for i in ids))
        holding = []
        for node in cluster:
            with node.client() as client:
                holding.append(sum(1 for _ in client.scan_iter(match="tgs:*:s")))
        assert sum(holding) == 30
        assert sum(1 for count in holding if count) >= 2  # sessions really are spread out

        seen: list[str] = []
        token = ""
        while True:
            page = await stub.ListSessions(pb.ListSessionsRequest(page_size=7, page_token=token))
            assert len(page.sessions) <= 7
            seen += [m.session_id for m in page.sessions]
            token = page.next_page_token
            if not token:
                break
        assert sorted(seen) == sorted(ids)

        await stub.UpdateSession(pb.UpdateSessionRequest(session_id="c1", data=struct(n=2)))
        got = await stub.GetSession(pb.GetSessionRequest(session_id="c1", touch=True))
        assert (got.session.data["n"], got.session.metadata.version) == (2, 2)
        extended = await stub.ExtendSession(
            pb.ExtendSessionRequest(session_id="c1", extension=seconds(5))
        )
        assert extended.granted_extension.seconds == 5
        holder = await stub.AcquireLock(pb.AcquireLockRequest(session_id="c2"))
        waiter = asyncio.ensure_future(
            stub.AcquireLock(pb.AcquireLockRequest(session_id="c2", wait_timeout=seconds(10)))
        )
        await asyncio.sleep(0.2)
        await stub.ReleaseLock(pb.ReleaseLockRequest(session_id="c2", lock_token=holder.lock_token))
        assert (await waiter).fencing_token == holder.fencing_token + 1
        assert (await stub.ConsumeSession(pb.ConsumeSessionRequest(session_id="c3"))).session
        assert (await stub.DeleteSession(pb.DeleteSessionRequest(session_id="c4"))).deleted
        await fails(
            stub.GetSession(pb.GetSessionRequest(session_id="c3")),
            Code.NOT_FOUND,
            "SESSION_NOT_FOUND",
        )


async def test_sentinel_smoke(tmp_path: Path, make_server: ServerFactory) -> None:
    with redis_sentinel(tmp_path) as (_primary, sentinel_port):
        async with make_server(
            REDIS_URL="",
            REDIS_SENTINELS=f"127.0.0.1:{sentinel_port}",
            REDIS_SENTINEL_MASTER="mymaster",
        ) as served:
            stub = served.stub
            await create(stub, "s", phone="+15550005")
            got = await stub.GetSession(pb.GetSessionRequest(session_id="s"))
            assert got.session.data["phone"] == "+15550005"
            lease = await stub.AcquireLock(pb.AcquireLockRequest(session_id="s"))
            assert lease.fencing_token > 0
            assert (await stub.ConsumeSession(pb.ConsumeSessionRequest(session_id="s"))).session
