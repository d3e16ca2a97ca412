"""The control socket: a local Unix socket speaking JSON lines, used by the CLI.

Why a Unix socket: it is local by construction, file permissions decide who may
control the gateway (``control.mode``: 0600 for the service user only, 0660 for a
group of operators), and no port is opened.

Protocol: one JSON object per line each way. A request is
``{"cmd": "session.start", "args": {...}, "id": 7}``; the answer is
``{"ok": true, "result": {...}, "id": 7}`` or
``{"ok": false, "error": "what went wrong and what to do", "code": "...", "id": 7}``.
Commands: ``ping``, ``status``, ``session.start``, ``session.location``,
``session.stop``, ``session.show``, ``session.list``. Bad input (malformed JSON,
unknown commands or arguments, unknown sessions, a stop without a start) gets an error
answer on the same connection; the daemon keeps running.

What the socket defends against (anyone who may connect is trusted to count, not to
read the daemon's files or exhaust it):

* a request is validated whole — JSON no deeper than :data:`MAX_DEPTH`, an ``id`` that is
  null, a short string or a safe integer, arguments of the right type and size — before
  any command runs; a malformed request is answered ``bad_request`` and logged at info
  level, never with a traceback;
* ``NaN``/``Infinity`` are refused on the way in and never written on the way out: every
  answer is valid JSON;
* a command reads only the files it is asked to load, and only after everything else
  about the request was checked (a refused ``session.start`` never opens its
  ``--expected`` register); its errors say which file and why, never what is in it;
* at most :data:`MAX_CLIENTS` connections at once (more are answered ``busy`` and
  closed), and a connection that sends no complete request for :data:`IDLE_TIMEOUT_S`
  is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import socket
import stat
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from tagsweep.daemon.sessions import SessionError, session_to_json
from tagsweep.logs import get_logger

if TYPE_CHECKING:
    from tagsweep.daemon.supervisor import Gateway

#: Longest request line accepted (a status answer may be longer; requests are small).
MAX_LINE: Final = 64 * 1024
#: Deepest nesting of objects and lists in a request (the largest real one has 3).
MAX_DEPTH: Final = 8
#: Longest string ``id``; integer ids must be safe in every JSON reader (|id| < 2**53).
MAX_ID_CHARS: Final = 128
MAX_SAFE_INT: Final = 2**53 - 1
#: Longest string argument, and most entries in a list argument (``scope``).
MAX_ARG_CHARS: Final = 4096
MAX_LIST_ITEMS: Final = 1000
#: Connections served at once; the next ones are answered ``busy`` and closed.
MAX_CLIENTS: Final = 32
#: A connection that sends no complete request line for this long is closed.
IDLE_TIMEOUT_S: Final = 60.0
#: Unix socket paths are limited to 107 bytes on Linux (sun_path).
MAX_SOCKET_PATH: Final = 107


class ControlError(RuntimeError):
    """The control socket cannot be set up, or a request failed (message says why)."""


class RequestError(ValueError):
    """A request the daemon will not carry out; answered with ``code``."""

    def __init__(self, message: str, code: str = "bad_request") -> None:
        super().__init__(message)
        self.code = code


Handler = Callable[["Gateway", Mapping[str, Any]], Awaitable[Any]]


def _args(args: Mapping[str, Any], required: tuple[str, ...], optional: tuple[str, ...]) -> None:
    unknown = sorted(set(args) - set(required) - set(optional))
    if unknown:
        allowed = ", ".join([*required, *optional]) or "none"
        raise RequestError(f"unknown argument(s) {', '.join(unknown)}; allowed: {allowed}")
    missing = [k for k in required if args.get(k) in (None, "")]
    if missing:
        raise RequestError(f"missing argument(s): {', '.join(missing)}")
    for key, value in args.items():
        if key == "scope":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise RequestError("scope must be a list of location paths")
            if len(value) > MAX_LIST_ITEMS:
                raise RequestError(f"scope has {len(value)} entries; at most {MAX_LIST_ITEMS}")
            texts = value
        elif value is not None and not isinstance(value, str):
            raise RequestError(f"{key} must be a string, got {type(value).__name__}")
        else:
            texts = [value] if value is not None else []
        for text in texts:
            if len(text) > MAX_ARG_CHARS:
                raise RequestError(f"{key} is longer than {MAX_ARG_CHARS} characters")
            if "\x00" in text:
                raise RequestError(f"{key} contains a NUL character")


async def _ping(_gw: Gateway, args: Mapping[str, Any]) -> Any:
    _args(args, (), ())
    return {"pong": True}


async def _status(gw: Gateway, args: Mapping[str, Any]) -> Any:
    _args(args, (), ())
    return gw.status()


async def _start(gw: Gateway, args: Mapping[str, Any]) -> Any:
    _args(args, ("operator",), ("site", "location", "scope", "expected"))
    session = await gw.start_session(
        operator=args["operator"],
        site=args.get("site"),
        location=args.get("location"),
        scope=args.get("scope") or (),
        expected=args.get("expected"),
    )
    return session_to_json(session)


async def _location(gw: Gateway, args: Mapping[str, Any]) -> Any:
    _args(args, ("location",), ())
    session = await gw.set_location(args["location"], source="operator")
    return session_to_json(session) if session else None


async def _stop(gw: Gateway, args: Mapping[str, Any]) -> Any:
    _args(args, (), ("session_id",))
    closed = await gw.stop_session(args.get("session_id"))
    return closed.to_json()


async def _show(gw: Gateway, args: Mapping[str, Any]) -> Any:
    _args(args, (), ("session_id",))
    session_id = args.get("session_id")
    if session_id is None:
        current = gw.session
        if current is None:
            raise RequestError("no count session is open (give session_id)", "session_error")
        session_id = current.session_id
    row = dict((await gw.sessions(session_id))[0])
    if gw.session is not None and gw.session.session_id == session_id:
        # reads that arrived while it was open but are outside its window (a reader's
        # clock), so they are not in its count; and, gateway-wide, reads by reason
        row["reads_outside_window"] = gw.pipeline.outside_open_session
    row["reads_outside_session"] = dict(gw.counters.reads_outside_session)
    return row


async def _progress(gw: Gateway, args: Mapping[str, Any]) -> Any:
    _args(args, (), ("session_id",))
    if gw.live is None:
        raise RequestError("this gateway has no live view", "session_error")
    return gw.live.progress(args.get("session_id"))


async def _list(gw: Gateway, args: Mapping[str, Any]) -> Any:
    _args(args, (), ())
    return await gw.sessions()


COMMANDS: Final[dict[str, Handler]] = {
    "ping": _ping,
    "status": _status,
    "session.start": _start,
    "session.location": _location,
    "session.stop": _stop,
    "session.show": _show,
    "session.list": _list,
    "session.progress": _progress,
}


class ControlServer:
    """Serves :data:`COMMANDS` for one gateway on a Unix socket."""

    def __init__(self, gateway: Gateway, path: Path | str, mode: int = 0o600) -> None:
        self.gateway = gateway
        self.path = Path(path)
        self.mode = mode
        self.log = get_logger("control", socket=str(self.path))
        self.max_clients = MAX_CLIENTS
        self.idle_timeout_s = IDLE_TIMEOUT_S
        self._server: asyncio.base_events.Server | None = None
        self._closed = asyncio.Event()
        self._clients: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        if len(os.fsencode(self.path)) > MAX_SOCKET_PATH:
            raise ControlError(
                f"control socket path {self.path} is longer than {MAX_SOCKET_PATH} bytes "
                "(a Unix socket limit); set control.socket to a shorter path"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() or self.path.is_symlink():
            if not stat.S_ISSOCK(self.path.lstat().st_mode):
                raise ControlError(f"{self.path} exists and is not a socket; remove it or move it")
            if _alive(self.path):
                raise ControlError(
                    f"another daemon is already listening on {self.path}; stop it first"
                )
            self.path.unlink()  # stale socket of a daemon that died
        # The socket is created with the right mode (no window with wider permissions).
        old_umask = os.umask(0o777 & ~self.mode)
        try:
            self._server = await asyncio.start_unix_server(
                self._on_client, path=str(self.path), limit=MAX_LINE
            )
        finally:
            os.umask(old_umask)
        os.chmod(self.path, self.mode)
        self.log.info("control_listening", mode=oct(self.mode))

    async def serve(self) -> None:
        """Task body: the server accepts on its own; this waits until :meth:`close`."""
        await self._closed.wait()

    async def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        if self._server is not None:
            self._server.close()
        for writer in list(self._clients):
            writer.close()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=5.0)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        if len(self._clients) >= self.max_clients:
            self.gateway.counters.control_errors += 1
            self.log.warning("control_busy", clients=len(self._clients))
            with contextlib.suppress(Exception):
                await self._send(
                    writer,
                    {
                        "ok": False,
                        "error": f"too many connections ({self.max_clients}); try again",
                        "code": "busy",
                    },
                )
                writer.close()
                await writer.wait_closed()
            if task is not None:
                self._handlers.discard(task)
            return
        self._clients.add(writer)
        try:
            while not self._closed.is_set():
                try:
                    line = await asyncio.wait_for(reader.readline(), self.idle_timeout_s)
                except TimeoutError:
                    self.log.info("control_idle_closed", idle_s=self.idle_timeout_s)
                    break
                except (ValueError, asyncio.LimitOverrunError):
                    await self._send(
                        writer,
                        {
                            "ok": False,
                            "error": f"request line longer than {MAX_LINE} bytes",
                            "code": "bad_request",
                        },
                    )
                    break
                if not line:
                    break
                if not line.strip():
                    continue
                await self._send(writer, await self.handle_line(line))
        except (ConnectionError, BrokenPipeError):
            pass
        finally:
            self._clients.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if task is not None:
                self._handlers.discard(task)

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, answer: Mapping[str, Any]) -> None:
        writer.write(encode_answer(answer) + b"\n")
        await writer.drain()

    async def handle_line(self, line: bytes) -> dict[str, Any]:
        """One request line → one answer; never raises."""
        request_id: Any = None
        try:
            request = parse_request(line)
            request_id = checked_id(request.get("id"))
            cmd = request.get("cmd")
            args = request.get("args") or {}
            if not isinstance(cmd, str):
                raise RequestError('missing "cmd" (a string, e.g. "status")')
            if not isinstance(args, dict):
                raise RequestError('"args" must be a JSON object')
            handler = COMMANDS.get(cmd)
            if handler is None:
                raise RequestError(
                    f"unknown command {cmd!r}; known: {', '.join(sorted(COMMANDS))}",
                    "unknown_command",
                )
            result = await handler(self.gateway, args)
        except RequestError as exc:
            return self._error(str(exc), exc.code, request_id)
        except SessionError as exc:
            return self._error(str(exc), "session_error", request_id)
        except Exception as exc:  # a bug answers an error; the daemon keeps running
            self.log.exception("control_command_failed", error=repr(exc))
            return self._error(f"internal error: {exc!r}", "internal_error", request_id)
        answer: dict[str, Any] = {"ok": True, "result": result}
        if request_id is not None:
            answer["id"] = request_id
        return answer

    def _error(self, message: str, code: str, request_id: Any) -> dict[str, Any]:
        self.gateway.counters.control_errors += 1
        self.log.info("control_request_rejected", code=code, error=message)
        answer: dict[str, Any] = {"ok": False, "error": message, "code": code}
        if request_id is not None:
            answer["id"] = request_id
        return answer


def _reject_constant(name: str) -> Any:
    raise RequestError(f"malformed JSON: {name} is not a JSON value")


def parse_request(line: bytes) -> dict[str, Any]:
    """The request object of one line, or RequestError saying what is wrong with it."""
    try:
        request = json.loads(line, parse_constant=_reject_constant)
    except RequestError:
        raise
    except RecursionError:
        raise RequestError(f"request nested deeper than {MAX_DEPTH} levels") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(f"malformed JSON: {exc}") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise RequestError(f"malformed JSON: {exc}") from None
    if not isinstance(request, dict):
        raise RequestError('a request must be a JSON object like {"cmd": "status"}')
    if _depth(request) > MAX_DEPTH:
        raise RequestError(f"request nested deeper than {MAX_DEPTH} levels")
    return request


def _depth(value: Any, level: int = 1) -> int:
    """Nesting depth of a parsed JSON value, looking no deeper than MAX_DEPTH + 1."""
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level - 1


def checked_id(value: Any) -> Any:
    """The request id if it can be echoed safely: null, a short string or a safe integer."""
    if value is None or (isinstance(value, str) and len(value) <= MAX_ID_CHARS):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_SAFE_INT:
        return value
    raise RequestError(
        f'"id" must be null, a string of at most {MAX_ID_CHARS} characters or an integer '
        f"of at most 53 bits"
    )


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def encode_answer(answer: Mapping[str, Any]) -> bytes:
    """Valid JSON always: a non-finite number becomes null (strict JSON has no NaN)."""
    try:
        text = json.dumps(answer, default=str, allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(dict(answer)), default=str, allow_nan=False)
    return text.encode()


def _alive(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        try:
            sock.connect(str(path))
        except OSError:
            return False
        return True


# -- the client side (CLI) ----------------------------------------------------------------
def call(
    path: Path | str, cmd: str, args: Mapping[str, Any] | None = None, *, timeout_s: float = 60.0
) -> Any:
    """Send one command and return its result; :class:`ControlError` with the daemon's
    message if it refused, or with what to check if the daemon cannot be reached."""
    request = json.dumps({"cmd": cmd, "args": dict(args or {})}).encode() + b"\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.connect(str(path))
        except FileNotFoundError:
            raise ControlError(
                f"no control socket at {path}: is `tagsweep run` running with this config?"
            ) from None
        except PermissionError:
            raise ControlError(
                f"no permission to use {path}: run as the service user or a member of its "
                "group (control.mode = 0o660)"
            ) from None
        except OSError as exc:
            raise ControlError(f"cannot reach the daemon at {path}: {exc.strerror}") from None
        sock.sendall(request)
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            buf += chunk
    if not buf:
        raise ControlError(f"the daemon at {path} closed the connection without an answer")
    answer = json.loads(buf)
    if not answer.get("ok"):
        raise ControlError(str(answer.get("error", "request failed")))
    return answer.get("result")
