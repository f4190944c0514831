"""Damaged and unusual captures: everything readable is still analysed, and what was not is
counted by reason in `stats`, in the `scan` summary and in their JSON."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

from fastcap import Capture
from fastcap.run.scanner import scan
from fastcap.select.selection import FrameCounters
from fastcap.session import iter_sessions
from fastcap_synth.scenarios import make_pki, scenario
from fastcap_synth.smtpgen import converse, render
from fastcap_synth.writers import Record, write_pcap

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ALL = EXAMPLES / "all-scenarios.pcapng"


def block_offsets(raw: bytes) -> list[tuple[int, int, int]]:
    """(offset, type, length) of every block of a little-endian pcapng."""
    out, off = [], 0
    while off < len(raw):
        btype, blen = (int.from_bytes(raw[off + k : off + k + 4], "little") for k in (0, 4))
        out.append((off, btype, blen))
        off += blen
    return out


def damaged_copy(tmp_path) -> tuple[Path, int, int]:
    """all-scenarios.pcapng with one packet block's length field wrecked, mid-file."""
    raw = bytearray(ALL.read_bytes())
    epbs = [b for b in block_offsets(bytes(raw)) if b[1] == 6]
    off, _t, blen = epbs[len(epbs) // 2]
    raw[off + 4 : off + 8] = (0x00FFFFF0).to_bytes(4, "little")
    out = tmp_path / "damaged.pcapng"
    out.write_bytes(bytes(raw))
    return out, off, off + blen


def _codes(sessions):
    return {s.number: ([v.code for v in s.verdicts], s.client, s.server) for s in sessions}


def test_scan_of_a_damaged_file_reports_the_damage_and_keeps_the_rest(tmp_path):
    path, bad, good = damaged_copy(tmp_path)
    whole = list(scan(ALL, ca_file=EXAMPLES / "test-root.pem"))
    run = scan(path, ca_file=EXAMPLES / "test-root.pem")
    hurt = list(run)
    summary = run.summary
    assert summary.unreadable == ((bad, good),)
    assert summary.skipped["corrupt block"] == 1
    assert any("resumed at offset" in w for w in summary.warnings)
    # Losing one packet can change at most the one session it belonged to.
    a, b = _codes(whole), _codes(hurt)
    assert len(a) == len(b)
    assert sum(a[k] != b[k] for k in a) <= 1


def test_scan_json_and_table_name_skip_reasons(tmp_path):
    path, bad, good = damaged_copy(tmp_path)
    cmd = [sys.executable, "-m", "fastcap.cli", "scan", "--ca-file",
           str(EXAMPLES / "test-root.pem")]
    r = subprocess.run([*cmd, "--format", "json", str(path)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    summ = json.loads(r.stdout)["files"][0]["summary"]
    assert summ["unreadable"] == [[bad, good]]
    assert summ["skipped"] == {"corrupt block": 1}
    assert summ["checksums_verified"] is False
    r = subprocess.run([*cmd, str(path)], capture_output=True, text=True, timeout=300)
    assert f"unreadable: bytes {bad}-{good - 1}" in r.stdout
    assert "skipped: corrupt block: 1" in r.stdout
    assert f"offset {bad}" in r.stderr


def test_stats_json_lists_unreadable_ranges(tmp_path):
    path, bad, good = damaged_copy(tmp_path)
    r = subprocess.run([sys.executable, "-m", "fastcap.cli", "stats", "--json", str(path)],
                       capture_output=True, text=True, timeout=300)
    doc = json.loads(r.stdout)["files"][0]
    assert doc["unreadable"] == [[bad, good]] and doc["skipped"]["corrupt block"] == 1
    r = subprocess.run([sys.executable, "-m", "fastcap.cli", "stats", str(path)],
                       capture_output=True, text=True, timeout=300)
    assert f"Unreadable:        bytes {bad}-{good - 1} ({good - bad} bytes)" in r.stdout


def test_follow_reports_the_damage_it_read_and_exits_1(tmp_path):
    """`follow` stops reading at the session it shows; the damage read by then is warned of,
    as `scan` warns of it, and the exit code says so (the session may end because of it)."""
    path, bad, _ = damaged_copy(tmp_path)
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(ALL.read_bytes()[:bad + 20])  # ends inside the block damaged above

    def follow(p: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "fastcap.cli", "follow", str(p),
                               "--session", "1"], capture_output=True, text=True, timeout=300)

    whole = follow(ALL)
    assert (whole.returncode, whole.stderr) == (0, "")
    for damaged, kind in ((path, "corrupt"), (cut, "truncated")):
        r = follow(damaged)
        assert r.returncode == 1 and r.stdout.startswith("Session 1: ")
        (line,) = r.stderr.splitlines()
        assert line.startswith(f"fastcap: warning: {damaged}: {kind} ")
        assert line.endswith(f" at offset {bad}")


def test_sessions_closed_early_report_the_damage_read_in_earlier_pieces(tmp_path):
    """A reader that stops at a session (`follow`) gets the warnings of everything read by
    then: of a file, and of a compressed stream read in pieces, where the damage lies in a
    piece before the current one."""
    pki, recs = make_pki(), []
    for i in range(6):  # one after another: each session ends before the next begins
        sc = scenario("no_client_cert", pki, client_port=42000 + i,
                      start_ns=1_705_311_000_000_000_000 + i * 10**10)
        recs += render(converse(sc), sc)
    path = tmp_path / "six.pcap"
    write_pcap(path, recs)
    raw, offsets, off = bytearray(path.read_bytes()), [], 24
    while off < len(raw):
        offsets.append(off)
        off += 16 + int.from_bytes(raw[off + 8 : off + 12], "little")
    bad = offsets[len(offsets) // 4]  # inside the second session
    raw[bad + 8 : bad + 12] = (0x00FFFFF0).to_bytes(4, "little")
    path.write_bytes(raw)
    gz = tmp_path / "six.pcap.gz"
    gz.write_bytes(gzip.compress(bytes(raw)))

    def warned_at(f: Path, n: int) -> list[int]:
        meta: list = []
        sessions = iter_sessions(f, piece=4096, capture_out=meta)
        for s in sessions:
            if s.number == n:
                sessions.close()
        return [w.offset for w in meta[0].warnings]

    for f in (path, gz):
        assert [warned_at(f, n) for n in range(2, 7)] == [[bad]] * 5, f


def test_hold_cap_bounds_waiting_sessions_and_counts_reordering():
    """Session 1 stays open to the end of the capture; with a hold cap of 2 the others are
    not kept waiting for it, and the reordering is reported."""
    counters = FrameCounters()
    got = [s.number for s in iter_sessions(ALL, counters=counters, max_held=2)]
    assert sorted(got) == list(range(1, len(got) + 1))
    normal = [s.number for s in iter_sessions(ALL)]
    assert normal == sorted(normal)
    reordered = sum(counters.notes.values())
    assert (got != normal) == (reordered > 0)


def test_hold_cap_with_a_connection_open_all_along(tmp_path):
    path = _long_lived_capture(tmp_path, others=50)
    counters = FrameCounters()
    got = [s.number for s in iter_sessions(path, counters=counters, max_held=5, window=8)]
    assert sorted(got) == list(range(1, 52))
    assert got.index(1) > 40  # the long-lived session did not hold the others back
    assert sum(counters.notes.values()) == 1
    ordered = [s.number for s in iter_sessions(path)]
    assert ordered == list(range(1, 52))


def _long_lived_capture(tmp_path, others: int) -> Path:
    """Connection 1 (SYN first, FIN last) around `others` short connections to port 25."""
    from fastcap_synth.packets import tcp_frame

    syn, ack, fin = 0x02, 0x10, 0x01
    recs, t = [], 1_700_000_000 * 10**9

    def seg(cport: int, flags: int, seq: int, ackno: int = 0, to_server: bool = True) -> None:
        nonlocal t
        t += 10**9  # a second apart: closed connections are handed on as the capture goes
        src, dst = ("10.0.0.1", "10.0.0.2") if to_server else ("10.0.0.2", "10.0.0.1")
        sp, dp = (cport, 25) if to_server else (25, cport)
        recs.append(Record(tcp_frame(src, dst, sp, dp, seq, ackno, flags), t))

    seg(40000, syn, 100)
    for i in range(others):
        port = 41000 + i
        seg(port, syn, 1)
        seg(port, syn | ack, 500, 2, to_server=False)
        seg(port, fin | ack, 2, 501)
        seg(port, fin | ack, 501, 3, to_server=False)
        seg(port, ack, 3, 502)  # both FINs acknowledged: closed
    seg(40000, fin | ack, 101)
    path = tmp_path / "long.pcap"
    write_pcap(path, recs)
    return path


def test_growing_file_is_read_to_its_size_at_open_with_a_note(tmp_path):
    path = tmp_path / "live.pcap"
    write_pcap(path, [Record(b"x" * 60, 10**9 * (i + 1)) for i in range(10)])
    size = path.stat().st_size
    frames = 0
    with Capture(path, window=4) as cap:
        for i, w in enumerate(cap.windows()):
            frames += len(w)
            if i == 0:
                with open(path, "ab") as fh:  # the capturing program appends
                    fh.write(b"\0" * 16 + b"y" * 60)
        warnings = cap.meta.warnings
    assert frames == 10
    (w,) = warnings
    assert w.kind == "growing_file" and w.offset == size
    assert f"first {size} bytes" in w.message
