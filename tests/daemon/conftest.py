"""Fixtures for the daemon tests: real configurations in short temporary folders.

Unix socket paths are limited to 107 bytes, and pytest's ``tmp_path`` can be longer, so
the control socket lives in a short folder under /tmp of its own.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tagsweep.config import TagsweepConfig, parse_config
from tagsweep.daemon.events import GatewayEvent


@pytest.fixture
def short_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ts-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def config_data(
    tmp: Path,
    sock_dir: Path,
    *,
    readers: Sequence[dict[str, Any]] = (),
    scanners: Sequence[dict[str, Any]] = (),
    window_s: float = 0.3,
    flush_s: float = 0.05,
    keep_raw_reads: bool = False,
) -> dict[str, Any]:
    return {
        "gateway": {"id": "gw-test", "site": "DC1"},
        "store": {
            "path": str(tmp / "gateway.duckdb"),
            "session_dir": str(tmp / "sessions"),
            "keep_raw_reads": keep_raw_reads,
        },
        "dedup": {"window_s": window_s, "flush_interval_s": flush_s},
        "readers": list(readers),
        "scanners": list(scanners),
        "locations": [
            {"path": "DC1/Room 302", "label": "LOC-DC1-302"},
            {"path": "DC1/Room 302/Rack A04", "label": "LOC-DC1-302-A04"},
        ],
        "metrics": {"enabled": False},
        "control": {"socket": str(sock_dir / "control.sock"), "mode": 0o600},
    }


def make_config(tmp: Path, sock_dir: Path, **kwargs: Any) -> TagsweepConfig:
    return parse_config(config_data(tmp, sock_dir, **kwargs))


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise TypeError(value)


def write_toml(path: Path, data: dict[str, Any]) -> Path:
    """A minimal TOML writer for the configurations these tests use."""
    lines: list[str] = []
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"[{key}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in value.items()]
        elif isinstance(value, list):
            for item in value:
                lines.append(f"[[{key}]]")
                lines += [f"{k} = {toml_value(v)}" for k, v in item.items()]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


class EventList:
    """An EventSink that keeps everything (what a test asserts on)."""

    def __init__(self) -> None:
        self.events: list[GatewayEvent] = []

    async def emit(self, events: Sequence[GatewayEvent]) -> None:
        self.events.extend(events)

    def kinds(self) -> list[str]:
        return [e.kind.value for e in self.events]


async def wait_until(
    predicate: Callable[[], bool], timeout_s: float = 15.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.02)
