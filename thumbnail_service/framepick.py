"""Which frame becomes the thumbnail: the position rule and the blank-frame rule.

Position: ``position_seconds`` if given, else ``position_fraction`` (default
1/3) of the duration. A position at or past the end is clamped to the last
second (``max(0, duration - 1)``), so clips shorter than a second use their
first frame. When the duration is unknown the position is 1 s (or the
explicit offset), and an engine that finds no frame there takes the first
frame of the video instead.

Blank: a frame is blank when its mean luma is below 16 or the standard
deviation of its luma is below 6 (0-255 scale, measured on the picture area
without letterbox bars). After a blank frame, up to four alternative
positions are tried, always with an exact seek (a keyframe seek could land
on the same black keyframe again); the first non-blank one wins, otherwise
the candidate with the most detail (highest deviation) is returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

DEFAULT_FRACTION = 1 / 3
UNKNOWN_DURATION_POSITION = 1.0
BLANK_MEAN_LUMA = 16.0
BLANK_STDDEV_LUMA = 6.0
ALTERNATIVE_FRACTIONS = (0.5, 0.7, 0.15, 0.9)
UNKNOWN_DURATION_ALTERNATIVES = (2.0, 5.0, 10.0, 20.0)
# Candidates closer than this to one already tried would show the same picture.
MIN_CANDIDATE_GAP = 0.25
# A demuxer without a keyframe index (MPEG-TS) seeks to some packet before the
# position, and decoding starts at the next keyframe: past the position, or
# nowhere in the last GOP. Engines retry such a seek from this far back.
SEEK_BACKOFF_SECONDS = (0.0, 2.0, 10.0)
_SQUARES = [i * i for i in range(256)]


def choose_position(
    duration: float | None, fraction: float | None = None, seconds: float | None = None
) -> float:
    """The position, in seconds from the start of the video, of the first candidate frame."""
    if duration is None or duration <= 0:
        return seconds if seconds is not None else UNKNOWN_DURATION_POSITION
    if seconds is not None:
        position = seconds
    else:
        position = duration * (DEFAULT_FRACTION if fraction is None else fraction)
    if position >= duration:
        position = max(0.0, duration - 1.0)
    return max(0.0, position)


def alternative_positions(duration: float | None, primary: float) -> list[float]:
    """At most four more positions to try after a blank frame, in order of preference."""
    if duration is None or duration <= 0:
        options = [primary + step for step in UNKNOWN_DURATION_ALTERNATIVES]
    else:
        options = [duration * f for f in ALTERNATIVE_FRACTIONS]
    chosen: list[float] = []
    for position in options:
        if all(abs(position - other) >= MIN_CANDIDATE_GAP for other in [primary, *chosen]):
            chosen.append(position)
    return chosen


@dataclass(frozen=True, slots=True)
class LumaStats:
    mean: float
    stddev: float

    @property
    def blank(self) -> bool:
        return self.mean < BLANK_MEAN_LUMA or self.stddev < BLANK_STDDEV_LUMA


def luma_stats(
    plane: bytes,
    stride: int,
    rect: tuple[int, int, int, int],
    step: int = 2,
) -> LumaStats:
    """Mean and standard deviation of an 8-bit luma plane inside ``rect`` (x, y, w, h).

    Every ``step``-th pixel of every ``step``-th row is sampled: the measure only
    has to tell a picture from a black or flat frame.
    """
    x, y, w, h = rect
    total = squares = count = 0
    for row_start in range(y * stride + x, (y + h) * stride, step * stride):
        row = plane[row_start : row_start + w : step]
        total += sum(row)
        squares += sum(map(_SQUARES.__getitem__, row))
        count += len(row)
    if count == 0:
        return LumaStats(0.0, 0.0)
    mean = total / count
    variance = max(0.0, squares / count - mean * mean)
    return LumaStats(mean, variance**0.5)


def better(candidate: LumaStats, best: LumaStats | None) -> bool:
    """Whether ``candidate`` shows more of a picture than ``best``."""
    return best is None or candidate.stddev > best.stddev


def candidates(
    duration: float | None, primary: float, exact: bool, allow_blank: bool
) -> list[tuple[float, bool]]:
    """Positions to decode in order, each with whether the seek must be exact."""
    if allow_blank:
        return [(primary, exact)]
    return [(primary, exact), *((p, True) for p in alternative_positions(duration, primary))]


class Selection(Generic[T]):
    """Keeps the best candidate frame seen so far; says when to stop looking."""

    def __init__(self, allow_blank: bool) -> None:
        self.allow_blank = allow_blank
        self.best: T | None = None
        self.best_stats: LumaStats | None = None
        self.tried = 0

    def offer(self, item: T, stats: LumaStats) -> bool:
        """Record a decoded candidate; True when it is good enough to stop."""
        self.tried += 1
        done = self.allow_blank or not stats.blank
        if done or better(stats, self.best_stats):
            self.best, self.best_stats = item, stats
        return done

    @property
    def skipped(self) -> int:
        return max(0, self.tried - 1)

    @property
    def blank(self) -> bool:
        return self.best_stats is not None and self.best_stats.blank
