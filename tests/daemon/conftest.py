"""Fixtures for the daemon tests (helpers live in :mod:`tests.daemon.harness`).

Unix socket paths are limited to 107 bytes, and pytest's ``tmp_path`` can be longer, so
the control socket lives in a short folder under /tmp of its own.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def short_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ts-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
