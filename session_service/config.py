"""Settings of the session service: one frozen object, built once from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


class ConfigError(ValueError):
    """The environment does not describe a valid configuration; the service must not start."""


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of the session service. Handlers never read ``os.environ``."""

    host: str
    port: int
    metrics_port: int
    redis_url: str
    redis_password: str | None
    encryption_keys: str
    shutdown_grace_seconds: float
    log_level: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        keys = env.get("SESSION_ENCRYPTION_KEYS", "")
        if not keys.strip():
            raise ConfigError(
                "SESSION_ENCRYPTION_KEYS is not set: refusing to start without an encryption key "
                "(there is no plaintext mode)"
            )
        return cls(
            host=env.get("SESSION_HOST", "[::]"),
            port=_int(env, "SESSION_PORT", 50051, 0, 65535),
            metrics_port=_int(env, "SESSION_METRICS_PORT", 9451, 0, 65535),
            redis_url=env.get("REDIS_URL", "redis://localhost:6379/0"),
            redis_password=env.get("REDIS_PASSWORD") or None,
            encryption_keys=keys,
            shutdown_grace_seconds=_float(env, "SESSION_SHUTDOWN_GRACE_SECONDS", 10.0, 0.0, 300.0),
            log_level=env.get("LOG_LEVEL", "INFO").upper(),
        )
