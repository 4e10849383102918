"""Thumbnail geometry: display size, fit into the box, and the filter chain both engines run.

The arithmetic follows the display pipeline: square the pixels first (sample
aspect ratio), then rotate (display matrix), then fit the displayed picture
into the box. Both engines run the same libavfilter chain built here, so they
produce the same dimensions by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

from thumbnail_service.model import Fit

# A libavfilter step: name, positional arguments, named arguments.
Filter = tuple[str, tuple[str, ...], dict[str, str]]


def display_size(
    width: int, height: int, sar_num: int, sar_den: int, rotation: int
) -> tuple[int, int]:
    """Width and height as displayed: sample aspect applied, then rotation."""
    if sar_num > 0 and sar_den > 0 and sar_num != sar_den:
        # Stretch the short side rather than shrink the long one: no detail is lost.
        if sar_num > sar_den:
            width = round(width * sar_num / sar_den)
        else:
            height = round(height * sar_den / sar_num)
    if rotation in (90, 270):
        width, height = height, width
    return max(1, width), max(1, height)


@dataclass(frozen=True, slots=True)
class Layout:
    """Where the scaled picture goes: scaled size, output size, and the picture's rectangle."""

    scaled_width: int
    scaled_height: int
    width: int
    height: int
    content: tuple[int, int, int, int]


def fit(
    display_width: int, display_height: int, box_width: int, box_height: int, mode: Fit
) -> Layout:
    """Fit a displayed picture into the box according to ``mode``."""
    sx, sy = box_width / display_width, box_height / display_height
    if mode is Fit.COVER:
        scale = max(sx, sy)
        sw = max(box_width, round(display_width * scale))
        sh = max(box_height, round(display_height * scale))
        return Layout(sw, sh, box_width, box_height, (0, 0, box_width, box_height))
    scale = min(sx, sy) if mode is Fit.PAD else min(sx, sy, 1.0)
    sw = min(box_width, max(1, round(display_width * scale)))
    sh = min(box_height, max(1, round(display_height * scale)))
    if mode is Fit.PAD:
        x, y = (box_width - sw) // 2, (box_height - sh) // 2
        return Layout(sw, sh, box_width, box_height, (x, y, sw, sh))
    return Layout(sw, sh, sw, sh, (0, 0, sw, sh))


def filter_chain(layout: Layout, rotation: int, upscale: bool) -> list[Filter]:
    """The libavfilter chain from a decoded frame to the output picture, in RGBA.

    Scaling runs before the rotation (to the pre-rotation size of the target)
    because transposing a 320x180 picture is cheaper than transposing 4K; the
    result is the same picture.
    """
    sw, sh = layout.scaled_width, layout.scaled_height
    if rotation in (90, 270):
        sw, sh = sh, sw
    flags = "bicubic" if upscale else "area"
    chain: list[Filter] = [
        ("scale", (str(sw), str(sh)), {"flags": flags}),
        ("setsar", ("1",), {}),
    ]
    if rotation == 90:
        chain.append(("transpose", ("clock",), {}))
    elif rotation == 270:
        chain.append(("transpose", ("cclock",), {}))
    elif rotation == 180:
        chain += [("hflip", (), {}), ("vflip", (), {})]
    if layout.width != layout.scaled_width or layout.height != layout.scaled_height:
        x, y, _, _ = layout.content
        if layout.scaled_width > layout.width or layout.scaled_height > layout.height:
            cx = (layout.scaled_width - layout.width) // 2
            cy = (layout.scaled_height - layout.height) // 2
            chain.append(("crop", (str(layout.width), str(layout.height), str(cx), str(cy)), {}))
        else:
            size = (str(layout.width), str(layout.height), str(x), str(y))
            chain.append(("pad", size, {"color": "black"}))
    chain.append(("format", ("rgba",), {}))
    return chain


def filter_args(step: Filter) -> str:
    """The ``name=args`` argument string of one step, as libavfilter parses it."""
    _, args, kwargs = step
    return ":".join([*args, *(f"{k}={v}" for k, v in sorted(kwargs.items()))])


def normalize_rotation(degrees: float) -> int:
    """Clockwise display rotation snapped to 0, 90, 180 or 270."""
    return (round(degrees / 90) * 90) % 360
