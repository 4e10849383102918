"""What the manifests must agree on with the code, per service (names from the code itself)."""

from __future__ import annotations

from dataclasses import dataclass

from session_service import config as session_config
from tggod.session.v1 import session_service_pb2
from tggod.thumbnail.v1 import thumbnail_service_pb2
from thumbnail_service import config as thumbnail_config


@dataclass(frozen=True)
class ServiceSpec:
    deployment: str
    image: str
    health_name: str
    port_env: str
    metrics_port_env: str
    grace_env: str
    settings: type[session_config.Settings] | type[thumbnail_config.Settings]


SERVICES = {
    spec.deployment: spec
    for spec in (
        ServiceSpec(
            deployment="session-service",
            image="tggod/session-service",
            health_name=session_service_pb2.DESCRIPTOR.services_by_name["SessionService"].full_name,
            port_env="SESSION_PORT",
            metrics_port_env="SESSION_METRICS_PORT",
            grace_env="SESSION_SHUTDOWN_GRACE_SECONDS",
            settings=session_config.Settings,
        ),
        ServiceSpec(
            deployment="thumbnail-service",
            image="tggod/thumbnail-service",
            health_name=thumbnail_service_pb2.DESCRIPTOR.services_by_name[
                "ThumbnailService"
            ].full_name,
            port_env="THUMBNAIL_PORT",
            metrics_port_env="THUMBNAIL_METRICS_PORT",
            grace_env="THUMBNAIL_SHUTDOWN_GRACE_SECONDS",
            settings=thumbnail_config.Settings,
        ),
    )
}

# Pods labelled like this (in the backend's namespace) may call the services.
BACKEND_LABEL = ("tggod.io/role", "backend")
BACKEND_NAMESPACE = "tggod"
MONITORING_NAMESPACE = "monitoring"
REDIS_PORTS = {6379, 26379}
