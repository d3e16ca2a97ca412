"""The demo's optional NetBox register (``--netbox``): load the ITAM export into NetBox,
freeze a snapshot whose ITAM source is NetBox's API, and push the run's findings back."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tagsweep.simulators.demo.scenario import DemoOptions


def netbox_snapshot(
    options: DemoOptions, exports: Any, out: Path, settings: Any, notes: list[str]
) -> Path:
    """Load the ITAM export into NetBox and freeze a snapshot whose ITAM source is
    NetBox's API (the other sources stay the generated files)."""
    from tagsweep.engine.freeze import SourceSpec, freeze
    from tagsweep.netbox.pull import pull_export
    from tagsweep.simulators.netbox_demo import DEMO_TAG, load_into_netbox

    assert options.netbox is not None
    assert options.netbox_token is not None
    loaded = load_into_netbox(options.netbox, options.netbox_token, out / "snapshot", "itam")
    notes.append(
        f"NetBox {options.netbox}: {loaded.devices} devices loaded"
        + (f", {len(loaded.refused)} refused (e.g. {loaded.refused[0]})" if loaded.refused else "")
    )
    pulled = pull_export(
        f"{options.netbox}/?tag={DEMO_TAG}", options.netbox_token, out / "netbox-devices.json"
    )
    notes.append(f"froze {pulled.records} devices from {pulled.origin}")
    specs = [
        SourceSpec(name, path, preset)
        for name, (preset, path) in exports.sources.items()
        if name != "itam"
    ]
    specs.append(SourceSpec("itam", pulled.path, "netbox", pulled.fetched_at, pulled.origin))
    freeze(specs, out / "snapshot-netbox", settings)
    return out / "snapshot-netbox"


def netbox_push(options: DemoOptions, run_dir: Path) -> str:
    from tagsweep.engine.netbox_plan import read_run_facts
    from tagsweep.engine.netbox_push import push

    assert options.netbox is not None
    assert options.netbox_token is not None
    _, result = asyncio.run(
        push(options.netbox, options.netbox_token, read_run_facts(run_dir), [], setup=True)
    )
    assert result is not None
    return (
        f"pushed: {result.devices_updated} devices updated, {result.journal_entries} journal "
        f"entries, {result.audit_trails} audit trails, {len(result.failed)} failed"
    )
