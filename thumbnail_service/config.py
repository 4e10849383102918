"""Settings of the thumbnail service: one frozen object, built once from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


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
    """Every knob of the thumbnail service. Handlers never read ``os.environ``."""

    host: str
    port: int
    metrics_port: int
    media_root: Path | None
    shutdown_grace_seconds: float
    log_level: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        root = env.get("THUMBNAIL_MEDIA_ROOT", "")
        media_root = Path(root).resolve() if root else None
        if media_root is not None and not media_root.is_dir():
            raise ConfigError(f"THUMBNAIL_MEDIA_ROOT is not a directory: {root}")
        return cls(
            host=env.get("THUMBNAIL_HOST", "[::]"),
            port=_int(env, "THUMBNAIL_PORT", 50052, 0, 65535),
            metrics_port=_int(env, "THUMBNAIL_METRICS_PORT", 9452, 0, 65535),
            media_root=media_root,
            shutdown_grace_seconds=_float(
                env, "THUMBNAIL_SHUTDOWN_GRACE_SECONDS", 10.0, 0.0, 300.0
            ),
            log_level=env.get("LOG_LEVEL", "INFO").upper(),
        )
