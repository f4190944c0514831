"""The triage summary: problem verdicts grouped by (code, client certificate thumbprint,
server), with counts, distinct clients, first and last time, sample sessions and the fix;
the block that heads `scan`'s table, the shortened table and --details, and JSON `problems`
equal to the block.  A capture of 200 sessions repeating four causes stands for the big
capture a mail admin scans."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import random
import re
from collections import defaultdict
from pathlib import Path

import pytest

from fastcap import cli
from fastcap.cli import main
from fastcap.out import report
from fastcap.out.triage import MAX_SAMPLES, Problem, format_triage, server_name, triage
from fastcap.run.scanner import scan
from fastcap_synth.scenarios import make_pki, scenario
from fastcap_synth.smtpgen import SERVER_NAME, converse, render, smtp_records
from fastcap_synth.writers import write_pcap

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CA = str(EXAMPLES / "test-root.pem")
SCENARIOS = str(EXAMPLES / "all-scenarios.pcapng")
EXO = str(EXAMPLES / "exchange-online-no-client-cert.pcap")

# cause -> (sessions, distinct client addresses); shuffled together into one capture
CAUSES = {"no_client_cert": (70, 3), "cert_not_requested": (60, 1),
          "expired_client_cert": (40, 2), "starttls_refused": (30, 4)}
OTHER = "mx.other.example"  # every 7th no_client_cert session goes to this server instead
SECOND = 1_000_000_000


@dataclasses.dataclass
class Many:
    path: Path
    ca: Path
    causes: list[str]  # cause of session k at [k - 1]
    clients: list[str]  # client address of session k at [k - 1]
    servers: list[str]
    expired_sha1: str
    sessions: list  # as scanned


def _client(cause: str, k: int) -> str:
    return f"203.0.113.{10 + k % CAUSES[cause][1]}"


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> Many:
    d = tmp_path_factory.mktemp("triage")
    pki = make_pki()
    # 01:00 UTC on the day after the certificates' start: within their validity, and the
    # 200 sessions never cross midnight, where the table's "seen" column would repeat the
    # day and no longer line up with README's example
    day = pki.client.cert.not_valid_before_utc + dt.timedelta(days=1)
    base = int(day.replace(hour=1, minute=0, second=0, microsecond=0).timestamp()) * SECOND
    causes = [c for c, (n, _) in CAUSES.items() for _ in range(n)]
    random.Random(17).shuffle(causes)
    recs, clients, servers = [], [], []
    for k, cause in enumerate(causes, 1):
        extra: dict = {}
        server = SERVER_NAME
        if cause == "no_client_cert" and k % 7 == 0:
            extra = {"sni": None, "banner": f"220 {OTHER} ESMTP ready"}
            server = OTHER
        sc = scenario(cause, pki, client_ip=_client(cause, k), client_port=40000 + k,
                      start_ns=base + k * SECOND, **extra)
        recs += render(converse(sc), sc)
        clients.append(_client(cause, k))
        servers.append(server)
    path = d / "many.pcap"
    write_pcap(path, recs)
    ca = d / "root.pem"
    ca.write_bytes(pki.root.pem)
    sha1 = hashlib.sha1(pki.client_expired.der).hexdigest().upper()
    return Many(path, ca, causes, clients, servers, sha1, list(scan(path, ca_file=ca)))


def _oracle(results) -> dict[tuple, list]:
    """Problem verdicts grouped the obvious way: key -> the (file, session) list, in order."""
    out: dict[tuple, list] = defaultdict(list)
    for path, sessions, _ in results:
        for s in sessions:
            leaf = s.client_check.certs[0] if s.client_check and s.client_check.certs else None
            for code in dict.fromkeys(v.code for v in s.verdicts
                                      if v.severity in ("error", "warning")):
                out[(code, leaf.sha1 if leaf else None, server_name(s))].append((path, s))
    return out


def test_groups_are_the_four_causes_split_by_server_and_certificate(many):
    problems = triage([(str(many.path), many.sessions, None)])
    by_key = {(p.code, p.thumbprint, p.server): p for p in problems}
    ks = defaultdict(list)  # (cause, server) -> session numbers, by construction
    for k, (cause, server) in enumerate(zip(many.causes, many.servers, strict=True), 1):
        ks[(cause, server)].append(k)
    expected = {  # code, thumbprint, server -> the sessions that must be in the group
        ("no_client_cert", None, SERVER_NAME): ks[("no_client_cert", SERVER_NAME)],
        ("no_client_cert", None, OTHER): ks[("no_client_cert", OTHER)],
        ("client_cert_not_requested", None, SERVER_NAME): ks[("cert_not_requested",
                                                              SERVER_NAME)],
        ("client_cert_expired", many.expired_sha1, SERVER_NAME): ks[("expired_client_cert",
                                                                     SERVER_NAME)],
        ("tls_alert", many.expired_sha1, SERVER_NAME): ks[("expired_client_cert", SERVER_NAME)],
        ("starttls_refused", None, SERVER_NAME): ks[("starttls_refused", SERVER_NAME)],
        ("relay_denied", None, SERVER_NAME): ks[("starttls_refused", SERVER_NAME)],
    }
    assert set(by_key) == set(expected)
    assert sum(len(v) for k, v in expected.items() if k[2] == OTHER) == 10
    by_number = {s.number: s for s in many.sessions}
    for key, numbers in expected.items():
        p = by_key[key]
        assert p.sessions == len(numbers), key
        assert p.clients == len({many.clients[k - 1] for k in numbers}), key
        assert p.samples == tuple((str(many.path), k) for k in numbers[:MAX_SAMPLES])
        # the README's promise: the first three session numbers of each group (all groups
        # here have more than three)
        assert [n for _f, n in p.samples] == numbers[:3]
        assert p.first_ts_ns == by_number[numbers[0]].first_ts_ns
        assert p.last_ts_ns == max(by_number[k].last_ts_ns for k in numbers)
        assert p.first_ts_ns // SECOND == by_number[1].first_ts_ns // SECOND + numbers[0] - 1
        first = next(v for v in by_number[numbers[0]].verdicts if v.code == key[0])
        assert (p.message, p.fix, p.severity) == (first.message, first.hint, first.severity)
        assert p.fix  # every grouped problem says what to do
    assert by_key[("client_cert_expired", many.expired_sha1, SERVER_NAME)].cert_subject == (
        "CN=mail.fabrikam.com")
    assert by_key[("no_client_cert", None, SERVER_NAME)].clients == 3
    assert by_key[("client_cert_not_requested", None, SERVER_NAME)].clients == 1
    assert by_key[("starttls_refused", None, SERVER_NAME)].clients == 4


def test_groups_equal_the_obvious_grouping(many):
    results = [(str(many.path), many.sessions, None)]
    oracle = _oracle(results)
    got = {(p.code, p.thumbprint, p.server): p for p in triage(results)}
    assert set(got) == set(oracle)
    for key, members in oracle.items():
        assert got[key].sessions == len(members)
        assert got[key].samples == tuple((f, s.number) for f, s in members[:MAX_SAMPLES])


def test_order_is_severity_then_sessions_then_code_then_server(many):
    problems = triage([(str(many.path), many.sessions, None)])
    assert [(p.severity, p.sessions, p.code, p.server) for p in problems] == [
        ("error", 60, "no_client_cert", SERVER_NAME),
        ("error", 40, "client_cert_expired", SERVER_NAME),
        ("error", 40, "tls_alert", SERVER_NAME),
        ("error", 30, "relay_denied", SERVER_NAME),
        ("error", 30, "starttls_refused", SERVER_NAME),
        ("error", 10, "no_client_cert", OTHER),
        # a warning comes after every error, though more sessions have it
        ("warning", 60, "client_cert_not_requested", SERVER_NAME),
    ]


def test_a_session_counts_once_and_the_worst_severity_wins(many):
    a, b = [s for s in many.sessions if many.causes[s.number - 1] == "no_client_cert"][:2]
    v = a.verdicts[0]
    assert v.code == "no_client_cert"
    twice = dataclasses.replace(a, verdicts=[v, v])  # e.g. one code for two chains
    milder = dataclasses.replace(b, verdicts=[dataclasses.replace(v, severity="warning")])
    (p,) = triage([("x.pcap", [milder, twice], None)])
    assert (p.sessions, p.severity, p.samples) == (2, "error", (("x.pcap", b.number),
                                                                  ("x.pcap", a.number)))
    # given out of time order: first and last are still the earliest start and latest end
    assert a.last_ts_ns < b.last_ts_ns
    assert (p.first_ts_ns, p.last_ts_ns) == (a.first_ts_ns, b.last_ts_ns)
    info = dataclasses.replace(a, verdicts=[dataclasses.replace(v, severity="info")])
    assert triage([("x.pcap", [info], None)]) == []  # only problems are grouped


def test_json_form_of_a_problem():
    p = Problem("no_client_cert", "error", None, None, "mx.example", 3, 2,
                1_705_311_000_123_456_789, 1_705_311_060_000_000_000,
                (("a.pcap", 1), ("a.pcap", 4)), "msg", "fix it")
    d = p.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["thumbprint"] is None and d["samples"] == [{"file": "a.pcap", "session": 1},
                                                        {"file": "a.pcap", "session": 4}]
    assert d["first_seen"] == "2024-01-15T09:30:00.123456Z"
    assert d["last_seen"] == "2024-01-15T09:31:00.000000Z"
    assert {k: d[k] for k in ("code", "severity", "server", "sessions", "clients", "message",
                              "fix", "first_ts_ns")} == {
        "code": "no_client_cert", "severity": "error", "server": "mx.example", "sessions": 3,
        "clients": 2, "message": "msg", "fix": "fix it",
        "first_ts_ns": 1_705_311_000_123_456_789}
    text = format_triage([p], total_sessions=9, with_problems=3)
    assert text.splitlines()[0] == "1 problem(s) in 3 of 9 session(s)"
    assert "2024-01-15 09:30:00 .. 09:31:00" in text and "#1, #4" in text
    assert format_triage([], total_sessions=9) == "no problems in 9 session(s)"


def test_seen_spanning_midnight_repeats_the_day():
    """A group seen from one day into the next gives the last time with its date: the time
    alone would read as the first day's."""
    first = dt.datetime(2024, 1, 15, 23, 59, 30, tzinfo=dt.UTC)
    last = first + dt.timedelta(minutes=1)
    p = Problem("no_client_cert", "error", None, None, "mx.example", 2, 1,
                int(first.timestamp()) * SECOND, int(last.timestamp()) * SECOND,
                (("a.pcap", 1), ("a.pcap", 2)), "msg", "fix it")
    text = format_triage([p], total_sessions=2)
    assert "2024-01-15 23:59:30 .. 2024-01-16 00:00:30" in text


def _run(capsys, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(argv))
    return code, capsys.readouterr().out


_ROW = re.compile(r"^([!~])  ")


def _parse_block(text: str) -> list[dict]:
    """The triage block read back: per group its row's cells, example and fix lines."""
    lines = text.splitlines()
    head = re.split(r" {2,}", lines[1].strip())
    assert head == ["sessions", "clients", "problem", "server", "client certificate",
                    "seen (UTC)", "sessions e.g."]
    groups = []
    for i, line in enumerate(lines[2:], 2):
        if _ROW.match(line):
            mark, sessions, clients, code, server, cert, seen, samples = re.split(r" {2,}",
                                                                                  line)
            example, fix = lines[i + 1], lines[i + 2]
            groups.append({"mark": mark, "sessions": int(sessions), "clients": int(clients),
                           "code": code, "server": server, "cert": cert, "seen": seen,
                           "samples": samples, "example": example, "fix": fix})
    return groups


def _seen(d: dict) -> str:
    first, last = (dt.datetime.fromisoformat(d[k].replace("Z", "+00:00"))
                   for k in ("first_seen", "last_seen"))
    a, b = (t.strftime("%Y-%m-%d %H:%M:%S") for t in (first, last))
    if a == b:
        return a
    return f"{a} .. {b[11:] if first.date() == last.date() else b}"


def _same_groups(block: list[dict], problems: list[dict], several: bool) -> None:
    assert len(block) == len(problems)
    for g, p in zip(block, problems, strict=True):
        assert g["mark"] == {"error": "!", "warning": "~"}[p["severity"]]
        assert (g["sessions"], g["clients"], g["code"], g["server"]) == (
            p["sessions"], p["clients"], p["code"], p["server"])
        if p["thumbprint"] is None:
            assert g["cert"] == "none"
        else:
            assert g["cert"] == f"{p['cert_subject']} ({p['thumbprint'][:8]}…)"
        assert g["seen"] == _seen(p)
        numbers = [int(n) for n in re.findall(r"#(\d+)", g["samples"])]
        assert numbers == [x["session"] for x in p["samples"]]
        if several:
            names = [Path(x["file"]).name for x in p["samples"]]
            assert g["samples"].startswith(f"{names[0]} #")
        assert g["example"].endswith(f"#{numbers[0]}: {p['message']}")
        assert g["fix"] == f"   fix: {p['fix']}"


def test_table_output_starts_with_the_triage_and_is_shortened(capsys, many):
    code, out = _run(capsys, "scan", "-j", "1", "--ca-file", str(many.ca), str(many.path))
    assert code == 1
    block, table, summary = out.split("\n\n")[:3]
    assert block.startswith("7 problem(s) in 200 of 200 session(s)\n")
    assert len(_parse_block(block)) == 7
    rows = table.splitlines()
    assert rows[0].split()[:2] == ["#", "frames"]
    assert [r.split()[0] for r in rows[1:-1]] == [str(n) for n in range(1, 51)]
    assert rows[-1] == ("... 150 more session(s): --details lists every session and its "
                        "findings")
    assert "Findings:" not in out
    assert summary.startswith("200 session(s) in 1 file(s); 200 with problems")
    for flag in ("--details", "-v"):
        code, full = _run(capsys, "scan", "-j", "1", flag, "--ca-file", str(many.ca),
                          str(many.path))
        assert code == 1 and full.startswith(block + "\n\n")
        table = full.split("\n\n")[1].splitlines()
        assert [r.split()[0] for r in table[1:]] == [str(n) for n in range(1, 201)]
        assert "more session(s)" not in full
        assert full.count("\n  session ") == 200 and "\nFindings:\n" in full


def test_readme_example_is_this_capture(capsys, many):
    """README's capture of 200 sessions repeating four causes is this one: its groups (all
    seven, in order), counts, servers, certificates' subjects and sample sessions, and the
    table's shown rows, are what the scan prints; the times and thumbprint differ by run."""
    readme = (EXAMPLES.parent / "README.md").read_text(encoding="utf-8")
    shown = readme.split("$ fastcap scan --ca-file root.pem relay.pcap\n", 1)[1]
    shown = shown.split("```", 1)[0]
    code, out = _run(capsys, "scan", "-j", "1", "--ca-file", str(many.ca), str(many.path))
    assert code == 1
    shown_block, shown_table = shown.split("\n\n")
    block, table = out.split("\n\n")[:2]
    assert shown_block.splitlines()[:2] == block.splitlines()[:2]

    def cells(g: dict) -> tuple:
        return (g["mark"], g["sessions"], g["clients"], g["code"], g["server"],
                g["cert"].split(" (")[0], g["samples"])

    shown_rows = [re.split(r" {2,}", r) for r in shown_block.splitlines() if _ROW.match(r)]
    assert [(m, int(n), int(c), code, server, cert.split(" (")[0], samples)
            for m, n, c, code, server, cert, _seen, samples in shown_rows] == [
        cells(g) for g in _parse_block(block)]
    printed = table.splitlines()
    for line in shown_table.splitlines():
        assert line == "..." or line in printed, line


def test_json_problems_equal_the_text_block(capsys, many):
    argv = ["scan", "-j", "1", "--ca-file", str(many.ca), str(many.path)]
    _code, out = _run(capsys, *argv)
    _code, doc = _run(capsys, *argv, "--format", "json")
    doc = json.loads(doc)
    problems = doc["problems"]
    assert [p.to_dict() for p in triage([(str(many.path), many.sessions, None)])] == problems
    _same_groups(_parse_block(out.split("\n\n")[0]), problems, several=False)
    _code, only = _run(capsys, *argv, "--format", "json", "--only-problems")
    assert json.loads(only)["problems"] == problems
    _code, jsonl = _run(capsys, *argv, "--format", "jsonl")  # unchanged: sessions only
    assert len(jsonl.splitlines()) == 200 and "problems" not in json.loads(
        jsonl.splitlines()[0])


def test_example_captures_one_cause_across_two_files(capsys):
    argv = ["scan", "-j", "1", "--ca-file", CA, SCENARIOS, EXO]
    code, out = _run(capsys, *argv)
    assert code == 1
    block = out.split("\n\n")[0]
    assert block.startswith("9 problem(s) in 7 of 10 session(s)\n")
    assert out.split("\n\n")[1].startswith(f"== {SCENARIOS}\n#  frames")
    _code, doc = _run(capsys, *argv, "--format", "json")
    problems = json.loads(doc)["problems"]
    _same_groups(_parse_block(block), problems, several=True)
    first = problems[0]
    assert (first["code"], first["sessions"], first["clients"]) == ("no_client_cert", 2, 2)
    assert [(x["file"], x["session"]) for x in first["samples"]] == [(SCENARIOS, 2), (EXO, 1)]
    assert "all-scenarios.pcapng #2, exchange-online-no-client-cert.pcap #1" in block
    relay = next(p for p in problems if p["code"] == "relay_denied")
    assert "all-scenarios.pcapng #7, #8" in block and relay["sessions"] == 2
    # tls_alert twice: the expired and the untrusted certificate are two causes
    alerts = [p for p in problems if p["code"] == "tls_alert"]
    assert len(alerts) == 2 and len({p["thumbprint"] for p in alerts}) == 2
    assert problems[-1]["severity"] == "warning"


def test_the_seed_example_heads_with_its_one_problem(capsys):
    code, out = _run(capsys, "scan", "-j", "1", "--ca-file", CA, EXO)
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "1 problem(s) in 1 of 1 session(s)"
    assert lines[2].split()[:5] == ["!", "1", "1", "no_client_cert",
                                    "contoso-com.mail.protection.outlook.com"]
    assert lines[3].startswith("   #1: server requested a client certificate (frame 10)")
    assert lines[4].startswith("   fix: no certificate is bound to the sending connector")
    assert lines[5] == "" and lines[6].startswith("#  frames")


def test_a_hostile_server_name_is_printed_escaped(capsys, tmp_path):
    pki = make_pki()
    sc = scenario("starttls_not_offered", pki, banner="220 evil\x1b[2J.example ESMTP")
    path = tmp_path / "evil.pcap"
    write_pcap(path, smtp_records(sc))
    code, out = _run(capsys, "scan", "-j", "1", str(path))
    assert code == 1 and "\x1b" not in out
    assert "evil\\x1b[2J.example" in out.split("\n\n")[0]


def test_the_table_threshold_is_one_number():
    assert cli.TABLE_ROWS == report.TABLE_ROWS == 50


def test_samples_from_files_of_one_name_name_their_folders(tmp_path, capsys):
    """one/mail.pcap and two/mail.pcap: the triage block's samples name each file by enough
    of its path to tell which (the JSON's samples give the full paths), never both as
    "mail.pcap"."""
    paths = []
    for folder, example in (("one", "all-scenarios.pcapng"),
                            ("two", "exchange-online-no-client-cert.pcap")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "mail.pcap").write_bytes((EXAMPLES / example).read_bytes())
        paths.append(str(tmp_path / folder / "mail.pcap"))
    _code, out = _run(capsys, "scan", "--format", "json", *paths)
    samples = {(s["file"], s["session"]) for p in json.loads(out)["problems"]
               for s in p["samples"]}
    assert {f for f, _n in samples} == set(paths)
    _code, text = _run(capsys, "scan", *paths)
    block = text.split("\n\n")[0]
    named = re.findall(r"([^\s,#]+) #(\d+)", block)
    assert named and all(name in ("one/mail.pcap", "two/mail.pcap") for name, _n in named), named
    for name, n in named:
        assert (str(tmp_path / name), int(n)) in samples
