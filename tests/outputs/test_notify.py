"""sd_notify over a real NOTIFY_SOCKET datagram socket: READY, WATCHDOG, STATUS."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tagsweep.daemon.notify import SystemdNotifier, run_watchdog, watchdog_interval
from tests.conftest import eventually
from tests.outputs.conftest import running


class NotifySocket:
    """The receiving end systemd would hold: an AF_UNIX datagram socket."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.setblocking(False)

    def drain(self) -> list[dict[str, str]]:
        """Every message received so far, parsed into fields (never waits)."""
        out: list[dict[str, str]] = []
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return out
            out.append(dict(line.split("=", 1) for line in data.decode().splitlines()))

    async def wait(self, key: str, timeout: float = 5.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.drain():
                if key in message:
                    return message
            await asyncio.sleep(0.01)
        raise AssertionError(f"no {key} message within {timeout}s")


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, NotifySocket]]:
    path = str(tmp_path / "notify.sock")
    receiver = NotifySocket(path)
    yield path, receiver
    receiver.sock.close()


async def test_ready_then_watchdog_pings_with_status(
    notify_socket: tuple[str, NotifySocket],
) -> None:
    path, receiver = notify_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})
    assert notifier.enabled
    assert notifier.watchdog_s == pytest.approx(0.05)

    assert notifier.ready("2 readers configured")
    ready = await receiver.wait("READY")
    assert ready == {
        "READY": "1",
        "MAINPID": str(os.getpid()),
        "STATUS": "2 readers configured",
    }

    async with running(
        run_watchdog(notifier, status=lambda: "1200 reads/s; hh1 inventorying"), "sd-watchdog"
    ):
        pings: list[dict[str, str]] = []

        def four_pings() -> bool:
            pings.extend(m for m in receiver.drain() if m.get("WATCHDOG") == "1")
            return len(pings) >= 4

        await eventually(four_pings, "4 watchdog pings")
        assert pings[0]["STATUS"] == "1200 reads/s; hh1 inventorying"

        # A hung event loop must stop pinging: block the loop, then look at what arrived
        # while it was blocked (without yielding to it first).
        receiver.drain()
        time.sleep(0.3)  # noqa: ASYNC251 -- blocking the loop on purpose: a wedged daemon
        assert receiver.drain() == []
        # ...and once the loop runs again, so do the pings
        assert (await receiver.wait("WATCHDOG"))["WATCHDOG"] == "1"

    assert notifier.stopping("shutting down")
    assert (await receiver.wait("STOPPING"))["STATUS"] == "shutting down"
    notifier.close()


async def test_unhealthy_gateway_withholds_pings_but_keeps_status(
    notify_socket: tuple[str, NotifySocket],
) -> None:
    path, receiver = notify_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
    healthy = True
    async with running(
        run_watchdog(
            notifier,
            interval_s=0.02,
            status=lambda: "store writer stalled",
            healthy=lambda: healthy,
            status_every_s=0.02,
        ),
        "sd-watchdog",
    ):
        assert (await receiver.wait("WATCHDOG"))["WATCHDOG"] == "1"
        healthy = False
        # a ping already on its way may still come; from the first status without one,
        # none may follow
        await eventually(
            lambda: any("WATCHDOG" not in m for m in receiver.drain()), "a status without ping"
        )
        messages: list[dict[str, str]] = []

        def three_more() -> bool:
            messages.extend(receiver.drain())
            return len(messages) >= 3

        await eventually(three_more, "status messages while unhealthy")
        assert all("WATCHDOG" not in m for m in messages)
        assert all(m["STATUS"] == "store writer stalled" for m in messages)
    notifier.close()


async def test_abstract_namespace_socket() -> None:
    name = f"tagsweep-test-{os.getpid()}-{time.monotonic_ns()}"
    receiver = NotifySocket("\0" + name)
    try:
        notifier = SystemdNotifier({"NOTIFY_SOCKET": "@" + name})
        assert notifier.status("starting readers")
        assert (await receiver.wait("STATUS"))["STATUS"] == "starting readers"
        notifier.close()
    finally:
        receiver.sock.close()


def test_outside_systemd_everything_is_a_no_op(tmp_path: Path) -> None:
    notifier = SystemdNotifier({})
    assert not notifier.enabled
    assert not notifier.ready()
    assert not notifier.watchdog()
    # a socket that is gone: reported once, never raised
    gone = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "missing.sock")})
    assert not gone.watchdog()
    gone.close()


def test_watchdog_interval_is_half_the_timeout_and_only_for_our_pid() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    mine = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_interval(mine) == 1.0
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
