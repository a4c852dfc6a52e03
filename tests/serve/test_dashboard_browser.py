"""The operator dashboard in real headless Chromium (Debian's chromium + chromium-driver) against a live uvicorn server:
every chart drew points, the decision log explains itself in plain words, the placement table has rows, the console
has no errors, and a new decision shows up without a reload (server-sent events)."""

from __future__ import annotations

import json
import re
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("selenium", reason="the browser test needs selenium (pip install selenium)")

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import TimeoutException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.slow

WAIT_S = 30
REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "dashboard.png"
MAX_SCREENSHOT_H = 3200
# every chart's svg and its data-points, by id (ids are KIND-slug(key), see dashboard.js)
CHARTS_JS = "return Object.fromEntries([...document.querySelectorAll('svg.chart')].map(s => [s.id, +s.dataset.points]));"


def _find(name: str, default: str) -> str | None:
    """``default`` when it exists, else ``name`` on PATH."""
    return default if Path(default).exists() else shutil.which(name)


CHROMIUM = _find("chromium", "/usr/bin/chromium")
CHROMEDRIVER = _find("chromedriver", "/usr/bin/chromedriver")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip("the browser test needs Chromium and its driver (apt-get install chromium chromium-driver)",
                allow_module_level=True)


def slug(s: str) -> str:
    """The dashboard's id slug: lower case, each run of characters outside [a-z0-9_-] replaced by '-'."""
    return re.sub(r"[^a-z0-9_-]+", "-", s.lower())


def _payload(url: str) -> dict[str, Any]:
    """The JSON the page renders, straight from the server."""
    with urllib.request.urlopen(url + "api/dashboard", timeout=WAIT_S) as r:
        return json.load(r)


def _expected_charts(data: dict[str, Any]) -> list[str]:
    """Ids of the charts that must draw points for this payload: three per controller job, one per zone."""
    jobs = [c["job"] for c in data.get("controllers") or []]
    zones = [z["zone"] for z in data.get("zones") or []]
    return ([f"chart-{kind}-{slug(j)}" for j in jobs for kind in ("state", "power", "signals")]
            + [f"chart-share-{slug(z)}" for z in zones])


@pytest.fixture
def driver() -> Iterator[webdriver.Chrome]:
    """Headless Chromium with its console log collected."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1800",
                "--hide-scrollbars", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        drv = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    except WebDriverException as exc:  # a broken install is a failure, not a skip: the binaries are there
        pytest.fail(f"headless Chromium did not start: {exc.msg}")
    drv.set_page_load_timeout(WAIT_S)
    drv.set_script_timeout(WAIT_S)
    try:
        yield drv
    finally:
        drv.quit()


def _open(drv: webdriver.Chrome, url: str, charts: list[str]) -> dict[str, int]:
    """Load the dashboard and wait (bounded) until every expected chart reports plotted points."""
    drv.get(url)
    points: dict[str, int] = {}

    def drawn(d: webdriver.Chrome) -> bool:
        points.update(d.execute_script(CHARTS_JS) or {})
        return all(points.get(c, 0) > 0 for c in charts)

    try:
        WebDriverWait(drv, WAIT_S, poll_frequency=0.2).until(drawn)
    except TimeoutException:
        pytest.fail(f"charts without points after {WAIT_S} s: want {charts}, page has {points}; console: {_severe(drv)}")
    return points


def _severe(drv: webdriver.Chrome) -> list[str]:
    """The browser console's SEVERE messages since the last call."""
    return [e["message"] for e in drv.get_log("browser") if e.get("level") == "SEVERE"]


def _screenshot(drv: webdriver.Chrome, *paths: Path) -> None:
    """The whole page (up to MAX_SCREENSHOT_H px tall) as PNG to each path."""
    height = int(drv.execute_script("return document.documentElement.scrollHeight") or 1800)
    chrome = int(drv.execute_script("return window.outerHeight - window.innerHeight") or 0)
    drv.set_window_size(1400, min(height + chrome, MAX_SCREENSHOT_H))
    png = drv.get_screenshot_as_png()
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)


def test_dashboard_renders_in_chromium(live_server: Any, driver: webdriver.Chrome, tmp_path: Path) -> None:
    """Charts for each job and zone, decisions with their sentences, the placement, no console errors; saves a screenshot."""
    data = _payload(live_server.url)
    assert data.get("controllers"), "the fixture's run directory should have a controller decision log"
    assert data.get("zones"), "the fixture's run directory should have a forecast store with zones"
    charts = _expected_charts(data)
    points = _open(driver, live_server.url, charts)
    assert all(points[c] > 0 for c in charts), points

    # the page re-renders on every server-sent update, so each read happens in one script, not across elements
    assert driver.execute_script("return document.getElementById('store-status').dataset.status;") == \
        data["store"]["status"]
    assert driver.execute_script("return document.getElementById('generated-at').innerText;") not in ("", "\u2013")
    for c in data["controllers"]:
        sentences = driver.execute_script(
            "return [...document.querySelectorAll('#' + CSS.escape(arguments[0]) + ' tbody td.sentence')]"
            ".map(td => td.innerText);", f"decision-log-{slug(c['job'])}")
        assert any("because" in s for s in sentences), f"no plain-words explanation in the log of {c['job']}: {sentences}"
        assert len(sentences) == len(c["decisions"])
        newest = c["decisions"][-1]["sentence"]
        assert " ".join(sentences[0].split()) == " ".join(newest.split()), "the log should list the newest decision first"
    cells = driver.execute_script("return [...document.querySelectorAll('#placement-table tbody tr')]"
                                  ".map(tr => tr.querySelectorAll('td').length);")
    assert len(cells) >= 1 and cells[0] > 0, "the placement table has no rows"

    _screenshot(driver, SCREENSHOT, tmp_path / "dashboard.png")
    assert SCREENSHOT.stat().st_size > 10_000
    assert _severe(driver) == []


def test_dashboard_updates_live(live_server: Any, driver: webdriver.Chrome) -> None:
    """A decision appended to the log appears on the open page without a reload."""
    append = getattr(live_server, "append_decision", None)
    if append is None:
        pytest.skip("the live_server fixture has no append_decision(state)")
    data = _payload(live_server.url)
    _open(driver, live_server.url, _expected_charts(data))
    driver.execute_script("window.__carbonsyncNoReload = true;")

    sentence = append("red")
    assert sentence and "because" in sentence

    def shown(d: webdriver.Chrome) -> bool:
        return bool(d.execute_script("return document.getElementById('controllers').textContent.includes(arguments[0]);",
                                     sentence))

    try:
        WebDriverWait(driver, WAIT_S, poll_frequency=0.2).until(shown)
    except TimeoutException:
        mode = driver.find_element("id", "connection").text
        pytest.fail(f"the new decision did not appear within {WAIT_S} s (updates: {mode}): {sentence!r}")
    assert driver.execute_script("return window.__carbonsyncNoReload === true;"), "the page reloaded"
    assert _severe(driver) == []
