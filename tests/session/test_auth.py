"""Caller authentication: a bearer token on every business RPC, never on health or reflection."""

from __future__ import annotations

import secrets

import grpc
import pytest
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from session_service.client import SessionClient
from session_service.client_errors import UnauthenticatedError
from session_service.config import ConfigError, Settings
from tests.session.conftest import ServerFactory
from tggod.session.v1 import session_service_pb2 as pb

OLD, NEW = secrets.token_urlsafe(32), secrets.token_urlsafe(32)


async def _reason(
    call: grpc.aio.UnaryUnaryCall[pb.GetSessionRequest, pb.GetSessionResponse],
) -> str:
    status = await rpc_status.aio.from_call(call)
    assert status is not None
    (info,) = [d for d in status.details if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
    unpacked = error_details_pb2.ErrorInfo()
    info.Unpack(unpacked)
    return unpacked.reason


async def test_calls_without_a_known_token_are_refused(make_server: ServerFactory) -> None:
    async with make_server(SESSION_CLIENT_TOKENS=f"{NEW},{OLD}") as served:
        for metadata in (None, (("authorization", "Bearer wrong-token"),), (("x", "y"),)):
            call = served.stub.GetSession(
                pb.GetSessionRequest(session_id="s1"), metadata=metadata, timeout=5
            )
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert await _reason(call) == "UNAUTHENTICATED"
        # Probes carry no metadata: health stays open.
        health = await health_pb2_grpc.HealthStub(served.channel).Check(
            health_pb2.HealthCheckRequest(service="tggod.session.v1.SessionService"), timeout=5
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_every_configured_token_works_through_the_client(make_server: ServerFactory) -> None:
    async with make_server(SESSION_CLIENT_TOKENS=f"{NEW},{OLD}") as served:
        target = f"127.0.0.1:{served.running.port}"
        for token in (NEW, OLD):  # both sides of a rotation
            async with SessionClient(target, token=token) as client:
                info = await client.create({"phone": "+15550001"})
                assert (await client.get(info.session_id)).data == {"phone": "+15550001"}
        async with SessionClient(target) as anonymous:
            with pytest.raises(UnauthenticatedError):
                await anonymous.create({"phone": "+15550001"})
        data = struct_pb2.Struct()
        with pytest.raises(grpc.aio.AioRpcError):
            await served.stub.CreateSession(pb.CreateSessionRequest(data=data), timeout=5)


def test_weak_tokens_stop_the_service_at_start(session_env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="SESSION_CLIENT_TOKENS"):
        Settings.from_env({**session_env, "SESSION_CLIENT_TOKENS": "short"})
    tokens = Settings.from_env({**session_env, "SESSION_CLIENT_TOKENS": f" {NEW} ,"}).client_tokens
    assert tokens == (NEW.encode(),)
    assert NEW not in repr(Settings.from_env({**session_env, "SESSION_CLIENT_TOKENS": NEW}))
