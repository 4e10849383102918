"""The Python client and the backend's drop-in functions, against a real server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
import redis
from prometheus_client import REGISTRY

from session_service import client as sc
from session_service.server import RunningServer
from tests.helpers.redis import free_port, start_redis
from tests.helpers.tls import make_certificates
from tests.session.conftest import ServerFactory, create, stored_bytes
from tggod.session.v1 import session_service_pb2_grpc as pb_grpc


@pytest_asyncio.fixture
async def client(session_server: RunningServer) -> AsyncIterator[sc.SessionClient]:
    async with sc.SessionClient(f"dns:///127.0.0.1:{session_server.port}", timeout=5) as c:
        yield c


@pytest_asyncio.fixture
async def drop_ins(
    session_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[None]:
    monkeypatch.setenv("SESSION_SERVICE_ADDR", f"dns:///127.0.0.1:{session_server.port}")
    yield
    await sc.close_shared_client()


async def test_typed_calls(client: sc.SessionClient) -> None:
    info = await client.create({"phone": "+15550004", "user_id": 123456789}, ttl=60)
    assert info.version == 1
    assert info.idle_ttl == timedelta(seconds=60)
    got = await client.get(info.session_id)
    assert got.data == {"phone": "+15550004", "user_id": 123456789}
    assert isinstance(got.data["user_id"], int)
    updated, created = await client.update(
        info.session_id, {"step": "code_sent", "ignored": 1}, fields=["step"]
    )
    assert (updated.version, created) == (2, False)
    extension = await client.extend(info.session_id, timedelta(seconds=30))
    assert (extension.granted, extension.clipped) == (timedelta(seconds=30), False)
    page, token = await client.list(prefix=info.session_id[:4])
    assert [i.session_id for i in page] == [info.session_id]
    assert token == ""
    async with client.lock(info.session_id, lease=5) as lease:
        assert lease.fencing_token > 0
        refreshed = await client.refresh_lock(lease, ttl=10)
        assert refreshed.expire_time > lease.expire_time
        with pytest.raises(sc.LockHeldError):
            await client.acquire_lock(info.session_id, wait=0.2)
        await client.update(info.session_id, {"a": 1}, fencing_token=lease.fencing_token)
    with pytest.raises(sc.LockLostError):
        await client.refresh_lock(lease)
    with pytest.raises(sc.FencingTokenStaleError):
        await client.update(info.session_id, {}, fencing_token=0)
    consumed = await client.consume(info.session_id)
    assert consumed.data == {"a": 1}
    assert not await client.delete(info.session_id)


async def test_typed_errors(client: sc.SessionClient) -> None:
    with pytest.raises(sc.SessionNotFoundError) as missing:
        await client.get("absent")
    assert missing.value.reason == "SESSION_NOT_FOUND"
    await client.create({}, session_id="x")
    with pytest.raises(sc.SessionExistsError):
        await client.create({}, session_id="x")
    with pytest.raises(sc.VersionConflictError) as conflict:
        await client.update("x", {}, expected_version=7)
    assert conflict.value.current_version == 1
    with pytest.raises(sc.InvalidRequestError) as invalid:
        await client.create({}, session_id="no spaces", ttl=0.1)
    assert set(invalid.value.violations) == {"session_id", "ttl"}


async def test_unreachable_service_is_unavailable() -> None:
    async with sc.SessionClient(f"127.0.0.1:{free_port()}", timeout=1) as nobody:
        with pytest.raises((sc.UnavailableError, sc.DeadlineError)):
            await nobody.get("any")


async def test_drop_in_login_flow_leaves_no_plaintext(drop_ins: None, raw: redis.Redis) -> None:
    login = "tg-login-5f1c0e"
    phone, phone_code_hash, code = "+447700900456", "9b8a7c6d5e4f", "70523"
    # send code
    assert await sc.set_auth_session(login, {"phone": phone, "phone_code_hash": phone_code_hash})
    assert await sc.extend_auth_session(login, additional_ttl=600)
    # the user types the code; the backend records the attempt
    state = await sc.get_auth_session(login)
    assert state == {"phone": phone, "phone_code_hash": phone_code_hash}
    assert await sc.set_auth_session(login, {**state, "code": code, "attempts": 1}, ttl=300)
    for value in stored_bytes(raw):
        for secret in (login, phone, phone.lstrip("+"), phone_code_hash, code):
            assert secret.encode() not in value, secret
    # sign in: one-time use
    signed_in = await sc.consume_auth_session(login)
    assert signed_in == {
        "phone": phone,
        "phone_code_hash": phone_code_hash,
        "code": code,
        "attempts": 1,
    }
    assert await sc.consume_auth_session(login) is None
    assert await sc.get_auth_session(login) is None
    assert not await sc.extend_auth_session(login)
    assert not await sc.delete_auth_session(login)
    assert not await sc.set_auth_session("bad id!", {})


def _unavailable_count(method: str) -> float:
    value = REGISTRY.get_sample_value(
        "session_rpc_requests_total", {"method": method, "code": "UNAVAILABLE"}
    )
    return value or 0.0


async def test_only_idempotent_calls_are_retried(
    tmp_path: Path, make_server: ServerFactory
) -> None:
    down = start_redis(tmp_path / "down")
    try:
        async with make_server(REDIS_URL=down.url, REDIS_RETRIES="0") as served:
            await create(served.stub, "r")
            down.stop()
            port = served.running.port
            async with sc.SessionClient(f"dns:///127.0.0.1:{port}", timeout=10) as c:
                before = _unavailable_count("GetSession")
                with pytest.raises(sc.UnavailableError):
                    await c.get("r")
                # maxAttempts of the service config: the call and three retries
                assert _unavailable_count("GetSession") - before == 4
                before = _unavailable_count("UpdateSession")
                with pytest.raises(sc.UnavailableError):
                    await c.update("r", {"a": 1})
                assert _unavailable_count("UpdateSession") - before == 1
    finally:
        down.stop()


async def test_tls_client_trusts_only_the_given_ca(
    session_server: RunningServer, tmp_path: Path
) -> None:
    ca, cert, key = make_certificates(tmp_path / "tls")
    tls_server = grpc.aio.server()
    pb_grpc.add_SessionServiceServicer_to_server(session_server.servicer, tls_server)
    credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    port = tls_server.add_secure_port("127.0.0.1:0", credentials)
    await tls_server.start()
    try:
        async with sc.SessionClient(
            f"127.0.0.1:{port}", tls=True, root_certificates=ca.read_bytes(), timeout=5
        ) as trusted:
            info = await trusted.create({"over": "tls"})
            assert (await trusted.get(info.session_id)).data == {"over": "tls"}
        other_ca, _, _ = make_certificates(tmp_path / "other")
        async with sc.SessionClient(
            f"127.0.0.1:{port}", root_certificates=other_ca.read_bytes(), timeout=2
        ) as untrusted:
            with pytest.raises((sc.UnavailableError, sc.DeadlineError)):
                await untrusted.get(info.session_id)
    finally:
        await tls_server.stop(None)
