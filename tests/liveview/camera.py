"""Test material for camera scanning: a fake camera's video made of our own rendered
labels, a phone-sized Chromium with that camera, and a proxy that cuts the page's
connection on command."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import aiohttp
import numpy as np
import pypdfium2 as pdfium
from aiohttp import web
from PIL import Image
from selenium import webdriver

from tagsweep.labels.content import Label
from tagsweep.labels.pdf import render_pdf
from tagsweep.labels.stock import make_stock
from tests.liveview.test_browser import start_chromium

WIDTH, HEIGHT, FPS = 640, 480, 10


def label_images(labels: list[Label], width_px: int = 560) -> list[Image.Image]:
    """Each label as the printer would make it (roll stock), rasterised by PDFium."""
    stock = make_stock("roll")
    pdf = Path(f"/tmp/tagsweep-camera-{id(labels)}.pdf")
    try:
        render_pdf(labels, stock, pdf)
        doc = pdfium.PdfDocument(str(pdf))
        scale = width_px / (stock.page_w / 25.4 * 72)
        images = [page.render(scale=scale).to_pil().convert("RGB") for page in doc]
        doc.close()
    finally:
        pdf.unlink(missing_ok=True)
    return images


def _frame(image: Image.Image | None) -> Image.Image:
    frame = Image.new("RGB", (WIDTH, HEIGHT), (235, 235, 230))  # a grey desk, no label
    if image is not None:
        frame.paste(image, ((WIDTH - image.width) // 2, (HEIGHT - image.height) // 2))
    return frame


def write_y4m(
    path: Path, images: list[Image.Image], *, hold_s: float = 1.2, gap_s: float = 0.6
) -> None:
    """A YUV4MPEG2 (4:2:0) video: each label held in view for ``hold_s``, then an empty
    desk for ``gap_s`` (long enough for the page to see the next label as a new scan)."""
    frames: list[Image.Image] = []
    for image in images:
        frames += [_frame(image)] * round(hold_s * FPS)
        frames += [_frame(None)] * round(gap_s * FPS)
    with path.open("wb") as fh:
        fh.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
        cache: dict[int, bytes] = {}
        for frame in frames:
            key = id(frame)
            if key not in cache:
                ycc = np.asarray(frame.convert("YCbCr"), dtype=np.uint8)
                y = ycc[:, :, 0]
                cb = ycc[:, :, 1].reshape(HEIGHT // 2, 2, WIDTH // 2, 2).mean(axis=(1, 3))
                cr = ycc[:, :, 2].reshape(HEIGHT // 2, 2, WIDTH // 2, 2).mean(axis=(1, 3))
                cache[key] = (
                    y.tobytes()
                    + cb.round().astype(np.uint8).tobytes()
                    + cr.round().astype(np.uint8).tobytes()
                )
            fh.write(b"FRAME\n" + cache[key])


def start_phone_chromium(profile: Path, video: Path) -> webdriver.Chrome:
    """Headless Chromium at a phone's viewport whose camera plays ``video``."""
    return start_chromium(
        profile,
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",  # the camera permission prompt says yes
        f"--use-file-for-fake-video-capture={video}",
        "--autoplay-policy=no-user-gesture-required",
        window="412,915",  # a phone held upright
    )


Mode = Literal["pass", "lose_answers", "scans_down", "down"]


@dataclass
class CutProxy:
    """An HTTP reverse proxy between the page and the gateway that the test can cut:
    ``lose_answers`` delivers the page's scans to the gateway and drops the connection
    before the answer is back; ``down`` drops every request unanswered; ``scans_down``
    drops the scans only (the page itself still loads)."""

    target: str
    mode: Mode = "pass"
    port: int = 0
    delivered_unanswered: int = 0
    dropped: int = 0
    _runner: web.AppRunner | None = None
    _http: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def is_down(self, request: web.Request) -> bool:
        """Nothing gets through, or (``scans_down``) no scans while pages still load."""
        return self.mode == "down" or (self.mode == "scans_down" and request.path == "/api/scans")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.endswith("/events"):
            return web.Response(status=204)  # no live stream through the proxy
        if self.is_down(request):
            self.dropped += 1
            return self._cut(request)
        # decided when the request arrives: switching to "down" while it is on its way
        # must not let its answer through
        lose = self.mode == "lose_answers" and request.path == "/api/scans"
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in {"host", "origin"}}
        assert self._http is not None
        async with self._http.request(
            request.method, self.target + request.path_qs, data=body, headers=headers
        ) as upstream:
            data = await upstream.read()
            status = upstream.status
            ctype = upstream.headers.get("Content-Type", "application/octet-stream")
        if lose or self.is_down(request):  # the mode may have changed meanwhile
            self.delivered_unanswered += 1
            return self._cut(request)
        response = web.Response(body=data, status=status)
        response.headers["Content-Type"] = ctype
        return response

    @staticmethod
    def _cut(request: web.Request) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            transport.abort()  # the page sees a network error, not an answer
        return web.Response(status=502)

    async def __aenter__(self) -> CutProxy:
        self._http = aiohttp.ClientSession()
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            with contextlib.suppress(Exception):
                await self._http.close()
