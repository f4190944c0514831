"""The HTML report in a real browser: headless Chromium opens a report of the example captures
from disk and is driven like a user would (sort, filter, open a session's ladder and a
certificate), and nothing may log an error or fetch anything but the file itself.

The expectations come from the scan's own JSON and from the certificates' bytes, never from the
page: a report that renders the wrong session or the wrong thumbprint fails here.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import struct
from base64 import b64decode
from pathlib import Path

import pytest

from fastcap.cli import main
from fastcap.read.frametimes import frame_times

from .browser import Browser, launch

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = [ROOT / "examples" / "all-scenarios.pcapng",
            ROOT / "examples" / "exchange-online-no-client-cert.pcap"]
TRUST = ["--ca-file", str(ROOT / "examples" / "test-root.pem")]
SCREENSHOT = ROOT / "benchmarks" / "results" / "report.png"
WAIT = 10.0     # seconds a page gets to render what a click asked for

# "FRAME  +t s  LABEL" on every ladder arrow
ARROW_LABEL = re.compile(r"^\s*(\d+)\s+\+(\d+(?:\.\d+)?)\s*s\s+(.+?)\s*$", re.S)


# -- the browser ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chrome():
    browser = launch()
    yield browser
    browser.quit()


def _by():
    from selenium.webdriver.common.by import By

    return By


def wait_for(chrome: Browser, condition, what: str):
    """Poll `condition(driver)` until it is truthy; fail naming `what` otherwise."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(chrome.driver, WAIT, poll_frequency=0.05).until(condition)
    except TimeoutException:
        pytest.fail(f"page never showed {what} within {WAIT:.0f} s")


def assert_clean(chrome: Browser, page: Path) -> None:
    """No console errors and no request but the page itself (inline data: URLs are not
    fetches: they never leave the file)."""
    errors = chrome.console_errors()
    assert errors == [], "console errors:\n" + "\n".join(m.text for m in errors)
    others = [u for u in chrome.requested_urls()
              if u != page.resolve().as_uri() and not u.startswith("data:")]
    assert others == [], f"the page requested {others}"


# -- the harness itself ------------------------------------------------------------------------

def test_harness_catches_console_errors_and_requests(chrome: Browser, tmp_path: Path) -> None:
    """The checks below are only worth something if a faulty page would fail them: a page that
    logs an error, throws, loads an image and fetches a URL is caught on every count, and a
    quiet page is not blamed for anything."""
    noisy = tmp_path / "noisy.html"
    noisy.write_text(
        "<!doctype html><html><body>"
        "<script>console.error('harness-boom');"
        "fetch('http://127.0.0.1:9/harness-fetch').catch(() => {});</script>"
        "<script>throw new Error('harness-uncaught');</script>"
        "<img src='http://127.0.0.1:9/harness-img.png'>"
        "</body></html>")
    chrome.open(noisy)
    urls = wait_for(chrome, lambda d: (u := chrome.requested_urls())
                    and any(x.endswith("/harness-fetch") for x in u) and u,
                    "the fetch in the request log")
    assert noisy.resolve().as_uri() == urls[0]
    assert "http://127.0.0.1:9/harness-img.png" in urls
    texts = [m.text for m in chrome.console_errors()]
    assert any('"harness-boom"' in t for t in texts), texts
    assert any("Uncaught Error: harness-uncaught" in t for t in texts), texts
    with pytest.raises(AssertionError, match="harness-boom"):
        assert_clean(chrome, noisy)

    quiet = tmp_path / "quiet.html"
    quiet.write_text("<!doctype html><html><body><p id='p'>ok</p>"
                     "<script>console.log('fine'); document.getElementById('p').textContent='done'"
                     "</script></body></html>")
    chrome.open(quiet)
    assert chrome.driver.find_element(_by().ID, "p").text == "done"
    chrome.collect()
    assert [(m.level, m.source) for m in chrome.console] == [("INFO", "console-api")]
    assert_clean(chrome, quiet)
    assert chrome.requested_urls() == [quiet.resolve().as_uri()]
