"""``reconcile run --count`` takes files, folders and quoted globs (one folder per gateway)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tagsweep.engine.cli import expand_count_paths


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_files_folders_and_globs(tmp_path: Path) -> None:
    a = _touch(tmp_path / "sessions" / "gw-a" / "cs-1.parquet")
    b = _touch(tmp_path / "sessions" / "gw-b" / "cs-2.parquet")
    _touch(tmp_path / "sessions" / "gw-b" / "cs-2.json")  # manifests are not counts
    sheet = _touch(tmp_path / "sheet.csv")
    assert expand_count_paths([tmp_path / "sessions" / "*" / "*.parquet"]) == [a, b]
    assert expand_count_paths([tmp_path / "sessions" / "gw-b"]) == [b]
    assert expand_count_paths([sheet, tmp_path / "sessions" / "gw-a"]) == [sheet, a]


def test_relative_glob(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = _touch(tmp_path / "s" / "g1" / "x.parquet")
    monkeypatch.chdir(tmp_path)
    assert expand_count_paths([Path("s/*/*.parquet")]) == [Path("s/g1/x.parquet")]
    assert a.exists()


def test_nothing_matched_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no \.parquet or \.csv files"):
        expand_count_paths([tmp_path / "empty"])
    with pytest.raises(ValueError, match="matches no file"):
        expand_count_paths([tmp_path / "nope" / "*.parquet"])
