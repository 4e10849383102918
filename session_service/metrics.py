"""Prometheus metrics of the session service, served by ``server.serve`` on its own port."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RPCS = Counter(
    "session_rpc_requests",
    "Session RPCs handled, by method and gRPC status code.",
    ["method", "code"],
)
# From half a millisecond (a local Redis round trip) to the longest allowed lock wait.
_SECONDS_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
)
RPC_LATENCY = Histogram(
    "session_rpc_duration_seconds",
    "Session RPC latency, by method and gRPC status code.",
    ["method", "code"],
    buckets=_SECONDS_BUCKETS,
)
REDIS_ERRORS = Counter("session_redis_errors", "Failed Redis exchanges, by error type.", ["error"])
LOCK_WAIT = Histogram(
    "session_lock_wait_seconds",
    "Time AcquireLock spent acquiring or waiting, by outcome.",
    ["outcome"],
    buckets=_SECONDS_BUCKETS,
)
CORRUPT_VALUES = Counter(
    "session_corrupt_values", "Stored values that failed authentication and were refused."
)
