"""What a preset is, and how its candidate headers find an export's columns.

A :class:`Preset` lists, per canonical field, the headers that may hold it;
:func:`resolve_columns` picks, for one export, the first candidate present (headers
compared by :func:`header_key`), joined columns and constants included, and lets the
configured overrides win; :func:`conventions` says how a source writes numbers and
dates. The presets themselves are in the modules beside this one, one per kind of
system.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

Candidate = str | tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Preset:
    """How one kind of export maps onto canonical fields."""

    name: str
    role: str
    fields: dict[str, list[Candidate]]
    #: at least one of these canonical fields must be mapped, or the export is unusable
    required_any: tuple[str, ...] = ("asset_tag", "serial")
    #: source-specific status labels (case-insensitive) → canonical lifecycle
    status_map: dict[str, str] = field(default_factory=dict)
    #: numbers written with a decimal comma ("1.899,00"), dates day first ("03.04.2026")
    decimal_comma: bool = False
    day_first: bool = False
    #: records that are not company hardware: (field, case-insensitive full-match
    #: regular expression over the raw value, reason reported)
    exclude: tuple[tuple[str, str, str], ...] = ()


def header_key(name: str) -> str:
    """Comparison key of a column header: lower-case, without spaces, dots, dashes, '_'."""
    return re.sub(r"[\s._\-]+", "", name.strip().lower())


def conventions(
    preset: Preset, decimal_comma: bool | None, day_first: bool | None
) -> tuple[bool, bool]:
    """(decimal comma, day-first dates) of a source: the configured choice, else the
    preset's."""
    return (
        preset.decimal_comma if decimal_comma is None else decimal_comma,
        preset.day_first if day_first is None else day_first,
    )


def resolve_columns(
    preset: Preset, headers: Iterable[str], overrides: dict[str, str]
) -> dict[str, list[str] | str]:
    """Map each canonical field to the export column(s) holding it, or a ``=constant``.

    Returns field → header, field → [headers to join with '/'], or field → '=value'.
    Fields no candidate matches are absent.
    """
    by_key = {header_key(h): h for h in headers}
    out: dict[str, list[str] | str] = {}
    for name, candidates in preset.fields.items():
        for cand in candidates:
            if isinstance(cand, tuple):
                # the first column must be there; the others refine it when present
                found = [by_key[header_key(c)] for c in cand if header_key(c) in by_key]
                if header_key(cand[0]) in by_key:
                    out[name] = found if len(found) > 1 else found[0]
                    break
            elif cand.startswith("="):
                out[name] = cand
                break
            elif header_key(cand) in by_key:
                out[name] = by_key[header_key(cand)]
                break
    for name, column in overrides.items():
        out[name] = by_key.get(header_key(column), column)
    return out
