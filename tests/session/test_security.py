"""Encryption at rest: no plaintext in Redis, tamper detection, wrong keys, rotation, config."""

from __future__ import annotations

import base64
import logging
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis
from google.protobuf import field_mask_pb2

from session_service.config import PBKDF2_ITERATIONS, ConfigError, Settings
from tests.helpers.redis import RedisProcess
from tests.session.conftest import ServerFactory, create, fails, seconds, stored_bytes, struct
from tggod.session.v1 import session_service_pb2 as pb
from tggod.session.v1 import session_service_pb2_grpc as pb_grpc

Code = grpc.StatusCode


def _key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def _append_only_files(data_dir: Path) -> list[bytes]:
    return [p.read_bytes() for p in data_dir.rglob("appendonly*") if p.is_file()]


def _session_key(raw: redis.Redis) -> bytes:
    keys = [bytes(k) for k in raw.scan_iter(match="tgs:*:s")]
    assert len(keys) == 1
    return keys[0]


async def test_no_plaintext_in_redis_after_a_login_flow(
    stub: pb_grpc.SessionServiceAsyncStub, raw: redis.Redis, redis_server: RedisProcess
) -> None:
    session_id = "login-7f3a9c2e51"
    phone = "+447700900123"
    phone_code_hash = "a1b2c3d4e5f60718"
    code = "48213"
    # send code: the backend stores what sign-in will need
    await stub.CreateSession(
        pb.CreateSessionRequest(
            session_id=session_id,
            data=struct(phone=phone, phone_code_hash=phone_code_hash, step="code_sent"),
            ttl=seconds(300),
        )
    )
    lease = await stub.AcquireLock(pb.AcquireLockRequest(session_id=session_id))
    await stub.UpdateSession(
        pb.UpdateSessionRequest(
            session_id=session_id,
            data=struct(last_code=code, step="signing_in"),
            update_mask=field_mask_pb2.FieldMask(paths=["last_code", "step"]),
            fencing_token=lease.fencing_token,
        )
    )
    await stub.ExtendSession(pb.ExtendSessionRequest(session_id=session_id, extension=seconds(60)))
    await stub.GetSession(pb.GetSessionRequest(session_id=session_id, touch=True))
    await stub.ListSessions(pb.ListSessionsRequest(session_id_prefix="login-"))
    await stub.ReleaseLock(
        pb.ReleaseLockRequest(session_id=session_id, lock_token=lease.lock_token)
    )

    secrets_ = [session_id, phone, phone.lstrip("+"), phone_code_hash, code, lease.lock_token]
    stored = stored_bytes(raw)
    assert len(stored) >= 3
    for value in stored:
        for secret in secrets_:
            assert secret.encode() not in value, secret
    # The append-only file records every write the scripts made: it must be clean too.
    aof = _append_only_files(redis_server.data_dir)
    assert any(b"tgs:{" in content for content in aof)  # the writes above really are there
    for content in aof:
        for secret in secrets_:
            assert secret.encode() not in content, secret
    consumed = await stub.ConsumeSession(pb.ConsumeSessionRequest(session_id=session_id))
    assert consumed.session.data["phone_code_hash"] == phone_code_hash


async def test_flipped_byte_is_data_loss_and_logged_once(
    stub: pb_grpc.SessionServiceAsyncStub, raw: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    await create(stub, "tamper", phone="+15550003")
    key = _session_key(raw)
    stored: Any = raw.hget(key, "d")
    blob = bytearray(stored)
    blob[-5] ^= 0x01
    raw.hset(key, "d", bytes(blob))
    caplog.set_level(logging.WARNING, logger="session_service")
    error = await fails(
        stub.GetSession(pb.GetSessionRequest(session_id="tamper")),
        Code.DATA_LOSS,
        "SESSION_CORRUPT",
    )
    assert "+15550003" not in (error.details() or "")
    records = [r for r in caplog.records if "failed authentication" in r.getMessage()]
    assert len(records) == 1
    assert "tamper" not in str(records[0].__dict__)
    await fails(
        stub.UpdateSession(
            pb.UpdateSessionRequest(
                session_id="tamper",
                data=struct(x=1),
                update_mask=field_mask_pb2.FieldMask(paths=["x"]),
            )
        ),
        Code.DATA_LOSS,
        "SESSION_CORRUPT",
    )


async def test_value_copied_to_another_session_is_data_loss(
    stub: pb_grpc.SessionServiceAsyncStub, raw: redis.Redis
) -> None:
    await create(stub, "victim", role="user")
    victim_key = _session_key(raw)
    await create(stub, "attacker", role="admin")
    attacker_key = next(k for k in raw.scan_iter(match="tgs:*:s") if k != victim_key)
    raw.hset(victim_key, "d", raw.hget(attacker_key, "d") or b"")
    await fails(
        stub.GetSession(pb.GetSessionRequest(session_id="victim")),
        Code.DATA_LOSS,
        "SESSION_CORRUPT",
    )
    await fails(
        stub.ConsumeSession(pb.ConsumeSessionRequest(session_id="victim")),
        Code.DATA_LOSS,
        "SESSION_CORRUPT",
    )
    # The swapped id blob cannot smuggle a session into another's listing either.
    raw.hset(attacker_key, "i", b"\x01\x02k1" + b"\x00" * 40)
    listed = await stub.ListSessions(pb.ListSessionsRequest())
    assert [m.session_id for m in listed.sessions] == []


async def test_wrong_key_refuses_to_read(
    stub: pb_grpc.SessionServiceAsyncStub, make_server: ServerFactory, encryption_keys: str
) -> None:
    await create(stub, "mine", secret="s")
    naming = encryption_keys.split(":", 1)[1]
    async with make_server(SESSION_ENCRYPTION_KEYS=f"k1:{_key()}") as served_other:
        other = served_other.stub
        # Different naming key: the session is not even addressable.
        await fails(
            other.GetSession(pb.GetSessionRequest(session_id="mine")),
            Code.NOT_FOUND,
            "SESSION_NOT_FOUND",
        )
        assert list((await other.ListSessions(pb.ListSessionsRequest())).sessions) == []
    async with make_server(
        SESSION_ENCRYPTION_KEYS=f"k1:{_key()}", SESSION_NAMING_KEY=naming
    ) as served_same_names:
        same_names = served_same_names.stub
        await fails(
            same_names.GetSession(pb.GetSessionRequest(session_id="mine")),
            Code.DATA_LOSS,
            "SESSION_CORRUPT",
        )


async def test_key_rotation_keeps_old_sessions_readable(
    stub: pb_grpc.SessionServiceAsyncStub,
    make_server: ServerFactory,
    encryption_keys: str,
    raw: redis.Redis,
) -> None:
    await create(stub, "old", v="under-k1")
    rotated = f"k2:{_key()},{encryption_keys}"
    async with make_server(SESSION_ENCRYPTION_KEYS=rotated) as served_new:
        new = served_new.stub
        got = await new.GetSession(pb.GetSessionRequest(session_id="old"))
        assert got.session.data["v"] == "under-k1"
        await create(new, "new", v="under-k2")
        await new.UpdateSession(
            pb.UpdateSessionRequest(session_id="old", data=struct(v="rewritten"))
        )
        headers = {raw.hget(k, "d")[2:4] for k in raw.scan_iter(match="tgs:*:s")}  # type: ignore[index]
        assert headers == {b"k2"}
        assert {
            m.session_id for m in (await new.ListSessions(pb.ListSessionsRequest())).sessions
        } == {
            "old",
            "new",
        }
    # Retiring k1 keeps names stable when its material becomes the naming key.
    k2_only = rotated.split(",")[0]
    async with make_server(
        SESSION_ENCRYPTION_KEYS=k2_only, SESSION_NAMING_KEY=encryption_keys.split(":", 1)[1]
    ) as served_retired:
        retired = served_retired.stub
        got = await retired.GetSession(pb.GetSessionRequest(session_id="new"))
        assert got.session.data["v"] == "under-k2"


def test_passphrase_is_stretched_with_the_deployment_salt() -> None:
    env = {
        "SESSION_ENCRYPTION_PASSPHRASE": "correct horse battery staple",
        "SESSION_ENCRYPTION_SALT": "deployment-salt-0001",
    }
    first = Settings.from_env(env)
    assert PBKDF2_ITERATIONS >= 600_000
    assert first.keyring[0][0] == "pbkdf2"
    assert Settings.from_env(env).keyring == first.keyring
    other = Settings.from_env({**env, "SESSION_ENCRYPTION_SALT": "deployment-salt-0002"})
    assert other.keyring != first.keyring
    assert "correct horse" not in repr(first)
    with pytest.raises(ConfigError, match="SESSION_ENCRYPTION_SALT"):
        Settings.from_env({"SESSION_ENCRYPTION_PASSPHRASE": env["SESSION_ENCRYPTION_PASSPHRASE"]})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "refusing to start without an encryption key"),
        ({"SESSION_ENCRYPTION_KEYS": "k1"}, "<key_id>:<urlsafe-base64 key>"),
        ({"SESSION_ENCRYPTION_KEYS": "k1:c2hvcnQ="}, "32 random bytes"),
        ({"SESSION_ENCRYPTION_KEYS": f"k1:{'A' * 43}=,k1:{'B' * 43}="}, "twice"),
        # Without a clear error these crashed at start or silently dropped characters.
        ({"SESSION_ENCRYPTION_KEYS": " , "}, "lists no key"),
        ({"SESSION_ENCRYPTION_KEYS": f"k1:{'A' * 43}=:x"}, "not URL-safe base64"),
    ],
)
def test_bad_key_configuration_is_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_the_entry_point_refuses_to_start_without_a_key() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_ENCRYPTION")}
    result = subprocess.run(
        [sys.executable, "-m", "session_service"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "refusing to start without an encryption key" in result.stderr
