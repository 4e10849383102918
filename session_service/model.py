"""The session store's domain values: what an operation returns, and where a session lives."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Metadata:
    session_id: str
    version: int
    create_ms: int
    update_ms: int
    expire_ms: int
    max_expire_ms: int
    idle_ttl_ms: int
    fencing_token: int
    locked: bool

    @classmethod
    def parse(cls, session_id: str, fields: Sequence[Any]) -> Metadata:
        v, c, u, e, m, t, f, locked = (int(x) for x in fields[:8])
        return cls(session_id, v, c, u, e, m, t, f, bool(locked))


@dataclass(frozen=True, slots=True)
class Keys:
    tag: str
    session: str
    lock: str
    signal: str


@dataclass(frozen=True, slots=True)
class Extended:
    metadata: Metadata
    granted_ms: int
    clipped: bool
