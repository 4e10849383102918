"""Python client of the session service, and the backend's drop-in session functions.

``SessionClient`` holds one channel for the whole process: a ``dns:///`` target
resolves every address of a headless Kubernetes service and ``round_robin``
spreads calls over them. Every call carries a deadline; idempotent calls are
retried on UNAVAILABLE by gRPC itself, per the service config below. Failures
raise the exceptions of ``session_service.client_errors``.

Struct values travel as doubles: whole numbers come back as ``int`` (exact up
to 2**53), other numbers as ``float``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import field_mask_pb2

from session_service.client_errors import (
    DeadlineError,
    FencingTokenStaleError,
    InvalidRequestError,
    LockHeldError,
    LockLostError,
    SessionCorruptError,
    SessionError,
    SessionExistsError,
    SessionNotFoundError,
    UnavailableError,
    VersionConflictError,
    from_rpc_error,
)
from session_service.client_types import (
    Extension,
    Lease,
    Session,
    SessionInfo,
    duration,
    info,
    session,
    struct,
    timestamp,
)
from tggod.session.v1 import session_service_pb2 as pb
from tggod.session.v1 import session_service_pb2_grpc as pb_grpc

__all__ = [
    "DeadlineError",
    "Extension",
    "FencingTokenStaleError",
    "InvalidRequestError",
    "Lease",
    "LockHeldError",
    "LockLostError",
    "Session",
    "SessionClient",
    "SessionCorruptError",
    "SessionError",
    "SessionExistsError",
    "SessionInfo",
    "SessionNotFoundError",
    "UnavailableError",
    "VersionConflictError",
    "close_shared_client",
    "consume_auth_session",
    "delete_auth_session",
    "extend_auth_session",
    "get_auth_session",
    "set_auth_session",
    "shared_client",
]

_SERVICE = "tggod.session.v1.SessionService"
# Only calls whose repetition cannot change the outcome are retried; a
# duplicated create, update, extend, consume or acquire could.
_IDEMPOTENT = ("GetSession", "ListSessions", "RefreshLock", "ReleaseLock")
SERVICE_CONFIG = json.dumps(
    {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                "name": [{"service": _SERVICE, "method": m} for m in _IDEMPOTENT],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
    }
)


class SessionClient:
    """Async client: one shared channel, a deadline on every call, typed results and errors."""

    def __init__(
        self,
        target: str,
        *,
        timeout: float = 5.0,
        tls: bool = False,
        root_certificates: bytes | None = None,
        private_key: bytes | None = None,
        certificate_chain: bytes | None = None,
        token: str | None = None,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        # Sent as call metadata rather than call credentials, which gRPC only allows on TLS
        # channels: inside a cluster the token often travels over a mesh-encrypted plain channel.
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None
        channel_options = [
            ("grpc.service_config", SERVICE_CONFIG),
            ("grpc.enable_retries", 1),
            *options,
        ]
        if tls or root_certificates or certificate_chain:
            credentials = grpc.ssl_channel_credentials(
                root_certificates, private_key, certificate_chain
            )
            self._channel = grpc.aio.secure_channel(target, credentials, channel_options)
        else:
            self._channel = grpc.aio.insecure_channel(target, channel_options)
        self._stub = pb_grpc.SessionServiceStub(self._channel)
        self._timeout = timeout

    async def __aenter__(self) -> SessionClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _call(self, method: str, request: Any, deadline: float | None) -> Any:
        try:
            return await getattr(self._stub, method)(
                request, timeout=deadline or self._timeout, metadata=self._metadata
            )
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None

    async def create(
        self,
        data: Mapping[str, Any],
        *,
        session_id: str = "",
        ttl: float | timedelta | None = None,
        max_lifetime: float | timedelta | None = None,
        deadline: float | None = None,
    ) -> SessionInfo:
        request = pb.CreateSessionRequest(session_id=session_id, data=struct(data))
        if ttl is not None:
            request.ttl.CopyFrom(duration(ttl))
        if max_lifetime is not None:
            request.max_lifetime.CopyFrom(duration(max_lifetime))
        reply = await self._call("CreateSession", request, deadline)
        return info(reply.metadata)

    async def get(
        self, session_id: str, *, touch: bool = False, deadline: float | None = None
    ) -> Session:
        reply = await self._call(
            "GetSession", pb.GetSessionRequest(session_id=session_id, touch=touch), deadline
        )
        return session(reply.session)

    async def update(
        self,
        session_id: str,
        data: Mapping[str, Any],
        *,
        fields: Sequence[str] | None = None,
        ttl: float | timedelta | None = None,
        allow_missing: bool = False,
        max_lifetime: float | timedelta | None = None,
        expected_version: int | None = None,
        fencing_token: int | None = None,
        deadline: float | None = None,
    ) -> tuple[SessionInfo, bool]:
        """Replace the data, or only ``fields`` (top-level keys); returns (info, created)."""
        request = pb.UpdateSessionRequest(
            session_id=session_id,
            data=struct(data),
            allow_missing=allow_missing,
            expected_version=expected_version,
            fencing_token=fencing_token,
        )
        if fields is not None:
            request.update_mask.CopyFrom(field_mask_pb2.FieldMask(paths=list(fields)))
        if ttl is not None:
            request.ttl.CopyFrom(duration(ttl))
        if max_lifetime is not None:
            request.max_lifetime.CopyFrom(duration(max_lifetime))
        reply = await self._call("UpdateSession", request, deadline)
        return info(reply.metadata), reply.created

    async def delete(
        self,
        session_id: str,
        *,
        expected_version: int | None = None,
        fencing_token: int | None = None,
        deadline: float | None = None,
    ) -> bool:
        request = pb.DeleteSessionRequest(
            session_id=session_id, expected_version=expected_version, fencing_token=fencing_token
        )
        reply = await self._call("DeleteSession", request, deadline)
        return bool(reply.deleted)

    async def extend(
        self,
        session_id: str,
        extension: float | timedelta,
        *,
        fencing_token: int | None = None,
        deadline: float | None = None,
    ) -> Extension:
        request = pb.ExtendSessionRequest(
            session_id=session_id, extension=duration(extension), fencing_token=fencing_token
        )
        reply = await self._call("ExtendSession", request, deadline)
        return Extension(info(reply.metadata), reply.granted_extension.ToTimedelta(), reply.clipped)

    async def consume(
        self,
        session_id: str,
        *,
        expected_version: int | None = None,
        fencing_token: int | None = None,
        deadline: float | None = None,
    ) -> Session:
        request = pb.ConsumeSessionRequest(
            session_id=session_id, expected_version=expected_version, fencing_token=fencing_token
        )
        reply = await self._call("ConsumeSession", request, deadline)
        return session(reply.session)

    async def list(
        self,
        *,
        prefix: str = "",
        page_size: int = 0,
        page_token: str = "",
        deadline: float | None = None,
    ) -> tuple[list[SessionInfo], str]:
        """One page of metadata and the token of the next ("" when done)."""
        request = pb.ListSessionsRequest(
            page_size=page_size, page_token=page_token, session_id_prefix=prefix
        )
        reply = await self._call("ListSessions", request, deadline)
        return [info(m) for m in reply.sessions], reply.next_page_token

    async def acquire_lock(
        self,
        session_id: str,
        *,
        lease: float | timedelta | None = None,
        wait: float | timedelta = 0,
        deadline: float | None = None,
    ) -> Lease:
        wait_seconds = wait.total_seconds() if isinstance(wait, timedelta) else wait
        request = pb.AcquireLockRequest(session_id=session_id, wait_timeout=duration(wait))
        if lease is not None:
            request.lease_ttl.CopyFrom(duration(lease))
        # The wait happens inside the call, so the deadline must cover it.
        total = (deadline or self._timeout) + wait_seconds
        reply = await self._call("AcquireLock", request, total)
        return Lease(
            session_id, reply.lock_token, reply.fencing_token, timestamp(reply.lease_expire_time)
        )

    async def refresh_lock(
        self, lease: Lease, *, ttl: float | timedelta | None = None, deadline: float | None = None
    ) -> Lease:
        request = pb.RefreshLockRequest(session_id=lease.session_id, lock_token=lease.lock_token)
        if ttl is not None:
            request.lease_ttl.CopyFrom(duration(ttl))
        reply = await self._call("RefreshLock", request, deadline)
        return Lease(
            lease.session_id,
            lease.lock_token,
            reply.fencing_token,
            timestamp(reply.lease_expire_time),
        )

    async def release_lock(self, lease: Lease, *, deadline: float | None = None) -> bool:
        request = pb.ReleaseLockRequest(session_id=lease.session_id, lock_token=lease.lock_token)
        reply = await self._call("ReleaseLock", request, deadline)
        return bool(reply.released)

    @contextlib.asynccontextmanager
    async def lock(
        self, session_id: str, *, lease: float | timedelta | None = None, wait: float = 0
    ) -> AsyncIterator[Lease]:
        """Hold the session's lease for the block; pass ``fencing_token`` with writes inside."""
        held = await self.acquire_lock(session_id, lease=lease, wait=wait)
        try:
            yield held
        finally:
            await self.release_lock(held)


_shared: tuple[asyncio.AbstractEventLoop, SessionClient] | None = None


def shared_client() -> SessionClient:
    """The process-wide client for ``SESSION_SERVICE_ADDR``, created on first use per event loop."""
    global _shared
    loop = asyncio.get_running_loop()
    if _shared is None or _shared[0] is not loop:
        ca = os.environ.get("SESSION_SERVICE_TLS_CA")
        client = SessionClient(
            os.environ.get("SESSION_SERVICE_ADDR", "dns:///localhost:50051"),
            timeout=float(os.environ.get("SESSION_SERVICE_TIMEOUT_SECONDS", "5")),
            tls=os.environ.get("SESSION_SERVICE_TLS", "").lower() in ("1", "true", "yes"),
            root_certificates=Path(ca).read_bytes() if ca else None,
            token=os.environ.get("SESSION_SERVICE_TOKEN") or None,
        )
        _shared = (loop, client)
    return _shared[1]


async def close_shared_client() -> None:
    """Close the shared client (at application shutdown)."""
    global _shared
    if _shared is not None:
        await _shared[1].close()
        _shared = None


async def set_auth_session(session_id: str, auth_data: dict[str, Any], ttl: int = 3600) -> bool:
    """Create or replace the login state; False if the service refused it."""
    try:
        await shared_client().update(session_id, auth_data, ttl=ttl, allow_missing=True)
    except SessionError:
        return False
    return True


async def get_auth_session(session_id: str) -> dict[str, Any] | None:
    """The login state, or None if it is absent, expired or unreadable."""
    try:
        return (await shared_client().get(session_id)).data
    except (SessionNotFoundError, SessionCorruptError):
        return None


async def delete_auth_session(session_id: str) -> bool:
    """True if a live session was deleted."""
    return await shared_client().delete(session_id)


async def extend_auth_session(session_id: str, additional_ttl: int = 1800) -> bool:
    """Push the idle expiry out (clipped to the lifetime cap); False if the session is gone."""
    try:
        await shared_client().extend(session_id, additional_ttl)
    except SessionNotFoundError:
        return False
    return True


async def consume_auth_session(session_id: str) -> dict[str, Any] | None:
    """Read and delete the login state in one step; None if absent or already consumed."""
    try:
        return (await shared_client().consume(session_id)).data
    except (SessionNotFoundError, SessionCorruptError):
        return None
