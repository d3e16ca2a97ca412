"""A cancelled wait for a call on a worker thread ends only once that call has ended
(the store and the MQTT outbox rely on it to keep their state and locks consistent)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tagsweep.daemon.thread_calls import until_done


async def test_a_cancelled_wait_lets_the_thread_call_finish_first() -> None:
    started, release = threading.Event(), threading.Event()
    finished: list[bool] = []

    def work() -> int:
        started.set()
        release.wait(30)  # hang guard only: the test releases it
        finished.append(True)
        return 1

    task = asyncio.create_task(until_done(asyncio.ensure_future(asyncio.to_thread(work))))
    await asyncio.to_thread(started.wait, 30)
    task.cancel()
    for _ in range(20):  # loop turns, not wall-clock time
        await asyncio.sleep(0)
    assert not task.done()  # still waiting for the thread's call
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished == [True]


async def test_the_result_and_the_error_come_through() -> None:
    def fail() -> int:
        raise ValueError("bad")

    assert await until_done(asyncio.ensure_future(asyncio.to_thread(lambda: 7))) == 7
    with pytest.raises(ValueError, match="bad"):
        await until_done(asyncio.ensure_future(asyncio.to_thread(fail)))
