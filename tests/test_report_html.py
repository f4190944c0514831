"""The HTML report without a browser: one self-contained file, every packet string shown as
text only, and page data holding every session with its ladder and certificates."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from fastcap import cli
from fastcap.out.html import decode_sessions, embed_json, ladder, page_data, render_report
from fastcap.out.textsafe import printable
from fastcap.read.frametimes import frame_times
from fastcap.run.scanner import scan
from fastcap_synth.certs import make_leaf
from fastcap_synth.scenarios import make_pki, scenario
from fastcap_synth.smtpgen import converse, render
from fastcap_synth.writers import write_pcap

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EVIL = "<script>alert(1)</script>\"'`\x01\x1b[2J\u202egro.elpmaxe"
EVIL_CN = "</script><img src=x onerror=alert(2)>\"\u202e"


class Page(HTMLParser):
    """Every element and attribute the browser would build from the file, and the text of
    each script element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.text: list[str] = []
        self._in_script: dict[str, str | None] | None = None
        self._style = False
        self.styles: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "script":
            self._in_script = a
            self.scripts.append((a, ""))
        self._style = tag == "style"

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = None
        self._style = False

    def handle_data(self, data):
        if self._in_script is not None:
            a, text = self.scripts[-1]
            self.scripts[-1] = (a, text + data)
        elif self._style:
            self.styles.append(data)
        else:
            self.text.append(data)


def parse(html: str) -> Page:
    p = Page()
    p.feed(html)
    p.close()
    return p


def page_of(html: str) -> dict:
    p = parse(html)
    (data,) = [t for a, t in p.scripts if a.get("id") == "data"]
    return json.loads(data)


def problems_of(results) -> list[dict]:
    """The triage groups as the report takes them: one per (problem verdict, client
    certificate, server), counted."""
    groups: dict[tuple, dict] = {}
    for path, sessions, _ in results:
        for s in sessions:
            leaf = s.client_check.certs[0] if s.client_check and s.client_check.certs else None
            for v in s.verdicts:
                if v.severity not in ("error", "warning"):
                    continue
                key = (v.code, leaf.sha1 if leaf else None, s.server.rsplit(":", 1)[0])
                g = groups.setdefault(key, {
                    "code": v.code, "severity": v.severity, "thumbprint": key[1],
                    "cert_subject": leaf.subject if leaf else None, "server": key[2],
                    "sessions": 0, "clients": 0, "first_ts_ns": s.first_ts_ns,
                    "last_ts_ns": s.last_ts_ns, "samples": [], "message": v.message,
                    "fix": v.hint})
                g["sessions"] += 1
                if len(g["samples"]) < 3:
                    g["samples"].append({"file": path, "session": s.number})
    return list(groups.values())


@dataclasses.dataclass(frozen=True)
class Hostile:
    path: Path
    subject: str


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A capture whose EHLO names and client certificate subject are attacks on a page."""
    pki = make_pki()
    evil_leaf = make_leaf(pki.intermediate, EVIL_CN, sans=["mail.fabrikam.com"])
    pki = dataclasses.replace(pki, client_wrong_name=evil_leaf)
    start = int(pki.client.cert.not_valid_before_utc.timestamp()) * 10**9 + 3600 * 10**9
    recs = []
    for i, name in enumerate(["starttls_refused", "name_mismatch", "no_client_cert"]):
        sc = scenario(name, pki, ehlo_name=EVIL, client_port=42000 + i,
                      start_ns=start + i * 10**9)
        recs += render(converse(sc), sc)
    path = tmp_path_factory.mktemp("html") / "hostile.pcap"
    write_pcap(path, recs)
    return Hostile(path, evil_leaf.cert.subject.rfc4514_string())  # as fastcap writes it


@pytest.fixture(scope="module")
def hostile_report(hostile, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    assert cli.main(["report", "-j", "1", "--expect-name", "mail.fabrikam.com", str(hostile.path),
                     "-o", str(out)]) == 1
    return out.read_text("utf-8")


def test_embed_json_cannot_close_its_script_and_round_trips():
    value = {"s": "</script><!--<script>&amp;\u2028\u2029\u202e\"'\\", "n": [1, None]}
    text = embed_json(value)
    assert not set("<>&") & set(text)
    assert "\u2028" not in text and "\u2029" not in text and text.isascii()
    assert json.loads(text) == value


def test_the_page_is_self_contained(hostile_report):
    p = parse(hostile_report)
    for tag, attrs in p.tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            if name in ("src", "href", "action", "srcset", "xlink:href", "data", "poster"):
                pytest.fail(f"{tag} has {name}={value!r}: the page must load nothing")
    assert not re.search(r"url\s*\(", "".join(p.styles))
    code = [t for a, t in p.scripts if a.get("id") != "data"]
    assert len(code) == 1 and len(p.scripts) == 2
    for word in ("fetch(", "XMLHttpRequest", "WebSocket", "EventSource", "import(",
                 "sendBeacon", "http://", "https://", "innerHTML", "eval("):
        assert word not in code[0], word
    assert not re.search(r"https?://", hostile_report)
    csp = [a for t, a in p.tags if t == "meta" and a.get("http-equiv") ==
           "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]["content"]


def test_hostile_strings_are_data_never_markup(hostile, hostile_report):
    p = parse(hostile_report)
    assert [t for t, _ in p.tags].count("script") == 2
    assert not [t for t, _ in p.tags if t in ("img", "iframe", "object", "embed")]
    # nothing of the attack survives as raw characters anywhere in the file
    for raw in ("<script>alert", "<img", "\u202e", "\x01", "\x1b"):
        assert raw not in hostile_report, raw
    page = page_of(hostile_report)
    sessions = decode_sessions(page)
    assert len(sessions) == 3
    for s in sessions:
        assert s["ehlo"] == "<script>alert(1)</script>\"'`\\x01\\x1b[2J\\u202egro.elpmaxe"
        assert any(a["label"] == "EHLO " + s["ehlo"] for a in s["ladder"])
    (evil,) = [c for c in page["certs"].values() if c["subject"] and "onerror" in c["subject"]]
    assert evil["subject"] == printable(hostile.subject) and "\\u202e" in evil["subject"]
    mismatch = sessions[1]
    assert mismatch["cert"] == evil["subject"]
    assert any(a["label"] == "Certificate " + evil["subject"] for a in mismatch["ladder"])


def test_problems_from_triage_groups_render_escaped(hostile):
    run = scan(hostile.path, expect_name="mail.fabrikam.com")
    sessions = list(run)
    results = [(str(hostile.path), sessions, run.summary)]
    problems = problems_of(results)
    html = render_report(page_data(results, problems=problems))
    p = parse(html)
    rows = [a for t, a in p.tags if t == "tr" and "problem" in (a.get("class") or "").split()]
    assert len(rows) == len(problems) > 0
    assert [r["data-code"] for r in rows] == [g["code"] for g in problems]
    # the certificate subject reaches the table as text (Jinja escaped it)
    assert "&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in html
    assert [t for t, _ in p.tags].count("script") == 2
    samples = [a for t, a in p.tags if t == "button" and a.get("class") == "sample"]
    assert {(a["data-file"], int(a["data-number"])) for a in samples} == {
        (str(hostile.path), x["session"]) for g in problems for x in g["samples"]}


@pytest.fixture(scope="module")
def examples_scan():
    results = []
    for f in sorted(EXAMPLES.glob("*.pcap*")):
        run = scan(f, jobs=1)
        results.append((str(f), list(run), run.summary))
    return results


def test_every_session_has_its_ladder_in_order_with_times(examples_scan):
    times = {p: frame_times(p, range(1, 100_000)) for p, _, _ in examples_scan}
    page = page_data(examples_scan, times=times)
    sessions = decode_sessions(page)
    expected = [(p, s) for p, ss, _ in examples_scan for s in ss]
    assert [(d["file"], d["number"]) for d in sessions] == [(p, s.number) for p, s in expected]
    assert len(sessions) == 10
    for d, (path, s) in zip(sessions, expected, strict=True):
        arrows = ladder(s)
        assert [a["frame"] for a in d["ladder"]] == [a.frame for a in arrows]
        assert [a["label"] for a in d["ladder"]] == [a.label for a in arrows]
        frames = [a["frame"] for a in d["ladder"]]
        assert frames == sorted(frames) and len(frames) >= 3
        assert all(s.first_frame <= f <= s.last_frame for f in frames)
        for a in d["ladder"]:
            assert a["t_us"] == (times[path][a["frame"]] - s.first_ts_ns) // 1000 >= 0
        assert d["verdicts"] and [(v["code"], v["message"], v["frame"], v["hint"])
                                  for v in d["verdicts"]] == [
            (v.code, printable(v.message), v.frame, printable(v.hint)) for v in s.verdicts]


def test_ladder_marks_the_empty_certificate_alerts_and_refusals(examples_scan):
    sessions = [s for _, ss, _ in examples_scan for s in ss]
    bad = {(a.kind, a.label.split(" ")[0]) for s in sessions for a in ladder(s) if a.bad}
    assert ("tls", "Certificate") in bad and ("alert", "Alert") in bad
    empty = [a for s in sessions for a in ladder(s) if a.label == "Certificate (empty)"]
    assert empty and all(a.bad and a.direction == "c2s" for a in empty)
    smtp_bad = [a for s in sessions for a in ladder(s) if a.kind == "smtp" and a.bad]
    assert smtp_bad and all(a.label[:1] in "45" and a.direction == "s2c" for a in smtp_bad)
    assert not [a for s in sessions for a in ladder(s)
                if a.kind == "smtp" and not a.bad and a.label[:1] in "45"]


def test_certificate_details_are_complete(examples_scan):
    page = page_data(examples_scan)
    sessions = decode_sessions(page)
    originals = [s for _, ss, _ in examples_scan for s in ss]
    seen = 0
    for d, s in zip(sessions, originals, strict=True):
        for which, check in (("client_chain", s.client_check), ("server_chain", s.server_check)):
            if check is None:
                assert d[which] is None
                continue
            chain = page["chains"][d[which]]
            assert chain["certs"] == [c.sha1 for c in check.certs]
            assert chain["problem"] == check.problem and chain["trusted"] == check.trusted
            for c in check.certs:
                shown_cert = page["certs"][c.sha1]
                assert shown_cert["sha256"] == c.sha256 and shown_cert["sha1"] == c.sha1
                assert shown_cert["subject"] == c.subject
                assert shown_cert["not_after"] == c.not_after.isoformat()
                assert shown_cert["san"] == [*c.san_dns, *c.san_ip, *c.san_other]
                seen += 1
    assert seen > 10
    # each certificate is kept once however many sessions show it
    assert len(page["certs"]) < seen


def test_timeline_counts_every_session(examples_scan):
    page = page_data(examples_scan)
    tl = page["timeline"]
    assert sum(map(sum, tl["bins"])) == len(page["sessions"]) == 10
    originals = [s for _, ss, _ in examples_scan for s in ss]
    assert page["with_problems"] == sum(
        any(v.severity in ("error", "warning") for v in s.verdicts) for s in originals) > 0
    p = parse(render_report(page))
    (svg,) = [a for t, a in p.tags if t == "svg" and a.get("id") == "timeline"]
    rects = [a for t, a in p.tags if t == "rect" and "data-code" in a]
    assert rects and {a["data-code"] for a in rects} == {
        c for c, i in ((c, i) for i, c in enumerate(tl["codes"]))
        if any(b[i] for b in tl["bins"])}


def test_samples_name_their_file_when_the_report_has_several(examples_scan):
    """Each file numbers its sessions from 1: with two files a sample reads "a.pcap #2",
    the file named where it changes, as the triage text names it; with one file, "#2"."""
    from fastcap.out.triage import triage

    def labels(results) -> list[list[str]]:
        html = render_report(page_data(
            results, problems=[p.to_dict() for p in triage(results)]))
        return [re.findall(r'<button type="button" class="sample"[^>]*>([^<]*)</button>', row)
                for row in re.findall(r'<tr class="problem.*?</tr>', html, re.S)]

    several = [p.to_dict() for p in triage(examples_scan)]
    want = []
    for p in several:
        row, before = [], None
        for x in p["samples"]:
            name = Path(x["file"]).name
            row.append(f"{name} #{x['session']}" if x["file"] != before else f"#{x['session']}")
            before = x["file"]
        want.append(row)
    assert any(len({x["file"] for x in p["samples"]}) > 1 for p in several)
    assert labels(examples_scan) == want
    one = examples_scan[:1]
    assert labels(one) == [[f"#{x['session']}" for x in p.to_dict()["samples"]]
                           for p in triage(one)]


def test_dom_contract(examples_scan):
    p = parse(render_report(page_data(examples_scan)))
    ids = {a.get("id"): t for t, a in p.tags if a.get("id")}
    assert ids["summary"] == "header" and ids["problems"] == "section"
    assert ids["timeline"] == "svg" and ids["sessions"] == "table" and ids["filter"] == "input"
    assert [a for t, a in p.tags if a.get("id") == "filter"][0]["type"] == "search"
    keys = [a["data-key"] for t, a in p.tags if t == "th" and "data-key" in a]
    # the examples are two files: a column names each session's file
    assert keys == ["file", "number", "client", "server", "ehlo", "tls", "cert", "verdicts"]
    one = parse(render_report(page_data(examples_scan[:1])))
    assert [a["data-key"] for t, a in one.tags if t == "th" and "data-key" in a] == keys[1:]
    assert all("aria-sort" in a for t, a in p.tags if t == "th" and "data-key" in a)


def _title_and_captions(html: str) -> tuple[str, list[str]]:
    """The document's title and each table's caption, as text."""
    class Names(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.stack: list[str] = []
            self.title, self.captions = "", []

        def handle_starttag(self, tag, attrs):
            if tag not in ("meta", "wbr", "input", "br"):  # void: no end tag comes
                self.stack.append(tag)
            if tag == "caption":
                self.captions.append("")

        def handle_endtag(self, tag):
            self.stack.pop()

        def handle_data(self, data):
            if self.stack[-1:] == ["title"] and "svg" not in self.stack:  # not a bar's
                self.title += data
            elif self.stack and self.stack[-1] == "caption":
                self.captions[-1] += data

    n = Names()
    n.feed(html)
    return n.title, n.captions


def test_the_title_names_the_capture_and_what_was_found(examples_scan):
    """Two reports open side by side are told apart by their windows' names: the first
    capture's file name, how many more, and the sessions with problems of all read."""
    problems = sum(summary.with_problems for _, _, summary in examples_scan)
    sessions = sum(len(ss) for _, ss, _ in examples_scan)
    assert 0 < problems < sessions
    first = Path(examples_scan[0][0]).name
    title, _ = _title_and_captions(render_report(page_data(examples_scan)))
    assert title == (f"fastcap report: {first} and {len(examples_scan) - 1} more file(s): "
                     f"{problems} of {sessions} session(s) with problems")
    _, ss, summary = examples_scan[0]
    title, _ = _title_and_captions(render_report(page_data(examples_scan[:1])))
    assert title == (f"fastcap report: {first}: {summary.with_problems} of {len(ss)} "
                     "session(s) with problems")


def test_every_table_has_a_name(examples_scan):
    """A screen reader lists a page's tables by their captions: each table has one."""
    html = render_report(page_data(examples_scan))
    tables = sum(1 for t, _ in parse(html).tags if t == "table")
    _, captions = _title_and_captions(html)
    assert tables >= 3 and len(captions) == tables and all(c.strip() for c in captions)


def test_report_and_scan_html_write_the_same_page(tmp_path, capsys):
    capture = str(EXAMPLES / "all-scenarios.pcapng")
    a, b = tmp_path / "a.html", tmp_path / "b.html"
    assert cli.main(["report", "-j", "1", "--ca-file", str(EXAMPLES / "test-root.pem"),
                     capture, "-o", str(a)]) == 1
    assert capsys.readouterr().out == ""
    assert cli.main(["scan", "-j", "1", "--ca-file", str(EXAMPLES / "test-root.pem"),
                     "--html", str(b), capture]) == 1
    out = capsys.readouterr().out
    assert "session(s) in 1 file(s)" in out  # the normal output is still printed
    pa, pb = page_of(a.read_text("utf-8")), page_of(b.read_text("utf-8"))
    for page in (pa, pb):
        page.pop("generated")
        page.pop("scan_seconds")
    assert pa == pb and len(pa["sessions"]) == 9
    assert all(d["ladder"] and d["ladder"][0]["t_us"] is not None
               for d in decode_sessions(pa))


def test_only_problems_says_how_many_sessions_the_file_held(tmp_path, capsys):
    """With --only-problems the page lists the sessions with problems, and its header still
    counts the file's sessions as the scan's JSON summary does: "6 of 9 shown", not a file of
    6 sessions that all failed."""
    capture = str(EXAMPLES / "all-scenarios.pcapng")
    trust = ["--ca-file", str(EXAMPLES / "test-root.pem")]
    out = tmp_path / "problems.html"
    assert cli.main(["report", "--only-problems", *trust, capture, "-o", str(out)]) == 1
    capsys.readouterr()
    assert cli.main(["scan", "--only-problems", "--format", "json", *trust, capture]) == 1
    (f,) = json.loads(capsys.readouterr().out)["files"]
    total, listed = f["summary"]["sessions"], len(f["sessions"])
    assert total > listed > 0
    html = out.read_text("utf-8")
    text = re.sub(r"\s+", " ", "".join(parse(html).text))
    assert f"{total} ({listed} shown)" in text
    assert f"{listed} of {total} session(s) shown" in text
    page = page_of(html)
    assert [(x["sessions"], x["shown"]) for x in page["files"]] == [(total, listed)]
    assert len(page["sessions"]) == listed


@pytest.mark.parametrize("command", ["report", "scan"])
def test_an_input_that_could_not_be_read_is_named_on_the_page(command, tmp_path, capsys):
    """The JSON lists an unreadable input under `errors`; the page, mailed on its own,
    says the same instead of showing the other files as if they were all."""
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all, " * 20)
    good = str(EXAMPLES / "exchange-online-no-client-cert.pcap")
    out = tmp_path / "r.html"
    trust = ["--ca-file", str(EXAMPLES / "test-root.pem")]
    argv = (["report", *trust, good, str(junk), "-o", str(out)] if command == "report"
            else ["scan", *trust, "--html", str(out), good, str(junk)])
    assert cli.main(argv) == 2
    capsys.readouterr()
    assert cli.main(["scan", "--format", "json", *trust, good, str(junk)]) == 2
    (error,) = json.loads(capsys.readouterr().out)["errors"]
    html = out.read_text("utf-8")
    items = re.findall(r'<li class="path" data-path="([^"]*)">not read: ([^<]*)</li>', html)
    assert items == [(error["path"], error["error"])]
    assert page_of(html)["errors"] == [error]


def test_report_takes_every_scan_option():
    def options(name):
        sub = next(a for a in cli._parser()._actions if a.dest == "command").choices[name]
        return {o for a in sub._actions for o in a.option_strings}

    # scan's -o is the Zeek logs' directory, report's the page: the same names either way
    assert options("scan") - options("report") == {"--format", "--html"}
    assert options("report") - options("scan") == set()
    report = next(a for a in cli._parser()._actions if a.dest == "command").choices["report"]
    assert next(a for a in report._actions if a.dest == "output").required


def test_report_with_evidence_names_the_joined_logs(tmp_path, capsys):
    from fastcap_synth.evidence_pairs import story_sessions, write_paired_capture

    data = Path(__file__).parent / "data" / "evidence"
    capture = tmp_path / "story.pcap"
    write_paired_capture(capture, story_sessions(dt.timedelta(seconds=2.5)))
    logs = []
    for name in ("SEND20260310-1.LOG", "RECV20260310-1.LOG", "postfix-relay1.log"):
        logs += ["--evidence", str(data / name)]
    common = [str(capture), "-j", "1", "--ca-file", str(data / "certs" / "roots.pem"), *logs]
    cli.main(["scan", "--format", "json", *common])
    doc = json.loads(capsys.readouterr().out)
    out = tmp_path / "r.html"
    cli.main(["report", *common, "-o", str(out)])
    sessions = decode_sessions(page_of(out.read_text("utf-8")))
    want = [[{"kind": e["source"], "file": e["file"], "line": e["line"], "delta_s": e["delta_s"]}
             for e in s["evidence"]] for s in doc["files"][0]["sessions"]]
    assert [s["logs"] for s in sessions] == want
    assert any(want)


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "json"])
def test_scan_html_leaves_the_normal_output_alone(fmt, tmp_path, capsys):
    capture = str(EXAMPLES / "all-scenarios.pcapng")
    assert cli.main(["scan", "-j", "1", "--format", fmt, capture]) == 1
    plain = capsys.readouterr().out
    out = tmp_path / "r.html"
    assert cli.main(["scan", "-j", "1", "--format", fmt, "--html", str(out), capture]) == 1
    assert capsys.readouterr().out == plain
    assert len(page_of(out.read_text("utf-8"))["sessions"]) == 9


def test_an_unwritable_report_is_exit_2(tmp_path, capsys):
    target = tmp_path / "missing" / "r.html"
    assert cli.main(["report", "-j", "1", str(EXAMPLES / "all-scenarios.pcapng"),
                     "-o", str(target)]) == 2
    assert "cannot write" in capsys.readouterr().err and not target.exists()
    assert not list(tmp_path.rglob("*.tmp"))


def test_ladder_times_of_a_session_going_on_into_the_next_ring_file(tmp_path, capsys):
    """A session cut by a ring-buffer border has its later arrows timed from the next file,
    where its frame numbers go on: the same times as the report of the uncut capture."""
    pki = make_pki()
    start = int(pki.client.cert.not_valid_before_utc.timestamp()) * 10**9 + 3600 * 10**9
    sc = scenario("no_client_cert", pki, start_ns=start)
    recs = render(converse(sc), sc)
    whole = tmp_path / "whole.pcap"
    write_pcap(whole, recs)
    cut = len(recs) // 3
    first, second = tmp_path / "ring_00001.pcap", tmp_path / "ring_00002.pcap"
    write_pcap(first, recs[:cut])
    write_pcap(second, recs[cut:])
    pages = []
    for name, files in (("whole.html", [whole]), ("ring.html", [first, second])):
        out = tmp_path / name
        assert cli.main(["report", "-j", "1", *map(str, files), "-o", str(out)]) == 1
        pages.append(decode_sessions(page_of(out.read_text("utf-8"))))
    capsys.readouterr()
    (w,), (r,) = pages
    assert r["file"] == str(first) and r["last_frame"] > cut
    assert any(a["frame"] > cut for a in r["ladder"])
    assert [(a["frame"], a["t_us"]) for a in r["ladder"]] == [
        (a["frame"], a["t_us"]) for a in w["ladder"]]
    assert all(a["t_us"] is not None for a in r["ladder"])


def test_the_plain_table_for_no_script_stops_at_its_limit(examples_scan, monkeypatch):
    """The sessions written as plain rows (for a browser without scripts) are the page's first
    ones, in its order, up to PLAIN_ROWS, and the page says how many it leaves to the script:
    a report of 100,000 sessions does not carry a second copy of them all."""
    from fastcap.out.html import writer

    page = page_data(examples_scan)
    total = len(page["sessions"])
    monkeypatch.setattr(writer, "PLAIN_ROWS", total - 3)
    html = render_report(page)
    noscript = html[html.index("<noscript>"):html.index("</noscript>")]
    numbers = [int(n) for n in re.findall(r"<tr>(?:<td class=\"path\">[^<]*</td>)?<td>(\d+)</td>",
                                          noscript)]
    want = [s["number"] for s in decode_sessions(page)][: total - 3]
    assert numbers == want
    assert f"the first {total - 3} of {total}" in noscript
    monkeypatch.setattr(writer, "PLAIN_ROWS", total)
    html = render_report(page)
    assert "the first" not in html[html.index("<noscript>"):html.index("</noscript>")]


def test_only_problems_keeps_each_files_time_span(tmp_path, capsys):
    """The header's row of a file gives its sessions, "9 (6 shown)", and its first session's
    and last frame's times: those of the file's sessions as the full scan's JSON has them,
    not of the sessions --only-problems shows (a file none of whose sessions is shown keeps
    its times too)."""
    fine = str(Path(__file__).resolve().parent / "data" / "corpus" / "sv__smtp-startssl.pcap")
    captures = [str(EXAMPLES / "all-scenarios.pcapng"), fine]
    trust = ["--ca-file", str(EXAMPLES / "test-root.pem")]
    out = tmp_path / "problems.html"
    assert cli.main(["report", "--only-problems", *trust, *captures, "-o", str(out)]) == 1
    capsys.readouterr()
    assert cli.main(["scan", "--format", "json", *trust, *captures]) == 1
    files = json.loads(capsys.readouterr().out)["files"]
    page = page_of(out.read_text("utf-8"))
    want = [(min(s["first_ts_ns"] for s in f["sessions"]),
             max(s["last_ts_ns"] for s in f["sessions"])) for f in files]
    assert [(x["first_ts_ns"], x["last_ts_ns"]) for x in page["files"]] == want
    assert [x["shown"] for x in page["files"]][1] == 0


def test_files_of_one_name_are_labelled_by_the_folders_that_tell_them_apart():
    """A file's label is its name unless another file has that name; then the fewest folders
    before it that no other path ends with, else the whole path."""
    from fastcap.out.filelabels import file_labels

    paths = ["/cap/one/mail.pcap", "/cap/two/mail.pcap", "/x/a/b.pcap", "/y/a/b.pcap",
             "rel/c.pcap", "d/rel/c.pcap", "e.pcap"]
    labels = file_labels(paths)
    assert labels == {"/cap/one/mail.pcap": "one/mail.pcap", "/cap/two/mail.pcap": "two/mail.pcap",
                      "/x/a/b.pcap": "x/a/b.pcap", "/y/a/b.pcap": "y/a/b.pcap",
                      "rel/c.pcap": "rel/c.pcap", "d/rel/c.pcap": "d/rel/c.pcap",
                      "e.pcap": "e.pcap"}
    # a path that is all of another's tail ("rel/c.pcap") can only be named in full
    assert all(p.endswith(label) for p, label in labels.items())
    assert len(set(labels.values())) == len(paths)


def test_each_session_holds_its_connections_frames_as_wireshark_numbers_them(
        tmp_path, tshark):
    """Two SMTP connections at once and a connection on a port not scanned, their frames
    interleaved: each session's frames in the page (what `frame N` answers by) are exactly the
    frames tshark puts in that session's TCP stream within its first and last frame, the
    ACKs and data segments no ladder names included, the other connections' frames not."""
    import subprocess

    from fastcap_synth.smtpgen import SmtpScenario, smtp_records

    records = []
    for i, port in enumerate((25, 8025, 25)):
        records += smtp_records(SmtpScenario(client_ip=f"10.1.2.{i + 1}", client_port=40000 + i,
                                             server_port=port, starttls_offered=False,
                                             start_ns=10**9 + i * 5 * 10**6))
    records.sort(key=lambda r: r.ts_ns)
    capture, out = tmp_path / "overlap.pcap", tmp_path / "overlap.html"
    write_pcap(capture, records)
    assert cli.main(["report", str(capture), "-o", str(out)]) in (0, 1)
    sessions = decode_sessions(page_of(out.read_text(encoding="utf-8")))
    assert len(sessions) == 2
    fields = subprocess.run([tshark, "-n", "-r", str(capture), "-T", "fields",
                             "-e", "frame.number", "-e", "tcp.stream"],
                            capture_output=True, text=True, check=True).stdout
    stream = {int(f): s for f, s in (line.split("\t") for line in fields.splitlines())}
    for s in sessions:
        mine = stream[s["first_frame"]]
        want = [f for f in range(s["first_frame"], s["last_frame"] + 1) if stream[f] == mine]
        assert s["frames"] == want, s["number"]
        assert len(want) < s["last_frame"] - s["first_frame"] + 1   # the case: interleaved
        named = {a["frame"] for a in s["ladder"]}
        assert set(want) - named - {s["first_frame"], s["last_frame"]}  # ACKs, in no ladder
