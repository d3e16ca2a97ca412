"""`reconcile run --history`: the run's own report carries the trends across runs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from typer.testing import CliRunner

from tagsweep.cli import app

from .test_scenario import RUN_DATES, _count, _register


def _run(tmp_path: Path, n: int, out: Path, *history: str) -> None:
    count = _count(tmp_path / f"count{n}.csv", RUN_DATES[n], absent=[5, 11 + n], moved={})
    baseline = str(tmp_path / "register0.parquet")
    args = ["reconcile", "run", "--snapshot", baseline, "--count", str(count)]
    args += ["--out", str(out), "--as-of", RUN_DATES[n].isoformat()]
    for h in history:
        args += ["--history", h]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output


def _run_id(run: Path) -> str:
    return str(json.loads((run / "manifest.json").read_text())["run_id"])


def test_history_puts_trends_in_the_report(tmp_path: Path) -> None:
    _register(tmp_path / "register0.parquet")
    runs = tmp_path / "runs"
    _run(tmp_path, 0, runs / "r1")
    _run(tmp_path, 1, runs / "r2", str(runs / "r1"))
    _run(tmp_path, 2, runs / "r3", str(runs / "*"))

    first = (runs / "r1" / "report.html").read_text()
    assert "Trends across runs" not in first
    assert "Trends across runs" not in (runs / "r1" / "report.md").read_text()

    third = runs / "r3"
    html = (third / "report.html").read_text()
    assert html.count('<section class="trends">') == 1
    for run in ("r1", "r2", "r3"):
        assert _run_id(runs / run) in html
    assert "## Trends across runs" in (third / "report.md").read_text()
    assert _run_id(runs / "r1") in (runs / "r2" / "report.html").read_text()

    # The manifest hashes the report as written, and a re-run into the same folder (the
    # glob now names it too) gives the same bytes.
    manifest = json.loads((third / "manifest.json").read_text())
    before = {}
    for name in ("report.html", "report.md"):
        data = (third / name).read_bytes()
        assert manifest["outputs"][name] == hashlib.sha256(data).hexdigest()
        before[name] = data
    _run(tmp_path, 2, third, str(runs / "*"))
    for name, data in before.items():
        assert (third / name).read_bytes() == data

    # Without --history the report is the one of a plain run.
    _run(tmp_path, 2, tmp_path / "plain")
    plain = (tmp_path / "plain" / "report.html").read_text()
    assert "Trends across runs" not in plain
    start = html.index('<section class="trends">')
    end = html.index("</section>") + len("</section>\n")
    assert plain == html[:start] + html[end:]
