"""The static Dockerfile checker passes the real images and catches each rule being broken."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import dockerfile
from .validate import check_dockerfiles

THUMBNAIL = dockerfile.DOCKER_DIR / "thumbnail-service.Dockerfile"


def test_every_image_has_a_dockerfile_that_passes() -> None:
    assert set(dockerfile.IMAGES.values()) == set(dockerfile.all_dockerfiles())
    _, problems = check_dockerfiles()
    assert problems == []


@pytest.mark.parametrize("path", dockerfile.all_dockerfiles(), ids=lambda p: p.name)
def test_entrypoint_is_the_services_console_script(path: Path) -> None:
    entrypoint = dockerfile.parse(path).entrypoint()
    assert entrypoint is not None
    service = path.name.removesuffix(".Dockerfile").replace("-", "_")
    assert dockerfile.console_scripts()[entrypoint[0]] == f"{service}.__main__:main"


BROKEN = {
    "single stage": (r"FROM python:3.11.14-slim-bookworm AS builder", "", "multi-stage"),
    "floating base": (
        "FROM python:3.11.14-slim-bookworm AS runtime",
        "FROM python:3.11-slim AS runtime",
        "not pinned",
    ),
    "latest base": (
        "FROM python:3.11.14-slim-bookworm AS runtime",
        "FROM python:latest AS runtime",
        "not pinned",
    ),
    "named user": ("USER 10001:10001", "USER tggod", "numeric USER"),
    "root user": ("USER 10001:10001", "USER 0", "root"),
    "shell entrypoint": (
        'ENTRYPOINT ["tggod-thumbnail-service"]',
        "ENTRYPOINT tggod-thumbnail-service",
        "exec (JSON array) form",
    ),
    "unknown entrypoint": (
        'ENTRYPOINT ["tggod-thumbnail-service"]',
        'ENTRYPOINT ["python", "-m", "thumbnail_service"]',
        "console script",
    ),
    "buffered output": ("ENV PYTHONUNBUFFERED=1 \\", "ENV PYTHONFOO=1 \\", "PYTHONUNBUFFERED"),
    "no ffmpeg": ("--no-install-recommends ffmpeg", "--no-install-recommends curl", "ffmpeg"),
    "no stubs": ("grpc_tools.protoc", "grpc_tools.other", "gRPC stubs"),
    "ignored source": ("COPY pyproject.toml README.md ./", "COPY Makefile ./", "excluded"),
}


@pytest.mark.parametrize("case", BROKEN, ids=BROKEN.keys())
def test_checker_catches(case: str, tmp_path: Path) -> None:
    old, new, expected = BROKEN[case]
    text = THUMBNAIL.read_text()
    assert old in text, f"the fixture no longer matches the Dockerfile: {old!r}"
    if case == "single stage":
        runtime = text.index("FROM python:3.11.14-slim-bookworm AS runtime")
        text = text[runtime:]
    else:
        text = text.replace(old, new)
    broken = tmp_path / THUMBNAIL.name
    broken.write_text(text)
    problems = dockerfile.check(broken)
    assert any(expected in problem for problem in problems), problems
