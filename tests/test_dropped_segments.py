"""Segments the reassembler drops (late ones of a connection already closed and handed on,
and ones beyond any receive window) are counted in the scan's summary under `skipped`, in
text and JSON, the same whichever way the scan ran: one process, `-j N` (streamed), flows
dealt to an executor's workers, and a ring buffer's files joined, each file counting its
own frames' segments."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from fastcap.cli import main
from fastcap.judge.judging import analyzer_for
from fastcap.run import scanner, streamed
from fastcap.run.scanner import iter_file_streams, judge_options, scan
from fastcap.run.workers import SerialExecutor
from fastcap.tcp.reassembly import BEYOND_WINDOW, LATE

pytest.importorskip("fastcap.select.decode")
from fastcap_synth.packets import tcp_frame  # noqa: E402
from fastcap_synth.writers import Record, write_pcap  # noqa: E402

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
CLI, SRV = "10.0.0.1", "10.0.0.2"
T0 = 1_700_000_000 * 10**9


def _dialogue(port: int, ahead: bool) -> tuple[list[tuple], list[tuple]]:
    """One SMTP conversation from client port `port`, closed on FINs, with a segment 10^9
    bytes ahead in the middle if `ahead` (tcp_frame arguments per frame); and segments of it
    to send again late: its last FIN/ACK and ACK, then its QUIT and 250 reply."""
    ic, is_ = 1000 + port, 5000
    greet, ehlo, ok, quit_ = (b"220 mx.example ESMTP\r\n", b"EHLO client.example\r\n",
                              b"250 ok\r\n", b"QUIT\r\n")
    c, s = (CLI, SRV, port, 25), (SRV, CLI, 25, port)
    c1, s1 = ic + 1, is_ + 1
    fc, fs = c1 + len(ehlo + quit_), s1 + len(greet + ok)
    frames = [(c, ic, 0, SYN, b""), (s, is_, c1, SYN | ACK, b""), (c, c1, s1, ACK, b""),
              (s, s1, c1, ACK | PSH, greet), (c, c1, s1 + len(greet), ACK | PSH, ehlo),
              (c, c1 + len(ehlo) + 10**9, s1, ACK | PSH, b"GARBAGE\r\n"),
              (s, s1 + len(greet), c1 + len(ehlo), ACK | PSH, ok),
              (c, c1 + len(ehlo), fs, ACK | PSH, quit_),
              (c, fc, fs, FIN | ACK, b""), (s, fs, fc + 1, FIN | ACK, b""),
              (c, fc + 1, fs + 1, ACK, b"")]
    if not ahead:
        del frames[5]
    return frames, [frames[-2], frames[-1], frames[-4], frames[-5]]


def _conversation(port: int, t: int) -> list[tuple[int, tuple]]:
    """One SMTP conversation from client port `port` starting at `t` ns, with a segment
    10^9 bytes ahead in the middle, closed, then its last FIN/ACK and ACK resent 3 s
    later (after the 1 s linger): (time, tcp_frame arguments) per frame."""
    frames, again = _dialogue(port, True)
    out = [(t + k * 1_000_000, f) for k, f in enumerate(frames)]
    late = t + 3 * 10**9
    return out + [(late, again[0]), (late + 1, again[1])]


def _records(n: int) -> list[Record]:
    frames = sorted(f for i in range(n) for f in _conversation(40000 + i, T0 + i * 500_000_000))
    return [Record(tcp_frame(*ends[:2], *ends[2:], seq, ack, flags, payload), ts)
            for ts, (ends, seq, ack, flags, payload) in frames]


@pytest.fixture(scope="module")
def captures(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("dropped")
    recs = _records(6)
    whole, a, b = d / "whole.pcap", d / "a.pcap", d / "b.pcap"
    write_pcap(whole, recs)
    cut = len(recs) - 10  # the ring's second file: 10 of the 12 late segments
    write_pcap(a, recs[:cut])
    write_pcap(b, recs[cut:])
    return {"whole": whole, "a": a, "b": b}


def _scan(path: Path, **kw) -> tuple[list[dict], dict]:
    run = scan(path, **kw)
    sessions = [s.to_dict() for s in run]
    return sessions, run.summary.to_dict()


def _streamed(path: Path, parts: int) -> tuple[list[dict], dict]:
    """What `scan -j N` gives a file worth splitting: ranges read, then reassembled here."""
    options = judge_options()
    summary, out, sessions = scanner._Tally(str(path)), [], []
    for s in streamed.iter_scan(path, options, analyzer_for(options), jobs=2, parts=parts,
                                workers=False, out=out):
        scanner._count(summary, s, scanner.MAX_HELD)
        sessions.append(s.to_dict())
    scanner._totals(summary, out[0].counters, [out[0].meta])
    return sessions, summary.frozen().to_dict()


def test_summary_counts_dropped_segments_whichever_way_the_scan_ran(captures):
    path = captures["whole"]
    one = _scan(path, jobs=1)
    sessions, summary = one
    assert len(sessions) == 6 and summary["skipped"] == {LATE: 12, BEYOND_WINDOW: 6}
    assert all(s["tcp"]["c2s_bytes"] == 27 and not s["tcp"]["c2s_gaps"] for s in sessions)
    for parts in (2, 5):
        assert _scan(path, jobs=3, executor=SerialExecutor(), parts=parts) == one
        assert _streamed(path, parts) == one


@pytest.mark.parametrize("executor", [None, SerialExecutor()])
def test_each_file_of_a_ring_counts_its_own_dropped_segments(captures, executor):
    files = [captures["a"], captures["b"]]
    got = list(iter_file_streams(files, jobs=2, executor=executor))
    for fs in got:
        list(fs.sessions)
    first, second = (fs.summary.to_dict()["skipped"] for fs in got)
    assert first == {LATE: 2, BEYOND_WINDOW: 6} and second == {LATE: 10}
    assert sum(fs.summary.sessions for fs in got) == 6


def test_cli_text_and_json_show_them_alike_with_one_or_two_jobs(captures, capsys):
    def run(*args: str) -> str:
        main(["scan", *args, str(captures["a"]), str(captures["b"])])
        return capsys.readouterr().out

    text = run("-j", "1")
    assert f"skipped: {captures['b']}: {LATE}: 10" in text
    assert f"skipped: {captures['a']}: {BEYOND_WINDOW}: 6" in text
    assert run("-j", "2") == text
    doc = run("--format", "json", "-j", "1")
    assert run("--format", "json", "-j", "2") == doc
    assert [f["summary"]["skipped"] for f in json.loads(doc)["files"]] == [
        {LATE: 2, BEYOND_WINDOW: 6}, {LATE: 10}]


def _tshark_streams(tshark: str, path: Path, times: list[int], frames: list[tuple]) -> list[str]:
    """`frames` (tcp_frame arguments) written at `times` to `path`: tshark's tcp.stream of
    each."""
    write_pcap(path, [Record(tcp_frame(*ends[:2], *ends[2:], seq, ack, flags, payload), ts)
                      for ts, (ends, seq, ack, flags, payload) in zip(times, frames,
                                                                      strict=True)])
    return subprocess.run([tshark, "-r", str(path), "-T", "fields", "-e", "tcp.stream"],
                          capture_output=True, text=True, check=True).stdout.split()


def test_late_data_retransmission_stays_in_its_stream_as_in_tshark(tmp_path, backend, tshark):
    """A conversation closed on FINs whose QUIT and 250 reply come again 3 s later (after the
    linger): tshark keeps them in the one TCP stream and its follow shows the same bytes, so
    the scan gives one session (no second, `no_smtp` one) and counts both segments late."""
    frames, again = _dialogue(40000, False)
    resent = again[2:]
    times = [T0 + k * 1_000_000 for k in range(len(frames))] + [T0 + 3 * 10**9, T0 + 3 * 10**9 + 1]
    path = tmp_path / "late-data.pcap"
    streams = _tshark_streams(tshark, path, times, frames + resent)
    follow = subprocess.run([tshark, "-r", str(path), "-q", "-z", "follow,tcp,raw,0"],
                            capture_output=True, text=True, check=True).stdout
    shown = [line for line in follow.splitlines() if line.strip() and "=" not in line
             and ":" not in line]
    c2s = bytes.fromhex("".join(x for x in shown if not x.startswith("\t")))
    assert set(streams) == {"0"} and c2s == b"EHLO client.example\r\nQUIT\r\n"
    sessions, summary = _scan(path, backend=backend)
    assert len(sessions) == 1 and summary["skipped"] == {LATE: 2}
    assert sessions[0]["tcp"]["c2s_bytes"] == len(c2s)


def test_a_replayed_capture_is_one_stream_as_in_tshark(tmp_path, backend, tshark):
    """A conversation played again 10 s later with the same tuple and ISNs is a replay:
    tshark keeps both copies in one stream, and the scan gives one session, the second
    copy's segments counted late.  The same copy with new ISNs is a new connection: two
    streams, two sessions."""
    frames, _ = _dialogue(40000, False)

    def again(delta: int) -> list[tuple]:
        return [(ends, (seq + delta) % 2**32, (ack + delta) % 2**32 if flags & ACK else ack,
                 flags, payload) for ends, seq, ack, flags, payload in frames]

    for delta, n in ((0, 1), (0x3A5F1C07, 2)):
        both = frames + again(delta)
        times = [T0 + k * 1_000_000 + (k >= len(frames)) * 10**10 for k in range(len(both))]
        path = tmp_path / f"replay-{n}.pcap"
        assert len(set(_tshark_streams(tshark, path, times, both))) == n
        sessions, summary = _scan(path, backend=backend)
        assert len(sessions) == n
        assert summary["skipped"] == ({LATE: len(frames)} if n == 1 else {})


def test_late_data_retransmission_after_an_rst_stays_in_its_stream_as_in_tshark(
        tmp_path, backend, tshark):
    """The same conversation ended by the server's RST (taken: at the client's next expected
    byte, all the client sent acknowledged) instead of FINs, its QUIT and 250 reply resent
    3 s later: tshark keeps them in the one stream (no SYN came), and they hold no byte the
    session lacks, so the scan gives one session and counts both segments late."""
    frames, again = _dialogue(40000, False)
    (c, fc, fs, _, _), resent = frames[-3], again[2:]
    s = (c[1], c[0], c[3], c[2])
    first = frames[:-3] + [(s, fs, fc, RST | ACK, b"")]
    times = [T0 + k * 1_000_000 for k in range(len(first))] + [T0 + 3 * 10**9, T0 + 3 * 10**9 + 1]
    path = tmp_path / "late-data-rst.pcap"
    assert _tshark_streams(tshark, path, times, first + resent) == ["0"] * len(times)
    sessions, summary = _scan(path, backend=backend)
    assert len(sessions) == 1 and summary["skipped"] == {LATE: 2}
    assert sessions[0]["frames"] == len(first)
