"""Caller authentication: a bearer token on both RPCs, never on health or reflection."""

from __future__ import annotations

import secrets
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.thumbnail.conftest import ServerFactory, failed, generate, ok
from thumbnail_service.client import ThumbnailClient, ThumbnailError
from thumbnail_service.config import ConfigError, Settings

OLD, NEW = secrets.token_urlsafe(32), secrets.token_urlsafe(32)


async def test_both_rpcs_need_a_known_token(
    make_server: ServerFactory, sample_videos: dict[str, Path]
) -> None:
    async with make_server(CLIENT_TOKENS=f"{NEW},{OLD}") as custom:
        refused = failed(await generate(custom.channel, media_path=sample_videos["mp4"].name))
        assert refused.code == grpc.StatusCode.UNAUTHENTICATED
        assert refused.reason == "UNAUTHENTICATED"
        target = f"127.0.0.1:{custom.running.port}"
        for token in (NEW, OLD):  # both sides of a rotation
            async with ThumbnailClient(target, token=token) as client:
                thumb = await client.generate_from_media_path(sample_videos["mp4"].name)
                assert thumb.metadata.width == 240
                probed = await client.probe(media_path=sample_videos["mp4"].name)
                assert probed.width == 320
        async with ThumbnailClient(target, token="x" * 40) as stranger:
            with pytest.raises(ThumbnailError) as caught:
                await stranger.probe(media_path=sample_videos["mp4"].name)
            assert caught.value.reason == "UNAUTHENTICATED"
        health = await health_pb2_grpc.HealthStub(custom.channel).Check(
            health_pb2.HealthCheckRequest(service="tggod.thumbnail.v1.ThumbnailService"), timeout=5
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_without_tokens_the_service_is_open(
    make_server: ServerFactory, sample_videos: dict[str, Path]
) -> None:
    async with make_server() as custom:
        ok(await generate(custom.channel, media_path=sample_videos["mp4"].name))


def test_weak_tokens_stop_the_service_at_start(thumbnail_env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="THUMBNAIL_CLIENT_TOKENS"):
        Settings.from_env({**thumbnail_env, "THUMBNAIL_CLIENT_TOKENS": "short"})
    settings = Settings.from_env({**thumbnail_env, "THUMBNAIL_CLIENT_TOKENS": f"{NEW}, "})
    assert settings.client_tokens == (NEW.encode(),)
    assert NEW not in repr(settings)
