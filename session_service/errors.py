"""Errors of the session service.

Every failure a caller can see is a ``ServiceError``; the servicer turns it
into a ``google.rpc.Status`` with exactly one ``ErrorInfo``::

    ServiceError
    ├── InvalidArgument        INVALID_ARGUMENT, with BadRequest violations
    └── (any other reason)     the gRPC code given at construction
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
