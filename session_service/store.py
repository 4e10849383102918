"""The session store: Redis keys, Lua scripts and sealed values for every session operation.

Each operation is one Lua script over the keys of one session, which share a
Cluster hash tag, so each is atomic and, unless it must decrypt before it can
write (masked updates), costs one round trip.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from importlib import resources
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff

from session_service import metrics
from session_service.backend import Backend
from session_service.crypto import CorruptValue, Crypto
from session_service.errors import (
    FencingTokenStale,
    Internal,
    SessionAlreadyExists,
    SessionCorrupt,
    SessionNotFound,
    StoreUnavailable,
    VersionMismatch,
)
from session_service.locks import KeyedLocks
from session_service.model import Extended, Keys, Metadata

log = logging.getLogger(__name__)

SCRIPTS = (
    "create",
    "get",
    "update",
    "delete",
    "extend",
    "consume",
    "acquire",
    "refresh",
    "release",
)
_DATA = b"data"
_ID = b"id"
_MASKED_UPDATE_ATTEMPTS = 5
# How long a lock waiter's wake-up signal lives: long enough for a waiter to
# pick it up, short enough that one nobody waited for does not linger.
SIGNAL_TTL_MS = 60_000
_UNAVAILABLE = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ClusterError,
    redis_errors.BusyLoadingError,
    redis_errors.ReadOnlyError,
    redis_errors.TryAgainError,
    redis_errors.MasterDownError,
)

_BACKOFF_CAP_SECONDS = 0.2

Merge = Callable[[bytes | None], bytes]

# The event-loop time by which the current RPC must answer (None: no deadline), set by
# the servicer. A retry that could not finish by then is not started, so a caller whose
# Redis hangs hears STORE_UNAVAILABLE instead of seeing its own deadline pass.
ANSWER_BY: ContextVar[float | None] = ContextVar("answer_by", default=None)


def _source(name: str) -> str:
    lua = resources.files("session_service") / "lua"
    return (lua / "_common.lua").read_text() + "\n" + (lua / f"{name}.lua").read_text()


def _opt(value: int | None) -> str:
    return "" if value is None else str(value)


class SessionStore:
    """Session operations on Redis; raises ``ServiceError`` subclasses only."""

    def __init__(
        self,
        backend: Backend,
        crypto: Crypto,
        prefix: str,
        retries: int,
        command_timeout: float,
        on_unavailable: Callable[[], None] = lambda: None,
    ) -> None:
        self.backend = backend
        self.crypto = crypto
        self._prefix = prefix
        self._scripts = {n: backend.commands.register_script(_source(n)) for n in SCRIPTS}
        self._retry = Retry(EqualJitterBackoff(cap=_BACKOFF_CAP_SECONDS, base=0.01), retries)
        self.command_timeout = command_timeout
        self.on_unavailable = on_unavailable
        self.serial = KeyedLocks()

    async def close(self) -> None:
        await self.backend.close()

    def keys(self, session_id: str) -> Keys:
        return self.keys_for_tag(self.crypto.tag(session_id))

    def keys_for_tag(self, tag: str) -> Keys:
        base = f"{self._prefix}:{{{tag}}}"
        return Keys(tag, f"{base}:s", f"{base}:l", f"{base}:w")

    @property
    def session_pattern(self) -> str:
        return f"{self._prefix}:{{*}}:s"

    async def load_scripts(self) -> None:
        """Load every script up front so that even the first call is a single EVALSHA."""
        await self.call(lambda: self._load_all(), idempotent=True)

    async def _load_all(self) -> None:
        for script in self._scripts.values():
            await self.backend.commands.script_load(script.script)

    async def call(
        self, do: Callable[[], Awaitable[Any]], *, idempotent: bool, waiting: bool = False
    ) -> Any:
        """Run one Redis exchange, mapping store failures to service errors."""

        async def noop(_error: Exception) -> None:
            return None

        async def attempt() -> Any:
            if waiting:
                return await do()
            try:
                async with asyncio.timeout(self.command_timeout):
                    return await do()
            except TimeoutError:
                raise redis_errors.TimeoutError("redis command timed out") from None

        try:
            async with self.backend.slot(waiting=waiting):
                if idempotent:
                    return await self._retry.call_with_retry(
                        attempt, noop, is_retryable=lambda _error: self._time_for_another()
                    )
                return await attempt()
        except _UNAVAILABLE as exc:
            metrics.REDIS_ERRORS.labels(type(exc).__name__).inc()
            self.on_unavailable()
            raise StoreUnavailable() from exc
        except redis_errors.RedisError as exc:
            metrics.REDIS_ERRORS.labels(type(exc).__name__).inc()
            log.error("unexpected redis error", extra={"error": type(exc).__name__})
            raise Internal() from exc

    def _time_for_another(self) -> bool:
        answer_by = ANSWER_BY.get()
        if answer_by is None:
            return True
        left = answer_by - asyncio.get_running_loop().time()
        return left > self.command_timeout + _BACKOFF_CAP_SECONDS

    async def script(
        self, name: str, keys: Sequence[str], args: Sequence[str | bytes], *, idempotent: bool
    ) -> list[Any]:
        script = self._scripts[name]
        reply: list[Any] = await self.call(
            lambda: script(keys=list(keys), args=list(args)), idempotent=idempotent
        )
        return reply

    def open(self, session_id: str, tag: str, blob: bytes) -> bytes:
        try:
            return self.crypto.open(tag, _DATA, blob)
        except CorruptValue as exc:
            metrics.CORRUPT_VALUES.inc()
            log.warning(
                "stored session failed authentication",
                extra={"session": self.crypto.log_id(session_id), "cause": str(exc)},
            )
            raise SessionCorrupt() from None

    async def create(self, session_id: str, data: bytes, ttl_ms: int, max_ms: int) -> Metadata:
        k = self.keys(session_id)
        args: list[str | bytes] = [
            self._seal_data(k, data),
            self._seal_id(k, session_id),
            str(ttl_ms),
            str(max_ms),
        ]
        async with self.serial.hold(k.tag):
            reply = await self.script(
                "create", [k.session, k.lock, k.signal], args, idempotent=False
            )
        if reply[0] == b"ALREADY_EXISTS":
            raise SessionAlreadyExists()
        return Metadata.parse(session_id, reply[1:])

    async def get(self, session_id: str, *, touch: bool) -> tuple[Metadata, bytes]:
        k = self.keys(session_id)
        reply = await self.script(
            "get", [k.session, k.lock], ["1" if touch else "0"], idempotent=True
        )
        if reply[0] == b"NOT_FOUND":
            raise SessionNotFound()
        return Metadata.parse(session_id, reply[1:]), self.open(session_id, k.tag, reply[9])

    async def update(
        self,
        session_id: str,
        data: bytes | Merge,
        *,
        allow_missing: bool,
        expected_version: int | None,
        fencing_token: int | None,
        ttl_ms: int | None,
        create_ttl_ms: int,
        create_max_ms: int,
    ) -> tuple[Metadata, bool]:
        """Replace (``data`` is bytes) or merge into (``data`` is a function) a session's data."""
        k = self.keys(session_id)
        async with self.serial.hold(k.tag):
            for _ in range(_MASKED_UPDATE_ATTEMPTS):
                if isinstance(data, bytes):
                    new, expected = data, expected_version
                else:
                    new, expected = await self._merged(session_id, k, data, expected_version)
                    if expected == 0 and not allow_missing:
                        raise SessionNotFound()
                args: list[str | bytes] = [
                    self._seal_data(k, new),
                    self._seal_id(k, session_id) if allow_missing else b"",
                    "1" if allow_missing else "0",
                    _opt(expected),
                    _opt(fencing_token),
                    _opt(ttl_ms),
                    str(ttl_ms if ttl_ms is not None else create_ttl_ms),
                    str(create_max_ms),
                ]
                reply = await self.script("update", [k.session, k.lock], args, idempotent=False)
                status = reply[0]
                if status == b"VERSION_MISMATCH" and expected_version is None:
                    continue
                break
        if status == b"NOT_FOUND":
            raise SessionNotFound()
        if status == b"FENCING_TOKEN_STALE":
            raise FencingTokenStale()
        if status == b"VERSION_MISMATCH":
            raise VersionMismatch(int(reply[1]))
        return Metadata.parse(session_id, reply[1:]), status == b"CREATED"

    async def _merged(
        self, session_id: str, k: Keys, merge: Merge, expected_version: int | None
    ) -> tuple[bytes, int]:
        """Read, check and merge; returns the new data and the version to compare-and-set on."""
        reply = await self.script("get", [k.session, k.lock], ["0"], idempotent=True)
        if reply[0] == b"NOT_FOUND":
            if expected_version not in (None, 0):
                raise VersionMismatch(0)
            return merge(None), 0
        version = int(reply[1])
        if expected_version is not None and expected_version != version:
            raise VersionMismatch(version)
        return merge(self.open(session_id, k.tag, reply[9])), version

    async def delete(
        self, session_id: str, *, expected_version: int | None, fencing_token: int | None
    ) -> bool:
        k = self.keys(session_id)
        args = [_opt(expected_version), _opt(fencing_token), str(SIGNAL_TTL_MS)]
        async with self.serial.hold(k.tag):
            reply = await self.script(
                "delete", [k.session, k.lock, k.signal], args, idempotent=False
            )
        self._raise_for(reply)
        return bool(reply[0] == b"DELETED")

    async def extend(
        self, session_id: str, extension_ms: int, *, fencing_token: int | None
    ) -> Extended:
        k = self.keys(session_id)
        args = [str(extension_ms), _opt(fencing_token)]
        async with self.serial.hold(k.tag):
            reply = await self.script("extend", [k.session, k.lock], args, idempotent=False)
        self._raise_for(reply)
        return Extended(Metadata.parse(session_id, reply[1:]), int(reply[9]), bool(reply[10]))

    async def consume(
        self, session_id: str, *, expected_version: int | None, fencing_token: int | None
    ) -> tuple[Metadata, bytes]:
        k = self.keys(session_id)
        args = [_opt(expected_version), _opt(fencing_token), str(SIGNAL_TTL_MS)]
        async with self.serial.hold(k.tag):
            reply = await self.script(
                "consume", [k.session, k.lock, k.signal], args, idempotent=False
            )
        self._raise_for(reply)
        return Metadata.parse(session_id, reply[1:]), self.open(session_id, k.tag, reply[9])

    @staticmethod
    def _raise_for(reply: list[Any]) -> None:
        status = reply[0]
        if status == b"NOT_FOUND":
            raise SessionNotFound()
        if status == b"FENCING_TOKEN_STALE":
            raise FencingTokenStale()
        if status == b"VERSION_MISMATCH":
            raise VersionMismatch(int(reply[1]))

    def _seal_data(self, k: Keys, data: bytes) -> bytes:
        return self.crypto.seal(k.tag, _DATA, data)

    def _seal_id(self, k: Keys, session_id: str) -> bytes:
        return self.crypto.seal(k.tag, _ID, session_id.encode())

    def open_id(self, tag: str, blob: bytes) -> str:
        return self.crypto.open(tag, _ID, blob).decode()
