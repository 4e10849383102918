"""Caller authentication: a shared bearer token on every business RPC.

Network policies decide which pods can reach the service; the token decides which callers may
use it, so a pod that slips through the network layer still cannot make the service read the
media volume or burn its decoders. Several tokens may be configured at once so that rotating one
never locks a client out. Health and reflection stay open: the kubelet's gRPC probes carry no
metadata.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeAlias

import grpc

from thumbnail_service.errors import ServiceError

# grpc.RpcMethodHandler is generic only in the type stubs.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
_OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
_HEADER = "authorization"
_SCHEME = "bearer "


def _presented(metadata: Sequence[tuple[str, str | bytes]] | None) -> bytes | None:
    for key, value in metadata or ():
        if key == _HEADER and isinstance(value, str) and value.lower().startswith(_SCHEME):
            return value[len(_SCHEME) :].strip().encode()
    return None


class TokenAuth(grpc.aio.ServerInterceptor):
    """Refuses business RPCs without one of ``tokens`` as ``authorization: Bearer <token>``."""

    def __init__(self, tokens: Sequence[bytes]) -> None:
        self._tokens = tuple(tokens)

    def _allowed(self, presented: bytes | None) -> bool:
        # Compare against every token, always, so the timing says nothing about which matched.
        matched = False
        for token in self._tokens:
            matched |= presented is not None and hmac.compare_digest(presented, token)
        return matched

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        details = handler_call_details
        handler = await continuation(details)
        method: str = details.method
        if handler is None or method.startswith(_OPEN_PREFIXES):
            return handler
        if self._allowed(_presented(details.invocation_metadata)):
            return handler
        return _refusal(handler)


def _refusal(handler: Handler) -> Handler:
    status = ServiceError.of(
        "UNAUTHENTICATED", "missing or unknown bearer token in the authorization metadata"
    ).to_status()

    async def refuse(_request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort_with_status(status)

    codecs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(refuse, **codecs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(refuse, **codecs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(refuse, **codecs)
    return grpc.stream_stream_rpc_method_handler(refuse, **codecs)
