"""buf guards the contract: lint-clean, and no breaking change since the first published v1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUF = Path(sys.executable).parent / "buf"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BUF), *args], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )


def test_buf_lint_passes() -> None:
    result = _run("lint", "protos")
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_breaking_change_since_the_first_contract() -> None:
    first = subprocess.run(
        ["git", "log", "--diff-filter=A", "--format=%H", "--", "protos/buf.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert first, "protos/buf.yaml has no history: is this a git clone?"
    result = _run("breaking", "protos", "--against", f".git#ref={first[-1]},subdir=protos")
    assert result.returncode == 0, result.stdout + result.stderr
