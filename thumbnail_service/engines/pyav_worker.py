"""Code that runs inside the PyAV worker processes, never in the gRPC server.

A worker opens the file with the same allowlists as the ffmpeg engine, checks
the pixel limit before the first decode, decodes the candidate frames, runs
the shared filter chain and encodes the image. Resource limits are set once
per worker (address space) and renewed per task (CPU time, which the kernel
counts over the whole life of the process).
"""

from __future__ import annotations

import errno
import resource
from fractions import Fraction
from typing import Any

import av
import av.error
import av.logging

from thumbnail_service.engines import assemble, output_limit
from thumbnail_service.errors import MediaError
from thumbnail_service.framepick import (
    SEEK_BACKOFF_SECONDS,
    Selection,
    candidates,
    choose_position,
)
from thumbnail_service.geometry import Layout, filter_args, filter_chain, fit, normalize_rotation
from thumbnail_service.imaging import encode, measure
from thumbnail_service.model import Limits, Spec, Thumbnail, VideoInfo
from thumbnail_service.probe import (
    FORMAT_WHITELIST,
    PROTOCOL_WHITELIST,
    WHITELIST_ERROR,
    build_info,
    demuxer_for,
)

_cpu_budget = 0


def init_worker(memory_bytes: int, cpu_seconds: int) -> None:
    """pebble initializer: cap the worker's address space and remember its CPU budget."""
    global _cpu_budget  # one per process, set before any task runs
    _cpu_budget = cpu_seconds
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    _renew_cpu_budget()
    av.logging.set_level(None)


def warm() -> bool:
    """A no-op task: scheduling it makes pebble start the workers ahead of traffic."""
    return True


def _renew_cpu_budget() -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = int(usage.ru_utime + usage.ru_stime) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (used + _cpu_budget, hard))


def _open(url: str, limits: Limits) -> Any:
    options = {
        "protocol_whitelist": PROTOCOL_WHITELIST,
        "format_whitelist": FORMAT_WHITELIST,
        "probesize": str(limits.probe_size_bytes),
        "analyzeduration": str(limits.analyze_duration_us),
    }
    try:
        return av.open(url, mode="r", container_options=options)
    except av.error.FFmpegError as exc:
        # EINVAL is how libavformat refuses a format that is not on the whitelist.
        if exc.errno == errno.EINVAL or WHITELIST_ERROR in str(exc):
            raise MediaError(
                "FORMAT_BLOCKED", "the container format is not on the allowlist"
            ) from None
        raise MediaError("NOT_A_VIDEO", "the input is not a readable video") from None


def _video_stream(container: Any, limits: Limits) -> Any:
    demuxer_for(container.format.name)
    streams = [
        s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic
    ]
    if not streams:
        raise MediaError("NOT_A_VIDEO", "the input has no video stream")
    stream = streams[0]
    ctx = stream.codec_context
    if ctx.width * ctx.height > limits.max_pixels:
        raise MediaError(
            "RESOLUTION_TOO_LARGE",
            f"{ctx.width}x{ctx.height} exceeds the limit of {limits.max_pixels} pixels",
        )
    ctx.options = {"max_pixels": str(limits.max_pixels)}
    return stream


def _decode_at(container: Any, stream: Any, start: float, position: float, exact: bool) -> Any:
    """The keyframe at or before ``position``, or (exact) the frame at it.

    A seek that lands past the target is retried from further back
    (``SEEK_BACKOFF_SECONDS``); there keyframe packets are scanned up to the
    target without decoding them.
    """
    time_base = stream.time_base or Fraction(1, 1_000_000)
    target = start + position
    half_frame = 0.5 / float(stream.average_rate) if stream.average_rate else 0.0
    late = None
    for back in SEEK_BACKOFF_SECONDS:
        seek_to = max(start, target - back)
        container.seek(int(seek_to / time_base), stream=stream, backward=True, any_frame=False)
        if exact:
            frame, landed_late = _decode_to(container, stream, target, half_frame)
        elif back:
            frame = _keyframe_before(container, stream, target + half_frame)
            landed_late = frame is None
        else:
            frame = _first_keyframe(container, stream)
            landed_late = frame is None or _time(frame) > target + half_frame
        if not landed_late:
            return frame
        late = late or frame
        if seek_to <= start:
            break
    return late


def _time(frame: Any) -> float:
    return -1.0 if frame.time is None else float(frame.time)


def _decode_to(container: Any, stream: Any, target: float, half_frame: float) -> tuple[Any, bool]:
    """The first frame at the target, and whether decoding began past it."""
    first = True
    for frame in container.decode(stream):
        if first and _time(frame) > target + half_frame:
            return frame, True
        first = False
        if frame.time is None or frame.time >= target - half_frame:
            return frame, False
    return None, first


def _keyframe_before(container: Any, stream: Any, limit: float) -> Any:
    """Decode the last keyframe packet at or before ``limit`` (None if the first is after)."""
    chosen = None
    for packet in container.demux(stream):
        if packet.size == 0 or not packet.is_keyframe:
            continue
        pts = packet.pts if packet.pts is not None else packet.dts
        if pts is not None and packet.time_base is not None and pts * packet.time_base > limit:
            break
        chosen = packet
    return None if chosen is None else _decode_keyframe(stream, chosen)


def _first_keyframe(container: Any, stream: Any) -> Any:
    """Decode only the first keyframe packet, then drain the decoder."""
    for packet in container.demux(stream):
        if packet.size > 0 and packet.is_keyframe:
            return _decode_keyframe(stream, packet)
    return None


def _decode_keyframe(stream: Any, packet: Any) -> Any:
    """The picture of one keyframe packet.

    A decoder with frame reordering holds its first picture back until later
    packets arrive; draining right after the keyframe releases it at once,
    which halves the cost of a 1080p H.264 thumbnail. (The next seek flushes
    the drained decoder.)
    """
    frames = stream.decode(packet) or stream.decode(None)
    if not frames:
        return None
    frame = frames[0]
    # Drained frames come back without a time base; they share the stream's.
    frame.time_base = stream.time_base
    return frame


def _info(container: Any, stream: Any, frame: Any, size_bytes: int, limits: Limits) -> VideoInfo:
    ctx = stream.codec_context
    sar = stream.sample_aspect_ratio or ctx.sample_aspect_ratio
    duration = None
    if container.duration is not None:
        duration = container.duration / av.time_base
    elif stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    return build_info(
        container=container.format.name,
        codec=ctx.name,
        duration=duration,
        width=frame.width,
        height=frame.height,
        # The frame carries the stream's display matrix (counter-clockwise degrees).
        rotation=normalize_rotation(-frame.rotation),
        sar=(sar.numerator, sar.denominator) if sar else (1, 1),
        frame_rate=float(stream.average_rate or 0),
        size_bytes=size_bytes,
        has_audio=bool(container.streams.audio),
        limits=limits,
    )


def _shape(frame: Any, layout: Layout, info: VideoInfo) -> Any:
    graph = av.filter.Graph()
    nodes = [graph.add_buffer(width=frame.width, height=frame.height, format=frame.format)]
    upscale = layout.scaled_width > info.display_width
    for step in filter_chain(layout, info.rotation, upscale):
        nodes.append(graph.add(step[0], filter_args(step)))
    nodes.append(graph.add("buffersink"))
    graph.link_nodes(*nodes).configure()
    graph.vpush(frame)
    return graph.vpull()


def render(url: str, size_bytes: int, spec: Spec, limits: Limits) -> Thumbnail:
    """The whole thumbnail job of one request, run inside a worker."""
    _renew_cpu_budget()
    try:
        return _render(url, size_bytes, spec, limits)
    except (av.error.FFmpegError, EOFError, MemoryError):
        raise MediaError("NOT_A_VIDEO", "the video could not be decoded") from None


class _Input:
    """The open file, its video stream, and a way back to its very first frame."""

    def __init__(self, url: str, limits: Limits, threads: int) -> None:
        self.url, self.limits, self.threads = url, limits, threads
        self._open()

    def _open(self) -> None:
        self.container = _open(self.url, self.limits)
        self.stream = _video_stream(self.container, self.limits)
        # As in the ffmpeg engine: frame threading delays the first frame; a
        # single keyframe decodes fastest on one thread.
        self.stream.codec_context.thread_count = self.threads

    def first_frame(self) -> Any:
        """Reopen and take the first keyframe: seeking to 0 is unreliable without an index."""
        self.container.close()
        self._open()
        return _first_keyframe(self.container, self.stream)

    def close(self) -> None:
        self.container.close()


def _render(url: str, size_bytes: int, spec: Spec, limits: Limits) -> Thumbnail:
    source = _Input(url, limits, 0 if spec.exact else 1)
    try:
        return _render_from(source, size_bytes, spec, limits)
    finally:
        source.close()


def _render_from(source: _Input, size_bytes: int, spec: Spec, limits: Limits) -> Thumbnail:
    container = source.container
    start = (container.start_time or 0) / av.time_base
    duration = container.duration / av.time_base if container.duration else None
    primary = choose_position(duration, spec.position_fraction, spec.position_seconds)
    info: VideoInfo | None = None
    layout: Layout | None = None
    selection: Selection[tuple[Any, float]] = Selection(spec.allow_blank)
    for position, exact in candidates(duration, primary, spec.exact, spec.allow_blank):
        frame = _decode_at(source.container, source.stream, start, position, exact)
        if frame is None and selection.tried == 0:
            # Nothing at the position (unknown or lying duration, no index): the first frame.
            frame = source.first_frame()
        if frame is None:
            continue
        if info is None or layout is None:
            info = _info(source.container, source.stream, frame, size_bytes, limits)
            layout = fit(
                info.display_width, info.display_height, spec.box_width, spec.box_height, spec.fit
            )
        picture = _shape(frame, layout, info)
        frame_time = (frame.time or 0.0) - start
        if selection.offer((picture, frame_time), measure(picture, layout.content)):
            break
    if selection.best is None or info is None or layout is None:
        raise MediaError("NOT_A_VIDEO", "no decodable video frame")
    picture, frame_time = selection.best
    encoded = encode(picture, spec.image_format, spec.quality, output_limit(spec, limits))
    return assemble(encoded, frame_time, selection, layout, info, spec, "pyav")
