"""The README's benchmark table, from ``benchmarks/results/summary.json``.

Each benchmark writes its own JSON shape; this module picks, per benchmark, the one
figure that answers its question, the baseline measured in the same run, their ratio
and the target, so the table in the README is generated rather than retyped.

Run: ``.venv/bin/python -m benchmarks.table`` (after ``make bench``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"

Row = tuple[str, str, str, str, str]  # what, figure, baseline, ratio, target


def _get(data: Mapping[str, Any], path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _rate(value: Any) -> str:
    return "n/a" if value is None else f"{float(value) / 1e6:.2f} M reads/s"


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{float(value) * 100:.1f} %"


def _x(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.1f}x"


def _llrp(d: Mapping[str, Any]) -> Row:
    r = _get(d, "by_report_size.500_reads_per_report") or {}
    return (
        "LLRP ingest, simulator -> TCP -> driver (500 reads/report)",
        _rate(r.get("end_to_end_fast")),
        f"{_rate(r.get('baseline_sllurp_bare_decode'))} (bare sllurp decode)",
        _x(r.get("ratio_end_to_end_vs_sllurp_bare")),
        ">= 1x sllurp",
    )


def _dedup(d: Mapping[str, Any]) -> Row:
    return (
        f"Dedup kernel, {int(d.get('reads', 0)):,} reads",
        _rate(d.get("best_reads_per_s")),
        f"{_rate(d.get('dict_loop_reads_per_s'))} (Python dict loop)",
        f"{_x(d.get('best_ratio_vs_dict_loop'))} "
        f"({_x(d.get('best_ratio_vs_dict_loop_incl_conversion'))} incl. conversion)",
        f"{_get(d, 'targets.ratio') or 20}x",
    )


def _reconcile(d: Mapping[str, Any]) -> Row:
    rows = int(d.get("rows", 0))
    return (
        f"Reconcile {rows:,} register rows x {rows:,} counted items",
        f"{d.get('engine_seconds', 'n/a')} s (engine, all outputs)",
        f"{d.get('pandas_seconds', 'n/a')} s (pandas"
        + (", same files, checked equal)" if d.get("variance_logs_agree") else ")"),
        f"{_x(d.get('ratio_pandas_over_engine'))} faster",
        "<= 5 s, >= 5x pandas",
    )


def _mqtt(d: Mapping[str, Any]) -> Row:
    return (
        f"Read -> MQTT subscriber p99 at {int(d.get('read_rate_per_s', 0)):,} reads/s",
        f"{_get(d, 'outbox.p99_ms')} ms (durable outbox)",
        f"{_get(d, 'direct.p99_ms')} ms (direct publish)",
        f"{_x(d.get('ratio_p99_outbox_over_direct'))} slower, {d.get('lost_events', 'n/a')} lost",
        f"p99 < {d.get('target_p99_ms', 100)} ms",
    )


def _location(d: Mapping[str, Any]) -> Row:
    return (
        f"Location attribution ({_pct(d.get('cross_read_share'))} cross-reads)",
        _pct(d.get("accuracy")),
        f"{_pct(d.get('baseline_naive_last_location'))} (last location wins)",
        _x(_div(d.get("accuracy"), d.get("baseline_naive_last_location"))),
        ">= 99.5 %",
    )


def _portal(d: Mapping[str, Any]) -> Row:
    return (
        f"Portal direction ({d.get('true_passes', 'n/a')} passes)",
        f"{_pct(d.get('direction_accuracy'))}, {d.get('spurious', 'n/a')} spurious",
        f"{_pct(d.get('baseline_last_antenna'))}, {d.get('baseline_spurious', 'n/a')} "
        "spurious (last antenna)",
        _x(_div(d.get("direction_accuracy"), d.get("baseline_last_antenna"))),
        ">= 99 %",
    )


def _liveview(d: Mapping[str, Any]) -> Row:
    return (
        f"Gateway ingest with {d.get('clients', 5)} live pages open",
        _rate(_get(d, "gateway.reads_per_cpu_s_with_clients")) + " per CPU s",
        _rate(_get(d, "gateway.reads_per_cpu_s_no_clients")) + " per CPU s (no page)",
        _x(_get(d, "gateway.paired_cpu_ratio_median")),
        "about 1x",
    )


def _netbox(d: Mapping[str, Any]) -> Row:
    n = int(d.get("devices", 0))
    return (
        f"NetBox pull and push of {n:,} devices (real NetBox, 2 gunicorn workers)",
        f"pull {d.get('pull_s', 'n/a')} s, push {d.get('push_devices_per_s', 'n/a')} devices/s",
        f"pull {d.get('baseline_pull_s', 'n/a')} s (next links, 50/page), push "
        f"{d.get('baseline_push_devices_per_s', 'n/a')} devices/s (a PATCH each)",
        f"pull {_x(d.get('pull_speedup'))}, push {_x(d.get('push_speedup'))}",
        "faster than one request at a time",
    )


def _audit(d: Mapping[str, Any]) -> Row:
    return (
        f"Open {int(d.get('variances', 0)):,} cases, every audit entry signed (key file)",
        f"{_get(d, 'import_s.key_file') or 0:.1f} s "
        f"({_get(d, 'sign_ms_per_entry.key_file') or 0:.2f} ms/entry; ssh-agent "
        f"{_get(d, 'sign_ms_per_entry.ssh_agent') or 0:.1f} ms/entry)",
        f"{_get(d, 'import_s.unsigned') or 0:.1f} s (unsigned)",
        f"{_x(_get(d, 'import_ratio_vs_unsigned.key_file'))} slower",
        "signing not the bottleneck",
    )


def _div(a: Any, b: Any) -> float | None:
    return None if a is None or not b else float(a) / float(b)


ROWS: dict[str, Callable[[Mapping[str, Any]], Row]] = {
    "llrp": _llrp,
    "dedup": _dedup,
    "reconcile": _reconcile,
    "mqtt": _mqtt,
    "location": _location,
    "portal": _portal,
    "liveview": _liveview,
    "netbox": _netbox,
    "audit": _audit,
}


def markdown_table(summary: Mapping[str, Any]) -> str:
    """The table, one row per benchmark that produced a result, plus the machine."""
    lines = [
        "| benchmark | figure | baseline (same run) | ratio | target |",
        "|---|---|---|---|---|",
    ]
    results = summary.get("results", {})
    for name, row in ROWS.items():
        if name in results:
            lines.append("| " + " | ".join(row(results[name])) + " |")
    failed = summary.get("failed") or []
    machine = summary.get("machine", {})
    lines.append("")
    lines.append(
        f"Machine: {machine.get('cpus', '?')} cores, {machine.get('platform', '?')}, "
        f"Python {machine.get('python', '?')}"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return "\n".join(lines)


def main() -> None:
    print(markdown_table(json.loads((RESULTS / "summary.json").read_text(encoding="utf-8"))))


if __name__ == "__main__":
    main()
