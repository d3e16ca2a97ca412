"""The systemd units: ``systemd-analyze verify`` passes, hardening exposure stays <= 2.0."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "systemd"
ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
INSTALLED = "/opt/tagsweep/bin/tagsweep"
SERVICES = ["tagsweep.service", "tagsweep-reconcile.service"]


def directives(unit: str) -> dict[str, list[str]]:
    """Key → values (in order) of a unit file; keys may repeat, as systemd allows."""
    out: dict[str, list[str]] = {}
    text = (UNITS / unit).read_text().replace("\\\n", " ")  # line continuations
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def installed_copy(tmp_path: Path) -> Path:
    """The units as installed, with ExecStart pointing at this checkout's tagsweep.

    ``verify`` checks that the ExecStart binary exists; in a checkout it lives in the
    virtualenv rather than in /opt/tagsweep.
    """
    tagsweep = Path(sys.executable).parent / "tagsweep"
    assert tagsweep.exists(), "tagsweep must be installed in the virtualenv"
    for unit in UNITS.iterdir():
        (tmp_path / unit.name).write_text(unit.read_text().replace(INSTALLED, str(tagsweep)))
    return tmp_path


def test_units_verify(tmp_path: Path) -> None:
    units = installed_copy(tmp_path)
    result = subprocess.run(
        [
            ANALYZE,
            "verify",
            "--man=no",
            *(str(units / u) for u in sorted(p.name for p in UNITS.iterdir())),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # verify also warns without failing; the units must be clean
    assert "tagsweep" not in result.stderr, result.stderr


@pytest.mark.parametrize("unit", SERVICES)
def test_hardening_exposure_is_at_most_2(unit: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [ANALYZE, "security", "--offline=yes", "--no-pager", str(UNITS / unit)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout


def test_gateway_unit_is_a_supervised_notify_service() -> None:
    d = directives("tagsweep.service")
    assert d["Type"] == ["notify"]
    assert d["NotifyAccess"] == ["main"]
    assert int(d["WatchdogSec"][0]) > 0
    assert d["Restart"] == ["on-failure"]
    assert d["DynamicUser"] == ["yes"]
    assert d["StateDirectory"] == ["tagsweep"]
    assert d["RuntimeDirectory"] == ["tagsweep"]
    assert d["ExecStart"][0].startswith(f"{INSTALLED} run --config ")
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "RestrictRealtime"):
        assert d[key] == ["yes"], key
    assert d["ProtectSystem"] == ["strict"]
    assert d["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert d["CapabilityBoundingSet"] == [""]


def test_reconcile_timer_runs_the_reconcile_service() -> None:
    timer = directives("tagsweep-reconcile.timer")
    service = directives("tagsweep-reconcile.service")
    assert timer["Unit"] == ["tagsweep-reconcile.service"]
    assert timer["Persistent"] == ["yes"]
    assert timer["OnCalendar"]
    assert service["Type"] == ["oneshot"]
    assert service["ExecStart"] == [
        f"{INSTALLED} reconcile nightly --config /etc/tagsweep/reconcile.toml"
    ]
    # the same dynamic user as the gateway, so the session files are readable
    assert service["User"] == directives("tagsweep.service")["User"]
    assert service["PrivateNetwork"] == ["yes"]
