"""What a video is, and whether the service will touch it.

The demuxer allowlist is enforced twice: libavformat's own
``format_whitelist`` makes the sniffing open fail for anything else (so an
HLS playlist or a concat list is never parsed past its first bytes and never
opens a nested URL), and the sniffed name is checked again here before the
engines pass it back as an explicit ``-f``/``format=``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from thumbnail_service.errors import MediaError
from thumbnail_service.geometry import display_size, normalize_rotation
from thumbnail_service.model import Limits, VideoInfo

# libavformat demuxer names, exactly as ``AVInputFormat.name`` spells them.
ALLOWED_DEMUXERS = (
    "mov,mp4,m4a,3gp,3g2,mj2",
    "matroska,webm",
    "avi",
    "flv",
    "asf",
    "mpegts",
)
FORMAT_WHITELIST = ",".join(ALLOWED_DEMUXERS)
PROTOCOL_WHITELIST = "file"
WHITELIST_ERROR = "not on whitelist"


# Text formats that name other files. libavformat refuses them already (not on
# the whitelist, or not recognised without a telling file extension, which
# spooled uploads do not have); naming them here gives one clear answer.
PLAYLIST_MAGIC = (b"#EXTM3U", b"ffconcat", b"[playlist]", b"<?xml", b"<smil")


def refuse_playlists(path: Path) -> None:
    """FORMAT_BLOCKED for a playlist or concat list, by its first bytes."""
    with path.open("rb") as handle:
        head = handle.read(256).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(PLAYLIST_MAGIC):
        raise MediaError("FORMAT_BLOCKED", "playlists and concat lists are not accepted")


def demuxer_for(format_name: str) -> str:
    """The short demuxer name to force with ``-f``, or FORMAT_BLOCKED."""
    if format_name not in ALLOWED_DEMUXERS:
        raise MediaError("FORMAT_BLOCKED", "the container format is not on the allowlist")
    return format_name.split(",", 1)[0]


def open_failure(log_text: str) -> MediaError:
    """Classify a failed open from libav's log without echoing it to the caller."""
    if WHITELIST_ERROR in log_text:
        return MediaError("FORMAT_BLOCKED", "the container format is not on the allowlist")
    return MediaError("NOT_A_VIDEO", "the input is not a readable video")


def build_info(
    *,
    container: str,
    codec: str,
    duration: float | None,
    width: int,
    height: int,
    rotation: int,
    sar: tuple[int, int],
    frame_rate: float,
    size_bytes: int,
    has_audio: bool,
    limits: Limits,
) -> VideoInfo:
    """Validate probed values against the limits and derive the display size."""
    demuxer_for(container)
    if width <= 0 or height <= 0:
        raise MediaError("NOT_A_VIDEO", "the video stream has no frame size")
    if width * height > limits.max_pixels:
        raise MediaError(
            "RESOLUTION_TOO_LARGE",
            f"{width}x{height} exceeds the limit of {limits.max_pixels} pixels",
        )
    sar_num, sar_den = sar if sar[0] > 0 and sar[1] > 0 else (1, 1)
    display_width, display_height = display_size(width, height, sar_num, sar_den, rotation)
    return VideoInfo(
        container=container,
        video_codec=codec,
        duration=duration if duration is not None and duration > 0 else None,
        width=width,
        height=height,
        rotation=rotation,
        sar_num=sar_num,
        sar_den=sar_den,
        display_width=display_width,
        display_height=display_height,
        frame_rate=frame_rate,
        size_bytes=size_bytes,
        has_audio=has_audio,
    )


def ffprobe_args(binary: str, url: str, limits: Limits) -> list[str]:
    return [
        binary,
        "-v",
        "error",
        "-hide_banner",
        "-protocol_whitelist",
        PROTOCOL_WHITELIST,
        "-format_whitelist",
        FORMAT_WHITELIST,
        "-probesize",
        str(limits.probe_size_bytes),
        "-analyzeduration",
        str(limits.analyze_duration_us),
        "-show_format",
        "-show_streams",
        "-of",
        "json",
        url,
    ]


def _ratio(text: object) -> tuple[int, int]:
    try:
        num, den = str(text).split(":" if ":" in str(text) else "/")
        return int(num), int(den)
    except ValueError:
        return 0, 0


def _float(value: object) -> float | None:
    try:
        return float(str(value))
    except ValueError:
        return None


def _rotation(stream: Mapping[str, Any]) -> int:
    for side_data in stream.get("side_data_list", ()):
        if "rotation" in side_data:
            # The display matrix angle is counter-clockwise; the contract speaks clockwise.
            return normalize_rotation(-float(side_data["rotation"]))
    rotate = _float(stream.get("tags", {}).get("rotate", "0"))
    return normalize_rotation(rotate or 0.0)


def parse_ffprobe(output: bytes, size_bytes: int, limits: Limits) -> VideoInfo:
    try:
        doc = json.loads(output)
        fmt: Mapping[str, Any] = doc["format"]
        streams: list[Mapping[str, Any]] = doc.get("streams", [])
    except (ValueError, KeyError, TypeError):
        raise MediaError("NOT_A_VIDEO", "the input is not a readable video") from None
    demuxer_for(str(fmt.get("format_name", "")))
    videos = [
        s
        for s in streams
        if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")
    ]
    if not videos:
        raise MediaError("NOT_A_VIDEO", "the input has no video stream")
    video = videos[0]
    num, den = _ratio(video.get("avg_frame_rate", "0/1"))
    duration = _float(fmt.get("duration", "")) or _float(video.get("duration", ""))
    return build_info(
        container=str(fmt["format_name"]),
        codec=str(video.get("codec_name", "")),
        duration=duration,
        width=int(video.get("width", 0)),
        height=int(video.get("height", 0)),
        rotation=_rotation(video),
        sar=_ratio(video.get("sample_aspect_ratio", "1:1")),
        frame_rate=num / den if den else 0.0,
        size_bytes=size_bytes,
        has_audio=any(s.get("codec_type") == "audio" for s in streams),
        limits=limits,
    )
