"""A barcode scanner stand-in: writes scan lines to a real pty or a TCP socket.

The driver under test opens it exactly as it would open hardware — a ``/dev/pts/N``
serial device (through a stable symlink, like udev's ``/dev/serial/by-id`` names) or a
``socket://`` serial server such as ser2net or a Moxa NPort — so the code that passes
against it is the code that runs against a scanner.

The script is an iterable or async iterable of scan lines (``str``, ``bytes`` or
:class:`ScanLine` with a delay), so a world model can drive it live. :class:`Noise`
adds the faults real scanners produce: garbage lines (line noise, a wrong baud rate),
writes split into pieces, random CR/LF/CRLF terminators, unplugs between scans, and
scans cut off by an unplug (re-sent after the reconnect, as an operator would rescan).
The simulator records what it wrote (:attr:`ScannerSimulator.sent`) as ground truth.

A pty cannot say whether anybody has it open, except through POLLHUP on the master and
the slave's termios: the simulator waits until a reader has opened and configured the
port before writing, because pyserial discards the input buffer on open.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import errno
import fcntl
import os
import random
import select
import shutil
import tempfile
import termios
import tty
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from tagsweep.drivers.scanparse import GS, parse_terminator

#: Control bytes a garbage line is built around: never GS, TAB, CR or LF, so every
#: garbage line is unmistakably garbage and never splits into extra lines.
_NOISE_BYTES = bytes(b for b in [*range(0x20), 0x7F] if b not in (0x09, 0x0A, 0x0D, 0x1D))
#: How long a reader gets after it opened the port before the first byte is written:
#: pyserial discards pending input at the end of open() (pty and socket alike).
SETTLE_S = 0.1
#: Sentinel line speed the simulator sets on a fresh pty; a reader opening the port
#: replaces it, which is how the simulator knows the reader is ready.
_SENTINEL_SPEED = termios.B50


@dataclass(frozen=True, slots=True)
class ScanLine:
    """One scan of a script: the text the scanner sends, after an optional pause."""

    text: str | bytes
    delay_s: float = 0.0

    @property
    def payload(self) -> bytes:
        return self.text if isinstance(self.text, bytes) else self.text.encode()


ScriptItem = str | bytes | ScanLine
Script = Iterable[ScriptItem] | AsyncIterable[ScriptItem]


@dataclass(frozen=True, slots=True)
class Noise:
    """Faults to inject; probabilities are per scan, decisions come from ``seed``."""

    garbage: float = 0.0  # garbage lines before a scan, on average (0.1: one in ten scans)
    garbage_bytes: int = 24  # longest garbage line
    split: float = 0.0  # chance a scan is written in several pieces
    terminators: bool = False  # pick CR, LF or CRLF at random for each line
    disconnect: float = 0.0  # chance of an unplug after a scan
    truncate: float = 0.0  # chance a scan is cut off by an unplug (then re-sent)
    downtime_s: float = 0.2  # how long an unplug lasts
    seed: int = 0

    @classmethod
    def parse(cls, spec: str) -> Noise:
        """``"garbage=0.1,split=0.3,terminators,disconnect=0.02,seed=7"``; ValueError on
        an unknown key or a bad number."""
        values: dict[str, Any] = {}
        for item in filter(None, (p.strip() for p in spec.split(","))):
            key, sep, raw = item.partition("=")
            key = key.strip().replace("-", "_")
            if key not in cls.__dataclass_fields__:
                known = ", ".join(cls.__dataclass_fields__)
                raise ValueError(f"unknown noise setting {key!r} (known: {known})")
            if key == "terminators":
                values[key] = not sep or raw.strip().lower() in ("1", "true", "yes", "on")
                continue
            if not sep:
                raise ValueError(f"noise setting {key!r} needs a value, e.g. {key}=0.1")
            try:
                number = int(raw) if key in ("seed", "garbage_bytes") else float(raw)
            except ValueError:
                raise ValueError(f"noise setting {key}={raw!r} is not a number") from None
            if number < 0:
                raise ValueError(f"noise setting {key}={raw!r} must not be negative")
            if key in ("split", "disconnect", "truncate") and number > 1:
                raise ValueError(f"noise setting {key}={raw!r} must be a probability 0..1")
            values[key] = number
        return cls(**values)


def load_script(path: Path, interval_s: float = 0.0) -> list[ScanLine]:
    """Read a script file: one scan per line; ``# …`` comments and blank lines are
    skipped; ``sleep SECONDS`` pauses before the next scan; ``<GS>`` or ``\\x1d`` is
    the FNC1 group separator. ValueError names the file and line of a bad entry."""
    lines: list[ScanLine] = []
    pause = 0.0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = raw.rstrip("\r\n")
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        if text.startswith("sleep "):
            try:
                pause += float(text.split(None, 1)[1])
            except ValueError:
                raise ValueError(
                    f"{path}:{number}: expected 'sleep SECONDS', got {text!r}"
                ) from None
            continue
        text = text.replace("<GS>", GS).replace("\\x1d", GS).replace("\\x1D", GS)
        lines.append(ScanLine(text, pause + interval_s))
        pause = 0.0
    return lines


async def _items(script: Script) -> AsyncIterator[ScanLine]:
    if isinstance(script, AsyncIterable):
        async for item in script:
            yield item if isinstance(item, ScanLine) else ScanLine(item)
    else:
        for item in script:
            yield item if isinstance(item, ScanLine) else ScanLine(item)


class _UnpluggedError(Exception):
    """The connection to the reader went away while writing."""


@dataclass
class _Pty:
    master: int
    slave_name: str
    ready_since: float | None = None


class ScannerSimulator:
    """A scripted scanner on a pty (``mode="pty"``) or a TCP port (``mode="tcp"``).

    ``async with ScannerSimulator(script=[...]) as sim:`` then open ``sim.url``;
    ``await sim.finished()`` waits until the whole script has been written.
    ``repeat=True`` plays the script again and again (a device that keeps sending).
    """

    def __init__(
        self,
        *,
        mode: Literal["pty", "tcp"] = "pty",
        script: Script = (),
        noise: Noise | None = None,
        terminator: str | bytes = "CR",
        host: str = "127.0.0.1",
        port: int = 0,
        repeat: bool = False,
    ) -> None:
        if mode not in ("pty", "tcp"):
            raise ValueError(f"mode must be 'pty' or 'tcp', got {mode!r}")
        self.mode = mode
        self.script = script
        self.noise = noise or Noise()
        self.terminator = (
            terminator if isinstance(terminator, bytes) else parse_terminator(terminator)
        )
        self.host = host
        self.port = port
        self.repeat = repeat
        #: Scans written completely, in order (the ground truth a test compares with).
        self.sent: list[bytes] = []
        self.garbage_lines = 0
        self.split_writes = 0
        self.disconnects = 0
        self.truncated = 0
        # Reproducible fault injection, not security: a seeded PRNG is the point.
        self._rng = random.Random(self.noise.seed)  # noqa: S311 - reproducible simulation, not a secret
        self._done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._dir: Path | None = None
        self._pty: _Pty | None = None
        self._server: asyncio.Server | None = None
        self._client: asyncio.StreamWriter | None = None
        self._client_arrived = asyncio.Event()
        self._client_since = 0.0
        self._down = False
        self.error: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The driver URL of this scanner."""
        if self.mode == "pty":
            assert self._dir is not None, "use the simulator inside 'async with'"
            return f"serial://{self._dir / 'ttySIM0'}"
        return f"socket://{self.host}:{self.port}"

    @property
    def device_path(self) -> Path:
        """The stable device path (a symlink to the current /dev/pts/N)."""
        assert self._dir is not None
        return self._dir / "ttySIM0"

    async def __aenter__(self) -> Self:
        if self.mode == "pty":
            self._dir = Path(tempfile.mkdtemp(prefix="tagsweep-scanner-"))
            self._plug_pty()
        else:
            self._server = await asyncio.start_server(self._on_client, self.host, self.port)
            self.port = int(self._server.sockets[0].getsockname()[1])
        self._task = asyncio.create_task(self._play(), name="scanner-simulator")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._drain_pty(timeout_s=1.0)  # leaving is unplugging: let the reader finish
        self._unplug_pty()
        self._drop_client()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    async def finished(self) -> None:
        """Wait until the script has been written completely (re-raises a failure)."""
        await self._done.wait()
        if self.error is not None:
            raise self.error

    async def unplug(self, downtime_s: float | None = None) -> None:
        """Simulate pulling the cable (pty) or dropping the connection (tcp).

        Waits first until the reader has taken what was written: a pty discards unread
        input on hang-up, and a test should lose scans only when it means to.
        """
        self.disconnects += 1
        await self._drain_pty()
        self._down = True
        try:
            self._unplug_pty()
            self._drop_client()
            await asyncio.sleep(self.noise.downtime_s if downtime_s is None else downtime_s)
            if self.mode == "pty":
                self._plug_pty()
        finally:
            self._down = False

    # -- playback ----------------------------------------------------------------------
    async def _play(self) -> None:
        try:
            while True:
                async for line in _items(self.script):
                    if line.delay_s > 0:
                        await asyncio.sleep(line.delay_s)
                    await self._scan(line.payload)
                if not self.repeat:
                    break
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # surfaced through finished(), not lost in a task
            self.error = exc
        finally:
            self._done.set()

    def _line_end(self) -> bytes:
        if self.noise.terminators:
            return self._rng.choice((b"\r", b"\n", b"\r\n"))
        return self.terminator

    def _garbage(self) -> bytes:
        excluded = set(self.terminator) | {0x0A, 0x0D}
        size = self._rng.randint(1, max(1, self.noise.garbage_bytes))
        junk = bytearray(b for b in self._rng.randbytes(size) if b not in excluded)
        junk.insert(self._rng.randint(0, len(junk)), self._rng.choice(_NOISE_BYTES))
        return bytes(junk)

    async def _scan(self, payload: bytes) -> None:
        noise, rng = self.noise, self._rng
        whole, fraction = divmod(noise.garbage, 1.0)
        for _ in range(int(whole) + (rng.random() < fraction)):
            await self._write(self._garbage() + self._line_end())
            self.garbage_lines += 1
        if noise.truncate and len(payload) > 1 and rng.random() < noise.truncate:
            await self._write(payload[: rng.randint(1, len(payload) - 1)])
            self.truncated += 1
            await self.unplug()
        line = payload + self._line_end()
        while True:
            try:
                if noise.split and len(line) > 1 and rng.random() < noise.split:
                    self.split_writes += 1
                    cuts = sorted(rng.sample(range(1, len(line)), min(3, len(line) - 1)))
                    for start, end in zip([0, *cuts], [*cuts, len(line)], strict=True):
                        await self._write(line[start:end])
                        await asyncio.sleep(0.002)
                else:
                    await self._write(line)
                break
            except _UnpluggedError:
                continue  # the reader went away mid-line: send the whole scan again
        self.sent.append(payload)
        if noise.disconnect and rng.random() < noise.disconnect:
            await self.unplug()

    async def _write(self, data: bytes) -> None:
        if self.mode == "pty":
            await self._write_pty(data)
        else:
            await self._write_tcp(data)

    # -- pty -----------------------------------------------------------------------------
    def _plug_pty(self) -> None:
        assert self._dir is not None
        master, slave = os.openpty()
        try:
            tty.setraw(slave)  # a serial port has no line discipline
            attrs = termios.tcgetattr(slave)
            attrs[4] = attrs[5] = _SENTINEL_SPEED
            termios.tcsetattr(slave, termios.TCSANOW, attrs)
            name = os.ttyname(slave)
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        self._pty = _Pty(master, name)
        link = self._dir / "ttySIM0"
        tmp = self._dir / "ttySIM0.new"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(name)
        tmp.replace(link)

    def _unplug_pty(self) -> None:
        pty, self._pty = self._pty, None
        if pty is None:
            return
        if self._dir is not None:
            # Remove the name first, so a reconnecting reader never opens a recycled pts.
            (self._dir / "ttySIM0").unlink(missing_ok=True)
        os.close(pty.master)

    def _pty_reader_ready(self, pty: _Pty) -> bool:
        poller = select.poll()
        poller.register(pty.master, select.POLLOUT)
        events = poller.poll(0)
        if any(ev & select.POLLHUP for _, ev in events):
            if pty.ready_since is not None:
                attrs = termios.tcgetattr(pty.master)
                attrs[4] = attrs[5] = _SENTINEL_SPEED
                termios.tcsetattr(pty.master, termios.TCSANOW, attrs)
            pty.ready_since = None
            return False
        if termios.tcgetattr(pty.master)[4] == _SENTINEL_SPEED:
            return False
        loop_time = asyncio.get_running_loop().time()
        if pty.ready_since is None:
            pty.ready_since = loop_time
        # pyserial flushes input right after configuring the port: let it finish.
        return loop_time - pty.ready_since >= SETTLE_S

    async def _drain_pty(self, timeout_s: float = 2.0) -> None:
        pty = self._pty
        if pty is None or pty.ready_since is None or not self._pty_reader_ready(pty):
            return  # nobody is reading: nothing to wait for
        # Any slave fd of a tty sees its one input queue; FIONREAD tells what is unread.
        # Bytes written to the master reach that queue a moment later (the kernel's flip
        # buffer is pushed by a worker), so "empty" must hold for a while to count.
        probe = os.open(pty.slave_name, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            unread = array.array("i", [0])
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout_s
            empty_since: float | None = None
            while loop.time() < deadline:
                fcntl.ioctl(probe, termios.FIONREAD, unread)
                if unread[0]:
                    empty_since = None
                elif empty_since is None:
                    empty_since = loop.time()
                elif loop.time() - empty_since >= 0.03:
                    return
                await asyncio.sleep(0.005)
        finally:
            os.close(probe)

    async def _write_pty(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            pty = self._pty
            if pty is None or self._down or not self._pty_reader_ready(pty):
                await asyncio.sleep(0.005)
                continue
            try:
                written = os.write(pty.master, view)
            except BlockingIOError:
                await asyncio.sleep(0.002)
                continue
            except OSError as exc:
                if exc.errno == errno.EIO:
                    raise _UnpluggedError from exc
                raise
            view = view[written:]

    # -- tcp ------------------------------------------------------------------------------
    async def _on_client(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._down:
            writer.close()
            return
        self._drop_client()  # one host at a time, like a serial server
        self._client = writer
        self._client_since = asyncio.get_running_loop().time()
        self._client_arrived.set()

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        self._client_arrived.clear()
        if client is not None:
            client.close()

    async def _write_tcp(self, data: bytes) -> None:
        while True:
            client = self._client
            if client is None or client.is_closing():
                self._client = None
                self._client_arrived.clear()
                await self._client_arrived.wait()
                continue
            # pyserial's socket:// discards what arrives while it is still opening.
            settle = self._client_since + SETTLE_S - asyncio.get_running_loop().time()
            if settle > 0:
                await asyncio.sleep(settle)
                continue
            try:
                client.write(data)
                await client.drain()
            except (ConnectionError, OSError) as exc:
                self._drop_client()
                raise _UnpluggedError from exc
            return
