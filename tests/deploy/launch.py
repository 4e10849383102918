"""Turn a rendered Deployment into a local process: the container's argv and environment.

Kubernetes semantics: ``command`` replaces the image's ENTRYPOINT (and drops its CMD), ``args``
replaces CMD. The image's entrypoint is a console script of pyproject.toml, which the venv has
too; the image's ENV comes from the Dockerfile's runtime stage. ConfigMap values are resolved
from the rendered output, Secret values come from the caller, and every volume's mount path is
remapped to a local directory wherever it appears in the environment.
"""

from __future__ import annotations

import base64
import re
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import dockerfile
from .render import Manifest, container_env, pod_spec

VENV_BIN = Path(sys.executable).parent


def new_encryption_key(key_id: str = "k1") -> str:
    """A SESSION_ENCRYPTION_KEYS entry: ``<key_id>:<urlsafe-base64 of 32 random bytes>``."""
    return f"{key_id}:{base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()}"


def new_key_material() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


@dataclass
class Launch:
    argv: list[str]
    env: dict[str, str]
    volumes: dict[str, Path]


def image_argv(container: Manifest) -> list[str]:
    """The argv the container runtime would exec, before mapping it onto this machine."""
    image = container["image"].partition("@")[0].rpartition(":")[0] or container["image"]
    built = dockerfile.parse(dockerfile.IMAGES[image])
    if "command" in container:
        return [*container["command"], *container.get("args", [])]
    entrypoint = built.entrypoint() or []
    cmd = container["args"] if "args" in container else (built.cmd() or [])
    return [*entrypoint, *cmd]


def local_argv(argv: list[str]) -> list[str]:
    """Console scripts run from the venv; ``python`` is this interpreter."""
    head, *rest = argv
    if head in dockerfile.console_scripts():
        return [str(VENV_BIN / head), *rest]
    if Path(head).name in ("python", "python3"):
        return [sys.executable, *rest]
    raise AssertionError(f"cannot map the container's executable {head!r} onto the venv")


def image_env(container: Manifest, system_path: str) -> dict[str, str]:
    image = container["image"].partition("@")[0].rpartition(":")[0]
    env = dockerfile.parse(dockerfile.IMAGES[image]).final.env()
    # The image's PATH puts its venv first; locally that is this venv, then the system's tools.
    env["PATH"] = f"{VENV_BIN}:{system_path}"
    return env


def prepare(
    manifests: list[Manifest],
    workload: Manifest,
    secret: Callable[[str, str], str],
    root: Path,
    system_path: str,
) -> Launch:
    container: Manifest = pod_spec(workload)["containers"][0]
    volumes: dict[str, Path] = {}
    for mount in container.get("volumeMounts", []):
        local = root / "volumes" / mount["name"]
        local.mkdir(parents=True, exist_ok=True)
        volumes[mount["mountPath"]] = local
    for volume in pod_spec(workload).get("volumes", []):
        source = volume.get("secret")
        if source is None:
            continue
        mount_path = next(
            m["mountPath"] for m in container["volumeMounts"] if m["name"] == volume["name"]
        )
        for item in source["items"]:
            target = volumes[mount_path] / item["path"]
            target.write_text(secret(source["secretName"], item["key"]))

    env = container_env(manifests, container, secret, base=image_env(container, system_path))
    return Launch(
        argv=local_argv(image_argv(container)),
        env={name: remap(value, volumes) for name, value in env.items()},
        volumes=volumes,
    )


def remap(value: str, volumes: dict[str, Path]) -> str:
    """Replace every mount path in ``value`` (one pass, longest first, whole path segments)."""
    if not volumes:
        return value
    paths = sorted(volumes, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(p) for p in paths) + r"(?=/|$|[?&;,:\s])")
    return pattern.sub(lambda m: str(volumes[m.group(0)]), value)
