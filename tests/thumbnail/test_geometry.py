"""Unit tests of display size, fit modes and the filter chain; and of settings validation."""

from __future__ import annotations

import pytest

from thumbnail_service.config import ConfigError, Settings
from thumbnail_service.geometry import display_size, filter_args, filter_chain, fit
from thumbnail_service.model import Fit


@pytest.mark.parametrize(
    ("coded", "sar", "rotation", "expected"),
    [
        ((1920, 1080), (1, 1), 0, (1920, 1080)),
        ((1920, 1080), (0, 1), 0, (1920, 1080)),  # unknown SAR means square
        ((720, 576), (64, 45), 0, (1024, 576)),  # PAL 16:9
        ((720, 576), (16, 15), 0, (768, 576)),  # PAL 4:3
        ((1440, 1080), (3, 4), 0, (1440, 1440)),  # narrow pixels stretch the height
        ((1920, 1080), (1, 1), 90, (1080, 1920)),  # phone held upright
        ((1920, 1080), (1, 1), 270, (1080, 1920)),
        ((1920, 1080), (1, 1), 180, (1920, 1080)),
        ((720, 576), (64, 45), 90, (576, 1024)),  # SAR first, then rotation
    ],
)
def test_display_size(
    coded: tuple[int, int], sar: tuple[int, int], rotation: int, expected: tuple[int, int]
) -> None:
    assert display_size(*coded, *sar, rotation) == expected


@pytest.mark.parametrize(
    ("display", "box", "mode", "size", "content"),
    [
        ((1920, 1080), (320, 180), Fit.CONTAIN, (320, 180), (0, 0, 320, 180)),
        ((1080, 1920), (320, 180), Fit.CONTAIN, (101, 180), (0, 0, 101, 180)),
        ((1024, 576), (320, 180), Fit.CONTAIN, (320, 180), (0, 0, 320, 180)),
        ((160, 90), (320, 180), Fit.CONTAIN, (160, 90), (0, 0, 160, 90)),  # never upscale
        ((320, 240), (320, 180), Fit.CONTAIN, (240, 180), (0, 0, 240, 180)),
        ((1080, 1920), (320, 180), Fit.PAD, (320, 180), (109, 0, 101, 180)),
        ((320, 240), (320, 180), Fit.PAD, (320, 180), (40, 0, 240, 180)),
        ((1080, 1920), (320, 180), Fit.COVER, (320, 180), (0, 0, 320, 180)),
        ((160, 90), (320, 180), Fit.COVER, (320, 180), (0, 0, 320, 180)),
        ((10000, 10), (320, 180), Fit.CONTAIN, (320, 1), (0, 0, 320, 1)),  # never zero
    ],
)
def test_fit(
    display: tuple[int, int],
    box: tuple[int, int],
    mode: Fit,
    size: tuple[int, int],
    content: tuple[int, int, int, int],
) -> None:
    layout = fit(*display, *box, mode)
    assert (layout.width, layout.height) == size
    assert layout.content == content


def test_cover_scales_to_fill_then_crops_the_centre() -> None:
    layout = fit(1080, 1920, 320, 180, Fit.COVER)
    assert (layout.scaled_width, layout.scaled_height) == (320, 569)
    steps = {
        name: filter_args((name, args, kwargs))
        for name, args, kwargs in filter_chain(layout, 0, False)
    }
    assert steps["crop"] == "320:180:0:194"
    assert steps["scale"] == "320:569:flags=area"


def test_chain_scales_before_rotating_to_the_pre_rotation_size() -> None:
    layout = fit(1080, 1920, 320, 180, Fit.CONTAIN)  # a portrait display, coded landscape
    chain = filter_chain(layout, 90, False)
    names = [name for name, _, _ in chain]
    assert names == ["scale", "setsar", "transpose", "format"]
    assert filter_args(chain[0]) == "180:101:flags=area"
    assert filter_args(chain[2]) == "clock"
    assert [n for n, _, _ in filter_chain(layout, 180, False)][2:4] == ["hflip", "vflip"]


def test_pad_chain_letterboxes_in_black() -> None:
    layout = fit(320, 240, 320, 180, Fit.PAD)
    pad = [filter_args(step) for step in filter_chain(layout, 0, False) if step[0] == "pad"]
    assert pad == ["320:180:40:0:color=black"]


def test_settings_defaults_and_validation(tmp_path: object) -> None:
    settings = Settings.from_env({})
    assert settings.port == 50052
    assert settings.processing_timeout_seconds == 30.0
    assert settings.max_pixels == 7680 * 4320
    assert settings.max_connection_age_seconds == 300.0
    assert settings.default_engine == "pyav"
    assert settings.max_concurrency >= 1
    assert settings.media_root is None
    for env in (
        {"THUMBNAIL_PORT": "http"},
        {"THUMBNAIL_MAX_CONCURRENCY": "0"},
        {"THUMBNAIL_DEFAULT_ENGINE": "gstreamer"},
        {"THUMBNAIL_MEDIA_ROOT": "/nonexistent/media"},
        {"THUMBNAIL_PROCESSING_TIMEOUT_SECONDS": "-1"},
        {"LOG_LEVEL": "LOUD"},
    ):
        with pytest.raises(ConfigError):
            Settings.from_env(env)
