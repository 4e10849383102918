"""Settings of the thumbnail service: one frozen object, built once from the environment.

Every limit the service enforces lives here, is read from a ``THUMBNAIL_*``
variable, and is validated before the server starts. The README's
configuration reference lists the same names and defaults.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ENGINE_NAMES = ("pyav", "ffmpeg")


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


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name) or default
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _directory(env: Mapping[str, str], name: str, default: str) -> Path | None:
    raw = env.get(name, default)
    if not raw:
        return None
    path = Path(raw).resolve()
    if not path.is_dir():
        raise ConfigError(f"{name} is not a directory: {raw}")
    return path


MIB = 1024 * 1024


MIN_CLIENT_TOKEN_LENGTH = 32


def _client_tokens(env: Mapping[str, str], name: str) -> tuple[bytes, ...]:
    """Comma-separated bearer tokens; several at once let a rotation overlap."""
    tokens = tuple(t.strip() for t in env.get(name, "").split(",") if t.strip())
    for token in tokens:
        if len(token) < MIN_CLIENT_TOKEN_LENGTH or not token.isascii() or not token.isprintable():
            raise ConfigError(
                f"{name}: every token must be at least {MIN_CLIENT_TOKEN_LENGTH} printable ASCII "
                "characters; generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
    return tuple(t.encode() for t in tokens)


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of the thumbnail service. Handlers never read ``os.environ``."""

    host: str
    port: int
    metrics_port: int
    media_root: Path | None
    spool_dir: Path
    shutdown_grace_seconds: float
    max_connection_age_seconds: float
    log_level: str
    default_engine: str
    max_concurrency: int
    max_queue: int
    processing_timeout_seconds: float
    max_upload_bytes: int
    max_pixels: int
    max_box_size: int
    max_output_bytes: int
    probe_size_bytes: int
    analyze_duration_seconds: float
    worker_memory_bytes: int
    worker_cpu_seconds: int
    worker_max_tasks: int
    ffmpeg_binary: str
    ffprobe_binary: str
    # Bearer tokens callers must present; empty means no caller authentication.
    client_tokens: tuple[bytes, ...] = field(default=(), repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        media_root = _directory(env, "THUMBNAIL_MEDIA_ROOT", "")
        spool_dir = _directory(env, "THUMBNAIL_SPOOL_DIR", tempfile.gettempdir())
        assert spool_dir is not None  # the default is never empty
        cpus = os.cpu_count() or 1
        return cls(
            host=env.get("THUMBNAIL_HOST", "[::]"),
            port=_int(env, "THUMBNAIL_PORT", 50052, 0, 65535),
            metrics_port=_int(env, "THUMBNAIL_METRICS_PORT", 9452, 0, 65535),
            media_root=media_root,
            spool_dir=spool_dir,
            shutdown_grace_seconds=_float(
                env, "THUMBNAIL_SHUTDOWN_GRACE_SECONDS", 10.0, 0.0, 300.0
            ),
            max_connection_age_seconds=_float(
                env, "THUMBNAIL_MAX_CONNECTION_AGE_SECONDS", 300.0, 1.0, 86400.0
            ),
            log_level=_choice(
                env,
                "LOG_LEVEL",
                "INFO",
                ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
            ),
            default_engine=_choice(env, "THUMBNAIL_DEFAULT_ENGINE", "pyav", ENGINE_NAMES),
            max_concurrency=_int(env, "THUMBNAIL_MAX_CONCURRENCY", cpus, 1, 256),
            max_queue=_int(env, "THUMBNAIL_MAX_QUEUE", 4 * cpus, 0, 10_000),
            processing_timeout_seconds=_float(
                env, "THUMBNAIL_PROCESSING_TIMEOUT_SECONDS", 30.0, 0.01, 600.0
            ),
            max_upload_bytes=_int(env, "THUMBNAIL_MAX_UPLOAD_BYTES", 2048 * MIB, 1, 1 << 40),
            max_pixels=_int(env, "THUMBNAIL_MAX_PIXELS", 7680 * 4320, 256, 1 << 30),
            max_box_size=_int(env, "THUMBNAIL_MAX_BOX_SIZE", 4096, 16, 16384),
            max_output_bytes=_int(env, "THUMBNAIL_MAX_OUTPUT_BYTES", 10 * MIB, 1024, 1 << 30),
            probe_size_bytes=_int(env, "THUMBNAIL_PROBE_SIZE_BYTES", 10 * MIB, 32, 1 << 30),
            analyze_duration_seconds=_float(
                env, "THUMBNAIL_ANALYZE_DURATION_SECONDS", 5.0, 0.0, 600.0
            ),
            worker_memory_bytes=_int(env, "THUMBNAIL_WORKER_MEMORY_MB", 2048, 64, 1 << 20) * MIB,
            worker_cpu_seconds=_int(env, "THUMBNAIL_WORKER_CPU_SECONDS", 60, 1, 86400),
            worker_max_tasks=_int(env, "THUMBNAIL_WORKER_MAX_TASKS", 500, 0, 1 << 30),
            ffmpeg_binary=env.get("THUMBNAIL_FFMPEG", "ffmpeg"),
            ffprobe_binary=env.get("THUMBNAIL_FFPROBE", "ffprobe"),
            client_tokens=_client_tokens(env, "THUMBNAIL_CLIENT_TOKENS"),
        )
