"""Reusable pieces for tests that run the gateway: configurations, a ``tagsweep run``
subprocess, an event-collecting sink.

Other test suites (outputs, live view, demo) import these instead of re-inventing them:
``from tests.daemon.harness import Daemon, config_data, make_config, write_toml``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tagsweep.config import TagsweepConfig, parse_config
from tagsweep.daemon.control import ControlError, call
from tagsweep.daemon.events import GatewayEvent
from tests.conftest import eventually

#: How tests start the CLI (the console script may not be on PATH).
CLI = [sys.executable, "-m", "tagsweep.cli"]


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
    await eventually(predicate, what, timeout_s)


class Daemon:
    """A ``tagsweep run`` subprocess with its log in a file."""

    def __init__(self, config: Path, socket: Path, log: Path) -> None:
        self.config = config
        self.socket = socket
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*CLI, "run", "--config", str(self.config)], stdout=out, stderr=out
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                call(self.socket, "ping", timeout_s=2)
            except ControlError:
                time.sleep(0.05)
            else:
                return
        raise AssertionError(f"daemon did not start:\n{self.log.read_text()}")

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = call(self.socket, "status")
        return result

    def wait_for(self, predicate: Any, what: str, timeout_s: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self.status()
            if predicate(status):
                return status
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=20)
