"""Portrait, black intro and anamorphic samples: the picture a person would expect."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.thumbnail.conftest import (
    ENGINES,
    CustomServer,
    decode_image,
    generate,
    gray_pixels,
    ok,
)
from tggod.thumbnail.v1 import thumbnail_service_pb2 as pb
from tggod.thumbnail.v1 import thumbnail_service_pb2_grpc as pb_grpc

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind", ["upload", "media_path"])
async def test_portrait_stays_portrait(
    shared: CustomServer, sample_videos: dict[str, Path], engine: str, kind: str
) -> None:
    path = sample_videos["portrait"]
    source = {"upload": path.read_bytes()} if kind == "upload" else {"media_path": path.name}
    meta = ok(await generate(shared.channel, **source, engine=ENGINES[engine])).metadata
    assert (meta.width, meta.height) == (101, 180)
    assert (meta.video.width, meta.video.height) == (640, 360)  # stored landscape
    assert (meta.video.display_width, meta.video.display_height) == (360, 640)
    assert meta.video.rotation_degrees in (90, 270)


@pytest.mark.parametrize("engine", ENGINES)
async def test_black_intro_never_gives_a_black_thumbnail(shared: CustomServer, engine: str) -> None:
    # 1/3 of the clip falls inside its two black seconds.
    result = ok(
        await generate(shared.channel, media_path="black_intro.mp4", engine=ENGINES[engine])
    )
    assert not result.metadata.blank
    assert result.metadata.blank_frames_skipped >= 1
    assert result.metadata.frame_time.ToNanoseconds() / 1e9 >= 2.0
    image = decode_image(result.data)
    assert image.mean_luma >= 16
    assert image.stddev_luma >= 6

    allowed = ok(
        await generate(
            shared.channel,
            media_path="black_intro.mp4",
            engine=ENGINES[engine],
            allow_blank_frame=True,
        )
    )
    assert allowed.metadata.blank
    assert allowed.metadata.blank_frames_skipped == 0
    assert decode_image(allowed.data).mean_luma < 16


@pytest.mark.parametrize("engine", ENGINES)
async def test_anamorphic_comes_out_with_its_display_aspect(
    shared: CustomServer, engine: str
) -> None:
    result = ok(await generate(shared.channel, media_path="anamorphic.mp4", engine=ENGINES[engine]))
    meta = result.metadata
    assert (meta.video.width, meta.video.height) == (720, 576)
    assert (meta.video.sample_aspect_numerator, meta.video.sample_aspect_denominator) == (64, 45)
    assert (meta.video.display_width, meta.video.display_height) == (1024, 576)
    assert (meta.width, meta.height) == (320, 180)  # 16:9, not the 5:4 of the stored frame
    image = decode_image(result.data)
    assert (image.width, image.height) == (320, 180)


async def test_probe_reports_display_geometry(
    shared: CustomServer, sample_videos: dict[str, Path]
) -> None:
    stub = pb_grpc.ThumbnailServiceStub(shared.channel)

    async def probe(name: str) -> pb.VideoMetadata:
        async def requests():  # type: ignore[no-untyped-def]
            yield pb.ProbeVideoRequest(
                header=pb.ProbeVideoHeader(source=pb.VideoSource(media_path=name))
            )

        return (await stub.ProbeVideo(requests(), timeout=30)).video

    portrait = await probe("portrait.mp4")
    assert (portrait.display_width, portrait.display_height) == (360, 640)
    assert portrait.container == "mov,mp4,m4a,3gp,3g2,mj2"
    assert portrait.video_codec == "h264"
    mp4 = await probe("sample.mp4")
    assert mp4.has_audio
    assert mp4.frame_rate == pytest.approx(25)
    assert mp4.duration.ToNanoseconds() / 1e9 == pytest.approx(3.0, abs=0.1)
    mkv = await probe("sample.mkv")
    assert (mkv.container, mkv.video_codec, mkv.has_audio) == ("matroska,webm", "hevc", False)


@pytest.fixture(scope="module")
def autorotated(sample_videos: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The portrait sample's first frame as ffmpeg's own autorotate shows it, at 101x180."""
    reference = tmp_path_factory.mktemp("rotation") / "reference.png"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(sample_videos["portrait"]),
         "-frames:v", "1", "-vf", "scale=101:180", str(reference)],
        check=True,
    )  # fmt: skip
    return reference.read_bytes()


@pytest.mark.parametrize("engine", ENGINES)
async def test_rotation_turns_the_same_way_as_ffmpeg_autorotate(
    shared: CustomServer, autorotated: bytes, engine: str
) -> None:
    ours = ok(
        await generate(
            shared.channel,
            media_path="portrait.mp4",
            engine=ENGINES[engine],
            format=pb.IMAGE_FORMAT_PNG,
            position_fraction=0.0,
        )
    )
    expected, actual = gray_pixels(autorotated), gray_pixels(ours.data)
    assert len(expected) == len(actual)
    same = sum(abs(a - b) for a, b in zip(expected, actual, strict=True)) / len(actual)
    upside_down = sum(abs(a - b) for a, b in zip(expected, reversed(actual), strict=True)) / len(
        actual
    )
    assert same < 12
    assert same < upside_down / 2
