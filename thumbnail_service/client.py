"""Python client of the thumbnail service, for the backend.

``ThumbnailClient`` is the async API: it streams uploads in chunks, applies a
deadline to every call, and balances over every address behind a ``dns:///``
target (round robin; the server's max connection age makes it re-resolve).
``generate_video_thumbnail`` is a drop-in for the backend's old function of
the same name and signature: configured from the environment, it writes the
image atomically and returns whether it succeeded, never raising for a bad
video.

Environment of the drop-in: ``THUMBNAIL_SERVICE_ADDR`` (default
``dns:///localhost:50052``), ``THUMBNAIL_CLIENT_TIMEOUT_SECONDS`` (default 30),
``THUMBNAIL_CLIENT_MEDIA_ROOT`` (if set, files under it are sent as a
``media_path`` relative to it instead of being uploaded).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tggod.thumbnail.v1 import thumbnail_service_pb2 as pb
from tggod.thumbnail.v1 import thumbnail_service_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

DEFAULT_ADDR = "dns:///localhost:50052"
CHUNK_BYTES = 1024 * 1024
SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
CHANNEL_OPTIONS = [("grpc.service_config", SERVICE_CONFIG), ("grpc.enable_retries", 0)]

Video = str | os.PathLike[str] | bytes | AsyncIterable[bytes]


@dataclass(frozen=True, slots=True)
class Thumbnail:
    """The image bytes and what the server says about them."""

    data: bytes
    metadata: pb.ThumbnailMetadata


class ThumbnailError(Exception):
    """A call failed; ``reason`` is the server's ErrorInfo reason (or the gRPC code name)."""

    def __init__(self, code: grpc.StatusCode, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message

    @classmethod
    def from_rpc(cls, error: grpc.RpcError) -> ThumbnailError:
        code: grpc.StatusCode = error.code()
        details: str = error.details() or ""
        reason = code.name
        status = rpc_status.from_call(error)
        for detail in status.details if status is not None else ():
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason = info.reason
        return cls(code, reason, details)


def options_message(**options: Any) -> pb.ThumbnailOptions:
    """``ThumbnailOptions`` from keyword arguments; ``position_offset`` may be float seconds."""
    offset = options.pop("position_offset", None)
    message = pb.ThumbnailOptions(**options)
    if offset is not None:
        if isinstance(offset, int | float):
            message.position_offset.FromNanoseconds(round(offset * 1e9))
        else:
            message.position_offset.CopyFrom(offset)
    return message


def _chunk_bytes(data: bytes, size: int) -> Iterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


async def _file_chunks(path: Path, size: int) -> AsyncIterator[bytes]:
    with await asyncio.to_thread(path.open, "rb") as handle:
        while chunk := await asyncio.to_thread(handle.read, size):
            yield chunk


Request = TypeVar("Request", pb.GenerateThumbnailRequest, pb.ProbeVideoRequest)


class _Upload:
    """One call's request stream: the header, then (after the go-ahead) the caller's chunks.

    It also remembers the error that broke the caller's chunks: grpc.aio answers a request
    iterator that raises by cancelling the call, so the caller would get a bare
    ``CancelledError`` for an unreadable file or a failing iterator of its own; ``errors()``
    puts the real error back and turns RPC failures into ``ThumbnailError``.
    """

    def __init__(self, chunks: AsyncIterable[bytes] | None) -> None:
        self._chunks = chunks
        self._error: Exception | None = None
        self.call: grpc.aio.Call | None = None

    async def requests(
        self, header: Request, chunk: Callable[[bytes], Request]
    ) -> AsyncIterator[Request]:
        yield header
        if self._chunks is None or self.call is None or not await _go_ahead(self.call):
            return
        try:
            async for data in self._chunks:
                yield chunk(data)
        except Exception as error:
            self._error = error
            raise

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        try:
            yield
        except grpc.aio.AioRpcError as error:
            if self._error is not None:
                raise self._error from None
            raise ThumbnailError.from_rpc(error) from None
        except asyncio.CancelledError:
            if self._error is not None:
                raise self._error from None
            raise


class ThumbnailClient:
    """Async client; use as ``async with ThumbnailClient(addr) as client``."""

    def __init__(
        self,
        target: str = DEFAULT_ADDR,
        *,
        timeout: float = 30.0,
        credentials: grpc.ChannelCredentials | None = None,
        token: str | None = None,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        """``credentials`` (e.g. ``grpc.ssl_channel_credentials(...)``) switch TLS on."""
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        else:
            self._channel = grpc.aio.secure_channel(target, credentials, options=CHANNEL_OPTIONS)
        self._stub = pb_grpc.ThumbnailServiceStub(self._channel)
        self._timeout = timeout
        # Call metadata, not call credentials: those demand TLS, and in a mesh the channel is
        # often plain while the mesh encrypts.
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None
        self._chunk_bytes = chunk_bytes

    async def __aenter__(self) -> ThumbnailClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    def _upload(self, video: Video) -> tuple[int, AsyncIterable[bytes]]:
        if isinstance(video, bytes):
            data = video

            async def from_bytes() -> AsyncIterator[bytes]:
                for chunk in _chunk_bytes(data, self._chunk_bytes):
                    yield chunk

            return len(data), from_bytes()
        if isinstance(video, str | os.PathLike):
            path = Path(video)
            return path.stat().st_size, _file_chunks(path, self._chunk_bytes)
        return 0, video

    async def _generate(
        self,
        source: pb.VideoSource,
        chunks: AsyncIterable[bytes] | None,
        deadline_seconds: float | None,
        options: Any,
    ) -> Thumbnail:
        header = pb.GenerateThumbnailHeader(source=source, options=options_message(**options))

        upload = _Upload(chunks)
        metadata: pb.ThumbnailMetadata | None = None
        image = bytearray()
        call = self._stub.GenerateThumbnail(
            upload.requests(
                pb.GenerateThumbnailRequest(header=header),
                lambda data: pb.GenerateThumbnailRequest(chunk=data),
            ),
            timeout=deadline_seconds or self._timeout,
            metadata=self._metadata,
        )
        upload.call = call
        with upload.errors():
            async for reply in call:
                if reply.WhichOneof("part") == "metadata":
                    metadata = reply.metadata
                else:
                    image += reply.chunk
        if metadata is None or len(image) != metadata.size_bytes:
            raise ThumbnailError(grpc.StatusCode.INTERNAL, "INCOMPLETE_REPLY", "truncated reply")
        return Thumbnail(bytes(image), metadata)

    async def generate(
        self, video: Video, *, deadline_seconds: float | None = None, **options: Any
    ) -> Thumbnail:
        """Upload ``video`` (a path, bytes, or an async iterator of chunks) and make a thumbnail.

        ``options`` are ``ThumbnailOptions`` fields, e.g. ``box_width=640,
        fit_mode=pb.FIT_MODE_COVER, format=pb.IMAGE_FORMAT_WEBP, max_bytes=200_000``.
        """
        size, chunks = self._upload(video)
        source = pb.VideoSource(upload=pb.UploadSource(size_bytes=size))
        return await self._generate(source, chunks, deadline_seconds, options)

    async def generate_from_media_path(
        self, media_path: str, *, deadline_seconds: float | None = None, **options: Any
    ) -> Thumbnail:
        """A thumbnail of a file on the shared media volume, named relative to its root."""
        return await self._generate(
            pb.VideoSource(media_path=media_path), None, deadline_seconds, options
        )

    async def probe(
        self,
        video: Video | None = None,
        *,
        media_path: str | None = None,
        deadline_seconds: float | None = None,
    ) -> pb.VideoMetadata:
        """The video's metadata, from an upload or (``media_path=``) the media volume."""
        chunks: AsyncIterable[bytes] | None = None
        if media_path is not None:
            source = pb.VideoSource(media_path=media_path)
        elif video is not None:
            size, chunks = self._upload(video)
            source = pb.VideoSource(upload=pb.UploadSource(size_bytes=size))
        else:
            raise ValueError("give a video or a media_path")

        upload = _Upload(chunks)
        call = self._stub.ProbeVideo(
            upload.requests(
                pb.ProbeVideoRequest(header=pb.ProbeVideoHeader(source=source)),
                lambda data: pb.ProbeVideoRequest(chunk=data),
            ),
            timeout=deadline_seconds or self._timeout,
            metadata=self._metadata,
        )
        upload.call = call
        with upload.errors():
            reply = await call
        return reply.video


# The server's go-ahead for an upload (initial metadata; the contract is in UploadSource).
UPLOAD_READY = ("tggod-upload", "ready")


async def _go_ahead(call: grpc.aio.Call) -> bool:
    """Wait for the server to accept the header (initial metadata) before streaming the upload.

    A refusal (bad options, overload, declared size too large) then ends the call before any
    chunk is written, so its real status reaches the caller instead of a failed write.
    """
    metadata = await call.initial_metadata()
    # A refusal is a trailers-only response: its (empty) initial metadata can arrive before the
    # call reports done(), so only the explicit go-ahead counts.
    return UPLOAD_READY in tuple(metadata or ())


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _under_media_root(video_path: str, root: str | None) -> str | None:
    """``video_path`` relative to the shared media root, or None to upload it."""
    if not root:
        return None
    video, base = Path(video_path).resolve(), Path(root).resolve()
    return video.relative_to(base).as_posix() if video.is_relative_to(base) else None


async def agenerate_video_thumbnail(video_path: str, thumbnail_path: str) -> bool:
    """Async form of ``generate_video_thumbnail``."""
    addr = os.environ.get("THUMBNAIL_SERVICE_ADDR", DEFAULT_ADDR)
    try:
        timeout = float(os.environ.get("THUMBNAIL_CLIENT_TIMEOUT_SECONDS", "30"))
        media_path = _under_media_root(video_path, os.environ.get("THUMBNAIL_CLIENT_MEDIA_ROOT"))
        token = os.environ.get("THUMBNAIL_SERVICE_TOKEN") or None
        async with ThumbnailClient(addr, timeout=timeout, token=token) as client:
            if media_path is not None:
                thumbnail = await client.generate_from_media_path(media_path)
            else:
                thumbnail = await client.generate(video_path)
        await asyncio.to_thread(_write_atomically, Path(thumbnail_path), thumbnail.data)
    # Paths alone raise ValueError (a NUL byte; a name protobuf cannot carry)
    # and RuntimeError (a symlink loop): the caller only ever gets a bool.
    except (ThumbnailError, OSError, ValueError, RuntimeError) as error:
        log.warning("thumbnail failed: %s", error)
        return False
    return True


def generate_video_thumbnail(video_path: str, thumbnail_path: str) -> bool:
    """Write a JPEG thumbnail of ``video_path`` to ``thumbnail_path``; True on success.

    Blocking, like the function it replaces; from async code prefer
    ``agenerate_video_thumbnail``. Called on a thread that runs an event loop,
    it does its work on a helper thread rather than fail.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(agenerate_video_thumbnail(video_path, thumbnail_path))
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(
            asyncio.run, agenerate_video_thumbnail(video_path, thumbnail_path)
        ).result()
