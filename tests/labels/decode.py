"""Reading rendered labels back with independent decoders: PDF pages rasterised by
PDFium (pypdfium2), codes decoded by ZXing-C++ (zxing-cpp) — neither is what drew them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pypdfium2 as pdfium
import zxingcpp
from PIL import Image

#: Rasterising resolution: an office laser printer's.
DPI = 300


def pdf_pages(pdf: Path, dpi: int = DPI) -> list[Image.Image]:
    doc = pdfium.PdfDocument(str(pdf))
    try:
        return [page.render(scale=dpi / 72, grayscale=True).to_pil() for page in doc]
    finally:
        doc.close()


def decode(image: Image.Image) -> Counter[tuple[str, str]]:
    """Every code ZXing finds in the image, as (format, text) with how often."""
    found = zxingcpp.read_barcodes(
        image, formats=zxingcpp.barcode_formats_from_str("QRCode,Code128")
    )
    return Counter((r.format.name, r.text) for r in found)


def decode_pdf(pdf: Path, dpi: int = DPI) -> Counter[tuple[str, str]]:
    total: Counter[tuple[str, str]] = Counter()
    for page in pdf_pages(pdf, dpi):
        total += decode(page)
    return total
