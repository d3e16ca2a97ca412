"""The live count page and its JSON API, served by the daemon on its own event loop.

Why aiohttp: its server runs as plain coroutines on the loop it is started from, with no
signal handlers of its own and no threads, so it sits inside the daemon's TaskGroup like
any other named task and shuts down by cancellation. Jinja2 renders the first paint with
autoescaping; after that the page follows server-sent events (one ``snapshot`` event per
change of the count, one ``health`` event a second), so nothing reloads on a tablet
carried through the room. Every asset is served from the package: gateways are often
offline, so there is no CDN.

Why it cannot slow ingest: handlers only *read*
:class:`~tagsweep.daemon.liveview.view.LiveView`. Each event stream polls the count's
version a few times a second, and the encoded snapshot of one version is shared by every
connected page, so the cost of a page is a timer tick, not work per read.

Security: off by default and bound to localhost; the configuration refuses an address
beyond loopback without a token (unless ``[web] insecure = true``, which ``config check``
warns about). The token, browser sessions (an opaque cookie, never the token), header
checks and log redaction are :mod:`tagsweep.daemon.liveview.access`. A client that does not
finish its request headers within ``header_timeout_s`` is disconnected. On a loopback
address, requests naming another Host are refused (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import jinja2
from aiohttp import web

from tagsweep import __version__
from tagsweep.config.schema import WebSection
from tagsweep.daemon.liveview.access import HEADER_TIMEOUT_S, WebAccess, install_redaction, redact
from tagsweep.daemon.liveview.count import LiveCount
from tagsweep.daemon.liveview.view import LiveView, UnknownSessionError
from tagsweep.domain import Location
from tagsweep.logs import get_logger

if TYPE_CHECKING:
    from tagsweep.daemon.liveview.phones import PhoneScans

HERE: Final = Path(__file__).resolve().parent
TEMPLATES_DIR: Final = HERE / "templates"
STATIC_DIR: Final = HERE / "static"
_CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

log = get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/")


def _error(request: web.Request, status: int, message: str, **extra: Any) -> web.Response:
    """A 4xx/5xx answer: JSON for the API, a short readable page for a browser."""
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="tagsweep"'
    if _is_api(request) or "text/html" not in request.headers.get("Accept", ""):
        return web.json_response(
            {"error": message, "status": status, **extra}, status=status, headers=headers
        )
    html = request.app[_SERVER].render(request, "error.html", status=status, message=message)
    return web.Response(text=html, status=status, content_type="text/html", headers=headers)


class LiveWebServer:
    """The live view's HTTP server: start/stop, or ``serve()`` as a TaskGroup task."""

    def __init__(
        self,
        view: LiveView,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        token: str | None = None,
        push_interval_s: float = 0.25,
        health_interval_s: float = 1.0,
        header_timeout_s: float = HEADER_TIMEOUT_S,
        phones: PhoneScans | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.view = view
        self.phones = phones  # camera mode ("Scan with camera") when set
        self.ssl_context = ssl_context
        self.tls_files: tuple[Path, Path] | None = None  # loaded at start (see tls_context)
        self.host = host
        self.port = port
        self.access = WebAccess(token)
        self.header_timeout_s = header_timeout_s
        self.push_interval_s = push_interval_s
        self.health_interval_s = health_interval_s
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
            autoescape=jinja2.select_autoescape(["html"], default=True),
            undefined=jinja2.StrictUndefined,
        )
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._encoded: dict[str, tuple[int, bytes]] = {}  # session -> (version, event bytes)
        self.streams = 0  # event streams currently open (metrics, tests)

    @classmethod
    def from_config(
        cls, view: LiveView, web_config: WebSection, phones: PhoneScans | None = None
    ) -> LiveWebServer:
        host, _, port = web_config.listen.rpartition(":")
        token = web_config.token.get_secret_value() if web_config.token is not None else None
        server = cls(view, host=host.strip("[]"), port=int(port), token=token, phones=phones)
        if web_config.tls is not None:
            server.tls_files = (web_config.tls.cert_file, web_config.tls.key_file)
        return server

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        tls = self.ssl_context is not None or self.tls_files is not None
        scheme = "https" if tls else "http"
        return f"{scheme}://{host}:{self.port}"

    def render(self, request: web.Request, template: str, **context: Any) -> str:
        static = request.app.router["static"]
        return self.templates.get_template(template).render(
            version=__version__,
            camera=self.phones is not None,
            static=lambda name: str(static.url_for(filename=name)),
            **context,
        )

    # -- life cycle ----------------------------------------------------------------------

    def make_app(self) -> web.Application:
        from tagsweep.daemon.liveview.phones import MAX_FRAME_BYTES

        app = web.Application(
            middlewares=[self._errors, self._security_headers, self._host_check, self._auth],
            client_max_size=MAX_FRAME_BYTES + 4096,
        )
        app[_SERVER] = self
        app.add_routes(
            [
                web.get("/", self._index),
                web.get("/sessions/{session_id}", self._page),
                web.get("/api/sessions", self._api_sessions),
                web.get("/api/health", self._api_health),
                web.get("/api/sessions/{session_id}", self._api_session),
                web.get("/api/sessions/{session_id}/not-yet-seen", self._api_not_yet_seen),
                web.get("/api/sessions/{session_id}/unexpected", self._api_unexpected),
                web.get("/api/sessions/{session_id}/events", self._api_events),
                web.static("/static", STATIC_DIR, name="static", append_version=True),
            ]
        )
        if self.phones is not None:
            from tagsweep.daemon.liveview.camera import add_camera_routes

            add_camera_routes(app, self, self.phones)
        return app

    async def start(self) -> None:
        if self.ssl_context is None and self.tls_files is not None:
            self.ssl_context = tls_context(*self.tls_files)
        install_redaction()
        # keepalive_timeout also runs from the moment a connection opens and closes it
        # while no complete request has arrived: a client trickling its headers (or
        # sending none) is cut off after header_timeout_s.
        runner = web.AppRunner(
            self.make_app(),
            access_log=None,
            shutdown_timeout=2.0,
            keepalive_timeout=self.header_timeout_s,
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, ssl_context=self.ssl_context)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise OSError(
                exc.errno,
                f"live view cannot listen on {self.host}:{self.port}: {exc.strerror}; "
                "change [web] listen in the configuration",
            ) from None
        self._runner = runner
        addresses = runner.addresses
        if addresses and self.port == 0:
            self.port = int(addresses[0][1])
        log.info("live view listening", url=self.url, auth=self.access.required)

    async def stop(self) -> None:
        """Close open event streams first, so shutdown does not wait on them."""
        self._closing.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> LiveWebServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def request_stop(self) -> None:
        """Ask :meth:`serve` to end (the gateway's shutdown calls this)."""
        self._closing.set()

    async def serve(self) -> None:
        """Serve until :meth:`request_stop` or cancellation: the daemon's ``live-view``
        task. A port that cannot be bound is logged, and the gateway goes on counting
        without its page: the page is never a reason to stop reading."""
        try:
            await self.start()
        except OSError as exc:
            log.exception("live view not served", error=str(exc))
            return
        try:
            await self._closing.wait()
        finally:
            await self.stop()

    # -- middlewares ---------------------------------------------------------------------

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except UnknownSessionError as exc:
            return _error(request, 404, str(exc), sessions=list(exc.known))
        except web.HTTPNotFound:
            return _error(request, 404, f"no such page or endpoint: {request.path}")
        except web.HTTPMethodNotAllowed as exc:
            return _error(
                request,
                405,
                f"{request.method} is not allowed on {request.path}",
                allowed=sorted(exc.allowed_methods),
            )
        except web.HTTPException as exc:
            if exc.status >= 400:
                return _error(request, exc.status, exc.reason)
            raise
        except Exception:
            log.exception("live view request failed", path=redact(request.path))
            return _error(request, 500, "internal error; see the gateway log")

    @web.middleware
    async def _security_headers(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if not response.prepared:
            response.headers.setdefault("Content-Security-Policy", _CSP)
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("Referrer-Policy", "no-referrer")
            response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    def _loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"

    @web.middleware
    async def _host_check(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._loopback():
            host = (request.host or "").lower()
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name not in {"127.0.0.1", "localhost", "[::1]", self.host.lower()}:
                return _error(
                    request,
                    421,
                    f"this gateway serves its live view on {self.url} only; "
                    f"Host {request.host!r} is refused",
                )
        return await handler(request)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        refusal = self.access.check(request)
        if refusal is None:
            return await handler(request)
        if isinstance(refusal, web.Response):
            return refusal  # the redirect that sets the session cookie
        status, message = refusal
        return _error(request, status, message)

    # -- helpers -------------------------------------------------------------------------

    def _count(self, request: web.Request) -> LiveCount:
        return self.view.get(request.match_info["session_id"])

    @staticmethod
    def _location_param(request: web.Request, count: LiveCount) -> str | None:
        raw = request.query.get("location")
        if raw is None or raw == "":
            return None
        try:
            path = Location(raw).path
        except ValueError as exc:
            raise web.HTTPBadRequest(reason=f"location: {exc}") from None
        if not count.in_scope(path):
            raise web.HTTPBadRequest(
                reason=f"location {path!r} is outside the scope of count session "
                f"{count.session_id!r} ({', '.join(count.scope)})"
            )
        return path

    @staticmethod
    def _json(data: Any) -> web.Response:
        return web.json_response(data, headers={"Cache-Control": "no-store"})

    def _snapshot_event(self, count: LiveCount) -> bytes:
        cached = self._encoded.get(count.session_id)
        if cached is not None and cached[0] == count.version:
            return cached[1]
        data = json.dumps(count.snapshot(), separators=(",", ":"))
        event = f"event: snapshot\nid: {count.version}\ndata: {data}\n\n".encode()
        self._encoded[count.session_id] = (count.version, event)
        return event

    # -- pages ---------------------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.StreamResponse:
        open_sessions = self.view.open_sessions()
        if len(open_sessions) == 1:
            raise web.HTTPSeeOther(location=f"/sessions/{open_sessions[0].session_id}")
        html = self.render(
            request, "index.html", sessions=self.view.summaries(), health=self.view.health()
        )
        return web.Response(text=html, content_type="text/html")

    async def _page(self, request: web.Request) -> web.StreamResponse:
        count = self._count(request)
        html = self.render(request, "live.html", snap=count.snapshot(), health=self.view.health())
        return web.Response(text=html, content_type="text/html")

    # -- JSON API ------------------------------------------------------------------------

    async def _api_sessions(self, _request: web.Request) -> web.StreamResponse:
        return self._json({"sessions": self.view.summaries(), "health": self.view.health()})

    async def _api_health(self, _request: web.Request) -> web.StreamResponse:
        return self._json({"readers": self.view.health()})

    async def _api_session(self, request: web.Request) -> web.StreamResponse:
        count = self._count(request)
        return self._json({**count.snapshot(), "health": self.view.health()})

    async def _api_not_yet_seen(self, request: web.Request) -> web.StreamResponse:
        count = self._count(request)
        location = self._location_param(request, count)
        assets = count.not_yet_seen(location)
        return self._json(
            {
                "session_id": count.session_id,
                "location": location,
                "version": count.version,
                "count": len(assets),
                "assets": [a.to_json() for a in assets],
            }
        )

    async def _api_unexpected(self, request: web.Request) -> web.StreamResponse:
        count = self._count(request)
        location = self._location_param(request, count)
        items = count.unexpected(location)
        return self._json(
            {
                "session_id": count.session_id,
                "location": location,
                "version": count.version,
                "count": len(items),
                "items": [
                    {
                        "identity": item.identity,
                        "epc": item.epc,
                        "asset_tag": item.asset_tag,
                        "serial": item.serial,
                        "seen_at": item.location,
                        "expected_at": item.asset.location if item.asset else None,
                        "reason": reason.value,
                    }
                    for item, reason in items
                ],
            }
        )

    async def _api_events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: ``snapshot`` on each change, ``health`` once a second."""
        count = self._count(request)  # unknown session: 404 before the stream starts
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
                "Content-Security-Policy": _CSP,
                "X-Content-Type-Options": "nosniff",
            }
        )
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        sent_version = -1
        next_health = 0.0
        self.streams += 1
        try:
            await response.write(b"retry: 2000\n\n")
            while not self._closing.is_set():
                if count.version != sent_version:
                    sent_version = count.version
                    await response.write(self._snapshot_event(count))
                now = loop.time()
                if now >= next_health:
                    next_health = now + self.health_interval_s
                    data = json.dumps({"readers": self.view.health()}, separators=(",", ":"))
                    await response.write(f"event: health\ndata: {data}\n\n".encode())
                if count.closed and sent_version == count.version:
                    break
                await asyncio.sleep(self.push_interval_s)
        except ConnectionResetError:
            pass  # the page went away
        finally:
            self.streams -= 1
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response


def tls_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A server TLS context from ``[web.tls]``; OSError naming the files when they do not
    load (missing, unreadable, or a key that does not match the certificate)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert_file), str(key_file))
    except (OSError, ssl.SSLError) as exc:
        raise OSError(
            f"[web.tls] cannot load certificate {cert_file} with key {key_file}: {exc}"
        ) from None
    return context


_SERVER: Final = web.AppKey("server", LiveWebServer)
