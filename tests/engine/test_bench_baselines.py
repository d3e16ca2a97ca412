"""The reconciliation benchmark's same-work pandas baselines write what the engine
writes: the variance log (every row and column, CSV and JSONL too), register.parquet and
matches.parquet, on the benchmark's own inputs at a small size. A ratio against a
baseline that does other work would measure nothing, so a drift on either side fails
here before it skews a benchmark."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from benchmarks.bench_reconcile import compare_outputs, make_inputs, make_sources
from benchmarks.reconcile_pandas import reconcile_pandas
from benchmarks.reconcile_pandas_sources import reconcile_pandas_sources

from tagsweep.config.engine import EngineSection
from tagsweep.engine.freeze import SourceSpec, freeze
from tagsweep.engine.run import reconcile

ROWS = 3000


@pytest.mark.parametrize("shape", ["register", "realistic"])
def test_pandas_baseline_writes_what_the_engine_writes(tmp_path: Path, shape: str) -> None:
    register, session = make_inputs(tmp_path, ROWS)
    specs = [SourceSpec("itam", register, "snipeit")]
    if shape == "realistic":
        mdm, hr = make_sources(tmp_path, ROWS)
        specs += [SourceSpec("mdm", mdm, "intune"), SourceSpec("hr", hr, "hr")]
    freeze(specs, tmp_path / "snapshot", EngineSection())
    settings = EngineSection(scope=["DC1"])
    (tmp_path / "run").mkdir()
    result = reconcile(tmp_path / "snapshot", [session], settings, tmp_path / "run")
    (tmp_path / "pandas").mkdir()
    baseline = reconcile_pandas_sources if shape == "realistic" else reconcile_pandas
    log = baseline(
        tmp_path / "snapshot", session, tmp_path / "pandas", settings, result.run_id, result.as_of
    )

    check = compare_outputs(tmp_path / "run", tmp_path / "pandas")
    assert check["keys_agree"], check
    assert not any(check["differing_rows_per_column"].values()), check
    for name in ("csv_same_values", "jsonl_same_values", "register_identical", "matches_identical"):
        assert check[name], check
    by_type = log["variance_type"].value_counts().to_dict()
    assert by_type == {k: v for k, v in result.manifest["counts"]["by_type"].items() if v}
    if shape == "realistic":
        # what the MDM and HR sources add is there, not only the register's types
        assert {"custodian_mismatch", "source_conflict", "retired_but_active"} <= set(by_type)
        sources = set(pd.read_parquet(tmp_path / "pandas" / "register.parquet")["sources"])
        assert sources == {"itam", "itam,mdm"}
