"""Acceptance: a phone's browser (headless Chromium at a phone's viewport) whose camera is
a video of labels printed by ``tagsweep labels`` scans a rack label and asset labels in
the live page's camera mode; the scans reach the live count and the session file with
the device and the operator. With the connection cut mid-scan, nothing is lost and
nothing is counted twice. A screenshot goes to ``test-artifacts/``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tagsweep.daemon.liveview.feed import attach_live_view
from tagsweep.daemon.supervisor import Gateway
from tagsweep.labels.content import LabelMaker, LabelProblems
from tests.conftest import free_port, wait_for_port
from tests.liveview.camera import CutProxy, label_images, start_phone_chromium, write_y4m
from tests.liveview.test_browser import ARTIFACTS
from tests.liveview.test_phones import RACK_A, phones_gateway, write_register

TAGS = ["AST-000001", "AST-000002", "AST-000004"]  # AST-000004 is registered in Rack A05


def camera_video(path: Path) -> Path:
    maker = LabelMaker()
    problems = LabelProblems()
    labels = [maker.location(RACK_A, problems=problems)]
    labels += [
        maker.asset(t, model="Latitude 7440", location=RACK_A, problems=problems) for t in TAGS
    ]
    assert not problems.skipped
    write_y4m(path, label_images([lb for lb in labels if lb]))
    return path


def page_state(driver: webdriver.Chrome) -> dict[str, Any]:
    return dict(
        driver.execute_script(
            "const s = window.tagsweepScan; return {made: s.made.slice(), "
            "answers: Object.assign({}, s.answers), queued: s.queue().length, "
            "connection: document.getElementById('connection').textContent, "
            "status: document.getElementById('status').textContent};"
        )
    )


async def wait_until(
    what: str, check: Any, timeout: float = 90.0, driver: webdriver.Chrome | None = None
) -> None:
    """Wait for ``check()`` (a hang guard, not a time window); on a time-out say what the
    page had made, queued and been answered."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            state = await asyncio.to_thread(page_state, driver) if driver else {}
            raise AssertionError(f"timed out waiting for {what}; page: {state}")
        await asyncio.sleep(0.1)


async def stored_scan_ids(gw: Gateway) -> Counter[str]:
    store = gw.store
    assert store is not None
    rows = await store.call(store.query, "SELECT scan_id FROM scans WHERE scan_id IS NOT NULL")
    return Counter(str(r[0]) for r in rows)


@dataclass
class Rig:
    gw: Gateway
    port: int
    driver: webdriver.Chrome


@contextlib.asynccontextmanager
async def camera_rig(tmp_path: Path, short_dir: Path) -> AsyncIterator[Rig]:
    """A phones-only gateway with a session open on the test register, and a phone's
    browser whose camera plays the labels' video; the browser is not on any page yet."""
    register = write_register(tmp_path / "register.csv")
    video = camera_video(tmp_path / "labels.y4m")
    port = free_port()
    gw = phones_gateway(tmp_path, short_dir, port)
    attach_live_view(gw)
    driver = await asyncio.to_thread(start_phone_chromium, tmp_path / "profile", video)
    try:
        async with gw:
            await asyncio.to_thread(wait_for_port, port)
            await gw.start_session(operator="lead", scope=["DC1/Room 302"], expected=str(register))
            yield Rig(gw, port, driver)
    finally:
        await asyncio.to_thread(driver.quit)


async def open_camera(driver: webdriver.Chrome, url: str) -> None:
    await asyncio.to_thread(driver.get, url)
    await asyncio.to_thread(lambda: driver.find_element(By.ID, "start").click())


async def test_a_phone_camera_scans_labels_into_the_session(
    tmp_path: Path, short_dir: Path
) -> None:
    async with camera_rig(tmp_path, short_dir) as rig:
        gw, driver = rig.gw, rig.driver
        assert gw.session is not None
        sid = gw.session.session_id
        await open_camera(
            driver,
            f"http://127.0.0.1:{rig.port}/scan?device=phone-cam&operator=carol&decoder=server",
        )
        assert gw.live is not None

        async def all_seen() -> bool:
            snap = gw.live.progress(sid) if gw.live else {}
            missing = {a["asset_tag"] for a in snap["not_yet_seen"]}
            return not (set(TAGS) & missing)

        await wait_until("the three labelled assets to be seen", all_seen, driver=driver)
        await wait_until(
            "the page to show its location",
            lambda: asyncio.to_thread(lambda: driver.find_element(By.ID, "here").text == RACK_A),
        )
        await asyncio.to_thread(
            WebDriverWait(driver, 10).until,
            lambda d: d.find_element(By.ID, "seen-total").text == "3",
        )
        ticked = await asyncio.to_thread(lambda: driver.find_element(By.ID, "ticked").text)
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "camera-scan-phone.png"
        assert await asyncio.to_thread(driver.save_screenshot, str(shot))
        snap = gw.live.progress(sid)
        closed = await gw.stop_session()
    assert "AST-000001" in ticked
    assert "Latitude 7440" in ticked
    assert snap["location_context"] == RACK_A
    unexpected = {u["asset_tag"]: u["reason"] for u in snap["unexpected"]}
    assert unexpected.get("AST-000004") == "expected_elsewhere"  # scanned in Rack A04
    rows = {r["asset_tag"]: r for r in pq.read_table(closed.parquet).to_pylist()}
    assert set(TAGS) <= set(rows)
    for tag in TAGS:
        assert rows[tag]["method"] == "barcode"
        assert (rows[tag]["reader"], rows[tag]["operator"]) == ("phone:phone-cam", "carol")
        assert rows[tag]["location"] == RACK_A
    assert shot.stat().st_size > 10_000


async def test_cut_connection_mid_scan_loses_and_doubles_nothing(
    tmp_path: Path, short_dir: Path
) -> None:
    async with (
        camera_rig(tmp_path, short_dir) as rig,
        CutProxy(f"http://127.0.0.1:{rig.port}") as proxy,
    ):
        gw, driver = rig.gw, rig.driver
        await open_camera(driver, f"{proxy.url}/scan?device=phone-off&operator=dana&decoder=server")

        async def stored_at_least(n: int) -> bool:
            return sum((await stored_scan_ids(gw)).values()) >= n

        await wait_until("a first scan on the gateway", lambda: stored_at_least(1), driver=driver)
        # the connection drops after the gateway took a scan, before its answer came
        proxy.mode = "lose_answers"
        before = sum((await stored_scan_ids(gw)).values())
        await wait_until(
            "a scan taken but not answered", lambda: stored_at_least(before + 1), driver=driver
        )
        await wait_until(
            "the page to send it again",
            lambda: _true(proxy.delivered_unanswered >= 2),
            driver=driver,
        )
        # then nothing gets through at all, for a while
        proxy.mode = "down"

        async def shows_offline() -> bool:
            state = await asyncio.to_thread(page_state, driver)
            return bool(state["connection"] == "offline")

        await wait_until("the page to say it is offline", shows_offline, driver=driver)
        offline = await asyncio.to_thread(page_state, driver)
        assert offline["queued"] >= 1  # kept on the phone
        await wait_until(
            "the page to keep trying", lambda: _true(proxy.dropped >= 3), driver=driver
        )
        proxy.mode = "pass"

        async def drained() -> bool:
            state = await asyncio.to_thread(page_state, driver)
            return state["queued"] == 0 and len(state["made"]) >= 4

        await wait_until("every queued scan to be sent", drained, driver=driver)
        state = await asyncio.to_thread(page_state, driver)
        stored = await stored_scan_ids(gw)
    made = state["made"]
    assert len(set(made)) == len(made)
    assert set(stored) == set(made)  # nothing lost
    assert max(stored.values()) == 1  # nothing stored twice
    assert "duplicate" in state["answers"].values()  # a lost answer was re-sent
    assert proxy.delivered_unanswered >= 2
    assert proxy.dropped >= 3


async def test_scans_kept_on_the_phone_survive_a_reload(tmp_path: Path, short_dir: Path) -> None:
    """The phone's browser reloads (or is closed and opened again) while scans wait to be
    sent: they are still there, and go when the connection is back."""
    async with (
        camera_rig(tmp_path, short_dir) as rig,
        CutProxy(f"http://127.0.0.1:{rig.port}") as proxy,
    ):
        gw, driver = rig.gw, rig.driver
        url = f"{proxy.url}/scan?device=phone-rl&operator=erin&decoder=server"
        await open_camera(driver, url)

        async def stored_at_least(n: int) -> bool:
            return sum((await stored_scan_ids(gw)).values()) >= n

        await wait_until("a first scan on the gateway", lambda: stored_at_least(1), driver=driver)
        proxy.mode = "scans_down"

        async def queued_at_least(n: int) -> bool:
            return int((await asyncio.to_thread(page_state, driver))["queued"]) >= n

        await wait_until(
            "two scans waiting on the phone", lambda: queued_at_least(2), driver=driver
        )
        before = await asyncio.to_thread(page_state, driver)
        await asyncio.to_thread(driver.get, url)  # the camera is not started again
        await wait_until(
            "the reloaded page to hold the waiting scans",
            lambda: queued_at_least(before["queued"]),
            driver=driver,
        )
        restored = await asyncio.to_thread(
            driver.execute_script, "return window.tagsweepScan.queue().map((s) => s.id);"
        )
        dropped = proxy.dropped
        await wait_until("the page to try again", lambda: _true(proxy.dropped > dropped))
        proxy.mode = "pass"

        async def drained() -> bool:
            return int((await asyncio.to_thread(page_state, driver))["queued"]) == 0

        await wait_until("the waiting scans to be sent", drained, driver=driver)
        stored = await stored_scan_ids(gw)
    # every scan made before the reload, and every one the reloaded page found waiting
    assert set(before["made"]) <= set(stored)
    assert set(restored) <= set(stored)
    assert len(restored) >= 2
    assert max(stored.values()) == 1


async def _true(value: bool) -> bool:
    return value
