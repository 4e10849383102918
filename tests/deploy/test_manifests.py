"""Policy over the rendered overlays: what a security or platform reviewer would check by hand."""

from __future__ import annotations

import copy
import re
import tomllib
from typing import Any

import pytest

from . import dockerfile
from .render import (
    OVERLAYS,
    REPO,
    Manifest,
    container_env,
    containers,
    label_selector_matches,
    named,
    of_kind,
    pod_spec,
    port_by_name,
    render,
    secret_refs,
    workloads,
)
from .services import (
    BACKEND_LABEL,
    BACKEND_NAMESPACE,
    MONITORING_NAMESPACE,
    REDIS_PORTS,
    SERVICES,
    ServiceSpec,
)
from .validate import kubernetes_versions, schema_errors, validate_overlay

pytestmark = pytest.mark.parametrize("overlay", OVERLAYS)

RECOMMENDED_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
)


# The volume types the "restricted" Pod Security Standard admits.
RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def placeholder_secret(name: str, key: str) -> str:
    return f"<secret {name}/{key}>"


def service_env(manifests: list[Manifest], spec: ServiceSpec) -> dict[str, str]:
    deployment = named(manifests, "Deployment", spec.deployment)
    return container_env(manifests, main_container(deployment), placeholder_secret)


def pod_labels(workload: Manifest) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def main_container(workload: Manifest) -> Manifest:
    container: Manifest = pod_spec(workload)["containers"][0]
    return container


def quantity(value: str | int) -> float:
    """CPU/memory/storage quantities in base units (cores, bytes)."""
    text = str(value)
    suffixes = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6}
    for suffix, factor in suffixes.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def pre_stop_seconds(container: Manifest) -> float:
    pre_stop = container.get("lifecycle", {}).get("preStop", {})
    if "sleep" in pre_stop:
        return float(pre_stop["sleep"]["seconds"])
    command = pre_stop.get("exec", {}).get("command", [])
    if command[:1] == ["sleep"]:
        return float(command[1])
    raise AssertionError(f"{container['name']}: no preStop pause")


# --- schema -----------------------------------------------------------------------------------


def test_overlay_validates_strictly_against_the_api_schemas(overlay: str) -> None:
    count, problems = validate_overlay(overlay, kubernetes_versions())
    assert count > 0
    assert problems == []


def test_strict_validation_rejects_an_unknown_field(overlay: str) -> None:
    deployment = copy.deepcopy(of_kind(render(overlay), "Deployment")[0])
    pod_spec(deployment)["containers"][0]["livenessProbe"]["grpcc"] = {"port": 1}
    assert schema_errors(deployment, kubernetes_versions()[0])


# --- pod security -----------------------------------------------------------------------------


def test_every_pod_meets_the_restricted_pod_security_standard(overlay: str) -> None:
    manifests = render(overlay)
    assert workloads(manifests)
    for workload in workloads(manifests):
        name = workload["metadata"]["name"]
        spec = pod_spec(workload)
        pod_sc = spec.get("securityContext", {})
        assert pod_sc.get("runAsNonRoot") is True, name
        assert isinstance(pod_sc.get("runAsUser"), int), name
        assert pod_sc["runAsUser"] > 0, name
        assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        for host in ("hostNetwork", "hostPID", "hostIPC"):
            assert spec.get(host, False) is False, (name, host)
        for volume in spec.get("volumes", []):
            kinds = set(volume) - {"name"}
            assert kinds <= RESTRICTED_VOLUME_TYPES, (name, volume["name"], kinds)
        for container in containers(workload):
            sc = container.get("securityContext", {})
            where = f"{name}/{container['name']}"
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("privileged", False) is False, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, where
            assert sc.get("runAsUser", pod_sc["runAsUser"]) > 0, where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
            assert set(sc.get("capabilities", {}).get("add", [])) <= {"NET_BIND_SERVICE"}, where
            profile = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
            assert profile.get("type") == "RuntimeDefault", where


def test_the_namespace_enforces_the_restricted_standard(overlay: str) -> None:
    manifests = render(overlay)
    (namespace,) = of_kind(manifests, "Namespace")
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert all(
        m["metadata"].get("namespace") == namespace["metadata"]["name"]
        for m in manifests
        if m["kind"] != "Namespace"
    )


def test_no_pod_gets_a_service_account_token_or_service_links(overlay: str) -> None:
    manifests = render(overlay)
    for account in of_kind(manifests, "ServiceAccount"):
        assert account.get("automountServiceAccountToken") is False, account["metadata"]["name"]
    for workload in workloads(manifests):
        spec = pod_spec(workload)
        assert spec.get("automountServiceAccountToken") is False
        assert spec.get("serviceAccountName") not in (None, "default")
        named(manifests, "ServiceAccount", spec["serviceAccountName"])
        assert spec.get("enableServiceLinks") is False


def test_every_container_has_cpu_and_memory_requests_and_limits(overlay: str) -> None:
    for workload in workloads(render(overlay)):
        for container in containers(workload):
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    assert resource in resources.get(kind, {}), (container["name"], kind, resource)
            for resource, limit in resources["limits"].items():
                request = resources["requests"].get(resource, limit)
                assert quantity(request) <= quantity(limit), (container["name"], resource)


def test_writable_paths_are_size_limited_volumes(overlay: str) -> None:
    """The root filesystem is read-only; what is writable is bounded."""
    for workload in workloads(render(overlay)):
        spec = pod_spec(workload)
        claims = {t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])}
        volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
        for container in containers(workload):
            for mount in container.get("volumeMounts", []):
                if mount.get("readOnly") or mount["name"] in claims:
                    continue
                volume = volumes[mount["name"]]
                assert "emptyDir" in volume, (container["name"], mount)
                assert "sizeLimit" in volume["emptyDir"], (container["name"], mount)


def test_images_are_pinned_and_ours_carry_the_project_version(overlay: str) -> None:
    with (REPO / "pyproject.toml").open("rb") as handle:
        version = tomllib.load(handle)["project"]["version"]
    ours = {spec.image for spec in SERVICES.values()}
    for workload in workloads(render(overlay)):
        for container in containers(workload):
            image = container["image"]
            name, _, tag = image.partition("@")[0].rpartition(":")
            assert "@sha256:" in image or (name and re.search(r"\d", tag)), image
            assert tag != "latest", image
            if name in ours:
                assert tag == version, image


def test_every_object_carries_the_recommended_labels(overlay: str) -> None:
    for manifest in render(overlay):
        if manifest["kind"] == "Namespace":
            continue
        labels = manifest["metadata"].get("labels", {})
        for label in RECOMMENDED_LABELS:
            assert label in labels, (manifest["kind"], manifest["metadata"]["name"], label)
    for workload in workloads(render(overlay)):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert all(label in labels for label in RECOMMENDED_LABELS), workload["metadata"]["name"]


# --- secrets ----------------------------------------------------------------------------------


def test_no_secret_value_is_rendered_and_every_reference_is_documented(overlay: str) -> None:
    manifests = render(overlay)
    assert of_kind(manifests, "Secret") == []
    readme = (REPO / "README.md").read_text()
    deploy = readme.split("<!-- section:deploy -->", 1)[1].split("<!-- /section:deploy -->")[0]
    refs = secret_refs(manifests)
    assert refs
    for name, key in refs:
        assert re.search(rf"kubectl create secret generic {re.escape(name)}\b", deploy), name
        if key is not None:
            assert f"--from-literal={key}=" in deploy or f"--from-file={key}=" in deploy, (
                name,
                key,
            )
    for config_map in of_kind(manifests, "ConfigMap"):
        for key, value in config_map.get("data", {}).items():
            assert not re.search(r"(PASSWORD|SECRET|TOKEN|_KEYS?)$", key), key
            assert not re.search(r"://[^/@\s]*:[^/@\s]*@", value), key  # no user:pass@ in URLs


# --- the two services: probes, ports, shutdown, load balancing --------------------------------


@pytest.mark.parametrize("spec", SERVICES.values(), ids=SERVICES.keys())
def test_probes_are_native_grpc_on_the_served_port_and_service(
    overlay: str, spec: ServiceSpec
) -> None:
    manifests = render(overlay)
    container = main_container(named(manifests, "Deployment", spec.deployment))
    env = service_env(manifests, spec)
    grpc_port = port_by_name(container, "grpc")
    assert int(env[spec.port_env]) == grpc_port
    assert int(env[spec.metrics_port_env]) == port_by_name(container, "metrics")
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container[kind]
        assert set(probe) & {"grpc", "httpGet", "tcpSocket", "exec"} == {"grpc"}, kind
        assert probe["grpc"]["port"] == grpc_port, kind
    assert container["readinessProbe"]["grpc"]["service"] == spec.health_name
    assert container["startupProbe"]["grpc"]["service"] == spec.health_name
    assert container["livenessProbe"]["grpc"].get("service", "") in ("", spec.health_name)
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30


@pytest.mark.parametrize("spec", SERVICES.values(), ids=SERVICES.keys())
def test_the_image_exposes_the_container_ports(overlay: str, spec: ServiceSpec) -> None:
    container = main_container(named(render(overlay), "Deployment", spec.deployment))
    final = dockerfile.parse(dockerfile.IMAGES[spec.image]).final
    exposed = {int(port.split("/")[0]) for i in final.all("EXPOSE") for port in i.value.split()}
    assert exposed == {port["containerPort"] for port in container["ports"]}


@pytest.mark.parametrize("spec", SERVICES.values(), ids=SERVICES.keys())
def test_termination_grace_outlasts_the_pause_and_the_drain(
    overlay: str, spec: ServiceSpec
) -> None:
    manifests = render(overlay)
    deployment = named(manifests, "Deployment", spec.deployment)
    env = service_env(manifests, spec)
    drain = float(env[spec.grace_env])
    pause = pre_stop_seconds(main_container(deployment))
    assert pause >= 3
    assert pod_spec(deployment)["terminationGracePeriodSeconds"] > pause + drain


@pytest.mark.parametrize("spec", SERVICES.values(), ids=SERVICES.keys())
def test_a_headless_service_exposes_every_pod(overlay: str, spec: ServiceSpec) -> None:
    manifests = render(overlay)
    deployment = named(manifests, "Deployment", spec.deployment)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = named(manifests, "Service", f"{spec.deployment}-headless")
    assert service["spec"]["clusterIP"] == "None"
    assert label_selector_matches(service["spec"]["selector"], pod_labels)
    container = main_container(deployment)
    ports = {port["name"]: port for port in service["spec"]["ports"]}
    assert ports["grpc"]["port"] == port_by_name(container, "grpc")
    assert ports["grpc"]["targetPort"] in ("grpc", port_by_name(container, "grpc"))
    env = service_env(manifests, spec)
    max_age = spec.port_env.replace("_PORT", "_MAX_CONNECTION_AGE_SECONDS")
    assert 0 < float(env[max_age]) <= 3600, "long-lived channels must rebalance after scale-out"


@pytest.mark.parametrize("spec", SERVICES.values(), ids=SERVICES.keys())
def test_disruption_budget_and_scaling(overlay: str, spec: ServiceSpec) -> None:
    manifests = render(overlay)
    deployment = named(manifests, "Deployment", spec.deployment)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    budget = named(manifests, "PodDisruptionBudget", spec.deployment)
    assert label_selector_matches(budget["spec"]["selector"]["matchLabels"], pod_labels)
    assert budget["spec"].get("maxUnavailable") == 1 or "minAvailable" in budget["spec"]
    autoscalers = [
        hpa
        for hpa in of_kind(manifests, "HorizontalPodAutoscaler")
        if hpa["spec"]["scaleTargetRef"]["name"] == spec.deployment
    ]
    if overlay == "dev":
        assert deployment["spec"]["replicas"] == 1
        assert autoscalers == []
        return
    (hpa,) = autoscalers
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    assert hpa["spec"]["minReplicas"] >= 3
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    assert any(m["resource"]["name"] == "cpu" for m in hpa["spec"]["metrics"])
    keys = {c["topologyKey"] for c in pod_spec(deployment)["topologySpreadConstraints"]}
    assert {"kubernetes.io/hostname", "topology.kubernetes.io/zone"} <= keys
    for constraint in pod_spec(deployment)["topologySpreadConstraints"]:
        selector = constraint["labelSelector"]["matchLabels"]
        assert label_selector_matches(selector, pod_labels)


# --- thumbnail storage ------------------------------------------------------------------------


def test_thumbnail_mounts_media_read_only_and_spools_to_a_bounded_empty_dir(overlay: str) -> None:
    manifests = render(overlay)
    spec = SERVICES["thumbnail-service"]
    deployment = named(manifests, "Deployment", spec.deployment)
    container = main_container(deployment)
    env = service_env(manifests, spec)
    volumes = {volume["name"]: volume for volume in pod_spec(deployment)["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}

    media = mounts[env["THUMBNAIL_MEDIA_ROOT"]]
    assert media.get("readOnly") is True
    claim = volumes[media["name"]]["persistentVolumeClaim"]
    assert claim.get("readOnly") is True

    spool = mounts[env["THUMBNAIL_SPOOL_DIR"]]
    assert not spool.get("readOnly")
    limit = quantity(volumes[spool["name"]]["emptyDir"]["sizeLimit"])
    in_flight = int(env["THUMBNAIL_MAX_CONCURRENCY"]) + int(env["THUMBNAIL_MAX_QUEUE"])
    assert in_flight * int(env["THUMBNAIL_MAX_UPLOAD_BYTES"]) <= limit
    cpu_limit = quantity(container["resources"]["limits"]["cpu"])
    assert int(env["THUMBNAIL_MAX_CONCURRENCY"]) <= max(1, int(cpu_limit))
    drain = float(env["THUMBNAIL_SHUTDOWN_GRACE_SECONDS"])
    assert drain >= float(env["THUMBNAIL_PROCESSING_TIMEOUT_SECONDS"]), "drain lets jobs finish"


# --- Redis ------------------------------------------------------------------------------------


def test_redis_per_environment(overlay: str) -> None:
    manifests = render(overlay)
    env = service_env(manifests, SERVICES["session-service"])
    redis_sets = [s for s in of_kind(manifests, "StatefulSet") if "redis" in s["metadata"]["name"]]
    if overlay == "dev":
        (redis,) = redis_sets
        container = main_container(redis)
        argv = container.get("command", []) + container.get("args", [])
        assert argv[argv.index("--appendonly") + 1] == "yes"
        assert "$(REDIS_PASSWORD)" in argv
        password = next(v for v in container["env"] if v["name"] == "REDIS_PASSWORD")
        assert password["valueFrom"]["secretKeyRef"]["name"] == "redis-auth"
        (template,) = redis["spec"]["volumeClaimTemplates"]
        data_mount = next(m for m in container["volumeMounts"] if m["name"] == "data")
        assert template["metadata"]["name"] == "data"
        assert data_mount["mountPath"] == "/data"
        assert env["REDIS_URL"].startswith("redis://redis:")
        return
    assert redis_sets == []
    assert env["REDIS_URL"].startswith("rediss://"), "prod talks TLS to Redis"
    assert env["REDIS_CLUSTER"] == "true" or env["REDIS_SENTINELS"]
    ca_path = re.search(r"ssl_ca_certs=([^&]+)", env["REDIS_URL"])
    assert ca_path, "the Redis CA comes from a mounted Secret"
    container = main_container(named(manifests, "Deployment", "session-service"))
    volumes = {
        v["name"]: v for v in pod_spec(named(manifests, "Deployment", "session-service"))["volumes"]
    }
    mount = next(
        m for m in container["volumeMounts"] if ca_path.group(1).startswith(m["mountPath"] + "/")
    )
    assert mount.get("readOnly") is True
    secret = volumes[mount["name"]]["secret"]
    file_name = ca_path.group(1).removeprefix(mount["mountPath"] + "/")
    assert any(item["path"] == file_name for item in secret["items"])


# --- network policies -------------------------------------------------------------------------


def _policies(manifests: list[Manifest]) -> list[Manifest]:
    return of_kind(manifests, "NetworkPolicy")


def _selects(policy: Manifest, labels: dict[str, str]) -> bool:
    return label_selector_matches(policy["spec"]["podSelector"].get("matchLabels", {}), labels)


def _ports(rule: dict[str, Any]) -> set[int]:
    return {port["port"] for port in rule.get("ports", [])}


def test_network_policies_deny_by_default_and_allow_only_the_needed_flows(overlay: str) -> None:
    manifests = render(overlay)
    policies = _policies(manifests)
    if overlay == "dev":
        assert policies == []
        return
    deny = [
        p
        for p in policies
        if p["spec"]["podSelector"] == {}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert len(deny) == 1
    assert set(deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}

    backend_key, backend_value = BACKEND_LABEL
    for spec in SERVICES.values():
        deployment = named(manifests, "Deployment", spec.deployment)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        container = main_container(deployment)
        grpc_port = port_by_name(container, "grpc")
        metrics_port = port_by_name(container, "metrics")
        rules = [
            rule for p in policies if _selects(p, labels) for rule in p["spec"].get("ingress", [])
        ]
        assert rules, spec.deployment
        for rule in rules:
            assert rule.get("from"), "no ingress rule may be open to everyone"
            for peer in rule["from"]:
                namespace = peer.get("namespaceSelector", {}).get("matchLabels", {})
                pods = peer.get("podSelector", {}).get("matchLabels", {})
                if _ports(rule) == {grpc_port}:
                    assert pods == {backend_key: backend_value}
                    assert namespace == {"kubernetes.io/metadata.name": BACKEND_NAMESPACE}
                else:
                    assert _ports(rule) == {metrics_port}, rule
                    assert namespace == {"kubernetes.io/metadata.name": MONITORING_NAMESPACE}
        allowed = set().union(*(_ports(rule) for rule in rules))
        assert allowed == {grpc_port, metrics_port}, spec.deployment

    # Only session-service pods may open connections to Redis, and Redis accepts only them.
    session_labels = pod_labels(named(manifests, "Deployment", "session-service"))
    for policy in policies:
        for rule in policy["spec"].get("egress", []):
            if _ports(rule) & REDIS_PORTS:
                assert policy["spec"]["podSelector"].get("matchLabels"), policy["metadata"]["name"]
                assert _selects(policy, session_labels), policy["metadata"]["name"]
    redis_policy = named(manifests, "NetworkPolicy", "redis")
    (rule,) = redis_policy["spec"]["ingress"]
    assert [peer["podSelector"]["matchLabels"] for peer in rule["from"]] == [
        {"app.kubernetes.io/name": "session-service"}
    ]
    dns = [rule for p in policies for rule in p["spec"].get("egress", []) if 53 in _ports(rule)]
    assert dns, "pods must still resolve names"
