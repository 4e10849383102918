"""Manifests and code cannot drift apart.

For every service Deployment of every overlay, the service is started locally exactly as the
container would start it (image entrypoint, the container's command/args and environment with
ConfigMaps resolved, test values for Secrets, volumes remapped to temporary directories), then
the probes the manifest declares must answer SERVING, the metrics port must serve, and SIGTERM
must end the process within the pod's termination grace.

What is substituted, and why:
* gRPC and metrics ports: the manifest's values (50051/9451, ...) are asserted equal to the
  container ports and probe ports first, then moved to free ports so parallel runs never clash;
  the probe is sent to the moved port, so a service that ignored its port variable would fail.
* Redis: only the host and port of ``REDIS_URL`` change. Scheme, query (prod's ``ssl_ca_certs``
  path, remapped with its volume), ``REDIS_CLUSTER`` and the password stay as the manifest says,
  served by a local redis-server of the same shape: plain single node for dev, a TLS-only
  one-node Redis Cluster whose CA is handed over as the ``redis-tls-ca`` Secret for prod. A
  session is then created and read back through the service, so the whole Redis configuration
  (password, keyring, naming key, TLS, cluster mode) is exercised, not just start-up.
* Media: a sample video is placed in the local directory of the media volume; the thumbnail
  service must find it by its path relative to THUMBNAIL_MEDIA_ROOT, accept the same video as an
  upload (through THUMBNAIL_SPOOL_DIR) and make a JPEG of it with each engine.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.helpers.media import generate
from tests.helpers.redis import RedisProcess, free_port, start_redis
from tggod.session.v1 import session_service_pb2, session_service_pb2_grpc
from tggod.thumbnail.v1 import thumbnail_service_pb2 as thumb_pb
from tggod.thumbnail.v1 import thumbnail_service_pb2_grpc as thumb_grpc

from .launch import Launch, new_encryption_key, new_key_material, prepare
from .render import Manifest, named, pod_spec, port_by_name, render
from .services import SERVICES, ServiceSpec
from .tls_redis import TlsCluster, start_tls_cluster

OVERLAY_SERVICES = [(overlay, spec) for overlay in ("dev", "prod") for spec in SERVICES.values()]
IDS = [f"{overlay}-{spec.deployment}" for overlay, spec in OVERLAY_SERVICES]

# Settings the code reads that the manifests leave unset on purpose.
UNSET_ON_PURPOSE = {
    # An alternative to SESSION_ENCRYPTION_KEYS for hand-run setups; random keys are stronger.
    "SESSION_ENCRYPTION_PASSPHRASE",
    "SESSION_ENCRYPTION_SALT",
}
# What the image, not the manifest, puts in the environment.
IMAGE_ENV = {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}


@dataclass
class SecretValues:
    values: dict[tuple[str, str], str]

    def __call__(self, name: str, key: str) -> str:
        try:
            return self.values[(name, key)]
        except KeyError:
            raise AssertionError(
                f"the manifests reference Secret {name}/{key}: give it a test value in "
                "tests/deploy/test_drift.py and document it in README (Deploy to Kubernetes)"
            ) from None


@pytest.fixture(scope="module")
def redis_password() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def local_redis(
    tmp_path_factory: pytest.TempPathFactory, redis_password: str
) -> Iterator[RedisProcess]:
    server = start_redis(tmp_path_factory.mktemp("deploy-redis"), password=redis_password)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tls_cluster(
    tmp_path_factory: pytest.TempPathFactory, redis_password: str
) -> Iterator[TlsCluster]:
    cluster = start_tls_cluster(tmp_path_factory.mktemp("deploy-redis-tls"), redis_password)
    yield cluster
    cluster.server.stop()


@pytest.fixture(scope="module")
def sample_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate("mov", tmp_path_factory.mktemp("deploy-media"))


@pytest.fixture(scope="module")
def test_secrets(redis_password: str, tls_cluster: TlsCluster) -> SecretValues:
    return SecretValues(
        {
            # Two keys: the first encrypts, both decrypt (the state in the middle of a rotation).
            ("session-encryption-keys", "keys"): f"{new_encryption_key('k2')},"
            f"{new_encryption_key('k1')}",
            ("session-encryption-keys", "naming-key"): new_key_material(),
            ("redis-auth", "password"): redis_password,
            ("redis-tls-ca", "ca.crt"): tls_cluster.ca_pem,
            ("service-client-tokens", "session"): secrets.token_urlsafe(32),
            ("service-client-tokens", "thumbnail"): secrets.token_urlsafe(32),
        }
    )


class RecordingEnv(Mapping[str, str]):
    """An environment that remembers every name looked up in it."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = dict(env)
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.read.add(name)
        return self._env[name]

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self.read.add(name)
        return name in self._env

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("settings must look names up, not enumerate the environment")

    def __len__(self) -> int:
        return len(self._env)


def launch_for(
    overlay: str, spec: ServiceSpec, secret: SecretValues, root: Path
) -> tuple[Manifest, Launch]:
    manifests = render(overlay)
    deployment = named(manifests, "Deployment", spec.deployment)
    launch = prepare(manifests, deployment, secret, root, os.environ.get("PATH", "/usr/bin:/bin"))
    return deployment, launch


def point_at_local_redis(env: dict[str, str], plain: RedisProcess, tls_cluster: TlsCluster) -> None:
    """Swap the Redis endpoint's host and port for a local server of the same shape."""
    if "REDIS_URL" not in env:
        return
    assert env["REDIS_PASSWORD"] == plain.password, "REDIS_PASSWORD comes from redis-auth"
    assert not env.get("REDIS_SENTINELS"), "no local Sentinel here: test Sentinel setups apart"
    url = urllib.parse.urlsplit(env["REDIS_URL"])
    assert url.username is None, "credentials go in REDIS_PASSWORD, not the URL"
    assert url.password is None, "credentials go in REDIS_PASSWORD, not the URL"
    cluster = env.get("REDIS_CLUSTER", "false").lower() in ("1", "true", "yes", "on")
    if url.scheme == "rediss":
        assert cluster, "the local TLS server is a Cluster; add a TLS single node to test this"
        netloc = f"localhost:{tls_cluster.tls_port}"
    else:
        assert not cluster, "the local plain server is a single node"
        netloc = f"{plain.host}:{plain.port}"
    env["REDIS_URL"] = urllib.parse.urlunsplit(url._replace(netloc=netloc))


def thumbnail_round_trip(port: int, video: Path, token: str) -> None:
    """Probe the video from the media root and as an upload; thumbnail it with each engine."""
    auth = (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = thumb_grpc.ThumbnailServiceStub(channel)
        by_path = thumb_pb.VideoSource(media_path=video.name)
        probed = stub.ProbeVideo(
            iter([thumb_pb.ProbeVideoRequest(header=thumb_pb.ProbeVideoHeader(source=by_path))]),
            timeout=30,
            metadata=auth,
        )
        assert probed.video.width > 0
        data = video.read_bytes()
        upload = thumb_pb.VideoSource(upload=thumb_pb.UploadSource(size_bytes=len(data)))
        uploaded = stub.ProbeVideo(
            iter(
                [
                    thumb_pb.ProbeVideoRequest(header=thumb_pb.ProbeVideoHeader(source=upload)),
                    thumb_pb.ProbeVideoRequest(chunk=data),
                ]
            ),
            timeout=30,
            metadata=auth,
        )
        assert uploaded.video.width == probed.video.width
        for engine in (thumb_pb.ENGINE_PYAV, thumb_pb.ENGINE_FFMPEG):
            header = thumb_pb.GenerateThumbnailHeader(
                source=by_path, options=thumb_pb.ThumbnailOptions(engine=engine)
            )
            responses = list(
                stub.GenerateThumbnail(
                    iter([thumb_pb.GenerateThumbnailRequest(header=header)]),
                    timeout=30,
                    metadata=auth,
                )
            )
            image = b"".join(r.chunk for r in responses if r.WhichOneof("part") == "chunk")
            assert image.startswith(b"\xff\xd8"), (engine, responses[:1])


def session_round_trip(port: int, token: str) -> None:
    """Store a session and read it back: Redis, password, keyring and naming key all work."""
    data = struct_pb2.Struct()
    data.update({"probe": "drift"})
    auth = (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = session_service_pb2_grpc.SessionServiceStub(channel)
        created = stub.CreateSession(
            session_service_pb2.CreateSessionRequest(data=data), timeout=10, metadata=auth
        )
        session_id = created.metadata.session_id
        assert session_id
        got = stub.GetSession(
            session_service_pb2.GetSessionRequest(session_id=session_id), timeout=10, metadata=auth
        )
        assert got.session.data == data


@pytest.mark.parametrize(("overlay", "spec"), OVERLAY_SERVICES, ids=IDS)
def test_the_manifest_sets_exactly_the_settings_the_code_reads(
    overlay: str, spec: ServiceSpec, test_secrets: SecretValues, tmp_path: Path
) -> None:
    _, launch = launch_for(overlay, spec, test_secrets, tmp_path)
    recording = RecordingEnv(launch.env)
    spec.settings.from_env(recording)
    provided = set(launch.env) - IMAGE_ENV
    unread = provided - recording.read
    assert not unread, f"{spec.deployment} sets names its code never reads: {sorted(unread)}"
    missing = recording.read - provided - UNSET_ON_PURPOSE
    assert not missing, (
        f"{spec.deployment} reads settings the manifests do not set: {sorted(missing)}; add them "
        f"to deploy/k8s/base/{spec.deployment}.properties (or a Secret reference)"
    )


def health(port: int, service: str, timeout: float) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service=service)
        response = stub.Check(request, timeout=timeout, wait_for_ready=False)
        status: int = response.status
        return status


def wait_serving(process: subprocess.Popen[bytes], port: int, service: str, budget: float) -> None:
    deadline = time.monotonic() + budget
    last: object = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the service exited with {process.returncode} before SERVING")
        try:
            if health(port, service, timeout=1.0) == health_pb2.HealthCheckResponse.SERVING:
                return
            last = "NOT_SERVING"
        except grpc.RpcError as exc:
            last = exc.code()
        time.sleep(0.1)
    raise AssertionError(f"health({service!r}) on port {port} never SERVING (last: {last})")


@pytest.mark.parametrize(("overlay", "spec"), OVERLAY_SERVICES, ids=IDS)
def test_the_declared_probes_pass_when_started_exactly_as_the_container(
    overlay: str,
    spec: ServiceSpec,
    test_secrets: SecretValues,
    local_redis: RedisProcess,
    tls_cluster: TlsCluster,
    sample_video: Path,
    tmp_path: Path,
) -> None:
    deployment, launch = launch_for(overlay, spec, test_secrets, tmp_path)
    container = pod_spec(deployment)["containers"][0]
    env = launch.env

    grpc_port = port_by_name(container, "grpc")
    probes = [container[kind] for kind in ("startupProbe", "readinessProbe", "livenessProbe")]
    assert {probe["grpc"]["port"] for probe in probes} == {grpc_port}
    assert int(env[spec.port_env]) == grpc_port
    metrics_port = port_by_name(container, "metrics")
    assert int(env[spec.metrics_port_env]) == metrics_port
    local_port, local_metrics = free_port(), free_port()
    env[spec.port_env] = str(local_port)
    env[spec.metrics_port_env] = str(local_metrics)
    point_at_local_redis(env, local_redis, tls_cluster)

    log = tmp_path / "service.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            launch.argv, env=env, cwd=tmp_path, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        startup = container["startupProbe"]
        # The kubelet's budget: periodSeconds * failureThreshold of the startup probe.
        budget = float(startup["periodSeconds"] * startup["failureThreshold"])
        grace = pod_spec(deployment)["terminationGracePeriodSeconds"]
        try:
            for probe in probes:
                wait_serving(process, local_port, probe["grpc"].get("service", ""), budget)
            with urllib.request.urlopen(
                f"http://127.0.0.1:{local_metrics}/metrics", timeout=5
            ) as r:
                assert r.status == 200
                assert re.search(rb"^# TYPE ", r.read(), re.MULTILINE)
            if spec.deployment == "session-service":
                session_round_trip(local_port, env["SESSION_CLIENT_TOKENS"])
            else:
                media = Path(env["THUMBNAIL_MEDIA_ROOT"])
                assert media in launch.volumes.values(), "the media root is the mounted volume"
                shutil.copyfile(sample_video, media / sample_video.name)
                thumbnail_round_trip(
                    local_port, media / sample_video.name, env["THUMBNAIL_CLIENT_TOKENS"]
                )
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=grace) == 0, "SIGTERM must end the service cleanly"
        except (AssertionError, grpc.RpcError, OSError, subprocess.TimeoutExpired) as exc:
            raise AssertionError(f"{exc!r}\n--- service output ---\n{log.read_text()}") from exc
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
