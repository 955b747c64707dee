"""The real app in a real browser: `streamlit run app/main.py` driven by headless Chromium (playwright).

Uses Debian's /usr/bin/chromium (never downloads a browser). Changes the class and the SNR and
checks that the plotly figures follow. Screenshot: tmp_path/app.png; with GWVIZ_SCREENSHOT=1 also
docs/app-screenshot.png (or GWVIZ_SCREENSHOT=/some/path.png)."""
from __future__ import annotations

from conftest import o3_dir  # noqa: E402
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 120_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    port = free_port()
    env = {**os.environ, "GWVIZ_DATA_DIR": str(o3_dir()),
           "GWVIZ_GALLERY_DIR": str(tmp_path / "gallery")}
    log = open(tmp_path / "streamlit.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "app" / "main.py"), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"streamlit did not start:\n{(tmp_path / 'streamlit.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def main_title(page: Page) -> str:
    return page.locator(".js-plotly-plot .gtitle").first.text_content() or ""


def wait_title(page: Page, text: str) -> None:
    """Wait until the first figure's title contains ``text`` (Streamlit reruns asynchronously)."""
    expect(page.locator(".js-plotly-plot .gtitle").first).to_contain_text(text, timeout=TIMEOUT_MS)


def test_app_in_browser(server, tmp_path) -> None:
    assert Path(CHROMIUM).is_file(), f"{CHROMIUM} missing: apt-get install -y chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.goto(server, timeout=TIMEOUT_MS)
            wait_title(page, "Injected BBH (36.0 + 29.0 M☉), network SNR 12.0")
            expect(page.get_by_text("SIMULATED", exact=False).first).to_be_visible(timeout=TIMEOUT_MS)
            assert page.locator(".js-plotly-plot").count() == 2  # strain + CAM, probabilities
            before = main_title(page)

            # class: BBH -> BNS through the sidebar select box
            page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').filter(
                has=page.get_by_text("Class", exact=True)).click()
            page.get_by_role("option", name="BNS", exact=True).click()
            wait_title(page, "Injected BNS (1.5 + 1.3 M☉), network SNR 12.0")
            assert main_title(page) != before

            # SNR: 12 -> 14 with the keyboard on the slider (step 0.5)
            slider = page.locator('[data-testid="stSidebar"] [data-testid="stSlider"]').filter(
                has_text="Network SNR").get_by_role("slider")
            slider.focus()
            for _ in range(4):
                slider.press("ArrowRight")
            wait_title(page, "Injected BNS (1.5 + 1.3 M☉), network SNR 14.0")
            expect(page.locator('[data-testid="stMetricValue"]').filter(has_text="14.0").first).to_be_visible()
            page.wait_for_timeout(500)  # let plotly finish drawing before the screenshot

            shot = tmp_path / "app.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 20_000
            want = os.environ.get("GWVIZ_SCREENSHOT", "")
            if want:
                dest = Path(want) if want.endswith(".png") else REPO / "docs" / "app-screenshot.png"
                dest.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(dest), full_page=True)
            assert page.locator('[data-testid="stException"]').count() == 0  # no tracebacks
        finally:
            browser.close()
