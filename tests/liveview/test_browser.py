"""Acceptance: a real headless Chromium (Debian's package, driven over WebDriver) opens
the live page during a simulated walk-through and sees the not-yet-seen count fall
without reloading. A screenshot of the page is kept in ``test-artifacts/``."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tagsweep.daemon.live import LiveView, live_count_from_register_file
from tagsweep.daemon.location import LocationAttributor
from tagsweep.daemon.web import LiveWebServer
from tests.liveview.walk import feed, make_scenario, steps

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def start_chromium(profile: Path) -> webdriver.Chrome:
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
        "--window-size=820,1180",  # a tablet held upright
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
