"""Render the kustomize overlays and look things up in the result."""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Iterator, Mapping
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
    binary = shutil.which("kubectl")
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
