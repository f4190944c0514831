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
