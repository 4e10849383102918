"""The ``ffmpeg`` engine: one killable system-ffmpeg process per candidate frame.

Probing runs ``ffprobe`` with the allowlists; every decode then names the
sniffed demuxer with ``-f`` so nothing else is ever opened. The fast recipe:
input seek (``-ss`` before ``-i``), ``-noaccurate_seek`` and passthrough frame
timing in keyframe mode, the video stream only, one frame, written as raw
RGBA to a pipe (the shared encoder does the rest, so ``max_bytes`` stepping
never needs a second decode).
"""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import ffmpeg

from thumbnail_service.engines import assemble, file_url, output_limit
from thumbnail_service.engines.process import ProcessLimits, prlimit_binary, run
from thumbnail_service.errors import MediaError
from thumbnail_service.framepick import (
    SEEK_BACKOFF_SECONDS,
    LumaStats,
    Selection,
    candidates,
    choose_position,
)
from thumbnail_service.geometry import Filter, Layout, filter_chain, fit
from thumbnail_service.imaging import encode, measure, rgba_frame
from thumbnail_service.model import ImageFormat, Limits, Spec, Thumbnail, VideoInfo
from thumbnail_service.probe import (
    FORMAT_WHITELIST,
    PROTOCOL_WHITELIST,
    demuxer_for,
    ffprobe_args,
    open_failure,
    parse_ffprobe,
)

PROBE_OUTPUT_LIMIT = 1024 * 1024
# Keyframes one retried keyframe seek may pass on its way to the position.
MAX_SCANNED_KEYFRAMES = 64


def _frame_time(stderr: str, n: int) -> float | None:
    """The time showinfo logged for the ``n``-th frame through the chain.

    ffmpeg filters a frame or two past ``-frames:v`` before it stops, so later
    lines describe frames nobody sees. Anchored at the line start so that
    metadata from the file, which ffmpeg prints indented, cannot pose as it.
    """
    line = re.search(
        rf"^\[Parsed_showinfo_\d+ @ 0x[0-9a-f]+\] n:\s*{n} pts:\s*-?\d+ pts_time:\s*(-?[0-9.]+)",
        stderr,
        re.MULTILINE,
    )
    return float(line.group(1)) if line else None


def decode_args(
    binary: str,
    url: str,
    demuxer: str,
    position: float,
    exact: bool,
    chain: list[Filter],
    limits: Limits,
    back: float = 0.0,
) -> list[str]:
    """The ffmpeg command for the frame at ``position``, built with ffmpeg-python.

    With ``back`` (a retry after a seek that landed past the position) the
    seek goes that much earlier and a ``trim`` finds the position instead:
    exact, the first frame from it; keyframe, every keyframe up to it (only
    keyframes are decoded), of which the caller keeps the last.
    """
    input_options: dict[str, object] = {
        "f": demuxer,
        "ss": f"{max(0.0, position - back):.3f}",
        "protocol_whitelist": PROTOCOL_WHITELIST,
        "format_whitelist": FORMAT_WHITELIST,
        "probesize": limits.probe_size_bytes,
        "analyzeduration": limits.analyze_duration_us,
        "max_pixels": limits.max_pixels,
        "noautorotate": None,
        "copyts": None,
        "start_at_zero": None,
    }
    if back or not exact:
        input_options["noaccurate_seek"] = None
    if back and not exact:
        input_options["skip_frame"] = "nokey"
    # One decoding thread: a frame-threaded decoder holds back its first frame
    # until several more packets are in, which is pure waste for one picture.
    input_options["threads"] = 1 if not exact else 0
    video = ffmpeg.input(url, **input_options).video
    if back:
        video = video.filter("trim", **{"start" if exact else "end": f"{position:.6f}"})
    stream = video.filter("showinfo")
    for name, args, kwargs in chain:
        stream = stream.filter(name, *args, **kwargs)
    frames = MAX_SCANNED_KEYFRAMES if back and not exact else 1
    output = stream.output(
        "pipe:1",
        format="rawvideo",
        an=None,
        sn=None,
        dn=None,
        fps_mode="passthrough",
        **{"frames:v": frames},
    ).global_args("-hide_banner", "-nostdin", "-nostats", "-loglevel", "info")
    argv: list[str] = list(output.compile(cmd=binary))
    return argv


class FfmpegEngine:
    name = "ffmpeg"

    def __init__(
        self, ffmpeg_binary: str, ffprobe_binary: str, limits: Limits, process: ProcessLimits
    ) -> None:
        self._ffmpeg = ffmpeg_binary
        self._ffprobe = ffprobe_binary
        self._limits = limits
        self._process = process

    async def probe(self, path: Path, size_bytes: int, deadline: float) -> VideoInfo:
        done = await run(
            ffprobe_args(self._ffprobe, file_url(path), self._limits),
            deadline=deadline,
            stdout_limit=PROBE_OUTPUT_LIMIT,
            limits=self._process,
        )
        if done.returncode != 0:
            raise open_failure(done.stderr)
        return parse_ffprobe(done.stdout, size_bytes, self._limits)

    async def _grab(
        self,
        url: str,
        info: VideoInfo,
        layout: Layout,
        chain: list[Filter],
        position: float,
        exact: bool,
        deadline: float,
        back: float = 0.0,
    ) -> tuple[bytes, float] | None:
        demuxer = demuxer_for(info.container)
        argv = decode_args(self._ffmpeg, url, demuxer, position, exact, chain, self._limits, back)
        frame_size = layout.width * layout.height * 4
        frames = MAX_SCANNED_KEYFRAMES if back and not exact else 1
        done = await run(
            argv, deadline=deadline, stdout_limit=frame_size * frames, limits=self._process
        )
        if done.returncode != 0:
            raise open_failure(done.stderr)
        count = len(done.stdout) // frame_size
        if count == 0:
            return None
        frame_time = _frame_time(done.stderr, count - 1)
        raw = done.stdout[(count - 1) * frame_size : count * frame_size]
        return raw, position if frame_time is None else frame_time

    async def _grab_at(
        self,
        url: str,
        info: VideoInfo,
        layout: Layout,
        chain: list[Filter],
        position: float,
        exact: bool,
        deadline: float,
    ) -> tuple[bytes, float] | None:
        """The frame for ``position``; a seek that lands past it is retried from further back."""
        # Past by more than a frame: the seek overshot (an exact seek may land one frame on).
        limit = position + 1.0 / (info.frame_rate or 25.0) + 0.001
        late = None
        for back in SEEK_BACKOFF_SECONDS:
            grabbed = await self._grab(url, info, layout, chain, position, exact, deadline, back)
            if grabbed is not None and grabbed[1] <= limit:
                return grabbed
            late = late or grabbed
            if position - back <= 0:
                break
        return late

    async def render(self, path: Path, size_bytes: int, spec: Spec, deadline: float) -> Thumbnail:
        info = await self.probe(path, size_bytes, deadline)
        layout = fit(
            info.display_width, info.display_height, spec.box_width, spec.box_height, spec.fit
        )
        upscale = layout.scaled_width > info.display_width
        chain = filter_chain(layout, info.rotation, upscale)
        url = file_url(path)
        primary = choose_position(info.duration, spec.position_fraction, spec.position_seconds)
        selection: Selection[tuple[bytes, float]] = Selection(spec.allow_blank)
        for position, exact in candidates(info.duration, primary, spec.exact, spec.allow_blank):
            grabbed = await self._grab_at(url, info, layout, chain, position, exact, deadline)
            if grabbed is None and selection.tried == 0 and position > 0:
                # Nothing at the position (unknown or lying duration): the first frame.
                grabbed = await self._grab(url, info, layout, chain, 0.0, False, deadline)
            if grabbed is None:
                continue
            stats = await asyncio.to_thread(_measure, grabbed[0], layout)
            if selection.offer(grabbed, stats):
                break
        if selection.best is None:
            raise MediaError("NOT_A_VIDEO", "no decodable video frame")
        raw, frame_time = selection.best
        limit = output_limit(spec, self._limits)
        encoded = await asyncio.to_thread(
            _encode, raw, layout, spec.image_format, spec.quality, limit
        )
        return assemble(encoded, frame_time, selection, layout, info, spec, self.name)

    async def start(self) -> None:
        """Check the tools exist; every process itself lives only as long as its request."""
        for binary in (self._ffmpeg, self._ffprobe):
            if shutil.which(binary) is None:
                raise RuntimeError(f"{binary} is not installed or not on PATH")
        prlimit_binary()

    async def close(self) -> None:
        """Nothing to stop: every process lives only as long as its request."""


def _measure(raw: bytes, layout: Layout) -> LumaStats:
    return measure(rgba_frame(raw, layout.width, layout.height), layout.content)


def _encode(
    raw: bytes, layout: Layout, image_format: ImageFormat, quality: int, limit: int
) -> tuple[bytes, int]:
    return encode(rgba_frame(raw, layout.width, layout.height), image_format, quality, limit)
