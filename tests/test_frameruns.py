"""The frames the report's `frame N` answers by (`run.frameruns.frame_runs`) against
tshark's `tcp.stream`, ICMP errors quoting a connection among them."""

from __future__ import annotations

import os
import subprocess

import pytest

from fastcap.options import DEFAULT_PORTS
from fastcap.run.frameruns import frame_runs
from fastcap.run.scanner import scan
from fastcap_synth import packets as p
from fastcap_synth.smtpgen import SmtpScenario, smtp_records
from fastcap_synth.writers import Record, write_pcap

ADDRS = {4: ("10.1.2.1", "10.1.2.2", "10.9.9.9", "192.0.2.254"),
         6: ("2001:db8::1", "2001:db8::2", "2001:db8::99", "2001:db8::fe")}


def two_connections(a: str, b: str, server: str) -> list[Record]:
    """SMTP connections from `a` and from `b` to `server` at once, in time order."""
    records = []
    for i, client in enumerate((a, b)):
        records += smtp_records(SmtpScenario(client_ip=client, server_ip=server,
                                             client_port=40000 + i, starttls_offered=False,
                                             start_ns=10**9 + i * 5 * 10**6))
    return sorted(records, key=lambda r: r.ts_ns)


def _own(first: int, last: int, runs: list[int]) -> list[int]:
    """A session's frames from its runs (own, others, own, ...; [] the whole span)."""
    out, at = [], first
    for k, n in enumerate(runs or [last - first + 1]):
        if k % 2 == 0:
            out += range(at, at + n)
        at += n
    return out


def runs_are_streams(capture, sessions, stream: dict[int, str], backend) -> list[list[int]]:
    """Assert each session's frames (`frame_runs`) are those of its span in its first
    frame's tshark `stream`; return them."""
    out = []
    runs = frame_runs(capture, sessions, DEFAULT_PORTS, backend=backend)
    for s, got in zip(sessions, runs, strict=True):
        assert got is not None
        mine = stream[s.first_frame]
        want = [f for f in range(s.first_frame, s.last_frame + 1) if stream[f] == mine]
        assert _own(s.first_frame, s.last_frame, got) == want, s.number
        out.append(want)
    return out


def _icmp_error(v: int, kind: str, quoted: bytes, router: str, to: str) -> bytes:
    """An ICMP (v4) or ICMPv6 (v6) error of `kind` from `router` quoting the IP packet
    `quoted`: a port or host unreachable, or a "fragmentation needed" / "packet too big"."""
    if v == 4:
        head = {"port": (3, 3, 0), "host": (3, 1, 0), "mtu": (3, 4, 1400)}[kind]
        body = bytes(head[:2]) + bytes(4) + head[2].to_bytes(2, "big")
        return p.ether(p.ipv4(body + quoted, 1, router, to), p.ETH_P_IP)
    head = {"port": (1, 4, 0), "host": (1, 3, 0), "mtu": (2, 0, 1400)}[kind]
    body = bytes(head[:2]) + bytes(2) + head[2].to_bytes(4, "big")
    return p.ether(p.ipv6(body + quoted, 58, router, to), p.ETH_P_IPV6)


def _quote(v: int, src: str, dst: str, sport: int, dport: int, seq: int, keep: int) -> bytes:
    """The first `keep` bytes of a data segment's TCP header and payload under its IP
    header, as an ICMP error quotes it."""
    seg = p.tcp(sport, dport, seq, 1, p.ACK | p.PSH, b"MAIL FROM:<a@example.com>\r\n")[:keep]
    return p.ipv4(seg, 6, src, dst) if v == 4 else p.ipv6(seg, 6, src, dst)


@pytest.mark.parametrize("v", [4, 6])
def test_icmp_errors_quoting_a_connection_are_among_its_frames(tmp_path, tshark, backend, v):
    """Two SMTP connections at once and, inside the first one's span, ICMP errors quoting
    each: "fragmentation needed" (IPv6: packet too big), port and host unreachable, from
    either side's segment.  Each session's frames are the frames tshark puts in its TCP
    stream: an error quoting 16 bytes or more of a TCP header is in the stream of the
    connection it quotes, one quoting only the 8 bytes many routers send is in none."""
    a, b, other, router = ADDRS[v]
    server = "2001:db8::25" if v == 6 else "10.1.2.25"
    records = two_connections(a, b, server)
    errors = [
        _icmp_error(v, "mtu", _quote(v, server, a, 25, 40000, 7, 20), router, server),
        _icmp_error(v, "port", _quote(v, a, server, 40000, 25, 9, 48), router, a),
        _icmp_error(v, "host", _quote(v, server, b, 25, 40001, 7, 16), router, server),
        _icmp_error(v, "host", _quote(v, a, server, 40000, 25, 9, 8), router, a),  # too short
        _icmp_error(v, "port", _quote(v, other, server, 40009, 25, 9, 20), router, other),
    ]
    at = 6
    records[at:at] = [Record(e, records[at].ts_ns) for e in errors]
    capture = tmp_path / f"icmp{v}.pcap"
    write_pcap(capture, records)
    sessions = list(scan(capture, backend=backend))
    assert len(sessions) == 2
    stream = tshark_streams(tshark, capture)
    icmp = range(at + 1, at + 1 + len(errors))
    assert [stream[f] != "" for f in icmp] == [True, True, True, False, True]
    for want in runs_are_streams(capture, sessions, stream, backend):
        assert set(want) & set(icmp)  # the case: errors in each session's stream


def _routed_quote(src: str, hop: str, opts: bytes) -> bytes:
    """An ICMP error's quote (20 bytes of TCP) of a client's segment sent to router `hop`
    with IPv4 options `opts`."""
    seg = p.tcp(40000, 25, 9, 1, p.ACK | p.PSH, b"MAIL FROM:<a@example.com>\r\n")[:20]
    return p.ipv4(seg, 6, src, hop, options=opts)


def test_an_icmp_error_quoting_a_source_routed_segment_is_its_connections(tmp_path, tshark,
                                                                          backend):
    """ICMP errors quoting a client's segment addressed to a router with a source route
    to the server: tshark reads the quote's destination as the route's last address, so
    an error quoting a route under way (port unreachable, fragmentation needed; after a
    no-op, strict) is in the connection's stream, one quoting a spent route to the router
    is not."""
    from .fragcap import route

    a, b, _other, router = ADDRS[4]
    server, hop = "10.1.2.25", "10.1.2.9"
    records = two_connections(a, b, server)
    errors = [
        _icmp_error(4, "port", _routed_quote(a, hop, route([server])), router, a),
        _icmp_error(4, "mtu", _routed_quote(a, hop, route([server])), router, a),
        _icmp_error(4, "port", _routed_quote(a, hop, b"\x01" + route([hop, server], 8, 0x89)),
                    router, a),
        _icmp_error(4, "port", _routed_quote(a, hop, route([server], 8)), router, a),  # spent
        _icmp_error(4, "port", _routed_quote(a, server, route([hop], 8)), router, a),  # spent
    ]
    at = 6
    records[at:at] = [Record(e, records[at].ts_ns) for e in errors]
    capture = tmp_path / "routed.pcap"
    write_pcap(capture, records)
    sessions = list(scan(capture, backend=backend))
    stream = tshark_streams(tshark, capture)
    mine = stream[sessions[0].first_frame]
    icmp = range(at + 1, at + 1 + len(errors))
    assert [stream[f] == mine for f in icmp] == [True, True, True, False, True]
    assert set(runs_are_streams(capture, sessions, stream, backend)[0]) >= {7, 8, 9, 11}


def test_runs_from_frame_keys_are_each_sessions_own_and_others_in_turn():
    """`_runs` against the plain reading of its contract, on sessions whose frames come in
    any order and twice: one whole run ([]), runs with gaps, a first or last frame missing
    (None), no frame at all (None)."""
    import numpy as np

    from fastcap.run.frameruns import _SPAN_BITS, _runs

    first = np.array([10, 10, 100, 5, 7, 50], np.int64)
    last = np.array([14, 20, 140, 9, 8, 60], np.int64)
    own = {0: [10, 11, 12, 13, 14], 1: [10, 12, 13, 17, 20], 2: [100, 101, 102, 140],
           3: [6, 7, 8, 9], 4: [7]}  # 3 lacks its first frame, 4 its last, 5 has none
    keys = np.array([s << _SPAN_BITS | (f - first[s]) for s, fs in own.items() for f in fs]
                    * 2, np.int64)[::-1].copy()
    got = _runs(keys, first, last)
    assert list(got) == [[], [1, 1, 2, 3, 1, 2, 1], [3, 37, 1], None, None, None]
    assert got[1:3] == [[1, 1, 2, 3, 1, 2, 1], [3, 37, 1]]


def around_records() -> list[Record]:
    """Two SMTP connections at once, ICMP errors quoting each before the first SYN, one
    quoting the second after the last frame."""
    a, b, _other, router = ADDRS[4]
    server = "10.1.2.25"
    records = two_connections(a, b, server)
    t0, t1 = records[0].ts_ns, records[-1].ts_ns
    before = [_icmp_error(4, "port", _quote(4, a, server, 40000, 25, 9, 20), router, a),
              _icmp_error(4, "host", _quote(4, server, b, 25, 40001, 7, 20), router, server)]
    after = [_icmp_error(4, "port", _quote(4, b, server, 40001, 25, 9, 20), router, b)]
    return ([Record(e, t0 - 1) for e in before] + records
            + [Record(e, t1 + 1) for e in after])


def tshark_streams(tshark: str, capture) -> dict[int, str]:
    """tshark's `tcp.stream` of each frame of `capture` ("" for none)."""
    fields = subprocess.run([tshark, "-n", "-r", str(capture), "-T", "fields",
                             "-e", "frame.number", "-e", "tcp.stream"],
                            capture_output=True, text=True, check=True).stdout
    return {int(f): s for f, s in (line.split("\t") for line in fields.splitlines())}


def test_icmp_errors_before_or_after_a_connection_are_its_frames_beyond_its_span(
        tmp_path, tshark, backend):
    """ICMP errors quoting a connection before its SYN or after its last frame: tshark puts
    each in that connection's stream, so each session's `beyond` frames are exactly its
    stream's frames outside its first..last frame."""
    capture = tmp_path / "around.pcap"
    write_pcap(capture, around_records())
    sessions = list(scan(capture, backend=backend))
    assert len(sessions) == 2
    stream = tshark_streams(tshark, capture)
    runs = frame_runs(capture, sessions, DEFAULT_PORTS, backend=backend)
    for i, s in enumerate(sessions):
        want = [f for f in sorted(stream) if stream[f] == stream[s.first_frame]
                and not s.first_frame <= f <= s.last_frame]
        assert want and runs.beyond(i) == want, s.number
        assert _own(s.first_frame, s.last_frame, runs[i]) == [
            f for f in range(s.first_frame, s.last_frame + 1)
            if stream[f] == stream[s.first_frame]]


def late_error(capture, error: bool = True, filler: int = 39) -> None:
    """Write two SMTP connections, `filler` frames of other traffic, then (if `error`) an
    ICMP error quoting the second connection."""
    a, b, other, router = ADDRS[4]
    server = "10.1.2.25"
    records = two_connections(a, b, server)
    t1 = records[-1].ts_ns
    filler = [Record(p.ether(p.ipv4(p.udp(5353, 5353, b"x" * 20), 17, other, router),
                             p.ETH_P_IP), t1 + k) for k in range(1, filler + 1)]
    late = _icmp_error(4, "port", _quote(4, b, server, 40001, 25, 9, 20), router, b)
    write_pcap(capture, records + filler + [Record(late, t1 + len(filler) + 11)] * error)


def test_an_icmp_error_windows_after_the_last_frame_is_its_connections(tmp_path, tshark,
                                                                       backend):
    """An ICMP error quoting the last connection long after its last frame, other traffic
    between, read in windows of a few frames: tshark puts it in that connection's stream
    wherever it comes, so the walk goes on past the window holding the last frame."""
    capture = tmp_path / "late.pcap"
    late_error(capture)
    sessions = list(scan(capture, backend=backend))
    stream = tshark_streams(tshark, capture)
    last = len(stream)
    assert stream[last] != "" and len(sessions) == 2
    for window in (4, 1 << 17):
        runs = frame_runs(capture, sessions, DEFAULT_PORTS, backend=backend, window=window)
        got = {i: runs.beyond(i) for i in range(len(sessions))}
        want = {i: [f for f in sorted(stream) if stream[f] == stream[s.first_frame]
                    and f > s.last_frame] for i, s in enumerate(sessions)}
        assert got == want and last in sum(want.values(), []), window


_F = p.IPPROTO_FRAGMENT
QUOTED_CHAINS = {  # extension headers of a quoted IPv6 packet, and whether tshark 4.0 puts
    # the error in the quoted connection's stream (as a whole datagram's, no more to come)
    "hop-by-hop": ([(p.IPPROTO_HOPOPTS, b"")], True),
    "destination": ([(p.IPPROTO_DSTOPTS, b"\x01\x0c" + bytes(12))], True),
    "routing": ([(p.IPPROTO_ROUTING, bytes((4, 0)) + bytes(4))], True),
    "routing-0": ([(p.IPPROTO_ROUTING, bytes((0, 1)) + bytes(4) + bytes(range(16)))], True),
    "ah": ([(p.IPPROTO_AH, bytes(14))], True),
    "fragment-whole": ([(_F, p.ipv6_frag_body(0, False, 21))], True),
    "chain": ([(p.IPPROTO_HOPOPTS, b""), (p.IPPROTO_ROUTING, bytes((4, 0)) + bytes(4)),
               (_F, p.ipv6_frag_body(0, False, 22)), (p.IPPROTO_DSTOPTS, b"")], True),
    "fragment-first": ([(_F, p.ipv6_frag_body(0, True, 23))], False),
    "fragment-later": ([(_F, p.ipv6_frag_body(2, False, 24))], False),
}


@pytest.mark.parametrize("kind", QUOTED_CHAINS)
def test_an_icmpv6_error_quoting_extension_headers_is_its_connections(tmp_path, tshark,
                                                                      backend, kind):
    """An ICMPv6 error quoting a packet whose TCP header follows extension headers: tshark
    steps over them to the quoted connection's stream (a fragment header only of a
    datagram not cut), so the error is among that session's frames as tshark has it."""
    a, b, _other, router = ADDRS[6]
    server = "2001:db8::25"
    records = two_connections(a, b, server)
    chain, in_stream = QUOTED_CHAINS[kind]
    seg = p.tcp(25, 40001, 7, 1, p.ACK | p.PSH, b"250 ok\r\n")[:20]
    quoted = p.ipv6(seg, 6, server, b, ext_headers=chain, payload_length=1200)
    at = 6
    records[at:at] = [Record(_icmp_error(6, "mtu", quoted, router, server), records[at].ts_ns)]
    capture = tmp_path / f"ext-{kind}.pcap"
    write_pcap(capture, records)
    sessions = list(scan(capture, backend=backend))
    stream = tshark_streams(tshark, capture)
    assert len(sessions) == 2 and (stream[at + 1] != "") == in_stream
    runs = frame_runs(capture, sessions, DEFAULT_PORTS, backend=backend)
    for s, got in zip(sessions, runs, strict=True):
        assert _own(s.first_frame, s.last_frame, got) == [
            f for f in range(s.first_frame, s.last_frame + 1)
            if stream[f] == stream[s.first_frame]], s.number


TUNNELLED = [("vxlan", 4), ("vxlan-ipv6", 6), ("gre-keyed", 6), ("gre-ethernet", 4),
             ("ip-in-ip", 4), ("ip-in-ip", 6), ("erspan-ii", 6), ("mpls", 4),
             ("gre-in-vxlan", 6), ("pppoe", 4)]


def tunnelled_icmp(kind: str, v: int) -> list[Record]:
    """Two SMTP connections and an ICMP error quoting the first, every frame inside the
    tunnel `kind` (`test_tunnels.WRAP`)."""
    from .test_tunnels import WRAP

    a, b, _other, router = ADDRS[v]
    server = "2001:db8::25" if v == 6 else "10.1.2.25"
    records = two_connections(a, b, server)
    err = _icmp_error(v, "port", _quote(v, a, server, 40000, 25, 9, 20), router, a)
    records[6:6] = [Record(err, records[6].ts_ns)]
    return [Record(WRAP[kind](r.data, r.data[14:]), r.ts_ns) for r in records]


@pytest.mark.parametrize(("kind", "v"), TUNNELLED)
def test_a_tunnelled_icmp_error_is_its_tunnelled_connections(tmp_path, tshark, backend,
                                                             kind, v):
    """An ICMP error carried in the tunnel its connection is in (VXLAN, GRE, IP-in-IP,
    ERSPAN, MPLS, PPPoE): tshark opens the tunnel and puts it in the stream of the
    connection it quotes, and so is it among that session's frames."""
    capture = tmp_path / f"{kind}{v}.pcap"
    write_pcap(capture, tunnelled_icmp(kind, v))
    sessions = list(scan(capture, backend=backend))
    stream = tshark_streams(tshark, capture)
    assert len(sessions) == 2 and stream[7] == stream[sessions[0].first_frame]
    runs = frame_runs(capture, sessions, DEFAULT_PORTS, backend=backend)
    for s, got in zip(sessions, runs, strict=True):
        assert _own(s.first_frame, s.last_frame, got) == [
            f for f in range(s.first_frame, s.last_frame + 1)
            if stream[f] == stream[s.first_frame]], s.number


@pytest.mark.parametrize(("kind", "v"), TUNNELLED[::3])
def test_a_tunnelled_icmp_error_is_counted_as_one_about_a_selected_port(tmp_path, tshark,
                                                                        backend, kind, v):
    """tshark's `tcp.port == 25` matches the TCP header a tunnelled ICMP error quotes, as
    it does a bare one's: stats count it among the errors about the selected frames."""
    from fastcap.select.stats import compute_stats

    capture = tmp_path / f"{kind}{v}.pcap"
    write_pcap(capture, tunnelled_icmp(kind, v))
    out = subprocess.run([tshark, "-n", "-r", str(capture), "-Y", "tcp.port == 25", "-T",
                          "fields", "-e", "frame.number"],
                         capture_output=True, text=True, check=True).stdout.split()
    st = compute_stats(capture, backend=backend)
    assert "7" in out and st.icmp_about_selected == 1
    assert st.selected_frames + st.icmp_about_selected == len(out)


@pytest.mark.parametrize("jobs", [1, 2])
def test_the_scan_counts_the_icmp_errors_the_walk_reads_on_for(tmp_path, backend, jobs,
                                                               monkeypatch):
    """The report reads on past the last session only where the scan counted an ICMP error
    about a selected port (`read_on`): counted in one walk or in byte ranges, and without
    reading on the late error is missed."""
    from fastcap.run import scanner

    monkeypatch.setattr(scanner, "SPLIT_MIN_BYTES", 0)  # split even this small file

    got = {}
    for error in (True, False):
        capture = tmp_path / f"late{error}.pcap"
        late_error(capture, error)
        run = scan(capture, backend=backend, jobs=jobs, parts=2)
        sessions = list(run)
        summary = run.summary
        got[error] = capture, sessions, summary
    assert [got[e][2].icmp_about_selected for e in (True, False)] == [1, 0]
    capture, sessions, summary = got[True]
    beyond = [frame_runs(capture, sessions, DEFAULT_PORTS, backend=backend, window=4,
                         read_on=read_on).beyond(1) for read_on in (True, False)]
    assert beyond == [[summary.frames], []]  # the error is the last frame


def test_the_report_reads_on_only_for_a_file_with_icmp_errors(tmp_path, monkeypatch):
    """`fastcap report` asks the frame-list walk to read past the last session for the file
    whose scan counted an ICMP error about a selected port, not for the file without."""
    from fastcap import cli
    from fastcap.run import frameruns

    asked = {}
    real = frameruns.frame_runs

    def spy(path, *args, **kw):
        asked[os.path.basename(path)] = kw["read_on"]
        return real(path, *args, **kw)

    monkeypatch.setattr(frameruns, "frame_runs", spy)
    for error in (True, False):
        late_error(tmp_path / f"late{error}.pcap", error)
    cli.main(["report", "-o", str(tmp_path / "r.html"), str(tmp_path / "lateTrue.pcap"),
              str(tmp_path / "lateFalse.pcap")])
    assert asked == {"lateTrue.pcap": True, "lateFalse.pcap": False}


@pytest.mark.parametrize("cut", [False, True])
def test_an_icmp_error_quoting_a_whole_first_fragment_is_in_no_stream(tmp_path, tshark,
                                                                      backend, cut):
    """An ICMP error quoting an IPv4 first fragment (more to come): tshark reads the quote
    as TCP only when the fragment is cut short in it; quoted whole, it waits to reassemble
    the datagram, and the error is in no stream."""
    a, b, _other, router = ADDRS[4]
    server = "10.1.2.25"
    records = two_connections(a, b, server)
    seg = p.tcp(40001, 25, 9, 1, p.ACK, b"x" * 10)[:20]
    quoted = p.ipv4(seg, 6, b, server, dont_fragment=False, more_fragments=True, ident=77,
                    total_length=1400 if cut else None)
    records[6:6] = [Record(_icmp_error(4, "port", quoted, router, b), records[6].ts_ns)]
    capture = tmp_path / "first-fragment.pcap"
    write_pcap(capture, records)
    sessions = list(scan(capture, backend=backend))
    stream = tshark_streams(tshark, capture)
    assert len(sessions) == 2 and (stream[7] != "") == cut
    runs = frame_runs(capture, sessions, DEFAULT_PORTS, backend=backend)
    for s, got in zip(sessions, runs, strict=True):
        assert _own(s.first_frame, s.last_frame, got) == [
            f for f in range(s.first_frame, s.last_frame + 1)
            if stream[f] == stream[s.first_frame]], s.number


# (more fragments, offset in 8-byte units, total length claimed): the IPv4 packet quoted
FRAGMENT_QUOTES = [(False, 0, None), (True, 0, None), (True, 0, 1400), (False, 185, None),
                   (True, 185, None)]


@pytest.mark.parametrize(("more", "offset", "length"), FRAGMENT_QUOTES)
def test_an_icmp_error_quoting_a_fragment_is_counted_as_tshark_matches_it(
        tmp_path, tshark, backend, more, offset, length):
    """tshark's `tcp.port == 25` reads no TCP header in an ICMP error's quote of a later
    IPv4 fragment, nor of a first fragment quoted whole (held to reassemble): stats count
    among the errors about the selected frames only the ones it matches."""
    from fastcap.select.stats import compute_stats

    a, b, _other, router = ADDRS[4]
    server = "10.1.2.25"
    records = two_connections(a, b, server)
    seg = p.tcp(40001, 25, 9, 1, p.ACK, b"x" * 10)[:20]
    quoted = p.ipv4(seg, 6, b, server, dont_fragment=False, more_fragments=more,
                    frag_offset=offset, ident=77, total_length=length)
    records[6:6] = [Record(_icmp_error(4, "mtu", quoted, router, b), records[6].ts_ns)]
    capture = tmp_path / "fragment-quote.pcap"
    write_pcap(capture, records)
    out = subprocess.run([tshark, "-n", "-r", str(capture), "-Y", "icmp && tcp.port == 25",
                          "-T", "fields", "-e", "frame.number"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out in ([], ["7"])
    assert compute_stats(capture, backend=backend).icmp_about_selected == len(out)


# (tunnel, bytes of its outer packet quoted, that packet a first fragment, the error in
# the inner connection's stream, tcp.port matches)
OUTER_QUOTES = [("vxlan", None, False, True, True), ("vxlan", 74, False, False, True),
                ("vxlan", 70, False, False, False), ("vxlan", None, True, False, False),
                ("vxlan", 90, True, True, True), ("vxlan-ipv6", None, False, True, True),
                ("ip-in-ip", None, False, True, True), ("ah-tunnel", None, False, True, True),
                ("ah-transport", None, False, True, True)]


@pytest.mark.parametrize(("kind", "keep", "first", "in_stream", "matched"), OUTER_QUOTES)
def test_an_icmp_error_quoting_a_tunnels_outer_packet_is_its_inner_connections(
        tmp_path, tshark, backend, kind, keep, first, in_stream, matched):
    """An ICMP "fragmentation needed" (ICMPv6 "packet too big") quoting a tunnel's outer
    packet whole, or a VXLAN datagram cut after its inner TCP ports or before them: tshark
    opens the tunnel inside the quote, puts the error in the inner connection's stream, and
    `tcp.port == 25` matches it, as for an error quoting the segment bare; so too for a
    first fragment cut short in the quote, not for one quoted whole (held to reassemble).
    An IPv4 AH header before the TCP one (transport mode, no tunnel) tshark steps over."""
    from fastcap.select.stats import compute_stats

    from .test_tunnels import OUTER, OUTER6, WRAP

    a, b, _other, router = ADDRS[4]
    server = "10.1.2.25"
    records = two_connections(a, b, server)
    seg = p.tcp(40000, 25, 9, 1, p.ACK | p.PSH, b"MAIL FROM:<a@example.com>\r\n")
    eth = p.ether(p.ipv4(seg, 6, a, server), p.ETH_P_IP)
    outer = bytearray(WRAP[kind](eth, eth[14:]))
    if first:
        outer[20:22] = b"\x20\x00"  # more fragments, offset 0
    v = 6 if outer[12:14] == b"\x86\xdd" else 4
    err = _icmp_error(v, "mtu", bytes(outer[14:][:keep]), ADDRS[v][3],
                      (OUTER, OUTER6)[v == 6][0])
    records[6:6] = [Record(err, records[6].ts_ns)]
    capture = tmp_path / "outer-quote.pcap"
    write_pcap(capture, records)
    stream = tshark_streams(tshark, capture)
    out = subprocess.run([tshark, "-n", "-r", str(capture), "-Y",
                          "(icmp || icmpv6) && tcp.port == 25", "-T", "fields", "-e",
                          "frame.number"], capture_output=True, text=True, check=True).stdout
    assert (stream[7] != "", out.split()) == (in_stream, ["7"] if matched else [])
    assert compute_stats(capture, backend=backend).icmp_about_selected == matched
    sessions = list(scan(capture, backend=backend))
    runs = frame_runs(capture, sessions, DEFAULT_PORTS, backend=backend)
    for s, got in zip(sessions, runs, strict=True):
        assert _own(s.first_frame, s.last_frame, got) == [
            f for f in range(s.first_frame, s.last_frame + 1)
            if stream[f] == stream[s.first_frame]], s.number


@pytest.mark.parametrize("files", [2, 3])
def test_the_report_finds_an_icmp_error_in_a_later_ring_file(tmp_path, tshark, monkeypatch,
                                                             files):
    """A ring buffer cut with `editcap -c` so that both connections end in the first file
    and the ICMP error quoting the second lies in the last one, which no session goes on
    into (with a file of other traffic between, or not): tshark puts the error, in the
    files joined (`mergecap -a`), in the second connection's stream; the report's frame
    lists have it there, numbered on from the files before as the joined files number it
    (the file between, with no such error, only counted, not read)."""
    from fastcap import cli
    from fastcap.run import frameruns

    capture = tmp_path / "late.pcap"
    late_error(capture)
    sessions = list(scan(capture))
    last = max(s.last_frame for s in sessions)
    cut = last + 10
    late_error(capture, filler=(files - 1) * cut + 5 - last)
    subprocess.run(["editcap", "-c", str(cut), str(capture), str(tmp_path / "ring.pcap")],
                   check=True, capture_output=True)
    ring = sorted(tmp_path.glob("ring_*.pcap"))
    assert len(ring) == files
    joined = tmp_path / "joined.pcap"
    subprocess.run(["mergecap", "-a", "-F", "pcap", "-w", str(joined), *map(str, ring)],
                   check=True)
    rows = [line.split("\t") for line in subprocess.run(
        [tshark, "-n", "-r", str(joined), "-T", "fields", "-e", "frame.number",
         "-e", "tcp.stream", "-e", "icmp.type"],
        capture_output=True, text=True, check=True).stdout.splitlines()]
    stream = {int(f): st for f, st, _t in rows}
    (at,) = [int(f) for f, _st, t in rows if t == "3"]
    assert at > (files - 1) * cut  # in the last file, `cut` frames in each before it
    assert stream[at] == stream[sessions[1].first_frame] != ""

    got = {}
    real = frameruns.frame_runs
    opened = []

    def spy(path, *args, **kw):
        got[os.path.basename(path)] = runs = real(path, *args, **kw)
        opened.append((kw["then"], sorted(kw.get("skip") or ())))
        return runs

    monkeypatch.setattr(frameruns, "frame_runs", spy)
    cli.main(["report", "-o", str(tmp_path / "r.html"), *map(str, ring)])
    runs = got[ring[0].name]
    assert [runs.beyond(i) for i in range(len(sessions))] == [[], [at]]
    assert opened[0] == (list(map(str, ring[1:])), list(map(str, ring[1:-1])))


def test_a_walk_counting_and_handing_quotes_opens_each_quoted_tunnel_once(tmp_path, backend,
                                                                          monkeypatch):
    """A walk that both counts the ICMP errors about a selected port and hands on those in
    a connection's stream reads each window's quotes once: a quoted tunnel packet is opened
    once, not once for each, and what each gets is what a walk doing only that one gets."""
    from fastcap.read.capture import Capture
    from fastcap.select import selection
    from fastcap.select.selection import FrameCounters, iter_selected

    from .test_tunnels import OUTER, WRAP

    a, b, _other, router = ADDRS[4]
    server = "10.1.2.25"
    records = two_connections(a, b, server)
    for at, (port, keep) in ((6, (40000, None)), (12, (40001, 20 + 8 + 8 + 14 + 20 + 10))):
        seg = p.tcp(port, 25, 9, 1, p.ACK | p.PSH, b"MAIL FROM:<a@example.com>\r\n")
        eth = p.ether(p.ipv4(seg, 6, a if port == 40000 else b, server), p.ETH_P_IP)
        outer = WRAP["vxlan"](eth, eth[14:])[14:][:keep]  # the second: 10 bytes of TCP
        records[at:at] = [Record(_icmp_error(4, "mtu", outer, router, OUTER[0]),
                                 records[at].ts_ns)]
    capture = tmp_path / "quoted-tunnels.pcap"
    write_pcap(capture, records)

    opened = []
    real = selection._through_tunnel

    def through(buf, start, stop):
        opened.append(len(start))
        return real(buf, start, stop)

    monkeypatch.setattr(selection, "_through_tunnel", through)

    def walk(count: bool, hand: bool):
        counters, got = FrameCounters() if count else None, []
        with Capture(capture, backend=backend) as cap:
            for _ in iter_selected(cap, DEFAULT_PORTS, counters,
                                   quoted=(lambda f, fl: got.append((f.tolist(), fl.tolist())))
                                   if hand else None):
                pass
        return (None if counters is None else counters.icmp_about_selected), got

    counted, _ = walk(True, False)
    _, handed = walk(False, True)
    del opened[:]
    assert walk(True, True) == (counted, handed)
    assert counted == 2 and [f for f, _ in handed] == [[7]]
    assert opened == [2]  # one window, its two quoted tunnels opened together, once
