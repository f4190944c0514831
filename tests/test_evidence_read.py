"""The evidence entry point keeps only what the join needs of each log conversation and
reads the rest again from the file: the facts it reads back must be exactly those the
readers give, by region or by a whole second pass, and what it keeps must stay small."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from benchmarks import biglog

import fastcap.evidence.read as read_module
from fastcap.evidence.detect import LOG_READERS, kind_of
from fastcap.evidence.read import read_evidence
from fastcap.evidence.text import LogText

DATA = Path(__file__).parent / "data" / "evidence"
LOGS = sorted(p for p in DATA.iterdir() if p.suffix.lower() in (".log", ".csv"))


def _direct(path: Path) -> list:
    text = LogText(path)
    module = LOG_READERS[kind_of(text.head())]
    got = list(module.conversations(text, lambda _w: None))
    return sorted(got, key=lambda c: (c.start_ns, c.file, c.first.line))


@pytest.mark.parametrize("path", LOGS, ids=lambda p: p.name)
def test_facts_read_again_are_the_readers_own(path, monkeypatch):
    ev = read_evidence([path])
    assert ev.conversations and all(c.slim for c in ev.conversations)
    assert all(c.replies == () and c.cert_sent is None for c in ev.conversations)
    want = _direct(path)
    by_region = ev.materialize(ev.conversations)
    assert by_region == want
    assert not any(c.slim for c in by_region)
    monkeypatch.setattr(read_module, "_WHOLE_FILE_FROM", 1)
    assert ev.materialize(ev.conversations) == want


def test_a_log_gone_leaves_the_slim_conversations(tmp_path):
    path = tmp_path / "SEND.LOG"
    path.write_bytes((DATA / "SEND20260310-1.LOG").read_bytes())
    ev = read_evidence([path])
    path.unlink()
    assert ev.materialize(ev.conversations) == list(ev.conversations)


def _kept(path: Path) -> tuple[int, int, int]:
    tracemalloc.start()
    try:
        ev = read_evidence([path])
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return len(ev.conversations), kept, peak


def test_what_is_kept_is_small_and_the_lines_are_not(tmp_path):
    """Two logs, one four times the other: the peak above what is kept does not grow with the
    file (lines are streamed), and each conversation keeps well under a kilobyte."""
    small, big = tmp_path / "small.log", tmp_path / "big.log"
    template = str(DATA / "SEND20260310-1.LOG")
    biglog.main([template, str(small), "--size", "2M"])
    biglog.main([template, str(big), "--size", "8M"])
    n_small, kept_small, peak_small = _kept(small)
    n_big, kept_big, peak_big = _kept(big)
    assert n_big > 3 * n_small > 0
    assert kept_big / n_big < 400
    assert (peak_big - kept_big) < (peak_small - kept_small) + (2 << 20)


def test_a_syslog_region_past_new_year_keeps_its_facts_with_a_given_year(tmp_path):
    # RFC 3164 lines carry no year: with --log-year the year moves on at New Year through the
    # whole file, so a conversation after it, read again on its own, is still in the next year
    path = tmp_path / "mail.log"
    path.write_text(
        "Jun 30 10:00:00 relay1 postfix/smtpd[100]: connect from unknown[198.51.100.1]\n"
        "Jun 30 10:00:01 relay1 postfix/smtpd[100]: disconnect from unknown[198.51.100.1]"
        " ehlo=1 quit=1 commands=2\n"
        "Sep 15 10:00:00 relay1 postfix/smtpd[101]: connect from unknown[198.51.100.2]\n"
        "Dec 31 23:59:59 relay1 postfix/smtpd[101]: disconnect from unknown[198.51.100.2]"
        " ehlo=1 quit=1 commands=2\n"
        "Jan  1 00:00:05 relay1 postfix/smtp[2214]: Trusted TLS connection established to"
        " mx1.example.net[192.0.2.25]:25: TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384"
        " (256/256 bits)\n"
        "Jan  1 00:00:06 relay1 postfix/smtp[2214]: 4Qx2Ty0b3Vz9sKp: to=<bob@example.net>,"
        " relay=mx1.example.net[192.0.2.25]:25, delay=1.2, delays=0.1/0/0.6/0.5, dsn=5.7.64,"
        " status=bounced (host mx1.example.net[192.0.2.25] said: 550 5.7.64 TenantAttribution;"
        " Relay Access Denied (in reply to RCPT TO command))\n", encoding="utf-8")
    for offset in (0, 3600, -3600):
        ev = read_evidence([path], year=2026, utc_offset_s=offset)
        conv = ev.conversations[-1]
        assert conv.first.line == 5 and conv.start_ns == (1798761605 - offset) * 10**9
        full = ev.full(conv)
        assert not full.slim and full.tls_protocol == "TLS1.2"
        assert [r.code for r in full.replies] == [550]
        assert ev.full(ev.conversations[0]).remote_ip == "198.51.100.1"
