"""ThumbnailService handlers: translate protobuf to domain calls and domain errors to statuses."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Never, TypeVar

import grpc
from google.protobuf.message import DecodeError

from tggod.thumbnail.v1 import thumbnail_service_pb2 as pb
from tggod.thumbnail.v1 import thumbnail_service_pb2_grpc as pb_grpc
from thumbnail_service import convert, metrics
from thumbnail_service.config import Settings
from thumbnail_service.errors import MediaError, ServiceError
from thumbnail_service.limits import Admission
from thumbnail_service.media import resolve_media_path
from thumbnail_service.spool import Spool
from thumbnail_service.thumbnailer import Thumbnailer

log = logging.getLogger(__name__)

RESPONSE_CHUNK_BYTES = 64 * 1024
# Initial metadata that accepts an upload header; see UploadSource in the proto.
UPLOAD_READY_KEY = "tggod-upload"
UPLOAD_READY_VALUE = "ready"
Request = TypeVar("Request", pb.GenerateThumbnailRequest, pb.ProbeVideoRequest)


def _stream_error(message: str) -> MediaError:
    return MediaError("INVALID_STREAM", message)


async def _next(requests: AsyncIterator[Request], idle_seconds: float) -> Request | None:
    """The next request message, or None at the half-close.

    Every admitted call holds a place in the queue, so a client that stops
    sending (mid-upload, or never half-closing after a media_path header)
    must not keep it forever: a wait as long as a whole decode may take
    (the processing timeout) ends the call.
    """
    try:
        async with asyncio.timeout(idle_seconds):
            return await anext(requests, None)
    except TimeoutError:
        raise MediaError(
            "PROCESSING_TIMEOUT", f"no request message arrived for {idle_seconds:g} s"
        ) from None


async def _chunks(requests: AsyncIterator[Request], idle_seconds: float) -> AsyncIterator[bytes]:
    while (request := await _next(requests, idle_seconds)) is not None:
        part = request.WhichOneof("part")
        if part != "chunk":
            raise _stream_error("after the header, every message must be a chunk")
        # Each read of a bytes field copies it: read a multi-MiB chunk once.
        chunk = request.chunk
        metrics.UPLOAD_BYTES.inc(len(chunk))
        yield chunk


class ThumbnailServicer(pb_grpc.ThumbnailServiceServicer):
    def __init__(
        self, settings: Settings, thumbnailer: Thumbnailer, admission: Admission, spool: Spool
    ) -> None:
        self._settings = settings
        self._thumbnailer = thumbnailer
        self._admission = admission
        self._spool = spool
        self.closing = False

    @contextlib.asynccontextmanager
    async def _source(
        self,
        source: pb.VideoSource,
        requests: AsyncIterator[Request],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[tuple[Path, int]]:
        kind = source.WhichOneof("kind")
        if kind == "media_path":
            path, size = resolve_media_path(self._settings.media_root, source.media_path)
            if await _next(requests, self._settings.processing_timeout_seconds) is not None:
                raise _stream_error("a media_path request carries no chunks")
            yield path, size
        elif kind == "upload":
            self._spool.check_declared(source.upload.size_bytes)
            # The go-ahead: options, load and the declared size are all accepted. A client that
            # waits for it before streaming never races a refusal (gRPC can report a write that
            # lost that race as INTERNAL and drop the real status).
            await context.send_initial_metadata(((UPLOAD_READY_KEY, UPLOAD_READY_VALUE),))
            chunks = _chunks(requests, self._settings.processing_timeout_seconds)
            async with self._spool.receive(chunks, source.upload.size_bytes) as spooled:
                yield spooled
        else:
            raise _stream_error("the header names no source")

    async def _header(self, requests: AsyncIterator[Request]) -> Request:
        if self.closing:
            raise MediaError("SHUTTING_DOWN", "the server is shutting down; retry elsewhere")
        first = await anext(requests, None)
        if first is None or first.WhichOneof("part") != "header":
            raise _stream_error("the first message must be a header")
        return first

    async def _fail(self, context: grpc.aio.ServicerContext[Any, Any], error: Exception) -> Never:
        if isinstance(error, DecodeError):
            # A malformed request message (corrupt bytes, a path that is not
            # UTF-8) is the caller's fault, not an INTERNAL server fault.
            error = _stream_error("a request message could not be parsed")
        if isinstance(error, MediaError):
            error = ServiceError.from_media(error)
        if not isinstance(error, ServiceError):
            log.exception("unexpected failure", exc_info=error)
            error = ServiceError.of("INTERNAL", "internal error; see the server log")
        metrics.REJECTIONS.labels(error.reason).inc()
        log.info("request refused", extra={"reason": error.reason, "detail": error.message})
        status = error.to_status()
        await context.abort(status.code, status.details, status.trailing_metadata)

    async def GenerateThumbnail(
        self,
        request_iterator: AsyncIterator[pb.GenerateThumbnailRequest],
        context: grpc.aio.ServicerContext[
            pb.GenerateThumbnailRequest, pb.GenerateThumbnailResponse
        ],
    ) -> AsyncIterator[pb.GenerateThumbnailResponse]:
        started = time.perf_counter()
        try:
            header = (await self._header(request_iterator)).header
            spec, engine = convert.spec_from_options(header.options, self._settings.max_box_size)
            with self._admission.admit():
                async with (
                    self._source(header.source, request_iterator, context) as (path, size),
                    self._admission.slot(),
                ):
                    thumbnail = await self._thumbnailer.render(
                        path, size, spec, engine, context.time_remaining()
                    )
        except Exception as error:  # every failure becomes a status
            await self._fail(context, error)
        log.info(
            "thumbnail made",
            extra={
                "engine": thumbnail.engine,
                "fallback": thumbnail.fallback_used,
                "bytes": len(thumbnail.data),
                "seconds": round(time.perf_counter() - started, 4),
            },
        )
        yield pb.GenerateThumbnailResponse(metadata=convert.thumbnail_metadata(thumbnail))
        for offset in range(0, len(thumbnail.data), RESPONSE_CHUNK_BYTES):
            yield pb.GenerateThumbnailResponse(
                chunk=thumbnail.data[offset : offset + RESPONSE_CHUNK_BYTES]
            )

    async def ProbeVideo(
        self,
        request_iterator: AsyncIterator[pb.ProbeVideoRequest],
        context: grpc.aio.ServicerContext[pb.ProbeVideoRequest, pb.ProbeVideoResponse],
    ) -> pb.ProbeVideoResponse:
        try:
            header = (await self._header(request_iterator)).header
            with self._admission.admit():
                async with (
                    self._source(header.source, request_iterator, context) as (path, size),
                    self._admission.slot(),
                ):
                    info = await self._thumbnailer.probe(path, size, context.time_remaining())
        except Exception as error:  # every failure becomes a status
            await self._fail(context, error)
        return pb.ProbeVideoResponse(video=convert.video_metadata(info))
