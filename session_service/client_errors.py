"""Exceptions raised by ``session_service.client``, one per stable ErrorInfo reason::

SessionError                  any failed call; .code, .reason, .message
├── InvalidRequestError       INVALID_ARGUMENT (.violations: field -> description)
├── SessionNotFoundError      SESSION_NOT_FOUND
├── SessionExistsError        SESSION_ALREADY_EXISTS
├── VersionConflictError      VERSION_MISMATCH (.current_version)
├── FencingTokenStaleError    FENCING_TOKEN_STALE
├── LockHeldError             LOCK_HELD
├── LockLostError             LOCK_LOST
├── SessionCorruptError       SESSION_CORRUPT
├── UnauthenticatedError      UNAUTHENTICATED: no or an unknown bearer token
├── UnavailableError          STORE_UNAVAILABLE, SHUTTING_DOWN, or no server reachable
└── DeadlineError             DEADLINE_EXCEEDED
"""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from session_service.errors import DOMAIN


class SessionError(Exception):
    def __init__(self, code: grpc.StatusCode, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message


class InvalidRequestError(SessionError):
    violations: dict[str, str]


class SessionNotFoundError(SessionError):
    pass


class SessionExistsError(SessionError):
    pass


class VersionConflictError(SessionError):
    current_version: int


class FencingTokenStaleError(SessionError):
    pass


class LockHeldError(SessionError):
    pass


class LockLostError(SessionError):
    pass


class SessionCorruptError(SessionError):
    pass


class UnauthenticatedError(SessionError):
    pass


class UnavailableError(SessionError):
    pass


class DeadlineError(SessionError):
    pass


_BY_REASON: dict[str, type[SessionError]] = {
    "INVALID_ARGUMENT": InvalidRequestError,
    "SESSION_NOT_FOUND": SessionNotFoundError,
    "SESSION_ALREADY_EXISTS": SessionExistsError,
    "VERSION_MISMATCH": VersionConflictError,
    "FENCING_TOKEN_STALE": FencingTokenStaleError,
    "LOCK_HELD": LockHeldError,
    "LOCK_LOST": LockLostError,
    "SESSION_CORRUPT": SessionCorruptError,
    "UNAUTHENTICATED": UnauthenticatedError,
    "STORE_UNAVAILABLE": UnavailableError,
    "SHUTTING_DOWN": UnavailableError,
    "DEADLINE_EXCEEDED": DeadlineError,
}
_BY_CODE: dict[grpc.StatusCode, type[SessionError]] = {
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequestError,
    grpc.StatusCode.NOT_FOUND: SessionNotFoundError,
}


def from_rpc_error(error: grpc.aio.AioRpcError) -> SessionError:
    """The typed exception for a failed call, from its ErrorInfo reason (or its code)."""
    code = error.code()
    message = error.details() or ""
    info = error_details_pb2.ErrorInfo()
    bad = error_details_pb2.BadRequest()
    found_info = False
    status = rpc_status.from_call(error)
    for detail in status.details if status is not None else ():
        if detail.Is(info.DESCRIPTOR) and detail.Unpack(info) and info.domain == DOMAIN:
            found_info = True
        elif detail.Is(bad.DESCRIPTOR):
            detail.Unpack(bad)
    reason = info.reason if found_info else code.name
    cls = _BY_REASON.get(reason) or _BY_CODE.get(code, SessionError)
    result = cls(code, reason, message)
    if isinstance(result, VersionConflictError):
        result.current_version = int(info.metadata.get("current_version", "0"))
    if isinstance(result, InvalidRequestError):
        result.violations = {v.field: v.description for v in bad.field_violations}
    return result
