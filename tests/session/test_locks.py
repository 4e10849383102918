"""Leases: mutual exclusion, wake-on-release handover, bounded waits, lease expiry."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
import redis

from tests.session.conftest import ServerFactory, create, fails, seconds, struct
from tggod.session.v1 import session_service_pb2 as pb
from tggod.session.v1 import session_service_pb2_grpc as pb_grpc

Code = grpc.StatusCode


async def test_acquire_refresh_release(
    stub: pb_grpc.SessionServiceAsyncStub, raw: redis.Redis
) -> None:
    await create(stub, "l")
    lease = await stub.AcquireLock(pb.AcquireLockRequest(session_id="l", lease_ttl=seconds(5)))
    assert lease.fencing_token > 0
    assert len(lease.lock_token) >= 32
    meta = (await stub.GetSession(pb.GetSessionRequest(session_id="l"))).session.metadata
    assert (meta.locked, meta.fencing_token) == (True, lease.fencing_token)
    refreshed = await stub.RefreshLock(
        pb.RefreshLockRequest(session_id="l", lock_token=lease.lock_token, lease_ttl=seconds(20))
    )
    assert refreshed.fencing_token == lease.fencing_token
    assert refreshed.lease_expire_time.ToMilliseconds() > lease.lease_expire_time.ToMilliseconds()
    await fails(
        stub.RefreshLock(pb.RefreshLockRequest(session_id="l", lock_token="not-mine")),
        Code.FAILED_PRECONDITION,
        "LOCK_LOST",
    )
    assert not (
        await stub.ReleaseLock(pb.ReleaseLockRequest(session_id="l", lock_token="not-mine"))
    ).released
    released = await stub.ReleaseLock(
        pb.ReleaseLockRequest(session_id="l", lock_token=lease.lock_token)
    )
    assert released.released
    again = await stub.ReleaseLock(
        pb.ReleaseLockRequest(session_id="l", lock_token=lease.lock_token)
    )
    assert not again.released
    # The owner token is a credential: Redis holds only a keyed digest of it.
    for key in raw.scan_iter():
        assert lease.lock_token.encode() not in (raw.dump(key) or b"")
    nxt = await stub.AcquireLock(pb.AcquireLockRequest(session_id="l"))
    assert nxt.fencing_token == lease.fencing_token + 1


async def test_try_once_when_held_is_lock_held(stub: pb_grpc.SessionServiceAsyncStub) -> None:
    await create(stub, "h")
    await stub.AcquireLock(pb.AcquireLockRequest(session_id="h", lease_ttl=seconds(30)))
    started = time.monotonic()
    await fails(stub.AcquireLock(pb.AcquireLockRequest(session_id="h")), Code.ABORTED, "LOCK_HELD")
    await fails(
        stub.AcquireLock(pb.AcquireLockRequest(session_id="h", wait_timeout=seconds(0.3))),
        Code.ABORTED,
        "LOCK_HELD",
    )
    assert time.monotonic() - started < 5


async def test_lease_expiry_while_held(stub: pb_grpc.SessionServiceAsyncStub) -> None:
    await create(stub, "x")
    first = await stub.AcquireLock(pb.AcquireLockRequest(session_id="x", lease_ttl=seconds(0.3)))
    # A waiter is woken by the lease running out even though nobody releases.
    started = time.monotonic()
    second = await stub.AcquireLock(
        pb.AcquireLockRequest(session_id="x", wait_timeout=seconds(10), lease_ttl=seconds(5))
    )
    assert time.monotonic() - started < 5
    assert second.fencing_token == first.fencing_token + 1
    await fails(
        stub.RefreshLock(pb.RefreshLockRequest(session_id="x", lock_token=first.lock_token)),
        Code.FAILED_PRECONDITION,
        "LOCK_LOST",
    )
    assert not (
        await stub.ReleaseLock(pb.ReleaseLockRequest(session_id="x", lock_token=first.lock_token))
    ).released
    # The second holder still holds: the stale release did not free it.
    await fails(stub.AcquireLock(pb.AcquireLockRequest(session_id="x")), Code.ABORTED, "LOCK_HELD")


async def test_refresh_after_session_deleted_is_lock_lost(
    stub: pb_grpc.SessionServiceAsyncStub,
) -> None:
    await create(stub, "gone")
    lease = await stub.AcquireLock(pb.AcquireLockRequest(session_id="gone"))
    await stub.DeleteSession(pb.DeleteSessionRequest(session_id="gone"))
    await fails(
        stub.RefreshLock(pb.RefreshLockRequest(session_id="gone", lock_token=lease.lock_token)),
        Code.FAILED_PRECONDITION,
        "LOCK_LOST",
    )


async def test_release_hands_over_to_a_waiter_promptly(
    stub: pb_grpc.SessionServiceAsyncStub,
) -> None:
    await create(stub, "ho")
    holder = await stub.AcquireLock(pb.AcquireLockRequest(session_id="ho", lease_ttl=seconds(60)))
    waiter = asyncio.ensure_future(
        stub.AcquireLock(pb.AcquireLockRequest(session_id="ho", wait_timeout=seconds(30)))
    )
    await asyncio.sleep(0.3)
    assert not waiter.done()
    released_at = time.monotonic()
    await stub.ReleaseLock(pb.ReleaseLockRequest(session_id="ho", lock_token=holder.lock_token))
    got = await waiter
    # Far below the 60 s lease: the waiter woke on the release, not on expiry or a poll tick.
    assert time.monotonic() - released_at < 2
    assert got.fencing_token == holder.fencing_token + 1


async def test_many_waiters_mutual_exclusion_and_no_starvation(
    stub: pb_grpc.SessionServiceAsyncStub,
) -> None:
    await create(stub, "crowd", counter=0)
    inside = 0
    overlaps = 0
    done: list[int] = []
    outcomes: list[str] = []

    async def worker() -> None:
        nonlocal inside, overlaps
        started = time.monotonic()
        try:
            lease = await stub.AcquireLock(
                pb.AcquireLockRequest(
                    session_id="crowd", wait_timeout=seconds(20), lease_ttl=seconds(30)
                )
            )
        except grpc.aio.AioRpcError as exc:
            # A waiter that gives up does so at its wait, not long after.
            outcomes.append(f"{exc.code().name} after {time.monotonic() - started:.1f}s")
            return
        inside += 1
        overlaps += inside > 1
        got = await stub.GetSession(pb.GetSessionRequest(session_id="crowd"))
        counter = got.session.data.fields["counter"].number_value
        await asyncio.sleep(0.01)
        await stub.UpdateSession(
            pb.UpdateSessionRequest(
                session_id="crowd",
                data=struct(counter=counter + 1),
                fencing_token=lease.fencing_token,
            )
        )
        inside -= 1
        done.append(lease.fencing_token)
        outcomes.append("acquired")
        await stub.ReleaseLock(
            pb.ReleaseLockRequest(session_id="crowd", lock_token=lease.lock_token)
        )

    await asyncio.gather(*(worker() for _ in range(24)))
    assert overlaps == 0
    final = await stub.GetSession(pb.GetSessionRequest(session_id="crowd"))
    assert final.session.data["counter"] == len(done)
    # 24 short sections fit easily in a 20 s wait: nobody may starve.
    assert outcomes == ["acquired"] * 24
    # Every grant got the next token, in the order the grants happened.
    assert done == list(range(done[0], done[0] + 24))
    assert final.session.metadata.fencing_token == done[-1]


async def test_waiter_gives_up_at_its_wait(stub: pb_grpc.SessionServiceAsyncStub) -> None:
    await create(stub, "w")
    await stub.AcquireLock(pb.AcquireLockRequest(session_id="w", lease_ttl=seconds(30)))
    started = time.monotonic()
    await fails(
        stub.AcquireLock(pb.AcquireLockRequest(session_id="w", wait_timeout=seconds(0.5))),
        Code.ABORTED,
        "LOCK_HELD",
    )
    elapsed = time.monotonic() - started
    assert 0.4 < elapsed < 4


async def test_waiters_beyond_the_waiter_pool_still_respect_their_wait(
    make_server: ServerFactory,
) -> None:
    async with make_server(
        REDIS_LOCK_WAIT_CONNECTIONS="1", REDIS_COMMAND_TIMEOUT_SECONDS="0.5"
    ) as served:
        stub = served.stub
        await create(stub, "narrow")
        await stub.AcquireLock(pb.AcquireLockRequest(session_id="narrow", lease_ttl=seconds(30)))

        async def timed_wait() -> float:
            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.AcquireLock(
                    pb.AcquireLockRequest(session_id="narrow", wait_timeout=seconds(0.5))
                )
            assert caught.value.code() == Code.ABORTED
            return time.monotonic() - started

        # Six waiters queue for one connection: served one after another they would
        # take 6 x 0.5 s; each must give up after its wait plus one command timeout.
        elapsed = await asyncio.gather(*(timed_wait() for _ in range(6)))
        assert max(elapsed) < 2.2, elapsed


async def test_a_recreated_session_never_reissues_an_old_fencing_token(
    stub: pb_grpc.SessionServiceAsyncStub,
) -> None:
    await create(stub, "again")
    old = await stub.AcquireLock(pb.AcquireLockRequest(session_id="again"))
    await stub.DeleteSession(pb.DeleteSessionRequest(session_id="again"))
    meta = await create(stub, "again")
    assert meta.fencing_token == 0
    # The old holder, paused through the delete, must not pass as the fencing owner.
    await fails(
        stub.UpdateSession(
            pb.UpdateSessionRequest(
                session_id="again", data=struct(by="old"), fencing_token=old.fencing_token
            )
        ),
        Code.FAILED_PRECONDITION,
        "FENCING_TOKEN_STALE",
    )
    new = await stub.AcquireLock(pb.AcquireLockRequest(session_id="again"))
    assert new.fencing_token > old.fencing_token
    # Not even once the new session has issued as many leases as the old one had.
    await fails(
        stub.UpdateSession(
            pb.UpdateSessionRequest(
                session_id="again", data=struct(by="old"), fencing_token=old.fencing_token
            )
        ),
        Code.FAILED_PRECONDITION,
        "FENCING_TOKEN_STALE",
    )
    updated = await stub.UpdateSession(
        pb.UpdateSessionRequest(
            session_id="again", data=struct(by="new"), fencing_token=new.fencing_token
        )
    )
    assert updated.metadata.fencing_token == new.fencing_token


async def test_a_lease_shortened_by_refresh_is_handed_over_when_it_runs_out(
    stub: pb_grpc.SessionServiceAsyncStub,
) -> None:
    await create(stub, "short")
    holder = await stub.AcquireLock(
        pb.AcquireLockRequest(session_id="short", lease_ttl=seconds(30))
    )
    waiter = asyncio.ensure_future(
        stub.AcquireLock(pb.AcquireLockRequest(session_id="short", wait_timeout=seconds(6)))
    )
    await asyncio.sleep(0.3)  # the waiter now sleeps on the 30 s lease
    await stub.RefreshLock(
        pb.RefreshLockRequest(
            session_id="short", lock_token=holder.lock_token, lease_ttl=seconds(0.3)
        )
    )
    started = time.monotonic()
    # The holder then dies: its shortened lease runs out and the waiter must get the lock.
    got = await waiter
    assert time.monotonic() - started < 3
    assert got.fencing_token == holder.fencing_token + 1


@pytest.mark.parametrize("method", ["ConsumeSession", "DeleteSession"])
async def test_waiters_learn_promptly_that_the_session_is_gone(
    stub: pb_grpc.SessionServiceAsyncStub, method: str
) -> None:
    await create(stub, "gone-soon")
    holder = await stub.AcquireLock(
        pb.AcquireLockRequest(session_id="gone-soon", lease_ttl=seconds(30))
    )
    waiters = [
        asyncio.ensure_future(
            stub.AcquireLock(pb.AcquireLockRequest(session_id="gone-soon", wait_timeout=seconds(8)))
        )
        for _ in range(3)
    ]
    await asyncio.sleep(0.3)  # all three sleep on the 30 s lease
    request = getattr(pb, f"{method}Request")(
        session_id="gone-soon", fencing_token=holder.fencing_token
    )
    started = time.monotonic()
    await getattr(stub, method)(request)  # the login step ends: the lease goes with the session
    for waiter in waiters:
        await fails(waiter, Code.NOT_FOUND, "SESSION_NOT_FOUND")
    assert time.monotonic() - started < 3
