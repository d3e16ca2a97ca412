"""Fixtures shared with the daemon tests (a short folder for Unix sockets)."""

from tests.daemon.conftest import short_dir

__all__ = ["short_dir"]
