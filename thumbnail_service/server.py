"""gRPC server of the thumbnail service: health, reflection, metrics, graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from tggod.thumbnail.v1 import thumbnail_service_pb2, thumbnail_service_pb2_grpc
from thumbnail_service.auth import TokenAuth
from thumbnail_service.config import Settings
from thumbnail_service.limits import Admission
from thumbnail_service.servicer import ThumbnailServicer
from thumbnail_service.spool import MAX_CHUNK_BYTES, Spool
from thumbnail_service.thumbnailer import Thumbnailer

log = logging.getLogger(__name__)

SERVICE_NAME = thumbnail_service_pb2.DESCRIPTOR.services_by_name["ThumbnailService"].full_name
# Room for a 4 MiB chunk plus its message framing.
MAX_MESSAGE_BYTES = MAX_CHUNK_BYTES + 64 * 1024


@dataclass
class RunningServer:
    """A started server and what is needed to stop it."""

    server: grpc.aio.Server
    health: HealthServicer
    port: int
    servicer: ThumbnailServicer
    thumbnailer: Thumbnailer
    spool: Spool

    @property
    def spool_dir(self) -> Path:
        return self.spool.directory

    async def stop(self, grace: float) -> None:
        """Refuse new calls, let in-flight ones finish within ``grace``, then kill the rest.

        Cancelled calls kill their ffmpeg processes and pool tasks on the way
        out; then the worker pool stops and the spool directory goes.
        """
        self.servicer.closing = True
        await self.health.enter_graceful_shutdown()
        try:
            await self.server.stop(grace)
        finally:
            await self.thumbnailer.close()
            self.spool.close()


def server_options(settings: Settings) -> list[tuple[str, int]]:
    age_ms = int(settings.max_connection_age_seconds * 1000)
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        # Clients reconnect (and re-resolve DNS) after this long, so new
        # replicas behind a headless Kubernetes service receive traffic.
        ("grpc.max_connection_age_ms", age_ms),
        ("grpc.max_connection_age_grace_ms", int(settings.processing_timeout_seconds * 1000)),
    ]


async def start(settings: Settings) -> RunningServer:
    """Build and start the server on ``settings.host:settings.port`` (port 0 picks a free one)."""
    thumbnailer = Thumbnailer.from_settings(settings)
    spool = Spool(settings.spool_dir, settings.max_upload_bytes)
    try:
        await thumbnailer.start()
        servicer = ThumbnailServicer(
            settings, thumbnailer, Admission(settings.max_concurrency, settings.max_queue), spool
        )
        server = grpc.aio.server(
            interceptors=[TokenAuth(settings.client_tokens)] if settings.client_tokens else [],
            options=server_options(settings),
        )
        thumbnail_service_pb2_grpc.add_ThumbnailServiceServicer_to_server(servicer, server)
        health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        reflection.enable_server_reflection(
            (
                SERVICE_NAME,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            server,
        )
        port = server.add_insecure_port(f"{settings.host}:{settings.port}")
        await server.start()
    except BaseException:
        await thumbnailer.close()
        spool.close()
        raise
    for name in ("", SERVICE_NAME):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server, health, port, servicer, thumbnailer, spool)


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then drain within the configured grace."""
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    running = await start(settings)
    log.info(
        "thumbnail service listening",
        extra={
            "port": running.port,
            "default_engine": settings.default_engine,
            "client_auth": bool(settings.client_tokens),
        },
    )
    if not settings.client_tokens:
        log.warning(
            "THUMBNAIL_CLIENT_TOKENS is empty: any caller that reaches the port may use the service"
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down", extra={"grace_seconds": settings.shutdown_grace_seconds})
    await running.stop(settings.shutdown_grace_seconds)
