"""Reading a JSON export: an array of records, an API envelope holding one, or JSON
Lines; nested objects flattened into dotted column names, every value as text.

Records that are not objects and JSON Lines that do not parse are bad rows with their
line; the rest is read. Which member of an envelope holds the records is known for the
APIs the presets read (:data:`_JSON_LIST_KEYS`), else found.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from tagsweep.engine.hygiene import cell_text, free_name, with_header
from tagsweep.engine.snapshot import LINE_COLUMN, BadRow, FreezeError
from tagsweep.engine.text_encoding import decode_lines, detect_encoding

#: Keys under which JSON exports nest their list of records (ServiceNow ``result`` and
#: ``records``, Microsoft Graph ``value``, Jamf Pro API ``results``).
#: Where API envelopes keep their records: ServiceNow ``result``, NetBox and Jamf Pro
#: ``results``, Snipe-IT ``rows``, Microsoft Graph ``value``, Jamf Classic ``computers``...
_JSON_LIST_KEYS = (
    "records", "result", "results", "rows", "value", "data", "items", "devices", "computers",
)  # fmt: skip


def _flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            # ServiceNow ``sysparm_display_value=all`` gives {display_value, value, link}
            if "display_value" in value:
                out[name] = cell_text(value.get("display_value"))
            else:
                out.update(_flatten(value, name + "."))
        elif isinstance(value, list):
            out[name] = json.dumps(value, sort_keys=True)
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        else:
            out[name] = cell_text(value)
    return out


def _is_prefix(name: str, nested: set[str]) -> bool:
    return any(n == name or n.startswith(name + ".") for n in nested)


def _envelope_records(data: Mapping[str, Any]) -> Any:
    """The records of an API envelope: a known key holding a list, else the one member
    that is a list of objects, else the object itself as the only record."""
    for key in _JSON_LIST_KEYS:
        if isinstance(data.get(key), list):
            return data[key]
    lists = [v for v in data.values() if isinstance(v, list) and v and isinstance(v[0], Mapping)]
    return lists[0] if len(lists) == 1 else [data]


def read_json(path: Path, source: str) -> tuple[pa.Table, list[BadRow]]:
    """A JSON array of objects, an API envelope holding one, or JSON Lines."""
    text = "".join(decode_lines(path, detect_encoding(path))).lstrip("\ufeff")
    records: list[tuple[int, Mapping[str, Any]]] = []
    bad: list[BadRow] = []
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                bad.append(BadRow(source, path.name, number, f"not JSON: {exc.msg}"))
                continue
            if isinstance(item, Mapping):
                records.append((number, item))
            else:
                bad.append(BadRow(source, path.name, number, "not a JSON object"))
    if data is not None:
        if isinstance(data, Mapping):
            data = _envelope_records(data)
        if not isinstance(data, list):
            raise FreezeError(f"{path}: expected a list of records")
        for number, item in enumerate(data, start=1):
            if isinstance(item, Mapping):
                records.append((number, item))
            else:
                bad.append(BadRow(source, path.name, number, "record is not a JSON object"))
    flat = [(n, _flatten(r)) for n, r in records]
    names: dict[str, None] = {}
    for _, row in flat:
        names.update(dict.fromkeys(row))
    # An object member that is null in some records ("location": null next to
    # "location": {"name": ...}) is a column of its own only if it ever holds a value:
    # an always-empty "location" must not hide "location.name" from the presets.
    filled = {k for _, row in flat for k, v in row.items() if v is not None}
    nested = {k.rsplit(".", 1)[0] for k in names if "." in k}
    names = {k: None for k in names if k in filled or not _is_prefix(k, nested)}
    arrays = {
        free: pa.array([row.get(k) for _, row in flat], pa.string())
        for k, free in zip(names, free_name(list(names), LINE_COLUMN), strict=True)
    }
    arrays[LINE_COLUMN] = pa.array([n for n, _ in flat], pa.int64())
    return with_header(pa.table(arrays), list(names)), bad
