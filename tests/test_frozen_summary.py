"""A scan's summary is a frozen value handed back once its sessions are read: `scan()` and
`iter_file_streams` give it on the iterator / the file, never by filling one the caller
passed in, so nothing the caller holds changes under it."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import pytest

import fastcap
from fastcap.cli import main
from fastcap.run import scanner, streamed
from fastcap.run.scanner import ScanSummary, SummaryPending, has_problem, iter_file_streams
from fastcap.select.stats import compute_stats

from .corpus import CORPUS

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "all-scenarios.pcapng"
# Captures with sessions, verdicts, a damaged tail, a resynchronised record, big-endian
# sections and pcapng blocks that are frames without packets.
CAPTURES = ["sv__tls-client-auth.pcap", "arkime__smtp-starttls.pcap",
            "sv__smtp-to-comma-corrupt.pcap", "pcapng-test-generator__be-difficult-test201.pcapng",
            "ndpi__smtps.pcapng", "sv__smtp-errors.pcap"]


def _corpus(name: str) -> Path:
    path = CORPUS / name
    if not path.is_file():
        pytest.skip(f"corpus not found at {CORPUS}")
    return path


def test_the_summary_comes_once_the_sessions_are_read_and_is_frozen():
    run = fastcap.scan(EXAMPLE)
    with pytest.raises(SummaryPending, match="exhausted"):
        run.summary  # noqa: B018
    first = next(run)
    with pytest.raises(SummaryPending):
        run.summary  # noqa: B018
    sessions = [first, *run]
    summary = run.summary
    assert run.summary is summary  # the same value, asked again
    assert summary.path == str(EXAMPLE) and summary.sessions == len(sessions) > 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        summary.sessions = 0  # type: ignore[misc]
    assert isinstance(summary.warnings, tuple) and isinstance(summary.unreadable, tuple)
    for counts in (summary.verdicts, summary.skipped, summary.limits):
        with pytest.raises(TypeError):
            counts["x"] = 1  # type: ignore[index]
        assert not hasattr(counts, "update")
    assert dataclasses.replace(summary, frames=1).frames == 1 and summary.frames != 1
    assert "summary" not in fastcap.scan.__kwdefaults__  # nothing to fill in any more


@pytest.mark.parametrize("name", CAPTURES)
def test_the_summary_holds_what_the_sessions_and_the_cli_say(capsys, name):
    path = _corpus(name)
    run = fastcap.scan(path)
    sessions = list(run)
    got = run.summary
    assert got.sessions == len(sessions)
    assert got.with_problems == sum(map(has_problem, sessions))
    assert got.verdicts == Counter(v.code for s in sessions for v in s.verdicts)
    assert got.frames == compute_stats(path).frames
    assert main(["scan", "-j", "1", "--format", "json", str(path)]) in (0, 1)
    (cli,) = json.loads(capsys.readouterr().out)["files"]
    want = cli["summary"]
    mine = got.to_dict()
    assert mine.keys() == want.keys()
    for key in want:
        assert mine[key] == want[key], key
    assert json.dumps(mine) == json.dumps(want)


def test_a_file_stream_gives_its_summary_once_its_sessions_are_read():
    paths = [_corpus(n) for n in CAPTURES[:3]]
    alone = []
    for p in paths:
        run = fastcap.scan(p)
        list(run)
        alone.append(run.summary)
    got = []
    for fs in iter_file_streams(paths):
        with pytest.raises(SummaryPending):
            fs.summary  # noqa: B018
        with pytest.raises(dataclasses.FrozenInstanceError):
            fs.path = "x"  # type: ignore[misc]
        list(fs.sessions)
        assert fs.errors == ()
        got.append(fs.summary)
    assert [s.to_dict() for s in got] == [s.to_dict() for s in alone]
    assert [r.summary for r in scanner.scan_files(paths)] == got


@pytest.mark.parametrize("name", CAPTURES[:4])
def test_jobs_and_the_python_backend_give_the_same_summary(monkeypatch, name):
    path = _corpus(name)
    base = fastcap.scan(path, jobs=1, backend="native")
    list(base)
    py = fastcap.scan(path, jobs=1, backend="python")
    list(py)
    monkeypatch.setattr(scanner, "SPLIT_MIN_BYTES", 1)
    monkeypatch.setattr(streamed, "MIN_RANGE", 1 << 10)
    split = fastcap.scan(path, jobs=2, parts=3)
    list(split)
    assert py.summary == base.summary == split.summary
    assert isinstance(split.summary, ScanSummary)


def test_a_failed_scan_still_says_what_it_counted_before():
    run = fastcap.scan(Path(__file__))  # not a capture
    with pytest.raises(fastcap.CaptureError):
        list(run)
    assert run.summary.sessions == 0 and run.summary.frames == 0


def test_counts_keep_the_order_first_counted_and_compare_by_value():
    """The summary table lists equal counts in the order first counted (a session's
    first verdict before its next), so `Counts` keeps that order; equality and hashing
    ignore it, as a dict's equality does."""
    first = scanner.Counts(Counter(["no_client_cert", "exchange_online_peer"]))
    later = scanner.Counts({"exchange_online_peer": 1, "no_client_cert": 1})
    assert list(first) == ["no_client_cert", "exchange_online_peer"]
    assert first == later and hash(first) == hash(later)
    assert ScanSummary("f", verdicts=first).to_dict()["verdicts"] == {
        "exchange_online_peer": 1, "no_client_cert": 1}


def test_a_summary_linked_elsewhere_keeps_every_field():
    """`link_counted` (a file a cluster worker scanned whole, linked in the client) hands
    back the worker's summary with only the verdict counts changed: every other field, the
    report's ICMP look-ahead and a ring run's `joined` among them, comes through as it was."""
    from fastcap.judge.crosssession import CrossSession

    values = {}
    for f in dataclasses.fields(ScanSummary):
        kind = type(getattr(ScanSummary(path="x"), f.name))
        values[f.name] = {bool: True, int: 7, str: "x.pcap"}.get(kind, getattr(
            ScanSummary(path="x"), f.name))
    summary = ScanSummary(**values)
    _sessions, linked = scanner.link_counted(CrossSession(), (), summary, "x.pcap")
    assert linked == summary
