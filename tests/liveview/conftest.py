"""Fixtures of the live view tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short folder for the control socket (Unix socket paths are limited to 107 bytes,
    and pytest's tmp_path can be longer)."""
    path = Path(tempfile.mkdtemp(prefix="ts-live-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
