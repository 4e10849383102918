"""Fixtures of the thumbnail tests: call helpers, hostile files, slow clips, custom servers."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import struct
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import grpc
import pytest
import pytest_asyncio
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from tggod.thumbnail.v1 import thumbnail_service_pb2 as pb
from tggod.thumbnail.v1 import thumbnail_service_pb2_grpc as pb_grpc
from thumbnail_service import server
from thumbnail_service.config import Settings

ENGINES = {"ffmpeg": pb.ENGINE_FFMPEG, "pyav": pb.ENGINE_PYAV}
# Lines of /etc/passwd: none may ever reach a caller.
PASSWD_MARKERS = ("root:x:0:0", "daemon:x:", "/usr/sbin/nologin")


@dataclass
class Result:
    metadata: pb.ThumbnailMetadata
    data: bytes = field(repr=False)


@dataclass
class Failure:
    code: grpc.StatusCode
    reason: str
    message: str
    violations: list[str]
    raw: str


async def _requests(
    source: pb.VideoSource,
    options: pb.ThumbnailOptions,
    data: bytes | None,
    chunk: int,
    calls: list[grpc.aio.Call],
) -> AsyncIterator[pb.GenerateThumbnailRequest]:
    yield pb.GenerateThumbnailRequest(
        header=pb.GenerateThumbnailHeader(source=source, options=options)
    )
    if data is not None:
        # As the shipped client does: stream only after the server's go-ahead.
        ready = await calls[0].initial_metadata()
        if ("tggod-upload", "ready") not in tuple(ready or ()):
            return
        for offset in range(0, len(data), chunk):
            yield pb.GenerateThumbnailRequest(chunk=data[offset : offset + chunk])


def failure_of(error: grpc.aio.AioRpcError) -> Failure:
    status = rpc_status.from_call(error)
    assert status is not None, "error without google.rpc.Status details"
    infos, violations = [], []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            infos.append(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations += [v.field for v in bad.field_violations]
    assert len(infos) == 1, f"expected exactly one ErrorInfo, got {len(infos)}"
    assert infos[0].domain == "tggod.thumbnail.v1.ThumbnailService"
    return Failure(error.code(), infos[0].reason, error.details() or "", violations, str(status))


async def generate(
    channel: grpc.aio.Channel,
    *,
    upload: bytes | None = None,
    media_path: str | None = None,
    deadline_seconds: float = 60,
    chunk: int = 256 * 1024,
    **options: Any,
) -> Result | Failure:
    """One GenerateThumbnail call through the raw stub: the image, or the error's details."""
    if media_path is not None:
        source = pb.VideoSource(media_path=media_path)
    else:
        assert upload is not None
        source = pb.VideoSource(upload=pb.UploadSource(size_bytes=len(upload)))
    stub = pb_grpc.ThumbnailServiceStub(channel)
    calls: list[grpc.aio.Call] = []
    call = stub.GenerateThumbnail(
        _requests(source, pb.ThumbnailOptions(**options), upload, chunk, calls),
        timeout=deadline_seconds,
    )
    calls.append(call)
    metadata: pb.ThumbnailMetadata | None = None
    data = bytearray()
    try:
        async for reply in call:
            if reply.WhichOneof("part") == "metadata":
                metadata = reply.metadata
            else:
                data += reply.chunk
    except grpc.aio.AioRpcError as error:
        return failure_of(error)
    assert metadata is not None
    assert metadata.size_bytes == len(data)
    return Result(metadata, bytes(data))


def ok(result: Result | Failure) -> Result:
    assert isinstance(result, Result), f"expected an image, got {result}"
    return result


def failed(result: Result | Failure) -> Failure:
    assert isinstance(result, Failure), f"expected an error, got {result}"
    for marker in PASSWD_MARKERS:
        assert marker not in result.raw
    return result


@dataclass
class Decoded:
    codec: str
    width: int
    height: int
    mean_luma: float
    stddev_luma: float


def gray_pixels(data: bytes) -> list[int]:
    """Every luma value of an image, row by row, without the stride padding."""
    with av.open(io.BytesIO(data)) as container:
        frame = next(container.decode(container.streams.video[0])).reformat(format="gray")
        plane = frame.planes[0]
        raw = bytes(plane)
        return [
            b
            for y in range(frame.height)
            for b in raw[y * plane.line_size : y * plane.line_size + frame.width]
        ]


def decode_image(data: bytes) -> Decoded:
    """Decode an image with libav: proof that it is a valid picture, plus its luma spread."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frame = next(container.decode(stream))
        gray = frame.reformat(format="gray")
        plane = gray.planes[0]
        raw = bytes(plane)
        values = [
            raw[y * plane.line_size + x]
            for y in range(0, gray.height, 2)
            for x in range(0, gray.width, 2)
        ]
        mean = sum(values) / len(values)
        var = sum((v - mean) ** 2 for v in values) / len(values)
        return Decoded(stream.codec_context.name, frame.width, frame.height, mean, var**0.5)


async def healthy(channel: grpc.aio.Channel) -> bool:
    reply = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="tggod.thumbnail.v1.ThumbnailService"), timeout=10
    )
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def descendants(pid: int | None = None) -> list[tuple[int, str, str]]:
    """(pid, state, command line) of every live descendant process, read from /proc."""
    root = os.getpid() if pid is None else pid
    parents: dict[int, int] = {}
    info: dict[int, tuple[str, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
        info[int(entry.name)] = (fields[0], cmdline)
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent:
                found.append((child, *info[child]))
                frontier.append(child)
    return found


def decoder_processes() -> list[tuple[int, str, str]]:
    """Live ffmpeg/ffprobe processes started by this test process."""
    return [
        p
        for p in descendants()
        if p[2].split(" ", 1)[0].rsplit("/", 1)[-1] in ("ffmpeg", "ffprobe")
    ]


def zombies() -> list[tuple[int, str, str]]:
    return [p for p in descendants() if p[1] == "Z"]


async def eventually(check: Callable[[], bool], within: float = 10.0) -> bool:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def spool_files(spool_root: Path) -> list[Path]:
    return [p for p in spool_root.rglob("*") if p.is_file()]


def _ffmpeg(*args: str) -> None:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
        check=True,
        timeout=120,
    )


def _huge_avi(path: Path) -> None:
    """A tiny raw-video AVI whose headers declare 12000x12000 (a lying, huge resolution)."""
    small = path.with_suffix(".small.avi")
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=16x16:rate=5:duration=1", "-c:v", "rawvideo",
            "-pix_fmt", "bgr24", str(small))  # fmt: skip
    data = bytearray(small.read_bytes())
    small.unlink()
    avih = data.index(b"avih") + 8
    struct.pack_into("<II", data, avih + 32, 12000, 12000)
    strf = data.index(b"strf") + 8
    struct.pack_into("<ii", data, strf + 4, 12000, 12000)
    path.write_bytes(bytes(data))


@pytest.fixture(scope="session")
def hostile_files(
    tmp_path_factory: pytest.TempPathFactory, sample_videos: dict[str, Path]
) -> dict[str, Path]:
    """Inputs an attacker might send, each expected to be refused cleanly."""
    d = tmp_path_factory.mktemp("hostile")
    files: dict[str, Path] = {}
    files["hls"] = d / "playlist.m3u8"
    files["hls"].write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n"
        "#EXTINF:10.0,\nfile:///etc/passwd\n#EXTINF:10.0,\n../../../../etc/passwd\n#EXT-X-ENDLIST\n"
    )
    files["concat"] = d / "list.txt"
    files["concat"].write_text(
        "ffconcat version 1.0\nfile '/etc/passwd'\nfile 'file:/etc/passwd'\n"
    )
    files["audio_only"] = d / "audio.m4a"
    _ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=1",
        "-c:a",
        "aac",
        str(files["audio_only"]),
    )
    files["zero_bytes"] = d / "empty.mp4"
    files["zero_bytes"].write_bytes(b"")
    files["truncated_mp4"] = d / "truncated.mp4"
    files["truncated_mp4"].write_bytes(sample_videos["mp4"].read_bytes()[:4096])
    files["random_bytes"] = d / "random.bin"
    files["random_bytes"].write_bytes(os.urandom(64 * 1024))
    files["huge_resolution"] = d / "huge.avi"
    _huge_avi(files["huge_resolution"])
    # Formats libavformat would open but the allowlist does not hold: a still
    # image would decode to a thumbnail, an SDP file names network streams.
    files["png_image"] = d / "still.png"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240", "-frames:v", "1", str(files["png_image"]))
    files["sdp"] = d / "stream.sdp"
    files["sdp"].write_text(
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=video 5004 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
    )
    return files


@pytest.fixture(scope="session")
def slow_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 s of 1080p with one keyframe: an exact seek near the end decodes ~700 frames."""
    path = tmp_path_factory.mktemp("slow") / "slow.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=25:duration=30",
            "-c:v", "libx264", "-preset", "ultrafast", "-g", "1000", "-keyint_min", "1000",
            "-sc_threshold", "0", "-pix_fmt", "yuv420p", str(path))  # fmt: skip
    return path


@dataclass
class CustomServer:
    running: server.RunningServer
    channel: grpc.aio.Channel
    spool_root: Path
    media_root: Path


ServerFactory = Callable[..., contextlib.AbstractAsyncContextManager[CustomServer]]


@pytest_asyncio.fixture
async def make_server(tmp_path: Path, media_root: Path) -> AsyncIterator[ServerFactory]:
    """Start a server with extra ``THUMBNAIL_*`` settings: ``make_server(MAX_CONCURRENCY="1")``."""

    @contextlib.asynccontextmanager
    async def factory(root: Path | None = None, **env: str) -> AsyncIterator[CustomServer]:
        spool = Path(tempfile.mkdtemp(prefix="spool-", dir=tmp_path))
        settings = Settings.from_env(
            {
                "THUMBNAIL_HOST": "127.0.0.1",
                "THUMBNAIL_PORT": "0",
                "THUMBNAIL_METRICS_PORT": "0",
                "THUMBNAIL_MEDIA_ROOT": str(root or media_root),
                "THUMBNAIL_SPOOL_DIR": str(spool),
                **{f"THUMBNAIL_{k}": v for k, v in env.items()},
            }
        )
        running = await server.start(settings)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
                yield CustomServer(running, channel, spool, root or media_root)
        finally:
            await running.stop(1.0)

    yield factory


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(
    tmp_path_factory: pytest.TempPathFactory, media_root: Path
) -> AsyncIterator[CustomServer]:
    """One default server for a whole module (its tests must run on the module's loop)."""
    spool = tmp_path_factory.mktemp("spool")
    settings = Settings.from_env(
        {
            "THUMBNAIL_HOST": "127.0.0.1",
            "THUMBNAIL_PORT": "0",
            "THUMBNAIL_METRICS_PORT": "0",
            "THUMBNAIL_MEDIA_ROOT": str(media_root),
            "THUMBNAIL_SPOOL_DIR": str(spool),
        }
    )
    running = await server.start(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield CustomServer(running, channel, spool, media_root)
    finally:
        await running.stop(1.0)
