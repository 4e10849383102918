"""Every SessionService RPC through a real channel against a real redis-server."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf import field_mask_pb2, json_format

from tests.session.conftest import create, error_info, fails, seconds, struct, violations
from tggod.session.v1 import session_service_pb2 as pb
from tggod.session.v1 import session_service_pb2_grpc as pb_grpc

Code = grpc.StatusCode


async def test_create_then_get_returns_data_and_metadata(
    stub: pb_grpc.SessionServiceAsyncStub,
) -> None:
    created = await stub.CreateSession(
        pb.CreateSessionRequest(
            session_id="login:42",
            data=struct(phone="+15550001", n=3, nested={"a": [1, "x"]}),
            ttl=seconds(60),
            max_lifetime=seconds(3600),
        )
    )
    meta = created.metadata
    assert meta.session_id == "login:42"
    assert meta.version == 1
    assert meta.idle_ttl.ToMilliseconds() == 60_000
    assert meta.expire_time.ToMilliseconds() - meta.create_time.ToMilliseconds() == 60_000
    assert meta.max_expire_time.ToMilliseconds() - meta.create_time.ToMilliseconds() == 3_600_000
    assert (meta.fencing_token, meta.locked) == (0, False)

    got = (await stub.GetSession(pb.GetSessionRequest(session_id="login:42"))).session
    assert json_format.MessageToDict(got.data) == {
        "phone": "+15550001",
        "n": 3.0,
        "nested": {"a": [1.0, "x"]},
    }
    assert got.metadata == meta


async def test_create_defaults_and_generated_id(stub: pb_grpc.SessionServiceAsyncStub) -> None:
    meta = (await stub.CreateSession(pb.CreateSessionRequest(data=struct()))).metadata
    assert len(meta.session_id) == 22  # 128 random bits, URL-safe base64
    assert meta.idle_ttl.ToSeconds() == 600
    assert meta.max_expire_time.ToSeconds() - meta.create_time.ToSeconds() == 86400
    other = (await stub.CreateSession(pb.CreateSessionRequest(data=struct()))).metadata
    assert other.session_id != meta.session_id


async def test_create_existing_id_is_already_exists(stub: pb_grpc.SessionServiceAsyncStub) -> None:
    await create(stub, "dup", a=1)
    await fails(
        stub.CreateSession(pb.CreateSessionRequest(session_id="dup", data=struct(a=2))),
        Code.ALREADY_EXISTS,
        "SESSION_ALREADY_EXISTS",
    )
    got = await stub.GetSession(pb.GetSessionRequest(session_id="dup"))
    assert got.session.data["a"] == 1


@pytest.mark.parametrize(
    ("request_", "fields"),
    [
        (pb.CreateSessionRequest(session_id="ok"), {"data"}),
        (pb.CreateSessionRequest(session_id="has space", data=struct()), {"session_id"}),
        (pb.CreateSessionRequest(session_id="x" * 129, data=struct()), {"session_id"}),
        (pb.CreateSessionRequest(session_id="ok", data=struct(), ttl=seconds(0.5)), {"ttl"}),
        (pb.CreateSessionRequest(session_id="ok", data=struct(), ttl=seconds(86401)), {"ttl"}),
        (
            pb.CreateSessionRequest(
                session_id="ok", data=struct(), ttl=seconds(60), max_lifetime=seconds(30)
            ),
            {"max_lifetime"},
        ),
        (
            pb.CreateSessionRequest(
                session_id="bad id", data=struct(blob="x" * 70_000), ttl=seconds(0)
            ),
            {"session_id", "data", "ttl"},
        ),
    ],
)
async def test_create_validation(
    stub: pb_grpc.SessionServiceAsyncStub, request_: pb.CreateSessionRequest, fields: set[str]
) -> None:
    error = await fails(stub.CreateSession(request_), Code.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert violations(error) == fields


@pytest.mark.parametrize(
    ("method", "request_", "fields"),
    [
        ("GetSession", pb.GetSessionRequest(session_id=""), {"session_id"}),
        ("UpdateSession", pb.UpdateSessionRequest(session_id="a/b"), {"session_id"}),
        ("DeleteSession", pb.DeleteSessionRequest(session_id="s", expected_version=-1),
         {"expected_version"}),
        ("ExtendSession", pb.ExtendSessionRequest(session_id="s"), {"extension"}),
        ("ExtendSession", pb.ExtendSessionRequest(session_id="s", extension=seconds(90000)),
         {"extension"}),
        ("ConsumeSession", pb.ConsumeSessionRequest(session_id="s", fencing_token=-3),
         {"fencing_token"}),
        ("ListSessions", pb.ListSessionsRequest(page_size=1001), {"page_size"}),
        ("ListSessions", pb.ListSessionsRequest(page_token="forged"), {"page_token"}),
        ("AcquireLock", pb.AcquireLockRequest(session_id="s", lease_ttl=seconds(0.05)),
         {"lease_ttl"}),
        ("RefreshLock", pb.RefreshLockRequest(session_id="s"), {"lock_token"}),
        ("ReleaseLock", pb.ReleaseLockRequest(session_id="s"), {"lock_token"}),
    ],
)  # fmt: skip
async def test_request_validation(
    stub: pb_grpc.SessionServiceAsyncStub, method: str, request_: object, fields: set[str]
) -> None:
    error = await fails(getattr(stub, method)(request_), Code.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert violations(error) == fields


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.GetSession(pb.GetSessionRequest(session_id="nope")),
        lambda s: s.UpdateSession(pb.UpdateSessionRequest(session_id="nope", data=struct())),
        lambda s: s.ExtendSession(pb.ExtendSessionRequest(session_id="nope", extension=seconds(1))),
        lambda s: s.ConsumeSession(pb.ConsumeSessionRequest(session_id="nope")),
        lambda s: s.AcquireLock(pb.AcquireLockRequest(session_id="nope")),
    ],
)
async def test_absent_session_is_not_found(
    stub: pb_grpc.SessionServiceAsyncStub, call: object
) -> None:
    await fails(call(stub), Code.NOT_FOUND, "SESSION_NOT_FOUND")  # type: ignore[operator]


async def test_update_replace_mask_ttl_and_version(stub: pb_grpc.SessionServiceAsyncStub) -> None:
    await create(stub, "u", a=1, b=2)
    replaced = await stub.UpdateSession(
        pb.UpdateSessionRequest(session_id="u", data=struct(c=3), expected_version=1)
    )
    assert (replaced.metadata.version, replaced.created) == (2, False)
    masked = await stub.UpdateSession(
        pb.UpdateSessionRequest(
            session_id="u",
            data=struct(d=4, c=30),
            update_mask=field_mask_pb2.FieldMask(paths=["d", "missing"]),
            ttl=seconds(5),
        )
    )
    assert masked.metadata.version == 3
    assert masked.metadata.idle_ttl.ToSeconds() == 5
    got = (await stub.GetSession(pb.GetSessionRequest(session_id="u"))).session
    assert json_format.MessageToDict(got.data) == {"c": 3.0, "d": 4.0}
    removed = await stub.UpdateSession(
        pb.UpdateSessionRequest(session_id="u", update_mask=field_mask_pb2.FieldMask(paths=["c"]))
    )
    assert removed.metadata.version == 4
    got = (await stub.GetSession(pb.GetSessionRequest(session_id="u"))).session
    assert json_format.MessageToDict(got.data) == {"d": 4.0}


async def test_version_conflicts(stub: pb_grpc.SessionServiceAsyncStub) -> None:
    await create(stub, "v")
    await stub.UpdateSession(pb.UpdateSessionRequest(session_id="v", data=struct(x=1)))
    for call in (
        stub.UpdateSession(
            pb.UpdateSessionRequest(session_id="v", data=struct(), expected_version=1)
        ),
        stub.UpdateSession(
            pb.UpdateSessionRequest(
                session_id="v",
                data=struct(y=1),
                update_mask=field_mask_pb2.FieldMask(paths=["y"]),
                expected_version=5,
            )
        ),
        stub.DeleteSession(pb.DeleteSessionRequest(session_id="v", expected_version=1)),
        stub.ConsumeSession(pb.ConsumeSessionRequest(session_id="v", expected_version=3)),
    ):
        error = await fails(call, Code.ABORTED, "VERSION_MISMATCH")
        assert error_info(error).metadata["current_version"] == "2"
    got = await stub.GetSession(pb.GetSessionRequest(session_id="v"))
    assert (got.session.metadata.version, got.session.data["x"]) == (2, 1)


async def test_upsert_and_only_if_absent(stub: pb_grpc.SessionServiceAsyncStub) -> None:
    first = await stub.UpdateSession(
        pb.UpdateSessionRequest(
            session_id="up", data=struct(a=1), allow_missing=True, expected_version=0,
            ttl=seconds(30), max_lifetime=seconds(60),
        )
    )  # fmt: skip
    assert (first.created, first.metadata.version) == (True, 1)
    assert first.metadata.idle_ttl.ToSeconds() == 30
    lifetime = first.metadata.max_expire_time.ToSeconds() - first.metadata.create_time.ToSeconds()
    assert lifetime == 60
    await fails(
        stub.UpdateSession(
            pb.UpdateSessionRequest(
                session_id="up", data=struct(), allow_missing=True, expected_version=0
            )
        ),
        Code.ABORTED,
        "VERSION_MISMATCH",
    )
    second = await stub.UpdateSession(
        pb.UpdateSessionRequest(session_id="up", data=struct(a=2), allow_missing=True)
    )
    assert (second.created, second.metadata.version) == (False, 2)
    masked = await stub.UpdateSession(
        pb.UpdateSessionRequest(
            session_id="up2",
            data=struct(a=1, b=2),
            update_mask=field_mask_pb2.FieldMask(paths=["b"]),
            allow_missing=True,
        )
    )
    assert masked.created
    got = await stub.GetSession(pb.GetSessionRequest(session_id="up2"))
    assert json_format.MessageToDict(got.session.data) == {"b": 2.0}


async def test_delete_is_idempotent_and_removes_everything(
    stub: pb_grpc.SessionServiceAsyncStub,
) -> None:
    await create(stub, "d")
    await stub.AcquireLock(pb.AcquireLockRequest(session_id="d"))
    assert (await stub.DeleteSession(pb.DeleteSessionRequest(session_id="d"))).deleted
    assert not (await stub.DeleteSession(pb.DeleteSessionRequest(session_id="d"))).deleted
    await fails(
        stub.GetSession(pb.GetSessionRequest(session_id="d")), Code.NOT_FOUND, "SESSION_NOT_FOUND"
    )
    meta = await create(stub, "d")
    assert (meta.version, meta.locked, meta.fencing_token) == (1, False, 0)


async def test_ttl_expiry_is_the_same_instant_for_every_rpc(
    stub: pb_grpc.SessionServiceAsyncStub,
) -> None:
    await stub.CreateSession(pb.CreateSessionRequest(session_id="t", data=struct(), ttl=seconds(1)))
    await stub.AcquireLock(pb.AcquireLockRequest(session_id="t", lease_ttl=seconds(60)))
    await asyncio.sleep(1.3)
    await fails(
        stub.GetSession(pb.GetSessionRequest(session_id="t")), Code.NOT_FOUND, "SESSION_NOT_FOUND"
    )
    await fails(
        stub.ExtendSession(pb.ExtendSessionRequest(session_id="t", extension=seconds(60))),
        Code.NOT_FOUND,
        "SESSION_NOT_FOUND",
    )
    await fails(
        stub.ConsumeSession(pb.ConsumeSessionRequest(session_id="t")),
        Code.NOT_FOUND,
        "SESSION_NOT_FOUND",
    )
    await fails(
        stub.AcquireLock(pb.AcquireLockRequest(session_id="t")), Code.NOT_FOUND, "SESSION_NOT_FOUND"
    )
    assert not (await stub.DeleteSession(pb.DeleteSessionRequest(session_id="t"))).deleted
    listed = await stub.ListSessions(pb.ListSessionsRequest())
    assert list(listed.sessions) == []
    # A namesake starts fresh: no lease or fencing state leaks from the expired session.
    meta = await create(stub, "t")
    assert (meta.locked, meta.fencing_token) == (False, 0)


async def test_extend_clips_to_cap_and_says_what_it_granted(
    stub: pb_grpc.SessionServiceAsyncStub,
) -> None:
    meta = (
        await stub.CreateSession(
            pb.CreateSessionRequest(
                session_id="e", data=struct(), ttl=seconds(10), max_lifetime=seconds(30)
            )
        )
    ).metadata
    full = await stub.ExtendSession(pb.ExtendSessionRequest(session_id="e", extension=seconds(5)))
    assert (full.granted_extension.ToMilliseconds(), full.clipped) == (5000, False)
    assert full.metadata.expire_time.ToMilliseconds() == meta.expire_time.ToMilliseconds() + 5000
    clipped = await stub.ExtendSession(
        pb.ExtendSessionRequest(session_id="e", extension=seconds(60))
    )
    assert clipped.clipped
    assert clipped.granted_extension.ToMilliseconds() == 15_000
    assert clipped.metadata.expire_time == meta.max_expire_time
    at_cap = await stub.ExtendSession(pb.ExtendSessionRequest(session_id="e", extension=seconds(1)))
    assert (at_cap.granted_extension.ToMilliseconds(), at_cap.clipped) == (0, True)
    assert at_cap.metadata.version == 1  # extending is not a data write


async def test_touch_slides_within_cap_and_pure_get_does_not(
    stub: pb_grpc.SessionServiceAsyncStub,
) -> None:
    created = await stub.CreateSession(
        pb.CreateSessionRequest(
            session_id="touch", data=struct(), ttl=seconds(2), max_lifetime=seconds(3.5)
        )
    )
    await asyncio.sleep(1.0)
    pure = (await stub.GetSession(pb.GetSessionRequest(session_id="touch"))).session.metadata
    assert pure.expire_time == created.metadata.expire_time
    touched = (
        await stub.GetSession(pb.GetSessionRequest(session_id="touch", touch=True))
    ).session.metadata
    assert touched.expire_time.ToMilliseconds() > pure.expire_time.ToMilliseconds() + 800
    assert touched.expire_time.ToMilliseconds() <= touched.max_expire_time.ToMilliseconds()
    await asyncio.sleep(1.2)  # past the original idle expiry, alive thanks to the touch
    again = await stub.GetSession(pb.GetSessionRequest(session_id="touch", touch=True))
    assert again.session.metadata.expire_time == again.session.metadata.max_expire_time
    await asyncio.sleep(1.5)  # past the cap: no touch can keep it
    await fails(
        stub.GetSession(pb.GetSessionRequest(session_id="touch", touch=True)),
        Code.NOT_FOUND,
        "SESSION_NOT_FOUND",
    )


async def test_update_ttl_is_clipped_to_cap(stub: pb_grpc.SessionServiceAsyncStub) -> None:
    await stub.CreateSession(
        pb.CreateSessionRequest(
            session_id="c", data=struct(), ttl=seconds(5), max_lifetime=seconds(20)
        )
    )
    updated = await stub.UpdateSession(
        pb.UpdateSessionRequest(session_id="c", data=struct(), ttl=seconds(3600))
    )
    assert updated.metadata.expire_time == updated.metadata.max_expire_time


async def test_fifty_concurrent_consumes_have_exactly_one_winner(
    stub: pb_grpc.SessionServiceAsyncStub,
) -> None:
    await create(stub, "otp", phone_code_hash="h")
    results = await asyncio.gather(
        *(stub.ConsumeSession(pb.ConsumeSessionRequest(session_id="otp")) for _ in range(50)),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, pb.ConsumeSessionResponse)]
    losers = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(winners) == 1
    assert winners[0].session.data["phone_code_hash"] == "h"
    assert len(losers) == 49
    assert {(e.code(), error_info(e).reason) for e in losers} == {
        (Code.NOT_FOUND, "SESSION_NOT_FOUND")
    }


async def test_fencing_rejects_older_and_unissued_tokens(
    stub: pb_grpc.SessionServiceAsyncStub,
) -> None:
    await create(stub, "f")
    first = await stub.AcquireLock(pb.AcquireLockRequest(session_id="f", lease_ttl=seconds(0.2)))
    ok = await stub.UpdateSession(
        pb.UpdateSessionRequest(
            session_id="f", data=struct(by=1), fencing_token=first.fencing_token
        )
    )
    assert ok.metadata.fencing_token == first.fencing_token
    await asyncio.sleep(0.3)  # the first lease runs out; someone else takes over
    second = await stub.AcquireLock(pb.AcquireLockRequest(session_id="f"))
    assert second.fencing_token > first.fencing_token
    stale = first.fencing_token
    for call in (
        stub.UpdateSession(
            pb.UpdateSessionRequest(session_id="f", data=struct(by=1), fencing_token=stale)
        ),
        stub.UpdateSession(
            pb.UpdateSessionRequest(
                session_id="f", data=struct(), fencing_token=second.fencing_token + 1
            )
        ),
        stub.DeleteSession(pb.DeleteSessionRequest(session_id="f", fencing_token=stale)),
        stub.ExtendSession(
            pb.ExtendSessionRequest(session_id="f", extension=seconds(1), fencing_token=stale)
        ),
        stub.ConsumeSession(pb.ConsumeSessionRequest(session_id="f", fencing_token=stale)),
    ):
        await fails(call, Code.FAILED_PRECONDITION, "FENCING_TOKEN_STALE")
    fresh = await stub.ConsumeSession(
        pb.ConsumeSessionRequest(session_id="f", fencing_token=second.fencing_token)
    )
    assert fresh.session.metadata.fencing_token == second.fencing_token
    assert fresh.session.metadata.locked


async def test_list_pages_metadata_with_prefix(stub: pb_grpc.SessionServiceAsyncStub) -> None:
    ids = {f"user:{i:03d}" for i in range(37)} | {f"bot:{i}" for i in range(5)}
    await asyncio.gather(*(create(stub, i, secret="s") for i in ids))
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await stub.ListSessions(
            pb.ListSessionsRequest(page_size=10, page_token=token, session_id_prefix="user:")
        )
        assert len(page.sessions) <= 10
        seen += [m.session_id for m in page.sessions]
        assert all(m.version == 1 and m.expire_time.seconds for m in page.sessions)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted(i for i in ids if i.startswith("user:"))
    assert pages >= 4
    everything = await stub.ListSessions(pb.ListSessionsRequest(page_size=1000))
    assert {m.session_id for m in everything.sessions} == ids
    assert not everything.next_page_token
    await fails(
        stub.ListSessions(
            pb.ListSessionsRequest(page_token=token or "x", session_id_prefix="bot:")
        ),
        Code.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )


async def test_list_token_is_bound_to_its_prefix(stub: pb_grpc.SessionServiceAsyncStub) -> None:
    await asyncio.gather(*(create(stub, f"p{i}") for i in range(5)))
    page = await stub.ListSessions(pb.ListSessionsRequest(page_size=2, session_id_prefix="p"))
    assert page.next_page_token
    await fails(
        stub.ListSessions(
            pb.ListSessionsRequest(
                page_size=2, page_token=page.next_page_token, session_id_prefix="q"
            )
        ),
        Code.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )


async def test_deadline_is_honoured(stub: pb_grpc.SessionServiceAsyncStub) -> None:
    await create(stub, "held")
    await stub.AcquireLock(pb.AcquireLockRequest(session_id="held", lease_ttl=seconds(30)))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.AcquireLock(
            pb.AcquireLockRequest(session_id="held", wait_timeout=seconds(30)), timeout=0.5
        )
    assert caught.value.code() in (Code.ABORTED, Code.DEADLINE_EXCEEDED)
    assert loop.time() - started < 3


async def test_concurrent_masked_updates_of_one_session_all_apply(
    stub: pb_grpc.SessionServiceAsyncStub,
) -> None:
    # Each masked update reads, merges and writes; only the per-session serialisation
    # inside the service keeps forty of them from tripping over each other's versions.
    await create(stub, "many")
    await asyncio.gather(
        *(
            stub.UpdateSession(
                pb.UpdateSessionRequest(
                    session_id="many",
                    data=struct(**{f"k{i}": i}),
                    update_mask=field_mask_pb2.FieldMask(paths=[f"k{i}"]),
                )
            )
            for i in range(40)
        )
    )
    got = (await stub.GetSession(pb.GetSessionRequest(session_id="many"))).session
    assert json_format.MessageToDict(got.data) == {f"k{i}": float(i) for i in range(40)}
    assert got.metadata.version == 41
