"""Headless Chromium for the HTML report's tests.

Debian's ``chromium`` and ``chromium-driver`` driven by Selenium, with both paths given explicitly
so that Selenium Manager never looks for (or downloads) a browser or a driver. The browser's
console and its network requests are collected from Chrome's logs (``goog:loggingPrefs``), so a
test can prove the report ran without errors and fetched nothing but itself.
"""

from __future__ import annotations

import base64
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# Flags that keep the browser quiet and local: no sandbox (CI runs as root), no background
# fetches (component updates, sync, field trials), a fixed window so screenshots are stable.
CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
    "--window-size=1400,1000",
)

INSTALL_HINT = "apt-get install -y chromium chromium-driver"
SELENIUM_MISSING = "selenium is not installed (pip install '.[test]')"


@dataclass(frozen=True, slots=True)
class ConsoleMessage:
    level: str      # SEVERE, WARNING, INFO, ...
    source: str     # console-api, javascript (uncaught errors), network, ...
    text: str


@dataclass(slots=True)
class Browser:
    """One Chromium behind a WebDriver; console messages and requested URLs pile up between
    ``reset()`` calls (Chrome hands each log entry out only once, so they are kept here)."""

    driver: Any     # selenium.webdriver.Chrome
    console: list[ConsoleMessage] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def open(self, path: Path) -> None:
        """Load a local file, forgetting what earlier pages logged."""
        self.reset()
        self.driver.get(path.resolve().as_uri())

    def reset(self) -> None:
        self.collect()
        self.console.clear()
        self.requests.clear()

    def collect(self) -> None:
        """Move Chrome's pending log entries into ``console`` and ``requests``."""
        for entry in self.driver.get_log("browser"):
            self.console.append(ConsoleMessage(entry["level"], entry.get("source", ""),
                                               entry["message"]))
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                self.requests.append(message["params"]["request"]["url"])

    def console_errors(self) -> list[ConsoleMessage]:
        """Errors logged so far: console.error, uncaught exceptions, failed loads."""
        self.collect()
        return [m for m in self.console if m.level == "SEVERE"]

    def requested_urls(self) -> list[str]:
        """Every URL the page asked for so far, itself included, in order."""
        self.collect()
        return list(self.requests)

    def screenshot_full_page(self, path: Path) -> bytes:
        """A PNG of the whole document, not just the window (DevTools' capture beyond the
        viewport); written to ``path`` and returned."""
        size = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"],
                     "scale": 1},
        })
        png = base64.b64decode(shot["data"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
        return png

    def quit(self) -> None:
        self.driver.quit()


def find_chromium() -> tuple[str, str]:
    """(browser, driver) paths, or a skip naming what is missing and how to install it."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        missing = " and ".join(n for n, p in (("chromium", browser), ("chromedriver", driver))
                               if p is None)
        pytest.skip(f"{missing} not installed ({INSTALL_HINT})")
    return browser, driver


def launch() -> Browser:
    """Start headless Chromium, or skip when Selenium or the browser is absent. A browser that
    is installed but fails to start is an error, not a skip."""
    webdriver = pytest.importorskip("selenium.webdriver", reason=SELENIUM_MISSING)
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = find_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SE_OFFLINE", "true")   # Selenium Manager, should it run, may not download
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    return Browser(driver)
