"""Run every benchmark (``make bench``) and collect their JSON summaries into one file.

Each ``bench_*`` module runs in its own process so one benchmark's memory and threads
never skew the next. Arguments after ``--`` are not forwarded: each benchmark's defaults
are the published configuration.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.table import markdown_table

HERE = Path(__file__).parent
RESULTS = HERE / "results"


def main() -> int:
    only = set(sys.argv[1:])
    modules = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if only:
        modules = [m for m in modules if m in only or m.removeprefix("bench_") in only]
    failed: list[str] = []
    for module in modules:
        print(f"== {module}", flush=True)
        started = time.monotonic()
        rc = subprocess.call([sys.executable, "-m", f"benchmarks.{module}"])
        print(f"== {module}: exit {rc} in {time.monotonic() - started:.1f}s\n", flush=True)
        if rc:
            failed.append(module)
    summary = {
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": __import__("os").cpu_count(),
        },
        "results": {
            p.stem: json.loads(p.read_text())
            for p in sorted(RESULTS.glob("*.json"))
            if p.stem != "summary"
        },
        "failed": failed,
    }
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(f"summary: {RESULTS / 'summary.json'}\n")
    print(markdown_table(summary))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
