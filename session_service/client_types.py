"""Plain Python values of the client: what ``SessionClient`` returns, and the conversions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2

from tggod.session.v1 import session_service_pb2 as pb


@dataclass(frozen=True, slots=True)
class SessionInfo:
    session_id: str
    version: int
    create_time: datetime
    update_time: datetime
    expire_time: datetime
    max_expire_time: datetime
    idle_ttl: timedelta
    fencing_token: int
    locked: bool


@dataclass(frozen=True, slots=True)
class Session:
    info: SessionInfo
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Extension:
    info: SessionInfo
    granted: timedelta
    clipped: bool


@dataclass(frozen=True, slots=True)
class Lease:
    session_id: str
    lock_token: str
    fencing_token: int
    expire_time: datetime


def struct(data: Mapping[str, Any]) -> struct_pb2.Struct:
    result = struct_pb2.Struct()
    result.update(data)
    return result


def python(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
        return int(value)
    if isinstance(value, struct_pb2.Struct):
        return {k: python(v) for k, v in value.items()}
    if isinstance(value, struct_pb2.ListValue):
        return [python(v) for v in value]
    return value


def duration(value: float | timedelta) -> duration_pb2.Duration:
    result = duration_pb2.Duration()
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    result.FromMilliseconds(round(seconds * 1000))
    return result


def timestamp(value: timestamp_pb2.Timestamp) -> datetime:
    return value.ToDatetime(tzinfo=UTC)


def info(meta: pb.SessionMetadata) -> SessionInfo:
    return SessionInfo(
        session_id=meta.session_id,
        version=meta.version,
        create_time=timestamp(meta.create_time),
        update_time=timestamp(meta.update_time),
        expire_time=timestamp(meta.expire_time),
        max_expire_time=timestamp(meta.max_expire_time),
        idle_ttl=meta.idle_ttl.ToTimedelta(),
        fencing_token=meta.fencing_token,
        locked=meta.locked,
    )


def session(message: pb.Session) -> Session:
    return Session(info(message.metadata), python(message.data))
