"""Commissioning tags: write an asset's GIAI-96 EPC onto the tag in front of a reader.

``tagsweep tag encode --reader URL --asset-tag AST-000123`` (or ``--from register.csv``
at a bench, one tag after the other): one timed inventory finds the tag (more than one
in the field is refused: the write would go to whichever answered), an LLRP AccessSpec
reads its TID and writes the EPC (optionally an access password and a write lock), a
second inventory reads it back. Every attempt is a row of the CSV log: asset tag, old
EPC, new EPC, TID, result.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from tagsweep.drivers.llrp.access import (
    LOCK,
    LOCK_RESULTS,
    WRITE_EPC,
    WRITE_PASSWORD,
    WRITE_RESULTS,
    AccessSession,
    accessspec,
)
from tagsweep.engine.cases import csv_safe
from tagsweep.epc import DEFAULT_COMPANY_PREFIX, giai96_for_asset_tag


@dataclass(frozen=True, slots=True)
class EncodeResult:
    asset_tag: str
    old_epc: str
    new_epc: str
    tid: str
    result: str  # "written", or why not

    @property
    def ok(self) -> bool:
        return self.result == "written"


@dataclass(frozen=True, slots=True)
class EncodeOptions:
    company_prefix: str = DEFAULT_COMPANY_PREFIX
    access_password: int = 0  # the tag's current one (0: none)
    new_access_password: int | None = None  # written into the reserved bank
    lock: bool = False  # write-lock the EPC bank and the password (pwd-write)
    duration_ms: int = 300  # each inventory


def encode_tag(
    session: AccessSession, asset_tag: str, options: EncodeOptions = EncodeOptions()
) -> EncodeResult:
    try:
        new_epc = giai96_for_asset_tag(asset_tag, options.company_prefix)
    except ValueError as exc:
        return EncodeResult(asset_tag, "", "", "", f"refused: {exc}")
    epcs = sorted({t.epc for t in session.inventory(options.duration_ms)})
    if len(epcs) != 1:
        why = (
            "no tag in the field"
            if not epcs
            else (
                f"{len(epcs)} tags in the field ({', '.join(epcs)}): leave only the one to encode"
            )
        )
        return EncodeResult(asset_tag, "", new_epc, "", f"refused: {why}")
    old = epcs[0]
    spec = accessspec(
        old, new_epc, options.access_password, options.new_access_password, options.lock
    )
    accessed = [t for t in session.inventory(options.duration_ms, spec) if t.results]
    if not accessed:
        return EncodeResult(asset_tag, old, new_epc, "", "failed: the tag left the field")
    tag = accessed[0]
    code = tag.results.get(WRITE_EPC)
    if code != 0:
        why = WRITE_RESULTS.get(code or -1, f"result {code}")
        return EncodeResult(asset_tag, old, new_epc, tag.tid, f"write failed: {why}")
    for opspec, table, what in (
        (WRITE_PASSWORD, WRITE_RESULTS, "password"),
        (LOCK, LOCK_RESULTS, "lock"),
    ):
        code = tag.results.get(opspec, 0)
        if code:
            why = table.get(code, f"result {code}")
            return EncodeResult(asset_tag, old, new_epc, tag.tid, f"{what} failed: {why}")
    back = sorted({t.epc for t in session.inventory(options.duration_ms)})
    if back != [new_epc]:
        seen = ", ".join(back) or "no tag"
        return EncodeResult(asset_tag, old, new_epc, tag.tid, f"verify failed: read back {seen}")
    return EncodeResult(asset_tag, old, new_epc, tag.tid, "written")


def encode_batch(
    reader_url: str,
    asset_tags: Iterable[str],
    options: EncodeOptions = EncodeOptions(),
    *,
    log: Path | None = None,
    before_each: Callable[[str], None] = lambda _tag: None,
) -> list[EncodeResult]:
    """Encode each asset tag in turn (``before_each`` asks for its tag to be placed);
    each result is appended to the CSV ``log`` as soon as it is known."""
    results: list[EncodeResult] = []
    with AccessSession(reader_url) as session:
        for asset_tag in asset_tags:
            before_each(asset_tag)
            result = encode_tag(session, asset_tag, options)
            results.append(result)
            if log is not None:
                append_log(log, result)
    return results


def append_log(path: Path, result: EncodeResult) -> None:
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow([f.name for f in fields(EncodeResult)])
        writer.writerow([csv_safe(value) for value in astuple(result)])


def read_register(path: Path) -> list[str]:
    """Asset tags from a CSV with an ``asset_tag`` column (or one tag per line)."""
    text = path.read_text(encoding="utf-8-sig")
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        return []
    header = [h.strip().lower() for h in rows[0]]
    if "asset_tag" in header:
        column = header.index("asset_tag")
        return [r[column].strip() for r in rows[1:] if len(r) > column and r[column].strip()]
    return [r[0].strip() for r in rows if r and r[0].strip()]
