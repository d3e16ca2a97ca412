"""The live page's camera mode over HTTP: the scan page, frames in, scans in.

``GET /scan`` is the page a phone opens ("Scan with camera"); ``POST /api/decode``
takes one camera frame (``image/jpeg``, ``image/png`` or ``image/webp``) when the
browser has no BarcodeDetector; ``POST /api/scans`` takes the scans (JSON, see
:meth:`~tagsweep.daemon.liveview.phones.PhoneScans.submit`); ``GET /api/phones`` lists the
devices that scanned. Everything goes through the live view's middlewares (token,
Host check, security headers). Writes need their exact content type, which a page of
another origin cannot send without a CORS preflight this server never grants, and an
``Origin``, when a browser sends one, must be this server's.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Final

from aiohttp import web

from tagsweep.daemon.liveview.phones import MAX_FRAME_BYTES, PhoneScanError, PhoneScans

if TYPE_CHECKING:
    from tagsweep.daemon.liveview.server import LiveWebServer

_FRAME_TYPES: Final = frozenset({"image/jpeg", "image/png", "image/webp"})
MAX_SCAN_BODY: Final = 1024 * 1024


def _same_origin(request: web.Request) -> None:
    origin = request.headers.get("Origin")
    if origin is None:
        return
    own = f"{request.scheme}://{request.host}"
    if origin != own:
        raise web.HTTPForbidden(reason=f"requests from {origin} are refused; open {own}")


def add_camera_routes(app: web.Application, server: LiveWebServer, phones: PhoneScans) -> None:
    async def page(request: web.Request) -> web.StreamResponse:
        session = phones.gateway.session
        html = server.render(
            request,
            "scan.html",
            session_id=session.session_id if session else "",
            operator=session.operator if session else "",
            live=bool(
                session and session.session_id in {c.session_id for c in server.view.sessions()}
            ),
        )
        return web.Response(text=html, content_type="text/html")

    async def decode(request: web.Request) -> web.StreamResponse:
        _same_origin(request)
        if request.content_type not in _FRAME_TYPES:
            raise web.HTTPUnsupportedMediaType(
                reason=f"a frame is image/jpeg, image/png or image/webp, not {request.content_type}"
            )
        if (request.content_length or 0) > MAX_FRAME_BYTES:
            raise web.HTTPRequestEntityTooLarge(
                max_size=MAX_FRAME_BYTES, actual_size=request.content_length or 0
            )
        frame = await request.read()
        try:
            codes = await phones.decode(frame)
        except PhoneScanError as exc:
            raise web.HTTPBadRequest(reason=str(exc)) from None
        return web.json_response({"codes": codes}, headers={"Cache-Control": "no-store"})

    async def scans(request: web.Request) -> web.StreamResponse:
        _same_origin(request)
        if request.content_type != "application/json":
            raise web.HTTPUnsupportedMediaType(reason="scans are sent as application/json")
        if (request.content_length or 0) > MAX_SCAN_BODY:
            raise web.HTTPRequestEntityTooLarge(
                max_size=MAX_SCAN_BODY, actual_size=request.content_length or 0
            )
        try:
            body = json.loads(await request.text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise web.HTTPBadRequest(reason=f"body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(reason="body: expected an object")
        try:
            answer = await phones.submit(body)
        except PhoneScanError as exc:
            raise web.HTTPBadRequest(reason=str(exc)) from None
        return web.json_response(answer, headers={"Cache-Control": "no-store"})

    async def devices(_request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {"phones": phones.devices()}, headers={"Cache-Control": "no-store"}
        )

    app.add_routes(
        [
            web.get("/scan", page),
            web.post("/api/decode", decode),
            web.post("/api/scans", scans),
            web.get("/api/phones", devices),
        ]
    )
