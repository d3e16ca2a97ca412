"""Quoting for the SQL tagsweep builds: every identifier and literal goes through here.

Values are bound as parameters wherever DuckDB allows one; where it does not (a column
name, a file path in ``read_parquet(...)``, a setting), the text is quoted with these
two functions, never pasted in raw.
"""

from __future__ import annotations


def lit(value: str | None) -> str:
    """A SQL string literal (or NULL)."""
    if value is None:
        return "NULL"
    return "'" + value.replace("'", "''") + "'"


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'
