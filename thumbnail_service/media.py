"""Resolve a caller's ``media_path`` to a regular file inside the media root, or refuse.

The path is checked as text first (relative, no ``..``), then resolved with
every symlink followed and checked for containment, then opened with
``O_NOFOLLOW | O_NONBLOCK`` (no symlink at the last step, no hanging on a
FIFO) and ``fstat``-ed to be a regular file. Engines only ever receive the
resolved path. A refusal never says whether a path outside the root exists.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from thumbnail_service.errors import MediaError

MAX_PATH_BYTES = 4096


def _rejected(why: str) -> MediaError:
    return MediaError("PATH_REJECTED", f"media_path {why}")


def resolve_media_path(root: Path | None, media_path: str) -> tuple[Path, int]:
    """The resolved file and its size in bytes."""
    if root is None:
        raise MediaError("MEDIA_ROOT_DISABLED", "this server has no media root configured")
    if not media_path or len(media_path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise _rejected("must be 1 to 4096 bytes")
    if "\x00" in media_path or "\\" in media_path:
        raise _rejected("contains a forbidden character")
    relative = PurePosixPath(media_path)
    if relative.is_absolute():
        raise _rejected("must be relative to the media root")
    if ".." in relative.parts:
        raise _rejected("must not contain '..'")
    try:
        resolved = (root / relative).resolve(strict=False)
    except (OSError, RuntimeError):
        raise _rejected("cannot be resolved") from None
    if not resolved.is_relative_to(root):
        raise _rejected("leads outside the media root")
    try:
        fd = os.open(resolved, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise MediaError(
            "MEDIA_NOT_FOUND", "media_path names no file under the media root"
        ) from None
    except OSError:
        raise _rejected("is not a readable regular file") from None
    try:
        info = os.fstat(fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(info.st_mode):
        raise _rejected("is not a regular file")
    return resolved, info.st_size
