"""``make run`` brings up Redis and both services, healthy, and Ctrl-C stops all three."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.helpers.redis import free_port

REPO = Path(__file__).resolve().parents[2]
SERVICES = {
    "SESSION_PORT": "tggod.session.v1.SessionService",
    "THUMBNAIL_PORT": "tggod.thumbnail.v1.ThumbnailService",
}


def _serving(port: int, service: str) -> bool:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=1
            )
        except grpc.RpcError:
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING


def test_devstack_starts_everything_healthy_and_stops_cleanly(tmp_path: Path) -> None:
    ports = {
        name: free_port() for name in (*SERVICES, "SESSION_METRICS_PORT", "THUMBNAIL_METRICS_PORT")
    }
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "THUMBNAIL_MEDIA_ROOT"}}
    env.update({name: str(port) for name, port in ports.items()})
    env["DEVSTACK_RUN_DIR"] = str(tmp_path / "run")
    stack = subprocess.Popen(
        [sys.executable, str(REPO / "deploy" / "local" / "devstack.py")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        pending = dict(SERVICES)
        while pending and time.monotonic() < deadline:
            assert stack.poll() is None, stack.communicate()[0]
            for name, service in list(pending.items()):
                if _serving(ports[name], service):
                    del pending[name]
            time.sleep(0.2)
        assert not pending, f"never SERVING: {sorted(pending.values())}"
        key_file = tmp_path / "run" / "dev-encryption-keys"
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert (tmp_path / "run" / "media" / "sample.mp4").stat().st_size > 0
        assert (tmp_path / "run" / "redis" / "appendonlydir").is_dir(), "AOF is not on"
    finally:
        stack.send_signal(signal.SIGINT)
        output, _ = stack.communicate(timeout=60)
    assert stack.returncode == 0, output
    assert "DEVELOPMENT encryption key" in output
    assert "stopped" in output
    for name, service in SERVICES.items():
        assert not _serving(ports[name], service)
    key = key_file.read_text()
    assert key.split(":", 1)[1].strip() not in output, "the key itself was logged"
