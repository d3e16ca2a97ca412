"""Run every benchmark (``make bench``) and collect their JSON summaries into one file.

Each ``bench_*`` module runs in its own process so one benchmark's memory and threads
never skew the next. Arguments after ``--`` are not forwarded: each benchmark's defaults
are the published configuration.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.table import markdown_table

HERE = Path(__file__).parent
RESULTS = HERE / "results"
#: A benchmark still running after this long is stopped and counted as failed, so
#: ``make bench`` always ends (override with TAGSWEEP_BENCH_TIMEOUT_S).
TIMEOUT_S = float(os.environ.get("TAGSWEEP_BENCH_TIMEOUT_S", "900"))


def _run(module: str) -> int:
    """Run one benchmark in its own process group; stop the whole group (a benchmark's
    helper processes too) when it overruns ``TIMEOUT_S``."""
    proc = subprocess.Popen([sys.executable, "-m", f"benchmarks.{module}"], start_new_session=True)
    try:
        return proc.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        print(f"== {module}: stopped after {TIMEOUT_S:.0f}s", flush=True)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return -1
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGKILL)
        raise


def main() -> int:
    only = set(sys.argv[1:])
    modules = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if only:
        modules = [m for m in modules if m in only or m.removeprefix("bench_") in only]
    failed: list[str] = []
    run_started = time.time()
    for module in modules:
        print(f"== {module}", flush=True)
        started = time.monotonic()
        rc = _run(module)
        print(f"== {module}: exit {rc} in {time.monotonic() - started:.1f}s\n", flush=True)
        if rc:
            failed.append(module)
    # Only results this run wrote: a failed benchmark must not show last week's figure.
    fresh = [
        p
        for p in sorted(RESULTS.glob("*.json"))
        if p.stem != "summary" and p.stat().st_mtime >= run_started
    ]
    summary = {
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "results": {p.stem: json.loads(p.read_text()) for p in fresh},
        "failed": failed,
    }
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(f"summary: {RESULTS / 'summary.json'}\n")
    print(markdown_table(summary))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
