"""The wire contract, checked through the generated stubs only, over real channels.

A client in another language sees exactly this: the RPC names and types, gRPC health,
reflection, and errors shaped as google.rpc.Status with exactly one ErrorInfo.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import descriptor, message
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from tggod.session.v1 import session_service_pb2 as session_pb
from tggod.session.v1 import session_service_pb2_grpc as session_grpc
from tggod.thumbnail.v1 import thumbnail_service_pb2 as thumb_pb
from tggod.thumbnail.v1 import thumbnail_service_pb2_grpc as thumb_grpc

SESSION = "tggod.session.v1.SessionService"
THUMBNAIL = "tggod.thumbnail.v1.ThumbnailService"

# The documented contract: RPC -> (request, response, client streaming, server streaming).
SESSION_RPCS = {
    name: (f"{name}Request", f"{name}Response", False, False)
    for name in (
        "CreateSession",
        "GetSession",
        "UpdateSession",
        "DeleteSession",
        "ExtendSession",
        "ConsumeSession",
        "ListSessions",
        "AcquireLock",
        "RefreshLock",
        "ReleaseLock",
    )
}
THUMBNAIL_RPCS = {
    "GenerateThumbnail": ("GenerateThumbnailRequest", "GenerateThumbnailResponse", True, True),
    "ProbeVideo": ("ProbeVideoRequest", "ProbeVideoResponse", True, False),
}


def _shape(service: descriptor.ServiceDescriptor) -> dict[str, tuple[str, str, bool, bool]]:
    return {
        m.name: (
            m.input_type.name,
            m.output_type.name,
            m.client_streaming,
            m.server_streaming,
        )
        for m in service.methods
    }


@pytest.mark.parametrize(
    ("module", "service", "expected"),
    [(session_pb, SESSION, SESSION_RPCS), (thumb_pb, THUMBNAIL, THUMBNAIL_RPCS)],
)
def test_services_have_exactly_the_documented_rpcs(
    module: object, service: str, expected: dict[str, tuple[str, str, bool, bool]]
) -> None:
    file_descriptor: descriptor.FileDescriptor = module.DESCRIPTOR  # type: ignore[attr-defined]
    found = file_descriptor.services_by_name[service.rsplit(".", 1)[1]]
    assert found.full_name == service
    assert _shape(found) == expected


def _error_info(status: grpc.Status | None) -> error_details_pb2.ErrorInfo:
    """The one ErrorInfo a status carries; fails unless there is exactly one."""
    assert status is not None, "error without google.rpc.Status details"
    infos = []
    for detail in status.details:  # type: ignore[attr-defined]
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            infos.append(info)
    assert len(infos) == 1, f"expected exactly one ErrorInfo, got {len(infos)}"
    return infos[0]


async def _assert_error_shape(call: grpc.aio.Call, domain: str) -> grpc.StatusCode:
    code = await call.code()
    assert code != grpc.StatusCode.UNIMPLEMENTED
    if code == grpc.StatusCode.OK:
        return code
    info = _error_info(await rpc_status.aio.from_call(call))
    assert info.domain == domain
    assert info.reason
    assert info.reason == info.reason.upper()
    assert " " not in info.reason
    return code


async def test_every_session_rpc_is_served_with_structured_errors(
    session_channel: grpc.aio.Channel,
) -> None:
    stub = session_grpc.SessionServiceStub(session_channel)
    codes: dict[str, grpc.StatusCode] = {}
    for name, (request_type, *_rest) in SESSION_RPCS.items():
        request: message.Message = getattr(session_pb, request_type)()
        call = getattr(stub, name)(request, timeout=10)
        with contextlib.suppress(grpc.aio.AioRpcError):
            await call
        codes[name] = await _assert_error_shape(call, SESSION)
    # An empty request names no session: every RPC but ListSessions must refuse it clearly.
    assert codes.pop("ListSessions") == grpc.StatusCode.OK
    assert set(codes.values()) == {grpc.StatusCode.INVALID_ARGUMENT}, codes


async def _no_requests() -> AsyncIterator[message.Message]:
    return
    yield  # an async generator that sends nothing: the client half-closes at once


async def test_every_thumbnail_rpc_is_served_with_structured_errors(
    thumbnail_channel: grpc.aio.Channel,
) -> None:
    stub = thumb_grpc.ThumbnailServiceStub(thumbnail_channel)
    generate = stub.GenerateThumbnail(_no_requests(), timeout=10)
    with pytest.raises(grpc.aio.AioRpcError):
        async for _ in generate:
            pass
    assert await _assert_error_shape(generate, THUMBNAIL) == grpc.StatusCode.INVALID_ARGUMENT

    probe = stub.ProbeVideo(_no_requests(), timeout=10)
    with pytest.raises(grpc.aio.AioRpcError):
        await probe
    assert await _assert_error_shape(probe, THUMBNAIL) == grpc.StatusCode.INVALID_ARGUMENT


async def _assert_serving(channel: grpc.aio.Channel, service: str) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for name in ("", service):
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, name


async def _listed_services(channel: grpc.aio.Channel) -> set[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    names: set[str] = set()
    async for reply in stub.ServerReflectionInfo(iter([request]), timeout=10):
        names.update(s.name for s in reply.list_services_response.service)
    return names


async def test_session_health_and_reflection(session_channel: grpc.aio.Channel) -> None:
    await _assert_serving(session_channel, SESSION)
    assert {SESSION, "grpc.health.v1.Health"} <= await _listed_services(session_channel)


async def test_thumbnail_health_and_reflection(thumbnail_channel: grpc.aio.Channel) -> None:
    await _assert_serving(thumbnail_channel, THUMBNAIL)
    assert {THUMBNAIL, "grpc.health.v1.Health"} <= await _listed_services(thumbnail_channel)
