"""Acceptance: a real headless Chromium (Debian's package, driven over WebDriver) opens
the live page during a simulated walk-through and sees the not-yet-seen count fall
without reloading. A screenshot of the page is kept in ``test-artifacts/``."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tagsweep.config import parse_config
from tagsweep.daemon.liveview.count import live_count_from_register_file
from tagsweep.daemon.liveview.feed import attach_live_view
from tagsweep.daemon.liveview.server import LiveWebServer
from tagsweep.daemon.liveview.view import LiveView
from tagsweep.daemon.location import LocationAttributor
from tagsweep.daemon.supervisor import Gateway
from tagsweep.simulators.llrp import LlrpSimulator
from tagsweep.simulators.scanner import ScannerSimulator
from tagsweep.simulators.world import ReplayClock, scan_lines, tag_source
from tests.conftest import free_port
from tests.liveview.harness import config_data
from tests.liveview.walk import feed, make_scenario, steps

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def start_chromium(profile: Path, *extra_flags: str, window: str = "820,1180") -> webdriver.Chrome:
    """Headless Chromium (a tablet held upright unless ``window`` says otherwise)."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        raise RuntimeError(
            "chromium and chromium-driver are not installed: run `make test` "
            "(deploy/bootstrap.sh --system installs them)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",  # the test may run as root, where the sandbox cannot start
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        f"--window-size={window}",
        *extra_flags,
    ):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


def text_of(driver: webdriver.Chrome, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def wait_for_text(driver: webdriver.Chrome, element_id: str, wanted: str) -> None:
    WebDriverWait(driver, 10, poll_frequency=0.05).until(
        lambda d: text_of(d, element_id) == wanted,
        message=f"#{element_id} never showed {wanted!r}",
    )


async def test_page_follows_the_walk_without_reloading(tmp_path: Path) -> None:
    sc = make_scenario(tmp_path)
    view = LiveView()
    count = view.add(
        live_count_from_register_file("cs-browser", [sc.scope], sc.register, operator="jdoe")
    )
    view.set_source_state("handheld", "reader", "inventorying")
    walk = list(steps(sc.walk))
    attributor = LocationAttributor()
    async with LiveWebServer(view, port=0) as server:
        driver = await asyncio.to_thread(start_chromium, tmp_path / "chromium-profile")
        try:
            await asyncio.to_thread(driver.get, f"{server.url}/sessions/cs-browser")
            await asyncio.to_thread(wait_for_text, driver, "connection", "live")
            shown = [int(await asyncio.to_thread(text_of, driver, "nys-total"))]
            assert shown[0] == count.totals()["expected"]
            # a reload would wipe this; it must survive the whole walk
            await asyncio.to_thread(driver.execute_script, "window.loadedOnce = 'yes';")
            for step in walk:
                feed(count, step, attributor)
                view.count_reads("handheld", len(step.epcs))
                wanted = count.totals()["not_yet_seen"]
                await asyncio.to_thread(wait_for_text, driver, "nys-total", str(wanted))
                # the list follows the location context: the rack being counted
                await asyncio.to_thread(
                    wait_for_text, driver, "nys-shown", str(len(count.not_yet_seen(step.context)))
                )
                assert await asyncio.to_thread(text_of, driver, "context") == step.context
                shown.append(wanted)
            still_loaded = await asyncio.to_thread(
                driver.execute_script, "return window.loadedOnce;"
            )
            rows = await asyncio.to_thread(
                driver.find_elements, By.CSS_SELECTOR, "#not-yet-seen tr"
            )
            health = await asyncio.to_thread(text_of, driver, "health")
            ARTIFACTS.mkdir(exist_ok=True)
            screenshot = ARTIFACTS / "liveview-walkthrough.png"
            assert await asyncio.to_thread(driver.save_screenshot, str(screenshot))
        finally:
            await asyncio.to_thread(driver.quit)
    assert still_loaded == "yes"
    assert shown == sorted(shown, reverse=True)
    assert shown[-1] < shown[0]
    assert len(set(shown)) >= 4  # it fell several times during the walk, not once
    assert len(rows) == len(count.not_yet_seen(walk[-1].context))
    assert "handheld (reader): inventorying" in health
    assert screenshot.stat().st_size > 10_000


SPEED = 25.0


async def test_page_on_the_gateway_during_a_walk(tmp_path: Path, short_dir: Path) -> None:
    """The same, end to end: the gateway serves the page while a walk is replayed over
    LLRP and scanner sockets; the browser watches the count fall on its own."""
    sc = make_scenario(tmp_path, seed=11)
    walk = sc.walk
    driver = await asyncio.to_thread(start_chromium, tmp_path / "chromium-profile")
    try:
        # the walk begins once the session is open and the page is showing
        clock = ReplayClock(walk.start_us, speed=SPEED, wait_for_open=True)
        async with (
            LlrpSimulator(port=0, tag_source=tag_source(walk.reads, clock, batch_s=0.05)) as reader,
            ScannerSimulator(mode="tcp", script=scan_lines(walk.scans, clock)) as scanner,
        ):
            data = config_data(
                tmp_path,
                short_dir,
                readers=[
                    {
                        "name": "handheld",
                        "url": f"llrp://127.0.0.1:{reader.port}?antennas=1",
                        "keepalive_s": 1.0,
                    }
                ],
                scanners=[
                    {"name": "scanner", "url": scanner.url, "asset_tag_pattern": r"^AST-\d+$"}
                ],
                window_s=2.0 / SPEED,
            )
            data["web"] = {"enabled": True, "listen": f"127.0.0.1:{free_port()}"}
            gw = Gateway(parse_config(data), control_socket=False)
            feed = attach_live_view(gw)
            async with gw:
                session = await gw.start_session(
                    operator="jdoe", scope=[sc.scope], expected=str(sc.register)
                )
                assert feed.server is not None
                await asyncio.to_thread(
                    driver.get, f"{feed.server.url}/sessions/{session.session_id}"
                )
                await asyncio.to_thread(wait_for_text, driver, "connection", "live")
                await asyncio.to_thread(driver.execute_script, "window.loadedOnce = 'yes';")
                clock.open()
                end_wall_s = int(clock.to_wall(walk.end_us)) / 1e6
                shown: list[int] = []
                while time.time() < end_wall_s + 1.0:
                    value = int(await asyncio.to_thread(text_of, driver, "nys-total"))
                    if not shown or value != shown[-1]:
                        shown.append(value)
                    await asyncio.sleep(0.1)
                await gw.sync()
                final = gw.live.progress() if gw.live else {}
                await asyncio.to_thread(
                    wait_for_text, driver, "nys-total", str(final["totals"]["not_yet_seen"])
                )
                still_loaded = await asyncio.to_thread(
                    driver.execute_script, "return window.loadedOnce;"
                )
                context = await asyncio.to_thread(text_of, driver, "context")
                ARTIFACTS.mkdir(exist_ok=True)
                screenshot = ARTIFACTS / "liveview-gateway.png"
                assert await asyncio.to_thread(driver.save_screenshot, str(screenshot))
                await scanner.finished()
                await gw.stop_session()
                await asyncio.to_thread(wait_for_text, driver, "connection", "session closed")
    finally:
        await asyncio.to_thread(driver.quit)
    assert still_loaded == "yes"
    assert shown == sorted(shown, reverse=True), shown
    assert len(shown) >= 4, shown  # fell step by step while the walk went on
    # the register: the world's assets, less the unrecorded one, plus the ghost record
    assert shown[0] == len(sc.world.assets)
    assert context == walk.contexts[-1][1]
    assert screenshot.stat().st_size > 10_000
