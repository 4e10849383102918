"""Blank measure and image encoding, shared by both engines.

Both engines hand over an RGBA picture already at its final size; from there
the luma measure, the encoder settings and the ``max_bytes`` quality stepping
are the same code, so the engines differ only in how they decode.
"""

from __future__ import annotations

from fractions import Fraction

import av

from thumbnail_service.errors import MediaError
from thumbnail_service.framepick import LumaStats, luma_stats
from thumbnail_service.model import ImageFormat

# Qualities tried, after the requested one, when the image must shrink.
QUALITY_STEPS = (90, 80, 70, 60, 50, 40, 30, 20, 10, 5, 1)


def rgba_frame(data: bytes, width: int, height: int) -> av.VideoFrame:
    if len(data) != width * height * 4:
        raise MediaError("NOT_A_VIDEO", "the decoder produced no complete frame")
    return av.VideoFrame.from_bytes(data, width, height, format="rgba")


def measure(frame: av.VideoFrame, content: tuple[int, int, int, int]) -> LumaStats:
    gray = frame.reformat(format="gray")
    plane = gray.planes[0]
    return luma_stats(bytes(plane), plane.line_size, content)


def _jpeg_qscale(quality: int) -> int:
    """Map quality 1..100 onto the MJPEG quantiser scale 31..2 (lower is better)."""
    return round(2 + (100 - quality) * 29 / 99)


def _encode_once(frame: av.VideoFrame, image_format: ImageFormat, quality: int) -> bytes:
    if image_format is ImageFormat.JPEG:
        ctx = av.CodecContext.create("mjpeg", "w")
        pix_fmt = "yuvj420p"
        qscale = str(_jpeg_qscale(quality))
        ctx.options = {"qmin": qscale, "qmax": qscale}
    elif image_format is ImageFormat.WEBP:
        ctx = av.CodecContext.create("libwebp", "w")
        pix_fmt = "yuv420p"
        ctx.options = {"quality": str(quality)}
    else:
        ctx = av.CodecContext.create("png", "w")
        pix_fmt = "rgb24"
    assert isinstance(ctx, av.VideoCodecContext)
    ctx.width, ctx.height, ctx.pix_fmt = frame.width, frame.height, pix_fmt
    ctx.time_base = Fraction(1, 25)
    converted = frame.reformat(format=pix_fmt)
    converted.pts = 0
    packets = [*ctx.encode(converted), *ctx.encode(None)]
    return b"".join(bytes(p) for p in packets)


def encode(
    frame: av.VideoFrame, image_format: ImageFormat, quality: int, limit: int
) -> tuple[bytes, int]:
    """Encode ``frame``; step the quality down until the image fits in ``limit`` bytes.

    Returns the image and the quality finally used (0 for PNG).
    """
    if image_format is ImageFormat.PNG:
        data = _encode_once(frame, image_format, 0)
        if len(data) > limit:
            raise MediaError("OUTPUT_TOO_LARGE", f"the PNG is {len(data)} bytes, over {limit}")
        return data, 0
    for q in [quality, *(step for step in QUALITY_STEPS if step < quality)]:
        data = _encode_once(frame, image_format, q)
        if len(data) <= limit:
            return data, q
    raise MediaError(
        "OUTPUT_TOO_LARGE", f"even at quality 1 the image is {len(data)} bytes, over {limit}"
    )
