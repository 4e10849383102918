"""A small static checker for deploy/docker/*.Dockerfile: what CI can verify without an engine.

It parses instructions (continuations, comments, exec vs shell form) well enough for the rules
the images must follow; ``hadolint`` additionally runs when it is installed.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .render import REPO

DOCKER_DIR = REPO / "deploy" / "docker"
DOCKERIGNORE = REPO / ".dockerignore"

# Image name (as the manifests reference it) -> Dockerfile, and what each image must carry.
IMAGES = {
    "tggod/session-service": DOCKER_DIR / "session-service.Dockerfile",
    "tggod/thumbnail-service": DOCKER_DIR / "thumbnail-service.Dockerfile",
}
REQUIRED_APT_PACKAGES = {"thumbnail-service.Dockerfile": ("ffmpeg",)}

_EXACT_TAG = re.compile(r"\d+\.\d+\.\d+")
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
_NUMERIC_USER = re.compile(r"^(\d+)(?::(\d+))?$")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON-array (exec) form's argv, or None for shell form."""
        try:
            parsed = json.loads(self.value)
        except json.JSONDecodeError:
            return None
        if isinstance(parsed, list) and all(isinstance(part, str) for part in parsed):
            return parsed
        return None


@dataclass
class Stage:
    image: str
    name: str | None
    line: int
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def env(self) -> dict[str, str]:
        """ENV of this stage, in order (``ENV a=b c=d`` and legacy ``ENV a b``)."""
        result: dict[str, str] = {}
        for instruction in self.all("ENV"):
            value = instruction.value
            if "=" not in value.split(maxsplit=1)[0]:
                key, _, rest = value.partition(" ")
                result[key] = rest.strip()
                continue
            for match in re.finditer(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)', value):
                raw = match.group(2)
                result[match.group(1)] = json.loads(raw) if raw.startswith('"') else raw
        return result


@dataclass
class Dockerfile:
    path: Path
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def entrypoint(self) -> list[str] | None:
        instruction = self.final.last("ENTRYPOINT")
        return instruction.exec_form() if instruction else None

    def cmd(self) -> list[str] | None:
        instruction = self.final.last("CMD")
        return instruction.exec_form() if instruction else None


def parse(path: Path) -> Dockerfile:
    """Instructions grouped by stage; line numbers point at each instruction's first line."""
    logical: list[tuple[int, str]] = []
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not buffer):
            continue  # comments vanish even inside a continuation, as in Docker
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1].strip())
            continue
        buffer.append(stripped)
        logical.append((start, " ".join(part for part in buffer if part)))
        buffer = []
    if buffer:
        logical.append((start, " ".join(buffer)))

    stages: list[Stage] = []
    for number, text in logical:
        keyword, _, value = text.partition(" ")
        instruction = Instruction(keyword.upper(), value.strip(), number)
        if instruction.keyword == "FROM":
            parts = [p for p in instruction.value.split() if not p.startswith("--")]
            name = parts[2] if len(parts) >= 3 and parts[1].lower() == "as" else None
            stages.append(Stage(image=parts[0], name=name, line=number))
        elif stages:
            stages[-1].instructions.append(instruction)
    return Dockerfile(path=path, stages=stages)


def _image_pinned(image: str) -> bool:
    if _DIGEST.search(image):
        return True
    reference = image.rsplit("/", 1)[-1]
    if ":" not in reference:
        return False
    tag = reference.split(":", 1)[1]
    return tag != "latest" and bool(_EXACT_TAG.search(tag))


def _allow_listed(source: str, allowed: list[str]) -> bool:
    source = source.rstrip("/")
    return any(source == a or source.startswith(a + "/") for a in allowed)


def dockerignore_allow_list(path: Path = DOCKERIGNORE) -> list[str] | None:
    """The ``!`` entries of an allow-list ``.dockerignore`` (one that starts by ignoring ``*``)."""
    if not path.is_file():
        return None
    lines = [
        line.strip()
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    if not lines or lines[0] != "*":
        return None
    return [line[1:].strip("/") for line in lines if line.startswith("!")]


def console_scripts() -> dict[str, str]:
    with (REPO / "pyproject.toml").open("rb") as handle:
        scripts: dict[str, str] = tomllib.load(handle)["project"]["scripts"]
    return scripts


def check(path: Path) -> list[str]:
    """Every rule the images must follow; an empty list means the Dockerfile passes."""
    problems: list[str] = []

    def problem(message: str, line: int | None = None) -> None:
        shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        where = f"{shown}:{line}" if line else str(shown)
        problems.append(f"{where}: {message}")

    dockerfile = parse(path)
    if len(dockerfile.stages) < 2:
        problem("must be multi-stage (a builder stage and a slim runtime stage)")
        return problems
    stage_names = {stage.name for stage in dockerfile.stages if stage.name}
    for stage in dockerfile.stages:
        if stage.image in stage_names or stage.image == "scratch":
            continue
        if not _image_pinned(stage.image):
            problem(f"base image {stage.image!r} is not pinned by exact tag or digest", stage.line)

    final = dockerfile.final
    earlier = {stage.name for stage in dockerfile.stages[:-1] if stage.name}
    copies_from_builder = [
        i for i in final.all("COPY") if any(f"--from={name}" in i.value for name in earlier)
    ]
    if not copies_from_builder:
        problem("the runtime stage copies nothing from a builder stage", final.line)

    builder_runs = " ".join(i.value for s in dockerfile.stages[:-1] for i in s.all("RUN"))
    if "grpc_tools.protoc" not in builder_runs:
        problem("the builder stage must generate the gRPC stubs (grpc_tools.protoc)")
    if "wheel" not in builder_runs:
        problem("the builder stage must build the wheel")
    for instruction in final.all("RUN"):
        if "pip install" in instruction.value or "grpc_tools" in instruction.value:
            problem("build tooling runs in the runtime stage", instruction.line)

    user = final.last("USER")
    match = _NUMERIC_USER.match(user.value) if user else None
    if user is None or match is None:
        problem("the runtime stage needs a numeric USER (uid[:gid])", user.line if user else None)
    elif int(match.group(1)) == 0 or (match.group(2) is not None and int(match.group(2)) == 0):
        problem("USER must not be root (uid/gid 0)", user.line)

    for keyword in ("ENTRYPOINT", "CMD"):
        for instruction in final.all(keyword):
            if instruction.exec_form() is None:
                problem(f"{keyword} must use the exec (JSON array) form", instruction.line)
    entrypoint = dockerfile.entrypoint()
    if not entrypoint:
        problem("the runtime stage needs an ENTRYPOINT")
    elif entrypoint[0] not in console_scripts():
        problem(f"ENTRYPOINT {entrypoint[0]!r} is not a console script in pyproject.toml")

    if final.env().get("PYTHONUNBUFFERED") not in ("1", "true", "True"):
        problem("the runtime stage must set PYTHONUNBUFFERED=1 (logs reach kubectl logs at once)")

    runtime_runs = " ".join(i.value for i in final.all("RUN"))
    for package in REQUIRED_APT_PACKAGES.get(path.name, ()):
        if not re.search(rf"apt-get install[^;&|]*\b{re.escape(package)}\b", runtime_runs):
            problem(f"the runtime stage must install {package} with apt-get")

    allowed = dockerignore_allow_list()
    if allowed is None:
        problem("/.dockerignore must exist and allow-list the context (first line `*`)")
    else:
        for stage in dockerfile.stages:
            for instruction in stage.all("COPY"):
                if "--from=" in instruction.value:
                    continue
                sources = [p for p in instruction.value.split() if not p.startswith("--")][:-1]
                for source in sources:
                    if not (REPO / source).exists():
                        problem(f"COPY source {source!r} does not exist", instruction.line)
                    elif not _allow_listed(source, allowed):
                        problem(
                            f"COPY source {source!r} is excluded by /.dockerignore",
                            instruction.line,
                        )
    return problems


def all_dockerfiles() -> list[Path]:
    return sorted(DOCKER_DIR.glob("*.Dockerfile"))
