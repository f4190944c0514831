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

from .browser import SELENIUM_MISSING, Browser, launch

pytest.importorskip("selenium", reason=SELENIUM_MISSING)
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# named from the project's root, as README's commands name them (the page shows these names)
EXAMPLES = [Path("examples/all-scenarios.pcapng"),
            Path("examples/exchange-online-no-client-cert.pcap")]
TRUST = ["--ca-file", "examples/test-root.pem"]
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


def wait_for(chrome: Browser, condition, what: str):
    """Poll `condition(driver)` until it is truthy; fail naming `what` otherwise."""
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
    assert chrome.driver.find_element(By.ID, "p").text == "done"
    chrome.collect()
    assert [(m.level, m.source) for m in chrome.console] == [("INFO", "console-api")]
    assert_clean(chrome, quiet)
    assert chrome.requested_urls() == [quiet.resolve().as_uri()]


# -- the report of the example captures --------------------------------------------------------

@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """`fastcap report` of both example captures, trusting the examples' test root."""
    out = tmp_path_factory.mktemp("report") / "report.html"
    # exit 1 as scan's: the examples hold problems
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        assert main(["report", *TRUST, *map(str, EXAMPLES), "-o", str(out)]) == 1
    assert out.stat().st_size > 0
    return out


@pytest.fixture(scope="module")
def scan_json() -> dict:
    """`fastcap scan --format json` of the same captures: what the page must show."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        assert main(["scan", "--format", "json", *TRUST, *map(str, EXAMPLES)]) == 1
    return json.loads(buf.getvalue())


@pytest.fixture(scope="module")
def scan(scan_json: dict) -> dict[tuple[str, int], dict]:
    """The scan's sessions by (file name, session number)."""
    return {(Path(f["path"]).name, s["number"]): s
            for f in scan_json["files"] for s in f["sessions"]}


def codes(session: dict) -> list[str]:
    return [v["code"] for v in session["verdicts"]]


def load(chrome: Browser, page: Path) -> None:
    chrome.open(page)
    wait_for(chrome, lambda d: d.find_elements(By.CSS_SELECTOR, "table#sessions tr.session"),
             "the session rows")


def keys(chrome: Browser) -> list[str]:
    """The sortable columns' keys, in the table's column order."""
    return [th.get_attribute("data-key") for th in
            chrome.driver.find_elements(By.CSS_SELECTOR, "table#sessions th[data-key]")]


def column(chrome: Browser, *words: str) -> str:
    """The key of the first column whose key or heading mentions one of `words`."""
    for th in chrome.driver.find_elements(By.CSS_SELECTOR, "table#sessions th[data-key]"):
        name = f"{th.get_attribute('data-key')} {th.text}".lower()
        if any(w in name for w in words):
            return th.get_attribute("data-key")
    pytest.fail(f"no column for {words} among {keys(chrome)}")


# One round trip each (a page holds hundreds of rows): rows that are laid out, i.e. shown.
VISIBLE_ROWS = """return Array.from(document.querySelectorAll("table#sessions tr.session"))
    .filter(r => r.getClientRects().length > 0)"""


def visible_rows(chrome: Browser) -> list:
    return chrome.driver.execute_script(VISIBLE_ROWS)


def row_ids(chrome: Browser) -> list[tuple[str, int]]:
    """(file name, session number) of each shown row, top to bottom."""
    pairs = chrome.driver.execute_script(
        VISIBLE_ROWS + ".map(r => [r.dataset.file, r.dataset.number])")
    return [(Path(f).name, int(n)) for f, n in pairs]


def cells(chrome: Browser, key: str) -> list[str]:
    """The shown rows' text in column `key`: the header cells and the row cells line up."""
    return chrome.driver.execute_script(
        "const at = Array.from(document.querySelectorAll('table#sessions thead th'))"
        ".findIndex(th => th.dataset.key === arguments[0]);"
        + VISIBLE_ROWS + ".map(r => r.cells[at].innerText)", key)


def session_row(chrome: Browser, file: str, number: int):
    css = f'table#sessions tr.session[data-number="{number}"][data-file$="{file}"]'
    return chrome.driver.find_element(By.CSS_SELECTOR, css)


def open_session(chrome: Browser, file: str, number: int):
    """Click a session's row and return its detail row once its ladder is drawn."""
    session_row(chrome, file, number).click()

    def drawn(d):
        for tr in d.find_elements(By.CSS_SELECTOR, "table#sessions tr.detail"):
            if tr.is_displayed() and tr.find_elements(By.CSS_SELECTOR,
                                                      "div.ladder > svg g.arrow"):
                return tr
        return None

    return wait_for(chrome, drawn, f"the ladder of {file} #{number}")


def arrows(detail) -> list[dict]:
    """Each arrow's attributes and its label "FRAME  +t s  LABEL", taken apart."""
    out = []
    for g in detail.find_elements(By.CSS_SELECTOR, "div.ladder > svg g.arrow"):
        text = " ".join(t.get_attribute("textContent")
                        for t in g.find_elements(By.CSS_SELECTOR, "text"))
        m = ARROW_LABEL.match(text)
        assert m, f"arrow label {text!r} is not 'FRAME  +t s  LABEL'"
        out.append({"frame": int(g.get_attribute("data-frame")), "dir": g.get_attribute("data-dir"),
                    "kind": g.get_attribute("data-kind"),
                    "bad": "bad" in (g.get_attribute("class") or "").split(),
                    "label_frame": int(m[1]), "t": float(m[2]), "label": m[3]})
    return out


def test_report_shows_summary_problems_timeline_and_every_session(
        chrome: Browser, report: Path, scan_json: dict, scan: dict) -> None:
    load(chrome, report)
    find = chrome.driver.find_element
    summary = find(By.CSS_SELECTOR, "header#summary").text
    for path in EXAMPLES:
        assert path.name in summary
    import fastcap

    assert fastcap.__version__ in summary
    # the triage groups, as many and in the same order as the JSON's
    problems = chrome.driver.find_elements(By.CSS_SELECTOR, "section#problems tr.problem")
    groups = scan_json["problems"]
    assert len(problems) == len(groups) > 0
    for row, group in zip(problems, groups, strict=True):
        assert row.is_displayed()
        assert group["code"] in row.text and group["server"] in row.text
        assert str(group["sessions"]) in row.text
        for sample in group["samples"]:
            assert f"#{sample['session']}" in row.text
    # the empty client Certificate is the examples' headline problem, in both files
    assert any("no_client_cert" in p.text for p in problems)
    assert find(By.CSS_SELECTOR, "svg#timeline").is_displayed()
    assert sorted(row_ids(chrome)) == sorted(scan)
    assert_clean(chrome, report)


def test_a_problem_sample_opens_its_session(chrome: Browser, report: Path,
                                           scan_json: dict) -> None:
    """Clicking a sample session number in the problems table opens that session's row."""
    load(chrome, report)
    group = scan_json["problems"][0]
    want = (Path(group["samples"][-1]["file"]).name, group["samples"][-1]["session"])
    row = chrome.driver.find_elements(By.CSS_SELECTOR, "section#problems tr.problem")[0]
    row.find_elements(By.CSS_SELECTOR, ".sample")[-1].click()
    opened = wait_for(chrome, lambda d: d.execute_script(
        "const tr = Array.from(document.querySelectorAll('table#sessions tr.detail'))"
        ".find(t => t.getClientRects().length > 0 && t.querySelector('div.ladder svg'));"
        "const s = tr && tr.previousElementSibling;"
        "return s ? [s.dataset.file, s.dataset.number] : null;"), "a session opened")
    assert (Path(opened[0]).name, int(opened[1])) == want
    assert_clean(chrome, report)


def test_an_ordinary_server_name_keeps_its_line(chrome: Browser, report: Path,
                                                scan_json: dict) -> None:
    """The problems' server names of the examples (39 characters) are not broken in the middle
    of a word: each fits on one line of its cell."""
    load(chrome, report)
    got = chrome.driver.execute_script(
        "return Array.from(document.querySelectorAll('section#problems tr.problem')).map(tr => {"
        "  const td = tr.cells[4], r = document.createRange();"
        "  const text = document.createTreeWalker(td, NodeFilter.SHOW_TEXT).nextNode();"
        "  r.selectNodeContents(text);"
        "  return [td.textContent.trim(), r.getClientRects().length]; })")
    assert [name for name, _ in got] == [g["server"] for g in scan_json["problems"]]
    assert all(lines == 1 for _, lines in got), got


def test_table_sorts_by_a_clicked_column(chrome: Browser, report: Path, scan: dict) -> None:
    load(chrome, report)
    key = column(chrome, "client")
    th = chrome.driver.find_element(By.CSS_SELECTOR, f'table#sessions th[data-key="{key}"]')
    before = cells(chrome, key)
    th.click()
    wait_for(chrome, lambda d: th.get_attribute("aria-sort") == "ascending", "aria-sort=ascending")
    up = cells(chrome, key)
    assert sorted(up) == sorted(before)
    # client addresses here are 10.20.30.41..49 and one more: text order is address order
    assert up == sorted(up), up
    assert sorted(row_ids(chrome)) == sorted(scan)     # no row lost or doubled
    th.click()
    wait_for(chrome, lambda d: th.get_attribute("aria-sort") == "descending",
             "aria-sort=descending")
    assert cells(chrome, key) == up[::-1]
    for other in chrome.driver.find_elements(By.CSS_SELECTOR, "table#sessions th[data-key]"):
        if other.get_attribute("data-key") != key:
            assert other.get_attribute("aria-sort") in (None, "none")
    assert_clean(chrome, report)


def tab_to(chrome: Browser, found, what: str, presses: int = 60):
    """Press Tab from the page's start until `found(active element)` holds: the element a
    keyboard reaches, or a failure naming `what`."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    chrome.driver.execute_script("document.activeElement && document.activeElement.blur()")
    for _ in range(presses):
        ActionChains(chrome.driver).send_keys(Keys.TAB).perform()
        active = chrome.driver.switch_to.active_element
        if found(active):
            return active
    pytest.fail(f"Tab never reached {what}")


def test_the_keyboard_sorts_opens_sessions_and_follows_samples(chrome: Browser, report: Path,
                                                               scan: dict,
                                                               scan_json: dict) -> None:
    """Without a mouse: Tab reaches a column heading (Enter sorts by it), a session row
    (Enter opens its ladder, Space closes it) and a problem's sample (Enter opens that
    session and puts the focus on its row)."""
    from selenium.webdriver.common.keys import Keys

    load(chrome, report)
    key = column(chrome, "client")
    th = chrome.driver.find_element(By.CSS_SELECTOR, f'table#sessions th[data-key="{key}"]')
    tab_to(chrome, lambda e: e.find_elements(By.XPATH, f'ancestor::th[@data-key="{key}"]'),
           f"the {key} heading").send_keys(Keys.ENTER)
    wait_for(chrome, lambda d: th.get_attribute("aria-sort") == "ascending", "aria-sort=ascending")
    assert cells(chrome, key) == sorted(cells(chrome, key))
    first = visible_rows(chrome)[0]
    want = (Path(first.get_attribute("data-file")).name, int(first.get_attribute("data-number")))
    row = tab_to(chrome, lambda e: e.tag_name == "tr" and "session" in e.get_attribute("class"),
                 "a session row")
    assert (Path(row.get_attribute("data-file")).name, int(row.get_attribute("data-number"))) \
        == want
    row.send_keys(Keys.ENTER)
    detail = wait_for(chrome, lambda d: d.find_elements(
        By.CSS_SELECTOR, "table#sessions tr.detail div.ladder svg g.arrow"), "the opened ladder")
    assert row.get_attribute("aria-expanded") == "true"
    frames = sorted(int(g.get_attribute("data-frame")) for g in detail)
    assert scan[want]["first_frame"] <= frames[0] <= frames[-1] <= scan[want]["last_frame"]
    chrome.driver.switch_to.active_element.send_keys(" ")
    wait_for(chrome, lambda d: not d.find_elements(By.CSS_SELECTOR, "table#sessions tr.detail"),
             "the ladder closed again")
    assert row.get_attribute("aria-expanded") == "false"
    sample = scan_json["problems"][0]["samples"][0]
    tab_to(chrome, lambda e: "sample" in (e.get_attribute("class") or ""),
           "a problem's sample").send_keys(Keys.ENTER)
    focused = wait_for(chrome, lambda d: d.execute_script(
        "const a = document.activeElement;"
        "return a.matches('tr.session.open') && a.nextElementSibling.matches('tr.detail')"
        " ? [a.dataset.file, a.dataset.number] : null;"), "the sample's session, focused")
    assert (Path(focused[0]).name, int(focused[1])) == (Path(sample["file"]).name,
                                                         sample["session"])
    assert_clean(chrome, report)


def test_with_several_files_a_column_names_each_sessions_file(chrome: Browser, report: Path,
                                                              scan: dict) -> None:
    """Both example captures have a session #1: the file column tells them apart, and sorts."""
    load(chrome, report)
    assert column(chrome, "file") == "file"
    files = cells(chrome, "file")
    assert [Path(f).name for f in files] == [f for f, _n in row_ids(chrome)]
    assert {Path(f).name for f in files} == {p.name for p in EXAMPLES}
    th = chrome.driver.find_element(By.CSS_SELECTOR, 'table#sessions th[data-key="file"]')
    th.click()
    wait_for(chrome, lambda d: th.get_attribute("aria-sort") == "ascending", "sorted by file")
    assert cells(chrome, "file") == sorted(files) and sorted(row_ids(chrome)) == sorted(scan)
    assert_clean(chrome, report)


def test_table_filters_on_typed_text(chrome: Browser, report: Path, scan: dict) -> None:
    load(chrome, report)
    box = chrome.driver.find_element(By.CSS_SELECTOR, "input#filter")
    want = sorted(k for k, s in scan.items() if "no_client_cert" in codes(s))
    assert len(want) == 2                     # one in each example capture
    box.send_keys("no_client_cert")
    wait_for(chrome, lambda d: sorted(row_ids(chrome)) == want,
             f"only the rows {want}")
    box.clear()
    box.send_keys("10.20.30.45")
    wait_for(chrome, lambda d: row_ids(chrome) == [("all-scenarios.pcapng", 5)],
             "only the row of client 10.20.30.45")
    box.clear()
    box.send_keys("no-such-text-anywhere")
    wait_for(chrome, lambda d: visible_rows(chrome) == [], "no row")
    box.clear()     # clearing fires no input event: send one, as a user's deleting would
    chrome.driver.execute_script(
        "arguments[0].dispatchEvent(new Event('input', {bubbles: true}))", box)
    wait_for(chrome, lambda d: len(visible_rows(chrome)) == len(scan), "every row again")
    assert_clean(chrome, report)


def test_ladder_of_the_empty_client_certificate(chrome: Browser, report: Path,
                                                scan: dict) -> None:
    """Session 2 of all-scenarios: the server asks for a certificate (frame 40) and the client
    answers with an empty Certificate (frame 41) - the arrows tell that story in order."""
    file, number = "all-scenarios.pcapng", 2
    session = scan[(file, number)]
    load(chrome, report)
    got = arrows(open_session(chrome, file, number))

    for a in got:
        assert a["label_frame"] == a["frame"]
        assert a["dir"] in ("c2s", "s2c") and a["kind"] in ("smtp", "tls", "alert", "log")
        assert session["first_frame"] <= a["frame"] <= session["last_frame"]
    frames = [a["frame"] for a in got]
    assert frames == sorted(frames), "arrows out of capture order"
    # the times are the frames' capture times, relative to the session's first frame
    times = frame_times(ROOT / EXAMPLES[0], frames)
    for a in got:
        want = (times[a["frame"]] - session["first_ts_ns"]) / 1e9
        assert a["t"] == pytest.approx(want, abs=1e-3), a

    def first(pred, what):
        hits = [i for i, a in enumerate(got) if pred(a)]
        assert hits, f"no arrow for {what} in {[a['label'] for a in got]}"
        return hits[0]

    smtp = session["smtp"]
    ehlo = first(lambda a: a["label"].startswith("EHLO ") and a["dir"] == "c2s", "EHLO")
    starttls = first(lambda a: a["label"].startswith("STARTTLS") and a["dir"] == "c2s",
                     "STARTTLS")
    hello = first(lambda a: "ClientHello" in a["label"], "ClientHello")
    server_hello = first(lambda a: "ServerHello" in a["label"] and "Done" not in a["label"],
                         "ServerHello")
    request = first(lambda a: "CertificateRequest" in a["label"], "CertificateRequest")
    server_cert = first(lambda a: a["label"].startswith("Certificate ") and a["dir"] == "s2c",
                        "the server's Certificate")
    client_cert = first(lambda a: a["label"].startswith("Certificate") and a["dir"] == "c2s",
                        "the client's Certificate")
    assert ehlo < starttls < hello < server_hello < server_cert < request < client_cert
    assert got[ehlo]["frame"] == smtp["ehlo_frame"] and got[ehlo]["kind"] == "smtp"
    assert mail_name(got[ehlo]["label"]) == smtp["ehlo_name"]
    assert got[starttls]["frame"] == smtp["starttls_command_frame"]
    tls = session["tls"]
    assert got[hello]["frame"] == tls["client_hello"]["frame"]
    assert got[hello]["dir"] == "c2s" and got[hello]["kind"] == "tls"
    assert got[server_hello]["frame"] == tls["server_hello"]["frame"]
    assert got[server_hello]["dir"] == "s2c"
    assert got[request]["frame"] == tls["certificate_request"]["frame"]
    leaf = session["server_cert_check"]["certs"][0]
    assert leaf["subject_cn"] in got[server_cert]["label"]
    # the empty Certificate is the one bad handshake message, at the frame the verdict names
    verdict = next(v for v in session["verdicts"] if v["code"] == "no_client_cert")
    assert got[client_cert]["frame"] == verdict["frame"] == 41
    assert got[client_cert]["bad"] and "empty" in got[client_cert]["label"].lower()
    assert [a for a in got if a["bad"]] == [got[client_cert]] + [
        a for a in got if a["kind"] == "alert"]
    assert not any(a["bad"] for a in got[:client_cert] if a["kind"] == "smtp")
    assert_clean(chrome, report)


def mail_name(label: str) -> str:
    return label.split()[1]


def test_ladder_marks_alerts_and_failed_replies(chrome: Browser, report: Path,
                                                scan: dict) -> None:
    file = "all-scenarios.pcapng"
    load(chrome, report)
    # session 4: the server rejects the expired client certificate with a fatal alert
    got = arrows(open_session(chrome, file, 4))
    verdict = next(v for v in scan[(file, 4)]["verdicts"] if v["code"] == "tls_alert")
    alert = [a for a in got if a["kind"] == "alert"]
    assert [a["frame"] for a in alert] == [verdict["frame"]]
    assert alert[0]["bad"] and alert[0]["dir"] == "s2c"
    assert "certificate_expired" in alert[0]["label"]
    # session 7: STARTTLS refused (454) and relay denied (550); the 2xx replies are fine
    load(chrome, report)
    got = arrows(open_session(chrome, file, 7))
    replies = {a["frame"]: a for a in got if a["dir"] == "s2c" and a["kind"] == "smtp"}
    want_bad = {r["frame"] for r in scan[(file, 7)]["smtp"]["replies"] if r["code"] >= 400}
    assert want_bad and {f for f, a in replies.items() if a["bad"]} == want_bad
    assert any(a["label"].startswith("454") for a in replies.values())
    assert any(a["label"].startswith("550") for a in replies.values())
    assert all(a["label"][:1] in "45" for a in replies.values() if a["bad"])
    assert_clean(chrome, report)


def test_certificate_details_open_in_place(chrome: Browser, report: Path, scan: dict) -> None:
    file, number = "all-scenarios.pcapng", 2
    session = scan[(file, number)]
    der = b64decode(session["tls"]["server_certificate"]["certificates"][0]["der_b64"])
    sha1 = hashlib.sha1(der).hexdigest().upper()
    sha256 = hashlib.sha256(der).hexdigest()
    leaf = session["server_cert_check"]["certs"][0]
    load(chrome, report)
    detail = open_session(chrome, file, number)
    found = [d for d in detail.find_elements(By.CSS_SELECTOR, "details.cert[data-sha1]")
             if hexof(d.get_attribute("data-sha1")) == sha1.lower()]
    assert len(found) == 1, "the server's certificate has no details.cert of its own"
    cert = found[0]
    assert cert.get_attribute("open") is None
    cert.find_element(By.CSS_SELECTOR, "summary").click()
    wait_for(chrome, lambda d: cert.get_attribute("open") is not None, "the certificate open")
    text = cert.text
    assert leaf["subject_cn"] in text
    assert leaf["issuer_cn"] in text
    for name in leaf["san_dns"]:
        assert name in text
    assert leaf["not_before"][:10] in text and leaf["not_after"][:10] in text
    # SHA-1 as Windows' thumbprint (one run of upper-case hex) and the SHA-256 in any layout
    assert sha1 in text.replace(" ", "").replace(":", "").upper()
    assert sha256 in hexof(text)
    assert_clean(chrome, report)


def test_every_path_error_shows_in_openssls_order(chrome: Browser, tmp_path: Path) -> None:
    """A client chain failing two of OpenSSL's checks (a name outside the root's permitted
    subtrees, serverAuth only): its leaf's panel names both, as `openssl verify` printed them."""
    from .openssl_oracle import OPENSSL
    from .two_path_errors import two_path_errors

    if OPENSSL is None:
        pytest.skip("openssl command not installed")
    two = two_path_errors(tmp_path)
    out = tmp_path / "two.html"
    assert main(["report", "--ca-file", str(two.ca_file), str(two.capture), "-o", str(out)]) == 1
    load(chrome, out)
    detail = open_session(chrome, two.capture.name, 1)
    for cert in detail.find_elements(By.CSS_SELECTOR, "details.cert"):
        cert.find_element(By.CSS_SELECTOR, "summary").click()
    shown = chrome.driver.execute_script(
        "return Array.from(arguments[0].querySelectorAll('details.cert dt'))"
        ".filter(dt => dt.textContent === 'path (OpenSSL)')"
        ".map(dt => dt.nextElementSibling.textContent)", detail)
    want = "invalid: " + "; ".join(f"{e} at depth {d}" for e, d in two.said)
    assert want in shown, shown
    assert_clean(chrome, out)


def hexof(text: str) -> str:
    return re.sub(r"[^0-9a-f]", "", text.lower())


def test_screenshot_of_an_opened_session(chrome: Browser, report: Path) -> None:
    """The whole page with the empty-Certificate session and a certificate open: README shows
    it and CI keeps it."""
    load(chrome, report)
    detail = open_session(chrome, "all-scenarios.pcapng", 2)
    detail.find_element(By.CSS_SELECTOR, "details.cert summary").click()
    png = chrome.screenshot_full_page(SCREENSHOT)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and SCREENSHOT.read_bytes() == png
    width, height = struct.unpack(">II", png[16:24])
    page_height = chrome.driver.execute_script(
        "return document.documentElement.scrollHeight")
    assert width >= 1000 and height >= page_height - 1
    assert_clean(chrome, report)


# -- a crowd of sessions, one of them hostile ----------------------------------------------------

CROWD = 450
HOSTILE_CLIENT = "10.1.250.250"
HOSTILE_EHLO = ("<img/src=x/onerror=pwned=1>\"'\u202e"
                "</script><script>pwned=2</script>")
HOSTILE_CN = "<script>pwned=3</script>\" onmouseover='pwned=4' \u200fx"
HOSTILE_BANNER = "220 \x1b[31m<b>red</b> <svg/onload=pwned=5> ready"


def crowd_client(i: int) -> str:
    """Three digits in each varying octet, so text order is address order."""
    return f"10.1.{100 + i // 100}.{100 + i % 100}"


@pytest.fixture(scope="module")
def crowd(tmp_path_factory) -> Path:
    """A report of CROWD plaintext sessions (more than a page of rows) and, last, one TLS
    session whose EHLO, banner and client certificate subject are built to break out of HTML:
    from real OpenSSL handshakes (fastcap_synth)."""
    import datetime as dt
    import time

    from fastcap_synth.certs import make_leaf
    from fastcap_synth.scenarios import make_pki, scenario
    from fastcap_synth.smtpgen import SmtpScenario, smtp_records
    from fastcap_synth.tlsgen import client_context
    from fastcap_synth.writers import write_pcap

    start = time.time_ns() - 3600 * 10**9
    records = []
    for i in range(CROWD):
        records += smtp_records(SmtpScenario(client_ip=crowd_client(i), client_port=40000 + i,
                                             starttls_offered=False, start_ns=start + i * 10**8))
    pki = make_pki(dt.datetime.now(dt.UTC))
    hostile = make_leaf(pki.intermediate, HOSTILE_CN, sans=["mail.fabrikam.com"])
    records += smtp_records(scenario(
        "ok_client_cert", pki, client_cert=hostile, client_ctx=client_context(cert=hostile),
        ehlo_name=HOSTILE_EHLO, banner=HOSTILE_BANNER, client_ip=HOSTILE_CLIENT,
        client_port=40000 + CROWD, start_ns=start + CROWD * 10**8))
    records.sort(key=lambda r: r.ts_ns)
    where = tmp_path_factory.mktemp("crowd")
    write_pcap(where / "crowd.pcap", records)
    out = where / "crowd.html"
    assert main(["report", str(where / "crowd.pcap"), "-o", str(out)]) == 1   # problems found
    return out


def test_a_large_table_renders_a_page_and_sorts_and_filters_all_sessions(
        chrome: Browser, crowd: Path) -> None:
    """More sessions than one page: the page draws only some rows, yet sorting and filtering
    work on every session, not just the drawn ones."""
    everyone = [crowd_client(i) for i in range(CROWD)] + [HOSTILE_CLIENT]
    load(chrome, crowd)
    drawn = chrome.driver.find_elements(By.CSS_SELECTOR, "table#sessions tr.session")
    assert 0 < len(drawn) < len(everyone)
    key = column(chrome, "client")
    th = chrome.driver.find_element(By.CSS_SELECTOR, f'table#sessions th[data-key="{key}"]')
    th.click()
    wait_for(chrome, lambda d: th.get_attribute("aria-sort") == "ascending", "aria-sort=ascending")
    up = [c.split(":")[0] for c in cells(chrome, key)]
    assert up == sorted(everyone)[:len(up)]
    th.click()
    wait_for(chrome, lambda d: th.get_attribute("aria-sort") == "descending",
             "aria-sort=descending")
    down = [c.split(":")[0] for c in cells(chrome, key)]
    assert down == sorted(everyone, reverse=True)[:len(down)]
    assert down[0] == HOSTILE_CLIENT
    # a session far beyond the first page is one filter away
    box = chrome.driver.find_element(By.CSS_SELECTOR, "input#filter")
    box.send_keys(crowd_client(CROWD - 7) + ":")
    wait_for(chrome, lambda d: [c.split(":")[0] for c in cells(chrome, key)]
             == [crowd_client(CROWD - 7)], f"only {crowd_client(CROWD - 7)}")
    assert_clean(chrome, crowd)


def test_hostile_packet_strings_are_shown_as_text_and_never_run(chrome: Browser,
                                                                crowd: Path) -> None:
    load(chrome, crowd)
    driver = chrome.driver
    driver.find_element(By.CSS_SELECTOR, "input#filter").send_keys(HOSTILE_CLIENT)
    wait_for(chrome, lambda d: len(visible_rows(chrome)) == 1, "the hostile session's row")
    row = visible_rows(chrome)[0]
    assert HOSTILE_CLIENT in row.text
    ehlo = cells(chrome, column(chrome, "ehlo"))[0]
    assert "<img/src=x/onerror=pwned=1>" in ehlo
    assert "</script><script>pwned=2</script>" in ehlo
    number = int(row.get_attribute("data-number"))
    detail = open_session(chrome, "crowd.pcap", number)
    labels = [a["label"] for a in arrows(detail)]
    assert any("</script><script>pwned=2</script>" in x for x in labels), labels
    assert any("<svg/onload=pwned=5>" in x for x in labels), labels
    certs = detail.find_elements(By.CSS_SELECTOR, "details.cert")
    assert certs
    for cert in certs:
        cert.find_element(By.CSS_SELECTOR, "summary").click()
    # the subject as RFC 4514 writes it (backslash before < > "), the backslashes shown escaped
    assert any("<script>pwned=3</script>\" onmouseover='pwned=4'" in c.text.replace("\\", "")
               for c in certs), [c.text[:80] for c in certs]
    # nothing ran, nothing became markup, the escape character is shown escaped
    assert driver.execute_script("return window.pwned") is None
    assert driver.execute_script(
        "return document.querySelectorAll('[onerror],[onload],[onmouseover],img,b').length") == 0
    # the page's own scripts only (the embedded JSON escapes "<", so the file's count is theirs)
    own = crowd.read_text(encoding="utf-8").count("<script")
    assert len(driver.find_elements(By.TAG_NAME, "script")) == own
    body = driver.execute_script("return document.body.textContent")
    assert "\x1b" not in body and "\\x1b[31m<b>red</b>" in body
    assert_clean(chrome, crowd)


LONG_HOST = ".".join(["a" * 60] * 40)        # a banner's host name of 2,439 characters
LONG_EHLO = "e" * 3000


@pytest.fixture(scope="module")
def long_names(tmp_path_factory) -> Path:
    """A report of one session whose banner host (the problems' server) and EHLO name are
    thousands of characters without a space (fastcap_synth: a real OpenSSL handshake)."""
    import datetime as dt
    import time

    from fastcap_synth.scenarios import make_pki, scenario
    from fastcap_synth.smtpgen import smtp_records
    from fastcap_synth.writers import write_pcap

    pki = make_pki(dt.datetime.now(dt.UTC))
    where = tmp_path_factory.mktemp("long")
    write_pcap(where / "long.pcap", smtp_records(scenario(
        "no_client_cert", pki, ehlo_name=LONG_EHLO, banner=f"220 {LONG_HOST} ESMTP", sni=None,
        start_ns=time.time_ns() - 3600 * 10**9)))
    out = where / "long.html"
    assert main(["report", str(where / "long.pcap"), "-o", str(out)]) == 1
    return out


def test_long_packet_names_wrap_or_scroll_in_their_box(chrome: Browser,
                                                       long_names: Path) -> None:
    """The page stays about as wide as the window: the problems' server name wraps, and the
    opened ladder (an EHLO label of 3,000 characters) scrolls inside its own box; all the text
    is still there."""
    load(chrome, long_names)
    driver = chrome.driver
    wide = "return document.documentElement.scrollWidth / window.innerWidth"
    server = driver.find_elements(By.CSS_SELECTOR, "section#problems tr.problem td")[4]
    assert server.get_attribute("textContent") == LONG_HOST
    assert driver.execute_script(wide) < 1.5
    detail = open_session(chrome, "long.pcap", 1)
    assert any(a["label"] == "EHLO " + LONG_EHLO for a in arrows(detail))
    assert driver.execute_script(wide) < 1.5
    box = detail.find_element(By.CSS_SELECTOR, "div.ladder")
    assert driver.execute_script("return arguments[0].scrollWidth > arguments[0].clientWidth",
                                 box)
    assert_clean(chrome, long_names)


def test_a_frame_stamped_before_the_sessions_start_reads_minus(chrome: Browser,
                                                               tmp_path: Path) -> None:
    """A clock stepped back: frame 10 of the example stamped 5 s earlier than it was. Its
    arrows read "-4.855000 s" (the frame's time minus the session's start, as the frame
    times say), never "+-4.855000 s"; the other arrows keep their "+"."""
    src = ROOT / "examples" / "exchange-online-no-client-cert.pcap"
    data = bytearray(src.read_bytes())
    off, frame = 24, 1
    while off + 16 <= len(data):
        if frame == 10:
            struct.pack_into("<I", data, off, struct.unpack_from("<I", data, off)[0] - 5)
        off += 16 + struct.unpack_from("<I", data, off + 8)[0]
        frame += 1
    capture = tmp_path / "back.pcap"
    capture.write_bytes(bytes(data))
    out = tmp_path / "back.html"
    assert main(["report", *TRUST, str(capture), "-o", str(out)]) in (0, 1)
    times = frame_times(capture, range(1, frame))
    load(chrome, out)
    detail = open_session(chrome, "back.pcap", 1)
    labels = {}
    for g in detail.find_elements(By.CSS_SELECTOR, "div.ladder > svg g.arrow"):
        labels.setdefault(int(g.get_attribute("data-frame")), g.get_attribute("textContent"))
    start = min(t for f, t in times.items() if f != 10)
    back = (times[10] - start) / 1e9
    assert back < 0
    assert re.match(rf"^10\s+-{-back:.6f} s ", labels[10]), labels[10]
    assert all(re.match(rf"^{f}\s+\+\d", text) for f, text in labels.items() if f != 10), labels
    assert_clean(chrome, out)


def test_a_capture_without_smtp_says_so_not_that_nothing_matches(chrome: Browser,
                                                                  tmp_path: Path) -> None:
    """No session at all is not a filter that matched nothing: the count says there is no
    SMTP session."""
    out = tmp_path / "none.html"
    capture = ROOT / "tests" / "data" / "corpus" / "zeek__tls-hrr.pcap"
    assert main(["report", str(capture), "-o", str(out)]) == 0
    chrome.open(out)
    count = wait_for(chrome, lambda d: d.find_element(By.ID, "count").text, "the count")
    assert count == "no SMTP session in the capture"
    assert not chrome.driver.find_elements(By.CSS_SELECTOR, "tr.session")
    assert_clean(chrome, out)



def test_only_problems_without_problems_says_none_is_shown(chrome: Browser,
                                                           tmp_path: Path) -> None:
    """--only-problems on a capture whose one session is fine: the page lists nothing, and
    says that the capture's session is not shown, not that there is no SMTP session."""
    out = tmp_path / "fine.html"
    capture = ROOT / "tests" / "data" / "corpus" / "sv__smtp-startssl.pcap"
    assert main(["report", "--only-problems", str(capture), "-o", str(out)]) == 0
    chrome.open(out)
    count = wait_for(chrome, lambda d: d.find_element(By.ID, "count").text, "the count")
    assert count == "none of the 1 session(s) shown"
    assert_clean(chrome, out)


# the layout measured in the window sizes a reader has: the browser's own figures
LAYOUT = """
const t = document.querySelector('section#problems table');
const box = t.getBoundingClientRect();
return {inner: window.innerWidth, page: document.documentElement.scrollWidth,
        left: box.left, right: box.right,
        sessions: document.querySelector('table#sessions').getBoundingClientRect().right,
        columns: Array.from(t.tHead.rows[0].cells).map(th => th.getBoundingClientRect().width),
        scroller: t.parentElement.scrollWidth > t.parentElement.clientWidth,
        spilled: Array.from(document.querySelectorAll('table#sessions th'))
          .filter(th => th.scrollWidth > th.clientWidth + 1).map(th => th.textContent)};"""


@pytest.mark.parametrize("width", [1400, 1024])
def test_the_tables_fit_the_window(chrome: Browser, report: Path, long_names: Path,
                                   width: int) -> None:
    """At 1,400 px neither table is wider than the window and the page does not scroll
    sideways, even with a server name of 2,439 characters; at 1,024 px the page still does
    not, at most the problems table scrolls in its own box.  No column is squeezed below
    3em, the width of its narrowest heading, and no session heading spills into the next."""
    driver = chrome.driver
    before = driver.get_window_size()
    driver.set_window_size(width, 1000)
    try:
        for page in (report, long_names):
            load(chrome, page)
            got = driver.execute_script(LAYOUT)
            assert got["inner"] == width
            assert got["page"] <= got["inner"], (page.name, got)
            assert got["sessions"] <= got["inner"], (page.name, got)
            assert min(got["columns"][1:]) >= 3 * 14, (page.name, got)
            assert got["spilled"] == [], (page.name, got)   # no heading runs into the next
            if width >= 1400:
                assert 0 <= got["left"] and got["right"] <= got["inner"], (page.name, got)
                assert not got["scroller"], (page.name, got)
            assert_clean(chrome, page)
    finally:
        driver.set_window_size(before["width"], before["height"])


def test_a_phones_width_scrolls_no_more_than_a_table_in_its_box(chrome: Browser,
                                                                report: Path) -> None:
    """A report mailed to a colleague is opened on a phone too: 360 px wide, the page does not
    scroll sideways, every table wider than that (the files, the sessions) scrolls in its own
    box, as README says of a narrow window."""
    driver = chrome.driver
    load(chrome, report)
    try:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": 360, "height": 800, "deviceScaleFactor": 1, "mobile": False})
        got = driver.execute_script("""return {inner: innerWidth,
          page: document.documentElement.scrollWidth,
          out: Array.from(document.querySelectorAll('body *'))
            .filter(e => e.getBoundingClientRect().right > innerWidth + 1
                         && !e.closest('div.scroll') && e.getClientRects().length)
            .map(e => e.tagName + '.' + e.className)};""")
        assert got["inner"] == 360 and got["page"] <= 360 and got["out"] == [], got
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert_clean(chrome, report)


PRINTED = """
const clipped = el => el.scrollWidth > el.clientWidth + 1;
return {inner: window.innerWidth, page: document.documentElement.scrollWidth,
        tables: Array.from(document.querySelectorAll('table'))
          .map(t => t.getBoundingClientRect().right),
        scrollers: Array.from(document.querySelectorAll('div.scroll')).filter(clipped).length,
        cut: Array.from(document.querySelectorAll('tr.session td, tr.session div.cell'))
          .filter(e => clipped(e) || e.scrollHeight > e.clientHeight + 1)
          .map(e => e.textContent)};"""


def test_printing_lays_every_table_on_the_page_in_full(chrome: Browser, report: Path,
                                                        long_names: Path) -> None:
    """Printed (print media on a page 740 px wide, an A4 or Letter sheet's text width), no
    table is cut at the sheet's edge, no box hides part of a table behind a scroll bar, and
    no session cell is cut short; Chromium prints the report as pages."""
    driver = chrome.driver
    before = driver.get_window_size()
    driver.set_window_size(740, 1000)
    try:
        for page in (report, long_names):
            load(chrome, page)
            driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
            got = driver.execute_script(PRINTED)
            assert got["page"] <= got["inner"], (page.name, got)
            assert max(got["tables"]) <= got["inner"], (page.name, got)
            assert got["scrollers"] == 0 and got["cut"] == [], (page.name, got)
            pdf = b64decode(driver.execute_cdp_cmd("Page.printToPDF", {})["data"])
            assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page\b", pdf)) >= 1
            driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
            assert_clean(chrome, page)
    finally:
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
        driver.set_window_size(before["width"], before["height"])


def test_a_printed_ladder_fits_the_sheet_whole(chrome: Browser, report: Path,
                                               scan: dict) -> None:
    """A session opened and printed (print media, 740 px: a sheet's text width): its ladder,
    wider on screen than the sheet (labels of a certificate's subject), is drawn smaller to
    fit, never cut at the sheet's edge, so each arrow's frame number and label are on paper."""
    driver = chrome.driver
    before = driver.get_window_size()
    driver.set_window_size(740, 1000)
    try:
        load(chrome, report)
        name, number = next(k for k, s in scan.items() if s["tls"])
        open_session(chrome, name, number)
        wide = driver.execute_script(
            "return document.querySelector('.ladder svg').getBoundingClientRect().width")
        assert wide > 740           # the case: on screen it scrolls in its box
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
        got = driver.execute_script("""const s = document.querySelector('.ladder svg');
          const r = s.getBoundingClientRect(), v = s.viewBox.baseVal;
          return {inner: innerWidth, page: document.documentElement.scrollWidth,
                  right: r.right, width: r.width, height: r.height,
                  view: v ? [v.width, v.height] : null,
                  drawn: s.getBBox().x + s.getBBox().width};""")
        assert got["page"] <= got["inner"] and got["right"] <= got["inner"], got
        # all of the drawing is in the view box, scaled as a whole (not squeezed one way)
        assert got["view"] and got["view"][0] >= got["drawn"], got
        assert abs(got["width"] / got["view"][0] - got["height"] / got["view"][1]) < 0.01, got
    finally:
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
        driver.set_window_size(before["width"], before["height"])
    assert_clean(chrome, report)


def test_a_printed_ladder_with_a_label_of_thousands_of_characters_stays_readable(
        chrome: Browser, long_names: Path) -> None:
    """An EHLO label of 3,000 characters, printed (print media, 740 px): the ladder is not
    shrunk to specks to fit the sheet; the label is cut, marked, and written in full below the
    ladder, where it wraps within the sheet.  Back on screen the label is whole again."""
    driver = chrome.driver
    before = driver.get_window_size()
    driver.set_window_size(740, 1000)
    try:
        load(chrome, long_names)
        open_session(chrome, "long.pcap", 1)
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
        # the print media query's change event redraws the ladder: wait for it, not a guess
        wait_for(chrome, lambda d: d.execute_script(
            "return Array.from(document.querySelectorAll('.ladder svg g.arrow text'))"
            ".some(t => /\\[\\d+\\]$/.test(t.textContent))"), "the ladder redrawn for print")
        got = driver.execute_script("""const s = document.querySelector('.ladder svg');
          const r = s.getBoundingClientRect(), v = s.viewBox.baseVal;
          const notes = Array.from(document.querySelectorAll('.ladder li'))
            .filter(e => e.getClientRects().length > 0);
          return {inner: innerWidth, page: document.documentElement.scrollWidth,
                  scale: r.width / v.width, right: r.right,
                  drawn: Array.from(s.querySelectorAll('g.arrow text'), t => t.textContent),
                  notes: notes.map(e => e.textContent),
                  noteRight: Math.max(0, ...notes.map(e => e.getBoundingClientRect().right))};""")
        assert got["page"] <= got["inner"] and got["right"] <= got["inner"], got["right"]
        # 12 px type drawn at 7 px or more, not at a fortieth of its size
        assert got["scale"] >= 0.58, got["scale"]
        assert all(len(t) < 200 for t in got["drawn"]), max(map(len, got["drawn"]))
        cut = [t for t in got["drawn"] if "EHLO eee" in t]
        note = re.search(r"… \[(\d+)\]$", cut[0]) if len(cut) == 1 else None
        assert note, cut
        frame = cut[0].split()[0]
        assert f"[{note[1]}] frame {frame}: EHLO {LONG_EHLO}" in got["notes"], [
            n[:40] for n in got["notes"]]
        assert 0 < got["noteRight"] <= got["inner"], got["noteRight"]
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
        detail = driver.find_element(By.CSS_SELECTOR, "table#sessions tr.detail")
        wait_for(chrome, lambda d: any(a["label"] == "EHLO " + LONG_EHLO for a in arrows(detail)),
                 "the ladder redrawn for the screen")
        assert not [e for e in detail.find_elements(By.CSS_SELECTOR, ".ladder li")
                    if e.is_displayed()]
    finally:
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
        driver.set_window_size(before["width"], before["height"])
    assert_clean(chrome, long_names)


PLAIN = """return {
  rows: Array.from(document.querySelectorAll('table.plain tbody tr'))
    .filter(r => r.getClientRects().length > 0).map(r => Array.from(r.cells, c => c.innerText)),
  dead: Array.from(document.querySelectorAll('#filter, #prev, #next, table#sessions'))
    .filter(e => e.getClientRects().length > 0).length,
  inner: window.innerWidth, page: document.documentElement.scrollWidth};"""


def test_without_script_every_session_is_still_readable(chrome: Browser, report: Path,
                                                        scan: dict) -> None:
    """With JavaScript off the page still lists each session the scan found, with its
    addresses, EHLO name and verdict codes as the scan's JSON has them, and shows no filter or
    paging buttons that could not work."""
    driver = chrome.driver
    driver.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    try:
        chrome.open(report)
        got = driver.execute_script(PLAIN)
    finally:
        driver.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})
    assert got["dead"] == 0 and got["page"] <= got["inner"], got
    shown = {}
    for file, number, client, server, ehlo, _tls, _cert, verdicts in got["rows"]:
        shown[(Path(file).name, int(number))] = (client, server, ehlo, verdicts.split(", "))
    assert len(shown) == len(got["rows"]) == len(scan)
    for key, s in scan.items():
        assert shown[key] == (s["client"], s["server"], s["smtp"]["ehlo_name"] or "-",
                              codes(s)), key


def sorted_by_client(chrome: Browser, capture: Path, clients: list[tuple[str, int]],
                     names: list[str] | None = None, by: str = "client"):
    """A report of one plaintext session per (address, port) client (EHLO `names`, if given),
    to a server of the same family, opened and sorted by its column `by`: (the page, the
    column's key, its heading)."""
    from fastcap_synth.smtpgen import SmtpScenario, smtp_records
    from fastcap_synth.writers import write_pcap

    records = []
    for i, (ip, port) in enumerate(clients):
        server = "2001:db8:ffff::25" if ":" in ip else "192.0.2.25"
        more = {"ehlo_name": names[i]} if names else {}
        records += smtp_records(SmtpScenario(client_ip=ip, client_port=port, server_ip=server,
                                             starttls_offered=False, start_ns=(i + 1) * 10**9,
                                             **more))
    records.sort(key=lambda r: r.ts_ns)
    write_pcap(capture, records)
    out = capture.with_suffix(".html")
    assert main(["report", str(capture), "-o", str(out)]) in (0, 1)
    load(chrome, out)
    key = column(chrome, by)
    th = chrome.driver.find_element(By.CSS_SELECTOR, f'table#sessions th[data-key="{key}"]')
    th.click()
    wait_for(chrome, lambda d: th.get_attribute("aria-sort") == "ascending", "aria-sort=ascending")
    return out, key, th


def test_addresses_sort_by_their_numbers(chrome: Browser, tmp_path: Path) -> None:
    """Clients 10.1.2.100, 10.1.2.9 and 10.1.2.10 (port 2525 and 25) sort as numbers do, as
    Wireshark sorts addresses: .9 before .10 before .100, and port 25 before 2525, not in
    the text's order."""
    clients = [("10.1.2.100", 2525), ("10.1.2.9", 2525), ("10.1.2.10", 2525), ("10.1.2.10", 25)]
    out, key, _th = sorted_by_client(chrome, tmp_path / "order.pcap", clients)
    want = [f"{ip}:{port}" for ip, port in sorted(
        clients, key=lambda c: (tuple(map(int, c[0].split("."))), c[1]))]
    assert cells(chrome, key) == want
    assert_clean(chrome, out)


def test_printing_lists_every_session_not_only_the_page_on_screen(chrome: Browser,
                                                                    crowd: Path) -> None:
    """The screen draws 200 rows at a time; printed (print media), the table holds every
    session the scan found, in the table's order, and back on screen it is one page again."""
    load(chrome, crowd)
    driver = chrome.driver
    on_screen = row_ids(chrome)
    everyone = [("crowd.pcap", n) for n in range(1, CROWD + 2)]
    assert 0 < len(on_screen) < len(everyone)
    try:
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
        wait_for(chrome, lambda d: len(row_ids(chrome)) == len(everyone), "every row, printed")
        assert row_ids(chrome) == everyone
        count = driver.find_element(By.ID, "count").get_attribute("textContent")
        assert f"of {len(everyone)}" in count and f"1–{len(everyone)}" in count, count
    finally:
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    wait_for(chrome, lambda d: row_ids(chrome) == on_screen, "one page of rows again")
    assert_clean(chrome, crowd)


PRINTED_ROWS = """return {
  laid: Array.from(document.querySelectorAll('table#sessions tbody tr'))
    .filter(r => r.getClientRects().length > 0).length,
  left: Array.from(document.querySelectorAll('table#sessions tr.left-out'), r => r.textContent),
  cells: Array.from(new Set(Array.from(document.querySelectorAll('tr.session div.cell'),
                                       c => getComputedStyle(c).display)))};"""


def test_printing_thousands_of_sessions_prints_the_first_ones_and_says_so(
        chrome: Browser, crowd: Path, tmp_path: Path, monkeypatch) -> None:
    """Printing every one of 20,000 sessions is hundreds of sheets and half a minute of the
    browser's layout before its dialog shows: printed, the table holds the first sessions as
    filtered and sorted (the writer's PRINT_ROWS, here 300 of CROWD + 1), and the page on screen
    when it lies beyond them, then a row that says how many are left out; no other row is laid
    out, and no cell is a clamped box (costly, and cut short on paper)."""
    from fastcap.out.html import writer

    monkeypatch.setattr(writer, "PRINT_ROWS", 300, raising=False)
    out = tmp_path / "crowd.html"
    assert main(["report", str(crowd.with_suffix(".pcap")), "-o", str(out)]) == 1
    load(chrome, out)
    driver = chrome.driver
    everyone = [("crowd.pcap", n) for n in range(1, CROWD + 2)]
    try:
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
        wait_for(chrome, lambda d: len(row_ids(chrome)) == 300, "the first 300 rows, printed")
        assert row_ids(chrome) == everyone[:300]
        got = driver.execute_script(PRINTED_ROWS)
        assert got["laid"] == 301 and len(got["left"]) == 1, got
        assert got["left"][0].startswith(f"{len(everyone) - 300} more session(s) not printed")
        assert "-webkit-box" not in got["cells"] and got["cells"], got
        count = driver.find_element(By.ID, "count").get_attribute("textContent")
        assert f"sessions 1–300 of {len(everyone)}" in count, count
        assert f"{len(everyone) - 300} more left out" in count, count
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
        wait_for(chrome, lambda d: row_ids(chrome) == everyone[:200], "one page again")
        for _ in range(2):       # the third page, rows 401 to the last, on screen
            driver.find_element(By.ID, "next").click()
        wait_for(chrome, lambda d: row_ids(chrome) == everyone[400:], "the third page")
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
        wait_for(chrome, lambda d: row_ids(chrome) == everyone[:300] + everyone[400:],
                 "the first 300 rows and the page on screen, printed")
        got = driver.execute_script(PRINTED_ROWS)
        assert got["left"][0].startswith("100 more session(s) not printed"), got
        count = driver.find_element(By.ID, "count").get_attribute("textContent")
        assert f"sessions 1–300 and 401–{len(everyone)} of {len(everyone)}" in count, count
    finally:
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    wait_for(chrome, lambda d: row_ids(chrome) == everyone[400:], "the third page again")
    assert driver.execute_script(PRINTED_ROWS)["left"] == []
    assert_clean(chrome, out)


def test_problem_samples_name_what_they_do_to_a_screen_reader(chrome: Browser, report: Path,
                                                              scan_json: dict) -> None:
    """A sample's visible text is "#8" (or "file #2"); its accessible name, as Chromium
    computes it, says that it opens that session and names the session's file, and holds the
    visible text (WCAG 2.5.3, label in name)."""
    load(chrome, report)
    buttons = chrome.driver.find_elements(By.CSS_SELECTOR, "section#problems .sample")
    samples = [s for g in scan_json["problems"] for s in g["samples"]]
    assert len(buttons) == len(samples) > 0
    for button, sample in zip(buttons, samples, strict=True):
        name = button.accessible_name
        number = sample["session"]
        assert name.startswith("open session"), name
        assert re.search(rf"#{number}\b", name), name
        assert Path(sample["file"]).name in name, name
        assert button.text.strip() in name, (button.text, name)
    assert_clean(chrome, report)


def test_ipv6_addresses_sort_by_their_value(chrome: Browser, tmp_path: Path) -> None:
    """IPv6 clients sort by the address's value, hex groups as numbers and "::" as the zero
    groups it stands for (2001:db8::9 < ::a < ::10 < ::ff < ::1:0 < 2001:db8:0:1::), port
    after address; IPv4 clients come before them."""
    import ipaddress

    clients = [("2001:db8::ff", 2525), ("2001:db8::10", 2525), ("2001:db8:0:1::", 2525),
               ("2001:db8::a", 2525), ("2001:db8::1:0", 2525), ("2001:db8::9", 2525),
               ("2001:db8::a", 25), ("fe80::1", 2525), ("10.1.2.3", 2525)]
    out, key, th = sorted_by_client(chrome, tmp_path / "v6.pcap", clients)

    def text(ip: str, port: int) -> str:
        return f"[{ipaddress.ip_address(ip)}]:{port}" if ":" in ip else f"{ip}:{port}"

    want = [text(ip, port) for ip, port in sorted(
        clients, key=lambda c: (ipaddress.ip_address(c[0]).version,
                                int(ipaddress.ip_address(c[0])), c[1]))]
    assert cells(chrome, key) == want
    th.click()
    wait_for(chrome, lambda d: th.get_attribute("aria-sort") == "descending",
             "aria-sort=descending")
    assert cells(chrome, key) == want[::-1]
    assert_clean(chrome, out)


def test_the_keyboard_pages_through_every_session_and_keeps_its_focus(chrome: Browser,
                                                                       crowd: Path) -> None:
    """Enter on "next" pages through the table: the pages hold every session of the scan once,
    and when the last page is reached the focus stays on the paging button (a disabled button
    would drop it to the page's start), which says it is unavailable (aria-disabled)."""
    from selenium.webdriver.common.keys import Keys

    load(chrome, crowd)
    driver = chrome.driver
    button = tab_to(chrome, lambda e: e.get_attribute("id") == "next", "the next button", 400)
    seen = row_ids(chrome)
    for _ in range(CROWD // 200 + 1):
        before = seen[-1]
        button.send_keys(Keys.ENTER)
        wait_for(chrome, lambda d, b=before: row_ids(chrome)[0] != b and row_ids(chrome),
                 "the next page")
        seen += row_ids(chrome)
        assert driver.switch_to.active_element.get_attribute("id") == "next"
        if button.get_attribute("aria-disabled") == "true":
            break
    assert seen == [("crowd.pcap", n) for n in range(1, CROWD + 2)]
    assert button.get_attribute("aria-disabled") == "true"
    button.send_keys(Keys.ENTER)        # past the end: nothing moves
    assert row_ids(chrome) == seen[-((CROWD + 1) % 200):]
    assert driver.switch_to.active_element.get_attribute("id") == "next"
    assert_clean(chrome, crowd)


def test_the_session_count_is_announced_as_a_status(chrome: Browser, report: Path,
                                                    scan: dict) -> None:
    """What a filter leaves is said in the count beside it; a screen reader hears it only
    from a status region (WCAG 4.1.3), which Chromium computes as role "status"."""
    load(chrome, report)
    count = chrome.driver.find_element(By.ID, "count")
    assert count.aria_role == "status"
    assert count.text == f"sessions 1–{len(scan)} of {len(scan)}"
    chrome.driver.find_element(By.CSS_SELECTOR, "input#filter").send_keys("no_client_cert")
    want = sum("no_client_cert" in codes(s) for s in scan.values())
    wait_for(chrome, lambda d: count.text == f"sessions 1–{want} of {want} (filtered from "
             f"{len(scan)})", "the filtered count")
    assert_clean(chrome, report)


MARKS = {"error": "!", "warning": "~"}


def test_a_problems_severity_is_said_in_words_not_only_by_a_mark(chrome: Browser,
                                                                  report: Path,
                                                                  scan_json: dict) -> None:
    """The first column of the problems table shows "!" or "~": its heading has a name and
    each mark's cell reads the group's severity as the scan's JSON gives it, to a screen
    reader (the name Chromium computes, the mark hidden from it) and in the page's text, the
    mark still shown."""
    load(chrome, report)
    driver = chrome.driver
    head = driver.find_element(By.CSS_SELECTOR, "section#problems thead th")
    assert head.accessible_name == "severity"
    marks = driver.find_elements(By.CSS_SELECTOR, "section#problems tr.problem td.mark")
    groups = scan_json["problems"]
    assert len(marks) == len(groups) > 0
    assert [m.accessible_name for m in marks] == [g["severity"] for g in groups]
    assert [m.get_attribute("textContent").split() for m in marks] == [
        [MARKS[g["severity"]], g["severity"]] for g in groups]
    # on screen the word takes no room: a mark is all the narrow column shows
    assert driver.execute_script(
        "return Array.from(arguments[0], m => Array.from(m.children)"
        ".filter(c => c.getBoundingClientRect().width > 1).map(c => c.textContent))", marks) \
        == [[MARKS[g["severity"]]] for g in groups]
    assert_clean(chrome, report)


def test_a_ladder_is_read_arrow_by_arrow_with_its_direction(chrome: Browser, report: Path,
                                                            scan: dict) -> None:
    """The ladder's arrows show their direction and their trouble (red) by drawing only; a
    screen reader gets a list with an item per arrow whose name says the frame, the time,
    who sent it to whom, the message, and whether it is marked bad, as the scan's JSON
    tells them for session 2 (EHLO and ClientHello from the client, ServerHello and
    CertificateRequest from the server, the empty Certificate at the verdict's frame)."""
    file, number = "all-scenarios.pcapng", 2
    session = scan[(file, number)]
    load(chrome, report)
    detail = open_session(chrome, file, number)
    svg = detail.find_element(By.CSS_SELECTOR, "div.ladder > svg")
    assert svg.aria_role == "list"
    assert svg.accessible_name.startswith(f"ladder diagram of session {number}")
    assert session["client"] in svg.accessible_name and session["server"] in svg.accessible_name
    drawn = []
    for frame, side, bad, text in chrome.driver.execute_script(
            "return Array.from(arguments[0].querySelectorAll('div.ladder > svg g.arrow'), g =>"
            " [Number(g.dataset.frame), g.dataset.dir, g.classList.contains('bad'),"
            " g.textContent])", detail):
        m = ARROW_LABEL.match(text)
        assert m and int(m[1]) == frame, text
        drawn.append({"frame": frame, "dir": side, "bad": bad, "t": float(m[2]), "label": m[3]})
    # the list's items as Chromium's accessibility tree has them, in one query
    svg_object = chrome.driver.execute_cdp_cmd("Runtime.evaluate", {
        "expression": "document.querySelector('table#sessions tr.detail div.ladder > svg')"})
    items = chrome.driver.execute_cdp_cmd("Accessibility.queryAXTree", {
        "objectId": svg_object["result"]["objectId"], "role": "listitem"})["nodes"]
    names = [n["name"]["value"] for n in items if not n.get("ignored")]
    said = {}
    for name, a in zip(names, drawn, strict=True):
        who = "client to server" if a["dir"] == "c2s" else "server to client"
        assert name.startswith(f"frame {a['frame']}, +{a['t']:.6f} s, {who}: {a['label']}"), \
            name
        assert name.endswith(", marked bad") == a["bad"], name
        said.setdefault(a["frame"], name)
    tls, smtp = session["tls"], session["smtp"]
    assert "client to server: EHLO" in said[smtp["ehlo_frame"]]
    assert "client to server: ClientHello" in said[tls["client_hello"]["frame"]]
    assert "server to client: ServerHello" in said[tls["server_hello"]["frame"]]
    assert "server to client:" in said[tls["certificate_request"]["frame"]]
    frame = next(v["frame"] for v in session["verdicts"] if v["code"] == "no_client_cert")
    assert "client to server: Certificate" in said[frame] and said[frame].endswith("marked bad")
    assert_clean(chrome, report)


def test_a_focused_session_row_is_named_by_its_session(chrome: Browser, report: Path,
                                                       scan: dict) -> None:
    """A session row takes the keyboard's focus and opens with Enter, so a screen reader
    says its name when it is reached: the name tells which session of which file it is,
    between which addresses, and its verdicts, as the scan's JSON has them."""
    load(chrome, report)
    rows = visible_rows(chrome)
    assert len(rows) == len(scan)
    for tr in rows:
        file, number = Path(tr.get_attribute("data-file")).name, int(
            tr.get_attribute("data-number"))
        s = scan[(file, number)]
        assert tr.accessible_name == (f"session {number} of {file}, {s['client']} to "
                                      f"{s['server']}: {', '.join(codes(s))}")
    assert_clean(chrome, report)


def test_a_sorted_headings_name_is_its_word_not_its_arrow(chrome: Browser, report: Path) -> None:
    """The ▲/▼ beside a sorted heading is drawing: the heading's state is its aria-sort, and
    its name, as Chromium computes it for a screen reader, stays the heading's word."""
    from selenium.webdriver.common.keys import Keys

    load(chrome, report)
    number = chrome.driver.find_element(By.CSS_SELECTOR, 'table#sessions th[data-key="number"]')
    assert number.get_attribute("aria-sort") == "ascending" and number.accessible_name == "#"
    key = column(chrome, "client")
    th = chrome.driver.find_element(By.CSS_SELECTOR, f'table#sessions th[data-key="{key}"]')
    th.find_element(By.TAG_NAME, "button").send_keys(Keys.ENTER)
    wait_for(chrome, lambda d: th.get_attribute("aria-sort") == "ascending", "aria-sort=ascending")
    assert th.accessible_name == th.find_element(By.TAG_NAME, "button").text == "client"
    assert chrome.driver.execute_script(
        "return getComputedStyle(arguments[0], '::after').content", th).startswith('" ▲"')
    assert_clean(chrome, report)


def test_the_paging_buttons_are_named_by_their_words(chrome: Browser, crowd: Path) -> None:
    """"◀ previous" and "next ▶": the triangles are drawing, a screen reader says the words."""
    load(chrome, crowd)
    names = [chrome.driver.find_element(By.ID, i).accessible_name for i in ("prev", "next")]
    assert names == ["previous", "next"]
    shown = [chrome.driver.find_element(By.ID, i).text for i in ("prev", "next")]
    assert shown == ["◀ previous", "next ▶"]
    assert_clean(chrome, crowd)


def test_a_cells_text_as_shown_filters_to_its_rows(chrome: Browser, report: Path,
                                                   scan: dict) -> None:
    """Text copied from a cell finds its row: each session's verdicts cell, as the table
    shows it ("tls_alert, client_cert_expired, ..."), typed into the filter leaves the
    sessions whose verdicts read so in the scan's JSON."""
    load(chrome, report)
    box = chrome.driver.find_element(By.CSS_SELECTOR, "input#filter")
    shown = set(cells(chrome, "verdicts"))
    assert len(shown) > 1
    for text in sorted(shown):
        want = sorted(k for k, s in scan.items() if text in ", ".join(codes(s)))
        assert want
        # pasted: the value at once, then the input event a paste fires
        chrome.driver.execute_script(
            "arguments[0].value = arguments[1];"
            "arguments[0].dispatchEvent(new Event('input', {bubbles: true}))", box, text)
        wait_for(chrome, lambda d, w=want: sorted(row_ids(chrome)) == w, f"the rows of {text!r}")
    assert_clean(chrome, report)


def test_a_thumbprint_filters_to_the_sessions_that_sent_its_certificate(
        chrome: Browser, report: Path, scan: dict) -> None:
    """An administrator holds a thumbprint (Get-ExchangeCertificate's, in upper case, or
    OpenSSL's colon-separated fingerprint): typed into the filter, it leaves the sessions in
    which either side sent that certificate, as the scan's JSON lists their chains."""
    def sent(s: dict) -> set[str]:
        return {c["sha1"].upper() for k in ("client_cert_check", "server_cert_check")
                for c in (s.get(k) or {}).get("certs", [])}

    load(chrome, report)
    box = chrome.driver.find_element(By.CSS_SELECTOR, "input#filter")
    leaves = sorted({s["client_cert_check"]["certs"][0]["sha1"].upper() for s in scan.values()
                     if (s.get("client_cert_check") or {}).get("certs")})
    assert len(leaves) > 1
    for sha1 in leaves:
        want = sorted(k for k, s in scan.items() if sha1 in sent(s))
        assert want and len(want) < len(scan)
        for text in (sha1, ":".join(sha1[i:i + 2] for i in range(0, 40, 2)).lower()):
            chrome.driver.execute_script(
                "arguments[0].value = arguments[1];"
                "arguments[0].dispatchEvent(new Event('input', {bubbles: true}))", box, text)
            wait_for(chrome, lambda d, w=want: sorted(row_ids(chrome)) == w,
                     f"the rows that sent {text}")
    assert_clean(chrome, report)


def test_the_charts_text_alternative_gives_its_counts(chrome: Browser, report: Path,
                                                      scan: dict) -> None:
    """The chart of sessions per verdict is an image whose bars a screen reader cannot read:
    its name gives each verdict's count, which agree with the scan's JSON (a session counted
    under its first error or warning, else "ok") and add up to every dated session."""
    from collections import Counter

    load(chrome, report)
    name = chrome.driver.find_element(By.CSS_SELECTOR, "svg#timeline").accessible_name
    head, _, counts = name.partition(": ")
    assert head.startswith("sessions per verdict over time"), name
    said = {code: int(n) for code, n in (part.rsplit(" ", 1) for part in counts.split(", "))}
    want = Counter(next((v["code"] for v in s["verdicts"] if v["severity"] in ("error", "warning")),
                        "ok") for s in scan.values())
    named = {c: n for c, n in said.items() if c != "other"}
    assert named == {c: want[c] for c in named}
    assert said.get("other", 0) == sum(n for c, n in want.items() if c not in named)
    assert sum(said.values()) == len(scan)
    assert_clean(chrome, report)


# WCAG 2 contrast of every piece of text the page lays out against the background it sits on
CONTRAST = """
const lin = c => {
  c /= 255;
  return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
};
const rgb = s => (s.match(/[\\d.]+/g) || []).map(Number);
const lum = c => 0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2]);
const back = e => {
  for (; e; e = e.parentElement) {
    const c = rgb(getComputedStyle(e).backgroundColor);
    if (c.length === 3 || c[3] > 0) return c;
  }
  return [255, 255, 255];
};
const out = [];
const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
for (let t = walk.nextNode(); t; t = walk.nextNode()) {
  const e = t.parentElement;
  if (!t.textContent.trim() || !e.getClientRects().length
      || e.closest('[aria-disabled="true"], .unseen, noscript, script, style')) continue;
  const s = getComputedStyle(e);
  if (s.visibility !== 'visible' || Number(s.opacity) < 1) continue;
  const fg = rgb(e instanceof SVGElement ? s.fill : s.color);
  const a = lum(fg), b = lum(back(e));
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  const size = parseFloat(s.fontSize), bold = Number(s.fontWeight) >= 700;
  const large = size >= 24 || (bold && size >= 18.66);
  if (ratio < (large ? 3 : 4.5))
    out.push([t.textContent.trim().slice(0, 40), s.color, ratio.toFixed(2)]);
}
return out;"""


def test_every_text_is_readable_against_its_background(chrome: Browser, report: Path) -> None:
    """WCAG 1.4.3 (AA): text has a contrast of at least 4.5:1 with its background (3:1 when
    large), the problems' marks, the verdicts of an opened session (an error's and a
    warning's: session 2 and 3) and its ladder included."""
    load(chrome, report)
    open_session(chrome, "all-scenarios.pcapng", 2)
    open_session(chrome, "all-scenarios.pcapng", 3)
    assert chrome.driver.find_elements(By.CSS_SELECTOR, "li.sev-warning") and \
        chrome.driver.find_elements(By.CSS_SELECTOR, "li.sev-error")
    assert chrome.driver.execute_script(CONTRAST) == []
    assert_clean(chrome, report)


def test_ehlo_names_sort_as_host_names(chrome: Browser, tmp_path: Path) -> None:
    """Host names are case-insensitive (RFC 4343): "MAIL9" sorts with "mail9", not before every
    lower-case name; and as in addresses and file names, numbers compare as numbers."""

    names = ["mail10.example", "Mail2.example", "b.example", "MAIL9.example", "a.example",
             "mail9.example", "Z.example"]
    clients = [(f"10.1.2.{i + 1}", 2525) for i in range(len(names))]
    out, key, _th = sorted_by_client(chrome, tmp_path / "names.pcap", clients, names, "ehlo")
    assert_text_order(chrome, key, names)
    assert_clean(chrome, out)


def natural_text(name: str) -> list:
    """A text column's order: case ignored, numbers inside compared as numbers."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name.lower())]


def assert_text_order(chrome: Browser, key: str, values: list[str]) -> None:
    """Column `key` shows `values`, each once, in text order."""
    shown = cells(chrome, key)
    assert sorted(shown) == sorted(values)
    assert [natural_text(n) for n in shown] == sorted(natural_text(n) for n in values), shown


def type_filter(chrome: Browser, text: str) -> None:
    """Text pasted into the filter: the value at once, then the input event a paste fires."""
    box = chrome.driver.find_element(By.CSS_SELECTOR, "input#filter")
    chrome.driver.execute_script(
        "arguments[0].value = arguments[1];"
        "arguments[0].dispatchEvent(new Event('input', {bubbles: true}))", box, text)


def test_a_bare_number_finds_that_session_not_every_field_with_its_digits(
        chrome: Browser, report: Path, scan: dict) -> None:
    """A number typed alone ("2", or "#2" as the samples write it) is a session number: it
    leaves session 2 of each file, not every session whose address or port holds a 2; a
    number that is no session's leaves none.  "frame 40" (or Wireshark's "frame.number ==
    40") leaves the session whose first or last frame (as the scan's JSON gives them) it is."""
    load(chrome, report)
    numbers = sorted({n for _f, n in scan})
    for n in [*numbers, max(numbers) + 1]:
        want = sorted(k for k in scan if k[1] == n)
        for text in (str(n), f"#{n}", f" {n} "):
            type_filter(chrome, text)
            wait_for(chrome, lambda d, w=want: sorted(row_ids(chrome)) == w,
                     f"the sessions numbered {text!r}: {want}")
    ends = sorted({f for s in scan.values() for f in (s["first_frame"], s["last_frame"])})
    # a frame within another session (of the other file) may be a message of that one too
    frames = [f for f in ends if all(f in (s["first_frame"], s["last_frame"])
                                     for s in scan.values()
                                     if s["first_frame"] <= f <= s["last_frame"])]
    assert len(frames) > len(ends) // 2
    for frame in frames:
        want = sorted(k for k, s in scan.items() if frame in (s["first_frame"], s["last_frame"]))
        for text in (f"frame {frame}", f"frame.number == {frame}", f"Frame:{frame}"):
            type_filter(chrome, text)
            wait_for(chrome, lambda d, w=want: sorted(row_ids(chrome)) == w,
                     f"the sessions of {text!r}: {want}")
    # text with digits in it is still text: an address's tail finds its session
    type_filter(chrome, "30.45:")
    wait_for(chrome, lambda d: row_ids(chrome) == [("all-scenarios.pcapng", 5)],
             "the session of client 10.20.30.45")
    assert_clean(chrome, report)


def write_and_scan(capture: Path, records: list) -> list[dict]:
    """Write `records` in time order as `capture`; its sessions as the scan's JSON has them."""
    from fastcap_synth.writers import write_pcap

    records.sort(key=lambda r: r.ts_ns)
    write_pcap(capture, records)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        main(["scan", "--format", "json", str(capture)])
    return json.loads(buf.getvalue())["files"][0]["sessions"]


def sorted_by_cert(chrome: Browser, capture: Path, names: list[str], sans: list[str]):
    """A report of one TLS session per client certificate named `names` (SAN `sans`), from
    real OpenSSL handshakes (fastcap_synth), opened and sorted by its certificate column:
    (the page, the column's key, the subjects as the scan's JSON has them)."""
    import datetime as dt

    from fastcap_synth.certs import make_leaf
    from fastcap_synth.scenarios import make_pki, scenario
    from fastcap_synth.smtpgen import smtp_records
    from fastcap_synth.tlsgen import client_context

    pki = make_pki(dt.datetime.now(dt.UTC))
    records = []
    for i, (name, san) in enumerate(zip(names, sans, strict=True)):
        leaf = make_leaf(pki.intermediate, name, sans=[san])
        records += smtp_records(scenario(
            "ok_client_cert", pki, client_cert=leaf, client_ctx=client_context(cert=leaf),
            client_ip=f"10.1.2.{i + 1}", client_port=40000 + i, start_ns=(i + 1) * 10**9))
    subjects = [s["client_cert_check"]["certs"][0]["subject"]
                for s in write_and_scan(capture, records)]
    out = capture.with_suffix(".html")
    assert main(["report", str(capture), "-o", str(out)]) in (0, 1)
    load(chrome, out)
    key = column(chrome, "cert")
    chrome.driver.find_element(By.CSS_SELECTOR, f'table#sessions th[data-key="{key}"]').click()
    return out, key, subjects


def test_certificates_sort_as_text_whatever_its_case(chrome: Browser, tmp_path: Path) -> None:
    """The client certificate column sorts as the EHLO column does: "CN=Mail2.example" with
    "CN=mail10.example", not before every lower-case name, and numbers as numbers; the
    subjects are those of the scan's JSON (real OpenSSL handshakes, fastcap_synth)."""
    names = ["mail10.example", "Mail2.example", "b.example", "MAIL9.example", "a.example",
             "Z.example"]
    out, key, subjects = sorted_by_cert(chrome, tmp_path / "certs.pcap", names, names)
    assert sorted(n.lower() for n in subjects) == sorted(f"cn={n.lower()}" for n in names)
    assert_text_order(chrome, key, subjects)
    assert_clean(chrome, out)


def test_accented_names_sort_with_their_letters(chrome: Browser, tmp_path: Path) -> None:
    """Certificate subjects in UTF-8 (CN=Ärzte..., CN=Émile...) sort with their letters, as a
    reader looks them up: Ä with a, É with e, not after every unaccented name (z) as their
    code points would put them; the subjects are the scan's JSON's (real OpenSSL handshakes)."""
    import unicodedata

    names = ["zürich.example", "Émile.example", "bank.example", "Ärzte.example", "fisch.example",
             "zeta.example"]
    out, key, subjects = sorted_by_cert(chrome, tmp_path / "accents.pcap", names,
                                        [f"m{i}.example" for i in range(len(names))])
    assert sorted(subjects) == sorted(f"CN={n}" for n in names)

    def letters(text: str) -> str:
        return "".join(c for c in unicodedata.normalize("NFD", text.lower())
                       if not unicodedata.combining(c))

    wait_for(chrome, lambda d: cells(chrome, key) == sorted(subjects, key=letters),
             "the subjects in their letters' order")
    assert_clean(chrome, out)


def found_by_find(chrome: Browser, text: str, query: str) -> bool:
    """Whether the browser's own find-in-page finds `query` in a page of `text` alone."""
    chrome.driver.get("data:text/html;charset=utf-8,<body></body>")
    return chrome.driver.execute_script(
        "document.body.textContent = arguments[0]; getSelection().removeAllRanges();"
        "return window.find(arguments[1], false, false, true);", text, query)


def test_the_filter_finds_a_name_as_the_browsers_find_does(chrome: Browser,
                                                            tmp_path: Path) -> None:
    """Typed without its accents ("arzte", "EMILE"), with ss for ß, or with the dotless i's
    plain i, a certificate name is found in the filter exactly where the browser's own
    find-in-page finds it in that name (the oracle: Chromium's window.find on the subject as
    the scan's JSON has it); the subjects come from real OpenSSL handshakes."""
    names = ["Ärzte.example", "Émile.example", "Straße.example", "İzmir.example",
             "Işık.example"]
    queries = ["arzte", "EMILE", "strasse", "izmir", "isik", "émile.ex"]
    out, key, subjects = sorted_by_cert(chrome, tmp_path / "find.pcap", names,
                                        [f"m{i}.example" for i in range(len(names))])
    want = {q: sorted(s for s in subjects if found_by_find(chrome, s, q)) for q in queries}
    assert want["arzte"] == ["CN=Ärzte.example"]      # the oracle folds accents at all
    load(chrome, out)
    for q in queries:
        type_filter(chrome, q)
        wait_for(chrome, lambda d, q=q: sorted(cells(chrome, key)) == want[q],
                 f"the names {want[q]} for {q!r}")
    assert_clean(chrome, out)


def test_two_captures_of_one_name_are_told_apart(chrome: Browser, tmp_path: Path) -> None:
    """one/mail.pcap and two/mail.pcap: wherever the page names a session's file by less than
    its path (a problem's sample, its name to a screen reader, a row's name, the window's
    title) it names enough of the path to tell which, as the scan's JSON lists the files."""
    for folder, example in zip(("one", "two"), EXAMPLES[::-1], strict=True):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "mail.pcap").write_bytes((ROOT / example).read_bytes())
    paths = [str(tmp_path / f / "mail.pcap") for f in ("one", "two")]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        main(["scan", "--format", "json", *TRUST, *paths])
    doc = json.loads(buf.getvalue())
    assert [f["path"] for f in doc["files"]] == paths
    out = tmp_path / "same.html"
    assert main(["report", *TRUST, *paths, "-o", str(out)]) == 1
    load(chrome, out)

    def ends(path: str, word: str) -> bool:
        return path == word or path.endswith("/" + word)

    def names_only(text: str, path: str) -> bool:
        """A word of `text` is a trailing part of `path` that the other path does not end
        with."""
        other = next(p for p in paths if p != path)
        return any(w and ends(path, w) and not ends(other, w) for w in re.split(r"[\s,]+", text))

    samples = [(s["file"], s["session"]) for g in doc["problems"] for s in g["samples"]]
    buttons = chrome.driver.find_elements(By.CSS_SELECTOR, "section#problems .sample")
    assert len(buttons) == len(samples) > 0
    assert {f for f, _n in samples} == set(paths)
    before = None
    for button, (file, number) in zip(buttons, samples, strict=True):
        assert names_only(button.accessible_name, file), (button.accessible_name, file)
        assert button.text.endswith(f"#{number}"), button.text
        if file != before:       # where the file changes, the label names it
            assert names_only(button.text, file), (button.text, file)
        before = file
    for tr in visible_rows(chrome):
        assert names_only(tr.accessible_name.split(",")[0], tr.get_attribute("data-file")), \
            tr.accessible_name
    assert names_only(chrome.driver.title.split(" and ")[0], paths[0]), chrome.driver.title
    assert_clean(chrome, out)


def test_a_frame_of_a_message_finds_its_own_session_among_overlapping_ones(
        chrome: Browser, tmp_path: Path, tshark: str) -> None:
    """Two connections at once, and one on a port not scanned, their frames interleaved:
    "frame N" of one session's EHLO (the scan's JSON gives its frame) leaves that session
    only, though N lies between the other's first and last frame too; the second's SYN (its
    first frame) leaves the second alone; a frame in no ladder (an ACK, a data segment)
    leaves the session whose TCP stream tshark puts it in, and no other; a frame of the
    connection not scanned leaves none, the count saying so, rather than every connection
    around it, as a Wireshark user jumping to that frame would be misled into."""
    import subprocess

    from fastcap_synth.smtpgen import SmtpScenario, smtp_records

    records = []
    for i, port in enumerate((25, 25, 8025)):
        records += smtp_records(SmtpScenario(client_ip=f"10.1.2.{i + 1}", client_port=40000 + i,
                                             server_port=port, starttls_offered=False,
                                             start_ns=10**9 + i * 10**7))
    capture = tmp_path / "overlap.pcap"
    a, b = write_and_scan(capture, records)
    assert b["first_frame"] < a["smtp"]["ehlo_frame"] < b["last_frame"]
    out = tmp_path / "overlap.html"
    assert main(["report", str(capture), "-o", str(out)]) in (0, 1)
    fields = subprocess.run([tshark, "-n", "-r", str(capture), "-T", "fields",
                             "-e", "frame.number", "-e", "tcp.stream"],
                            capture_output=True, text=True, check=True).stdout
    stream = {int(f): st for f, st in (line.split("\t") for line in fields.splitlines())}
    load(chrome, out)
    for s in (a, b):
        type_filter(chrome, f"frame {s['smtp']['ehlo_frame']}")
        wait_for(chrome, lambda d, n=s["number"]: row_ids(chrome) == [("overlap.pcap", n)],
                 f"session {s['number']} alone")
    type_filter(chrome, f"frame {b['first_frame']}")
    wait_for(chrome, lambda d: row_ids(chrome) == [("overlap.pcap", b["number"])],
             "the second session alone, whose SYN it is")
    type_filter(chrome, "")
    known = {f for s in (a, b) for f in (s["first_frame"], s["last_frame"])}
    for s in (a, b):
        known |= {x["frame"] for x in arrows(open_session(chrome, "overlap.pcap", s["number"]))}
        session_row(chrome, "overlap.pcap", s["number"]).click()   # closed again
    spanned = range(b["first_frame"], a["last_frame"] + 1)
    for s in (a, b):
        ack = next(f for f in spanned
                   if f not in known and stream[f] == stream[s["first_frame"]])
        type_filter(chrome, f"frame {ack}")
        wait_for(chrome, lambda d, n=s["number"]: row_ids(chrome) == [("overlap.pcap", n)],
                 f"session {s['number']} alone, whose ACK or segment frame {ack} is")
    other = next(f for f in spanned if stream[f] not in {stream[a["first_frame"]],
                                                         stream[b["first_frame"]]})
    type_filter(chrome, f"frame {other}")
    wait_for(chrome, lambda d: row_ids(chrome) == [] and "in no SMTP session" in d.find_element(
        By.ID, "count").get_attribute("textContent"), f"no session for frame {other}")
    count = chrome.driver.find_element(By.ID, "count").get_attribute("textContent")
    assert f"frame {other}" in count and "2 session(s) span it" in count, count
    type_filter(chrome, f"frame {a['last_frame'] + b['last_frame'] + 1}")
    wait_for(chrome, lambda d: "not in any SMTP conversation" in d.find_element(
        By.ID, "count").get_attribute("textContent"), "a frame past every session")
    assert_clean(chrome, out)


def test_an_icmp_error_before_or_after_its_connection_finds_that_session(
        chrome: Browser, tmp_path: Path, tshark: str) -> None:
    """ICMP errors quoting a connection before its SYN and after its last frame lie outside
    its session's first..last frame, yet tshark puts them in that connection's TCP stream:
    "frame N" of each leaves the session of that stream, and no other."""
    from .test_frameruns import around_records, tshark_streams

    capture = tmp_path / "icmp-around.pcap"
    sessions = write_and_scan(capture, around_records())
    out = tmp_path / "icmp-around.html"
    assert main(["report", str(capture), "-o", str(out)]) in (0, 1)
    stream = tshark_streams(tshark, capture)
    outside = [f for f in stream
               if not any(s["first_frame"] <= f <= s["last_frame"] for s in sessions)]
    assert len(outside) == 3 and all(stream[f] for f in outside)  # the case: in a stream
    load(chrome, out)
    for f in outside:
        want = [("icmp-around.pcap", s["number"]) for s in sessions
                if stream[s["first_frame"]] == stream[f]]
        assert len(want) == 1
        type_filter(chrome, f"frame {f}")
        wait_for(chrome, lambda d, w=want: row_ids(chrome) == w,
                 f"session {want} alone, whose connection's ICMP error frame {f} is")
    assert_clean(chrome, out)


@pytest.mark.parametrize("width", [1400, 1024])
def test_a_six_digit_session_number_keeps_its_line(chrome: Browser, report: Path,
                                                     tmp_path: Path, width: int) -> None:
    """A relay's capture numbers its sessions past 99,999: the `#` column holds six digits
    on one line at a desktop's width and at 1,024 px, never wrapped to a second."""
    from fastcap.out.html.writer import write_report

    from .test_report_html import page_of

    page = page_of(report.read_text("utf-8"))
    at = page["columns"].index("number")
    for i, row in enumerate(page["sessions"]):
        row[at] = 999_999 - i
    big = tmp_path / "big-numbers.html"
    write_report(big, page)
    driver = chrome.driver
    before = driver.get_window_size()
    driver.set_window_size(width, 1000)
    try:
        load(chrome, big)
        lines = driver.execute_script(
            "const at = Array.from(document.querySelectorAll('table#sessions thead th'))"
            ".findIndex(th => th.dataset.key === 'number');"
            + VISIBLE_ROWS + ".map(r => { const g = document.createRange();"
            " g.selectNodeContents(document.createTreeWalker(r.cells[at],"
            " NodeFilter.SHOW_TEXT).nextNode());"
            " return [r.cells[at].innerText, new Set(Array.from(g.getClientRects(),"
            " x => Math.round(x.top))).size]; })")
        assert lines and all(len(t) == 6 for t, _ in lines), lines
        assert all(n == 1 for _, n in lines), lines
        driver.save_screenshot(f"/tmp/r3-work/six-digits-{width}.png")
        assert_clean(chrome, big)
    finally:
        driver.set_window_size(before["width"], before["height"])
