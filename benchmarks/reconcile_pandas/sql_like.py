"""The engine's SQL expressions spelled in pandas, for the baseline's stages.

SQL NULL is NaN here, and ``+`` on string columns propagates it like ``||``; the helpers
give DuckDB's ``concat_ws``, ``to_json`` of a struct, a semi-join, RE2's whitespace, and
the engine's text keys, so each stage of the baseline reads like the SQL it mirrors.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

#: The engine's ``\s`` is RE2's (DuckDB): tab, newline, form feed, carriage return, space.
#: Spelled out, it also keeps pandas on its pyarrow regex kernels (pandas 3 runs any
#: pattern with ``\s`` through Python's ``re``, one call per cell, since Python's ``\s``
#: matches more).
WS = r"[\t\n\f\r ]"
#: The same characters, for ``str.strip`` (which takes characters, not a pattern).
WS_CHARS = "\t\n\f\r "

Series = pd.Series
Frame = pd.DataFrame


def null_column(index: pd.Index) -> Series:
    return pd.Series(np.nan, index=index, dtype="str")


def blank_to_null(s: Series) -> Series:
    t = s.str.strip(" ")
    return t.where(t != "")


def squeeze_ws(s: Series) -> Series:
    return s.str.replace(WS + "+", " ", regex=True)


def text_key(s: Series) -> Series:
    t = squeeze_ws(s.str.strip(" ")).str.lower()
    return t.where(t != "")


def clean_location(s: Series) -> Series:
    t = squeeze_ws(s.str.strip(" ").str.replace(f"{WS}*/{WS}*", "/", regex=True))
    return t.where(t != "")


def clean_serial(s: Series, placeholders: set[str]) -> Series:
    s0 = s.str.strip(" ").str.replace(" ", "", regex=False).str.replace("\t", "", regex=False)
    s0 = s0.str.upper()
    # a placeholder, or one character repeated (s[1:] == s[:-1])
    repeated = (s0.str.len() > 0) & (s0.str[1:] == s0.str[:-1])
    # or a number a spreadsheet wrote in scientific notation ("1.23457E+11")
    mangled = s0.str.fullmatch(r"[0-9]+(\.[0-9]+)?E\+[0-9]+")
    unusable = s0.isin(placeholders) | repeated.fillna(False) | mangled.fillna(False)
    keep = ~unusable & (s0 != "")
    return s0.where(keep)


def concat_ws(sep: str, *parts: Series) -> Series:
    """DuckDB's concat_ws: the non-null parts joined, '' when all are null."""
    out = parts[0]
    for p in parts[1:]:
        out = (out + sep + p).fillna(out).fillna(p)
    return out.fillna("")


def python_values(s: Series) -> list[Any]:
    """Python values with None for null (what json.dumps needs)."""
    return [None if pd.isna(v) else v for v in s.tolist()]


def json_objects(**cols: Series) -> list[str]:
    """One JSON object per row, like DuckDB's to_json of a struct (compact, in order)."""
    keys = list(cols)
    values = [python_values(c) for c in cols.values()]
    return [
        json.dumps(dict(zip(keys, row, strict=True)), separators=(",", ":"), ensure_ascii=False)
        for row in zip(*values, strict=True)
    ]


def strftime(s: Series, fmt: str) -> Series:
    out: Series = s.dt.strftime(fmt).astype("str")
    return out


def semi_join(keys: Series, values: Series) -> Series:
    """``keys.isin(values)`` as a merge: pandas 3's ``isin`` on a string column turns each
    of ``values`` into a pyarrow scalar in Python first (seconds per million values)."""
    right = pd.DataFrame({"k": values.dropna().drop_duplicates(), "hit": True})
    hit = pd.DataFrame({"k": keys.to_numpy()}).merge(right, on="k", how="left")["hit"]
    return pd.Series(hit.notna().to_numpy(), index=keys.index)


def loc_within(a: Series, b: Series) -> Series:
    """loc_within(a, b): same place, or one a sub-location of the other."""
    flags = [
        x == y or x.lower() == y.lower() or x.lower().startswith(y.lower() + "/")
        or y.lower().startswith(x.lower() + "/")
        for x, y in zip(a.tolist(), b.tolist(), strict=True)
    ]  # fmt: skip
    return pd.Series(flags, index=a.index, dtype=bool)


# --- stages
