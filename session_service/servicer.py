"""SessionService handlers: translate protobuf to domain calls and domain errors to statuses."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2

from session_service import metrics
from session_service.config import Limits
from session_service.errors import (
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    ServiceError,
    ShuttingDown,
)
from session_service.leases import Leases
from session_service.listing import Lister
from session_service.model import Metadata
from session_service.store import ANSWER_BY, SessionStore
from session_service.validation import MAX_MASK_PATHS, Checker, duration_ms
from tggod.session.v1 import session_service_pb2 as pb
from tggod.session.v1 import session_service_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

Ctx = grpc.aio.ServicerContext[Any, Any]
Req = TypeVar("Req")
Resp = TypeVar("Resp")
# A lock wait ends this long before the caller's deadline so LOCK_HELD still reaches the caller.
_DEADLINE_MARGIN_SECONDS = 0.05


def _rpc(
    handler: Callable[[SessionServicer, Req, Ctx], Awaitable[Resp]],
) -> Callable[[SessionServicer, Req, Ctx], Awaitable[Resp]]:
    """Shutdown check, the caller's deadline, error mapping and metrics around one handler."""
    method = handler.__name__

    @functools.wraps(handler)
    async def wrapper(self: SessionServicer, request: Req, context: Ctx) -> Resp:
        started = time.perf_counter()
        error: ServiceError | None = None
        try:
            if self.shutting_down:
                raise ShuttingDown()
            remaining: float | None = context.time_remaining()
            if remaining is not None:
                ANSWER_BY.set(asyncio.get_running_loop().time() + remaining)
            async with asyncio.timeout(remaining):
                response = await handler(self, request, context)
        except ServiceError as exc:
            error = exc
        except TimeoutError:
            error = DeadlineExceeded()
        except asyncio.CancelledError:
            _observe(method, "CANCELLED", started)
            raise
        except Exception:
            log.exception("unexpected failure", extra={"method": method})
            error = Internal()
        _observe(method, error.code.name if error else "OK", started)
        if error is not None:
            await context.abort_with_status(error.to_status())
        return response

    return wrapper


def _observe(method: str, code: str, started: float) -> None:
    metrics.RPCS.labels(method, code).inc()
    metrics.RPC_LATENCY.labels(method, code).observe(time.perf_counter() - started)


def _timestamp(ms: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000)


def _duration(ms: int) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000)


def metadata_pb(meta: Metadata) -> pb.SessionMetadata:
    return pb.SessionMetadata(
        session_id=meta.session_id,
        version=meta.version,
        create_time=_timestamp(meta.create_ms),
        update_time=_timestamp(meta.update_ms),
        expire_time=_timestamp(meta.expire_ms),
        max_expire_time=_timestamp(meta.max_expire_ms),
        idle_ttl=_duration(meta.idle_ttl_ms),
        fencing_token=meta.fencing_token,
        locked=meta.locked,
    )


def _session(meta: Metadata, data: bytes) -> pb.Session:
    return pb.Session(metadata=metadata_pb(meta), data=struct_pb2.Struct.FromString(data))


def _merge(paths: list[str], new: struct_pb2.Struct, limit: int) -> Callable[[bytes | None], bytes]:
    def merge(current: bytes | None) -> bytes:
        merged = struct_pb2.Struct()
        if current is not None:
            merged.ParseFromString(current)
        for path in paths:
            if path in new.fields:
                merged.fields[path].CopyFrom(new.fields[path])
            elif path in merged.fields:
                del merged.fields[path]
        encoded = merged.SerializeToString()
        if len(encoded) > limit:
            raise InvalidArgument([("data", f"the merged data exceeds {limit} bytes serialized")])
        return encoded

    return merge


def _optional(request: Any, field: str) -> int | None:
    return int(getattr(request, field)) if request.HasField(field) else None


class SessionServicer(pb_grpc.SessionServiceServicer):
    def __init__(self, store: SessionStore, limits: Limits) -> None:
        self._store = store
        self._leases = Leases(store)
        self._lister = Lister(store)
        self._limits = limits
        self.shutting_down = False

    def _checker(self, request: Any, *, generate_id: bool = False) -> tuple[Checker, str]:
        check = Checker(self._limits)
        session_id = check.session_id(request.session_id, generate=generate_id)
        for field in ("expected_version", "fencing_token"):
            if field in request.DESCRIPTOR.fields_by_name and request.HasField(field):
                check.version(getattr(request, field), field)
        return check, session_id

    @_rpc
    async def CreateSession(
        self, request: pb.CreateSessionRequest, context: Ctx
    ) -> pb.CreateSessionResponse:
        check, session_id = self._checker(request, generate_id=True)
        if not request.HasField("data"):
            check.fail("data", "required (may be an empty mapping)")
        data = check.data(request.data)
        ttl = check.ttl(request.ttl, "ttl", present=request.HasField("ttl"))
        ttl = self._limits.default_ttl_ms if ttl is None else ttl
        cap = check.lifetime(
            request.max_lifetime,
            "max_lifetime",
            present=request.HasField("max_lifetime"),
            ttl_ms=ttl,
        )
        check.done()
        meta = await self._store.create(session_id, data, ttl, cap)
        return pb.CreateSessionResponse(metadata=metadata_pb(meta))

    @_rpc
    async def GetSession(
        self, request: pb.GetSessionRequest, context: Ctx
    ) -> pb.GetSessionResponse:
        check, session_id = self._checker(request)
        check.done()
        meta, data = await self._store.get(session_id, touch=request.touch)
        return pb.GetSessionResponse(session=_session(meta, data))

    @_rpc
    async def UpdateSession(
        self, request: pb.UpdateSessionRequest, context: Ctx
    ) -> pb.UpdateSessionResponse:
        check, session_id = self._checker(request)
        paths = list(request.update_mask.paths)
        if len(paths) > MAX_MASK_PATHS:
            check.fail("update_mask", f"at most {MAX_MASK_PATHS} paths")
        if any(not path for path in paths):
            check.fail("update_mask", "paths must not be empty")
        data = check.data(request.data)
        ttl = check.ttl(request.ttl, "ttl", present=request.HasField("ttl"))
        create_ttl = self._limits.default_ttl_ms if ttl is None else ttl
        cap = check.lifetime(
            request.max_lifetime,
            "max_lifetime",
            present=request.HasField("max_lifetime"),
            ttl_ms=create_ttl,
        )
        check.done()
        meta, created = await self._store.update(
            session_id,
            _merge(paths, request.data, self._limits.max_data_bytes) if paths else data,
            allow_missing=request.allow_missing,
            expected_version=_optional(request, "expected_version"),
            fencing_token=_optional(request, "fencing_token"),
            ttl_ms=ttl,
            create_ttl_ms=create_ttl,
            create_max_ms=cap,
        )
        return pb.UpdateSessionResponse(metadata=metadata_pb(meta), created=created)

    @_rpc
    async def DeleteSession(
        self, request: pb.DeleteSessionRequest, context: Ctx
    ) -> pb.DeleteSessionResponse:
        check, session_id = self._checker(request)
        check.done()
        deleted = await self._store.delete(
            session_id,
            expected_version=_optional(request, "expected_version"),
            fencing_token=_optional(request, "fencing_token"),
        )
        return pb.DeleteSessionResponse(deleted=deleted)

    @_rpc
    async def ExtendSession(
        self, request: pb.ExtendSessionRequest, context: Ctx
    ) -> pb.ExtendSessionResponse:
        check, session_id = self._checker(request)
        extension = duration_ms(request.extension)
        if not request.HasField("extension") or not 0 < extension <= self._limits.max_ttl_ms:
            check.fail("extension", f"required, > 0 and at most {self._limits.max_ttl_ms // 1000}s")
        check.done()
        result = await self._store.extend(
            session_id, extension, fencing_token=_optional(request, "fencing_token")
        )
        return pb.ExtendSessionResponse(
            metadata=metadata_pb(result.metadata),
            granted_extension=_duration(result.granted_ms),
            clipped=result.clipped,
        )

    @_rpc
    async def ConsumeSession(
        self, request: pb.ConsumeSessionRequest, context: Ctx
    ) -> pb.ConsumeSessionResponse:
        check, session_id = self._checker(request)
        check.done()
        meta, data = await self._store.consume(
            session_id,
            expected_version=_optional(request, "expected_version"),
            fencing_token=_optional(request, "fencing_token"),
        )
        return pb.ConsumeSessionResponse(session=_session(meta, data))

    @_rpc
    async def ListSessions(
        self, request: pb.ListSessionsRequest, context: Ctx
    ) -> pb.ListSessionsResponse:
        check = Checker(self._limits)
        size = check.page_size(request.page_size)
        if len(request.session_id_prefix) > self._limits.max_id_length:
            check.fail("session_id_prefix", f"at most {self._limits.max_id_length} characters")
        check.done()
        metas, token = await self._lister.page(size, request.page_token, request.session_id_prefix)
        return pb.ListSessionsResponse(
            sessions=[metadata_pb(m) for m in metas], next_page_token=token
        )

    @_rpc
    async def AcquireLock(
        self, request: pb.AcquireLockRequest, context: Ctx
    ) -> pb.AcquireLockResponse:
        check, session_id = self._checker(request)
        lease = check.lease(request.lease_ttl, "lease_ttl", present=request.HasField("lease_ttl"))
        wait_ms = duration_ms(request.wait_timeout)
        if wait_ms < 0:
            check.fail("wait_timeout", "must not be negative")
        check.done()
        wait = min(wait_ms, self._limits.max_lock_wait_ms) / 1000
        remaining: float | None = context.time_remaining()
        if remaining is not None:
            wait = max(min(wait, remaining - _DEADLINE_MARGIN_SECONDS), 0.0)
        granted = await self._leases.acquire(session_id, lease, wait)
        return pb.AcquireLockResponse(
            lock_token=granted.lock_token,
            fencing_token=granted.fencing_token,
            lease_expire_time=_timestamp(granted.expire_ms),
        )

    @_rpc
    async def RefreshLock(
        self, request: pb.RefreshLockRequest, context: Ctx
    ) -> pb.RefreshLockResponse:
        check, session_id = self._checker(request)
        if not request.lock_token:
            check.fail("lock_token", "required")
        lease = check.lease(request.lease_ttl, "lease_ttl", present=request.HasField("lease_ttl"))
        check.done()
        granted = await self._leases.refresh(session_id, request.lock_token, lease)
        return pb.RefreshLockResponse(
            lease_expire_time=_timestamp(granted.expire_ms), fencing_token=granted.fencing_token
        )

    @_rpc
    async def ReleaseLock(
        self, request: pb.ReleaseLockRequest, context: Ctx
    ) -> pb.ReleaseLockResponse:
        check, session_id = self._checker(request)
        if not request.lock_token:
            check.fail("lock_token", "required")
        check.done()
        released = await self._leases.release(session_id, request.lock_token)
        return pb.ReleaseLockResponse(released=released)
