"""A real ``redis-server`` on a free loopback port, in its own data directory.

Tests, benchmarks and ``make run`` all use this: no fakeredis anywhere.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

READY_TIMEOUT_SECONDS = 15.0


def free_port() -> int:
    """A port that was free a moment ago (the caller retries if it is taken meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed; run `make setup`")
    return binary


@dataclass
class RedisProcess:
    """One redis-server process; ``stop()`` and ``start()`` keep its port and data."""

    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    appendfsync: str = "everysec"
    password: str | None = None
    extra_args: Sequence[str] = ()
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    def argv(self) -> list[str]:
        argv = [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", self.host,
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip
        if self.password:
            argv += ["--requirepass", self.password]
        return [*argv, *self.extra_args]

    def client(self) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, password=self.password)

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        with self.client() as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"redis-server exited with {self.process.returncode}; "
                        f"see {self.data_dir / 'redis.log'}"
                    )
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.BusyLoadingError):
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server on port {self.port} did not become ready")
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """Stop abruptly (SIGKILL): what a crash or an OOM kill looks like."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


def start_redis(
    data_dir: Path,
    *,
    appendfsync: str = "everysec",
    password: str | None = None,
    extra_args: Sequence[str] = (),
    port: int | None = None,
) -> RedisProcess:
    """Start a redis-server with AOF on, retrying on another port if one was taken."""
    attempts = 1 if port is not None else 5
    last_error: Exception | None = None
    for _ in range(attempts):
        server = RedisProcess(
            data_dir=data_dir,
            port=port if port is not None else free_port(),
            appendfsync=appendfsync,
            password=password,
            extra_args=tuple(extra_args),
        )
        try:
            server.start()
        except RuntimeError as exc:
            last_error = exc
            continue
        return server
    raise RuntimeError(f"could not start redis-server: {last_error}")
