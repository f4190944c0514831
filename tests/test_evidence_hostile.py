"""Mail-server logs, connector exports and join options with values no server writes: each is
a one-line message or a value read as absent, never a traceback.

Every case is one of the project's evidence files with one field changed: a date outside the
int64 nanoseconds a capture's times are kept in (the join keeps its rows in typed arrays), a
port past 65535 or written in non-ASCII digits (which `str.isdigit` accepts and `int` may
not), a process ID or reply code of such digits, or a join option of NaN or infinity."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastcap.evidence.exchange import _endpoint
from fastcap.evidence.powershell import date_ns

EVIDENCE = Path(__file__).resolve().parent / "data" / "evidence"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "exchange-online-no-client-cert.pcap"


def fastcap(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fastcap.cli", *args], capture_output=True,
                          text=True, timeout=300)


def edited(tmp_path: Path, name: str, old: str, new: str, count: int = 1) -> Path:
    text = (EVIDENCE / name).read_text(encoding="utf-8")
    assert old in text
    out = tmp_path / name
    out.write_text(text.replace(old, new, count), encoding="utf-8")
    return out


@pytest.mark.parametrize("option", ["--log-skew=nan", "--join-window=inf",
                                    "--join-tolerance=-1e400", "--log-year=2300",
                                    "--log-year=99999999999"])
def test_join_options_past_what_nanoseconds_hold_are_refused(option):
    r = fastcap("scan", str(EXAMPLE), "--evidence", str(EVIDENCE / "postfix-relay1.log"), option)
    assert r.returncode == 2 and r.stdout == "" and "Traceback" not in r.stderr
    name = option.split("=")[0]
    assert r.stderr.splitlines()[-1].startswith(f"fastcap scan: error: argument {name}: ")
    assert "out of range" in r.stderr


@pytest.mark.parametrize("year", ["1600", "2300"])
def test_a_syslog_date_a_capture_cannot_carry_is_a_warning_naming_the_line(tmp_path, year):
    log = edited(tmp_path, "postfix-relay1-journal-short-iso.log",
                 "2026-03-10T10:31:16+0100", f"{year}-03-10T10:31:16+0100")
    r = fastcap("scan", str(EXAMPLE), "--evidence", str(log), "--format", "jsonl")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"fastcap: warning: {log} line 2: a syslog line with a bad time stamp" in r.stderr
    assert "1677-2262" in r.stderr


@pytest.mark.parametrize("edit", [
    ("2026-03-10T", "2300-03-10T"),  # every date
    ("10.1.2.10:50123", "10.1.2.10:99999999999999999999"),  # a port
    ("10.1.2.10:50123", "10.1.2.10:\u00b2"),  # a port in superscript digits
])
def test_an_exchange_log_with_impossible_fields_is_read_without_them(tmp_path, edit):
    log = edited(tmp_path, "SEND20260310-1.LOG", *edit, count=-1)
    r = fastcap("scan", str(EXAMPLE), "--evidence", str(log), "--format", "jsonl")
    assert r.returncode in (0, 1) and "Traceback" not in r.stderr
    assert all(line.startswith("fastcap: ") for line in r.stderr.splitlines())


def test_an_exchange_reply_code_of_non_ascii_digits_is_not_a_reply(tmp_path):
    text = (EVIDENCE / "SEND20260310-1.LOG").read_text(encoding="utf-8")
    first_reply = next(line for line in text.splitlines()[5:] if ",<,2" in line)
    code = first_reply.split(",<,")[1][:3]
    log = edited(tmp_path, "SEND20260310-1.LOG", first_reply,
                 first_reply.replace(f",<,{code}", ",<,\u00b2\u00b2\u00b2"))
    r = fastcap("scan", str(EXAMPLE), "--evidence", str(log), "--format", "jsonl")
    assert r.returncode in (0, 1) and "Traceback" not in r.stderr


def test_a_syslog_pid_of_non_ascii_digits_is_no_pid(tmp_path):
    log = edited(tmp_path, "postfix-relay1-rfc5424.log", "postfix/smtpd 2210 ",
                 "postfix/smtpd \u00b2\u00b2 ", count=-1)
    r = fastcap("scan", str(EXAMPLE), "--evidence", str(log), "--format", "jsonl")
    assert r.returncode in (0, 1) and "Traceback" not in r.stderr


def test_a_connector_export_date_a_capture_cannot_carry_is_no_date(tmp_path):
    certs = edited(tmp_path, "exchange-certificates.json", r"\/Date(1769904000000)\/",
                   r"\/Date(-99999999999999)\/")
    r = fastcap("scan", str(EXAMPLE), "--evidence", str(EVIDENCE / "SEND20260310-1.LOG"),
                "--evidence", str(certs), "--format", "json")
    assert r.returncode in (0, 1) and "Traceback" not in r.stderr
    assert date_ns("/Date(-99999999999999)/") is None
    assert date_ns("/Date(1769904000000)/") == 1769904000000 * 10**6
    assert date_ns("9999-12-31T23:59:59Z") is None


@pytest.mark.parametrize("text, expected", [
    ("10.1.2.10:25", ("10.1.2.10", 25)),
    ("[2001:db8::1]:65535", ("2001:db8::1", 65535)),
    ("10.1.2.10:65536", ("10.1.2.10", None)),
    ("10.1.2.10:\u00b2", ("10.1.2.10:\u00b2", None)),
    ("", (None, None)),
])
def test_exchange_endpoints_have_tcp_ports_or_none(text, expected):
    assert _endpoint(text) == expected


def test_a_log_given_as_a_fifo_is_a_warning_not_a_wait(tmp_path):
    """A log is read again by offset, and opening a FIFO waits for a writer: it is refused
    with a one-line warning (the rest of the evidence and the capture are still read)."""
    fifo = tmp_path / "send.fifo"
    os.mkfifo(fifo)
    try:
        r = subprocess.run([sys.executable, "-m", "fastcap.cli", "scan", str(EXAMPLE),
                            "--evidence", str(fifo), "--evidence",
                            str(EVIDENCE / "SEND20260310-1.LOG"), "--format", "jsonl"],
                           capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail("the scan waited for a writer on the FIFO")
    assert r.returncode == 1 and r.stdout.startswith('{"number": 1, ')
    assert r.stderr == (f"fastcap: warning: {fifo}: not a regular file (a pipe or a device?): "
                        "logs are read more than once, give a file\n")
