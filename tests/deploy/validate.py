"""``python -m tests.deploy.validate``: what ``make k8s-validate`` runs.

1. Renders every overlay with ``kubectl kustomize`` (offline).
2. Validates every rendered object strictly (unknown fields are errors) against the bundled
   Kubernetes API schemas of ``kubernetes-validate``, for the oldest Kubernetes the manifests
   support and the newest one the library knows.
3. Lints the Dockerfiles statically (see ``dockerfile.py``), plus ``hadolint`` (a dev dependency).

Exit status 0 only when everything passes. ``--dockerfiles`` runs step 3 alone (``make images``
without a Docker engine).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from . import dockerfile
from .render import OVERLAYS, Manifest, RenderError, render

# The oldest supported cluster: the preStop `sleep` action is on by default from 1.30.
MIN_KUBERNETES = "1.30.0"


def kubernetes_versions() -> list[str]:
    import kubernetes_validate.utils as kv_utils  # type: ignore[import-untyped]

    latest: str = kv_utils.latest_version()
    return [MIN_KUBERNETES] if latest == MIN_KUBERNETES else [MIN_KUBERNETES, latest]


def schema_errors(manifest: Manifest, version: str) -> list[str]:
    """Strict schema validation of one object; an empty list means valid."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(manifest, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(str(p) for p in exc.path)
        return [f"{exc.message} (at {path or '<root>'})"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [exc.message]
    return []


def validate_overlay(overlay: str, versions: Sequence[str]) -> tuple[int, list[str]]:
    """(objects checked, problems) for one overlay."""
    problems: list[str] = []
    try:
        manifests = render(overlay)
    except RenderError as exc:
        return 0, [str(exc)]
    for manifest in manifests:
        name = f"{manifest.get('kind')}/{manifest.get('metadata', {}).get('name')}"
        for version in versions:
            problems += [
                f"overlays/{overlay}: {name} (Kubernetes {version}): {error}"
                for error in schema_errors(manifest, version)
            ]
    return len(manifests), problems


def hadolint_binary() -> str | None:
    local = Path(sys.executable).parent / "hadolint"
    return str(local) if local.is_file() else shutil.which("hadolint")


def check_dockerfiles() -> tuple[list[str], list[str]]:
    """(notes, problems) of the static Dockerfile checks."""
    notes: list[str] = []
    problems: list[str] = []
    files = dockerfile.all_dockerfiles()
    if not files:
        problems.append("no deploy/docker/*.Dockerfile found")
    for path in files:
        problems += dockerfile.check(path)
    notes.append(f"dockerfiles: {len(files)} checked by tests/deploy/dockerfile.py")
    hadolint = hadolint_binary()
    if hadolint is None:
        problems.append("hadolint is missing: it is a dev dependency, run `make setup`")
        return notes, problems
    result = subprocess.run(
        [hadolint, *(str(p) for p in files)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        problems.append(f"hadolint:\n{result.stdout}{result.stderr}")
    notes.append(f"hadolint: {len(files)} checked")
    return notes, problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.deploy.validate", description=__doc__)
    parser.add_argument(
        "--dockerfiles", action="store_true", help="only the static Dockerfile checks"
    )
    args = parser.parse_args(argv)

    problems: list[str] = []
    if not args.dockerfiles:
        versions = kubernetes_versions()
        for overlay in OVERLAYS:
            count, found = validate_overlay(overlay, versions)
            problems += found
            status = "ok" if not found else f"{len(found)} problem(s)"
            print(
                f"overlays/{overlay}: {count} objects rendered, strict schema "
                f"{' + '.join(versions)}: {status}"
            )
    notes, found = check_dockerfiles()
    problems += found
    for note in notes:
        print(note)
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    print("k8s-validate: " + ("FAILED" if problems else "all checks passed"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
