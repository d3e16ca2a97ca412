"""How untrusted text is escaped for each kind of output the engine writes.

Values in the outputs come from exports and counts: other teams' systems, scanned
labels. A CSV cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return is a
formula to a spreadsheet (OWASP "CSV injection"): :func:`csv_safe` prefixes it with
``'``. A Markdown report is rendered by viewers that pass raw HTML and follow links and
images: :func:`markdown_text` turns ``<``, ``>`` and ``&`` into entities and escapes
the link, code and escape characters, so a location label such as
``<img src=//evil/x>`` is shown as text; :func:`markdown_cell` also keeps it inside its
table cell. (The SQL form of the CSV rule is ``outputs.escape_formula_sql``.)
"""

from __future__ import annotations

from typing import Any, Final

FORMULA_PREFIXES: Final = ("=", "+", "-", "@", "\t", "\r")
_MARKDOWN = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        "\\": "\\\\",
        "`": "\\`",
        "[": "\\[",
        "]": "\\]",
    }
)


def csv_safe(value: Any) -> Any:
    """Neutralise spreadsheet formula injection (OWASP): prefix '=+-@\\t\\r' cells with '."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def markdown_text(value: Any) -> str:
    """Text shown as itself in Markdown: no HTML, links, images or code spans."""
    return str(value).translate(_MARKDOWN)


def markdown_cell(value: Any) -> str:
    """:func:`markdown_text` that also stays in its table cell (pipes, line breaks)."""
    return markdown_text(value).replace("|", "\\|").replace("\r", " ").replace("\n", " ")
