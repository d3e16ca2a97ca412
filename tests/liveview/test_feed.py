"""The gateway's live feed on its own: a reader that was already on when the session
started, and reads/s while nothing else happens."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tagsweep.config import parse_config
from tagsweep.daemon.liveview.feed import attach_live_view
from tagsweep.daemon.sessions import SessionError
from tagsweep.daemon.supervisor import Gateway
from tagsweep.drivers import open_driver
from tagsweep.simulators.sim_driver import SimDriver
from tests.conftest import eventually
from tests.liveview.harness import config_data

URL = "sim://random?tags=20&rate=400&interval=0.02&seed=3"
RACK = "DC1/Room 302/Rack A04"


def register(tmp: Path) -> Path:
    sim = open_driver(URL, name="probe", reader_id=0)
    assert isinstance(sim, SimDriver)
    epcs = [e.decode() for e in sim.epcs]
    path = tmp / "register.parquet"
    pq.write_table(
        pa.table(
            {
                "asset_tag": [f"AST-{i:06d}" for i in range(len(epcs) + 1)],
                "epc": [*epcs, None],  # and one asset nobody will find
                "location": [RACK] * (len(epcs) + 1),
            }
        ),
        path,
    )
    return path


async def test_tags_already_in_the_field_at_session_start_count(
    tmp_path: Path, short_dir: Path
) -> None:
    """The handheld was on before the session: its tags' sightings opened earlier and
    stay open (read every few ms), so no event would ever tick them off."""
    cfg = parse_config(
        config_data(tmp_path, short_dir, readers=[{"name": "handheld", "url": URL}], window_s=2.0)
    )
    gw = Gateway(cfg, control_socket=False)
    feed = attach_live_view(gw)
    async with gw:

        async def all_open() -> bool:  # the reader is reading; sightings are open
            await gw.sync()
            return bool(gw.status()["dedup"]["open_sightings"] == 20)

        await eventually(all_open, "20 open sightings")
        with pytest.raises(SessionError, match="no such register file"):
            await gw.start_session(operator="jdoe", scope=["DC1/Room 302"], expected="/nope")
        assert gw.session is None
        await gw.start_session(
            operator="jdoe", scope=["DC1/Room 302"], location=RACK, expected=str(register(tmp_path))
        )
        progress = feed.progress()
        assert progress["totals"] == {
            "expected": 21, "seen": 20, "not_yet_seen": 1, "unexpected": 0, "items_seen": 20
        }  # fmt: skip
        assert [a["asset_tag"] for a in progress["not_yet_seen"]] == ["AST-000020"]

        # reads/s is current even though no event has come since
        def reading() -> bool:
            (handheld,) = feed.progress()["health"]
            return bool(handheld["reads_per_s"] > 100 and handheld["state"] == "inventorying")

        await eventually(reading, "the handheld's reads/s in the live health")
        await gw.stop_session()
        assert feed.view.sessions()[0].closed
