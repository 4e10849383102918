"""Pure logic: key derivation and sealing, per-session serialisation, log format, client values."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets

import pytest
from google.protobuf import struct_pb2

from session_service.client_types import python, struct
from session_service.config import ConfigError, Settings
from session_service.crypto import CorruptValue, Crypto
from session_service.locks import KeyedLocks
from session_service.logs import JsonFormatter


def _crypto(*kids: str, naming: bytes | None = None) -> tuple[Crypto, list[bytes]]:
    keys = [secrets.token_bytes(32) for _ in kids]
    return Crypto(tuple(zip(kids, keys, strict=True)), naming), keys


def test_seal_is_randomised_bound_and_rotatable() -> None:
    old, (old_key,) = _crypto("k1")
    tag = old.tag("login:1")
    first, second = old.seal(tag, b"data", b"secret"), old.seal(tag, b"data", b"secret")
    assert first != second  # fresh nonce per write
    assert b"secret" not in first
    assert old.open(tag, b"data", first) == b"secret"
    for tampered_tag, purpose in ((old.tag("login:2"), b"data"), (tag, b"id")):
        with pytest.raises(CorruptValue):
            old.open(tampered_tag, purpose, first)
    rotated = Crypto((("k2", secrets.token_bytes(32)), ("k1", old_key)), None)
    assert rotated.tag("login:1") == tag  # names survive prepending a key
    assert rotated.open(tag, b"data", first) == b"secret"
    assert rotated.seal(tag, b"data", b"x")[2:4] == b"k2"
    retired = Crypto((("k2", secrets.token_bytes(32)),), old_key)
    assert retired.tag("login:1") == tag
    with pytest.raises(CorruptValue, match="not configured"):
        retired.open(tag, b"data", first)


def test_tags_and_digests_do_not_leak_ids() -> None:
    crypto, _ = _crypto("k1")
    tag = crypto.tag("+447700900123")
    assert len(tag) == 22
    assert "447700900123" not in tag + crypto.log_id("+447700900123")
    assert crypto.log_id("a") != crypto.log_id("b")
    other, _ = _crypto("k1")
    assert other.tag("+447700900123") != tag  # keyed: another deployment cannot recompute it


def test_relabelled_key_id_fails() -> None:
    crypto, _ = _crypto("k1", "k2")
    tag = crypto.tag("s")
    sealed = bytearray(crypto.seal(tag, b"data", b"v"))
    sealed[2:4] = b"k2"
    with pytest.raises(CorruptValue):
        crypto.open(tag, b"data", bytes(sealed))
    with pytest.raises(CorruptValue):
        crypto.open(tag, b"data", b"\x02garbage")


async def test_keyed_locks_serialise_per_key_and_clean_up() -> None:
    locks = KeyedLocks()
    order: list[str] = []

    async def work(key: str, name: str) -> None:
        async with locks.hold(key):
            order.append(f"{name}+")
            await asyncio.sleep(0.01)
            order.append(f"{name}-")

    await asyncio.gather(work("a", "1"), work("a", "2"), work("b", "3"))
    same_key = [e for e in order if e[0] in "12"]
    assert same_key in (["1+", "1-", "2+", "2-"], ["2+", "2-", "1+", "1-"])
    assert order.index("3+") < order.index("1-")  # other keys are not blocked
    assert len(locks) == 0


def test_json_log_lines_carry_extras() -> None:
    record = logging.LogRecord(
        "session_service.x", logging.INFO, "f", 1, "hello %s", ("you",), None
    )
    record.session = "0a1b2c3d4e5f"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "hello you"
    assert line["session"] == "0a1b2c3d4e5f"
    assert line["level"] == "INFO"


def test_client_values_round_trip_with_whole_numbers_as_int() -> None:
    value = struct({"id": 123456789, "ratio": 0.5, "nested": {"list": [1, 2.5, "x", None]}})
    assert isinstance(value, struct_pb2.Struct)
    assert python(value) == {"id": 123456789, "ratio": 0.5, "nested": {"list": [1, 2.5, "x", None]}}
    assert isinstance(python(value)["id"], int)


def test_settings_defaults_and_repr_hide_secrets() -> None:
    key = "k1:" + "A" * 43 + "="
    settings = Settings.from_env({"SESSION_ENCRYPTION_KEYS": key, "REDIS_PASSWORD": "hunter2-pw"})
    assert settings.port == 50051
    assert settings.limits.max_data_bytes == 65536
    assert settings.max_connection_age_seconds == 300
    assert "hunter2-pw" not in repr(settings)
    assert "AAAA" not in repr(settings)
    in_url = Settings.from_env(
        {"SESSION_ENCRYPTION_KEYS": key, "REDIS_URL": "redis://:url-pw-42@redis:6379/0"}
    )
    assert "url-pw-42" not in repr(in_url)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REDIS_URL": "redis-host:6379"}, "REDIS_URL must start with"),
        ({"REDIS_URL": "redis://:url-pw-42@redis:63a9/0"}, "REDIS_URL has a port"),
        ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL must be"),
    ],
)
def test_bad_settings_are_refused_at_start(env: dict[str, str], message: str) -> None:
    # Before, these passed validation and crashed later with a traceback.
    with pytest.raises(ConfigError, match=message) as refused:
        Settings.from_env({"SESSION_ENCRYPTION_KEYS": "k1:" + "A" * 43 + "=", **env})
    assert "url-pw-42" not in str(refused.value)
