"""Frames without a time: pcapng Simple Packet Blocks carry none, and some captures have
every timestamp zeroed.  Such a frame dates nothing (tshark shows no time for it): a
session's times are those of its frames that have one, and certificates of a session with
no time at all are judged today, never on 1 January 1970."""

from __future__ import annotations

import datetime as dt
import re
import struct
from pathlib import Path

import pytest

from fastcap.out.stats_text import format_text
from fastcap.run.scanner import scan
from fastcap.select.selection import TIMES_HELD
from fastcap.select.stats import compute_stats

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "exchange-online-no-client-cert.pcap"
CA = str(ROOT / "examples" / "test-root.pem")


def _records(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """(seconds, microseconds, wire length, packet) of each record of a little-endian pcap."""
    out, off = [], 24
    while off + 16 <= len(data):
        sec, usec, incl, orig = struct.unpack_from("<IIII", data, off)
        out.append((sec, usec, orig, data[off + 16:off + 16 + incl]))
        off += 16 + incl
    return out


def _block(kind: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    return struct.pack("<II", kind, len(body) + 12) + body + struct.pack("<I", len(body) + 12)


def _as_pcapng(src: Path, dst: Path, simple, times: int = 1, offset_s: int = 0) -> Path:
    """`src` as a pcapng whose record i is a Simple Packet Block (no time) when simple(i),
    else an Enhanced Packet Block with the record's time; its records `times` over, the
    interface's if_tsoffset `offset_s`."""
    options = struct.pack("<HHq", 14, 8, offset_s) + bytes(4) if offset_s else b""
    out = [_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)),
           _block(1, struct.pack("<HHI", 1, 0, 0) + options)]
    for i, (sec, usec, orig, pkt) in enumerate(_records(src.read_bytes()) * times):
        if simple(i):
            out.append(_block(3, struct.pack("<I", orig) + pkt))
        else:
            us = sec * 10**6 + usec
            out.append(_block(6, struct.pack("<IIIII", 0, us >> 32, us & 0xFFFFFFFF,
                                             len(pkt), orig) + pkt))
    dst.write_bytes(b"".join(out))
    return dst


def _view(path: Path, **kw) -> list[tuple]:
    return [(s.first_frame, s.first_ts_ns, s.last_ts_ns, [v.code for v in s.verdicts])
            for s in scan(path, ca_file=CA, **kw)]


@pytest.mark.parametrize("backend", ["native", "python"])
def test_a_session_is_dated_by_its_frames_that_have_a_time(tmp_path, backend):
    records = _records(EXAMPLE.read_bytes())
    whole = _view(EXAMPLE, backend=backend)
    half = _as_pcapng(EXAMPLE, tmp_path / "half.pcapng", lambda i: i % 2 == 0)
    got = _view(half, backend=backend)
    assert [g[3] for g in got] == [w[3] for w in whole]  # no certificate "not yet valid"
    for (first, first_ts, last_ts, _), (_, whole_first, whole_last, _) in zip(
            got, whole, strict=True):
        dated = [(s * 10**9 + u * 1000) for i, (s, u, _, _) in enumerate(records)
                 if i % 2 and i >= first - 1]
        assert first_ts == (whole_first if first % 2 == 0 else dated[0])
        assert 0 < first_ts <= last_ts <= whole_last
    assert _view(half, backend=backend, jobs=2, parts=3) == got


@pytest.mark.parametrize("backend", ["native", "python"])
def test_a_capture_with_no_times_is_judged_today(tmp_path, backend):
    (day,) = {dt.datetime.fromtimestamp(r[0], dt.UTC) for r in _records(EXAMPLE.read_bytes())
              [:1]}
    whole = _view(EXAMPLE, backend=backend, today=day)
    data = bytearray(EXAMPLE.read_bytes())
    off = 24
    while off + 16 <= len(data):  # every timestamp zeroed
        struct.pack_into("<II", data, off, 0, 0)
        off += 16 + struct.unpack_from("<I", data, off + 8)[0]
    zeroed = tmp_path / "zeroed.pcap"
    zeroed.write_bytes(bytes(data))
    simple = _as_pcapng(EXAMPLE, tmp_path / "simple.pcapng", lambda i: True)
    for path in (zeroed, simple):
        got = _view(path, backend=backend, today=day)
        assert [g[3] for g in got] == [w[3] for w in whole]
        assert {(g[1], g[2]) for g in got} == {(0, 0)}
    later = day + dt.timedelta(days=3650)  # today decides: the certificates have expired
    assert any("expired" in c for g in _view(simple, backend=backend, today=later)
               for c in g[3])


def test_the_reassemblers_agree_on_connections_that_end_before_any_time(tmp_path):
    """A connection closed while no frame had a time (the clock unset) lingers as the C
    core's does at a clock of 0, while the frames after it (here the same conversation
    again, retransmitted) are read: both cores give the same sessions."""
    simple = _as_pcapng(EXAMPLE, tmp_path / "twice.pcapng", lambda i: True, times=2)
    native, python = (_view(simple, backend=b) for b in ("native", "python"))
    assert native == python and [n[1:3] for n in native] == [(0, 0)]


def test_times_past_what_nanoseconds_hold_are_told(tmp_path):
    """A time after 2262 (an `if_tsoffset` of 10^10 s, or damage) does not fit 64-bit
    nanoseconds since 1970: it is held at the largest one, and the scan's limits say how
    many frames were, since their certificates are judged at that time."""
    far = _as_pcapng(EXAMPLE, tmp_path / "far.pcapng", lambda i: False, offset_s=10**10)
    run = scan(far, ca_file=CA)
    (s,) = run
    assert s.first_ts_ns == 2**63 - 1
    assert run.summary.limits == {TIMES_HELD: len(_records(EXAMPLE.read_bytes()))}
    near = scan(EXAMPLE, ca_file=CA)
    list(near)
    assert TIMES_HELD not in near.summary.limits


def test_stats_counts_held_times_beside_the_last_timestamp(tmp_path):
    """`stats` shows the held time as the last timestamp, as the scan judges it; the same
    count as the scan's limits says that it is not the capture's own."""
    far = _as_pcapng(EXAMPLE, tmp_path / "far.pcapng", lambda i: False, offset_s=10**10)
    held = compute_stats(far)
    assert held.last_ts_ns == 2**63 - 1
    assert held.limits == {TIMES_HELD: len(_records(EXAMPLE.read_bytes()))}
    assert f"Limit:             {TIMES_HELD}: {held.limits[TIMES_HELD]}" in format_text(held)
    assert compute_stats(EXAMPLE).limits == {}


@pytest.mark.parametrize("backend", ["native", "python"])
def test_frame_times_leave_out_frames_without_a_time(tmp_path, backend):
    """The times read again for the report's ladders and the Zeek logs' ts: a Simple Packet
    Block's frame has none (not 0, 1 January 1970)."""
    from fastcap.read.frametimes import frame_times

    records = _records(EXAMPLE.read_bytes())
    half = _as_pcapng(EXAMPLE, tmp_path / "half.pcapng", lambda i: i % 2 == 0)
    got = frame_times(half, range(1, len(records) + 1), backend=backend)
    assert got == {i + 1: s * 10**9 + u * 1000
                   for i, (s, u, _, _) in enumerate(records) if i % 2}


def test_triage_and_report_date_nothing_by_a_session_without_a_time(tmp_path, capsys):
    """A session with no time (first_ts_ns 0) beside the same problem dated in another file:
    the triage group is seen when the dated session was (not on 1 January 1970), a group of
    undated sessions alone is seen at no time ("-", JSON null), and the report's file table
    and chart leave the undated file out of time and say so, instead of a chart from 1970
    with every dated session in its last bar."""
    from fastcap.out.html import page_data, render_report
    from fastcap.out.triage import format_triage, triage
    simple = _as_pcapng(EXAMPLE, tmp_path / "simple.pcapng", lambda i: True)
    results = []
    for path in (EXAMPLE, simple):
        run = scan(path, ca_file=CA)
        results.append((str(path), list(run), run.summary))
    (dated,), (undated,) = results[0][1], results[1][1]
    assert undated.first_ts_ns == 0 < dated.first_ts_ns
    (both,) = triage(results)
    assert (both.sessions, both.first_ts_ns, both.last_ts_ns) == (
        2, dated.first_ts_ns, dated.last_ts_ns)
    (alone,) = triage(results[1:])
    assert (alone.first_ts_ns, alone.last_ts_ns) == (0, 0)
    assert (alone.to_dict()["first_seen"], alone.to_dict()["last_seen"]) == (None, None)
    assert both.to_dict()["first_seen"].startswith(
        dt.datetime.fromtimestamp(dated.first_ts_ns // 10**9, dt.UTC).strftime("%Y-%m-%dT%H"))
    text = format_triage([alone], total_sessions=1)
    assert "1970" not in text and re.search(r"none\s+-\s+#1", text)

    page = page_data(results, problems=[p.to_dict() for p in triage(results)])
    assert [(f["first_ts_ns"], f["last_ts_ns"]) for f in page["files"]] == [
        (dated.first_ts_ns, dated.last_ts_ns), (None, None)]
    tl = page["timeline"]
    assert tl["t0_ns"] == page["t0_ns"] == dated.first_ts_ns
    assert sum(map(sum, tl["bins"])) == 1 and tl["undated"] == 1
    assert page["with_problems"] == 2
    assert [r[page["columns"].index("start_us")] for r in page["sessions"]] == [0, None]
    html = render_report(page)
    assert "1970" not in html
    assert "1 session(s) without a time" in html
    page_alone = page_data(results[1:], problems=[alone.to_dict()])
    assert page_alone["problems"][0]["first_ts_ns"] is None
    assert "1970" not in render_report(page_alone)
