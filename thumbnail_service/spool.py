"""Spool an upload to a private temporary file.

Many MP4s keep their index at the end, so a video cannot be decoded from a
pipe; it is written to a file that only the server can read (``mkstemp``:
mode 0600, inside a private 0700 directory) and removed on every exit path,
including client cancellation. Chunks go straight to the file descriptor, so
memory stays flat whatever the upload size. A directory whose process died
is removed by the next ``Spool`` started beside it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from thumbnail_service.errors import MediaError

MAX_CHUNK_BYTES = 4 * 1024 * 1024


PREFIX = "thumbnail-spool-"


def _lock(directory: Path) -> int | None:
    """An exclusive ``flock`` on ``directory``, or None while another process holds it."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def remove_abandoned(parent: Path) -> None:
    """Delete the spool directories of processes that died without ``close``.

    A crash or an OOM kill skips every cleanup, and the next process (the
    same container restarted, on the same volume) would start beside up to
    MAX_CONCURRENCY + MAX_QUEUE orphaned uploads. Each live process holds a
    lock on its own directory; one nobody holds is abandoned.
    """
    for candidate in parent.glob(f"{PREFIX}*"):
        with contextlib.suppress(OSError):
            fd = _lock(candidate)
            if fd is not None:
                shutil.rmtree(candidate, ignore_errors=True)
                os.close(fd)


class Spool:
    """A private directory for upload files; ``close`` removes it with anything left in it."""

    def __init__(self, parent: Path, max_upload_bytes: int) -> None:
        remove_abandoned(parent)
        self.directory = Path(tempfile.mkdtemp(prefix=PREFIX, dir=parent))
        lock = _lock(self.directory)
        assert lock is not None  # a directory nobody else has seen yet
        self._lock = lock
        self.max_upload_bytes = max_upload_bytes

    def check_declared(self, declared: int) -> None:
        if declared < 0:
            raise MediaError("INVALID_STREAM", "size_bytes must not be negative")
        if declared > self.max_upload_bytes:
            raise MediaError(
                "UPLOAD_TOO_LARGE", f"the upload exceeds the limit of {self.max_upload_bytes} bytes"
            )

    @contextlib.asynccontextmanager
    async def receive(
        self, chunks: AsyncIterator[bytes], declared: int
    ) -> AsyncIterator[tuple[Path, int]]:
        """Write every chunk to a new file; yield its path and size; delete it afterwards."""
        self.check_declared(declared)
        fd, name = tempfile.mkstemp(prefix="upload-", dir=self.directory)
        path = Path(name)
        try:
            total = 0
            with os.fdopen(fd, "wb", buffering=0) as out:
                async for chunk in chunks:
                    if not chunk or len(chunk) > MAX_CHUNK_BYTES:
                        raise MediaError("INVALID_STREAM", "chunks must be 1 byte to 4 MiB")
                    total += len(chunk)
                    if total > self.max_upload_bytes:
                        raise MediaError(
                            "UPLOAD_TOO_LARGE",
                            f"the upload exceeds the limit of {self.max_upload_bytes} bytes",
                        )
                    if declared and total > declared:
                        raise MediaError("INVALID_STREAM", "the upload is longer than size_bytes")
                    out.write(chunk)
            if total == 0:
                raise MediaError("INVALID_STREAM", "the upload is empty")
            if declared and total != declared:
                raise MediaError("INVALID_STREAM", "the upload is shorter than size_bytes")
            yield path, total
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1
