"""Engine fallback policy, metrics, logs, and ``python -m thumbnail_service`` as a process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from tests.helpers.redis import free_port
from tests.thumbnail.conftest import failed, generate, ok
from tggod.thumbnail.v1 import thumbnail_service_pb2 as pb
from thumbnail_service.engines.ffmpeg import FfmpegEngine
from thumbnail_service.errors import MediaError
from thumbnail_service.model import Spec, Thumbnail, VideoInfo
from thumbnail_service.thumbnailer import Thumbnailer

REPO = Path(__file__).resolve().parents[2]
INFO = VideoInfo("avi", "mpeg4", 1.0, 16, 16, 0, 1, 1, 16, 16, 25.0, 1, False)


class FakeEngine:
    """A stand-in engine for the policy test: fails with a given reason or answers."""

    def __init__(self, name: str, reason: str | None) -> None:
        self.name = name
        self.reason = reason
        self.calls = 0

    async def start(self) -> None:
        pass

    async def render(self, path: Path, size_bytes: int, spec: Spec, deadline: float) -> Thumbnail:
        self.calls += 1
        if self.reason is not None:
            raise MediaError(self.reason, "fake")
        return Thumbnail(b"img", 16, 16, spec.image_format, 90, 0.0, False, 0, INFO, self.name)

    async def close(self) -> None:
        pass


def _thumbnailer(first_fails_with: str | None) -> tuple[Thumbnailer, FakeEngine, FakeEngine]:
    pyav, ffmpeg = FakeEngine("pyav", first_fails_with), FakeEngine("ffmpeg", None)
    prober = FfmpegEngine("ffmpeg", "ffprobe", None, None)  # type: ignore[arg-type]
    return Thumbnailer({"pyav": pyav, "ffmpeg": ffmpeg}, "pyav", prober, 5.0), pyav, ffmpeg


@pytest.mark.parametrize(
    ("reason", "falls_back"),
    [
        (None, False),
        ("NOT_A_VIDEO", True),  # a decoder failure (or a worker crash) may be engine-specific
        ("PROCESSING_TIMEOUT", False),  # a timeout is never retried
        ("FORMAT_BLOCKED", False),  # security refusals are the same for both engines
        ("RESOLUTION_TOO_LARGE", False),
        ("OUTPUT_TOO_LARGE", False),
    ],
)
async def test_fallback_policy(tmp_path: Path, reason: str | None, falls_back: bool) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\0" * 64)
    thumbnailer, pyav, ffmpeg = _thumbnailer(reason)
    if reason is not None and not falls_back:
        with pytest.raises(MediaError):
            await thumbnailer.render(video, 64, Spec(), None, None)
        assert ffmpeg.calls == 0
        return
    result = await thumbnailer.render(video, 64, Spec(), None, None)
    assert result.fallback_used is falls_back
    assert result.engine == ("ffmpeg" if falls_back else "pyav")
    assert (pyav.calls, ffmpeg.calls) == (1, int(falls_back))
    # A named engine runs alone.
    if reason is not None:
        with pytest.raises(MediaError):
            await thumbnailer.render(video, 64, Spec(), "pyav", None)


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_metrics_count_latency_and_rejections(
    thumbnail_server: object, thumbnail_channel: grpc.aio.Channel
) -> None:
    channel = thumbnail_channel
    before_ok = _sample("thumbnail_engine_seconds_count", engine="pyav", outcome="ok")
    before_rejected = _sample("thumbnail_rejections_total", reason="MEDIA_NOT_FOUND")
    ok(await generate(channel, media_path="sample.mp4", engine=pb.ENGINE_PYAV))
    failed(await generate(channel, media_path="nope.mp4"))
    assert _sample("thumbnail_engine_seconds_count", engine="pyav", outcome="ok") == before_ok + 1
    assert _sample("thumbnail_rejections_total", reason="MEDIA_NOT_FOUND") == before_rejected + 1
    assert REGISTRY.get_sample_value("thumbnail_queue_depth") == 0


def test_module_entry_point_serves_metrics_logs_json_and_stops_on_sigterm(
    media_root: Path, tmp_path: Path
) -> None:
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "THUMBNAIL_HOST": "127.0.0.1",
        "THUMBNAIL_PORT": str(port),
        "THUMBNAIL_METRICS_PORT": str(metrics_port),
        "THUMBNAIL_MEDIA_ROOT": str(media_root),
        "THUMBNAIL_SPOOL_DIR": str(tmp_path),
        "THUMBNAIL_SHUTDOWN_GRACE_SECONDS": "2",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "thumbnail_service"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        serving = False
        while not serving and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[1]
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                try:
                    reply = health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=1
                    )
                    serving = reply.status == health_pb2.HealthCheckResponse.SERVING
                except grpc.RpcError:
                    time.sleep(0.2)
        assert serving
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as page:
            text = page.read().decode()
        assert "thumbnail_queue_depth" in text
        assert "thumbnail_engine_seconds" in text
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0
        lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
        assert any(
            e["message"] == "thumbnail service listening" and e["port"] == port for e in lines
        )
        assert any(e["message"] == "shutting down" for e in lines)
        assert list(tmp_path.iterdir()) == []  # the private spool directory is gone
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
