"""The Python client and the backend's drop-in function, against a real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from tests.thumbnail.conftest import decode_image, eventually
from tggod.thumbnail.v1 import thumbnail_service_pb2 as pb
from thumbnail_service.client import (
    ThumbnailClient,
    ThumbnailError,
    agenerate_video_thumbnail,
    generate_video_thumbnail,
)
from thumbnail_service.server import RunningServer


def _target(server: RunningServer) -> str:
    return f"dns:///127.0.0.1:{server.port}"


async def test_generate_from_every_kind_of_source(
    thumbnail_server: RunningServer, sample_videos: dict[str, Path]
) -> None:
    video = sample_videos["mkv"]

    async def chunks() -> AsyncIterator[bytes]:
        data = video.read_bytes()
        for offset in range(0, len(data), 10_000):
            yield data[offset : offset + 10_000]
            await asyncio.sleep(0)

    async with ThumbnailClient(_target(thumbnail_server), chunk_bytes=8192) as client:
        results = [
            await client.generate(video),
            await client.generate(str(video)),
            await client.generate(video.read_bytes()),
            await client.generate(chunks()),
            await client.generate_from_media_path(video.name),
        ]
        for thumbnail in results:
            assert thumbnail.metadata.mime_type == "image/jpeg"
            assert len(thumbnail.data) == thumbnail.metadata.size_bytes
            assert (decode_image(thumbnail.data).width, thumbnail.metadata.height) == (240, 180)
        webp = await client.generate(
            video,
            box_width=640,
            box_height=640,
            format=pb.IMAGE_FORMAT_WEBP,
            fit_mode=pb.FIT_MODE_COVER,
            position_offset=1.5,
            deadline_seconds=20,
        )
        assert (webp.metadata.width, webp.metadata.height, webp.metadata.mime_type) == (
            640,
            640,
            "image/webp",
        )
        assert webp.metadata.frame_time.ToNanoseconds() <= 1.5e9


async def test_probe_and_errors(
    thumbnail_server: RunningServer, sample_videos: dict[str, Path]
) -> None:
    async with ThumbnailClient(_target(thumbnail_server)) as client:
        uploaded = await client.probe(sample_videos["portrait"])
        shared = await client.probe(media_path=sample_videos["portrait"].name)
        assert uploaded.display_height == shared.display_height == 640
        with pytest.raises(ThumbnailError) as caught:
            await client.generate(b"definitely not a video" * 100)
        assert (caught.value.code, caught.value.reason) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "NOT_A_VIDEO",
        )
        with pytest.raises(ThumbnailError) as missing:
            await client.generate_from_media_path("nope.mp4")
        assert missing.value.reason == "MEDIA_NOT_FOUND"


async def test_drop_in_writes_the_file_atomically(
    thumbnail_server: RunningServer,
    sample_videos: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("THUMBNAIL_SERVICE_ADDR", _target(thumbnail_server))
    out = tmp_path / "thumbs" / "clip.jpg"
    out.parent.mkdir()
    # A blocking call, as the backend makes it (on a worker thread: the server shares this loop).
    assert await asyncio.to_thread(
        generate_video_thumbnail, str(sample_videos["portrait"]), str(out)
    )
    image = decode_image(out.read_bytes())
    assert (image.codec, image.width, image.height) == ("mjpeg", 101, 180)
    assert [p.name for p in out.parent.iterdir()] == ["clip.jpg"]

    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\0" * 5000)
    assert not await agenerate_video_thumbnail(str(bad), str(tmp_path / "thumbs" / "bad.jpg"))
    assert not await agenerate_video_thumbnail(
        str(tmp_path / "missing.mp4"), str(tmp_path / "x.jpg")
    )
    assert [p.name for p in out.parent.iterdir()] == ["clip.jpg"]


async def test_drop_in_uses_the_shared_volume_when_configured(
    thumbnail_server: RunningServer,
    media_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("THUMBNAIL_SERVICE_ADDR", _target(thumbnail_server))
    monkeypatch.setenv("THUMBNAIL_CLIENT_MEDIA_ROOT", str(media_root))
    out = tmp_path / "t.jpg"
    assert await agenerate_video_thumbnail(str(media_root / "sample.mov"), str(out))
    assert decode_image(out.read_bytes()).width == 240
    # Nothing was uploaded: the server's spool stayed empty throughout.
    assert list(thumbnail_server.spool_dir.iterdir()) == []


def test_drop_in_returns_false_when_the_service_is_down(
    tmp_path: Path, sample_videos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers.redis import free_port

    monkeypatch.setenv("THUMBNAIL_SERVICE_ADDR", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("THUMBNAIL_CLIENT_TIMEOUT_SECONDS", "2")
    assert not generate_video_thumbnail(str(sample_videos["mp4"]), str(tmp_path / "t.jpg"))
    assert not (tmp_path / "t.jpg").exists()


async def test_drop_in_returns_false_for_any_bad_video_path(
    thumbnail_server: RunningServer,
    media_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("THUMBNAIL_SERVICE_ADDR", _target(thumbnail_server))
    loop = tmp_path / "loop.mp4"
    loop.symlink_to(loop)
    bad_paths = ["clip\0.mp4", str(tmp_path), str(loop), str(tmp_path / "\udcff.mp4")]
    out = tmp_path / "t.jpg"
    for root in (None, str(tmp_path)):
        if root is not None:
            # Paths under the shared root go as media_path: a name protobuf cannot carry.
            monkeypatch.setenv("THUMBNAIL_CLIENT_MEDIA_ROOT", root)
        for bad in bad_paths:
            assert not await agenerate_video_thumbnail(bad, str(out)), (root, bad)
    assert not out.exists()


async def test_a_failing_upload_source_raises_its_own_error(
    thumbnail_server: RunningServer, tmp_path: Path
) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"\0" * 1000
        raise ConnectionResetError("the source went away")

    async with ThumbnailClient(_target(thumbnail_server)) as client:
        # Not a bare CancelledError, which would look like the caller's task being cancelled.
        with pytest.raises(ConnectionResetError, match="went away"):
            await client.generate(broken())
        with pytest.raises(IsADirectoryError):
            await client.probe(tmp_path)
    assert await eventually(lambda: list(thumbnail_server.spool_dir.iterdir()) == [])
