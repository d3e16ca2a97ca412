"""The expected-vs-seen model on its own: register loading, scope, identities, roll-up."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tagsweep.daemon.liveview.count import LiveCount
from tagsweep.daemon.liveview.register import ExpectedAsset, RegisterFileError, load_register
from tagsweep.daemon.liveview.view import LiveView
from tagsweep.epc import encode_ascii, giai96_for_asset_tag

ROOM = "DC1/Room 302"
A04 = f"{ROOM}/Rack A04"
A05 = f"{ROOM}/Rack A05"


def asset(
    tag: str,
    location: str,
    *,
    serial: str | None = None,
    status: str = "in_use",
    epc: str | None = None,
) -> ExpectedAsset:
    return ExpectedAsset(tag, serial or f"SN{tag[-3:]}", epc, "Dell", "R650", location, status)


REGISTER = [
    asset("AST-000101", A04),
    asset("AST-000102", A04),
    asset("AST-000103", A05),
    asset("AST-000104", ROOM),  # known to be in the room, rack not recorded
    asset("AST-000105", "DC1/Room 303/Rack B01"),  # another room: not expected here
    asset("AST-000106", A05, status="retired"),  # retired: not expected on the floor
]


def live() -> LiveCount:
    return LiveCount("cs-1", [ROOM], REGISTER, site="DC1", operator="jdoe")


def test_expected_is_the_scope_minus_assets_not_on_the_floor() -> None:
    count = live()
    assert {a.asset_tag for a in count.not_yet_seen()} == {
        "AST-000101",
        "AST-000102",
        "AST-000103",
        "AST-000104",
    }
    assert {a.asset_tag for a in count.not_yet_seen(A04)} == {"AST-000101", "AST-000102"}
    rows = {r["location"]: r for r in count.location_rows()}
    assert rows[ROOM]["expected"] == 4
    assert rows[A04]["expected"] == 2
    assert rows[A05]["expected"] == 1
    assert "DC1/Room 303/Rack B01" not in rows


def test_giai_read_ticks_off_and_rolls_up_the_tree() -> None:
    count = live()
    count.set_location_context(A04)
    count.observe_epc(giai96_for_asset_tag("AST-000101"))
    rows = {r["location"]: r for r in count.location_rows()}
    assert rows[A04] | {"location": 0, "depth": 0} == {
        "location": 0,
        "depth": 0,
        "expected": 2,
        "seen": 1,
        "not_yet_seen": 1,
        "unexpected": 0,
    }
    assert rows[ROOM]["seen"] == 1
    assert rows[ROOM]["not_yet_seen"] == 3
    assert count.totals()["unexpected"] == 0


def test_barcode_scan_by_serial_or_tag_ticks_off_the_same_way() -> None:
    count = live()
    count.set_location_context(A05)
    count.observe_scan(serial=" sn103 ")  # scanners send what the label says, any case
    count.observe_scan(asset_tag="ast-000104")
    assert {a.asset_tag for a in count.not_yet_seen()} == {"AST-000101", "AST-000102"}
    seen = {i.asset_tag: i for i in count.seen_expected()}
    assert seen["AST-000103"].method == "barcode"
    # seen in a rack of the room it is registered to: not misplaced
    assert count.unexpected() == []


def test_unexpected_reasons() -> None:
    count = live()
    count.set_location_context(A04)  # A04 has been counted ...
    count.set_location_context(A05)
    count.observe_epc(giai96_for_asset_tag("AST-000101"))  # ... but this one is in A05
    count.observe_epc(giai96_for_asset_tag("AST-000105"))  # registered in another room
    count.observe_epc(giai96_for_asset_tag("AST-000106"))  # retired
    count.observe_epc(giai96_for_asset_tag("AST-000999"))  # nobody recorded it
    count.observe_epc("E2801160600002089F1A2B3C")  # foreign EPC, no asset tag in it
    reasons = {(i.asset_tag or i.epc): r.value for i, r in count.unexpected()}
    assert reasons == {
        "AST-000101": "expected_elsewhere",
        "AST-000105": "expected_elsewhere",
        "AST-000106": "not_on_floor",
        "AST-000999": "not_in_register",
        "E2801160600002089F1A2B3C": "not_in_register",
    }
    # AST-000101 is found (ticked off in A04) *and* flagged where it actually is
    assert "AST-000101" not in {a.asset_tag for a in count.not_yet_seen()}
    rows = {r["location"]: r for r in count.location_rows()}
    assert rows[A05]["unexpected"] == 5
    assert rows[A04]["seen"] == 1
    assert rows[A04]["unexpected"] == 0


def test_reattribution_moves_an_item_and_clears_the_flag() -> None:
    count = live()
    count.set_location_context(A05)
    count.set_location_context(A04)
    epc = giai96_for_asset_tag("AST-000103")
    count.observe_epc(epc)  # a cross-read through the rack panel
    assert [r.value for _, r in count.unexpected()] == ["expected_elsewhere"]
    count.observe_epc(epc, A05)  # stronger evidence later: the daemon re-attributes
    assert count.unexpected() == []


def test_no_flag_while_the_registered_rack_is_still_ahead() -> None:
    """A cross-read of the next rack's asset is not "unexpected" before that rack is
    counted; once it has been counted and the asset is still attributed here, it is."""
    count = live()
    count.set_location_context(A04)
    count.observe_epc(giai96_for_asset_tag("AST-000103"))  # registered in A05
    assert count.unexpected() == []
    assert count.totals()["seen"] == 1  # found all the same
    count.set_location_context(A05)
    assert [(i.location, r.value) for i, r in count.unexpected()] == [(A04, "expected_elsewhere")]


def test_ascii_epc_scheme() -> None:
    count = LiveCount("cs-2", [ROOM], REGISTER, epc_scheme="ascii")
    count.observe_epc(encode_ascii("AST-000102"), A04)
    assert "AST-000102" not in {a.asset_tag for a in count.not_yet_seen()}


def test_snapshot_is_cached_per_version() -> None:
    count = live()
    first = count.snapshot()
    assert count.snapshot() is first
    count.observe_epc(giai96_for_asset_tag("AST-000101"), A04)
    second = count.snapshot()
    assert second is not first
    assert second["totals"]["not_yet_seen"] == first["totals"]["not_yet_seen"] - 1
    version = count.version
    count.observe_epc(giai96_for_asset_tag("AST-000101"), A04)  # nothing new to show
    assert count.version == version
    assert count.snapshot() is second


def test_snapshot_lists_are_capped() -> None:
    register = [asset(f"AST-{i:06d}", A04) for i in range(1, 31)]
    snap = LiveCount("cs-3", [ROOM], register).snapshot(list_limit=10)
    assert len(snap["not_yet_seen"]) == 10
    assert snap["not_yet_seen_truncated"] is True
    assert snap["totals"]["not_yet_seen"] == 30


def test_live_view_unknown_session_names_the_known_ones() -> None:
    view = LiveView()
    view.add(live())
    with pytest.raises(KeyError) as info:
        view.get("cs-nope")
    assert "cs-nope" in str(info.value)
    assert "cs-1" in str(info.value)


def test_live_view_keeps_a_few_closed_sessions_for_review() -> None:
    view = LiveView()
    for i in range(LiveView.KEEP_CLOSED + 3):
        view.add(LiveCount(f"cs-{i}", [ROOM], REGISTER)).close()
    view.add(LiveCount("cs-open", [ROOM], REGISTER))
    kept = [c.session_id for c in view.sessions()]
    assert kept == [f"cs-{i}" for i in range(3, LiveView.KEEP_CLOSED + 3)] + ["cs-open"]
    assert [c.session_id for c in view.open_sessions()] == ["cs-open"]


def test_reads_per_second_of_a_source() -> None:
    view = LiveView()
    view.set_source_state("handheld", "reader", "inventorying")
    health = view._health["handheld"]
    health._window_start -= 1.0  # one second ago
    view.count_reads("handheld", 500)
    (row,) = view.health()
    assert row["state"] == "inventorying"
    assert 400 <= row["reads_per_s"] <= 500
    assert row["reads_total"] == 500


# -- register files --------------------------------------------------------------------


def test_load_parquet_csv_and_folder(tmp_path: Path) -> None:
    table = pa.table(
        {
            "Asset_Tag": [" ast-000001", "AST-000002", None, "AST-000004"],
            "serial_number": ["s1", None, None, "S4"],
            "Manufacturer": ["Dell", "HPE", "Dell", "Lenovo"],
            "model": ["R650", "DL380", "R650", "SR650"],
            "location": [A04, f" {ROOM} / Rack A05 ", A04, None],
            "Status": ["In_Use", "retired", "in_use", "in_use"],
            "epc": ["3034-...", None, None, None],
        }
    )
    run = tmp_path / "run"
    run.mkdir()
    pq.write_table(table, run / "register.parquet")
    assets = load_register(run)  # a run output folder
    # row 3 has no identity, row 4 no location: both skipped
    assert [(a.asset_tag, a.serial, a.location, a.status) for a in assets] == [
        ("AST-000001", "S1", A04, "in_use"),
        ("AST-000002", None, A05, "retired"),
    ]
    assert assets[0].epc is None  # not hex: ignored, not fatal
    csv = tmp_path / "golden.csv"
    csv.write_text("asset_tag,location,model\nAST-000007,DC1/Room 302/Rack A04,R650\n")
    (only,) = load_register(csv)
    assert (only.asset_tag, only.location, only.model) == ("AST-000007", A04, "R650")


def test_register_errors_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(RegisterFileError, match="no such register file"):
        load_register(tmp_path / "nope.parquet")
    with pytest.raises(RegisterFileError, match="no register file in this folder"):
        load_register(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("asset_tag,room\nAST-1,302\n")
    with pytest.raises(RegisterFileError, match="no location column"):
        load_register(bad)
    no_id = tmp_path / "noid.csv"
    no_id.write_text("model,location\nR650,DC1\n")
    with pytest.raises(RegisterFileError, match="asset_tag, serial or epc"):
        load_register(no_id)
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet at all")
    with pytest.raises(RegisterFileError, match="cannot read register"):
        load_register(junk)
