"""ListSessions paging while the keyspace changes under it."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json

from session_service.server import RunningServer
from tests.helpers.redis import RedisProcess
from tests.session.conftest import create, network_commands
from tggod.session.v1 import session_service_pb2 as pb
from tggod.session.v1 import session_service_pb2_grpc as pb_grpc


async def test_sessions_that_live_through_a_listing_are_all_listed(
    stub: pb_grpc.SessionServiceAsyncStub,
) -> None:
    ids = {f"sweep:{i:03d}" for i in range(200)}
    await asyncio.gather(*(create(stub, i) for i in ids))
    seen: list[str] = []
    token = ""
    while True:
        page = await stub.ListSessions(pb.ListSessionsRequest(page_size=7, page_token=token))
        assert len(page.sessions) <= 7
        listed = [m.session_id for m in page.sessions]
        seen += listed
        # A sweeper deletes what it has listed (expiry does the same): every session not yet
        # listed is still alive, so it must still come.
        await asyncio.gather(
            *(stub.DeleteSession(pb.DeleteSessionRequest(session_id=s)) for s in listed)
        )
        token = page.next_page_token
        if not token:
            break
    assert ids - set(seen) == set()


async def test_a_token_of_the_previous_format_still_resumes(
    stub: pb_grpc.SessionServiceAsyncStub, session_server: RunningServer
) -> None:
    ids = {f"old:{i:02d}" for i in range(30)}
    await asyncio.gather(*(create(stub, i) for i in ids))
    # [server, SCAN cursor, keys of that batch already returned, prefix digest], MAC'd.
    payload = json.dumps(
        ["main", 0, 3, hashlib.sha256(b"").hexdigest()[:16]], separators=(",", ":")
    ).encode()
    raw = payload + session_server.store.crypto.mac(payload)
    token = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    seen: set[str] = set()
    while token:
        page = await stub.ListSessions(pb.ListSessionsRequest(page_size=7, page_token=token))
        seen |= {m.session_id for m in page.sessions}
        token = page.next_page_token
    assert seen == ids


async def test_listing_scans_and_never_uses_keys(
    stub: pb_grpc.SessionServiceAsyncStub, redis_server: RedisProcess
) -> None:
    await asyncio.gather(*(create(stub, f"scan:{i}") for i in range(5)))
    async with network_commands(redis_server) as sent:
        page = await stub.ListSessions(pb.ListSessionsRequest(page_size=100))
    assert len(page.sessions) == 5
    verbs = {command.split()[0].upper().strip('"') for command in sent}
    assert "SCAN" in verbs
    assert "KEYS" not in verbs
