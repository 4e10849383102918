"""Errors of the thumbnail service.

Engines and helpers raise ``MediaError`` (a plain, picklable reason and
message, so it crosses the worker-process boundary intact). The servicer turns
every failure into a ``ServiceError`` and from there into a
``google.rpc.Status`` with exactly one ``ErrorInfo``::

    Exception
    ├── MediaError             a reason from ErrorReason and a safe message
    └── ServiceError           gRPC code + reason + message
        └── InvalidOptions     INVALID_ARGUMENT / INVALID_OPTIONS, with BadRequest violations

Messages never quote file contents or decoder output: a hostile file must not
be able to echo bytes (say, from ``/etc/passwd``) back to the caller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

DOMAIN = "tggod.thumbnail.v1.ThumbnailService"

REASON_CODES: Mapping[str, grpc.StatusCode] = {
    "INVALID_OPTIONS": grpc.StatusCode.INVALID_ARGUMENT,
    "INVALID_STREAM": grpc.StatusCode.INVALID_ARGUMENT,
    "NOT_A_VIDEO": grpc.StatusCode.INVALID_ARGUMENT,
    "FORMAT_BLOCKED": grpc.StatusCode.INVALID_ARGUMENT,
    "PATH_REJECTED": grpc.StatusCode.INVALID_ARGUMENT,
    "MEDIA_NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "MEDIA_ROOT_DISABLED": grpc.StatusCode.FAILED_PRECONDITION,
    "UPLOAD_TOO_LARGE": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "RESOLUTION_TOO_LARGE": grpc.StatusCode.INVALID_ARGUMENT,
    "OVERLOADED": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "PROCESSING_TIMEOUT": grpc.StatusCode.DEADLINE_EXCEEDED,
    "OUTPUT_TOO_LARGE": grpc.StatusCode.INVALID_ARGUMENT,
    "SHUTTING_DOWN": grpc.StatusCode.UNAVAILABLE,
    "INTERNAL": grpc.StatusCode.INTERNAL,
    "UNAUTHENTICATED": grpc.StatusCode.UNAUTHENTICATED,
}


class MediaError(Exception):
    """The input or its processing failed for a stable ``ErrorReason`` name."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(reason, message)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


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

    @classmethod
    def of(cls, reason: str, message: str) -> ServiceError:
        return cls(REASON_CODES[reason], reason, message)

    @classmethod
    def from_media(cls, error: MediaError) -> ServiceError:
        return cls.of(error.reason, error.message)

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


class InvalidOptions(ServiceError):
    """One or more request options are malformed or out of bounds."""

    def __init__(self, violations: Sequence[tuple[str, str]]) -> None:
        fields = ", ".join(field for field, _ in violations)
        super().__init__(
            grpc.StatusCode.INVALID_ARGUMENT, "INVALID_OPTIONS", f"invalid options: {fields}"
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
