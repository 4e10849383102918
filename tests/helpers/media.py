"""Sample videos made with ffmpeg's lavfi sources: a real picture (testsrc2), never a blank frame.

Used by the test fixtures, the benchmarks and ``make run`` (which drops one into its media root).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# 320x240, 25 fps, a keyframe every second: small enough to generate in well under a second each.
_PICTURE = "testsrc2=size=320x240:rate=25:duration=3"
_TONE = "sine=frequency=440:sample_rate=44100:duration=3"
_H264 = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "25"]

# name -> (file name, ffmpeg arguments between the global options and the output path)
SAMPLES: dict[str, tuple[str, list[str]]] = {
    # moov atom at the end (no faststart), as phones write it: piping such a file to ffmpeg fails.
    "mp4": ("sample.mp4", ["-f", "lavfi", "-i", _PICTURE, "-f", "lavfi", "-i", _TONE,
                           *_H264, "-c:a", "aac", "-shortest"]),
    "mov": ("sample.mov", ["-f", "lavfi", "-i", _PICTURE, *_H264]),
    "m4v": ("sample.m4v", ["-f", "lavfi", "-i", _PICTURE, *_H264]),
    "mkv": ("sample.mkv", ["-f", "lavfi", "-i", _PICTURE, "-c:v", "libx265", "-preset",
                           "ultrafast", "-x265-params", "log-level=error:keyint=25",
                           "-pix_fmt", "yuv420p"]),
    "webm": ("sample.webm", ["-f", "lavfi", "-i", _PICTURE, "-c:v", "libvpx-vp9",
                             "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k",
                             "-g", "25"]),
    "avi": ("sample.avi", ["-f", "lavfi", "-i", _PICTURE, "-c:v", "mpeg4", "-q:v", "5",
                           "-g", "25"]),
    "flv": ("sample.flv", ["-f", "lavfi", "-i", _PICTURE, "-c:v", "flv", "-q:v", "5",
                           "-g", "25"]),
    "wmv": ("sample.wmv", ["-f", "lavfi", "-i", _PICTURE, "-c:v", "wmv2", "-q:v", "5",
                           "-g", "25"]),
    # Stored landscape 640x360 with a 90 degree display matrix: a phone held upright. It must
    # come out portrait (360x640 displayed). See _REMUX for how the matrix gets written.
    "portrait": ("portrait.mp4", ["-f", "lavfi", "-i",
                                  "testsrc2=size=640x360:rate=25:duration=3", *_H264]),
    # Two seconds of black, then picture: 1/3 of its 4.5 s falls inside the black part.
    "black_intro": ("black_intro.mp4", [
        "-f", "lavfi", "-i", "color=c=black:size=320x240:rate=25:duration=2",
        "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=2.5",
        "-filter_complex", "[0:v][1:v]concat=n=2:v=1:a=0[v]", "-map", "[v]", *_H264]),
    # PAL widescreen: 720x576 storage with 64:45 pixels displays as 1024x576 (16:9).
    "anamorphic": ("anamorphic.mp4", ["-f", "lavfi", "-i",
                                      "testsrc2=size=720x576:rate=25:duration=2",
                                      "-vf", "setsar=64/45", *_H264]),
}  # fmt: skip

# ffmpeg 5.1 writes the rotate tag as a display matrix only when stream-copying, so these samples
# get a second, lossless pass.
_REMUX: dict[str, list[str]] = {"portrait": ["-c", "copy", "-metadata:s:v:0", "rotate=90"]}


def _ffmpeg(args: list[str], out: Path) -> None:
    subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args, str(out)],
        check=True,
        timeout=120,
    )


def generate(name: str, dest_dir: Path) -> Path:
    """Write sample ``name`` into ``dest_dir`` (if not already there) and return its path."""
    file_name, args = SAMPLES[name]
    path = dest_dir / file_name
    if path.exists() and path.stat().st_size > 0:
        return path
    tmp = path.with_name(f".{file_name}.partial{path.suffix}")
    _ffmpeg(args, tmp)
    if name in _REMUX:
        remuxed = path.with_name(f".{file_name}.remux{path.suffix}")
        _ffmpeg(["-i", str(tmp), *_REMUX[name]], remuxed)
        remuxed.replace(tmp)
    tmp.replace(path)
    return path


def generate_all(dest_dir: Path, names: Iterable[str] = SAMPLES) -> dict[str, Path]:
    """Generate every sample in parallel (ffmpeg is mostly single-threaded at this size)."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    names = list(names)
    with ThreadPoolExecutor(max_workers=2) as pool:
        paths = list(pool.map(lambda n: generate(n, dest_dir), names))
    return dict(zip(names, paths, strict=True))
