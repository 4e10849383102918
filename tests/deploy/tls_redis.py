"""A local stand-in for prod's Redis: a one-node Redis Cluster that only speaks TLS.

The certificates come from a throwaway CA made here; the CA certificate is what the test hands
the session service as the ``redis-tls-ca`` Secret, exactly as prod mounts it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.redis import RedisProcess, free_port, start_redis
from tests.helpers.tls import make_certificates

CLUSTER_READY_SECONDS = 15.0


@dataclass
class TlsCluster:
    server: RedisProcess
    tls_port: int
    ca_pem: str


def start_tls_cluster(directory: Path, password: str) -> TlsCluster:
    """One node owning every slot; TLS for clients and the bus, plain port only for setup."""
    ca, cert, key = make_certificates(directory)
    tls_port = free_port()
    bus_port = free_port()
    while bus_port == tls_port:
        bus_port = free_port()
    server = start_redis(
        directory / "data",
        password=password,
        extra_args=[
            "--tls-port", str(tls_port),
            "--tls-cert-file", str(cert),
            "--tls-key-file", str(key),
            "--tls-ca-cert-file", str(ca),
            "--tls-auth-clients", "no",
            "--tls-cluster", "yes",
            "--cluster-enabled", "yes",
            "--cluster-port", str(bus_port),
            "--cluster-config-file", str(directory / "nodes.conf"),
            "--masterauth", password,
        ],
    )  # fmt: skip
    with server.client() as client:
        client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        deadline = time.monotonic() + CLUSTER_READY_SECONDS
        while b"cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError("the one-node Redis Cluster never reached cluster_state:ok")
            time.sleep(0.05)
    return TlsCluster(server=server, tls_port=tls_port, ca_pem=ca.read_text())
