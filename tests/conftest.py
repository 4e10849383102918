"""Shared fixtures: a real redis-server, real sample videos, and both services on real channels.

Nothing here is faked: Redis is a ``redis-server`` process on a free port, the videos are made
by the system ffmpeg, and each service runs in-process on port 0 behind a real gRPC channel.
"""

from __future__ import annotations

import base64
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

import session_service.server
import thumbnail_service.server
from session_service.config import Settings as SessionSettings
from tests.helpers.media import generate_all
from tests.helpers.redis import RedisProcess, start_redis
from thumbnail_service.config import Settings as ThumbnailSettings


def make_encryption_keys(*key_ids: str) -> str:
    """A SESSION_ENCRYPTION_KEYS value: ``id:urlsafe-base64(32 random bytes)``, first encrypts."""
    return ",".join(
        f"{key_id}:{base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()}"
        for key_id in (key_ids or ("k1",))
    )


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisProcess) -> str:
    """The shared server's URL, emptied first so every test starts from a clean store."""
    redis_server.start()  # a previous test may have stopped it on purpose
    with redis_server.client() as client:
        client.flushall()
    return redis_server.url


@pytest.fixture
def encryption_keys() -> str:
    return make_encryption_keys("k1")


@pytest.fixture
def session_env(redis_url: str, encryption_keys: str) -> dict[str, str]:
    """The environment the in-process session service is configured from."""
    return {
        "SESSION_HOST": "127.0.0.1",
        "SESSION_PORT": "0",
        "SESSION_METRICS_PORT": "0",
        "REDIS_URL": redis_url,
        "SESSION_ENCRYPTION_KEYS": encryption_keys,
        "SESSION_SHUTDOWN_GRACE_SECONDS": "1",
    }


@pytest_asyncio.fixture
async def session_server(
    session_env: dict[str, str],
) -> AsyncIterator[session_service.server.RunningServer]:
    running = await session_service.server.start(SessionSettings.from_env(session_env))
    try:
        yield running
    finally:
        await running.stop(1.0)


@pytest_asyncio.fixture
async def session_channel(
    session_server: session_service.server.RunningServer,
) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{session_server.port}") as channel:
        yield channel


@pytest.fixture(scope="session")
def sample_videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every sample format, generated once per test session."""
    return generate_all(tmp_path_factory.mktemp("samples"))


@pytest.fixture(scope="session")
def media_root(tmp_path_factory: pytest.TempPathFactory, sample_videos: dict[str, Path]) -> Path:
    """A media root holding a copy of every sample (copies, not symlinks: links may not escape)."""
    root = tmp_path_factory.mktemp("media")
    for path in sample_videos.values():
        shutil.copyfile(path, root / path.name)
    return root


@pytest.fixture
def thumbnail_env(media_root: Path, tmp_path: Path) -> dict[str, str]:
    """The environment the in-process thumbnail service is configured from."""
    spool = tmp_path / "spool"
    spool.mkdir()
    return {
        "THUMBNAIL_HOST": "127.0.0.1",
        "THUMBNAIL_PORT": "0",
        "THUMBNAIL_METRICS_PORT": "0",
        "THUMBNAIL_MEDIA_ROOT": str(media_root),
        "THUMBNAIL_SPOOL_DIR": str(spool),
        "THUMBNAIL_SHUTDOWN_GRACE_SECONDS": "1",
    }


@pytest_asyncio.fixture
async def thumbnail_server(
    thumbnail_env: dict[str, str],
) -> AsyncIterator[thumbnail_service.server.RunningServer]:
    running = await thumbnail_service.server.start(ThumbnailSettings.from_env(thumbnail_env))
    try:
        yield running
    finally:
        await running.stop(1.0)


@pytest_asyncio.fixture
async def thumbnail_channel(
    thumbnail_server: thumbnail_service.server.RunningServer,
) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{thumbnail_server.port}") as channel:
        yield channel


def pytest_configure(config: pytest.Config) -> None:
    # Sample generation and services shell out to ffmpeg; fail early and clearly without it.
    for binary in ("ffmpeg", "ffprobe", "redis-server"):
        if shutil.which(binary) is None:
            raise pytest.UsageError(f"{binary} is not installed; run `make setup`")
