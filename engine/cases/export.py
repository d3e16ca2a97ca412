"""Exporting every case for the reconciliation record (CSV or JSON lines)."""

from __future__ import annotations

import json
from pathlib import Path

from tagsweep.engine.cases.model import CASE_COLUMNS, CaseError
from tagsweep.engine.cases.store import CaseStoreCore
from tagsweep.engine.escaping import csv_safe


class CaseExport(CaseStoreCore):
    """``export``: every case, CSV with formula-injection escaping or JSON lines."""

    def export(self, out: Path, fmt: str = "csv") -> Path:
        """Write every case (CSV with formula-injection escaping, or JSON lines)."""
        cases = [c.as_dict() for c in self.list_cases()]
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "jsonl":
            out.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases))
            return out
        if fmt != "csv":
            raise CaseError(f"unknown export format {fmt!r}; expected csv or jsonl")
        import csv

        columns = [*CASE_COLUMNS, "status_label"]
        with out.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            for case in cases:
                writer.writerow({k: csv_safe(case[k]) for k in columns})
        return out
