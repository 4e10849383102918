"""Client-visible leases on sessions: owner tokens, fencing tokens, wake-on-release waits.

A waiter blocks in BLPOP on the session's signal list, which ReleaseLock
pushes one element onto; the BLPOP timeout is the smaller of the caller's
remaining wait and the holder's remaining lease, so a waiter also wakes when
a crashed holder's lease runs out (a refresh that shortens the lease pushes
one element too, so a waiter re-arms on the new expiry). Deleting or
consuming a leased session pushes one as well, and each waiter woken to find
the session gone passes it on. Nothing polls on a fixed interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import secrets
import time
from dataclasses import dataclass

from session_service import metrics
from session_service.errors import LockHeld, LockLost, SessionNotFound
from session_service.store import SIGNAL_TTL_MS, SessionStore

_MIN_BLOCK_SECONDS = 0.001


@dataclass(frozen=True, slots=True)
class Lease:
    lock_token: str
    fencing_token: int
    expire_ms: int


class Leases:
    def __init__(self, store: SessionStore) -> None:
        self._store = store

    async def acquire(self, session_id: str, lease_ms: int, wait_seconds: float) -> Lease:
        store = self._store
        k = store.keys(session_id)
        token = secrets.token_urlsafe(32)
        digest = store.crypto.token_digest(token)
        started = time.monotonic()
        give_up = started + wait_seconds
        outcome = "error"
        woken = False
        try:
            while True:
                reply = await store.script(
                    "acquire",
                    [k.session, k.lock, k.signal],
                    [digest, str(lease_ms), "1" if woken else "0", str(SIGNAL_TTL_MS)],
                    idempotent=False,
                )
                if reply[0] == b"NOT_FOUND":
                    outcome = "not_found"
                    raise SessionNotFound()
                if reply[0] == b"OK":
                    outcome = "acquired"
                    return Lease(token, int(reply[1]), int(reply[2]))
                remaining = give_up - time.monotonic()
                if remaining <= 0:
                    outcome = "timeout"
                    raise LockHeld()
                holder_left = max(int(reply[1]), 1) / 1000
                block = max(min(remaining, holder_left), _MIN_BLOCK_SECONDS)
                blpop = functools.partial(store.backend.waits.blpop, [k.signal], timeout=block)
                woken = False
                # With every waiter connection busy, waiting for one must not outlast the wait.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(block + store.command_timeout):
                        popped = await store.call(blpop, idempotent=False, waiting=True)
                        woken = popped is not None
        finally:
            metrics.LOCK_WAIT.labels(outcome).observe(time.monotonic() - started)

    async def refresh(self, session_id: str, lock_token: str, lease_ms: int) -> Lease:
        store = self._store
        k = store.keys(session_id)
        digest = store.crypto.token_digest(lock_token)
        reply = await store.script(
            "refresh",
            [k.session, k.lock, k.signal],
            [digest, str(lease_ms), str(SIGNAL_TTL_MS)],
            idempotent=True,
        )
        if reply[0] == b"LOCK_LOST":
            raise LockLost()
        return Lease(lock_token, int(reply[1]), int(reply[2]))

    async def release(self, session_id: str, lock_token: str) -> bool:
        store = self._store
        k = store.keys(session_id)
        digest = store.crypto.token_digest(lock_token)
        reply = await store.script(
            "release", [k.lock, k.signal], [digest, str(SIGNAL_TTL_MS)], idempotent=True
        )
        return bool(reply)
