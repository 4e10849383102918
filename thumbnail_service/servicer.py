"""ThumbnailService handlers: translate protobuf to domain calls and domain errors to statuses."""

from __future__ import annotations

from tggod.thumbnail.v1 import thumbnail_service_pb2_grpc as pb_grpc


class ThumbnailServicer(pb_grpc.ThumbnailServiceServicer):
    """Business RPCs answer UNIMPLEMENTED until the engines land (issue 5)."""
