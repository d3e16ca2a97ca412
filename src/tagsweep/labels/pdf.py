"""Labels drawn into a PDF: a QR code (segno), a Code 128 (reportlab) and the text.

Codes are drawn as vector rectangles, so they stay sharp at any printer resolution. A
label keeps the quiet zones the symbologies require (4 modules round a QR code, 10
round a Code 128). On a wide label the QR code takes the left side and the Code 128
sits under the text; on a narrow one, or for a location label (whose text is longer),
the Code 128 runs across the bottom.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import segno
from reportlab.graphics.barcode.code128 import Code128
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from tagsweep.labels.content import Label, LabelKind
from tagsweep.labels.stock import Stock

#: Narrowest Code 128 module worth printing (mm); thinner bars blur on office printers.
MIN_MODULE_MM: Final = 0.2
MAX_MODULE_MM: Final = 0.4
QR_QUIET: Final = 4
CODE128_QUIET: Final = 10

_DEJAVU: Final = Path("/usr/share/fonts/truetype/dejavu")


@dataclass(frozen=True, slots=True)
class Fonts:
    regular: str
    bold: str


def _fonts() -> Fonts:
    """DejaVu Sans when installed (any script), else the PDF core Helvetica (Latin-1)."""
    regular, bold = _DEJAVU / "DejaVuSans.ttf", _DEJAVU / "DejaVuSans-Bold.ttf"
    if regular.is_file() and bold.is_file():
        if "LabelSans" not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(TTFont("LabelSans", str(regular)))
            pdfmetrics.registerFont(TTFont("LabelSans-Bold", str(bold)))
        return Fonts("LabelSans", "LabelSans-Bold")
    return Fonts("Helvetica", "Helvetica-Bold")


def code128_modules(text: str) -> int:
    """Width of ``text`` as a Code 128 symbol in modules, without quiet zones."""
    return int(Code128(text, barWidth=1, quiet=0).width)


def _fit(text: str, font: str, size: float, width_pt: float) -> tuple[str, float]:
    """``text`` at the largest size ≤ ``size`` (down to 5 pt) that fits, else cut with …"""
    while size > 5 and pdfmetrics.stringWidth(text, font, size) > width_pt:
        size -= 0.5
    if pdfmetrics.stringWidth(text, font, size) <= width_pt:
        return text, size
    while len(text) > 1 and pdfmetrics.stringWidth(text + "…", font, size) > width_pt:
        text = text[:-1]
    return text + "…", size


def _draw_qr(c: Canvas, payload: str, x: float, y: float, side: float) -> None:
    qr = segno.make(payload, error="m", micro=False)
    matrix = [list(row) for row in qr.matrix]
    n = len(matrix)
    module = side / (n + 2 * QR_QUIET)
    ox = x + QR_QUIET * module
    oy = y + QR_QUIET * module
    c.setFillColorRGB(0, 0, 0)
    for r, row in enumerate(matrix):
        top = oy + (n - 1 - r) * module
        start = None
        for col in range(n + 1):
            dark = col < n and bool(row[col])
            if dark and start is None:
                start = col
            elif not dark and start is not None:
                c.rect(ox + start * module, top, (col - start) * module, module, stroke=0, fill=1)
                start = None


def _draw_code128(c: Canvas, text: str, x: float, y: float, *, width: float, height: float) -> None:
    """A Code 128 centred in the box (x, y, width, height), quiet zones included."""
    modules = code128_modules(text) + 2 * CODE128_QUIET
    bar = min(width / modules, MAX_MODULE_MM * mm)
    symbol = Code128(
        text,
        barWidth=bar,
        barHeight=height,
        quiet=1,
        lquiet=CODE128_QUIET * bar,
        rquiet=CODE128_QUIET * bar,
        humanReadable=False,
    )
    symbol.drawOn(c, x + (width - symbol.width) / 2, y)


def _wide_fits(label: Label, w: float, h: float, pad: float) -> bool:
    if label.kind is LabelKind.LOCATION or label.code128 is None:
        return False
    qr_side = min(h - 2 * pad, 0.45 * w)
    right = w - qr_side - 3 * pad
    modules = code128_modules(label.code128) + 2 * CODE128_QUIET
    return bool(right / modules >= MIN_MODULE_MM * mm)


def draw_label(c: Canvas, label: Label, x: float, y: float, *, w: float, h: float) -> None:
    """One label into the box (x, y, w, h) in points."""
    fonts = _fonts()
    pad = max(1.5 * mm, min(w, h) * 0.05)
    wide = _wide_fits(label, w, h, pad)
    if wide:
        qr_side = min(h - 2 * pad, 0.45 * w)
        _draw_qr(c, label.qr, x + pad, y + (h - qr_side) / 2, qr_side)
        tx = x + 2 * pad + qr_side
        tw = w - qr_side - 3 * pad
        bar_h = max(5 * mm, (h - 2 * pad) * 0.42)
        assert label.code128 is not None
        _draw_code128(c, label.code128, tx, y + pad, width=tw, height=bar_h)
        text_top = y + h - pad
    else:
        bar_h = (h - 2 * pad) * 0.3 if label.code128 else 0.0
        if label.code128:
            _draw_code128(c, label.code128, x + pad, y + pad, width=w - 2 * pad, height=bar_h)
        top_h = h - 2 * pad - bar_h - (pad / 2 if bar_h else 0)
        qr_side = min(top_h, 0.5 * w)
        _draw_qr(c, label.qr, x + pad, y + h - pad - qr_side, qr_side)
        tx = x + 2 * pad + qr_side
        tw = w - qr_side - 3 * pad
        text_top = y + h - pad
    title_size = min(12.0, h / mm * 0.35 + 2)
    lines: list[tuple[str, str, float]] = []
    if label.kind is LabelKind.LOCATION:
        parts = label.title.split("/")
        lines.append((parts[-1], fonts.bold, title_size))
        if len(parts) > 1:
            lines.append(("/".join(parts[:-1]), fonts.regular, title_size * 0.6))
        lines.append(("location", fonts.regular, title_size * 0.55))
    else:
        lines.append((label.title, fonts.bold, title_size))
        lines.extend((line, fonts.regular, title_size * 0.6) for line in label.lines)
    cursor = text_top
    bottom = y + pad + (bar_h + pad / 2 if wide else 0)
    if not wide:
        bottom = y + h - pad - qr_side
    for text, font, size in lines:
        shown, used = _fit(text, font, size, tw)
        if cursor - used < bottom:
            break
        cursor -= used
        c.setFont(font, used)
        c.drawString(tx, cursor, shown)
        cursor -= used * 0.25


def render_pdf(labels: Sequence[Label], stock: Stock, out: Path, *, title: str = "labels") -> int:
    """Write ``labels`` onto pages of ``stock``; returns the number of pages."""
    out.parent.mkdir(parents=True, exist_ok=True)
    c = Canvas(str(out), pagesize=(stock.page_w * mm, stock.page_h * mm), invariant=True)
    c.setTitle(title)
    c.setCreator("tagsweep labels")
    cells = list(stock.cells())
    starts = range(0, len(labels), len(cells)) or range(1)
    for start in starts:
        for label, (cx, cy) in zip(labels[start : start + len(cells)], cells, strict=False):
            draw_label(c, label, cx * mm, cy * mm, w=stock.label_w * mm, h=stock.label_h * mm)
        c.showPage()
    c.save()
    return len(starts)
