"""A capture whose TCP payload bytes were rewritten after it was taken (an anonymiser that
keeps the headers, a hand edit) is told from one whose checksums checksum offload left: a
sample of the small segments' TCP checksums, against tshark's `tcp.checksum.status` and
`ip.checksum.status` with checksum validation on."""

from __future__ import annotations

import gzip
import struct
import subprocess

import pytest

from fastcap.options import DEFAULT_PORTS
from fastcap.read.stream import open_capture
from fastcap.run.scanner import scan
from fastcap.select.selection import FrameCounters, iter_selected
from fastcap.select.stats import compute_stats
from fastcap_synth.smtpgen import SmtpScenario, smtp_records
from fastcap_synth.writers import Record, write_pcap

SESSIONS = 6


V6 = {"client_ip": "2001:db8::10", "server_ip": "2001:db8:1::25"}


def _records(**addresses: str) -> list[Record]:
    out: list[Record] = []
    for i in range(SESSIONS):
        out += smtp_records(SmtpScenario(client_port=40000 + i,
                                         start_ns=1_705_311_000_000_000_000 + i * 10**9,
                                         **addresses))
    return out


def _v6(frame: bytes) -> bool:
    return frame[12:14] == b"\x86\xdd"


def _tcp_at(frame: bytes) -> tuple[int, int]:
    """(IP header offset, TCP header offset) of an Ethernet frame (IPv6: no extension
    header)."""
    return 14, 14 + (40 if _v6(frame) else (frame[14] & 0x0F) * 4)


def _payload(frame: bytes) -> tuple[int, int]:
    ip, tcp = _tcp_at(frame)
    if _v6(frame):
        end = tcp + struct.unpack_from("!H", frame, ip + 4)[0]
    else:
        end = ip + struct.unpack_from("!H", frame, ip + 2)[0]
    return tcp + (frame[tcp + 12] >> 4) * 4, end


def _rewritten(records: list[Record]) -> list[Record]:
    """Every payload byte replaced (length kept), the headers and checksums left as sent."""
    out = []
    for r in records:
        start, end = _payload(r.data)
        data = r.data[:start] + b"x" * (end - start) + r.data[end:]
        out.append(Record(data, r.ts_ns, r.orig_len))
    return out


def _offloaded(records: list[Record], complement: bool = False) -> list[Record]:
    """The client's frames as its own capture shows them under checksum offload: the TCP
    checksum only the pseudo-header's sum (what the stack leaves the card to finish), or
    with `complement` that sum's ones' complement (as some drivers leave it)."""
    out = []
    for r in records:
        ip, tcp = _tcp_at(r.data)
        data = bytearray(r.data)
        if struct.unpack_from("!H", data, tcp)[0] >= 40000:
            seg = _payload(r.data)[1] - tcp
            addr = data[ip + 8:ip + 40] if _v6(r.data) else data[ip + 12:ip + 20]
            words = struct.unpack(f"!{len(addr) // 2}H", addr)
            partial = sum(words) + 6 + seg
            while partial >> 16:
                partial = (partial & 0xFFFF) + (partial >> 16)
            struct.pack_into("!H", data, tcp + 16, partial ^ 0xFFFF if complement else partial)
        out.append(Record(bytes(data), r.ts_ns, r.orig_len))
    return out


def _ip_checksum(header: bytes) -> int:
    words = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while words >> 16:
        words = (words & 0xFFFF) + (words >> 16)
    return words ^ 0xFFFF


def _readdressed(records: list[Record]) -> list[Record]:
    """Both addresses and the client's port rewritten, an IPv4 header checksum summed anew
    and the TCP checksum left as sent: what a hand edit, or a tool that sums only the IPv4
    header anew, leaves; the payload bytes as they were."""
    out = []
    for r in records:
        ip, tcp = _tcp_at(r.data)
        data = bytearray(r.data)
        last = (ip + 23, ip + 39) if _v6(r.data) else (ip + 15, ip + 19)
        for at in last:  # the last byte of each address
            data[at] ^= 0x55
        for at in (tcp, tcp + 2):
            port = struct.unpack_from("!H", data, at)[0]
            if port >= 40000:
                struct.pack_into("!H", data, at, port + 1000)
        if not _v6(r.data):
            struct.pack_into("!H", data, ip + 10, 0)
            struct.pack_into("!H", data, ip + 10, _ip_checksum(bytes(data[ip:tcp])))
        out.append(Record(bytes(data), r.ts_ns, r.orig_len))
    return out


def _tshark_status(tshark: str, path) -> list[tuple[int, str, str]]:
    """tshark's (frame, tcp.checksum.status, ip.checksum.status) of each frame with payload."""
    out = subprocess.run(
        [tshark, "-n", "-r", str(path), "-o", "tcp.check_checksum:TRUE",
         "-o", "ip.check_checksum:TRUE", "-Y", "tcp.len > 0", "-T", "fields",
         "-e", "frame.number", "-e", "tcp.checksum.status", "-e", "ip.checksum.status"],
        capture_output=True, text=True, check=True).stdout
    return [(int(f), t, i) for f, t, i in (line.split("\t") for line in out.splitlines())]


def _write_captures(d, records: list[Record]) -> dict:
    out = {}
    for name, recs in (("sent", records), ("rewritten", _rewritten(records)),
                       ("offloaded", _offloaded(records)),
                       ("readdressed", _readdressed(records)),
                       ("complemented", _readdressed(_offloaded(records, complement=True)))):
        out[name] = d / f"{name}.pcap"
        write_pcap(out[name], recs)
    return out


@pytest.fixture(scope="module")
def captures(tmp_path_factory) -> dict:
    return _write_captures(tmp_path_factory.mktemp("rewritten"), _records())


@pytest.fixture(scope="module")
def captures6(tmp_path_factory) -> dict:
    return _write_captures(tmp_path_factory.mktemp("rewritten6"), _records(**V6))


def _note(path, backend: str) -> list[str]:
    run = scan(path, backend=backend)
    list(run)
    return [w for w in run.summary.warnings if "TCP checksum" in w]


def test_tshark_calls_the_rewritten_and_the_offloaded_checksums_bad(tmp_path, tshark):
    """The oracle, the three captures read one after the other in one file: the rewritten
    and the offloaded frames alike have bad TCP checksums under good IPv4 ones (0: bad,
    1: good); as sent, every checksum is good."""
    records = _records()
    n = len(records)
    both = tmp_path / "all.pcap"
    write_pcap(both, records + _rewritten(records) + _offloaded(records))
    got: dict[str, set] = {"sent": set(), "rewritten": set(), "offloaded": set()}
    for frame, tcp, ip in _tshark_status(tshark, both):
        got[("sent", "rewritten", "offloaded")[(frame - 1) // n]].add((tcp, ip))
    assert got == {"sent": {("1", "1")}, "rewritten": {("0", "1")},
                   "offloaded": {("0", "1"), ("1", "1")}}


def test_a_rewritten_payload_is_told(captures, backend):
    """The rewritten capture's summary says its payload was changed after it was sent, with
    the sample's counts; as sent, and under offload, it says nothing of checksums."""
    (note,) = _note(captures["rewritten"], backend)
    assert note.startswith(f"{captures['rewritten']}: ")
    sampled = int(note.split(" of ")[0].rsplit(" ", 1)[1])
    assert sampled > 0 and f"{sampled} of {sampled} sampled" in note
    assert _note(captures["sent"], backend) == []
    assert _note(captures["offloaded"], backend) == []


@pytest.mark.parametrize("family", ["captures", "captures6"])
@pytest.mark.parametrize("name", ["rewritten", "readdressed", "complemented"])
def test_the_sample_is_the_same_whatever_the_windows_and_backend(request, family, name):
    """Which segments are summed, and their sums by flow direction, depend on each segment
    alone: walks in windows of 3 frames and of the default size, by either reader, count
    the same; readdressed, each flow direction's segments are off by one sum, or (the
    client's, offload's complement before) their stored checksums plus the pseudo-header's
    sum are one."""
    captures = request.getfixturevalue(family)
    got = set()
    for backend in ("python", "native"):
        for window in (3, 1 << 16):
            c = FrameCounters()
            with open_capture(captures[name], backend=backend, window=window) as cap:
                for _ in iter_selected(cap, DEFAULT_PORTS, c):
                    pass
            got.add((c.checksums_sampled, c.checksums_rewritten,
                     tuple(sorted(c.checksums_flows.items()))))
    ((sampled, rewritten, flows),) = got
    assert sampled == rewritten > 0 and len(flows) == 2 * SESSIONS
    assert all(lo == hi for _, (lo, hi, *_) in flows) == (name == "readdressed")
    assert all(a == b or e == f for _, (a, b, _c, _d, e, f, _n) in flows) == (
        name != "rewritten")


@pytest.mark.parametrize("family", ["captures", "captures6"])
@pytest.mark.parametrize("name", ["rewritten", "readdressed", "complemented"])
def test_ranges_and_a_compressed_copy_tell_it_as_one_walk(request, tmp_path, family, name):
    """Read in three ranges (`scan -j 3`), or from a gzip copy, the rewritten (or
    readdressed) capture's sample and warning are those of one walk of the file."""
    from .test_split import _streamed

    path = request.getfixturevalue(family)[name]
    (note,) = _note(path, "auto")
    _sessions, summary = _streamed(path, parts=3)
    assert [w for w in summary["warnings"] if "TCP checksum" in w] == [note]
    gz = tmp_path / "rewritten.pcap.gz"
    gz.write_bytes(gzip.compress(path.read_bytes(), 1))
    assert _note(gz, "auto") == [note.replace(str(path), str(gz), 1)]


@pytest.mark.parametrize("size", [54 + 261, 54 + 262, 54 + 263, 1000, 1001])
@pytest.mark.parametrize("length", [1, 63, 64, 65, 200, 261, 262])
def test_word_sums_of_rows_near_a_short_buffers_end(size, length):
    """A window shorter than the widest row copied (a small capture, its last frames) and of
    odd length: each row's 16-bit words summed as RFC 1071 says (an odd last byte padded
    with zero), however its width and the buffer's end fall."""
    import numpy as np

    from fastcap.select.checksums import _word_sums

    buf = (np.arange(size, dtype=np.int64) * 37 % 251).astype(np.uint8)
    start = np.array([54], np.int64)
    n = min(length, size - 54)
    data = bytes(buf[54:54 + n]) + b"\0" * (n & 1)
    want = sum(struct.unpack(f">{len(data) // 2}H", data))
    assert _word_sums(buf, start, np.array([n], np.int64)).tolist() == [want]


def _partly_rewritten(records: list[Record]) -> list[Record]:
    """The first session as sent, the other five rewritten: most of the sample is wrong, and
    the first wrong segment lies past the first session's frames."""
    first = len(records) // SESSIONS
    return records[:first] + _rewritten(records[first:])


def test_the_warning_names_the_first_rewritten_frame(tmp_path, backend):
    """The warning names the byte where the first rewritten frame of the sample begins (its
    bytes, after the record header, as Wireshark's frame offset counts them): the
    first rewritten frame with a short payload (always summed), or an earlier rewritten
    one the sample's hash picked; never a frame sent as it was."""
    records = _records()
    path = tmp_path / "partly.pcap"
    recs = _partly_rewritten(records)
    write_pcap(path, recs)
    at, offsets, short, longer = 24 + 16, [], None, []
    for sent, r in zip(records, recs, strict=True):
        start, end = _payload(r.data)
        if r.data != sent.data:
            if 0 < end - start <= 64 and short is None:
                short = at
            elif 64 < end - start <= 512 and short is None:
                longer.append(at)
        offsets.append(at)
        at += 16 + len(r.data)
    (note,) = _note(path, backend)
    named = int(note.split("the frame at byte ")[1].split(")")[0])
    assert short is not None and (named == short or named in longer)
    assert named >= offsets[len(records) // SESSIONS]


def test_stats_tells_a_rewritten_payload_as_the_scan_does(captures, tmp_path):
    """`fastcap stats` sums the same sample: the rewritten capture's warning (stderr, JSON
    with its byte, the text's last lines) is the scan's, and it exits 1; the capture as
    sent shows the sample's counts and no warning."""
    import json
    import sys

    path = captures["rewritten"]
    (note,) = _note(path, "auto")
    cmd = [sys.executable, "-m", "fastcap", "stats"]
    js = subprocess.run(cmd + ["--json", str(path)], capture_output=True, text=True)
    assert js.returncode == 1 and f"fastcap: warning: {note}" in js.stderr.splitlines()
    (f,) = json.loads(js.stdout)["files"]
    assert f["warnings"] == [note]
    assert f["warning_offsets"] == [int(note.split("the frame at byte ")[1].split(")")[0])]
    assert f["checksums_sampled"] == f["checksums_rewritten"] > 0
    text = subprocess.run(cmd + [str(path)], capture_output=True, text=True).stdout
    assert f"Warning:           {note}" in text.splitlines()
    n = f["checksums_sampled"]
    assert f"{n} of {n} small IPv4/IPv6 segments wrong" in text
    sent = subprocess.run(cmd + ["--json", str(captures["sent"])], capture_output=True,
                          text=True)
    (g,) = json.loads(sent.stdout)["files"]
    assert sent.returncode == 0 and g["warnings"] == [] and g["checksums_rewritten"] == 0
    assert g["checksums_sampled"] == n


def test_a_source_routed_segment_is_summed_with_the_routes_last_address(tmp_path, tshark,
                                                                        backend):
    """A client whose segments carry a loose source route through a router sums its TCP
    checksums with the route's last address (the server), not the header's destination:
    tshark calls them good, so the sample finds none wrong and tells no rewrite."""
    from fastcap_synth import packets as p

    from .fragcap import route, write

    c, s = "10.0.0.1", "10.0.0.2"

    def routed(seq: int, ack: int, flags: int, data: bytes = b"") -> bytes:
        seg = p.tcp(40000, 25, seq, ack, flags, data, src=c, dst=s)
        return p.ether(p.ipv4(seg, 6, c, "10.0.0.9", options=route([s])), 0x0800)

    frames = [routed(100, 0, p.SYN), p.tcp_frame(s, c, 25, 40000, 900, 101, p.SYN | p.ACK),
              routed(101, 901, p.ACK), p.tcp_frame(s, c, 25, 40000, 901, 101, p.ACK | p.PSH,
                                                   b"220 mail.example.com\r\n")]
    for i in range(12):  # more from the client than from the server
        frames.append(routed(101 + 6 * i, 923, p.ACK | p.PSH, b"NOOP\r\n"))
    path = tmp_path / "routed.pcap"
    write(path, frames)
    assert {t for _f, t, _i in _tshark_status(tshark, path)} == {"1"}  # all good
    (session,) = list(scan(path, backend=backend))
    assert session.to_dict()["server"] == "10.0.0.2:25"
    st = compute_stats(path, ports={25}, backend=backend)
    assert (st.checksums_sampled, st.checksums_rewritten) == (13, 0)
    assert _note(path, backend) == []


def test_tshark_calls_readdressed_frames_bad_under_good_ip_headers(tmp_path, tshark):
    """The oracle: the readdressed capture's every payload frame has a bad TCP checksum under
    a good IPv4 one, and its payload bytes are those sent; so too readdressed after offload
    (the pseudo-header's sum, or its complement)."""
    records = _records()
    for edited in (_readdressed(records), _readdressed(_offloaded(records)),
                   _readdressed(_offloaded(records, complement=True))):
        path = tmp_path / "readdressed.pcap"
        write_pcap(path, edited)
        assert {(t, i) for _, t, i in _tshark_status(tshark, path)} == {("0", "1")}
        for sent, r in zip(records, edited, strict=True):
            a, b = _payload(sent.data)
            assert r.data[a:b] == sent.data[a:b]


def test_readdressed_is_told_from_a_rewritten_payload(captures, backend):
    """Addresses and ports rewritten move every segment of a flow direction's checksum by one
    sum: the warning says so and that the payloads are intact, not that the SMTP and TLS may
    not be what was sent; a rewritten payload moves each by its own, and says so."""
    (note,) = _note(captures["readdressed"], backend)
    assert "addresses or ports rewritten without the TCP checksums, payloads intact" in note
    assert "SMTP" not in note and "payload rewritten" not in note
    (payload,) = _note(captures["rewritten"], backend)
    assert "payload rewritten after it was sent" in payload and "payloads intact" not in payload


@pytest.mark.parametrize("complement", [False, True])
@pytest.mark.parametrize("family", [{}, V6])
def test_readdressed_after_offload_is_told_as_readdressed(tmp_path, backend, family,
                                                          complement):
    """A capture taken on the client under checksum offload, then readdressed: the client's
    frames keep the old pseudo-header's sum, each off from the new one by the same amount
    (or its complement, which plus the new one is the same amount, negated), the server's
    are off by one sum as before; the payloads are intact."""
    path = tmp_path / "offloaded-readdressed.pcap"
    write_pcap(path, _readdressed(_offloaded(_records(**family), complement)))
    (note,) = _note(path, backend)
    assert "addresses or ports rewritten without the TCP checksums, payloads intact" in note


def test_offload_that_left_the_sums_complement_says_nothing(tmp_path, tshark, backend):
    """Offload that left the complement of the pseudo-header's sum, not readdressed: tshark
    calls the client's checksums bad under good IPv4 ones, and they are offload's, so the
    sample says nothing of them."""
    path = tmp_path / "complement.pcap"
    write_pcap(path, _offloaded(_records(), complement=True))
    assert {(t, i) for _, t, i in _tshark_status(tshark, path)} == {("0", "1"), ("1", "1")}
    assert _note(path, backend) == []


def test_readdressed_and_rewritten_payload_together_is_a_payload_rewrite(tmp_path, backend):
    """Addresses rewritten and payloads too: each segment off by its own sum, so the warning
    is the payload's."""
    path = tmp_path / "both.pcap"
    write_pcap(path, _readdressed(_rewritten(_records())))
    (note,) = _note(path, backend)
    assert "payload rewritten after it was sent" in note


def test_flow_sums_keep_the_smallest_keys_whatever_the_order():
    """The kept flow directions are bounded and do not depend on the order rows come in."""
    import random

    from fastcap.select.checksums import FLOWS_KEPT, add_flow_sums

    rows = [(k * 7919 % 1000, k % 5, k % 5 + k % 3, k % 7, k % 7 + k % 2, k % 11,
             k % 11 + k % 4, 1) for k in range(3000)]
    want: dict = {}
    add_flow_sums(want, rows)
    assert len(want) == FLOWS_KEPT and max(want) == FLOWS_KEPT - 1
    for seed in range(3):
        random.Random(seed).shuffle(rows)
        got: dict = {}
        for i in range(0, len(rows), 97):
            add_flow_sums(got, rows[i:i + 97])
        assert got == want


@pytest.mark.parametrize("jobs", ["1", "3"])
def test_the_scan_footer_gives_the_sample_beside_the_warning(captures, jobs):
    """The scan's text footer says the checksums are not verified and, as `stats` does, that
    a sample was summed with its counts (the warning's): not a bare "not verified" under a
    warning drawn from checksums; JSON gives the same counts."""
    import json
    import sys

    path = captures["rewritten"]
    cmd = [sys.executable, "-m", "fastcap", "scan", "-j", jobs, str(path)]
    text = subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()
    js = json.loads(subprocess.run(cmd + ["--format", "json"], capture_output=True,
                                   text=True).stdout)
    summary = js["files"][0]["summary"]
    n = summary["checksums_sampled"]
    assert n == summary["checksums_rewritten"] > 0
    assert text[-1] == ("TCP/IP checksums are not verified (as in Wireshark's default "
                        f"settings); a sample summed: {n} of {n} small IPv4/IPv6 segments wrong "
                        "and no offload's")
    sent = subprocess.run(cmd[:-1] + [str(captures["sent"])], capture_output=True,
                          text=True).stdout.splitlines()
    assert sent[-1].endswith(f"a sample summed: 0 of {n} small IPv4/IPv6 segments wrong and no "
                             "offload's")


def test_tshark_calls_the_ipv6_copies_as_the_ipv4_ones(captures6, tshark):
    """The oracle for IPv6 (no header checksum: tshark gives no `ip.checksum.status`): as
    sent every TCP checksum is good; rewritten or readdressed (also after offload), every one
    is bad; under offload, the client's are."""
    got = {name: {t for _, t, _ in _tshark_status(tshark, path)}
           for name, path in captures6.items()}
    assert got == {"sent": {"1"}, "rewritten": {"0"}, "readdressed": {"0"},
                   "offloaded": {"0", "1"}, "complemented": {"0"}}


def test_ipv6_segments_join_the_sample(captures, captures6, backend):
    """IPv6 segments are summed as their IPv4 twins are (the pseudo-header of RFC 8200 8.1,
    checksum offload's too): as sent, and under offload, the sample is as large and says
    nothing; a rewritten payload and rewritten addresses are each told as in IPv4."""
    def counts(path):
        c = FrameCounters()
        with open_capture(path, backend=backend) as cap:
            for _ in iter_selected(cap, DEFAULT_PORTS, c):
                pass
        return c.checksums_sampled, c.checksums_rewritten

    n, _ = counts(captures["sent"])
    assert counts(captures6["sent"]) == counts(captures6["offloaded"]) == (n, 0)
    assert _note(captures6["sent"], backend) == _note(captures6["offloaded"], backend) == []
    (payload,) = _note(captures6["rewritten"], backend)
    assert f"{n} of {n} sampled" in payload and "payload rewritten after it was sent" in payload
    (addresses,) = _note(captures6["readdressed"], backend)
    assert "addresses or ports rewritten without the TCP checksums, payloads intact" in addresses


@pytest.mark.parametrize("backend", ["python", "native"])
def test_a_compressed_copy_names_the_first_rewritten_frames_file_byte(tmp_path, backend):
    """Read from a gzip copy in pieces smaller than the file (a stream's windows count
    offsets from their piece), the first rewritten frame is named at the byte of the
    decompressed file where it begins, as for the file itself."""
    path = tmp_path / "partly.pcap"
    write_pcap(path, _partly_rewritten(_records()))
    gz = tmp_path / "partly.pcap.gz"
    gz.write_bytes(gzip.compress(path.read_bytes(), 1))
    got = []
    for p, piece in ((path, None), (gz, 1024), (gz, 1 << 20)):
        c = FrameCounters()
        kw = {} if piece is None else {"piece": piece}
        with open_capture(p, backend=backend, **kw) as cap:
            for _ in iter_selected(cap, DEFAULT_PORTS, c):
                pass
        got.append(c.checksums_first)
    assert got[0] > 1024 and got == [got[0]] * 3


def test_more_flow_directions_than_kept_keep_the_same_ones(captures, monkeypatch):
    """With fewer flow directions kept than the capture has, each window's past the kept
    ones are let go early: windows of 3 frames and the default size keep the same smallest
    keys with the same sums as a walk that keeps them all."""
    from fastcap.select import checksums, selection

    def flows(backend, window):
        c = FrameCounters()
        with open_capture(captures["rewritten"], backend=backend, window=window) as cap:
            for _ in iter_selected(cap, DEFAULT_PORTS, c):
                pass
        return c.checksums_flows

    every = flows("native", 1 << 16)
    assert len(every) == 2 * SESSIONS
    for kept in (1, 4):
        monkeypatch.setattr(checksums, "FLOWS_KEPT", kept)
        monkeypatch.setattr(selection, "FLOWS_KEPT", kept)
        want = {k: every[k] for k in sorted(every)[:kept]}
        for backend, window in (("native", 3), ("python", 1 << 16)):
            assert flows(backend, window) == want
