"""Label stock: where each label sits on a page, in millimetres.

A sheet is a page of ``columns x rows`` labels of one size, the first one ``top`` and
``left`` from the page's corner and the next one ``pitch`` further (pitch = label size
plus the gap). A roll is one label per page, the page the size of the label.

The presets are the common A4 and US Letter sheets; their figures are the vendors'
published templates (Avery L7160/L7163/L7651 for A4, 5160/5163 for Letter) and
match the sheets of other brands sold under the same code.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Final

PAGE_SIZES_MM: Final[dict[str, tuple[float, float]]] = {
    "a4": (210.0, 297.0),
    "letter": (215.9, 279.4),
}


@dataclass(frozen=True, slots=True)
class Stock:
    """A page layout for labels (all sizes in mm)."""

    name: str
    page_w: float
    page_h: float
    columns: int
    rows: int
    label_w: float
    label_h: float
    top: float = 0.0
    left: float = 0.0
    pitch_x: float = 0.0  # 0: the label width (no gap)
    pitch_y: float = 0.0

    @property
    def per_page(self) -> int:
        return self.columns * self.rows

    @property
    def is_roll(self) -> bool:
        return self.per_page == 1 and self.page_w == self.label_w and self.page_h == self.label_h

    def cells(self) -> Iterator[tuple[float, float]]:
        """Each label's lower-left corner on the page (PDF coordinates, mm), in reading
        order: left to right, then top to bottom."""
        px = self.pitch_x or self.label_w
        py = self.pitch_y or self.label_h
        for r in range(self.rows):
            for c in range(self.columns):
                x = self.left + c * px
                y = self.page_h - self.top - r * py - self.label_h
                yield x, y

    def check(self) -> Stock:
        """The stock itself; ValueError when labels do not fit on the page."""
        if self.columns < 1 or self.rows < 1:
            raise ValueError(f"stock {self.name}: needs at least one column and one row")
        if min(self.label_w, self.label_h) < 15:
            raise ValueError(
                f"stock {self.name}: labels of {self.label_w:g}x{self.label_h:g} mm are too "
                "small for a QR code and a Code 128 (at least 15 mm each way)"
            )
        px = self.pitch_x or self.label_w
        py = self.pitch_y or self.label_h
        if px < self.label_w or py < self.label_h:
            raise ValueError(f"stock {self.name}: pitch is smaller than the label")
        right = self.left + (self.columns - 1) * px + self.label_w
        bottom = self.top + (self.rows - 1) * py + self.label_h
        if right > self.page_w + 0.01 or bottom > self.page_h + 0.01:
            raise ValueError(
                f"stock {self.name}: {self.columns}x{self.rows} labels of "
                f"{self.label_w:g}x{self.label_h:g} mm need {right:.1f}x{bottom:.1f} mm, "
                f"the page is {self.page_w:g}x{self.page_h:g} mm"
            )
        return self


_A4 = PAGE_SIZES_MM["a4"]
_LETTER = PAGE_SIZES_MM["letter"]

#: Common sheets (Avery templates) and a roll of 57x32 mm (2.25x1.25 in) labels.
PRESETS: Final[dict[str, Stock]] = {
    s.name: s
    for s in (
        Stock("l7160", *_A4, 3, 7, 63.5, 38.1, top=15.15, left=7.25, pitch_x=66.0),
        Stock("l7163", *_A4, 2, 7, 99.1, 38.1, top=15.15, left=4.65, pitch_x=101.6),
        Stock("l7651", *_A4, 5, 13, 38.1, 21.2, top=10.7, left=4.75, pitch_x=40.6),
        Stock("5160", *_LETTER, 3, 10, 66.675, 25.4, top=12.7, left=4.7625, pitch_x=69.85),
        Stock("5163", *_LETTER, 2, 5, 101.6, 50.8, top=12.7, left=3.96875, pitch_x=104.775),
        Stock("roll", 57.0, 32.0, 1, 1, 57.0, 32.0),
    )
}

_PAIR: Final = re.compile(r"^\s*([0-9.]+)\s*[xX,]\s*([0-9.]+)\s*$")


def parse_pair(text: str, what: str, *, zero: bool = False) -> tuple[float, float]:
    """``"63.5x38.1"`` → (63.5, 38.1); ValueError naming ``what``. ``zero`` allows 0."""
    match = _PAIR.match(text)
    if match is None:
        raise ValueError(f"{what} {text!r}: expected two numbers like 63.5x38.1")
    try:
        a, b = float(match.group(1)), float(match.group(2))
    except ValueError:
        raise ValueError(f"{what} {text!r}: expected two numbers like 63.5x38.1") from None
    if a < 0 or b < 0 or (not zero and (a == 0 or b == 0)):
        raise ValueError(f"{what} {text!r}: both numbers must be positive")
    return a, b


def make_stock(
    preset: str = "l7160",
    *,
    page: str | None = None,
    grid: str | None = None,
    label: str | None = None,
    margin: str | None = None,
    pitch: str | None = None,
) -> Stock:
    """A preset, with any of its figures overridden: ``page`` (A4, letter or WxH),
    ``grid`` (COLUMNSxROWS), ``label`` (WxH), ``margin`` (TOP,LEFT), ``pitch`` (X,Y).

    For the roll a ``label`` size also sets the page size."""
    key = preset.strip().lower()
    if key not in PRESETS:
        raise ValueError(f"unknown label stock {preset!r}; expected one of {', '.join(PRESETS)}")
    stock = PRESETS[key]
    roll = stock.is_roll
    if label is not None:
        w, h = parse_pair(label, "--label-size")
        stock = replace(stock, label_w=w, label_h=h)
        if roll:
            stock = replace(stock, page_w=w, page_h=h)
    if page is not None:
        size = PAGE_SIZES_MM.get(page.strip().lower()) or parse_pair(page, "--page")
        stock = replace(stock, page_w=size[0], page_h=size[1])
    if grid is not None:
        cols, rows = parse_pair(grid, "--grid")
        if cols != int(cols) or rows != int(rows):
            raise ValueError(f"--grid {grid!r}: expected whole numbers like 3x7")
        stock = replace(stock, columns=int(cols), rows=int(rows))
    if margin is not None:
        top, left = parse_pair(margin, "--margin", zero=True)
        stock = replace(stock, top=top, left=left)
    if pitch is not None:
        px, py = parse_pair(pitch, "--pitch")
        stock = replace(stock, pitch_x=px, pitch_y=py)
    return stock.check()
