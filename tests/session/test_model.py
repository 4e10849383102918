"""Random operation sequences against the real service and a dictionary model: they must agree."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import grpc
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from session_service.server import RunningServer
from tests.session.conftest import seconds, struct
from tggod.session.v1 import session_service_pb2 as pb
from tggod.session.v1 import session_service_pb2_grpc as pb_grpc

IDS = st.sampled_from(["a", "b", "c"])
VALUES = st.integers(min_value=0, max_value=1000)


@dataclass
class Modelled:
    value: int
    version: int = 1
    fence: int = 0
    lock_token: str | None = None


class SessionMachine(RuleBasedStateMachine):
    stub: Any
    raw: redis.Redis

    def __init__(self) -> None:
        super().__init__()
        self.raw.flushall()
        self.model: dict[str, Modelled] = {}
        # Newest token ever issued per id, across deletes and re-creates.
        self.last_token: dict[str, int] = {}

    def _call(self, method: str, request: Any) -> tuple[Any, str | None]:
        try:
            return getattr(self.stub, method)(request, timeout=10), None
        except grpc.RpcError as exc:
            return None, exc.code().name

    @rule(session_id=IDS, value=VALUES)
    def create(self, session_id: str, value: int) -> None:
        request = pb.CreateSessionRequest(
            session_id=session_id, data=struct(v=value), ttl=seconds(600)
        )
        reply, error = self._call("CreateSession", request)
        if session_id in self.model:
            assert error == "ALREADY_EXISTS"
            return
        assert error is None
        assert reply.metadata.version == 1
        self.model[session_id] = Modelled(value)

    @rule(session_id=IDS, touch=st.booleans())
    def get(self, session_id: str, touch: bool) -> None:
        reply, error = self._call(
            "GetSession", pb.GetSessionRequest(session_id=session_id, touch=touch)
        )
        expected = self.model.get(session_id)
        if expected is None:
            assert error == "NOT_FOUND"
            return
        meta = reply.session.metadata
        assert reply.session.data["v"] == expected.value
        assert (meta.version, meta.fencing_token) == (expected.version, expected.fence)
        assert meta.locked == (expected.lock_token is not None)

    @rule(
        session_id=IDS,
        value=VALUES,
        upsert=st.booleans(),
        expected_offset=st.none() | st.sampled_from([-1, 0, 1]),
        fenced=st.none() | st.sampled_from([-1, 0]),
    )
    def update(
        self,
        session_id: str,
        value: int,
        upsert: bool,
        expected_offset: int | None,
        fenced: int | None,
    ) -> None:
        current = self.model.get(session_id)
        version = current.version if current else 0
        fence = current.fence if current else 0
        request = pb.UpdateSessionRequest(session_id=session_id, data=struct(v=value))
        request.allow_missing = upsert
        if expected_offset is not None:
            request.expected_version = max(version + expected_offset, 0)
        if fenced is not None:
            request.fencing_token = max(fence + fenced, 0)
        reply, error = self._call("UpdateSession", request)
        if current is None and not upsert:
            assert error == "NOT_FOUND"
            return
        if request.HasField("fencing_token") and request.fencing_token != fence:
            assert error == "FAILED_PRECONDITION"
            return
        if request.HasField("expected_version") and request.expected_version != version:
            assert error == "ABORTED"
            return
        assert error is None
        assert reply.created == (current is None)
        if current is None:
            self.model[session_id] = Modelled(value)
        else:
            current.value = value
            current.version += 1
        assert reply.metadata.version == self.model[session_id].version

    @rule(session_id=IDS)
    def extend(self, session_id: str) -> None:
        reply, error = self._call(
            "ExtendSession",
            pb.ExtendSessionRequest(session_id=session_id, extension=seconds(1)),
        )
        expected = self.model.get(session_id)
        if expected is None:
            assert error == "NOT_FOUND"
            return
        assert reply.metadata.version == expected.version

    @rule(session_id=IDS)
    def consume(self, session_id: str) -> None:
        reply, error = self._call("ConsumeSession", pb.ConsumeSessionRequest(session_id=session_id))
        expected = self.model.pop(session_id, None)
        if expected is None:
            assert error == "NOT_FOUND"
            return
        assert reply.session.data["v"] == expected.value

    @rule(session_id=IDS)
    def delete(self, session_id: str) -> None:
        reply, error = self._call("DeleteSession", pb.DeleteSessionRequest(session_id=session_id))
        assert error is None
        assert reply.deleted == (self.model.pop(session_id, None) is not None)

    @rule(session_id=IDS)
    def acquire(self, session_id: str) -> None:
        reply, error = self._call(
            "AcquireLock",
            pb.AcquireLockRequest(session_id=session_id, lease_ttl=seconds(300)),
        )
        expected = self.model.get(session_id)
        if expected is None:
            assert error == "NOT_FOUND"
        elif expected.lock_token is not None:
            assert error == "ABORTED"
        else:
            assert error is None
            token = reply.fencing_token
            if expected.fence:
                assert token == expected.fence + 1
            assert token > self.last_token.get(session_id, 0)
            expected.fence = self.last_token[session_id] = token
            expected.lock_token = reply.lock_token

    @rule(session_id=IDS)
    def release(self, session_id: str) -> None:
        expected = self.model.get(session_id)
        token = expected.lock_token if expected else None
        reply, error = self._call(
            "ReleaseLock",
            pb.ReleaseLockRequest(session_id=session_id, lock_token=token or "never-issued"),
        )
        assert error is None
        assert reply.released == (token is not None and expected is not None)
        if expected is not None:
            expected.lock_token = None

    @invariant()
    def listing_matches(self) -> None:
        reply, error = self._call("ListSessions", pb.ListSessionsRequest())
        assert error is None
        assert {m.session_id for m in reply.sessions} == set(self.model)


def _run(port: int, raw: redis.Redis) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        SessionMachine.stub = pb_grpc.SessionServiceStub(channel)
        SessionMachine.raw = raw
        run_state_machine_as_test(
            SessionMachine,
            settings=settings(
                max_examples=30,
                stateful_step_count=20,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )


async def test_service_agrees_with_model(session_server: RunningServer, raw: redis.Redis) -> None:
    await asyncio.to_thread(_run, session_server.port, raw)
    assert raw.ping()
