"""``make run``: the whole local stack in the foreground.

Starts a private redis-server (AOF on, data under .run/redis, a free port) unless REDIS_URL is
set, then the session service and the thumbnail service on their documented ports, waits until
both answer gRPC health with SERVING, and on Ctrl-C or SIGTERM stops all three cleanly.

A development encryption key is generated on first run into .run/ (mode 0600). It is a
development key: production keys come from a secret store (see README, "Deploy to Kubernetes").
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.helpers.media import generate  # noqa: E402 - needs the repo on sys.path
from tests.helpers.redis import RedisProcess, start_redis  # noqa: E402

# DEVSTACK_RUN_DIR lets the tests run a stack without touching the developer's .run/.
RUN_DIR = Path(os.environ.get("DEVSTACK_RUN_DIR", REPO / ".run"))
KEY_FILE = RUN_DIR / "dev-encryption-keys"
READY_TIMEOUT_SECONDS = 60.0

log = logging.getLogger("devstack")


def dev_encryption_keys() -> str:
    """The development keyring, created once with owner-only permissions."""
    if not KEY_FILE.exists():
        key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        fd = os.open(KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"dev1:{key}\n")
        log.warning(
            "!!! generated a DEVELOPMENT encryption key in %s: never use it in production !!!",
            KEY_FILE,
        )
    else:
        log.warning("using the DEVELOPMENT encryption key in %s (not for production)", KEY_FILE)
    return KEY_FILE.read_text().strip()


def media_root() -> Path:
    configured = os.environ.get("THUMBNAIL_MEDIA_ROOT")
    if configured:
        return Path(configured)
    root = RUN_DIR / "media"
    root.mkdir(parents=True, exist_ok=True)
    sample = generate("mp4", root)
    log.info("media root %s holds a sample video: %s", root, sample.name)
    return root


def wait_serving(port: int, service: str, procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a service exited during start-up; see its log above")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{service} on port {port} did not become SERVING")
            time.sleep(0.2)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s devstack %(message)s")
    RUN_DIR.mkdir(mode=0o700, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("SESSION_ENCRYPTION_KEYS", dev_encryption_keys())
    env["THUMBNAIL_MEDIA_ROOT"] = str(media_root())
    spool = RUN_DIR / "spool"
    spool.mkdir(exist_ok=True)
    env.setdefault("THUMBNAIL_SPOOL_DIR", str(spool))
    session_port = int(env.setdefault("SESSION_PORT", "50051"))
    thumbnail_port = int(env.setdefault("THUMBNAIL_PORT", "50052"))

    redis: RedisProcess | None = None
    if "REDIS_URL" not in env:
        redis = start_redis(RUN_DIR / "redis")
        env["REDIS_URL"] = redis.url
        log.info("started redis-server on port %d (data in .run/redis, AOF on)", redis.port)
    else:
        log.info("using REDIS_URL from the environment")

    procs: list[subprocess.Popen[bytes]] = []
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        for module in ("session_service", "thumbnail_service"):
            procs.append(subprocess.Popen([sys.executable, "-m", module], env=env))
        wait_serving(session_port, "tggod.session.v1.SessionService", procs)
        wait_serving(thumbnail_port, "tggod.thumbnail.v1.ThumbnailService", procs)
        log.info("session service   on 127.0.0.1:%d (SERVING)", session_port)
        log.info("thumbnail service on 127.0.0.1:%d (SERVING)", thumbnail_port)
        log.info("media root %s; Ctrl-C stops everything", env["THUMBNAIL_MEDIA_ROOT"])
        while not stopping:
            if any(p.poll() is not None for p in procs) and not stopping:
                log.error("a service exited unexpectedly; stopping the stack")
                return 1
            time.sleep(0.2)
        return 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if redis is not None:
            redis.stop()
        log.info("stopped")


if __name__ == "__main__":
    sys.exit(main())
