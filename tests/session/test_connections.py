"""Redis connections: the URLs the service accepts (unix sockets, passwords, TLS) and its pool."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.helpers.redis import RedisProcess, free_port, start_redis
from tests.helpers.tls import make_certificates
from tests.session.conftest import ServerFactory, create, fails
from tggod.session.v1 import session_service_pb2 as pb

PASSWORD = "correct-horse-redis"


@pytest.fixture
def guarded_redis(tmp_path: Path) -> Iterator[tuple[RedisProcess, Path]]:
    """A Redis that wants a password and also listens on a unix socket."""
    socket = tmp_path / "redis.sock"
    server = start_redis(
        tmp_path / "guarded",
        password=PASSWORD,
        extra_args=("--unixsocket", str(socket), "--unixsocketperm", "700"),
    )
    yield server, socket
    server.stop()


async def test_unix_socket_with_password(
    guarded_redis: tuple[RedisProcess, Path], make_server: ServerFactory
) -> None:
    _server, socket = guarded_redis
    async with make_server(REDIS_URL=f"unix://{socket}", REDIS_PASSWORD=PASSWORD) as served:
        await create(served.stub, "via-unix", a=1)
        got = await served.stub.GetSession(pb.GetSessionRequest(session_id="via-unix"))
        assert got.session.data["a"] == 1


async def test_wrong_password_is_unavailable(
    guarded_redis: tuple[RedisProcess, Path], make_server: ServerFactory
) -> None:
    server, _socket = guarded_redis
    url = f"redis://{server.host}:{server.port}/0"
    async with make_server(REDIS_URL=url, REDIS_PASSWORD="wrong") as served:
        await fails(
            served.stub.GetSession(pb.GetSessionRequest(session_id="x")),
            grpc.StatusCode.UNAVAILABLE,
            "STORE_UNAVAILABLE",
        )
    async with make_server(REDIS_URL=server.url) as served:  # the password inside the URL
        await create(served.stub, "via-url-password")


async def test_rediss_url_with_a_private_ca(tmp_path: Path, make_server: ServerFactory) -> None:
    ca, cert, key = make_certificates(tmp_path / "tls")
    tls_port = free_port()
    server = start_redis(
        tmp_path / "tls-redis",
        extra_args=(
            "--tls-port", str(tls_port),
            "--tls-cert-file", str(cert),
            "--tls-key-file", str(key),
            "--tls-ca-cert-file", str(ca),
            "--tls-auth-clients", "no",
        ),
    )  # fmt: skip
    try:
        url = f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={ca}"
        async with make_server(REDIS_URL=url) as served:
            await create(served.stub, "via-tls", a=1)
            got = await served.stub.GetSession(pb.GetSessionRequest(session_id="via-tls"))
            assert got.session.data["a"] == 1
        with server.client() as plain:
            assert plain.dbsize() == 1  # the write really went to this server
    finally:
        server.stop()


async def test_callers_wait_for_a_pooled_connection_instead_of_failing(
    make_server: ServerFactory,
) -> None:
    async with make_server(REDIS_MAX_CONNECTIONS="2", REDIS_RETRIES="0") as served:
        # Creates are never retried: each one must wait for one of the two connections.
        await asyncio.gather(*(create(served.stub, f"pooled-{i}", a=i) for i in range(60)))
        listed = await served.stub.ListSessions(pb.ListSessionsRequest(page_size=100))
        assert len(listed.sessions) == 60
