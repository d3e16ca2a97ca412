"""The pandas baseline of ``bench_reconcile``: the engine's reconciliation, written the
way a pandas programmer would write it, producing the same files.

From the frozen snapshot (one Snipe-IT source) and one RFID session file it builds the
normalized register (with per-field provenance), decodes EPCs with the reference codec
(:func:`tagsweep.epc.asset_tag_for_epc`, one call per read), groups reads per counted
item, matches items to assets by tag then serial (then look-alike serial), and
classifies the variance types the benchmark data produces (retired_but_active,
duplicate_record, missing, unrecorded, location_mismatch, status_condition_mismatch,
stale_record) with the texts, evidence JSON, ids, priorities and SLA dates of
``engine/classify.py``. It writes ``variances.parquet``, ``variances.jsonl``,
``variances.csv`` (formula-escaped), ``register.parquet`` and ``matches.parquet``
with the engine's columns and sort orders.

Not covered, because the benchmark has no such input (and the engine's work for them
is a join against an empty table): HR custodians, MDM / discovery sources, model and
location alias tables, multi-source precedence and source conflicts, the variance
types identity_conflict, probable_match, custodian_mismatch and source_conflict.

Vectorised pandas (``.str`` methods, ``merge``, ``groupby``, ``np.where``) does the
column work; plain Python runs per row where a straightforward implementation has no
column-wise alternative: the EPC decode, the location containment test, the variance
id (sha256) and the evidence JSON (``json.dumps``).

The stages are one module each: :mod:`.normalize` (the register), :mod:`.match` (counted
items and their matches), :mod:`.classify` (candidate variances), :mod:`.outputs` (the
variance log and the files); :mod:`.sql_like` holds the pandas spellings of the engine's
SQL expressions they share.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from benchmarks.reconcile_pandas.classify import classify
from benchmarks.reconcile_pandas.match import match, observed_items
from benchmarks.reconcile_pandas.normalize import normalize_register
from benchmarks.reconcile_pandas.outputs import variance_log, write_outputs
from tagsweep.config.engine import EngineSection


def reconcile_pandas(
    snapshot: Path,
    session: Path,
    out: Path,
    settings: EngineSection,
    run_id: str,
    as_of: date,
) -> pd.DataFrame:
    """The whole baseline; returns the variance log it wrote."""
    rec, reg, _source = normalize_register(snapshot, settings)
    items = observed_items(session, settings)
    matches = match(items, reg)
    cand = classify(rec, reg, items, matches, settings, as_of)
    log = variance_log(cand, settings, run_id, as_of)
    write_outputs(log, reg, matches, out)
    return log
