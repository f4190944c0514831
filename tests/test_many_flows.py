"""Captures of more flows than the reassembler remembers closed connections for (65,536
records, in 1,024 groups of 64, a flow's group its number modulo 1,024): flows dealt to an
executor's workers (the way of a Dask cluster) must give what one process gives, whatever
flow numbers a worker would have used for its share."""

from __future__ import annotations

import struct
from pathlib import Path

from fastcap.run.scanner import scan
from fastcap.run.workers import SerialExecutor
from fastcap.tcp.reassembly import LATE, TOMB_GROUPS, TOMB_SLOTS, TOMB_WAYS
from fastcap_synth.packets import ACK, FIN, RST, SYN, ipv4, tcp
from fastcap_synth.writers import Record, write_pcap

SERVER = "198.51.100.25"
SECOND = 1_000_000_000
RAW_IP = 101  # pcap link type: the IP header first


def _packet(client: str, sport: int, flags: int, seq: int, ack: int, to_server: bool) -> bytes:
    src, dst = (client, SERVER) if to_server else (SERVER, client)
    ports = (sport, 25) if to_server else (25, sport)
    return ipv4(tcp(*ports, seq, ack, flags), 6, src, dst)


def _closed(client: str, sport: int, t: int) -> list[Record]:
    """A connection opened and closed by both FINs, without data, from time `t`."""
    c, s = 1000, 5000
    steps = [(SYN, c, 0, True), (SYN | ACK, s, c + 1, False), (ACK, c + 1, s + 1, True),
             (FIN | ACK, c + 1, s + 1, True), (FIN | ACK, s + 1, c + 2, False),
             (ACK, c + 2, s + 2, True)]
    return [Record(_packet(client, sport, f, seq, ack, up), t + i * 1000)
            for i, (f, seq, ack, up) in enumerate(steps)]


def _resets(n: int, t: int, first: int = 0) -> list[Record]:
    """`n` flows of one reset each (each a flow number, none a connection), from time `t`,
    the `first`-th such flow on: one packet patched, as building each would be slow."""
    base = bytearray(_packet("10.0.0.0", 1, RST, 1, 0, True))
    out = []
    for i in range(first, first + n):
        struct.pack_into("!I", base, 12, 0x0A010000 + i // 60000)  # 10.1.x.x
        struct.pack_into("!H", base, 20, 1024 + i % 60000)
        out.append(Record(bytes(base), t + i))
    return out


def _results(path: Path, **kw) -> tuple[list[dict], dict]:
    run = scan(path, **kw)
    sessions = [s.to_dict() for s in run]
    return sessions, run.summary.to_dict()


def _late_ack_after(closes: int, gap: int, path: Path) -> int:
    """Flow 0 closes, then `closes` more flows, each `gap` flows after the one before (those
    between one reset each), then a late ACK of flow 0 comes: the capture's frame count."""
    t = 1_700_000_000 * SECOND
    frames = _closed("10.0.0.1", 40000, t)
    for k in range(closes):
        frames += _resets(gap - 1, t + (2 * k + 1) * SECOND, k * gap)
        frames += _closed(f"10.0.0.{k + 2}", 40001, t + (2 * k + 2) * SECOND)
    late = _packet("10.0.0.1", 40000, ACK, 1002, 5002, True)
    frames.append(Record(late, t + (2 * closes + 2) * SECOND))
    write_pcap(path, frames, linktype=RAW_IP, nanosecond=True)
    return len(frames)


def test_a_flow_65536_numbers_later_takes_no_closed_record(tmp_path):
    """Flow 0 closes; 65,535 flows later flow 65,536 closes, in flow 0's group; then a late
    ACK of flow 0 comes.  Both records are kept, so the ACK is counted late, in no session,
    as tshark keeps it in flow 0's stream, in one process and split alike."""
    path = tmp_path / "many-flows.pcap"
    _late_ack_after(1, TOMB_SLOTS, path)
    whole = _results(path)
    assert len(whole[0]) == 2 and whole[1]["skipped"] == {LATE: 1}
    with SerialExecutor() as ex:
        assert _results(path, jobs=2, parts=2, executor=ex) == whole


def test_a_late_segment_past_the_closed_records_splits_as_in_one_process(tmp_path):
    """Flow 0 closes, then 64 flows of its group (each 1,024 numbers after the one before)
    close: its record gives way, and one process, no longer knowing flow 0's sequence space,
    starts a connection at its late ACK (a no_smtp session).  Flows are dealt to workers by
    group, so a worker sees the same closes of flow 0's group and splits alike (dealt by flow
    number modulo 65,536, flow 0's worker saw fewer, kept its record, and counted the ACK
    late: one session fewer)."""
    path = tmp_path / "many-flows.pcap"
    n = _late_ack_after(TOMB_WAYS, TOMB_GROUPS, path)
    whole = _results(path)
    assert [s["first_frame"] for s in whole[0]][-1] == n  # the late ACK's own
    with SerialExecutor() as ex:
        assert _results(path, jobs=2, parts=2, executor=ex) == whole
