"""Translate between protobuf messages and domain values; validate options on the way in."""

from __future__ import annotations

import math

from google.protobuf import duration_pb2

from tggod.thumbnail.v1 import thumbnail_service_pb2 as pb
from thumbnail_service.errors import InvalidOptions
from thumbnail_service.model import DEFAULT_QUALITY, Fit, ImageFormat, Spec, Thumbnail, VideoInfo

DEFAULT_BOX = (320, 180)
# The range of a valid google.protobuf.Duration (10,000 years); the wire
# format itself carries any int64, which overflows libav's seek arithmetic.
MAX_DURATION_SECONDS = 315_576_000_000
MIN_BOX = 16

_FITS = {
    pb.FIT_MODE_UNSPECIFIED: Fit.CONTAIN,
    pb.FIT_MODE_CONTAIN: Fit.CONTAIN,
    pb.FIT_MODE_PAD: Fit.PAD,
    pb.FIT_MODE_COVER: Fit.COVER,
}
_FORMATS = {
    pb.IMAGE_FORMAT_UNSPECIFIED: ImageFormat.JPEG,
    pb.IMAGE_FORMAT_JPEG: ImageFormat.JPEG,
    pb.IMAGE_FORMAT_WEBP: ImageFormat.WEBP,
    pb.IMAGE_FORMAT_PNG: ImageFormat.PNG,
}
_ENGINES: dict[int, str | None] = {
    pb.ENGINE_UNSPECIFIED: None,
    pb.ENGINE_FFMPEG: "ffmpeg",
    pb.ENGINE_PYAV: "pyav",
}
ENGINE_VALUES = {"ffmpeg": pb.ENGINE_FFMPEG, "pyav": pb.ENGINE_PYAV}


def spec_from_options(options: pb.ThumbnailOptions, max_box: int) -> tuple[Spec, str | None]:
    """The validated ``Spec`` and the requested engine (None: server choice)."""
    violations: list[tuple[str, str]] = []
    box = []
    for name, value, default in (
        ("box_width", options.box_width, DEFAULT_BOX[0]),
        ("box_height", options.box_height, DEFAULT_BOX[1]),
    ):
        if value and not MIN_BOX <= value <= max_box:
            violations.append((f"options.{name}", f"must be 0 or {MIN_BOX} to {max_box}"))
        box.append(value or default)
    for name, value, table in (
        ("fit_mode", options.fit_mode, _FITS),
        ("format", options.format, _FORMATS),
        ("accuracy", options.accuracy, (0, 1, 2)),
        ("engine", options.engine, _ENGINES),
    ):
        if value not in table:
            violations.append((f"options.{name}", f"unknown value {value}"))
    if options.quality > 100:
        violations.append(("options.quality", "must be 0 (default) or 1 to 100"))
    fraction = seconds = None
    which = options.WhichOneof("position")
    if which == "position_fraction":
        fraction = options.position_fraction
        if not (math.isfinite(fraction) and 0.0 <= fraction <= 1.0):
            violations.append(("options.position_fraction", "must be between 0.0 and 1.0"))
    elif which == "position_offset":
        offset = options.position_offset
        if not 0 <= offset.seconds <= MAX_DURATION_SECONDS or not 0 <= offset.nanos < 1e9:
            violations.append(
                ("options.position_offset", "must be a non-negative google.protobuf.Duration")
            )
        seconds = offset.seconds + offset.nanos / 1e9
    if violations:
        raise InvalidOptions(violations)
    image_format = _FORMATS[options.format]
    spec = Spec(
        box_width=box[0],
        box_height=box[1],
        fit=_FITS[options.fit_mode],
        image_format=image_format,
        quality=options.quality or DEFAULT_QUALITY[image_format],
        position_fraction=fraction,
        position_seconds=seconds,
        exact=options.accuracy == pb.SEEK_ACCURACY_EXACT,
        allow_blank=options.allow_blank_frame,
        max_bytes=options.max_bytes,
    )
    return spec, _ENGINES[options.engine]


def _duration(seconds: float) -> duration_pb2.Duration:
    value = duration_pb2.Duration()
    value.FromNanoseconds(round(seconds * 1e9))
    return value


def video_metadata(info: VideoInfo) -> pb.VideoMetadata:
    message = pb.VideoMetadata(
        container=info.container,
        video_codec=info.video_codec,
        width=info.width,
        height=info.height,
        rotation_degrees=info.rotation,
        sample_aspect_numerator=info.sar_num,
        sample_aspect_denominator=info.sar_den,
        display_width=info.display_width,
        display_height=info.display_height,
        frame_rate=info.frame_rate,
        size_bytes=info.size_bytes,
        has_audio=info.has_audio,
    )
    if info.duration is not None:
        message.duration.CopyFrom(_duration(info.duration))
    return message


def thumbnail_metadata(thumbnail: Thumbnail) -> pb.ThumbnailMetadata:
    return pb.ThumbnailMetadata(
        video=video_metadata(thumbnail.video),
        frame_time=_duration(thumbnail.frame_time),
        width=thumbnail.width,
        height=thumbnail.height,
        mime_type=thumbnail.image_format.mime_type,
        size_bytes=len(thumbnail.data),
        engine=ENGINE_VALUES[thumbnail.engine],
        fallback_used=thumbnail.fallback_used,
        blank_frames_skipped=thumbnail.blank_frames_skipped,
        blank=thumbnail.blank,
        quality=thumbnail.quality,
    )
