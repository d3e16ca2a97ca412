"""Reading an XLSX export: the first worksheet, every cell as text, each row with
its sheet row number.

An XLSX file is a zip of XML written by anyone: the zip is checked against the
configured limits before it is opened, rows and width are counted as they stream, the
sheet's declared dimension is not trusted, and whatever the XML parser refuses becomes
a :class:`~tagsweep.engine.snapshot.FreezeError` naming the file and the XML position.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from tagsweep.config.engine import ExportLimits
from tagsweep.engine.hygiene import cell_text, free_name, unique_names, with_header
from tagsweep.engine.limits import LimitError, RowBudget, check_zip
from tagsweep.engine.snapshot import LINE_COLUMN, BadRow, FreezeError


def read_xlsx(
    path: Path, source: str, limits: ExportLimits | None = None
) -> tuple[pa.Table, list[BadRow]]:
    """First worksheet; the first non-empty row is the header; ``_line`` is the sheet row.

    The zip is checked against ``limits`` before it is opened, and rows and width as
    they stream; whatever the XML parser refuses (entity declarations, malformed XML)
    is a FreezeError naming the file, never a traceback."""
    try:
        return _read_xlsx(path, source, limits or ExportLimits())
    except (FreezeError, LimitError, MemoryError):
        raise
    except Exception as exc:  # openpyxl and its XML parser raise many kinds
        root: BaseException = exc  # openpyxl wraps the parser's error: report that one
        while root.__cause__ is not None or root.__context__ is not None:
            root = root.__cause__ or root.__context__ or root
        where = getattr(root, "position", None)  # ElementTree
        lineno = getattr(root, "lineno", None)
        if where is None and isinstance(lineno, int):
            where = (lineno, getattr(root, "offset", 0) + 1)  # expat (defusedxml)
        at = f" (XML line {where[0]}, column {where[1]})" if where else ""
        why = f"{type(root).__name__}: {root}"
        if type(root).__name__ in {"EntitiesForbidden", "DTDForbidden"}:
            why += " (XML entity and DTD declarations are refused in exports)"
        raise FreezeError(f"{path}: cannot read as XLSX{at}: {why}") from None


def _read_xlsx(path: Path, source: str, limits: ExportLimits) -> tuple[pa.Table, list[BadRow]]:
    import openpyxl

    check_zip(path, limits)
    budget = RowBudget(path, limits, unit="sheet row")
    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        sheet = book.worksheets[0]
        # The declared dimension is not trusted: rows padded to a bogus "A1:XFD1048576"
        # are billions of empty cells. Without it, each row has the cells it holds.
        sheet.reset_dimensions()
        header: list[str] | None = None
        original: list[str] = []
        columns: dict[str, list[str | None]] = {}
        lines: list[int] = []
        bad: list[BadRow] = []
        for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
            budget.read(len(row), number)
            cells = [cell_text(v) for v in row]
            if header is None:
                if any(cells):
                    # read-only sheets pad every row to the widest one: drop empty tails
                    width = max(i for i, c in enumerate(cells) if c) + 1
                    original = [c or f"column{i + 1}" for i, c in enumerate(cells[:width])]
                    budget.width(len(original), number)
                    header = free_name(unique_names(original), LINE_COLUMN)
                    columns = {h: [] for h in header}
                continue
            if not any(cells):
                continue
            if len(cells) > len(header) and any(cells[len(header) :]):
                bad.append(BadRow(source, path.name, number, "values beyond the header columns"))
                continue
            budget.row(number)
            for i, name in enumerate(header):
                columns[name].append(cells[i] if i < len(cells) else None)
            lines.append(number)
    finally:
        book.close()
    if header is None:
        raise FreezeError(f"{path}: the first worksheet is empty")
    arrays = {k: pa.array(v, pa.string()) for k, v in columns.items()}
    arrays[LINE_COLUMN] = pa.array(lines, pa.int64())
    return with_header(pa.table(arrays), original), bad
