"""Limits on untrusted export files: checked before and while they are read.

An export is another team's file, so it is treated as hostile: a 300 KB XLSX can unpack
to gigabytes, a sheet can declare a million rows of padding, JSON can nest deeper than
any parser recurses. Each check here stops the freeze with the file, the position (line,
row, column, zip member) and the ``[engine.limits]`` setting that was exceeded, before
the cost is paid where that is possible: the file size and an XLSX's unpacked sizes
before opening it, JSON nesting before parsing, rows and width while an XLSX streams.
XML entity declarations are refused by the XML parser itself (``defusedxml``, which
openpyxl uses once it is installed).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tagsweep.config.engine import ExportLimits

_MB: Final = 1024 * 1024
#: Zip members smaller than this unpacked are not ratio-checked (tiny XML compresses
#: far beyond any sane ratio and costs nothing).
ZIP_RATIO_MIN_BYTES: Final = _MB
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)


class LimitError(Exception):
    """An untrusted file exceeds a configured limit; the message says where and which."""


def _setting(name: str, value: object) -> str:
    return f"[engine.limits] {name} = {value}"


def check_file_size(path: Path, limits: ExportLimits) -> None:
    size = path.stat().st_size
    if size > limits.max_file_mb * _MB:
        raise LimitError(
            f"{path}: {size / _MB:.1f} MB is larger than "
            f"{_setting('max_file_mb', limits.max_file_mb)}"
        )


def check_zip(path: Path, limits: ExportLimits) -> None:
    """An XLSX (a zip) must not unpack to more than the limits allow."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise LimitError(f"{path}: not a readable XLSX (zip) file: {exc}") from None
    total = 0
    for member in members:
        total += member.file_size
        packed = max(member.compress_size, 1)
        ratio = member.file_size / packed
        if member.file_size > ZIP_RATIO_MIN_BYTES and ratio > limits.max_zip_ratio:
            raise LimitError(
                f"{path}: zip member {member.filename} unpacks {packed:,} bytes to "
                f"{member.file_size:,} ({ratio:,.0f} times): more than "
                f"{_setting('max_zip_ratio', limits.max_zip_ratio)} (a zip bomb?)"
            )
    if total > limits.max_unzipped_mb * _MB:
        raise LimitError(
            f"{path}: unpacks to {total / _MB:,.0f} MB, more than "
            f"{_setting('max_unzipped_mb', limits.max_unzipped_mb)}"
        )


def _line_col(data: bytes, offset: int) -> tuple[int, int]:
    line = data.count(b"\n", 0, offset) + 1
    return line, offset - (data.rfind(b"\n", 0, offset) + 1) + 1


def check_json_depth(data: bytes, path: Path, limits: ExportLimits) -> None:
    """JSON (or JSON Lines) whose objects and arrays nest deeper than the limit is
    refused before a parser recurses into it; strings are skipped, so brackets inside
    values do not count."""
    if data.count(b"[") + data.count(b"{") <= limits.max_json_depth:
        return
    # blank out string contents (same length, so offsets stay those of the file)
    blanked = _JSON_STRING.sub(lambda m: b'"' + b" " * (len(m.group()) - 2) + b'"', data)
    codes = np.frombuffer(blanked, dtype=np.uint8)
    step = np.zeros(len(codes), dtype=np.int32)
    step[(codes == ord("[")) | (codes == ord("{"))] = 1
    step[(codes == ord("]")) | (codes == ord("}"))] = -1
    depth = np.cumsum(step)
    if len(depth) and int(depth.max()) > limits.max_json_depth:
        offset = int(np.argmax(depth > limits.max_json_depth))
        line, col = _line_col(data, offset)
        raise LimitError(
            f"{path}: line {line}, column {col}: JSON nested deeper than "
            f"{_setting('max_json_depth', limits.max_json_depth)}"
        )


class RowBudget:
    """Rows, width and cells of a file read row by row, checked as each row arrives."""

    def __init__(self, path: Path, limits: ExportLimits, unit: str = "row") -> None:
        self.path = path
        self.limits = limits
        self.unit = unit
        self.rows = 0
        self.cells = 0

    def width(self, columns: int, where: int) -> None:
        """The header's width."""
        if columns > self.limits.max_columns:
            raise LimitError(
                f"{self.path}: {self.unit} {where} has {columns:,} columns, more than "
                f"{_setting('max_columns', self.limits.max_columns)}"
            )

    def read(self, cells: int, where: int) -> None:
        """A physical row of ``cells`` values was read (a data row or not)."""
        self.cells += cells
        if self.cells > self.limits.max_cells:
            raise LimitError(
                f"{self.path}: {self.unit} {where}: more than "
                f"{_setting('max_cells', self.limits.max_cells)} cells read"
            )

    def row(self, where: int) -> None:
        """A data row was kept."""
        self.rows += 1
        if self.rows > self.limits.max_rows:
            raise LimitError(
                f"{self.path}: {self.unit} {where}: more than "
                f"{_setting('max_rows', self.limits.max_rows)} data rows"
            )


def check_table(table: pa.Table, path: Path, limits: ExportLimits, line_column: str) -> None:
    """Rows, columns, cells and value lengths of a table read from ``path``; the
    position of a too-long value is its line (``line_column``) and column name."""
    columns = [c for c in table.column_names if c != line_column]
    budget = RowBudget(path, limits)
    budget.width(len(columns), 1)
    if table.num_rows > limits.max_rows:
        raise LimitError(
            f"{path}: {table.num_rows:,} data rows, more than "
            f"{_setting('max_rows', limits.max_rows)}"
        )
    if table.num_rows * len(columns) > limits.max_cells:
        raise LimitError(
            f"{path}: {table.num_rows:,} rows x {len(columns):,} columns, more than "
            f"{_setting('max_cells', limits.max_cells)} cells"
        )
    for name in columns:
        column = table.column(name)
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        lengths = pc.utf8_length(column)
        longest = pc.max(lengths).as_py()
        if longest is None or longest <= limits.max_cell_chars:
            continue
        index = pc.index(pc.greater(lengths, limits.max_cell_chars), True).as_py()
        longest = lengths[index].as_py()
        line = (
            table.column(line_column)[index].as_py()
            if line_column in table.column_names
            else index + 1
        )
        raise LimitError(
            f"{path}: line {line}, column {name!r}: a value of {longest:,} characters, "
            f"more than {_setting('max_cell_chars', limits.max_cell_chars)}"
        )
