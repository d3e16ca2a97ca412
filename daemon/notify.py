"""systemd readiness and watchdog: ``READY=1``, ``WATCHDOG=1`` and ``STATUS=`` datagrams.

Why the pings come from a task on the daemon's event loop (and not from a thread): the
watchdog must prove that the loop that reads, deduplicates and stores is alive. If that
loop hangs — a blocking call, a deadlock, a runaway computation — the pings stop and
systemd restarts the service after ``WatchdogSec``. A thread would keep pinging a dead
daemon.

The protocol is a single datagram per message to the ``AF_UNIX`` socket named in
``$NOTIFY_SOCKET`` (``@name`` is the abstract namespace); it is implemented here
directly (a dozen lines) so that failures are visible in the log rather than swallowed.
Outside systemd (no ``$NOTIFY_SOCKET``) every call is a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable, Mapping

from tagsweep.logs import get_logger


class SystemdNotifier:
    """Sends sd_notify messages; does nothing when not started by systemd."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        self.address: str | None = None
        if path.startswith("@"):
            self.address = "\0" + path[1:]
        elif path.startswith("/"):
            self.address = path
        self.watchdog_s = watchdog_interval(env)
        self.log = get_logger("notify")
        self._socket: socket.socket | None = None
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: str | int) -> bool:
        """Send ``KEY=value`` lines in one datagram; True when it was delivered."""
        if self.address is None:
            return False
        message = "\n".join(f"{key.upper()}={value}" for key, value in fields.items())
        try:
            if self._socket is None:
                self._socket = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                )
                self._socket.setblocking(False)
            self._socket.sendto(message.encode("utf-8", "replace"), self.address)
        except OSError as exc:
            if not self._failed:  # log the first failure, not every ping
                self.log.warning("sd_notify_failed", error=str(exc), socket=self.address)
            self._failed = True
            return False
        self._failed = False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Tell systemd start-up is complete (readers configured, sinks running)."""
        fields: dict[str, str | int] = {"ready": 1, "mainpid": os.getpid()}
        if status:
            fields["status"] = _one_line(status)
        return self.send(**fields)

    def watchdog(self, status: str | None = None) -> bool:
        fields: dict[str, str | int] = {"watchdog": 1}
        if status:
            fields["status"] = _one_line(status)
        return self.send(**fields)

    def status(self, text: str) -> bool:
        return self.send(status=_one_line(text))

    def stopping(self, status: str = "stopping") -> bool:
        return self.send(stopping=1, status=_one_line(status))

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Half of ``$WATCHDOG_USEC`` in seconds (systemd's advice), when meant for us."""
    usec = environ.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    pid = environ.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 2e6


async def run_watchdog(
    notifier: SystemdNotifier,
    *,
    interval_s: float | None = None,
    status: Callable[[], str] | None = None,
    healthy: Callable[[], bool] | None = None,
    status_every_s: float = 5.0,
    stop: asyncio.Event | None = None,
) -> None:
    """Ping the watchdog from the event loop until ``stop`` is set (or cancelled).

    ``healthy`` lets the supervisor withhold pings when a vital task is wedged even
    though the loop itself still runs; ``status`` supplies the ``STATUS=`` text
    (reads/s, reader states), refreshed every ``status_every_s`` seconds. Without a
    watchdog configured it only refreshes the status. On ``stop`` it sends
    ``STOPPING=1``, so ``systemctl status`` shows the shutdown while it runs.
    """
    interval = interval_s if interval_s is not None else notifier.watchdog_s
    period = min(interval, status_every_s) if interval else status_every_s
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    last_status = float("-inf")
    log = get_logger("notify")
    while not stop.is_set():
        now = loop.time()
        text = None
        if status is not None and now - last_status >= status_every_s:
            last_status = now
            try:
                text = status()
            except Exception as exc:  # a status bug must not silence the watchdog
                log.exception("status_text_failed", error=repr(exc))
        if interval and (healthy is None or healthy()):
            notifier.watchdog(text)
        elif interval:
            log.warning("watchdog_withheld", reason="unhealthy")
            if text:
                notifier.status(text)
        elif text:
            notifier.status(text)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=period)
    notifier.stopping()
