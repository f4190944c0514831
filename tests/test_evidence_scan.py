"""The fixtures' stories told end to end: a capture of the story's three sessions (written
with the log host's clock 2.5 s ahead of the capture's), joined to the Exchange, Postfix and
message logs and the connector exports, through `fastcap scan` (table, JSON, JSON lines),
`fastcap follow`, and the logs on their own."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastcap.cli import main
from fastcap_synth.evidence_pairs import story_sessions, write_paired_capture

DATA = Path(__file__).parent / "data" / "evidence"
ROOTS = DATA / "certs" / "roots.pem"
SEND, RECV = DATA / "SEND20260310-1.LOG", DATA / "RECV20260310-1.LOG"
TRACKING, TRACE = DATA / "MSGTRK2026031009-1.LOG", DATA / "message_trace.csv"
POSTFIX = DATA / "postfix-relay1.log"
SETTINGS = [DATA / n for n in ("inbound-connector.json", "inbound-connector-ip-only.json",
                               "send-connector.json", "exchange-certificates.json")]
LOGS = [SEND, RECV, TRACKING, TRACE, POSTFIX]
SKEW_S = 2.5


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("story") / "story.pcap"
    write_paired_capture(path, story_sessions(dt.timedelta(seconds=SKEW_S)))
    return path


def _args(*files: Path) -> list[str]:
    out = []
    for f in files:
        out += ["--evidence", str(f)]
    return out


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    got = capsys.readouterr()
    return code, got.out, got.err


def _scan_json(capsys, capture: Path, *extra: str, files=LOGS + SETTINGS) -> tuple[int, dict]:
    code, out, _err = _run(capsys, ["scan", str(capture), "--format", "json", "--ca-file",
                                    str(ROOTS), *_args(*files), *extra])
    return code, json.loads(out)


def _codes(session: dict) -> list[str]:
    return [v["code"] for v in session["verdicts"]]


def test_table_marks_joined_sessions_and_tells_each_story(capsys, capture):
    argv = ["scan", str(capture), "--ca-file", str(ROOTS), *_args(*LOGS, *SETTINGS)]
    code, brief, _err = _run(capsys, argv)
    code, out, err = _run(capsys, [*argv, "--details"])
    assert code == 1
    assert "expecting client certificates for mail.contoso.com" in err
    # the problems grouped by cause head both; the log findings are among them
    triage, table = brief.split("\n\n", 1)
    assert triage.startswith("9 problem(s) in 3 of 3 session(s)\n")
    assert out.startswith(triage + "\n\n")
    assert f"#1: {SEND} line 27: the server answered \"550 5.7.64" in triage
    assert "Findings:" in out and "Findings:" not in brief
    head, *rows = out.split("\n\n", 1)[1].splitlines()[:4]
    assert table.splitlines()[:4] == [head, *rows]
    assert head.split()[:3] == ["#", "log", "frames"]
    marks = [r.split()[1] for r in rows]
    assert "send" in marks[0].split(",") and "send" in marks[1].split(",")
    assert "postfix" in marks[2].split(",")
    # session 1: no certificate; the 550 5.7.64 the log saw inside TLS, cited by file and line
    assert f"log_rejected_after_tls: {SEND} line 27:" in out
    assert "550 5.7.64 TenantAttribution" in out
    # session 2: the expired certificate, by Get-ExchangeCertificate too
    assert "exchange_cert_expired:" in out and f"{SETTINGS[3]} line 1" in out
    # session 3: the private CA's certificate is not the one the send connector names
    assert "send_connector_cert_mismatch:" in out
    assert f"{POSTFIX} line 7:" in out
    # the skew between the log host and the capture, found from the exact-endpoint pairs
    assert "clock: " + str(SEND) + " runs 2.500 s ahead of the capture" in out
    # what matched nothing: the receive log's session was not captured
    assert "Log conversations with no capture session" in out
    assert f"{RECV} line 6" in out


def test_json_gains_evidence_per_session_and_the_unmatched(capsys, capture):
    code, doc = _scan_json(capsys, capture)
    assert code == 1
    s1, s2, s3 = doc["files"][0]["sessions"]
    by_source = {e["source"]: e for e in s1["evidence"]}
    send = by_source["exchange-send"]
    assert (send["file"], send["line"], send["basis"]) == (str(SEND), 6, "endpoints")
    assert send["facts"]["local"] == "10.1.2.10:50123"
    assert send["facts"]["replies"][0]["enhanced"] == "5.7.64"
    assert abs(send["delta_s"]) < 0.01
    thumb = next(e for e in s2["evidence"] if e["source"] == "exchange-send")
    assert thumb["facts"]["cert_sent"]["thumbprint"] == (
        "DCBFE993F26AA4EF1F0D18B03E560A88302F8297")
    assert {e["source"] for e in s3["evidence"]} >= {"postfix"}
    assert "log_rejected_after_tls" in _codes(s1) and "no_client_cert" in _codes(s1)
    assert "exchange_cert_expired" in _codes(s2)
    assert "send_connector_cert_mismatch" in _codes(s3)
    skews = {k["file"]: k for k in doc["evidence"]["skews"]}
    assert abs(skews[str(SEND)]["skew_ns"] - SKEW_S * 1e9) < 1e6
    assert skews[str(SEND)]["pairs"] == 2 and not skews[str(SEND)]["given"]
    unmatched = doc["unmatched"]["log_conversations"]
    assert (str(RECV), 6) in {(u["file"], u["line"]) for u in unmatched}
    assert doc["unmatched"]["log_conversations_total"] == len(unmatched)
    assert doc["unmatched"]["sessions"] == []
    assert doc["evidence"]["settings"]["expected_name"] == "mail.contoso.com"
    kinds = {Path(f["path"]).name: f["kind"] for f in doc["evidence"]["files"]}
    assert kinds["message_trace.csv"] == "message-trace"
    assert kinds["postfix-relay1.log"] == "syslog"


def test_given_skew_gives_the_same_joins(capsys, capture):
    _, estimated = _scan_json(capsys, capture)
    _, given = _scan_json(capsys, capture, "--log-skew", str(SKEW_S))

    def joins(doc):
        return [[(e["file"], e["line"]) for e in s["evidence"]]
                for s in doc["files"][0]["sessions"]]

    assert joins(given) == joins(estimated)
    assert all(k["given"] for k in given["evidence"]["skews"])


def test_a_tight_tolerance_and_a_wrong_skew_leave_sessions_unmatched(capsys, capture):
    _, doc = _scan_json(capsys, capture, "--log-skew", "-600", "--join-tolerance", "5",
                        "--join-window", "1", files=[SEND])
    sessions = doc["files"][0]["sessions"]
    assert all(s["evidence"] == [] for s in sessions)
    assert [u["number"] for u in doc["unmatched"]["sessions"]] == [1, 2, 3]
    assert len(doc["unmatched"]["log_conversations"]) == 2


def test_jsonl_lists_sessions_then_unmatched_log_conversations(capsys, capture):
    code, out, _ = _run(capsys, ["scan", str(capture), "--format", "jsonl", "--ca-file",
                                 str(ROOTS), *_args(SEND, RECV)])
    lines = [json.loads(x) for x in out.splitlines()]
    assert [x["number"] for x in lines[:3]] == [1, 2, 3]
    assert all("evidence" in x for x in lines[:3])
    rest = [x["unmatched_log_conversation"] for x in lines[3:]]
    assert [(r["file"], r["line"]) for r in rest] == [(str(RECV), 6)]


def test_connector_name_becomes_the_expected_name(capsys, capture, tmp_path):
    inbound = json.loads(SETTINGS[0].read_text(encoding="utf-8-sig"))
    objs = inbound if isinstance(inbound, list) else [inbound]
    for o in objs:
        o["TlsSenderCertificateName"] = "relay.contoso.com"
    other = tmp_path / "inbound.json"
    other.write_text(json.dumps(objs))
    code, out, err = _run(capsys, ["scan", str(capture), "--format", "json", "--ca-file",
                                   str(ROOTS), *_args(SEND, other)])
    assert "expecting client certificates for relay.contoso.com" in err
    s2 = json.loads(out)["files"][0]["sessions"][1]
    assert "client_cert_name_mismatch" in _codes(s2)
    assert "connector_name_mismatch" in _codes(s2)
    # an explicit --expect-name wins over the connector's
    code, out, err = _run(capsys, ["scan", str(capture), "--format", "json", "--ca-file",
                                   str(ROOTS), "--expect-name", "mail.contoso.com",
                                   *_args(SEND, other)])
    assert "expecting" not in err
    s2 = json.loads(out)["files"][0]["sessions"][1]
    assert "client_cert_name_mismatch" not in _codes(s2)


def test_follow_interleaves_log_lines_with_packets_by_time(capsys, capture):
    code, out, _ = _run(capsys, ["follow", str(capture), "--session", "2", *_args(SEND)])
    assert code == 0
    lines = out.splitlines()
    logs = [i for i, x in enumerate(lines) if x.startswith("[log ")]
    assert len(logs) == 31  # lines 31-61 of the send log: session 08DE5F3A2B1C4D0A
    cited = [int(lines[i].split(" line ")[1].split(",")[0]) for i in logs]
    assert cited == list(range(31, 62))  # in the log's own order
    offsets = [float(lines[i].split(", ")[1].split(" s]")[0]) for i in logs]
    assert offsets == sorted(offsets)
    assert offsets[0] == pytest.approx(0.0, abs=0.01)  # the skew is taken off
    connect = next(i for i in logs if ",+,," in lines[i])
    banner = next(i for i, x in enumerate(lines) if "] S: 220 " in x and "[log" not in x)
    assert connect < banner
    rejected = next(i for i in logs if "550 5.7.64" in lines[i])
    ccs = max(i for i, x in enumerate(lines) if "ChangeCipherSpec" in x)
    assert rejected > ccs


def test_logs_alone_are_diagnosed_and_say_so(capsys):
    code, out, _ = _run(capsys, ["scan", *_args(SEND, *SETTINGS)])
    assert code == 1
    assert "No capture given: what the logs alone show (2 conversation(s))" in out
    assert "log_only_no_cert:" in out and "log_only_rejected:" in out
    assert f"{SEND} line 6" in out and f"{SEND} line 31" in out
    code, out, _ = _run(capsys, ["scan", "--format", "json", *_args(SEND)])
    doc = json.loads(out)
    assert doc["files"] == []
    got = doc["unmatched"]["log_conversations"]
    assert [g["line"] for g in got] == [6, 31]
    assert any(v["code"] == "log_only_rejected" for v in got[0]["verdicts"])


def test_scan_without_capture_or_evidence_is_a_usage_error(capsys):
    code, _, err = _run(capsys, ["scan"])
    assert code == 2 and "--evidence" in err


def test_damaged_and_unknown_evidence_warn_and_the_rest_counts(capsys, capture, tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("nothing a mail server wrote\n")
    code, out, err = _run(capsys, ["scan", str(capture), "--format", "json", "--ca-file",
                                   str(ROOTS), *_args(DATA / "SEND20260310-2-damaged.LOG",
                                                      junk, tmp_path / "missing.log")])
    assert code == 1
    assert "SEND20260310-2-damaged.LOG line 11:" in err
    assert f"{junk}: not a log fastcap reads" in err
    assert err.count("missing.log") == 1  # told once, though settings and logs are read apart
    doc = json.loads(out)
    assert any(e["source"] == "exchange-send"
               for e in doc["files"][0]["sessions"][0]["evidence"])


def test_utf16_copy_joins_the_same(capsys, capture, tmp_path):
    copy = tmp_path / "SEND-utf16.LOG"
    copy.write_bytes(b"\xff\xfe" + SEND.read_text(encoding="utf-8").encode("utf-16-le"))
    _, plain = _scan_json(capsys, capture, files=[SEND])
    _, wide = _scan_json(capsys, capture, files=[copy])

    def facts(doc):
        return [[(e["line"], e["facts"]["replies"]) for e in s["evidence"]]
                for s in doc["files"][0]["sessions"]]

    assert facts(wide) == facts(plain)


def test_evidence_files_are_never_modified(capsys, capture, tmp_path):
    copies = [Path(shutil.copy2(p, tmp_path / p.name)) for p in [*LOGS, *SETTINGS]]
    for p in copies:
        p.chmod(0o444)
    before = [(p.read_bytes(), os.stat(p).st_mtime_ns) for p in copies]
    _run(capsys, ["scan", str(capture), *_args(*copies)])
    _run(capsys, ["follow", str(capture), "--session", "1", *_args(*copies)])
    assert [(p.read_bytes(), os.stat(p).st_mtime_ns) for p in copies] == before


def _shift(line: str, seconds: float) -> str:
    stamp, rest = line.split(",", 1)
    t = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ") + dt.timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z," + rest


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), skew=st.floats(-250.0, 250.0))
def test_interleaving_duplicates_and_skew_give_the_same_joins(capsys, capture, tmp_path,
                                                              data, skew):
    """The send log with its sessions' lines interleaved in another order, some lines
    written twice (as a log shipper may), and its clock off by up to the tolerance (less a
    margin): every session joins the same log lines."""
    header, body = [], []
    for line in SEND.read_text().splitlines():
        (header if line.startswith("#") else body).append(line)
    sessions: dict[str, list[str]] = {}
    for line in body:
        sessions.setdefault(line.split(",")[2], []).append(line)
    queues = [list(v) for v in sessions.values()]
    merged = []
    while any(queues):  # a random merge that keeps each session's own order
        q = data.draw(st.sampled_from([q for q in queues if q]))
        line = q.pop(0)
        merged.append(line)
        if ",-," not in line and data.draw(st.booleans()) and data.draw(st.booleans()):
            merged.append(line)
    log = tmp_path / "SEND-shuffled.LOG"
    log.write_text("\n".join(header + [_shift(x, skew) for x in merged]) + "\n")
    _, doc = _scan_json(capsys, capture, files=[log])
    got = [[(e["source"], e["facts"]["local"], e["basis"]) for e in s["evidence"]]
           for s in doc["files"][0]["sessions"]]
    assert got == [[("exchange-send", "10.1.2.10:50123", "endpoints")],
                   [("exchange-send", "10.1.2.10:50177", "endpoints")], []]
    skews = doc["evidence"]["skews"]
    assert abs(skews[0]["skew_ns"] / 1e9 - (SKEW_S + skew)) < 0.01
