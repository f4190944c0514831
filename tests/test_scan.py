"""`fastcap scan` end to end: verdicts per scenario, output formats and their schema, exit
codes, certificate export, memoised analysis, and every corpus capture."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

import fastcap
from fastcap.judge.x509check import Analyzer, TrustStore
from fastcap.run.scanner import scan
from fastcap_synth.scenarios import make_pki, scenario
from fastcap_synth.smtpgen import converse, render
from fastcap_synth.writers import write_pcap

from .corpus import corpus_expected, corpus_params

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SEED = EXAMPLES / "exchange-online-no-client-cert.pcap"
ALL = EXAMPLES / "all-scenarios.pcapng"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fastcap.cli", "scan", *args],
                          capture_output=True, text=True, timeout=300)


def test_seed_scenario_is_no_client_cert():
    (s,) = list(scan(SEED))
    codes = [v.code for v in s.verdicts]
    assert codes[0] == "no_client_cert" and "exchange_online_peer" in codes
    v = s.verdicts[0]
    assert v.severity == "error" and v.frame == 11
    assert "connector" in v.hint.lower() or "certificate" in v.hint.lower()


def test_cli_table_and_exit_code_on_the_seed_example():
    """README's first command, exactly: the seed case and nothing else is wrong."""
    r = run_cli("--ca-file", str(EXAMPLES / "test-root.pem"), str(SEED))
    assert r.returncode == 1, r.stderr
    assert "no_client_cert, exchange_online_peer" in r.stdout
    assert "untrusted" not in r.stdout
    assert "none (empty Certificate)" in r.stdout and "no_client_cert" in r.stdout
    assert "fix:" in r.stdout and "1 session(s) in 1 file(s); 1 with problems" in r.stdout
    assert "Traceback" not in r.stderr


@pytest.fixture(scope="module")
def pki():
    return make_pki()


@pytest.fixture(scope="module")
def scenario_capture(tmp_path_factory, pki):
    """All standard scenarios in one capture, sessions in this order, plus a trust file."""
    d = tmp_path_factory.mktemp("scan")
    names = ["ok_client_cert", "no_client_cert", "cert_not_requested", "expired_client_cert",
             "untrusted_ca", "name_mismatch", "starttls_refused", "starttls_not_offered",
             "tls13_client_cert"]
    recs = []
    for i, name in enumerate(names):
        sc = scenario(name, pki, client_port=41000 + i,
                      start_ns=pki.client.cert.not_valid_before_utc.timestamp().__int__()
                      * 10**9 + 7200 * 10**9 + i * 10**9)
        recs += render(converse(sc), sc)
    path = d / "all.pcap"
    write_pcap(path, recs)
    ca = d / "root.pem"
    ca.write_bytes(pki.root.pem)
    return path, ca, names


EXPECTED_CODES = {
    "ok_client_cert": {"ok"},
    "no_client_cert": {"no_client_cert"},
    "cert_not_requested": {"client_cert_not_requested"},
    "expired_client_cert": {"client_cert_expired", "tls_alert"},
    # Only the leaf is sent, and nothing (not even its organization) ties its issuer to the
    # trusted root: a private CA.
    "untrusted_ca": {"client_cert_untrusted_ca", "tls_alert"},
    "name_mismatch": {"client_cert_name_mismatch"},
    "starttls_refused": {"starttls_refused"},
    "starttls_not_offered": {"starttls_not_offered"},
    "tls13_client_cert": {"tls13_encrypted", "client_cert_inferred_present"},
}


def test_each_scenario_gets_its_verdict(scenario_capture):
    path, ca, names = scenario_capture
    run = scan(path, ca_file=ca, expect_name="mail.fabrikam.com")
    sessions = list(run)
    summary = run.summary
    assert [s.number for s in sessions] == list(range(1, len(names) + 1))
    for s, name in zip(sessions, names, strict=True):
        codes = {v.code for v in s.verdicts} - {"exchange_online_peer", "plaintext_only",
                                                  "relay_denied"}
        assert codes == EXPECTED_CODES[name], (name, [v.to_dict() for v in s.verdicts])
    assert summary.sessions == len(names)
    assert summary.with_problems == len(names) - 1 - 1  # ok and tls13 (info) are not problems


def test_json_schema_is_pinned(scenario_capture):
    path, ca, _names = scenario_capture
    r = run_cli("--format", "json", "--ca-file", str(ca), str(path))
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    assert set(doc) == {"schema_version", "files", "errors", "problems"}
    assert doc["schema_version"] == 1
    assert set(doc["problems"][0]) == {"code", "severity", "thumbprint", "cert_subject",
                                       "server", "sessions", "clients", "first_ts_ns",
                                       "last_ts_ns", "first_seen", "last_seen", "samples",
                                       "message", "fix"}
    assert set(doc["problems"][0]["samples"][0]) == {"file", "session"}
    (f,) = doc["files"]
    assert set(f) == {"path", "summary", "sessions"}
    assert set(f["summary"]) == {"path", "sessions", "with_problems", "frames", "verdicts",
                                 "warnings", "skipped", "unreadable", "limits",
                                 "checksums_verified", "checksums_sampled",
                                 "checksums_rewritten"}
    s = f["sessions"][1]
    assert set(s) == {"schema_version", "file", "number", "client", "server", "first_frame",
                      "last_frame", "first_ts_ns", "last_ts_ns", "frames", "continues_into", "tcp",
                      "smtp", "tls",
                      "client_cert_check", "server_cert_check", "verdicts",
                      "mid_session"}
    assert s["mid_session"] is None  # the capture holds the connection from its SYN
    assert set(s["verdicts"][0]) == {"code", "severity", "message", "hint", "frame"}
    assert s["verdicts"][0]["code"] == "no_client_cert"
    assert s["tls"]["client_certificate"] == [] or s["tls"]["client_certificate"] is not None


def test_jsonl_and_csv_round_trip(scenario_capture):
    path, ca, names = scenario_capture
    r = run_cli("--format", "jsonl", "--ca-file", str(ca), str(path))
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["number"] for x in lines] == list(range(1, len(names) + 1))
    r = run_cli("--format", "csv", "--ca-file", str(ca), str(path))
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == len(names)
    assert rows[1]["verdicts"].split(";")[0] == "no_client_cert"
    assert rows[1]["client_certificate"] == "none (empty Certificate)"
    assert rows[0]["client_cert_sha1"] == lines[0]["client_cert_check"]["certs"][0]["sha1"]


def test_csv_is_one_lf_terminated_line_per_session():
    """As README says: a header, then one line per session ending in LF (no CR anywhere), a
    multi-line greeting written with ``\\n`` inside its cell, so the lines are the records."""
    corpus = Path(__file__).resolve().parent / "data" / "corpus" / "zeek__smtp.pcap"
    r = subprocess.run([sys.executable, "-m", "fastcap.cli", "scan", "--format", "csv",
                        str(corpus)], capture_output=True, timeout=300)
    assert r.returncode in (0, 1), r.stderr
    out = r.stdout
    assert b"\r" not in out and out.endswith(b"\n")
    lines = out.decode().split("\n")[:-1]
    assert len(lines) == 3  # header and two sessions
    rows = [next(csv.reader([line])) for line in lines]
    assert {len(row) for row in rows} == {len(rows[0])}
    banner = dict(zip(rows[0], rows[1], strict=True))["banner"]
    assert banner.startswith("xc90.websitewelcome.com ESMTP Exim") and "\\nWe do not" in banner
    assert rows == list(csv.reader(io.StringIO(out.decode(), newline="")))


def test_csv_cells_cannot_start_a_formula(tmp_path, pki):
    sc = scenario("starttls_not_offered", pki, ehlo_name="=HYPERLINK(\"http://x\")")
    from fastcap_synth.smtpgen import smtp_records

    path = tmp_path / "evil.pcap"
    write_pcap(path, smtp_records(sc))
    r = run_cli("--format", "csv", str(path))
    (row,) = list(csv.DictReader(io.StringIO(r.stdout)))
    assert row["ehlo"].startswith("'=")


@pytest.mark.parametrize(("text", "guarded"), [
    ("=1+1", True), (" =HYPERLINK(\"http://x\")", True), ("\u00a0=2+2", True),
    ('"=1+1', True), ("'@SUM(A1)", True), ("\uff1d1+1", True), ("  \u3000-2", True),
    ("\t=1", False),  # escaped to \\t=1 first: no tab starts the cell
    ("mail.example.com", False), ("a=b", False), ("", False), ("   ", False),
    ("-", False), (" - ", False), ("--", True), ("-1", True),  # a lone dash is "none"
])
def test_a_csv_cell_that_a_spreadsheet_could_read_as_a_formula_is_quoted(text, guarded):
    """Spaces and quotes before the formula sign are trimmed or dropped by some spreadsheets on
    import; the full-width signs are read as formulas by some too."""
    from fastcap.out.report import _cell
    from fastcap.out.textsafe import printable

    assert _cell(text) == ("'" if guarded else "") + printable(text)


def test_the_csv_client_certificate_cell_is_the_tables_text_escaped_once(tmp_path):
    """client_cert_text is printable already; the CSV cell must not escape its backslashes
    again (a subject with an escaped comma, RFC 4514's `CN=a\\,b`)."""
    from fastcap_synth.certs import make_leaf
    from fastcap_synth.tlsgen import client_context

    pki = make_pki()
    odd = make_leaf(pki.intermediate, "relay,one.contoso.com", sans=["relay.contoso.com"])
    start = int(odd.cert.not_valid_before_utc.timestamp() + 7200) * 10**9
    sc = scenario("ok_client_cert", pki, client_ctx=client_context(cert=odd),
                  client_cert=odd, start_ns=start)
    path = tmp_path / "comma.pcap"
    write_pcap(path, render(converse(sc), sc))
    (row,) = csv.DictReader(io.StringIO(run_cli("--format", "csv", str(path)).stdout))
    assert row["client_certificate"] == "CN=relay\\\\,one.contoso.com"  # printable("\\,")


def test_table_escapes_an_attackers_control_characters(tmp_path, pki):
    """An EHLO name with ANSI escapes must not reach the admin's terminal as escapes."""
    sc = scenario("starttls_not_offered", pki, ehlo_name="evil\x1b[2J\x1b]0;pwn\x07.example")
    from fastcap_synth.smtpgen import smtp_records

    path = tmp_path / "ansi.pcap"
    write_pcap(path, smtp_records(sc))
    r = run_cli(str(path))
    assert r.returncode == 1 and "\x1b" not in r.stdout and "\x07" not in r.stdout
    assert "evil\\x1b[2J" in r.stdout


def test_only_problems_and_export_certs(scenario_capture, tmp_path):
    path, ca, names = scenario_capture
    out = tmp_path / "certs"
    r = run_cli("--format", "jsonl", "--only-problems", "--ca-file", str(ca),
                "--export-certs", str(out), str(path))
    numbers = [json.loads(x)["number"] for x in r.stdout.splitlines()]
    assert 1 not in numbers and 2 in numbers
    files = sorted(p.name for p in out.iterdir())
    assert files and all(len(n.split(".")[0]) == 64 for n in files)
    assert {n.split(".")[1] for n in files} == {"der", "pem"}
    victim = out / files[0]
    victim.write_bytes(b"something else")
    r = run_cli("--format", "jsonl", "--export-certs", str(out), str(path))
    assert victim.read_bytes() == b"something else"
    assert "exists with other content; not overwritten" in r.stderr


@pytest.mark.parametrize("where", ["a-file", "a-file/below"])
def test_an_export_directory_that_cannot_be_made_is_one_line_and_exit_2(tmp_path, where):
    (tmp_path / "a-file").write_bytes(b"not a directory")
    target = tmp_path / where
    r = run_cli("--format", "jsonl", "--export-certs", str(target), str(SEED))
    assert r.returncode == 2 and r.stdout == ""
    (line,) = r.stderr.splitlines()
    assert line.startswith(f"fastcap: cannot write certificates in {target}: ")


def test_a_certificate_that_cannot_be_written_is_a_warning_and_the_rest_are_written(
        scenario_capture, tmp_path, pki):
    path, ca, _ = scenario_capture
    out = tmp_path / "certs"
    blocked = out / f"{pki.server.sha256}.der"
    blocked.mkdir(parents=True)  # a directory where the server certificate's DER would go
    r = run_cli("--format", "jsonl", "--ca-file", str(ca), "--export-certs", str(out), str(path))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"fastcap: warning: {blocked}: cannot write: " in r.stderr
    assert (out / f"{pki.server.sha256}.pem").read_bytes() == pki.server.pem
    assert (out / f"{pki.client.sha256}.der").read_bytes() == pki.client.der
    assert not list(out.glob("*.tmp"))


def test_analysis_is_memoised_across_sessions(tmp_path, pki):
    sc0 = scenario("ok_client_cert", pki)
    conv = converse(sc0)
    recs = []
    for i in range(200):  # the same handshake replayed by 200 clients
        sc0.client_port = 20000 + i
        sc0.start_ns = 1_800_000_000 * 10**9 + i * 10**8
        recs += render(conv, sc0)
    path = tmp_path / "many.pcap"
    write_pcap(path, recs)
    ca = tmp_path / "root.pem"
    ca.write_bytes(pki.root.pem)
    analyzer = Analyzer(TrustStore.from_pem_file(ca))
    sessions = list(scan(path, analyzer=analyzer))
    assert len(sessions) == 200
    assert analyzer.cache_misses <= 4 and analyzer.cache_hits >= 396


def test_python_api_is_exported():
    assert fastcap.scan is scan
    (s,) = list(fastcap.scan(SEED))
    assert s.to_dict()["verdicts"][0]["code"] == "no_client_cert"


def test_bad_input_exit_2_one_line(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    r = run_cli(str(bad))
    assert r.returncode == 2
    assert r.stderr.startswith(f"fastcap: {bad}: not a pcap") and "Traceback" not in r.stderr


EXPECTED = corpus_expected()


@pytest.mark.parametrize("path", corpus_params())
def test_every_corpus_capture_scans(path):
    exp = EXPECTED[path.name]
    ports = {25} | {int(h["server"].rsplit(":", 1)[1]) for h in exp["tls_handshakes"]}
    sessions = list(scan(path, ports=ports))
    by_client = {s.client: s for s in sessions}
    for hs in exp["tls_handshakes"]:
        s = by_client[hs["client"]]
        for side, certs, check in (("server", hs["server_certs"], s.server_check),
                                   ("client", hs["client_certs"], s.client_check)):
            if not certs or check is None:
                continue
            ours = [c.subject_cn for c in check.certs]
            theirs = [c["subject_cn"] for c in certs]
            assert len(ours) == len(theirs), side
            for a, b in zip(ours, theirs, strict=True):
                if b is not None and a is not None:
                    assert a == b.split("\x00")[0] or b.startswith(a[:10]), (side, a, b)
    assert all(s.verdicts for s in sessions)


def test_readme_lists_every_verdict_code():
    from fastcap.judge.diagnose import CODES

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    missing = [c for c in CODES if f"| `{c}` |" not in readme]
    assert missing == []


def test_progress_shows_on_a_terminal_only(tmp_path):
    """stderr a terminal: a progress line with GB/s; a pipe (as in every other test): none."""
    import os
    import pty

    master, slave = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "fastcap.cli", "scan", str(SEED)],
                              stdout=subprocess.PIPE, stderr=slave, timeout=120)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    tty_err = b"".join(chunks).decode()
    assert proc.returncode == 1
    assert "GB/s" in tty_err and "100.0%" in tty_err
    piped = run_cli(str(SEED))
    assert "GB/s" not in piped.stderr


def test_stream_cap_option_recovers_a_huge_certificate():
    """The corpus' 339 KB Certificate does not fit the default 256 KiB per direction."""
    path = [p.values[0] for p in corpus_params()
            if p.values[0] is not None
            and p.values[0].name == "zeek__tls-fragmented-handshake.pcap"]
    if not path:
        pytest.skip("corpus not found")
    small = json.loads(run_cli("--format", "jsonl", "--ports", "4433", str(path[0])).stdout)
    assert "handshake_incomplete" in [v["code"] for v in small["verdicts"]]
    big = json.loads(run_cli("--format", "jsonl", "--ports", "4433", "--stream-cap", "1M",
                             str(path[0])).stdout)
    assert big["server_cert_check"]["certs"][0]["subject"] == "CN=Bro"
    r = run_cli("--stream-cap", "12X", str(SEED))
    assert r.returncode == 2 and "bad size" in r.stderr
