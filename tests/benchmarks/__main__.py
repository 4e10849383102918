"""``make bench``: every benchmark, each printing ratios against a baseline from the same run.

Benchmarks measure; they never fail because a machine is slow. A benchmark that cannot run
(for example a missing optional tool) says so and the others still run.
"""

from __future__ import annotations

import importlib
import sys
import traceback

BENCHMARKS = ("tests.benchmarks.session_bench", "tests.benchmarks.thumbnail_bench")


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        print(f"\n=== {name} ===", flush=True)
        try:
            importlib.import_module(name).main()
        except Exception:  # report it and go on to the next benchmark
            traceback.print_exc()
            failed.append(name)
    if failed:
        print(f"\nbenchmarks that could not run: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
