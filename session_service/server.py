"""gRPC server of the session service: health, reflection, metrics, graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server
from tggod.session.v1 import session_service_pb2, session_service_pb2_grpc

from session_service.config import Settings
from session_service.servicer import SessionServicer

log = logging.getLogger(__name__)

SERVICE_NAME = session_service_pb2.DESCRIPTOR.services_by_name["SessionService"].full_name


@dataclass
class RunningServer:
    """A started server and what is needed to stop it."""

    server: grpc.aio.Server
    health: HealthServicer
    port: int

    async def stop(self, grace: float) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


async def start(settings: Settings) -> RunningServer:
    """Build and start the server on ``settings.host:settings.port`` (port 0 picks a free one)."""
    server = grpc.aio.server()
    session_service_pb2_grpc.add_SessionServiceServicer_to_server(SessionServicer(), server)
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
    for name in ("", SERVICE_NAME):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server=server, health=health, port=port)


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then drain within the configured grace."""
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    running = await start(settings)
    log.info("session service listening", extra={"port": running.port})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down", extra={"grace_seconds": settings.shutdown_grace_seconds})
    await running.stop(settings.shutdown_grace_seconds)
