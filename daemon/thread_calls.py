"""Awaiting a blocking call that runs on a worker thread, cancellation-safe.

A thread cannot be interrupted: when the task waiting for a DuckDB call is cancelled,
the call still runs to the end. :func:`until_done` waits for it to end before letting
the cancellation through, so whatever the caller guards (a lock, in-memory counters)
stays consistent with what the call committed.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TypeVar

_T = TypeVar("_T")


async def until_done(future: asyncio.Future[_T]) -> _T:
    """The result of ``future``; on cancellation, wait for it to finish, then re-raise."""
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await future
        raise
