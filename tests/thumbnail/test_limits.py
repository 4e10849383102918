"""Timeouts, saturation, cancellation, upload caps and shutdown: nothing left behind."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from tests.thumbnail.conftest import (
    ENGINES,
    Failure,
    Result,
    ServerFactory,
    decoder_processes,
    descendants,
    eventually,
    failed,
    failure_of,
    generate,
    healthy,
    ok,
    spool_files,
    zombies,
)
from tggod.thumbnail.v1 import thumbnail_service_pb2 as pb
from tggod.thumbnail.v1 import thumbnail_service_pb2_grpc as pb_grpc
from thumbnail_service.client import ThumbnailClient, ThumbnailError
from thumbnail_service.errors import MediaError
from thumbnail_service.limits import Admission
from thumbnail_service.spool import Spool

# An exact seek deep into a clip with a single keyframe: hundreds of frames to decode.
SLOW = {"position_fraction": 0.9, "accuracy": pb.SEEK_ACCURACY_EXACT}
MEDIUM = {"position_fraction": 0.3, "accuracy": pb.SEEK_ACCURACY_EXACT}


@pytest.fixture(scope="module")
def slow_root(tmp_path_factory: pytest.TempPathFactory, slow_clip: Path) -> Path:
    root = tmp_path_factory.mktemp("slow-root")
    shutil.copyfile(slow_clip, root / "slow.mp4")
    return root


def pool_workers() -> set[int]:
    """The PyAV workers: children of the multiprocessing fork server."""
    servers = {pid for pid, _, cmd in descendants() if "forkserver" in cmd and "main(" in cmd}
    return {
        pid
        for pid, _, _ in descendants()
        if any(pid in {c for c, _, _ in descendants(s)} for s in servers)
    }


def limits_of(pid: int) -> dict[str, str]:
    """Soft limits from /proc/<pid>/limits, by name."""
    lines = Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]
    return {line[:26].strip(): line[26:47].strip() for line in lines}


async def test_workers_and_decoders_run_under_resource_limits(
    make_server: ServerFactory, slow_root: Path
) -> None:
    async with make_server(
        root=slow_root, WORKER_MEMORY_MB="1536", WORKER_CPU_SECONDS="45", MAX_CONCURRENCY="1"
    ) as custom:
        (worker,) = pool_workers()
        limits = limits_of(worker)
        assert limits["Max address space"] == str(1536 << 20)
        assert 45 <= int(limits["Max cpu time"]) <= 60
        call = asyncio.create_task(
            generate(custom.channel, media_path="slow.mp4", engine=pb.ENGINE_FFMPEG, **SLOW)
        )
        assert await eventually(lambda: decoder_processes() != [])
        decoder = limits_of(decoder_processes()[0][0])
        assert decoder["Max address space"] == str(1536 << 20)
        assert decoder["Max cpu time"] == "45"
        ok(await call)


def clean(spool_root: Path) -> bool:
    return decoder_processes() == [] and spool_files(spool_root) == [] and zombies() == []


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind", ["upload", "media_path"])
async def test_processing_timeout_kills_the_decoder(
    make_server: ServerFactory, slow_root: Path, engine: str, kind: str
) -> None:
    async with make_server(
        root=slow_root, PROCESSING_TIMEOUT_SECONDS="0.2", MAX_CONCURRENCY="1"
    ) as custom:
        workers_before = pool_workers()
        assert len(workers_before) == 1
        source = (
            {"upload": (slow_root / "slow.mp4").read_bytes()}
            if kind == "upload"
            else {"media_path": "slow.mp4"}
        )
        failure = failed(await generate(custom.channel, **source, engine=ENGINES[engine], **SLOW))
        assert (failure.code, failure.reason) == (
            grpc.StatusCode.DEADLINE_EXCEEDED,
            "PROCESSING_TIMEOUT",
        )
        assert await eventually(lambda: clean(custom.spool_root))
        if engine == "pyav":
            # The worker that was decoding was killed and replaced by a fresh one.
            assert await eventually(
                lambda: len(pool_workers()) == 1 and not pool_workers() & workers_before
            )
        assert await healthy(custom.channel)


async def test_client_deadline_also_bounds_the_work(
    make_server: ServerFactory, slow_root: Path
) -> None:
    async with make_server(root=slow_root) as custom:
        for engine in ENGINES.values():
            stub = pb_grpc.ThumbnailServiceStub(custom.channel)
            header = pb.GenerateThumbnailHeader(
                source=pb.VideoSource(media_path="slow.mp4"),
                options=pb.ThumbnailOptions(engine=engine, **SLOW),
            )
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                async for _ in stub.GenerateThumbnail(
                    iter([pb.GenerateThumbnailRequest(header=header)]), timeout=0.5
                ):
                    pass
            # Usually the server's PROCESSING_TIMEOUT, or the client's own timer on a busy box.
            assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert await eventually(lambda: clean(custom.spool_root))


async def test_saturation_refuses_at_once_and_serves_the_rest(
    make_server: ServerFactory, slow_root: Path
) -> None:
    async with make_server(root=slow_root, MAX_CONCURRENCY="1", MAX_QUEUE="1") as custom:
        started = asyncio.get_running_loop().time()
        results = await asyncio.gather(
            *(
                generate(custom.channel, media_path="slow.mp4", engine=pb.ENGINE_PYAV, **MEDIUM)
                for _ in range(6)
            )
        )
        refused = [r for r in results if isinstance(r, Failure)]
        served = [r for r in results if isinstance(r, Result)]
        assert len(served) >= 2
        assert len(refused) >= 1
        assert all(
            (r.code, r.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "OVERLOADED")
            for r in refused
        )
        assert all(r.metadata.width == 320 for r in served)
        assert asyncio.get_running_loop().time() - started < 60
        # Once the backlog is gone the server takes work again.
        ok(await generate(custom.channel, media_path="slow.mp4", engine=pb.ENGINE_PYAV))


async def _stalled_upload(
    data: bytes, release: asyncio.Event
) -> AsyncIterator[pb.GenerateThumbnailRequest]:
    yield pb.GenerateThumbnailRequest(
        header=pb.GenerateThumbnailHeader(source=pb.VideoSource(upload=pb.UploadSource()))
    )
    yield pb.GenerateThumbnailRequest(chunk=data[: 1 << 20])
    await release.wait()


async def test_cancel_mid_upload_removes_the_spool_file(
    make_server: ServerFactory, slow_root: Path
) -> None:
    async with make_server(root=slow_root) as custom:
        release = asyncio.Event()
        stub = pb_grpc.ThumbnailServiceStub(custom.channel)
        call = stub.GenerateThumbnail(
            _stalled_upload((slow_root / "slow.mp4").read_bytes(), release), timeout=60
        )
        assert await eventually(lambda: len(spool_files(custom.spool_root)) == 1)
        spooled = spool_files(custom.spool_root)[0]
        assert spooled.stat().st_mode & 0o777 == 0o600
        assert spooled.parent.stat().st_mode & 0o777 == 0o700
        call.cancel()
        assert await eventually(lambda: clean(custom.spool_root))
        release.set()
        assert await healthy(custom.channel)


@pytest.mark.parametrize("engine", ENGINES)
async def test_cancel_mid_processing_kills_the_work(
    make_server: ServerFactory, slow_root: Path, engine: str
) -> None:
    async with make_server(root=slow_root, MAX_CONCURRENCY="1") as custom:
        workers_before = pool_workers()
        stub = pb_grpc.ThumbnailServiceStub(custom.channel)
        data = (slow_root / "slow.mp4").read_bytes()

        async def requests() -> AsyncIterator[pb.GenerateThumbnailRequest]:
            options = pb.ThumbnailOptions(engine=ENGINES[engine], **SLOW)
            yield pb.GenerateThumbnailRequest(
                header=pb.GenerateThumbnailHeader(
                    source=pb.VideoSource(upload=pb.UploadSource(size_bytes=len(data))),
                    options=options,
                )
            )
            for offset in range(0, len(data), 1 << 20):
                yield pb.GenerateThumbnailRequest(chunk=data[offset : offset + (1 << 20)])

        call = stub.GenerateThumbnail(requests(), timeout=60)
        if engine == "ffmpeg":
            assert await eventually(lambda: decoder_processes() != [])
        else:
            await asyncio.sleep(0.5)  # the upload is spooled and the worker is decoding
            assert spool_files(custom.spool_root) != []
        call.cancel()
        assert await eventually(lambda: clean(custom.spool_root))
        if engine == "pyav":
            assert await eventually(
                lambda: len(pool_workers()) == 1 and not pool_workers() & workers_before
            )
        assert await healthy(custom.channel)


async def test_upload_size_cap(make_server: ServerFactory, sample_videos: dict[str, Path]) -> None:
    data = sample_videos["mp4"].read_bytes()
    async with make_server(MAX_UPLOAD_BYTES=str(len(data) - 1)) as custom:
        declared = failed(await generate(custom.channel, upload=data))
        assert (declared.code, declared.reason) == (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "UPLOAD_TOO_LARGE",
        )
        stub = pb_grpc.ThumbnailServiceStub(custom.channel)

        async def undeclared() -> AsyncIterator[pb.GenerateThumbnailRequest]:
            yield pb.GenerateThumbnailRequest(
                header=pb.GenerateThumbnailHeader(source=pb.VideoSource(upload=pb.UploadSource()))
            )
            for offset in range(0, len(data), 4096):
                yield pb.GenerateThumbnailRequest(chunk=data[offset : offset + 4096])

        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in stub.GenerateThumbnail(undeclared(), timeout=30):
                pass
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "UPLOAD_TOO_LARGE" in str(caught.value.trailing_metadata())
        assert spool_files(custom.spool_root) == []


async def test_the_client_always_sees_the_real_refusal_of_an_oversized_upload(
    make_server: ServerFactory, sample_videos: dict[str, Path]
) -> None:
    # Without the server's go-ahead the client would race the refusal with its first chunk, and
    # gRPC may then report a failed write (INTERNAL) instead of the server's status.
    data = sample_videos["mp4"].read_bytes()
    async with (
        make_server(MAX_UPLOAD_BYTES=str(len(data) - 1)) as custom,
        ThumbnailClient(f"127.0.0.1:{custom.running.port}", chunk_bytes=16 * 1024) as client,
    ):
        for _ in range(20):
            with pytest.raises(ThumbnailError) as caught:
                await client.generate(data)
            assert (caught.value.code, caught.value.reason) == (
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "UPLOAD_TOO_LARGE",
            )
        with pytest.raises(ThumbnailError) as probed:
            await client.probe(data)
        assert probed.value.reason == "UPLOAD_TOO_LARGE"
        assert spool_files(custom.spool_root) == []


async def test_graceful_shutdown_finishes_in_flight_work_then_refuses(
    make_server: ServerFactory, slow_root: Path
) -> None:
    async with make_server(root=slow_root) as custom:
        in_flight = asyncio.create_task(
            generate(custom.channel, media_path="slow.mp4", engine=pb.ENGINE_PYAV, **MEDIUM)
        )
        await asyncio.sleep(0.2)
        stopping = asyncio.create_task(custom.running.stop(30))
        await asyncio.sleep(0.1)
        header = pb.GenerateThumbnailHeader(source=pb.VideoSource(media_path="slow.mp4"))
        late = pb_grpc.ThumbnailServiceStub(custom.channel).GenerateThumbnail(
            iter([pb.GenerateThumbnailRequest(header=header)]), timeout=5
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in late:
                pass
        # SHUTTING_DOWN, or refused at the transport once the listener is closed.
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert ok(await in_flight).metadata.width == 320
        await stopping
        assert not custom.running.spool_dir.exists()
        assert pool_workers() == set()


async def test_shutdown_grace_expiry_kills_the_rest(
    make_server: ServerFactory, slow_root: Path
) -> None:
    async with make_server(root=slow_root) as custom:
        header = pb.GenerateThumbnailHeader(
            source=pb.VideoSource(media_path="slow.mp4"),
            options=pb.ThumbnailOptions(engine=pb.ENGINE_FFMPEG, **SLOW),
        )
        call = pb_grpc.ThumbnailServiceStub(custom.channel).GenerateThumbnail(
            iter([pb.GenerateThumbnailRequest(header=header)]), timeout=60
        )
        assert await eventually(lambda: decoder_processes() != [])
        await custom.running.stop(0.2)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in call:
                pass
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert await eventually(lambda: decoder_processes() == [] and zombies() == [])
        assert not custom.running.spool_dir.exists()


async def test_a_crashed_worker_falls_back_to_ffmpeg(
    make_server: ServerFactory, slow_root: Path
) -> None:
    async with make_server(root=slow_root, MAX_CONCURRENCY="1") as custom:
        (worker,) = pool_workers()
        call = asyncio.create_task(generate(custom.channel, media_path="slow.mp4", **SLOW))
        await asyncio.sleep(0.3)  # the worker is decoding
        os.kill(worker, signal.SIGSEGV)  # what a decoder bug on a hostile file looks like
        result = ok(await call)
        assert result.metadata.fallback_used
        assert result.metadata.engine == pb.ENGINE_FFMPEG
        assert (result.metadata.width, result.metadata.height) == (320, 180)
        assert await eventually(lambda: len(pool_workers()) == 1 and worker not in pool_workers())
        ok(await generate(custom.channel, media_path="slow.mp4", engine=pb.ENGINE_PYAV))


async def test_a_stalled_stream_gives_its_admission_back(
    make_server: ServerFactory, sample_videos: dict[str, Path]
) -> None:
    # Capacity one: a client that stops sending would otherwise refuse everyone else forever.
    async with make_server(
        MAX_CONCURRENCY="1", MAX_QUEUE="0", PROCESSING_TIMEOUT_SECONDS="1"
    ) as custom:
        stub = pb_grpc.ThumbnailServiceStub(custom.channel)
        release = asyncio.Event()

        async def media_path_left_open() -> AsyncIterator[pb.GenerateThumbnailRequest]:
            header = pb.GenerateThumbnailHeader(source=pb.VideoSource(media_path="sample.mp4"))
            yield pb.GenerateThumbnailRequest(header=header)
            await release.wait()  # never half-closes

        stalled = {
            "upload": _stalled_upload(sample_videos["mp4"].read_bytes(), release),
            "media_path": media_path_left_open(),
        }
        for kind, requests in stalled.items():
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                async for _ in stub.GenerateThumbnail(requests, timeout=20):
                    pass
            failure = failure_of(caught.value)
            assert (failure.code, failure.reason) == (
                grpc.StatusCode.DEADLINE_EXCEEDED,
                "PROCESSING_TIMEOUT",
            ), kind
            assert await eventually(lambda: clean(custom.spool_root))
            ok(await generate(custom.channel, media_path="sample.mp4"))
        release.set()


async def test_admission_never_leaks_a_place_on_errors_or_cancellation() -> None:
    admission = Admission(concurrency=1, queue=1)
    holder_in, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        with admission.admit():
            async with admission.slot():
                holder_in.set()
                await release.wait()

    async def queue_for_a_slot() -> None:
        with admission.admit():
            async with admission.slot():
                pass

    holder = asyncio.create_task(hold())
    await holder_in.wait()
    waiter = asyncio.create_task(queue_for_a_slot())
    await asyncio.sleep(0.01)
    with pytest.raises(MediaError) as caught, admission.admit():
        pass
    assert caught.value.reason == "OVERLOADED"
    waiter.cancel()  # a client that goes away while queued
    with pytest.raises(asyncio.CancelledError):
        await waiter
    release.set()
    await holder
    for _ in range(2):
        with pytest.raises(ZeroDivisionError), admission.admit():
            async with asyncio.timeout(1), admission.slot():
                1 / 0  # noqa: B018
    # Every place is free again: two admissions, and the one slot at once.
    with admission.admit(), admission.admit():
        async with asyncio.timeout(1), admission.slot():
            pass


def test_a_new_spool_removes_what_a_dead_process_left(tmp_path: Path) -> None:
    live = Spool(tmp_path, 1024)
    abandoned = tmp_path / "thumbnail-spool-crashed"  # its process died: nobody holds its lock
    abandoned.mkdir()
    (abandoned / "upload-half").write_bytes(b"\0" * 1000)
    unrelated = tmp_path / "something-else"
    unrelated.mkdir()
    second = Spool(tmp_path, 1024)
    try:
        assert not abandoned.exists()
        assert live.directory.is_dir()  # alive: left alone
        assert unrelated.is_dir()
    finally:
        second.close()
        live.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["something-else"]
