"""Domain values shared by the servicer, the engines and the worker processes.

Everything here is a plain, picklable value: requests and results cross the
process boundary to the PyAV workers unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Fit(StrEnum):
    CONTAIN = "contain"
    PAD = "pad"
    COVER = "cover"


class ImageFormat(StrEnum):
    JPEG = "jpeg"
    WEBP = "webp"
    PNG = "png"

    @property
    def mime_type(self) -> str:
        return f"image/{self.value}"


DEFAULT_QUALITY = {ImageFormat.JPEG: 90, ImageFormat.WEBP: 80, ImageFormat.PNG: 0}


@dataclass(frozen=True, slots=True)
class Limits:
    """The per-file limits every engine enforces, copied from the settings."""

    max_pixels: int
    max_output_bytes: int
    probe_size_bytes: int
    analyze_duration_us: int


@dataclass(frozen=True, slots=True)
class Spec:
    """A validated thumbnail request, independent of protobuf."""

    box_width: int = 320
    box_height: int = 180
    fit: Fit = Fit.CONTAIN
    image_format: ImageFormat = ImageFormat.JPEG
    quality: int = 90
    position_fraction: float | None = None
    position_seconds: float | None = None
    exact: bool = False
    allow_blank: bool = False
    max_bytes: int = 0


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """What probing learned about the source; mirrors ``VideoMetadata``."""

    container: str
    video_codec: str
    duration: float | None
    width: int
    height: int
    rotation: int
    sar_num: int
    sar_den: int
    display_width: int
    display_height: int
    frame_rate: float
    size_bytes: int
    has_audio: bool


@dataclass(frozen=True, slots=True)
class Thumbnail:
    """An encoded image and how it was made."""

    data: bytes
    width: int
    height: int
    image_format: ImageFormat
    quality: int
    frame_time: float
    blank: bool
    blank_frames_skipped: int
    video: VideoInfo
    engine: str = ""
    fallback_used: bool = False
