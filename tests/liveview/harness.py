"""A gateway configuration for the live view tests (real store, control socket, web)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def config_data(
    tmp: Path,
    sock_dir: Path,
    *,
    readers: Sequence[dict[str, Any]] = (),
    scanners: Sequence[dict[str, Any]] = (),
    window_s: float = 0.3,
    flush_s: float = 0.05,
) -> dict[str, Any]:
    """Configuration data (as parsed TOML) of a test gateway at site DC1."""
    return {
        "gateway": {"id": "gw-live", "site": "DC1"},
        "store": {"path": str(tmp / "gateway.duckdb"), "session_dir": str(tmp / "sessions")},
        "dedup": {"window_s": window_s, "flush_interval_s": flush_s},
        "readers": list(readers),
        "scanners": list(scanners),
        "metrics": {"enabled": False},
        "control": {"socket": str(sock_dir / "control.sock"), "mode": 0o600},
    }
