"""gRPC server of the session service: health, reflection, metrics, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from session_service.auth import TokenAuth
from session_service.backend import connect
from session_service.config import Settings
from session_service.crypto import Crypto
from session_service.errors import ServiceError
from session_service.servicer import SessionServicer
from session_service.store import SessionStore
from tggod.session.v1 import session_service_pb2, session_service_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = session_service_pb2.DESCRIPTOR.services_by_name["SessionService"].full_name
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass
class HealthWatcher:
    """Mirrors Redis reachability into gRPC health, in the background and on every store failure.

    Only the named service flips: readiness asks for it, so a replica without Redis leaves the
    load balancer. The overall status ("") stays SERVING until shutdown because liveness asks
    for it, and restarting a healthy process never brings Redis back.
    """

    health: HealthServicer
    store: SessionStore
    interval: float
    timeout: float
    serving: bool | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    async def set(self, serving: bool) -> None:
        if serving == self.serving:
            return
        self.serving = serving
        status = _SERVING if serving else _NOT_SERVING
        await self.health.set(SERVICE_NAME, status)
        log.log(
            logging.INFO if serving else logging.WARNING,
            "health changed",
            extra={"serving": serving},
        )

    def store_failed(self) -> None:
        # Only a change of state needs a prompt check; while NOT_SERVING the
        # periodic probe is enough, and the probe's own failures must not spin.
        if self.serving:
            self._wake.set()

    async def check(self) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                await self.store.call(self.store.backend.ping, idempotent=False)
                if not self.serving:
                    # A restarted Redis has an empty script cache: reload before serving.
                    await self.store.load_scripts()
        except (ServiceError, TimeoutError):
            await self.set(False)
        else:
            await self.set(True)

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
            await self.check()
            self._wake.clear()


@dataclass
class RunningServer:
    """A started server and what is needed to stop it."""

    server: grpc.aio.Server
    health: HealthServicer
    port: int
    servicer: SessionServicer
    store: SessionStore
    watcher: HealthWatcher
    watch_task: asyncio.Task[None]

    async def stop(self, grace: float) -> None:
        """NOT_SERVING, refuse new calls, drain in-flight ones within ``grace``, close Redis."""
        self.watch_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.watch_task
        await self.health.enter_graceful_shutdown()
        self.servicer.shutting_down = True
        await self.server.stop(grace)
        await self.store.close()


async def start(settings: Settings) -> RunningServer:
    """Build and start the server on ``settings.host:settings.port`` (port 0 picks a free one)."""
    backend = connect(settings)
    crypto = Crypto(settings.keyring, settings.naming_key)
    store = SessionStore(
        backend, crypto, settings.key_prefix, settings.redis_retries, settings.redis_command_timeout
    )
    servicer = SessionServicer(store, settings.limits)
    grace_ms = int(settings.shutdown_grace_seconds * 1000)
    server = grpc.aio.server(
        interceptors=[TokenAuth(settings.client_tokens)] if settings.client_tokens else [],
        options=[
            # Bounded connection age makes clients re-resolve, so new replicas get traffic.
            ("grpc.max_connection_age_ms", int(settings.max_connection_age_seconds * 1000)),
            ("grpc.max_connection_age_grace_ms", max(grace_ms, 1000)),
        ],
    )
    session_service_pb2_grpc.add_SessionServiceServicer_to_server(servicer, server)
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
    watcher = HealthWatcher(
        health, store, settings.health_interval_seconds, settings.redis_command_timeout
    )
    store.on_unavailable = watcher.store_failed
    await health.set("", _SERVING)
    await watcher.check()
    await server.start()
    task = asyncio.create_task(watcher.run(), name="session-health-watcher")
    log.info(
        "session service started",
        extra={
            "port": port,
            "encryption_key_id": crypto.primary_key_id,
            "redis_ok": watcher.serving,
            "client_auth": bool(settings.client_tokens),
        },
    )
    if not settings.client_tokens:
        log.warning(
            "SESSION_CLIENT_TOKENS is empty: any caller that reaches the port may use the service"
        )
    return RunningServer(server, health, port, servicer, store, watcher, task)


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then drain within the configured grace."""
    metrics_server = None
    if settings.metrics_port:
        metrics_server, _ = start_http_server(settings.metrics_port)
    running = await start(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down", extra={"grace_seconds": settings.shutdown_grace_seconds})
    await running.stop(settings.shutdown_grace_seconds)
    if metrics_server is not None:
        metrics_server.shutdown()
