"""Redis connections for one deployment shape: a single server, Sentinel, or Cluster.

Two clients share the shape: ``commands`` for short scripts, and ``waits`` for
the BLPOP that lock waiters block on, so a crowd of waiters can never starve
ordinary requests of connections. Connections never retry on their own; the
store retries idempotent operations with redis-py's ``Retry``, and it also
bounds every command with ``asyncio.timeout``, which is why the command clients
have no socket timeout: redis-py's own would add a task per command.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff

from session_service.config import Settings


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """Sentinel discovery with the blocking pool's wait-for-a-connection behaviour."""


@dataclass
class Backend:
    commands: Any
    waits: Any
    cluster: bool
    # Cluster node pools raise when full instead of waiting, so the service
    # makes callers wait here instead.
    limiter: asyncio.Semaphore | None
    wait_limiter: asyncio.Semaphore | None
    # Sentinel discovery clients, closed with the rest.
    discovery: tuple[Any, ...] = ()

    @contextlib.asynccontextmanager
    async def slot(self, *, waiting: bool = False) -> AsyncIterator[None]:
        limiter = self.wait_limiter if waiting else self.limiter
        if limiter is None:
            yield
            return
        async with limiter:
            yield

    async def scan_targets(self) -> list[str]:
        """Names of the servers a full SCAN must walk, in a stable order."""
        if not self.cluster:
            return ["main"]
        # The cluster client learns the topology on its first command.
        await self.commands.initialize()
        return sorted(node.name for node in self.commands.get_primaries())

    async def scan(
        self, target: str, cursor: int, match: str, count: int
    ) -> tuple[int, list[bytes]]:
        if not self.cluster:
            next_cursor, keys = await self.commands.scan(
                cursor, match=match, count=count, _type="hash"
            )
            return int(next_cursor), list(keys)
        node: ClusterNode | None = self.commands.get_node(node_name=target)
        if node is None:
            return 0, []
        cursors, keys = await self.commands.scan(
            cursor, match=match, count=count, _type="hash", target_nodes=node
        )
        return int(cursors[node.name]), list(keys)

    async def ping(self) -> None:
        await self.commands.ping()

    async def close(self) -> None:
        for client in (self.waits, self.commands, *self.discovery):
            await client.aclose()


def _no_retry() -> Retry:
    return Retry(NoBackoff(), 0)


def connect(settings: Settings) -> Backend:
    """Build the clients; nothing connects until the first command."""
    common: dict[str, Any] = {
        "socket_connect_timeout": settings.redis_connect_timeout,
        "retry": _no_retry(),
    }
    if settings.redis_password:
        common["password"] = settings.redis_password
    # A waiter's socket must outlast its longest BLPOP.
    wait_timeout = settings.limits.max_lock_wait_ms / 1000 + settings.redis_command_timeout + 1
    if settings.redis_cluster:

        def cluster(socket_timeout: float | None, per_node: int) -> RedisCluster:
            return RedisCluster.from_url(
                settings.redis_url,
                socket_timeout=socket_timeout,
                max_connections=per_node,
                **common,
            )

        return Backend(
            commands=cluster(None, settings.redis_max_connections),
            waits=cluster(wait_timeout, settings.redis_lock_wait_connections),
            cluster=True,
            limiter=asyncio.Semaphore(settings.redis_max_connections),
            wait_limiter=asyncio.Semaphore(settings.redis_lock_wait_connections),
        )
    if settings.redis_sentinels:
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(settings.redis_sentinels),
            socket_timeout=settings.redis_command_timeout,
            socket_connect_timeout=settings.redis_connect_timeout,
        )

        def master(socket_timeout: float | None, size: int) -> Redis:
            client: Redis = sentinel.master_for(
                settings.redis_sentinel_master,
                connection_pool_class=_BlockingSentinelPool,
                max_connections=size,
                timeout=None,
                socket_timeout=socket_timeout,
                **common,
            )
            return client

        return Backend(
            commands=master(None, settings.redis_max_connections),
            waits=master(wait_timeout, settings.redis_lock_wait_connections),
            cluster=False,
            limiter=None,
            wait_limiter=None,
            discovery=tuple(sentinel.sentinels),
        )

    def single(socket_timeout: float | None, size: int) -> Redis:
        # timeout=None: the caller's gRPC deadline, not the pool, bounds the wait.
        pool = BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=size,
            timeout=None,
            socket_timeout=socket_timeout,
            **common,
        )
        return Redis.from_pool(pool)

    return Backend(
        commands=single(None, settings.redis_max_connections),
        waits=single(wait_timeout, settings.redis_lock_wait_connections),
        cluster=False,
        limiter=None,
        wait_limiter=None,
    )
