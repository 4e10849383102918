"""SessionService handlers: translate protobuf to domain calls and domain errors to statuses."""

from __future__ import annotations

from tggod.session.v1 import session_service_pb2_grpc as pb_grpc


class SessionServicer(pb_grpc.SessionServiceServicer):
    """Business RPCs answer UNIMPLEMENTED until the store lands (issue 3)."""
