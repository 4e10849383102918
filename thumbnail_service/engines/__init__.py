"""Decoding back ends behind one interface.

An engine turns a local file the server chose (never a caller-supplied URL)
into a ``Thumbnail``, under the same rules: demuxer allowlist, ``file``
protocol only, pixel and probe-size caps, and a hard wall-clock limit after
which the decoding process is killed. Failures are raised as ``MediaError``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from thumbnail_service.framepick import Selection
from thumbnail_service.geometry import Layout
from thumbnail_service.model import Limits, Spec, Thumbnail, VideoInfo

# A failure with one of these reasons may be a decoder limitation of this
# engine, so the other engine is worth a try; security refusals and timeouts
# would fail (or hang) the same way again.
FALLBACK_REASONS = frozenset({"NOT_A_VIDEO"})


def file_url(path: Path) -> str:
    """The only kind of URL an engine opens: the ``file`` protocol on an absolute path."""
    return f"file:{path.resolve()}"


def output_limit(spec: Spec, limits: Limits) -> int:
    """The most bytes the image may take: the caller's ``max_bytes`` within the server's cap."""
    return min(spec.max_bytes or limits.max_output_bytes, limits.max_output_bytes)


def assemble(
    encoded: tuple[bytes, int],
    frame_time: float,
    selection: Selection[Any],
    layout: Layout,
    info: VideoInfo,
    spec: Spec,
    engine: str,
) -> Thumbnail:
    """The thumbnail both engines report, so their metadata can never drift apart."""
    data, quality = encoded
    return Thumbnail(
        data=data,
        width=layout.width,
        height=layout.height,
        image_format=spec.image_format,
        quality=quality,
        frame_time=max(0.0, frame_time),
        blank=selection.blank,
        blank_frames_skipped=selection.skipped,
        video=info,
        engine=engine,
    )


class Engine(Protocol):
    name: str

    async def render(self, path: Path, size_bytes: int, spec: Spec, deadline: float) -> Thumbnail:
        """Make the thumbnail of ``path``; ``deadline`` is on the event loop's clock."""
        ...

    async def start(self) -> None:
        """Get ready for the first request (start workers)."""
        ...

    async def close(self) -> None:
        """Stop every process the engine owns."""
        ...
