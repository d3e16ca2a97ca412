"""Shared test infrastructure: a real mosquitto broker, and a leak check.

* ``mosquitto`` starts a real broker on a free loopback port for the test and stops it;
  ``MosquittoBroker.stop()``/``start()`` simulate an outage on the same port.
* Every test fails if it leaves an asyncio task or a thread running (pymodbus style).
* ``eventually`` waits for the state a test expects (a generous timeout only guards
  against a hang): tests never sleep for a wall-clock window and then look.
"""

from __future__ import annotations

import asyncio
import inspect
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tagsweep.logs import configure_logging

configure_logging(json=True, level="debug")

# Hypothesis' per-example deadline is a wall-clock assertion: on a loaded two-core CI
# machine a parser example can take 300 ms without anything being wrong. Tests state
# what must hold, not how fast; speed is measured in benchmarks/.
settings.register_profile("tagsweep", deadline=None)
settings.load_profile("tagsweep")

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


HANG_GUARD_S = 60.0


async def eventually(
    predicate: Callable[[], bool | Awaitable[bool]],
    what: str,
    timeout_s: float = HANG_GUARD_S,
) -> None:
    """Return as soon as ``predicate()`` (plain or async) is true; fail after
    ``timeout_s``, which is a hang guard, not part of what is tested."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        await asyncio.sleep(0.01)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


class MosquittoBroker:
    """A real mosquitto process bound to 127.0.0.1 on a free port."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.workdir = workdir
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "log_dest stderr\n"
            "max_queued_messages 1000000\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if not Path(MOSQUITTO).exists():
            raise RuntimeError("mosquitto is not installed: run `make test` (it installs it)")
        log = (self.workdir / "mosquitto.log").open("ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=log)
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A running mosquitto broker on a free loopback port, stopped after the test."""
    broker = MosquittoBroker(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def _live_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive()}


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a thread running after it ends."""
    before = _live_threads()
    yield
    deadline = time.monotonic() + 3.0
    leaked: set[threading.Thread] = set()
    while time.monotonic() < deadline:
        leaked = {
            t
            for t in _live_threads() - before
            # asyncio's default executor threads are owned by the (closed) loop
            if not t.name.startswith(("asyncio_", "ThreadPoolExecutor"))
        }
        if not leaked:
            return
        time.sleep(0.05)
    pytest.fail(f"test leaked threads: {sorted(t.name for t in leaked)}")


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail an async test that leaves asyncio tasks pending on its loop."""
    yield
    current = asyncio.current_task()
    deadline = time.monotonic() + 2.0
    pending: set[asyncio.Task[object]] = set()
    while time.monotonic() < deadline:
        pending = {t for t in asyncio.all_tasks() if t is not current and not t.done()}
        if not pending:
            return
        await asyncio.sleep(0.02)
    names = sorted(t.get_name() for t in pending)
    for task in pending:
        task.cancel()
    pytest.fail(f"test leaked asyncio tasks: {names}")
