"""Labels as ZPL II for Zebra label printers, with the RFID inlay's EPC when asked.

One ``^XA … ^XZ`` format per label, sized in dots for the printer's resolution (203,
300 or 600 dpi). The QR code is ``^BQN`` (model 2, error correction M, automatic input
mode), the Code 128 is ``^BCN`` in automatic subset mode (``A``), text is the scalable
font 0 in UTF-8 (``^CI28``), clipped to its field block. Field data goes through
``^FH`` so ``^``, ``~`` and ``_`` in a tag or a location are printed, not obeyed.

For an RFID printer, ``^RS8`` selects EPC Class 1 Gen 2 and ``^RFW,H,,,A`` writes the
GIAI-96 EPC (24 hex digits) to the EPC bank, adjusting the PC bits to its length —
the same identity the QR code's GIAI carries. Commands and parameters as documented in
Zebra's ZPL II Programming Guide (^BQ, ^BC, ^BY, ^FH, ^CI) and its RFID Programming
Guide (^RS, ^RF): https://docs.zebra.com/us/en/printers/software/zpl-pg.html
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import segno

from tagsweep.labels.content import Label, LabelKind
from tagsweep.labels.pdf import MIN_MODULE_MM, code128_modules

DPI_VALUES: Final = (203, 300, 600)
_QUIET: Final = 10


def zpl_escape(text: str) -> str:
    """Field data for ``^FH_``: ``_``, ``^`` and ``~`` as hex escapes, nothing else."""
    out = []
    for char in text:
        if char in "_^~":
            out.append(f"_{ord(char):02X}")
        elif ord(char) < 0x20:
            out.append(" ")
        else:
            out.append(char)
    return "".join(out)


def _qr_modules(payload: str) -> int:
    """Modules across the QR code the printer will draw (its size depends on the version
    only, so one fixed mask is enough: the printer picks its own)."""
    return int(segno.make(payload, error="m", micro=False, mask=0).symbol_size(border=0)[0])


def label_zpl(
    label: Label,
    *,
    width_mm: float,
    height_mm: float,
    dpi: int = 203,
    rfid: bool = False,
) -> str:
    """One label as a ZPL format (``^XA`` … ``^XZ``), lines joined by newlines."""
    if dpi not in DPI_VALUES:
        raise ValueError(f"printer resolution {dpi} dpi: expected one of {DPI_VALUES}")
    dots = dpi / 25.4
    w, h = round(width_mm * dots), round(height_mm * dots)
    pad = max(round(1.5 * dots), round(min(w, h) * 0.05))
    cmds = ["^XA", "^CI28", f"^PW{w}", f"^LL{h}", "^LH0,0"]
    if rfid:
        if label.epc is None:
            raise ValueError(f"{label.title}: no GIAI-96 EPC to encode (give a company prefix)")
        cmds += ["^RS8", f"^RFW,H,,,A^FD{label.epc}^FS"]
    # QR code, left; ^BQ's own module size is the magnification (1-10 dots)
    full_width_bar = label.kind is LabelKind.LOCATION
    bar_modules = code128_modules(label.code128) + 2 * _QUIET if label.code128 else 0
    min_module = max(1, round(MIN_MODULE_MM * dots))
    qr_side = min(h - 2 * pad, int(0.45 * w))
    right = w - qr_side - 3 * pad
    if bar_modules and right // bar_modules < min_module:
        full_width_bar = True
    bar_h = 0
    if full_width_bar and label.code128:
        bar_h = int((h - 2 * pad) * 0.3)
        qr_side = min(h - 3 * pad - bar_h, int(0.5 * w))
        right = w - qr_side - 3 * pad
    mag = max(1, min(10, qr_side // _qr_modules(label.qr)))
    cmds.append(f"^FO{pad},{pad}^BQN,2,{mag}^FH_^FDMA,{zpl_escape(label.qr)}^FS")
    tx = 2 * pad + qr_side
    # text, top right
    title = round(min(12.0, height_mm * 0.35 + 2) / 72 * dpi)
    small = round(title * 0.6)
    if label.kind is LabelKind.LOCATION:
        parts = label.title.split("/")
        texts = [(parts[-1], title)]
        if len(parts) > 1:
            texts.append(("/".join(parts[:-1]), small))
        texts.append(("location", small))
    else:
        texts = [(label.title, title)] + [(line, small) for line in label.lines]
    y = pad
    text_bottom = h - pad - (bar_h if full_width_bar else int((h - 2 * pad) * 0.42)) - pad // 2
    for text, size in texts:
        if y + size > text_bottom:
            break
        cmds.append(f"^FO{tx},{y}^A0N,{size},{size}^FB{right},1,0,L^FH_^FD{zpl_escape(text)}^FS")
        y += round(size * 1.2)
    # Code 128
    if label.code128:
        if full_width_bar:
            bx, bw = pad, w - 2 * pad
        else:
            bx, bw = tx, right
            bar_h = int((h - 2 * pad) * 0.42)
        module = max(1, min(4, bw // bar_modules))
        by = h - pad - bar_h
        bx += max(0, (bw - module * bar_modules) // 2) + _QUIET * module
        cmds.append(
            f"^FO{bx},{by}^BY{module}^BCN,{bar_h},N,N,N,A^FH_^FD{zpl_escape(label.code128)}^FS"
        )
    cmds += ["^PQ1", "^XZ"]
    return "\n".join(cmds)


def render_zpl(
    labels: Sequence[Label],
    *,
    width_mm: float,
    height_mm: float,
    dpi: int = 203,
    rfid: bool = False,
) -> str:
    """Every label's format, one after another, ready to send to the printer."""
    return "".join(
        label_zpl(
            label,
            width_mm=width_mm,
            height_mm=height_mm,
            dpi=dpi,
            rfid=rfid and label.kind is LabelKind.ASSET,
        )
        + "\n"
        for label in labels
    )
