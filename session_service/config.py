"""Settings of the session service: one frozen object, built once from the environment."""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

PBKDF2_ITERATIONS = 600_000
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


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


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _key_material(name: str, encoded: str) -> bytes:
    text = encoded.strip()
    try:
        # validate=True: a stray character is an error, not silently dropped from the key.
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{name}: key material is not URL-safe base64") from None
    if len(raw) != 32:
        raise ConfigError(f"{name}: a key must be 32 random bytes, got {len(raw)}")
    return raw


def parse_keyring(raw: str) -> tuple[tuple[str, bytes], ...]:
    """Parse ``id:key[,id:key...]``; the first entry encrypts, every entry decrypts."""
    entries: list[tuple[str, bytes]] = []
    for item in raw.split(","):
        if not item.strip():
            continue
        key_id, sep, encoded = item.strip().partition(":")
        if not sep or not _KEY_ID.match(key_id):
            raise ConfigError(
                "SESSION_ENCRYPTION_KEYS entries must look like <key_id>:<urlsafe-base64 key> "
                "with key_id from [A-Za-z0-9_.-]{1,32}"
            )
        if any(key_id == seen for seen, _ in entries):
            raise ConfigError(f"SESSION_ENCRYPTION_KEYS names key id {key_id!r} twice")
        entries.append((key_id, _key_material(f"SESSION_ENCRYPTION_KEYS[{key_id}]", encoded)))
    if not entries:
        raise ConfigError("SESSION_ENCRYPTION_KEYS lists no key")
    return tuple(entries)


def _keyring_from_env(env: Mapping[str, str]) -> tuple[tuple[str, bytes], ...]:
    keys = env.get("SESSION_ENCRYPTION_KEYS", "")
    passphrase = env.get("SESSION_ENCRYPTION_PASSPHRASE", "")
    if keys.strip():
        if passphrase:
            raise ConfigError(
                "set SESSION_ENCRYPTION_KEYS or SESSION_ENCRYPTION_PASSPHRASE, not both"
            )
        return parse_keyring(keys)
    if passphrase:
        salt = env.get("SESSION_ENCRYPTION_SALT", "")
        if len(salt) < 16:
            raise ConfigError(
                "SESSION_ENCRYPTION_PASSPHRASE needs SESSION_ENCRYPTION_SALT: a per-deployment "
                "value of at least 16 characters"
            )
        if len(passphrase) < 16:
            raise ConfigError("SESSION_ENCRYPTION_PASSPHRASE must be at least 16 characters")
        stretched = hashlib.pbkdf2_hmac(
            "sha256", passphrase.encode(), salt.encode(), PBKDF2_ITERATIONS
        )
        return (("pbkdf2", stretched),)
    raise ConfigError(
        "SESSION_ENCRYPTION_KEYS is not set: refusing to start without an encryption key "
        "(there is no plaintext mode); set SESSION_ENCRYPTION_KEYS=<key_id>:<urlsafe-base64 of "
        "32 random bytes> or SESSION_ENCRYPTION_PASSPHRASE with SESSION_ENCRYPTION_SALT"
    )


def _redis_url(raw: str) -> str:
    # Checked here so that a typo stops the start with a message, not a traceback; the
    # message never repeats the URL, which may carry the password.
    parts = urlsplit(raw)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError("REDIS_URL must start with redis://, rediss:// or unix://")
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise ConfigError("REDIS_URL has a port that is not a number from 0 to 65535") from None
    return raw


def _log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in logging.getLevelNamesMapping():
        raise ConfigError(f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {raw!r}")
    return level


def _sentinels(raw: str) -> tuple[tuple[str, int], ...]:
    result: list[tuple[str, int]] = []
    for item in raw.split(","):
        if not item.strip():
            continue
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigError(f"REDIS_SENTINELS entries must be host:port, got {item!r}")
        result.append((host.strip("[]"), int(port)))
    return tuple(result)


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on request fields; violations are INVALID_ARGUMENT."""

    max_id_length: int = 128
    max_data_bytes: int = 64 * 1024
    default_ttl_ms: int = 600_000
    max_ttl_ms: int = 86_400_000
    default_max_lifetime_ms: int = 86_400_000
    max_lifetime_ms: int = 7 * 86_400_000
    default_page_size: int = 100
    max_page_size: int = 1000
    default_lease_ms: int = 30_000
    max_lease_ms: int = 600_000
    max_lock_wait_ms: int = 60_000


MIN_CLIENT_TOKEN_LENGTH = 32


def client_tokens(env: Mapping[str, str], name: str) -> tuple[bytes, ...]:
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
    """Every knob of the session service. Handlers never read ``os.environ``."""

    host: str
    port: int
    metrics_port: int
    # The URL may carry the Redis password.
    redis_url: str = field(repr=False)
    redis_password: str | None = field(repr=False)
    redis_cluster: bool
    redis_sentinels: tuple[tuple[str, int], ...]
    redis_sentinel_master: str
    redis_max_connections: int
    redis_lock_wait_connections: int
    redis_connect_timeout: float
    redis_command_timeout: float
    redis_retries: int
    key_prefix: str
    keyring: tuple[tuple[str, bytes], ...] = field(repr=False)
    naming_key: bytes | None = field(repr=False)
    limits: Limits
    shutdown_grace_seconds: float
    max_connection_age_seconds: float
    health_interval_seconds: float
    log_level: str
    # Bearer tokens callers must present; empty means no caller authentication.
    client_tokens: tuple[bytes, ...] = field(default=(), repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        keyring = _keyring_from_env(env)
        naming = env.get("SESSION_NAMING_KEY", "")
        sentinels = _sentinels(env.get("REDIS_SENTINELS", ""))
        redis_url = env.get("REDIS_URL", "redis://localhost:6379/0")
        if not sentinels:
            redis_url = _redis_url(redis_url)
        prefix = env.get("REDIS_KEY_PREFIX", "tgs")
        if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,32}", prefix):
            raise ConfigError("REDIS_KEY_PREFIX must be 1-32 characters from [A-Za-z0-9_.:-]")
        limits = Limits(
            max_id_length=_int(env, "SESSION_MAX_ID_LENGTH", 128, 16, 1024),
            max_data_bytes=_int(env, "SESSION_MAX_DATA_BYTES", 65536, 1024, 16 * 1024 * 1024),
            default_ttl_ms=1000 * _int(env, "SESSION_DEFAULT_TTL_SECONDS", 600, 1, 30 * 86400),
            max_ttl_ms=1000 * _int(env, "SESSION_MAX_TTL_SECONDS", 86400, 1, 30 * 86400),
            default_max_lifetime_ms=1000
            * _int(env, "SESSION_DEFAULT_MAX_LIFETIME_SECONDS", 86400, 1, 365 * 86400),
            max_lifetime_ms=1000
            * _int(env, "SESSION_MAX_LIFETIME_SECONDS", 7 * 86400, 1, 365 * 86400),
            default_page_size=_int(env, "SESSION_DEFAULT_PAGE_SIZE", 100, 1, 10000),
            max_page_size=_int(env, "SESSION_MAX_PAGE_SIZE", 1000, 1, 10000),
            default_lease_ms=int(
                1000 * _float(env, "SESSION_DEFAULT_LEASE_SECONDS", 30, 0.1, 86400)
            ),
            max_lease_ms=int(1000 * _float(env, "SESSION_MAX_LEASE_SECONDS", 600, 0.1, 86400)),
            max_lock_wait_ms=int(1000 * _float(env, "SESSION_MAX_LOCK_WAIT_SECONDS", 60, 0, 3600)),
        )
        if not (
            limits.default_ttl_ms <= limits.max_ttl_ms
            and limits.default_max_lifetime_ms <= limits.max_lifetime_ms
            and limits.default_ttl_ms <= limits.default_max_lifetime_ms
            and limits.default_page_size <= limits.max_page_size
            and limits.default_lease_ms <= limits.max_lease_ms
        ):
            raise ConfigError(
                "every SESSION_DEFAULT_* limit must be within its SESSION_MAX_* bound, and the "
                "default TTL within the default lifetime"
            )
        return cls(
            host=env.get("SESSION_HOST", "[::]"),
            port=_int(env, "SESSION_PORT", 50051, 0, 65535),
            metrics_port=_int(env, "SESSION_METRICS_PORT", 9451, 0, 65535),
            redis_url=redis_url,
            redis_password=env.get("REDIS_PASSWORD") or None,
            redis_cluster=_bool(env, "REDIS_CLUSTER"),
            redis_sentinels=sentinels,
            redis_sentinel_master=env.get("REDIS_SENTINEL_MASTER", "mymaster"),
            redis_max_connections=_int(env, "REDIS_MAX_CONNECTIONS", 64, 1, 10000),
            redis_lock_wait_connections=_int(env, "REDIS_LOCK_WAIT_CONNECTIONS", 64, 1, 10000),
            redis_connect_timeout=_float(env, "REDIS_CONNECT_TIMEOUT_SECONDS", 2.0, 0.01, 60),
            redis_command_timeout=_float(env, "REDIS_COMMAND_TIMEOUT_SECONDS", 2.0, 0.01, 60),
            redis_retries=_int(env, "REDIS_RETRIES", 2, 0, 10),
            key_prefix=prefix,
            keyring=keyring,
            naming_key=_key_material("SESSION_NAMING_KEY", naming) if naming else None,
            limits=limits,
            shutdown_grace_seconds=_float(env, "SESSION_SHUTDOWN_GRACE_SECONDS", 10.0, 0.0, 300.0),
            max_connection_age_seconds=_float(
                env, "SESSION_MAX_CONNECTION_AGE_SECONDS", 300.0, 1.0, 86400.0
            ),
            health_interval_seconds=_float(env, "SESSION_HEALTH_INTERVAL_SECONDS", 1.0, 0.05, 60),
            log_level=_log_level(env.get("LOG_LEVEL", "INFO")),
            client_tokens=client_tokens(env, "SESSION_CLIENT_TOKENS"),
        )
