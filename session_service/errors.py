"""Errors of the session service.

Every failure a caller can see is a ``ServiceError``; the servicer turns it
into a ``google.rpc.Status`` with exactly one ``ErrorInfo`` whose reason is
one of the proto's ``ErrorReason`` names::

    ServiceError
    ├── InvalidArgument        INVALID_ARGUMENT     INVALID_ARGUMENT, with BadRequest violations
    ├── SessionNotFound        NOT_FOUND            SESSION_NOT_FOUND
    ├── SessionAlreadyExists   ALREADY_EXISTS       SESSION_ALREADY_EXISTS
    ├── VersionMismatch        ABORTED              VERSION_MISMATCH (metadata: current_version)
    ├── FencingTokenStale      FAILED_PRECONDITION  FENCING_TOKEN_STALE
    ├── LockHeld               ABORTED              LOCK_HELD
    ├── LockLost               FAILED_PRECONDITION  LOCK_LOST
    ├── SessionCorrupt         DATA_LOSS            SESSION_CORRUPT
    ├── StoreUnavailable       UNAVAILABLE          STORE_UNAVAILABLE
    ├── ShuttingDown           UNAVAILABLE          SHUTTING_DOWN
    ├── DeadlineExceeded       DEADLINE_EXCEEDED    DEADLINE_EXCEEDED
    └── Internal               INTERNAL             INTERNAL
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

DOMAIN = "tggod.session.v1.SessionService"


class ServiceError(Exception):
    """A failure with a stable reason, reported to the caller as a gRPC status."""

    def __init__(
        self,
        code: grpc.StatusCode,
        reason: str,
        message: str,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.metadata = dict(metadata or {})

    def details(self) -> list[any_pb2.Any]:
        info = any_pb2.Any()
        info.Pack(
            error_details_pb2.ErrorInfo(reason=self.reason, domain=DOMAIN, metadata=self.metadata)
        )
        return [info]

    def to_status(self) -> grpc.Status:
        status = status_pb2.Status(
            code=getattr(code_pb2, self.code.name),
            message=self.message,
            details=self.details(),
        )
        result: grpc.Status = rpc_status.to_status(status)
        return result


class InvalidArgument(ServiceError):
    """A request field is malformed or out of bounds."""

    def __init__(self, violations: Sequence[tuple[str, str]]) -> None:
        fields = ", ".join(field for field, _ in violations)
        super().__init__(
            grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT", f"invalid request: {fields}"
        )
        self.violations = list(violations)

    def details(self) -> list[any_pb2.Any]:
        bad_request = any_pb2.Any()
        bad_request.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                    for f, d in self.violations
                ]
            )
        )
        return [*super().details(), bad_request]


class SessionNotFound(ServiceError):
    def __init__(self) -> None:
        super().__init__(grpc.StatusCode.NOT_FOUND, "SESSION_NOT_FOUND", "session not found")


class SessionAlreadyExists(ServiceError):
    def __init__(self) -> None:
        super().__init__(
            grpc.StatusCode.ALREADY_EXISTS, "SESSION_ALREADY_EXISTS", "session already exists"
        )


class VersionMismatch(ServiceError):
    def __init__(self, current: int) -> None:
        super().__init__(
            grpc.StatusCode.ABORTED,
            "VERSION_MISMATCH",
            f"expected_version does not match the current version {current}",
            {"current_version": str(current)},
        )


class FencingTokenStale(ServiceError):
    def __init__(self) -> None:
        super().__init__(
            grpc.StatusCode.FAILED_PRECONDITION,
            "FENCING_TOKEN_STALE",
            "fencing_token is not the newest issued for this session",
        )


class LockHeld(ServiceError):
    def __init__(self) -> None:
        super().__init__(
            grpc.StatusCode.ABORTED, "LOCK_HELD", "the lock is held and was not released in time"
        )


class LockLost(ServiceError):
    def __init__(self) -> None:
        super().__init__(
            grpc.StatusCode.FAILED_PRECONDITION, "LOCK_LOST", "the lease expired or was taken over"
        )


class SessionCorrupt(ServiceError):
    def __init__(self) -> None:
        super().__init__(
            grpc.StatusCode.DATA_LOSS, "SESSION_CORRUPT", "the stored session failed authentication"
        )


class StoreUnavailable(ServiceError):
    def __init__(self) -> None:
        super().__init__(
            grpc.StatusCode.UNAVAILABLE, "STORE_UNAVAILABLE", "the session store is unreachable"
        )


class ShuttingDown(ServiceError):
    def __init__(self) -> None:
        super().__init__(
            grpc.StatusCode.UNAVAILABLE, "SHUTTING_DOWN", "the server is shutting down"
        )


class DeadlineExceeded(ServiceError):
    def __init__(self) -> None:
        super().__init__(
            grpc.StatusCode.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED", "the call's deadline passed"
        )


class Internal(ServiceError):
    def __init__(self) -> None:
        super().__init__(grpc.StatusCode.INTERNAL, "INTERNAL", "internal error")
