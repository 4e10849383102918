"""Unit tests of the frame-choice rule and the blank measure."""

from __future__ import annotations

import pytest

from thumbnail_service.framepick import (
    BLANK_MEAN_LUMA,
    BLANK_STDDEV_LUMA,
    UNKNOWN_DURATION_POSITION,
    LumaStats,
    Selection,
    alternative_positions,
    candidates,
    choose_position,
    luma_stats,
)


@pytest.mark.parametrize(
    ("duration", "fraction", "seconds", "expected"),
    [
        (120.0, None, None, 40.0),  # default: a third of the way in
        (9.0, 0.5, None, 4.5),
        (9.0, 0.0, None, 0.0),
        (9.0, 1.0, None, 8.0),  # the very end is clamped to the last second
        (9.0, None, 2.5, 2.5),
        (9.0, None, 30.0, 8.0),  # past the end: the last second
        (0.4, None, None, 0.4 / 3),  # clips shorter than a second work
        (0.4, None, 10.0, 0.0),
        (None, None, None, UNKNOWN_DURATION_POSITION),  # unknown duration: 1 s
        (None, 0.5, None, UNKNOWN_DURATION_POSITION),
        (None, None, 7.0, 7.0),
        (0.0, None, None, UNKNOWN_DURATION_POSITION),
    ],
)
def test_choose_position(
    duration: float | None, fraction: float | None, seconds: float | None, expected: float
) -> None:
    assert choose_position(duration, fraction, seconds) == pytest.approx(expected)


def test_alternatives_are_bounded_distinct_and_inside_the_clip() -> None:
    for duration in (0.5, 3.0, 4.5, 120.0, 7200.0):
        primary = choose_position(duration)
        alternatives = alternative_positions(duration, primary)
        assert 1 <= len(alternatives) <= 4
        assert all(0 <= p < duration for p in alternatives)
        positions = [primary, *alternatives]
        assert all(abs(a - b) >= 0.25 for i, a in enumerate(positions) for b in positions[:i])
    assert alternative_positions(None, 1.0) == [3.0, 6.0, 11.0, 21.0]


def test_candidates_after_the_first_always_seek_exactly() -> None:
    plan = candidates(9.0, 3.0, exact=False, allow_blank=False)
    assert plan[0] == (3.0, False)
    assert all(exact for _, exact in plan[1:])
    assert candidates(9.0, 3.0, exact=False, allow_blank=True) == [(3.0, False)]


def _plane(values: list[int], width: int) -> bytes:
    return bytes(values)


@pytest.mark.parametrize(
    ("pixels", "blank"),
    [
        ([0] * 64, True),  # black
        ([10, 14] * 32, True),  # near black
        ([128] * 64, True),  # flat grey
        ([125, 131] * 32, True),  # near uniform: stddev 3
        ([0, 255] * 32, False),  # a picture
        ([40, 60] * 32, False),  # dim but detailed: mean 50, stddev 10
    ],
)
def test_blank_rule(pixels: list[int], blank: bool) -> None:
    stats = luma_stats(bytes(pixels), 8, (0, 0, 8, 8), step=1)
    assert stats.blank is blank
    assert (stats.mean < BLANK_MEAN_LUMA or stats.stddev < BLANK_STDDEV_LUMA) is blank


def test_luma_stats_only_measure_the_picture_rectangle() -> None:
    # A 4x2 picture of mid grey with alternate columns bright, padded by black bars and stride.
    stride, rows = 10, 4
    plane = bytearray(stride * rows)
    for y in (1, 2):
        for x in range(3, 7):
            plane[y * stride + x] = 200 if x % 2 else 100
    stats = luma_stats(bytes(plane), stride, (3, 1, 4, 2), step=1)
    assert stats.mean == pytest.approx(150)
    assert stats.stddev == pytest.approx(50)
    whole = luma_stats(bytes(plane), stride, (0, 0, 10, 4), step=1)
    assert whole.mean < stats.mean


def test_selection_stops_at_the_first_picture_and_counts_skips() -> None:
    selection: Selection[str] = Selection(allow_blank=False)
    assert not selection.offer("black", LumaStats(2, 1))
    assert not selection.offer("grey", LumaStats(100, 2))
    assert selection.offer("picture", LumaStats(100, 40))
    assert (selection.best, selection.skipped, selection.blank) == ("picture", 2, False)


def test_selection_returns_the_most_detailed_when_everything_is_blank() -> None:
    selection: Selection[str] = Selection(allow_blank=False)
    for name, stats in (("a", LumaStats(3, 1)), ("b", LumaStats(10, 5)), ("c", LumaStats(1, 0))):
        assert not selection.offer(name, stats)
    assert (selection.best, selection.skipped, selection.blank) == ("b", 2, True)


def test_selection_takes_a_blank_frame_when_allowed() -> None:
    selection: Selection[str] = Selection(allow_blank=True)
    assert selection.offer("black", LumaStats(0, 0))
    assert (selection.best, selection.skipped, selection.blank) == ("black", 0, True)
