"""Every sample format, through both sources and both engines: valid, right-sized, not blank."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from google.protobuf import duration_pb2

from tests.thumbnail.conftest import (
    ENGINES,
    CustomServer,
    decode_image,
    failed,
    generate,
    ok,
)
from tggod.thumbnail.v1 import thumbnail_service_pb2 as pb

pytestmark = pytest.mark.asyncio(loop_scope="module")

FORMATS = ("mp4", "mov", "m4v", "mkv", "webm", "avi", "flv", "wmv")
# The samples are 320x240 (4:3): CONTAIN keeps 4:3 inside 320x180, PAD and COVER fill the box.
FIT_SIZES = {
    pb.FIT_MODE_CONTAIN: (240, 180),
    pb.FIT_MODE_PAD: (320, 180),
    pb.FIT_MODE_COVER: (320, 180),
}


def _source(kind: str, path: Path) -> dict[str, object]:
    return {"upload": path.read_bytes()} if kind == "upload" else {"media_path": path.name}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind", ["upload", "media_path"])
@pytest.mark.parametrize("name", FORMATS)
async def test_every_format_source_engine_and_fit(
    shared: CustomServer, sample_videos: dict[str, Path], name: str, kind: str, engine: str
) -> None:
    for fit_mode, size in FIT_SIZES.items():
        result = ok(
            await generate(
                shared.channel,
                **_source(kind, sample_videos[name]),
                engine=ENGINES[engine],
                fit_mode=fit_mode,
            )
        )
        meta = result.metadata
        assert meta.engine == ENGINES[engine]
        assert not meta.fallback_used
        assert (meta.width, meta.height) == size
        assert meta.mime_type == "image/jpeg"
        assert meta.quality == 90
        assert not meta.blank
        assert (meta.video.width, meta.video.height) == (320, 240)
        assert meta.video.size_bytes == sample_videos[name].stat().st_size
        assert meta.video.duration.ToNanoseconds() > 0
        image = decode_image(result.data)
        assert image.codec == "mjpeg"
        assert (image.width, image.height) == size
        assert image.mean_luma >= 16
        assert image.stddev_luma >= 6


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    ("image_format", "codec", "mime"),
    [
        (pb.IMAGE_FORMAT_JPEG, "mjpeg", "image/jpeg"),
        (pb.IMAGE_FORMAT_WEBP, "webp", "image/webp"),
        (pb.IMAGE_FORMAT_PNG, "png", "image/png"),
    ],
)
async def test_image_formats(
    shared: CustomServer, engine: str, image_format: int, codec: str, mime: str
) -> None:
    result = ok(
        await generate(
            shared.channel, media_path="sample.mp4", engine=ENGINES[engine], format=image_format
        )
    )
    assert result.metadata.mime_type == mime
    assert result.metadata.quality == {"image/jpeg": 90, "image/webp": 80, "image/png": 0}[mime]
    image = decode_image(result.data)
    assert image.codec == codec
    assert (image.width, image.height) == (240, 180)


@pytest.mark.parametrize("engine", ENGINES)
async def test_quality_and_max_bytes_step_down(shared: CustomServer, engine: str) -> None:
    async def jpeg(**options: object) -> pb.ThumbnailMetadata:
        result = ok(
            await generate(
                shared.channel, media_path="sample.mkv", engine=ENGINES[engine], **options
            )
        )
        assert len(result.data) == result.metadata.size_bytes
        return result.metadata

    best, worst = await jpeg(quality=100), await jpeg(quality=5)
    assert best.size_bytes > worst.size_bytes
    cap = (best.size_bytes + worst.size_bytes) // 2
    capped = await jpeg(quality=100, max_bytes=cap)
    assert capped.size_bytes <= cap
    assert 5 <= capped.quality < 100

    too_small = failed(
        await generate(
            shared.channel, media_path="sample.mkv", engine=ENGINES[engine], max_bytes=100
        )
    )
    assert too_small.reason == "OUTPUT_TOO_LARGE"
    png = failed(
        await generate(
            shared.channel,
            media_path="sample.mkv",
            engine=ENGINES[engine],
            format=pb.IMAGE_FORMAT_PNG,
            max_bytes=1000,
        )
    )
    assert png.reason == "OUTPUT_TOO_LARGE"


def _offset(seconds: float) -> duration_pb2.Duration:
    value = duration_pb2.Duration()
    value.FromNanoseconds(int(seconds * 1e9))
    return value


@pytest.mark.parametrize("engine", ENGINES)
async def test_keyframe_at_or_before_by_default_exact_on_request(
    shared: CustomServer, engine: str
) -> None:
    # sample.mp4 has a keyframe every second.
    keyframe = ok(
        await generate(
            shared.channel,
            media_path="sample.mp4",
            engine=ENGINES[engine],
            position_offset=_offset(2.5),
        )
    ).metadata
    # frame_time is the time of the frame in the image, not of a frame decoded after it.
    assert keyframe.frame_time.ToNanoseconds() / 1e9 == pytest.approx(2.0, abs=0.001)
    exact = ok(
        await generate(
            shared.channel,
            media_path="sample.mp4",
            engine=ENGINES[engine],
            position_offset=_offset(2.5),
            accuracy=pb.SEEK_ACCURACY_EXACT,
        )
    ).metadata
    # 25 fps: the frames around 2.5 s are at 2.48 and 2.52.
    assert exact.frame_time.ToNanoseconds() / 1e9 == pytest.approx(2.5, abs=0.021)
    past_end = ok(
        await generate(
            shared.channel,
            media_path="sample.mp4",
            engine=ENGINES[engine],
            position_offset=_offset(60),
        )
    ).metadata
    assert (
        past_end.frame_time.ToNanoseconds() / 1e9 <= past_end.video.duration.ToNanoseconds() / 1e9
    )


@pytest.mark.parametrize("name", ["mp4", "portrait", "anamorphic", "webm"])
@pytest.mark.parametrize("fit_mode", list(FIT_SIZES))
async def test_both_engines_give_the_same_picture(
    shared: CustomServer, sample_videos: dict[str, Path], name: str, fit_mode: int
) -> None:
    path = sample_videos[name].name
    images = {}
    for engine, value in ENGINES.items():
        result = ok(
            await generate(
                shared.channel,
                media_path=path,
                engine=value,
                fit_mode=fit_mode,
                format=pb.IMAGE_FORMAT_PNG,
            )
        )
        images[engine] = (result.metadata, decode_image(result.data))
    (meta_a, image_a), (meta_b, image_b) = images.values()
    assert (meta_a.width, meta_a.height) == (meta_b.width, meta_b.height)
    assert meta_a.video.display_width == meta_b.video.display_width
    assert meta_a.video.display_height == meta_b.video.display_height
    assert meta_a.video.rotation_degrees == meta_b.video.rotation_degrees
    assert meta_a.frame_time.ToMilliseconds() == pytest.approx(
        meta_b.frame_time.ToMilliseconds(), abs=1
    )
    assert image_a.mean_luma == pytest.approx(image_b.mean_luma, abs=6)
    assert image_a.stddev_luma == pytest.approx(image_b.stddev_luma, abs=6)


async def test_option_violations_are_listed(shared: CustomServer) -> None:
    failure = failed(
        await generate(
            shared.channel,
            media_path="sample.mp4",
            box_width=5,
            box_height=99999,
            quality=101,
            position_fraction=1.5,
            fit_mode=42,
            engine=9,
        )
    )
    assert failure.reason == "INVALID_OPTIONS"
    assert sorted(failure.violations) == sorted(
        [
            "options.box_width",
            "options.box_height",
            "options.quality",
            "options.position_fraction",
            "options.fit_mode",
            "options.engine",
        ]
    )
    for offset in (_offset(-1), duration_pb2.Duration(seconds=2**62)):
        out_of_range = failed(
            await generate(shared.channel, media_path="sample.mp4", position_offset=offset)
        )
        assert out_of_range.violations == ["options.position_offset"]


async def test_custom_box(shared: CustomServer) -> None:
    meta = ok(
        await generate(
            shared.channel,
            media_path="anamorphic.mp4",
            box_width=64,
            box_height=64,
            fit_mode=pb.FIT_MODE_PAD,
        )
    ).metadata
    assert (meta.width, meta.height) == (64, 64)


@pytest.fixture(scope="module")
def ts_sample(sample_videos: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """An MPEG-TS remux: its clock starts at 1.4 s, not 0."""
    ts = tmp_path_factory.mktemp("ts") / "sample.ts"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(sample_videos["mov"]),
         "-c", "copy", "-f", "mpegts", str(ts)],
        check=True,
    )  # fmt: skip
    return ts.read_bytes()


@pytest.mark.parametrize("engine", ENGINES)
async def test_mpegts_with_a_start_offset(
    shared: CustomServer, ts_sample: Path, engine: str
) -> None:
    result = ok(await generate(shared.channel, upload=ts_sample, engine=ENGINES[engine]))
    assert result.metadata.video.container == "mpegts"
    assert (result.metadata.width, result.metadata.height) == (240, 180)
    # Times are relative to the start of the video, not to the transport stream's clock.
    assert 0 <= result.metadata.frame_time.ToNanoseconds() / 1e9 < 3.0
    assert decode_image(result.data).stddev_luma >= 6


@pytest.mark.parametrize("engine", ENGINES)
async def test_mpegts_seeks_land_at_or_before_the_position(
    shared: CustomServer, ts_sample: bytes, engine: str
) -> None:
    # MPEG-TS has no keyframe index: a seek lands on some packet before the position, and
    # decoding starts at the next keyframe, past it (in the last GOP there is none at all).
    # Keyframes are at 0, 1 and 2 s of the clip; 25 fps.
    async def frame_time(**options: object) -> float:
        result = ok(
            await generate(shared.channel, upload=ts_sample, engine=ENGINES[engine], **options)
        )
        return result.metadata.frame_time.ToNanoseconds() / 1e9

    assert await frame_time() == pytest.approx(1.0, abs=0.001)
    assert await frame_time(position_offset=_offset(2.5)) == pytest.approx(2.0, abs=0.001)
    exact = await frame_time(position_offset=_offset(2.5), accuracy=pb.SEEK_ACCURACY_EXACT)
    assert exact == pytest.approx(2.5, abs=0.021)
    assert await frame_time(position_offset=_offset(1.5), accuracy=pb.SEEK_ACCURACY_EXACT) == (
        pytest.approx(1.5, abs=0.021)
    )
