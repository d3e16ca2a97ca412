"""Alert rules and the Grafana dashboard: valid PromQL, tested alerts, and only metric
names the gateway really exports (a renamed metric would silently blank a panel)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest

from tagsweep.daemon.events import EventKind, GatewayEvent
from tagsweep.daemon.metrics import GatewayMetrics
from tagsweep.daemon.mqtt.outbox import Outbox
from tagsweep.simulators.sim_driver import SimDriver

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "tagsweep.json"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
METRIC = re.compile(r"\btagsweep_[a-z0-9_]+")


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, check=False, cwd=cwd)


def exported_names(tmp_path: Path) -> set[str]:
    """Every sample name a fully wired gateway exports, from a real exposition."""
    metrics = GatewayMetrics(gateway="gw-01", site="DC1", process=False)
    reader = SimDriver("sim://random", name="hh1")
    reader.counters.fault("keepalive")  # fault series exist once a fault happened
    metrics.watch_reader(reader)
    outbox = Outbox(tmp_path / "gw.duckdb", site="DC1", gateway="gw-01", metrics=metrics)
    metrics.watch_outbox(outbox)
    metrics.observe_event(
        GatewayEvent(EventKind.SESSION_STARTED, {"session_id": "s", "location": "DC1"})
    )
    metrics.mqtt_outbox_dropped.labels(reason="max_rows")
    outbox.close()
    text = generate_latest(metrics.registry).decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}


def dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    exprs.append(board["templating"]["list"][1]["definition"])
    return exprs


def test_alert_rules_pass_promtool_check_and_their_unit_tests() -> None:
    check = promtool("check", "rules", str(ALERTS))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 7 rules found" in check.stdout
    tests = promtool("test", "rules", ALERT_TESTS.name, cwd=ALERT_TESTS.parent)
    assert tests.returncode == 0, tests.stdout + tests.stderr


def test_required_alerts_exist() -> None:
    names = set(re.findall(r"^\s*- alert: (\w+)$", ALERTS.read_text(), re.MULTILINE))
    assert {
        "TagsweepReaderDown",
        "TagsweepOutboxGrowing",
        "TagsweepNoReadsDuringOpenSession",
    } <= names


def test_alerts_and_dashboard_use_only_exported_metrics(tmp_path: Path) -> None:
    exported = exported_names(tmp_path)
    used = set(METRIC.findall(ALERTS.read_text()))
    for expr in dashboard_exprs():
        used |= set(METRIC.findall(expr))
    assert used, "the rules and panels reference tagsweep metrics"
    missing = sorted(used - exported)
    assert not missing, f"referenced but never exported: {missing}"


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    # promtool has no expression checker, but it parses rule expressions: wrap each
    # panel query (template variables substituted) into a recording rule.
    rules: dict[str, Any] = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"panel:{i}", "expr": expr.replace("$instance", ".*")}
                    for i, expr in enumerate(dashboard_exprs()[:-1])
                ],
            }
        ]
    }
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    check = promtool("check", "rules", str(path))
    assert check.returncode == 0, check.stdout + check.stderr


def test_dashboard_shape() -> None:
    board = json.loads(DASHBOARD.read_text())
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    titles = " ".join(p["title"].lower() for p in panels)
    for topic in ("reads per second", "reader state", "outbox", "publish latency", "session"):
        assert topic in titles, topic
    for panel in panels:
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}"
