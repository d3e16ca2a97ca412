"""``tagsweep demo --netbox URL``: the demo's register lives in a real NetBox."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from tagsweep.engine.freeze import load_snapshot
from tagsweep.simulators.demo import DemoOptions, run_demo
from tests.netbox.server import NetBoxServer
from tests.netbox.world import get_all


@pytest.mark.slow
@pytest.mark.timeout(300)  # the demo's count through the real gateway, then NetBox
def test_demo_counts_against_netbox_and_pushes_back(netbox: NetBoxServer, tmp_path: Path) -> None:
    assert netbox.tokens is not None
    options = DemoOptions(
        out=tmp_path / "out", assets=100, racks=2, speed=20.0, per_type=1, mqtt_probe=None,
        netbox=netbox.url, netbox_token=netbox.tokens.v2,
    )  # fmt: skip
    result = run_demo(options, Console(file=io.StringIO()))
    itam = load_snapshot(result.out_dir / "snapshot-netbox").source("itam")
    assert itam.preset == "netbox"
    assert itam.origin is not None
    assert itam.origin.endswith("/api/dcim/devices/?tag=tagsweep-demo")
    loaded, frozen, pushed = result.netbox
    assert "refused" not in loaded
    assert f"froze {itam.rows} devices" in frozen
    assert pushed.endswith(", 0 failed")
    assert result.variances
    counted = get_all(netbox.url, netbox.tokens.v1, "dcim/devices/",
                      [("tag", "tagsweep-demo"), ("cf_last_counted__empty", "false")])  # fmt: skip
    assert counted
