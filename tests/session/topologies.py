"""Redis Cluster and Sentinel topologies built from real redis-server processes."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from tests.helpers.redis import RedisProcess, free_port, redis_server_binary, start_redis

READY_SECONDS = 30.0
_CLUSTER_ARGS = (
    "--cluster-enabled", "yes",
    "--cluster-config-file", "nodes.conf",
    "--cluster-node-timeout", "5000",
)  # fmt: skip


@contextmanager
def redis_cluster(root: Path, masters: int = 3) -> Iterator[list[RedisProcess]]:
    """A cluster of ``masters`` primaries and no replicas, every slot assigned."""
    nodes: list[RedisProcess] = []
    try:
        for index in range(masters):
            nodes.append(start_redis(root / f"node{index}", extra_args=_CLUSTER_ARGS))
        cli = shutil.which("redis-cli")
        assert cli is not None, "redis-cli is not installed"
        subprocess.run(
            [cli, "--cluster", "create", *(f"{n.host}:{n.port}" for n in nodes),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        deadline = time.monotonic() + READY_SECONDS
        for node in nodes:
            with node.client() as client:
                while client.cluster("info").get("cluster_state") != "ok":
                    assert time.monotonic() < deadline, "cluster did not become ready"
                    time.sleep(0.1)
        yield nodes
    finally:
        for node in nodes:
            node.stop()


@contextmanager
def redis_sentinel(root: Path, master_name: str = "mymaster") -> Iterator[tuple[RedisProcess, int]]:
    """A primary watched by one Sentinel; yields the primary and the Sentinel's port."""
    primary = start_redis(root / "primary")
    port = free_port()
    (root / "sentinel").mkdir(parents=True, exist_ok=True)
    config = root / "sentinel" / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {root / 'sentinel'}\n"
        f"sentinel monitor {master_name} {primary.host} {primary.port} 1\n"
    )
    process = subprocess.Popen(
        [redis_server_binary(), str(config), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + READY_SECONDS
        with redis.Redis(host="127.0.0.1", port=port) as sentinel:
            while True:
                try:
                    if sentinel.sentinel_get_master_addr_by_name(master_name):
                        break
                except redis.ConnectionError:
                    pass
                assert time.monotonic() < deadline, "sentinel did not become ready"
                time.sleep(0.05)
        yield primary, port
    finally:
        process.terminate()
        process.wait(timeout=10)
        primary.stop()
