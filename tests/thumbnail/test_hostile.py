"""Hostile inputs and paths: each refused with a clear reason, nothing leaked, server healthy."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from tests.thumbnail.conftest import (
    ENGINES,
    CustomServer,
    decoder_processes,
    failed,
    failure_of,
    generate,
    healthy,
    ok,
    spool_files,
)
from tggod.thumbnail.v1 import thumbnail_service_pb2 as pb
from thumbnail_service import server
from thumbnail_service.config import Settings

pytestmark = pytest.mark.asyncio(loop_scope="module")

BAD_INPUT = grpc.StatusCode.INVALID_ARGUMENT
# name -> (gRPC code, acceptable reasons) for both sources and every engine choice.
EXPECTED = {
    "hls": (BAD_INPUT, {"FORMAT_BLOCKED"}),
    "concat": (BAD_INPUT, {"FORMAT_BLOCKED"}),
    "audio_only": (BAD_INPUT, {"NOT_A_VIDEO"}),
    "truncated_mp4": (BAD_INPUT, {"NOT_A_VIDEO"}),
    "random_bytes": (BAD_INPUT, {"NOT_A_VIDEO", "FORMAT_BLOCKED"}),
    "huge_resolution": (grpc.StatusCode.INVALID_ARGUMENT, {"RESOLUTION_TOO_LARGE"}),
    # Refused by the engines' demuxer allowlist alone (no playlist magic to catch them).
    "png_image": (BAD_INPUT, {"FORMAT_BLOCKED"}),
    "sdp": (BAD_INPUT, {"FORMAT_BLOCKED"}),
}


@pytest.fixture(scope="module")
def hostile_root(
    tmp_path_factory: pytest.TempPathFactory,
    hostile_files: dict[str, Path],
    sample_videos: dict[str, Path],
) -> Path:
    base = tmp_path_factory.mktemp("hostile-media")
    root = base / "root"
    (root / "sub").mkdir(parents=True)
    outside = base / "outside"
    outside.mkdir()
    shutil.copyfile(sample_videos["mp4"], outside / "secret.mp4")
    shutil.copyfile(sample_videos["mp4"], root / "sub" / "good.mp4")
    for name, path in hostile_files.items():
        shutil.copyfile(path, root / f"{name}{path.suffix}")
    (root / "passwd.mp4").symlink_to("/etc/passwd")
    (root / "outside").symlink_to(outside)
    (root / "inside-link.mp4").symlink_to(root / "sub" / "good.mp4")
    (root / "loop").symlink_to(root / "loop")
    os.mkfifo(root / "fifo.mp4")
    return root


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def guarded(
    tmp_path_factory: pytest.TempPathFactory, hostile_root: Path
) -> AsyncIterator[CustomServer]:
    spool = tmp_path_factory.mktemp("hostile-spool")
    running = await server.start(
        Settings.from_env(
            {
                "THUMBNAIL_HOST": "127.0.0.1",
                "THUMBNAIL_PORT": "0",
                "THUMBNAIL_METRICS_PORT": "0",
                "THUMBNAIL_MEDIA_ROOT": str(hostile_root),
                "THUMBNAIL_SPOOL_DIR": str(spool),
            }
        )
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield CustomServer(running, channel, spool, hostile_root)
    finally:
        await running.stop(1.0)


@pytest.mark.parametrize("engine", ["default", "ffmpeg", "pyav"])
@pytest.mark.parametrize("kind", ["upload", "media_path"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_hostile_input_is_refused_cleanly(
    guarded: CustomServer, hostile_files: dict[str, Path], name: str, kind: str, engine: str
) -> None:
    path = hostile_files[name]
    source = (
        {"upload": path.read_bytes()}
        if kind == "upload"
        else {"media_path": f"{name}{path.suffix}"}
    )
    options = {} if engine == "default" else {"engine": ENGINES[engine]}
    failure = failed(await generate(guarded.channel, **source, **options))
    code, reasons = EXPECTED[name]
    assert failure.code == code, failure
    assert failure.reason in reasons, failure
    assert await healthy(guarded.channel)
    assert decoder_processes() == []
    assert spool_files(guarded.spool_root) == []


@pytest.mark.parametrize("kind", ["upload", "media_path"])
async def test_zero_byte_input(guarded: CustomServer, kind: str) -> None:
    if kind == "upload":
        failure = failed(await generate(guarded.channel, upload=b""))
        assert (failure.code, failure.reason) == (BAD_INPUT, "INVALID_STREAM")
    else:
        failure = failed(await generate(guarded.channel, media_path="zero_bytes.mp4"))
        assert (failure.code, failure.reason) == (BAD_INPUT, "NOT_A_VIDEO")


@pytest.mark.parametrize(
    ("media_path", "code", "reason"),
    [
        ("/etc/passwd", BAD_INPUT, "PATH_REJECTED"),
        ("../outside/secret.mp4", BAD_INPUT, "PATH_REJECTED"),
        ("sub/../../outside/secret.mp4", BAD_INPUT, "PATH_REJECTED"),
        ("passwd.mp4", BAD_INPUT, "PATH_REJECTED"),  # symlink to /etc/passwd
        ("outside/secret.mp4", BAD_INPUT, "PATH_REJECTED"),  # directory symlink out of the root
        ("outside/missing.mp4", BAD_INPUT, "PATH_REJECTED"),  # says nothing about outside files
        ("loop", BAD_INPUT, "PATH_REJECTED"),
        ("fifo.mp4", BAD_INPUT, "PATH_REJECTED"),  # not a regular file, and must not block
        ("sub", BAD_INPUT, "PATH_REJECTED"),
        ("", BAD_INPUT, "PATH_REJECTED"),
        ("sub\\..\\..\\x", BAD_INPUT, "PATH_REJECTED"),
        ("a" * 5000, BAD_INPUT, "PATH_REJECTED"),
        ("sub/good.mp4\x00.txt", BAD_INPUT, "PATH_REJECTED"),  # NUL: C would stop reading here
        ("missing.mp4", grpc.StatusCode.NOT_FOUND, "MEDIA_NOT_FOUND"),
        ("sub/missing.mp4", grpc.StatusCode.NOT_FOUND, "MEDIA_NOT_FOUND"),
    ],
)
async def test_media_paths_cannot_escape_the_root(
    guarded: CustomServer, media_path: str, code: grpc.StatusCode, reason: str
) -> None:
    failure = failed(await generate(guarded.channel, media_path=media_path, deadline_seconds=20))
    assert (failure.code, failure.reason) == (code, reason)
    assert "secret" not in failure.message


async def test_links_inside_the_root_are_followed(guarded: CustomServer) -> None:
    for path in ("inside-link.mp4", "sub/good.mp4", "./sub/good.mp4"):
        assert ok(await generate(guarded.channel, media_path=path)).metadata.width == 240
    assert await healthy(guarded.channel)


async def test_media_root_disabled(make_server) -> None:  # type: ignore[no-untyped-def]
    async with make_server(root=None, MEDIA_ROOT="") as custom:
        failure = failed(await generate(custom.channel, media_path="sample.mp4"))
        assert (failure.code, failure.reason) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "MEDIA_ROOT_DISABLED",
        )


async def test_protocol_violations(guarded: CustomServer) -> None:
    stub_call = guarded.channel.stream_stream(
        "/tggod.thumbnail.v1.ThumbnailService/GenerateThumbnail",
        request_serializer=pb.GenerateThumbnailRequest.SerializeToString,
        response_deserializer=pb.GenerateThumbnailResponse.FromString,
    )
    header = pb.GenerateThumbnailRequest(
        header=pb.GenerateThumbnailHeader(source=pb.VideoSource(media_path="sub/good.mp4"))
    )
    upload = pb.GenerateThumbnailRequest(
        header=pb.GenerateThumbnailHeader(
            source=pb.VideoSource(upload=pb.UploadSource(size_bytes=10))
        )
    )
    chunk = pb.GenerateThumbnailRequest(chunk=b"12345")
    cases = {
        "no header first": [chunk],
        "nothing at all": [],
        "chunks after media_path": [header, chunk],
        "second header": [upload, chunk, upload],
        "shorter than declared": [upload, chunk],
        "longer than declared": [upload, chunk, chunk, chunk],
        "no source": [pb.GenerateThumbnailRequest(header=pb.GenerateThumbnailHeader())],
    }
    for case, messages in cases.items():
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in stub_call(iter(messages), timeout=20):
                pass
        assert caught.value.code() == BAD_INPUT, case
        assert "INVALID_STREAM" in str(caught.value.trailing_metadata()), case
    assert spool_files(guarded.spool_root) == []


async def test_unparsable_request_messages_are_invalid_stream(guarded: CustomServer) -> None:
    raw_call = guarded.channel.stream_stream(
        "/tggod.thumbnail.v1.ThumbnailService/GenerateThumbnail",
        request_serializer=bytes,
        response_deserializer=pb.GenerateThumbnailResponse.FromString,
    )
    header = pb.GenerateThumbnailRequest(
        header=pb.GenerateThumbnailHeader(source=pb.VideoSource(media_path="sub/good.mp4"))
    ).SerializeToString()
    cases = {
        "media_path not UTF-8": [header.replace(b"good", b"go\xff\xfe")],
        "corrupt wire format": [b"\xff\xff\xff"],
        "corrupt after the header": [header, b"\x12\xff"],
    }
    for case, messages in cases.items():
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in raw_call(iter(messages), timeout=20):
                pass
        failure = failure_of(caught.value)
        assert (failure.code, failure.reason) == (BAD_INPUT, "INVALID_STREAM"), case
    assert await healthy(guarded.channel)
