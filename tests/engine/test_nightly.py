"""The nightly reconciliation as installed: the timer's command, run by hand.

The command line comes from ``systemd/tagsweep-reconcile.service`` itself and the
configuration from ``config/examples/reconcile.toml`` (what the install steps copy to
``/etc/tagsweep/reconcile.toml``); the state folder is laid out as the README says:
exports the export job drops, session files in one folder per gateway.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tagsweep.config import load_config
from tagsweep.engine.nightly import NightlyError, new_dated_dir, prune, run_nightly
from tagsweep.simulators.fleet_exports import generate

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "tagsweep-reconcile.service"
EXAMPLE = ROOT / "config" / "examples" / "reconcile.toml"
INSTALLED = "/opt/tagsweep/bin/tagsweep"
INSTALLED_CONFIG = "/etc/tagsweep/reconcile.toml"
# export file names of the example configuration, per generated source
EXPORT_NAMES = {"itam": "assets.csv", "intune": "devices.csv", "finance": "far.xlsx",
                "hr": "people.json"}  # fmt: skip


def exec_start() -> list[str]:
    lines = [
        line.partition("=")[2].strip()
        for line in UNIT.read_text().splitlines()
        if line.startswith("ExecStart=")
    ]
    assert len(lines) == 1, lines
    return shlex.split(lines[0])


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state folder as the README's install leaves it after the first counts."""
    base = tmp_path_factory.mktemp("nightly")
    exports = generate(base / "generated", n_assets=300, per_type=2, seed=5)
    root = base / "state"
    (root / "exports").mkdir(parents=True)
    for name, (_, path) in exports.sources.items():
        shutil.copyfile(path, root / "exports" / EXPORT_NAMES[name])
    session = next(p for p in exports.counts if p.suffix == ".parquet")
    gateway = root / "sessions" / "gw-dc1"
    gateway.mkdir(parents=True)
    for file in (session, session.with_suffix(".json")):
        shutil.copyfile(file, gateway / file.name)
    (gateway / f".{session.name}.tmp").write_bytes(b"half-written")  # never read
    sheets = root / "count-sheets"
    sheets.mkdir()
    sheet = next(p for p in exports.counts if p.suffix == ".csv")
    shutil.copyfile(sheet, sheets / sheet.name)
    return root


def run_timer_command(state: Path, config: Path) -> subprocess.CompletedProcess[str]:
    tagsweep = str(Path(sys.executable).parent / "tagsweep")
    argv = [
        tagsweep if a == INSTALLED else str(config) if a == INSTALLED_CONFIG else a
        for a in exec_start()
    ]
    env = {**os.environ, "STATE_DIRECTORY": str(state), "COLUMNS": "200"}
    return subprocess.run(
        argv, capture_output=True, text=True, check=False, env=env, cwd=state, timeout=300
    )


def test_the_unit_runs_the_nightly_command_on_the_installed_config() -> None:
    assert exec_start() == [INSTALLED, "reconcile", "nightly", "--config", INSTALLED_CONFIG]


def test_timer_command_twice_by_hand(state: Path, tmp_path: Path) -> None:
    config = tmp_path / "reconcile.toml"
    text = EXAMPLE.read_text()
    assert "keep_snapshots = 14" in text
    assert "keep_runs = 90" in text
    config.write_text(text.replace("keep_snapshots = 14", "keep_snapshots = 2"))
    for _ in range(3):  # three nights
        result = run_timer_command(state, config)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "variances" in result.stdout
    snapshots = sorted(p.name for p in (state / "snapshots").iterdir())
    runs = sorted(p.name for p in (state / "runs").iterdir())
    # a new dated snapshot each time (never overwritten), the oldest pruned beyond 2
    assert len(snapshots) == 2, snapshots
    assert len(runs) == 3, runs
    assert "removed" in result.stdout
    sessions = [p.name for p in (state / "sessions" / "gw-dc1").glob("*.parquet")]
    for run in runs:
        manifest = json.loads((state / "runs" / run / "manifest.json").read_text())
        # the session file in its gateway's folder and the count sheet were both read,
        # the half-written one was not
        files = sorted(c["file"] for c in manifest["inputs"]["counts"])
        assert files == sorted([*sessions, "count_sheet.csv"])
        assert manifest["counts"]["variances"] > 0
    # the same inputs give the same variances every night
    by_type = {
        json.dumps(
            json.loads((state / "runs" / r / "manifest.json").read_text())["counts"]["by_type"]
        )
        for r in runs
    }
    assert len(by_type) == 1


def test_missing_export_is_a_clear_error(state: Path, tmp_path: Path) -> None:
    config = tmp_path / "reconcile.toml"
    config.write_text(EXAMPLE.read_text().replace("exports/far.xlsx", "exports/absent.xlsx"))
    before = sorted((state / "snapshots").iterdir()) if (state / "snapshots").exists() else []
    result = run_timer_command(state, config)
    assert result.returncode == 1
    assert "absent.xlsx does not exist" in result.stderr
    after = sorted((state / "snapshots").iterdir()) if (state / "snapshots").exists() else []
    assert before == after  # nothing half-frozen left behind


def test_no_session_files_reconciles_nothing(tmp_path: Path) -> None:
    settings = load_config(EXAMPLE).engine
    (tmp_path / "exports").mkdir()
    for name in EXPORT_NAMES.values():
        (tmp_path / "exports" / name).write_text("x")
    result = run_nightly(settings, tmp_path)
    assert result.run is None
    assert "no session files" in result.warnings[0]
    assert not (tmp_path / "snapshots").exists()


def test_nothing_configured_is_refused(tmp_path: Path) -> None:
    from tagsweep.config.engine import EngineSection

    with pytest.raises(NightlyError, match=r"\[engine.nightly.exports\]"):
        run_nightly(EngineSection(), tmp_path)


def test_prune_keeps_the_newest_and_only_touches_dated_folders(tmp_path: Path) -> None:
    now = datetime(2026, 11, 24, 2, 30, tzinfo=UTC)
    made = []
    for _ in range(3):  # same second: suffixes -2, -3 sort after the plain stamp
        path = new_dated_dir(tmp_path, now)
        path.mkdir()
        made.append(path)
    older = new_dated_dir(tmp_path, datetime(2026, 11, 23, 2, 30, tzinfo=UTC))
    older.mkdir()
    (tmp_path / "keep-me").mkdir()
    assert [p.name for p in made] == ["20261124T023000Z", "20261124T023000Z-2",
                                      "20261124T023000Z-3"]  # fmt: skip
    removed = prune(tmp_path, 2)
    assert removed == [older, made[0]]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "20261124T023000Z-2",
        "20261124T023000Z-3",
        "keep-me",
    ]
