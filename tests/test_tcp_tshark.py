"""TCP tracking and reassembly against tshark, on small hand-made captures of the cases
where stacks and captures differ from the textbook: port reuse soon after a FIN or RST, data
on the SYN (TCP Fast Open), simultaneous open, an RST followed by more data, an RST below
what its receiver acknowledged, a conflicting retransmission, a segment arriving in order over
differing out-of-order bytes, differing out-of-order copies of the same bytes, keep-alives,
a zero-window probe, timestamps and SACK options, sequence numbers wrapping at 2^32, a
capture starting mid-connection and every frame captured twice (a SPAN port).  Each
connection must hold the frames tshark's `tcp.stream` gives it and the bytes its
`follow,tcp,raw` shows, with either reassembler core, and a scan split into byte ranges
(`-j N`, an executor) must give what one process gives."""

from __future__ import annotations

import re
import struct
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from fastcap.judge.judging import analyzer_for
from fastcap.options import JudgeOptions
from fastcap.run import streamed
from fastcap.run.scanner import scan, scan_files
from fastcap.run.workers import SerialExecutor
from fastcap.session import iter_sessions

pytest.importorskip("fastcap.select.decode")
from fastcap_synth.packets import tcp_frame  # noqa: E402
from fastcap_synth.writers import Record, write_pcap  # noqa: E402

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
C = ("10.0.0.1", "10.0.0.2", 40000, 25)
S = ("10.0.0.2", "10.0.0.1", 25, 40000)
T0 = 1_700_000_000 * 10**9
GREET, EHLO, OK, QUIT, BYE = (b"220 mx ESMTP\r\n", b"EHLO client\r\n", b"250 ok\r\n",
                              b"QUIT\r\n", b"221 bye\r\n")
TSHARK_TCP = ["-o", "tcp.desegment_tcp_streams:TRUE",
              "-o", "tcp.reassemble_out_of_order:TRUE"]


def _conversation(ic: int, is_: int, *, syn: bool = True, close: str | None = "fin",
                  at: int | None = None) -> list[tuple]:
    """(ends, seq, ack, flags, payload, time or None, tcp_frame keywords) per frame."""
    out = [(C, ic, 0, SYN, b""), (S, is_, ic + 1, SYN | ACK, b""),
           (C, ic + 1, is_ + 1, ACK, b"")] if syn else []
    a, b = ic + 1, is_ + 1
    for side, data in ((S, GREET), (C, EHLO), (S, OK), (C, QUIT), (S, BYE)):
        out.append((side, b, a, ACK | PSH, data) if side is S else (side, a, b, ACK | PSH, data))
        a, b = (a, b + len(data)) if side is S else (a + len(data), b)
    if close == "fin":
        out += [(C, a, b, FIN | ACK, b""), (S, b, a + 1, FIN | ACK, b""),
                (C, a + 1, b + 1, ACK, b"")]
    elif close == "rst":
        out.append((C, a, b, RST | ACK, b""))
    if at is not None:
        out[0] = (*out[0][:5], at)
    return out


def _cases() -> dict[str, list[tuple]]:
    ic, is_ = 1000, 5000
    one = _conversation(ic, is_)
    a, b = ic + 1 + len(EHLO), is_ + 1 + len(GREET + OK)  # before QUIT
    w0 = {"window": 0}
    ts = b"\x01\x01\x08\x0a" + struct.pack(">II", 123, 456)
    syn_opts = b"\x02\x04\x05\xb4\x04\x02" + ts[2:] + b"\x01\x03\x03\x07"
    sack = b"\x01\x01\x05\x0a" + struct.pack(">II", ic + 4, ic + 9) + b"\x00\x00"
    opts = [(*f[:5], None, {"options": syn_opts if f[3] & SYN else ts}) for f in one]
    opts.insert(6, (S, is_ + 1 + len(GREET), ic + 1, ACK, b"", None, {"options": sack}))
    e_len = len(EHLO)
    tfo = [(C, ic, 0, SYN, EHLO), (C, ic, 0, SYN, EHLO), (S, is_, ic + 1 + e_len, SYN | ACK, b""),
           (C, ic + 1 + e_len, is_ + 1, ACK, b""),
           (S, is_ + 1, ic + 1 + e_len, ACK | PSH, GREET + OK),
           (C, ic + 1 + e_len, is_ + 1 + len(GREET + OK), ACK | PSH, QUIT)]
    simultaneous = [(C, ic, 0, SYN, b""), (S, is_, 0, SYN, b""),
                    (C, ic, is_ + 1, SYN | ACK, b""), (S, is_, ic + 1, SYN | ACK, b""),
                    (S, is_ + 1, ic + 1, ACK | PSH, GREET),
                    (C, ic + 1, is_ + 1 + len(GREET), ACK | PSH, EHLO)]
    open_ = _conversation(ic, is_, close=None)

    def later(frames: list[tuple]) -> list[tuple]:
        return [(*f[:5], 3 * 10**9 + i * 10**6) for i, f in enumerate(frames)]
    fa, fb = ic + 1 + len(EHLO + QUIT), is_ + 1 + len(GREET + OK + BYE)  # at the FINs
    reuse = _conversation(777_777, 888_888, at=10**8)
    return {
        # the closed connection's FIN sent again (its last ACK lost) once a new connection
        # took the 4-tuple: the server's, before the new SYN-ACK, does not acknowledge the
        # new SYN (a client in SYN-SENT drops it, RFC 9293 3.10.7.3); the client's, after
        # the handshake, lies before the new ISN: neither is the new connection's start or end
        "the server's FIN again after the port's reuse": one[:-1] + reuse[:1] + [
            (S, fb, fa + 1, FIN | ACK, b"")] + reuse[1:],
        # only the client's SYN and the server's replies captured: the replies acknowledge
        # client bytes the capture missed, and are the server's stream all the same
        "the client's SYN, then only the server's replies": [one[0], one[5], one[7]],
        "the client's FIN again after the port's reuse": one[:-1] + reuse[:3] + [
            (C, fa, fb + 1, FIN | ACK, b"")] + reuse[3:],
        # the server, still holding the closed connection, answers the new SYN with an ACK
        # of its old sequence numbers; the client's RST at the sequence number it
        # acknowledged lies before the new ISN (it resets the old connection, not the new),
        # and the SYN comes again 3 s later (the first RTO of RFC 6298's predecessors, and
        # Windows'): one stream in tshark
        "the port's reuse answered by the old connection's ACK, then an RST": one[:-1] + reuse[
            :1] + [(S, fb + 1, fa + 1, ACK, b""), (C, fa + 1, 0, RST, b"")] + [
            (*f[:5], 31 * 10**8 + i * 10**6) for i, f in enumerate(reuse)],
        **{f"reuse after {close} {gap} ns": _conversation(ic, is_, close=close)
           + _conversation(777_777, 888_888, close=close, at=10**9 + gap)
           for close in ("fin", "rst") for gap in (20_000_000, 500_000_000, 3 * 10**9)},
        "reuse inside the old sequence space": one + _conversation(ic + 5, is_ + 3,
                                                                   at=2 * 10**8),
        "fast open, SYN sent twice": tfo,
        "simultaneous open": simultaneous,
        # a stack that acknowledges the SYN with a bare ACK before its SYN-ACK (Zeek's
        # TCPSessionAdapter::UpdateInactiveState knows such "eccentric TCP's"), the ACK's
        # sequence number its ISN, anything else, or the ACK sent twice: one stream in tshark
        **{f"the server's bare ACK before its SYN-ACK, {name}": one[:1] + [
            (S, seq, ic + 1, ACK, b"")] * times + one[1:]
           for name, seq, times in (("at its ISN", is_, 1), ("at 0", 0, 1),
                                    ("far off, twice", is_ + (1 << 30), 2))},
        "RST then data": open_[:6] + [(C, a, b, RST | ACK, b"")] + open_[6:],
        # an RST below what its receiver acknowledged is out of its window (RFC 9293 3.10.7.4,
        # RFC 5961 3.2): ignored, so the dialogue going on 3 s later is the same connection
        **{f"{who}'s stale RST, data 3 s later": open_[:6] + [rst] + later(open_[6:])
           for who, rst in (("client", (C, a - 5, b, RST | ACK, b"")),
                            ("server", (S, b - len(OK) - 2, a, RST | ACK, b"")))},
        # an RST its receiver did not take (RFC 5961 3.2): in its window past its start
        # (a challenge ACK answers it), or one the frames after it show was not the end
        # (its sender goes on past it, or the receiver acknowledges bytes past it); tshark
        # keeps one stream, so the dialogue 3 s later stays one session.  (An RST at the
        # end of data not yet acknowledged is taken as the end: see test_reassembly.)
        "RST in the window past its start, data 3 s later": open_[:6] + [
            (C, a + 100, b, RST | ACK, b"")] + later(open_[6:]),
        "RST, its sender goes on, reply 3 s later": open_[:6] + [
            (C, a, b, RST | ACK, b""), (C, a, b, ACK | PSH, QUIT)] + later(open_[7:]),
        "RST, the receiver acknowledges past it, 3 s later": open_[:6] + [
            (C, a, b, RST | ACK, b""), (S, b, a + len(QUIT), ACK | PSH, BYE)] + later([
                (S, b + len(BYE), a + len(QUIT), FIN | ACK, b"")]),
        "conflicting retransmission": one[:5] + [(C, ic + 1, is_ + 1 + len(GREET), ACK | PSH,
                                                  b"EHLO xylenx\r\n")] + one[5:],
        "keep-alives": one[:6] + [(C, a - 1, b, ACK, b"\x00"), (C, a - 1, b, ACK, b""),
                                  (S, b - 1, a, ACK, b"")] + one[6:],
        "zero-window probe": one[:5] + [(S, b - len(OK), a, ACK | PSH, OK, None, w0),
                                        (C, a, b, ACK, QUIT[:1]), (S, b, a, ACK, b"", None, w0),
                                        (C, a, b, ACK, QUIT[:1]), (S, b, a, ACK, b""),
                                        (C, a, b, ACK | PSH, QUIT),
                                        (S, b, a + len(QUIT), ACK | PSH, BYE)],
        "timestamps and SACK": opts,
        "sequence numbers wrap": _conversation(0xFFFFFFFC, 0xFFFFFFEB),
        "mid-connection, wrapping": _conversation(0xFFFFFFF0, 0xFFFFFFFA, syn=False),
        "client's first segments missing": one[5:],
        "every frame twice": [f for f in one for _ in (0, 1)],
        # QUIT arrives in order over bytes held from an out-of-order copy that differs
        "in-order segment over held bytes": one[:6] + [(C, a + 2, b, ACK | PSH, b"XXXX"),
                                                       (C, a, b, ACK | PSH, QUIT)] + one[7:],
        "in-order segment over part of held bytes": one[:6] + [
            (C, a + 2, b, ACK | PSH, b"ZZ\r\n"), (C, a, b, ACK | PSH, QUIT[:4])] + one[7:],
        # differing copies held out of order, then the gap filled: at each point reached, the
        # copy held first among those covering it gives the bytes up to its end
        **{f"held copies differ, {name}": one[:6] + [
            (C, a + at, b, ACK | PSH, data) for at, data in held] + [
            (C, a, b, ACK | PSH, QUIT[:min(at for at, _ in held)])] + one[7:]
           for name, held in (("same start", [(2, b"AAAA"), (2, b"BBBB")]),
                              ("second starts lower", [(3, b"AAA"), (2, b"BBBB")]),
                              ("second lower and shorter", [(3, b"AAA"), (2, b"BB")]),
                              ("second longer", [(2, b"AA"), (2, b"BBBB")]),
                              ("each lower", [(4, b"AA"), (3, b"BBB"), (2, b"CCCC")]),
                              ("apart, then over both", [(2, b"AA"), (5, b"A"), (3, b"BBB")]))},
    }


def _write(path: Path, frames: list[tuple]) -> None:
    recs, t = [], T0
    for f in frames:
        ends, seq, ack, flags, payload = f[:5]
        t = T0 + f[5] if len(f) > 5 and f[5] is not None else t + 1_000_000
        kw = f[6] if len(f) > 6 else {}
        recs.append(Record(tcp_frame(*ends, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, flags, payload,
                                     **kw), t))
    write_pcap(path, recs)


def _streams(exe: str, path: Path) -> list[list[int]]:
    """tshark's `tcp.stream`s: the frame numbers of each."""
    out = subprocess.run([exe, *TSHARK_TCP, "-r", str(path), "-T", "fields",
                          "-e", "frame.number", "-e", "tcp.stream"],
                         capture_output=True, text=True, check=True).stdout
    streams: dict[int, list[int]] = defaultdict(list)
    for line in out.splitlines():
        frame, stream = line.split("\t")
        streams[int(stream)].append(int(frame))
    return [streams[k] for k in sorted(streams)]


def _tshark(exe: str, path: Path) -> list[tuple]:
    """Per tcp.stream: (frames, node 0's address:port, node 0's bytes, node 1's bytes)."""
    got = []
    for n, frames in enumerate(_streams(exe, path)):
        text = subprocess.run([exe, *TSHARK_TCP, "-r", str(path), "-q", "-z",
                               f"follow,tcp,raw,{n}"],
                              capture_output=True, text=True, check=True).stdout
        lines = text.split("=" * 67)[1].strip().splitlines()
        node0 = lines[2].split(": ", 1)[1]
        data = [b"", b""]
        for line in lines[4:]:
            data[line.startswith("\t")] += bytes.fromhex(line.strip())
        got.append((frames, node0, data[0], data[1]))
    return got


def _fastcap(path: Path, backend: str) -> list[tuple]:
    got = []
    for s in iter_sessions(path, keep_streams=True, backend=backend):
        assert not s.c2s.gaps and not s.s2c.gaps
        got.append((s.first_frame, s.last_frame, s.frames, s.client, s.c2s.data, s.s2c.data))
    return got


@pytest.fixture(scope="module")
def captures(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("tcpcases")
    out = {}
    for i, (name, frames) in enumerate(_cases().items()):
        out[name] = d / f"case{i}.pcap"
        _write(out[name], frames)
    return out


@pytest.fixture(scope="module")
def tshark_read() -> dict[Path, list[tuple]]:
    return {}  # what tshark made of each capture, asked once


@pytest.mark.parametrize("name", list(_cases()))
def test_connections_and_bytes_match_tshark(tshark, tshark_read, captures, backend, name):
    path = captures[name]
    if path not in tshark_read:
        tshark_read[path] = _tshark(tshark, path)
    want = tshark_read[path]
    got = _fastcap(path, backend)
    assert len(got) == len(want)
    for (frames, node0, d0, d1), (first, last, n, client, c2s, s2c) in zip(
            want, got, strict=True):
        assert (first, last, n) == (min(frames), max(frames), len(frames))
        assert (c2s, s2c) == ((d0, d1) if node0 == client else (d1, d0))


@pytest.mark.parametrize("name", list(_cases()))
def test_every_scan_path_gives_one_process_results(captures, name):
    path = captures[name]
    one = [s.to_dict() for s in scan(path, jobs=1)]
    options = JudgeOptions()
    for parts in (2, 5):
        assert [s.to_dict() for s in scan(path, jobs=3, executor=SerialExecutor(),
                                          parts=parts)] == one
        assert [s.to_dict() for s in streamed.iter_scan(
            path, options, analyzer_for(options), jobs=2, parts=parts, workers=False)] == one


def test_bytes_the_peer_acknowledged_stay(tshark, tmp_path, backend):
    """The client's "QU" is missing from the capture, "IT\\r\\n" is held after the gap, and the
    server acknowledges all six bytes: it has them in order, so a later segment over them
    (here one differing from them) is a retransmission of settled bytes and changes none.
    tshark's follow marks the missing bytes and keeps the held ones; fastcap fills the gap
    from the retransmission and keeps the held bytes too."""
    ic, is_ = 1000, 5000
    one = _conversation(ic, is_)
    a, b = ic + 1 + len(EHLO), is_ + 1 + len(GREET + OK)
    path = tmp_path / "acked.pcap"
    _write(path, one[:6] + [(C, a + 2, b, ACK | PSH, QUIT[2:]), (S, b, a + 6, ACK, b""),
                            (C, a, b, ACK | PSH, b"QUXX\r\n")] + one[7:])
    ((frames, node0, d0, d1),) = _tshark(tshark, path)
    head, tail = re.split(rb"\[2 bytes missing in capture file\]\x00", d0)
    (s,) = iter_sessions(path, keep_streams=True, backend=backend)
    assert node0 == s.client and s.frames == len(frames)
    assert s.c2s.data == EHLO + b"QUIT\r\n" and s.s2c.data == d1
    assert (head, tail) == (EHLO, b"IT\r\n")


def test_reset_payload_is_no_stream_data(tshark, tmp_path, backend):
    """Text on an RST explains the reset (RFC 1122 4.2.2.12) and is no part of the stream: a
    receiver tearing the connection down delivers none of it (Linux drops it).  tshark's
    follow shows it as the sender's data; fastcap stores none of it."""
    ic, is_ = 1000, 5000
    one = _conversation(ic, is_)
    a, b = ic + 1 + len(EHLO), is_ + 1 + len(GREET + OK)
    path = tmp_path / "rst-data.pcap"
    _write(path, one[:6] + [(C, a, b, RST | ACK, QUIT)])
    ((frames, node0, d0, d1),) = _tshark(tshark, path)
    (s,) = iter_sessions(path, keep_streams=True, backend=backend)
    assert node0 == s.client and s.frames == len(frames) and s.s2c.data == d1
    assert d0 == EHLO + QUIT and s.c2s.data == EHLO


def _resumed_cases() -> dict[str, tuple[list[tuple], int | None]]:
    """Dialogues going on over 1 s after an RST that looked taken: (frames, the RST's frame
    number when the later part goes on with the closed connection, else None)."""
    ic, is_ = 1000, 5000
    open_ = _conversation(ic, is_, close=None)
    a, b = ic + 1 + len(EHLO), is_ + 1 + len(GREET + OK)  # before QUIT
    end = (C, a + len(QUIT), b + len(BYE), RST | ACK, b"")

    def later(frames: list[tuple], at: int = 3 * 10**9) -> list[tuple]:
        return [(*f[:5], at + i * 10**6) for i, f in enumerate(frames)]
    return {
        # QUIT never reached the server: the client resends it, the server answers
        "RST at the end of data its receiver never got": (open_[:6] + [
            (C, a, b, ACK | PSH, QUIT), (C, a + len(QUIT), b, RST | ACK, b"")] + later([
                (C, a, b, ACK | PSH, QUIT), (S, b, a + len(QUIT), ACK | PSH, BYE)]), 8),
        "RST lost past the capture point": (
            open_[:6] + [(C, a, b, RST | ACK, b"")] + later(open_[6:]), 7),
        "RST, 30 s of silence, the server goes on": (open_[:6] + [
            (C, a, b, RST | ACK, b"")] + later([(S, b, a, ACK | PSH, b"421 idle\r\n")],
                                                30 * 10**9), 7),
        # the server's next reply was lost before the capture point: the client acknowledges
        # bytes the capture never saw (tshark: "ACKed segment that wasn't captured")
        "RST, the client acknowledges a reply the capture missed": (open_[:6] + [
            (C, a, b, RST | ACK, b"")] + later([
                (C, a, b + len(OK), ACK | PSH, QUIT),
                (S, b + len(OK), a + len(QUIT), ACK | PSH, BYE)]), 7),
        # no continuation: a new connection (SYN), data outside the old sequence space, an
        # acknowledgement of bytes the peer never sent (beyond any receive window)
        "RST, then the port reused": (open_ + [end] + _conversation(777_777, 888_888,
                                                                  at=4 * 10**9), None),
        "RST, then data of another sequence space": (
            open_ + [end] + later([(C, 99_999, 77_777, ACK | PSH, EHLO)]), None),
        "RST, then data acknowledging unsent bytes": (
            open_ + [end] + later([(C, a + len(QUIT), b + len(BYE) + (1 << 29),
                                    ACK | PSH, EHLO)]), None),
    }


@pytest.mark.parametrize("name", list(_resumed_cases()))
def test_dialogue_going_on_after_reset_names_the_closed_session(tshark, tmp_path, backend,
                                                                name):
    """An RST that looked taken closes the connection and it is handed on after 1 s; tshark
    keeps what follows in the same stream (it splits only at a new SYN).  Where the later
    part goes on with the closed connection's sequence numbers (no SYN, its sequence number
    within or at the end of what its direction sent, its acknowledgement within what the peer
    sent) the RST was lost or not acted on past the capture point: the session it starts
    names the closed one's first frame and the RST's frame."""
    frames, rst = _resumed_cases()[name]
    path = tmp_path / "resumed.pcap"
    _write(path, frames)
    first, second = iter_sessions(path, backend=backend)
    assert first.tcp.after_reset is None and first.tcp.closed_by == "rst"
    if rst is None:
        assert second.tcp.after_reset is None
        return
    assert _streams(tshark, path) == [list(range(1, len(frames) + 1))]  # one stream
    assert first.frames + second.frames == len(frames)
    assert second.first_frame == first.last_frame + 1
    assert second.tcp.after_reset == (first.first_frame, rst)


@pytest.mark.parametrize(("resent", "rst"), [("server's last reply again", False),
                                           ("client's data past its FIN", False),
                                           ("server's last reply again", True)])
def test_data_after_a_fin_close_names_no_session(tshark, tmp_path, backend, resent, rst):
    """Once both FINs are acknowledged neither end sends again, so a segment with payload
    3 s later goes on with no dialogue: a late copy of bytes already delivered, or bytes past
    a FIN that no receiver takes.  tshark keeps it in the closed stream (it splits only at a
    new SYN).  fastcap counts the late copy late, in no session; bytes past a FIN make a
    session of their own that names no earlier session, since `after_reset` tells of a
    dialogue going on past an RST, and here none can, even where an RST came after the FINs
    (a stack resetting after its close)."""
    ic, is_ = 1000, 5000
    one = _conversation(ic, is_)
    a, b = ic + 1 + len(EHLO + QUIT), is_ + 1 + len(GREET + OK + BYE)  # at the FINs
    if rst:
        one.append((C, a + 1, b + 1, RST, b""))
    late = {"server's last reply again": (S, b - len(BYE), a, ACK | PSH, BYE),
            "client's data past its FIN": (C, a + 1, b + 1, ACK | PSH, EHLO)}[resent]
    path = tmp_path / "fin-then-data.pcap"
    _write(path, one + [(*late, 3 * 10**9)])
    assert _streams(tshark, path) == [list(range(1, len(one) + 2))]  # one stream
    first, *rest = iter_sessions(path, backend=backend)
    assert first.frames == len(one)
    if resent == "server's last reply again":
        assert rest == []
        return
    (second,) = rest
    assert second.first_frame == len(one) + 1 and second.tcp.after_reset is None


def test_every_scan_path_names_the_closed_session(tmp_path):
    """A split scan (ranges, flows dealt to workers) names the same closed session and RST
    as one process: frame numbers are the whole file's."""
    frames, rst = _resumed_cases()["RST lost past the capture point"]
    path = tmp_path / "resumed.pcap"
    _write(path, frames)
    one = [s.to_dict() for s in scan(path, jobs=1)]
    assert [s["tcp"]["after_reset"] for s in one] == [None, (1, rst)]
    (mid,) = [v for v in one[1]["verdicts"] if v["code"] == "capture_started_mid_session"]
    assert f"session beginning at frame 1 goes on, after the SMTP greeting and EHLO, past " \
           f"its RST (frame {rst})" in mid["message"]
    assert [s.to_dict() for s in scan(path, jobs=3, executor=SerialExecutor(), parts=3)] == one
    options = JudgeOptions()
    assert [s.to_dict() for s in streamed.iter_scan(
        path, options, analyzer_for(options), jobs=2, parts=3, workers=False)] == one


def test_ring_files_name_the_closed_session_in_their_own_numbers(tmp_path):
    """A run of ring-buffer files numbers each session's frames in its own file: the closed
    session and RST are named in that file's numbers, and not at all when the closed session
    began in an earlier file (no frame of the session's own file is it)."""
    frames, rst = _resumed_cases()["RST lost past the capture point"]
    before = _conversation(70_000, 90_000)  # a whole connection in an earlier file
    paths = [tmp_path / f"ring{i}.pcap" for i in range(3)]
    _write(paths[0], before)
    _write(paths[1], [(*f[:5], 10**9 + i * 10**6) for i, f in enumerate(frames[:rst])])
    _write(paths[2], [(*f[:5], 4 * 10**9 + i * 10**6) for i, f in enumerate(frames[rst:])])
    split = scan_files(paths, jobs=1)
    assert [len(r.sessions) for r in split] == [1, 1, 1]
    assert split[2].sessions[0].tcp.after_reset is None
    _write(paths[1], frames)
    (early, ring_end) = scan_files(paths[:2], jobs=1)
    assert [s.tcp.after_reset for s in ring_end.sessions] == [None, (1, rst)]


def _one_session(tshark: str, path: Path, frames: list[tuple], backend: str):
    """The session of ``frames`` written to ``path``: one, of all of them, as tshark's one
    stream."""
    _write(path, frames)
    assert _streams(tshark, path) == [list(range(1, len(frames) + 1))]  # one stream
    (s,) = iter_sessions(path, backend=backend)
    assert s.frames == len(frames)
    return s


def _close_cases() -> dict[str, tuple[list[tuple], str]]:
    """Connections ending on FINs and an RST in some order: (frames, `closed_by`)."""
    ic, is_ = 1000, 5000
    one = _conversation(ic, is_)
    a, b = ic + 1 + len(EHLO + QUIT), is_ + 1 + len(GREET + OK + BYE)  # at the FINs
    c_fin, s_fin = (C, a, b, FIN | ACK, b""), (S, b, a + 1, FIN | ACK, b"")
    q, r = ic + 1 + len(EHLO), is_ + 1 + len(GREET + OK)  # before QUIT
    return {
        # an RST the frames after it undid (its sender goes on past it), or one its receiver
        # did not take (below its RCV.NXT), then the dialogue and both FINs: Zeek's
        # conn_state says RSTO, as it marks an end reset at any RST it sends
        "the client's RST undone, then both FINs": (
            one[:6] + [(C, q, r, RST | ACK, b"")] + one[6:], "fin"),
        "the client's stale RST, then both FINs": (
            one[:6] + [(C, q - 5, r, RST | ACK, b"")] + one[6:], "fin"),
        "FINs acknowledged, then the client's RST": (one + [(C, a + 1, b + 1, RST, b"")], "fin"),
        "FINs acknowledged, then the server's RST": (
            one + [(S, b + 1, a + 1, RST | ACK, b"")], "fin"),
        "both FINs, the client's RST for the last ACK": (
            one[:-1] + [(C, a + 1, b + 1, RST | ACK, b"")], "fin"),
        "the client's FIN and RST, then the server's FIN": (
            one[:-3] + [c_fin, (C, a + 1, b, RST, b""), s_fin], "fin"),
        "the client's FIN, then the server's RST": (
            one[:-3] + [c_fin, (S, b, a + 1, RST | ACK, b"")], "rst"),
        "the server's RST, then the client's FIN": (
            one[:-3] + [(S, b, a, RST | ACK, b""), c_fin], "rst"),
    }


@pytest.mark.parametrize("name", list(_close_cases()))
def test_closed_by_tells_how_the_connection_was_closed_first(tshark, tmp_path, backend, name):
    """Once both ends sent their FIN, each before any RST of its own, the connection closed
    in order, and an RST after that (a stack tearing down what is left, or resetting in
    place of the last ACK) changes nothing: Zeek's conn_state stays SF (an endpoint that
    closed does not count as reset while its peer closed too, and a FIN turns an RST its
    peer sent after its own FIN back into a close), with the R only in `history`.  An end
    resetting before it sent its FIN reset the connection, unless its receiver did not take
    the RST or the frames after it undid it (then Zeek parts: RSTO, see the README)."""
    frames, want = _close_cases()[name]
    path = tmp_path / "close.pcap"
    s = _one_session(tshark, path, frames, backend)
    assert s.tcp.closed_by == want
    (d,) = [r.to_dict() for r in scan(path, jobs=1, backend=backend)]
    assert d["tcp"]["closed_by"] == want


def test_a_dialogue_going_on_past_two_resets_names_each_part_it_continues(tshark, tmp_path,
                                                                          backend):
    """The client resets, the dialogue goes on 3 s later with the client's QUIT alone, the
    server resets that part, and 3 s later the server answers: tshark keeps all of it in one
    stream.  Each later part goes on with the part before it, so each names that part's first
    frame and the RST that closed it; the third part's server bytes go on with what the server
    sent in the first part, since the second part saw none from it."""
    ic, is_ = 1000, 5000
    open_ = _conversation(ic, is_, close=None)
    a, b = ic + 1 + len(EHLO), is_ + 1 + len(GREET + OK)  # before QUIT

    def later(frames: list[tuple], at: int) -> list[tuple]:
        return [(*f[:5], at + i * 10**6) for i, f in enumerate(frames)]
    frames = open_[:6] + [(C, a, b, RST | ACK, b"")] + later([
        (C, a, b, ACK | PSH, QUIT), (S, b, a + len(QUIT), RST | ACK, b"")], 3 * 10**9) + later([
        (S, b, a + len(QUIT), ACK | PSH, BYE), (C, a + len(QUIT), b + len(BYE), ACK, b"")],
        6 * 10**9)
    path = tmp_path / "two-resets.pcap"
    _write(path, frames)
    assert _streams(tshark, path) == [list(range(1, len(frames) + 1))]  # one stream
    first, second, third = iter_sessions(path, backend=backend)
    assert [s.frames for s in (first, second, third)] == [7, 2, 2]
    assert first.tcp.after_reset is None
    assert second.tcp.after_reset == (first.first_frame, 7)
    assert third.tcp.after_reset == (second.first_frame, 9)


def test_a_replay_with_new_bytes_starts_a_session_at_its_first_new_bytes(tshark, tmp_path,
                                                                         backend):
    """The conversation played again 3 s after its close on FINs, with the same tuple and ISNs
    but a longer greeting (a server answering the replay anew): tshark keeps all of it in the
    first copy's stream, as it splits only at a SYN with a new ISN.  The replay's SYN, SYN-ACK
    and ACK repeat what the closed connection sent, so they are counted late, as in an exact
    replay; its greeting holds bytes the first copy never had, so a session starts there,
    without the SYN it lost to the late count and naming no earlier session, and its
    dialogue is read whole from the greeting on."""
    from fastcap.tcp.reassembly import LATE

    ic, is_ = 1000, 5000
    one = _conversation(ic, is_)
    greet = b"220 mx.example ESMTP ready for the replay\r\n"
    a, b = ic + 1, is_ + 1
    again = [(C, ic, 0, SYN, b""), (S, is_, a, SYN | ACK, b""), (C, a, b, ACK, b""),
             (S, b, a, ACK | PSH, greet), (C, a, b + len(greet), ACK | PSH, EHLO)]
    frames = one + [(*f[:5], 3 * 10**9 + i * 10**6) for i, f in enumerate(again)]
    path = tmp_path / "replay.pcap"
    _write(path, frames)
    assert _streams(tshark, path) == [list(range(1, len(frames) + 1))]  # one stream
    first, second = iter_sessions(path, backend=backend)
    assert first.frames == len(one) and first.tcp.syn_seen
    assert second.first_frame == len(one) + 4 and second.frames == 2
    assert not second.tcp.syn_seen and second.tcp.after_reset is None
    assert second.smtp.banner_text == greet[4:].decode().strip()
    assert second.smtp.ehlo_name == "client"
    run = scan(path, jobs=1, backend=backend)
    assert len(list(run)) == 2 and run.summary.to_dict()["skipped"] == {LATE: 3}


@pytest.mark.parametrize("name", ["both FINs, the client's RST for the last ACK",
                                  "the client's FIN and RST, then the server's FIN"])
@pytest.mark.parametrize("sender", [C, S])
def test_data_after_fins_and_an_rst_names_no_session(tshark, tmp_path, backend, name, sender):
    """Closed on FINs first and then reset (`closed_by` "fin"): both ends sent their FIN, so
    neither sends data again, and a segment with payload past its sender's FIN 3 s later
    goes on with no dialogue.  tshark keeps it in the closed stream; the session it starts
    names none, as `after_reset` names only a session an RST closed."""
    frames, _ = _close_cases()[name]
    a, b = 1000 + 1 + len(EHLO + QUIT), 5000 + 1 + len(GREET + OK + BYE)  # at the FINs
    seq, ack = (a + 1, b + 1) if sender is C else (b + 1, a + 1)
    frames = frames + [(sender, seq, ack, ACK | PSH, EHLO, 3 * 10**9)]
    path = tmp_path / "fins-rst-data.pcap"
    _write(path, frames)
    assert _streams(tshark, path) == [list(range(1, len(frames) + 1))]  # one stream
    first, second = iter_sessions(path, backend=backend)
    assert first.tcp.closed_by == "fin" and second.first_frame == len(frames)
    assert second.tcp.after_reset is None


def _zeek_end_cases() -> dict[str, tuple[list[tuple], int | None]]:
    """(frames, the first frame Zeek reads as another connection's, or None) for dialogues
    fastcap and tshark keep whole past an RST or a long quiet."""
    ic, is_ = 1000, 5000
    open_ = _conversation(ic, is_, close=None)
    a, b = ic + 1 + len(EHLO), is_ + 1 + len(GREET + OK)  # before QUIT
    past = (C, a + 100, b, RST | ACK, b"")  # in the window past RCV.NXT: not taken

    def at(frames: list[tuple], ns: int) -> list[tuple]:
        return [(*f[:5], ns + i * 10**6) for i, f in enumerate(frames)]
    fa, fb = a + len(QUIT), b + len(BYE)
    fins = [(S, fb, fa, FIN | ACK, b""), (C, fa, fb + 1, FIN | ACK, b""),
            (C, fa + 1, fb + 1, ACK, b"")]
    return {
        "RST, data 3 s later": (open_[:6] + [past] + at(open_[6:], 3 * 10**9), None),
        "RST, data 6 s later": (open_[:6] + [past] + at(open_[6:], 6 * 10**9), 8),
        # the RST 7 ms in: the data at 5.007 s lies exactly tcp_close_delay past it
        "RST, data exactly 5 s later": (open_[:6] + [past] + at(open_[6:], 5_007_000_000), 8),
        # the server's FIN completes the close anew at 3 s: the timer runs from there
        "RST, the server's FIN at 3 s, data at 7 s": (
            open_[:6] + [past] + at([(S, b, a, FIN | ACK, b"")], 3 * 10**9) + at(
                [(C, a, b + 1, ACK | PSH, QUIT)], 7 * 10**9), None),
        "RST, the server's FIN at 3 s, data at 9 s": (
            open_[:6] + [past] + at([(S, b, a, FIN | ACK, b"")], 3 * 10**9) + at(
                [(C, a, b + 1, ACK | PSH, QUIT)], 9 * 10**9), 9),
        # a second RST from the same end changes nothing (its end is reset already)
        "two RSTs, data 6 s after the first": (
            open_[:6] + [past] + at([past], 2 * 10**9) + at(open_[6:], 6 * 10**9), 9),
        # closed by both FINs, then data past its sender's FIN 3 s later (fastcap: a
        # session of its own, after the 1 s linger): nothing for Zeek inside the first
        "both FINs, then an RST": (open_ + fins + [(C, fa + 1, fb + 1, RST, b"")], None),
        # no RST: the 6th frame 6 ms in, the rest just under or exactly 300 s after it
        "quiet for 299.9 s": (open_[:6] + at(open_[6:], 299_906_000_000), None),
        "quiet for 300 s": (open_[:6] + at(open_[6:], 300_006_000_000), 7),
    }


@pytest.mark.parametrize("name", list(_zeek_end_cases()))
def test_where_zeek_ends_a_connection(tshark, tmp_path, backend, name):
    """Zeek closes an end at any RST it sends (TCPSessionAdapter::UpdateEstablishedState),
    and a close that completes the connection's (ConnectionClosed: the end reset, or the
    peer closed too) sets ConnDeleteTimer tcp_close_delay (5 s) on from that packet, anew at
    each such close; Zeek's timers expire before the packet at or past that time is read
    (run_state's dispatch_packet), so that packet begins another connection in Zeek.  An
    RST from an end already reset, or after both FINs (UpdateClosedState), closes nothing.
    A connection quiet for tcp_inactivity_timeout (5 min, unchanged on the mail ports by
    conn/inactivity.zeek) is removed likewise (Session::InactivityTimer).  fastcap and
    tshark keep one session, one stream."""
    frames, cut = _zeek_end_cases()[name]
    assert _one_session(tshark, tmp_path / "zeek-end.pcap", frames, backend).tcp.zeek_cut == cut
