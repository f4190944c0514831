"""IP fragments of TCP segments on the selected ports are reassembled as Wireshark does
(`ip.defragment`, `ipv6.defragment`): against tshark's own streams and frame numbers, the
same whatever the backend, the byte ranges, the executor or the compression, and bounded
whatever the fragments claim."""

from __future__ import annotations

import gzip
import random
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fastcap import Capture
from fastcap._ffi import native_available
from fastcap.run import split
from fastcap.run.scanner import judge_options, scan_files
from fastcap.run.workers import SerialExecutor
from fastcap.select import fragments, selection
from fastcap.select.flows import FlowTable
from fastcap.select.fragments import (
    BAD_HEADER,
    FRAG_FIRST,
    FRAG_OTHER,
    FRAG_ROW,
    FRAG_UDP,
    HEADLESS,
    MAX_PENDING,
    NOT_COMPLETED,
    PIECE_COST,
    SNAPPED,
    Defragmenter,
)
from fastcap.select.selection import iter_selected
from fastcap.select.stats import compute_stats
from fastcap.tcp.reassembly import Reassembler
from fastcap_synth import packets as p

from . import fragcap
from .test_ring import CA, _everything, split_pcap
from .test_split import _result, _split, _streamed

BACKENDS = ["python", "native"] if native_available() else ["python"]
MODES = ["order", "reversed", "shuffled", "duplicated", "duplicated_first", "overlap",
         "overlap_first", "missing", "snapped", "snapped_first", "two_tails", "two_tails_early",
         "repeated", "repeated_last", "zero_length", "tiny_first", "options", "headless",
         "bad_offset"]
LOST = ("missing", "snapped", "snapped_first", "two_tails", "two_tails_early", "headless",
        "bad_offset")  # not whole
# what a scan of two conversations counts under `skipped`, by mode (none for the others)
SKIPPED = {"missing": {NOT_COMPLETED: 10},  # 2 x 5 fragments
           "headless": {HEADLESS: 10},
           "bad_offset": {BAD_HEADER: 2}}  # the frame completing each datagram


def _conns(path: Path, backend: str):
    flows = FlowTable()
    with Capture(path, backend=backend, window=4) as cap:
        r = Reassembler(cap.buffer, flows, server_ports={25}, backend=backend)
        conns = []
        for sel in iter_selected(cap, [25], flows=flows):
            conns += r.feed(sel)
        conns += r.finish()
        r.close()
    return conns


def _follows(tshark: str, path: Path, n: int) -> list[tuple[bytes, bytes]]:
    """tshark's streams 0..n-1 (client, server), the text it puts for missing bytes taken
    out."""
    args = [a for i in range(n) for a in ("-z", f"follow,tcp,raw,{i}")]
    lines = subprocess.run([tshark, "-r", str(path), "-q", *args], capture_output=True,
                           text=True, check=True).stdout.splitlines()
    found: dict[int, tuple[bytes, bytes]] = {}
    k = 0
    while k < len(lines):
        if not lines[k].startswith("Filter: tcp.stream eq "):
            k += 1
            continue
        stream = int(lines[k].split()[-1])
        k += 3  # Node 0, Node 1
        sent = {0: b"", 1: b""}  # tshark indents node 1's data with a tab
        while k < len(lines) and not lines[k].startswith("==="):
            data = bytes.fromhex(lines[k].strip())
            if not (data.startswith(b"[") and b"missing in capture file]" in data):
                sent[1 if lines[k].startswith("\t") else 0] += data
            k += 1
        found[stream] = (sent[0], sent[1])
    return [found[i] for i in range(n)]


def _frames(tshark: str, path: Path) -> list[int]:
    out = subprocess.run([tshark, "-r", str(path), "-Y", "tcp.port == 25", "-T", "fields",
                          "-e", "frame.number"], capture_output=True, text=True, check=True)
    return [int(x) for x in out.stdout.split()]


def _seen(d) -> bytes:
    """A stream's bytes without its gaps, as tshark's follow shows them."""
    data, at = b"", 0
    for start, size in d.gaps:
        data += d.data[at:start]
        at = start + size
    return data + d.data[at:]


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("mode", MODES)
def test_streams_and_frames_match_tshark(tshark, tmp_path, mode, v6):
    path = tmp_path / f"{mode}.pcap"
    # two SMTP flows, and fragmented traffic on port 80
    frames = fragcap.interleaved([fragcap.conversation(mode, v6, seed=3),
                                  fragcap.conversation(mode, v6, cport=40001, seed=4, ident=70),
                                  fragcap.conversation("shuffled", v6, port=80, cport=40002,
                                                       ident=300)])
    fragcap.write(path, frames)
    want_frames = _frames(tshark, path)
    stats = compute_stats(path, ports={25})
    assert stats.selected_frames == len(want_frames)
    if not mode.startswith("snapped"):  # a first fragment of 8 bytes is not cut short
        assert stats.skipped == SKIPPED.get(mode, {})
    follows = _follows(tshark, path, 2)
    for backend in BACKENDS:
        conns = sorted(_conns(path, backend), key=lambda c: c.client_port)
        assert len(conns) == 2
        for i, (c, (client, server)) in enumerate(zip(conns, follows, strict=True)):
            assert (_seen(c.c2s), _seen(c.s2c)) == (client, server), (backend, i)
            if mode not in LOST:
                assert c.c2s.gaps == [] and c.c2s.data.startswith(b"EHLO")
                # the segment is read in the frame that completed its datagram
                assert c.c2s.frame_at(0) in want_frames
                assert c.s2c.frame_at(len(b"220 mail.example.com\r\n")) in want_frames


@pytest.mark.parametrize("v6,tags", [(False, [[5], [6]]), (True, [[5], [6]]),
                                     (False, [[5, 7], [6, 7]]), (False, [[7, 5], [7, 6]])],
                         ids=["ipv4", "ipv6", "qinq-outer", "qinq-inner"])
def test_datagrams_on_other_vlans_stay_apart_as_in_tshark(tshark, tmp_path, v6, tags):
    """Two datagrams of one source, destination and identification on two VLANs,
    interleaved: Wireshark keeps IPv4 ones apart by the innermost VLAN id, not IPv6 ones."""
    frames = []
    for k, vlans in enumerate(tags):
        c, s = ("2001:db8::1", "2001:db8::2") if v6 else ("10.0.0.1", "10.0.0.2")
        seg = p.tcp(40000, 25, 1, 1, p.ACK, bytes([65 + k]) * 200, src=c, dst=s)
        frames.append([fragcap.tagged(f, vlans) for f in fragcap.fragments(v6, seg, c, s, 5)])
    path = tmp_path / "vlans.pcap"
    fragcap.write(path, fragcap.interleaved(frames))
    want = _frames(tshark, path)
    assert len(want) == (1 if v6 or tags[0][-1] == tags[1][-1] else 2)
    assert compute_stats(path, ports={25}).selected_frames == len(want)


@pytest.mark.parametrize("src,dst,apart", [("192.0.2.1", "198.51.100.2", False),
                                           ("172.32.0.1", "192.169.0.2", False),
                                           ("172.31.0.1", "198.51.100.2", True),
                                           ("198.51.100.1", "192.168.1.2", True),
                                           ("169.254.0.1", "198.51.100.2", True)],
                         ids=["public", "near-private", "rfc1918-src", "rfc1918-dst",
                              "link-local"])
def test_the_vlan_keys_only_datagrams_of_private_hosts_as_in_tshark(tshark, tmp_path, src,
                                                                   dst, apart):
    """Wireshark XORs the VLAN id into an IPv4 datagram's key only where its source or
    destination is private (RFC 1918) or link-local: two datagrams of one key on two VLANs
    between public hosts are one to it, its bytes the first copy's at each offset."""
    frames = []
    for k in range(2):
        seg = p.tcp(40000, 25, 1, 1, p.ACK, bytes([65 + k]) * 200, src=src, dst=dst)
        frames.append([fragcap.tagged(f, [5 + k]) for f in fragcap.fragments(False, seg, src,
                                                                             dst, 5)])
    path = tmp_path / "vlans.pcap"
    fragcap.write(path, fragcap.interleaved(frames))
    out = subprocess.run([tshark, "-r", str(path), "-Y", "tcp.port == 25", "-T", "fields",
                          "-e", "frame.number", "-e", "tcp.payload"], capture_output=True,
                         text=True, check=True).stdout.split()
    want = [(int(n), bytes.fromhex(h)) for n, h in zip(out[::2], out[1::2], strict=True)]
    assert len(want) == (2 if apart else 1)
    for backend in BACKENDS:
        got, _skipped, _rows = _defragmented(path, backend, 4)
        assert [(f, seg[20:]) for f, _flow, seg in got] == want, backend
    assert compute_stats(path, ports={25}).selected_frames == len(want)


def _streams(tshark: str, path: Path) -> int:
    out = subprocess.run([tshark, "-r", str(path), "-T", "fields", "-e", "tcp.stream"],
                         capture_output=True, text=True, check=True)
    return len({int(x) for x in out.stdout.split()})


@pytest.mark.parametrize("options", sorted(fragcap.ROUTES))
@pytest.mark.parametrize("case", ["hops", "apart"])
def test_a_source_routed_datagram_is_keyed_by_the_routes_last_address_as_in_tshark(
        tshark, tmp_path, case, options):
    """An IPv4 datagram with a source route is addressed to the route's last hop: its
    fragments through two routers (two header destinations) are one datagram, two datagrams
    of one identification through one router to two hosts are two, and the segment belongs
    to the connection with the last hop, as tshark reads them; a spent or malformed route,
    or one after a malformed option or the end of options, leaves the header's."""
    path = tmp_path / "routed.pcap"
    fragcap.write(path, fragcap.routed(case, fragcap.ROUTES[options]))
    want_frames = _frames(tshark, path)
    assert compute_stats(path, ports={25}).selected_frames == len(want_frames)
    follows = _follows(tshark, path, _streams(tshark, path))
    for backend in BACKENDS:
        conns = sorted(_conns(path, backend), key=lambda c: (c.client_port, c.server_addr))
        assert [(_seen(c.c2s), _seen(c.s2c)) for c in conns] == follows, backend


def test_ipv4_datagrams_are_keyed_by_protocol_as_in_tshark(tshark, tmp_path):
    """An NFS datagram between the same hosts, of the same identification, its fragments
    among an EHLO's: Wireshark keys an IPv4 datagram by its identification XORed with its
    protocol, so the two stay apart and the EHLO is put together whole."""
    conv = fragcap.conversation("order")  # the EHLO's identification is 7
    nfs = p.ether(p.ipv4(p.udp(2049, 800, bytes(150)), 17, "10.0.0.1", "10.0.0.2"), 0x0800)
    udp = fragcap.outer(nfs, 7, 64)
    path = tmp_path / "proto.pcap"
    fragcap.write(path, conv[:5] + udp[1:] + conv[5:] + udp[:1])
    want = _frames(tshark, path)
    assert 12 in want  # the EHLO's datagram completed by its last fragment
    assert compute_stats(path, ports={25}).selected_frames == len(want)
    for backend in BACKENDS:
        (conn,) = _conns(path, backend)
        assert conn.c2s.gaps == [] and _seen(conn.c2s).startswith(fragcap.CLIENT_BODY), backend


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("order", ["udp_last", "udp_whole", "udp_first", "udp_between"])
def test_a_datagram_is_read_as_its_completing_fragments_protocol(tshark, tmp_path, v6,
                                                                 order):
    """An NFS datagram whose key meets the EHLO's (IPv4: its identification differs from
    the EHLO's by exactly the two protocols XORed; IPv6: keyed without its next header, so
    the same identification): Wireshark puts their fragments together and reads the
    datagram as the protocol of the fragment that completes it, UDP where an NFS fragment
    does, so the EHLO is lost there and kept where a TCP fragment completes it."""
    conv = fragcap.conversation("order", v6)  # the EHLO's identification is 7
    if v6:
        udp = _v6_udp(7)
    else:
        nfs = p.ether(p.ipv4(p.udp(2049, 800, bytes(150)), 17, "10.0.0.1", "10.0.0.2"),
                      0x0800)
        udp = fragcap.outer(nfs, 7 ^ 6 ^ 17, 64)
    frames = {"udp_last": conv[:5] + udp[1:] + conv[5:] + udp[:1],
              "udp_whole": conv[:5] + udp + conv[5:],
              "udp_first": conv[:5] + udp[:1] + conv[5:] + udp[1:],
              "udp_between": conv[:6] + udp[1:] + conv[6:]}[order]
    path = tmp_path / "collide.pcap"
    fragcap.write(path, frames)
    want = _follows(tshark, path, 1)
    assert want[0][0].startswith(fragcap.CLIENT_BODY) == (order == "udp_first")
    for backend in BACKENDS:
        assert [(_seen(c.c2s), _seen(c.s2c)) for c in _conns(path, backend)] == want, backend
    assert compute_stats(path, ports={25}).selected_frames == len(_frames(tshark, path))


def _tags(vlans: list[int], tpids: list[int] | None = None):
    return lambda f: fragcap.tagged(f, vlans, tpids) if vlans else f


_Q = [0x8100, 0x8100]
KEYED = {  # two datagrams of one source, destination and identification (or XOR-alike)
    "vxlan-outer-tags": [(_tags([5]), fragcap.vxlan, 5), (_tags([6]), fragcap.vxlan, 5)],
    "vxlan-outer-tag-first": [(_tags([7]), lambda f: fragcap.vxlan(_tags([5])(f)), 5),
                              (_tags([7]), lambda f: fragcap.vxlan(_tags([6])(f)), 5)],
    "vxlan-inner-tags": [(None, lambda f: fragcap.vxlan(_tags([5])(f)), 5),
                         (None, lambda f: fragcap.vxlan(_tags([6])(f)), 5)],
    "gre-outer-tags": [(_tags([5]), fragcap.gre, 5), (_tags([6]), fragcap.gre, 5)],
    "802.1q-twice": [(None, _tags([5, 7], _Q), 5), (None, _tags([6, 7], _Q), 5)],
    "priority-tag": [(None, _tags([0, 5], _Q), 5), (None, _tags([0, 6], _Q), 5)],
    "id-xor-vlan": [(None, _tags([5]), 7), (None, _tags([7]), 5)],
}


@pytest.mark.parametrize("case", list(KEYED))
def test_datagrams_are_keyed_by_the_vlan_tshark_reads_first(tshark, tmp_path, case):
    """Wireshark keys an IPv4 datagram by its identification XORed with the VLAN id read
    first in the frame (an 802.1Q tag of an id other than 0, so a tunnel's outer frame's
    before its inner frame's): interleaved datagrams stay apart or are joined as in tshark,
    the same in both backends."""
    frames = []
    for k, (outer, wrap, ident) in enumerate(KEYED[case]):
        seg = p.tcp(40000, 25, 1, 1, p.ACK, bytes([65 + k]) * 200, src="10.0.0.1",
                    dst="10.0.0.2")
        frames.append([(outer or (lambda f: f))(wrap(f)) for f in
                       fragcap.fragments(False, seg, "10.0.0.1", "10.0.0.2", ident)])
    path = tmp_path / "keyed.pcap"
    fragcap.write(path, fragcap.interleaved(frames))
    want = _frames(tshark, path)
    assert len(want) == (1 if case == "vxlan-outer-tag-first" or case == "id-xor-vlan" else 2)
    for backend in BACKENDS:
        assert compute_stats(path, ports={25}, backend=backend).selected_frames == len(want)


@pytest.mark.parametrize("kind", ["gre", "ipip", "vxlan", "geneve"])
def test_a_tunnel_in_a_fragmented_outer_packet_reads_as_tshark_reads_it(tshark, tmp_path,
                                                                         kind):
    """The outer packet of a GRE, IP-in-IP, VXLAN or Geneve tunnel cut in fragments (the
    inner one whole): Wireshark puts the outer datagram together, then opens the tunnel, so
    the EHLO and its reply are there, in the frames that complete them (a UDP tunnel's
    first fragment ends inside the inner TCP header)."""
    wrap = getattr(fragcap, kind)
    frames = []
    for i, f in enumerate(fragcap.conversation("whole")):
        frames += fragcap.outer(wrap(f), 50 + i) if len(f) > 300 else [wrap(f)]
    # and a fragmented GRE packet of UDP, its first fragment coming last, and fragmented
    # UDP on no tunnel port, whole and without its first fragment
    other = p.ether(p.ipv4(p.udp(5353, 5353, bytes(200)), 17, "10.0.0.1", "10.0.0.3"),
                    0x0800)
    frames += fragcap.outer(fragcap.gre(other), 7)[::-1]
    frames += fragcap.outer(other, 8) + fragcap.outer(other, 9)[1:]
    path = tmp_path / f"{kind}.pcap"
    fragcap.write(path, frames)
    ((client, server),) = _follows(tshark, path, 1)
    assert client.startswith(fragcap.CLIENT_BODY) and fragcap.SERVER_BODY in server
    want_frames = _frames(tshark, path)
    stats = compute_stats(path, ports={25})
    assert stats.selected_frames == len(want_frames) and stats.skipped == {}
    for backend in BACKENDS:
        (c,) = _conns(path, backend)
        assert (_seen(c.c2s), _seen(c.s2c)) == (client, server), backend
        assert c.c2s.gaps == [] and c.s2c.gaps == [], backend
        assert c.c2s.frame_at(0) in want_frames, backend
    whole = _result(path)  # and the same whatever the byte ranges or processes
    assert len(whole[0]) == 1
    for parts in (2, 5):
        assert _split(path, parts) == whole and _streamed(path, parts) == whole, parts


def _capture(tmp_path: Path, pcapng: bool = False) -> Path:
    """Several fragmented conversations in a row, so that byte ranges cut datagrams."""
    frames = []
    for k in range(6):
        frames += fragcap.interleaved([
            fragcap.conversation(("order", "reversed", "missing")[k % 3], k % 2 == 1,
                                 cport=41000 + k, seed=k, ident=k),
            fragcap.conversation("shuffled", k % 2 == 0, port=80, cport=42000 + k, ident=k)])
    path = tmp_path / ("many.pcapng" if pcapng else "many.pcap")
    fragcap.write(path, frames, pcapng)
    return path


@pytest.mark.parametrize("pcapng", [False, True], ids=["pcap", "pcapng"])
def test_the_same_whatever_the_split_backend_or_compression(tmp_path, pcapng):
    path = _capture(tmp_path, pcapng)
    whole = _result(path)
    sessions, summary = whole
    assert len(sessions) == 6
    assert summary["skipped"].get(NOT_COMPLETED) == 10  # 2 EHLOs lost a fragment: 5 left each
    for parts in (2, 3, 7, 19, 41):
        assert _split(path, parts) == whole, f"split {parts}"
        assert _streamed(path, parts) == whole, f"streamed {parts}"
    for backend in BACKENDS:
        assert _result(path, backend=backend) == whole, backend
    if not pcapng:  # worker processes carry the fragments' bytes to this one
        assert _streamed(path, 4, workers=True, jobs=2) == whole
    res = split.split_scan(path, judge_options(ca_file=CA), jobs=3, executor=SerialExecutor(),
                           parts=5)
    assert res.phase_two == "IP fragments"
    gz = tmp_path / (path.name + ".gz")
    gz.write_bytes(gzip.compress(path.read_bytes()))
    got = _result(gz)
    assert got[0] == whole[0]


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_a_scan_counts_datagrams_lost_for_want_of_a_header(tmp_path, v6):
    """A datagram whose first fragment never came may have been on a selected port, and one
    put together with a malformed TCP header gives no segment: each is counted under
    `skipped`, whatever the backend or `-j`, while fragments on other ports, their first
    fragment coming last, are let go without a word."""
    path = tmp_path / "lost.pcap"
    fragcap.write(path, fragcap.interleaved([
        fragcap.conversation("headless", v6, seed=1),
        fragcap.conversation("bad_offset", v6, cport=40001, seed=2, ident=70),
        fragcap.conversation("reversed", v6, port=80, cport=40002, ident=300)]))
    whole = _result(path)
    assert {k: v for k, v in whole[1]["skipped"].items() if k in (HEADLESS, BAD_HEADER)} == {
        HEADLESS: 5, BAD_HEADER: 1}  # the EHLO's five later fragments; one datagram
    for backend in BACKENDS:
        for jobs in (1, 2):
            assert _result(path, backend=backend, jobs=jobs) == whole, (backend, jobs)
    assert _streamed(path, 3, workers=True, jobs=2) == whole


def test_ring_files_join_datagrams_across_their_ends_in_every_path(tmp_path):
    """Files of a ring buffer go on from one another, and so do the datagrams whose
    fragments a file's end cut: every path puts them together, as the one capture they
    came from does; only those never completed are given up."""
    whole = _capture(tmp_path)
    files, _starts = split_pcap(whole, tmp_path, 5)
    want = _everything(scan_files(files, executor=SerialExecutor(), jobs=2, parts=7,
                                  ca_file=CA))
    assert sum(w[3]["skipped"].get(NOT_COMPLETED, 0) for w in want) == 10  # as in `whole`
    assert sum(len(w[2]) for w in want) == 6
    (alone,) = scan_files([whole], ca_file=CA)
    assert [(s["client"], s["tcp"], s["smtp"]["ehlo_name"]) for w in want for s in w[2]] == [
        (s.client, s.to_dict()["tcp"], s.smtp.ehlo_name) for s in alone.sessions]
    for kw in ({"jobs": 1}, {"jobs": 2, "parts": 9}, {"jobs": 1, "backend": "python"}):
        assert _everything(scan_files(files, ca_file=CA, **kw)) == want, kw


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_a_datagram_cut_by_a_ring_files_end_reads_as_tshark_reads_the_merged_file(
        tshark, tmp_path, v6):
    """The EHLO's fragments lie in two files (as `editcap -c` or dumpcap's ring cut them):
    read together, the stream is tshark's stream of the files merged (`mergecap -a`)."""
    path = tmp_path / "whole.pcap"
    fragcap.write(path, fragcap.conversation("order", v6))
    files = [tmp_path / "ring_00000.pcap", tmp_path / "ring_00001.pcap"]
    subprocess.run(["editcap", "-r", str(path), str(files[0]), "1-6"], check=True)
    subprocess.run(["editcap", "-r", str(path), str(files[1]), "7-100"], check=True)
    merged = tmp_path / "merged.pcap"
    subprocess.run([str(Path(tshark).with_name("mergecap")), "-a", "-F", "pcap", "-w",
                    str(merged), *map(str, files)], check=True)
    ((client, server),) = _follows(tshark, merged, 1)
    assert client.startswith(fragcap.CLIENT_BODY)  # tshark joins the two files' fragments
    for kw in ({"jobs": 1}, {"jobs": 2, "parts": 3}, {"jobs": 1, "backend": "python"}):
        (first, second) = scan_files(files, ca_file=CA, executor=SerialExecutor(), **kw)
        (s,) = first.sessions
        assert not second.sessions and s.tcp.c2s_gaps == () and s.tcp.s2c_gaps == (), kw
        assert s.smtp.ehlo_name == "client.example.org", kw
        assert [c.verb for c in s.smtp.commands] == ["EHLO", "QUIT"], kw
        assert first.summary.skipped == {} and second.summary.skipped == {}, kw


def _unreassembled(tshark: str, path: Path) -> int:
    """Fragments tshark puts in no datagram (two passes, so `ip.reassembled_in` is known
    for every fragment of a datagram completed later)."""
    out = subprocess.run([tshark, "-2", "-r", str(path), "-Y",
                          "(ip.flags.mf == 1 || ip.frag_offset > 0) && !ip.reassembled_in"
                          " && !tcp", "-T", "fields", "-e", "frame.number"],
                         capture_output=True, text=True, check=True)
    return len(out.stdout.split())


@pytest.mark.parametrize("after", ["fragments", "quiet"])
def test_a_datagram_given_up_counts_in_the_ring_file_its_age_ran_out_in(tshark, tmp_path,
                                                                       short_age, after):
    """An EHLO that lost a fragment, then more than MAX_AGE frames, make the first file of
    a ring; the second holds another datagram's fragments (the first rows the defragmenter
    sees after the age ran out) or none: the EHLO's fragments given up count in the first
    file, where tshark leaves them unreassembled, not where the next row or the run's end
    happens to come, whatever the path."""
    path = tmp_path / "whole.pcap"
    frames = fragcap.conversation("missing") + _quiet(2 * short_age)
    tail = (fragcap.conversation("order", port=80, ident=99) if after == "fragments"
            else _quiet(5))
    fragcap.write(path, frames + tail)
    files = [tmp_path / "ring_00000.pcap", tmp_path / "ring_00001.pcap"]
    for f, (a, b) in zip(files, ((1, len(frames)), (len(frames) + 1, len(frames + tail))),
                         strict=True):
        subprocess.run(["editcap", "-r", str(path), str(f), f"{a}-{b}"], check=True)
    # the second file's frames are not fragments at all when quiet
    want = [_unreassembled(tshark, f) for f in files[:1 + (after == "fragments")]]
    want += [0] * (2 - len(want))
    assert want == [5, 0]
    for kw in ({"jobs": 1}, {"jobs": 2, "parts": 3}, {"jobs": 1, "backend": "python"}):
        got = scan_files(files, ca_file=CA, executor=SerialExecutor(), **kw)
        assert [r.summary.skipped.get(NOT_COMPLETED, 0) for r in got] == want, kw



def test_a_ring_counts_a_datagram_never_completed_where_it_is_given_up(tshark, tmp_path):
    """The deviation README states, against tshark: an `editcap -c 8` ring of two exchanges,
    the second's EHLO missing a fragment (the other five in the fourth file), which tshark
    leaves in no datagram in that file.  Read as one capture, the ring puts the cut datagrams
    together and counts the five where the run ends (the same in every path, as
    `test_a_datagram_given_up_counts_in_the_ring_file_its_age_ran_out_in` checks)."""
    whole = tmp_path / "whole.pcap"
    fragcap.write(whole, fragcap.conversation("order")
                  + fragcap.conversation("missing", cport=40001, ident=70))
    subprocess.run(["editcap", "-c", "8", str(whole), str(tmp_path / "ring.pcap")], check=True)
    ring = sorted(tmp_path.glob("ring_*.pcap"))
    assert len(ring) == 6
    assert _unreassembled(tshark, ring[3]) == 5  # the fourth file holds the five
    got = scan_files(ring, ca_file=CA)
    assert [len(r.sessions) for r in got] == [1, 0, 1, 0, 0, 0]
    assert [r.summary.skipped.get(NOT_COMPLETED, 0) for r in got] == [0] * 5 + [5]


def test_selection_gives_fragment_rows(tmp_path):
    """The first fragment on a selected port carries its flow; later fragments of any TCP
    datagram go with it (their ports are unknown), and so does a later fragment of UDP (its
    datagram may be a VXLAN or Geneve tunnel's), marked FRAG_UDP."""
    path = tmp_path / "f.pcap"
    frames = fragcap.conversation("order")
    udp = p.ether(p.ipv4(p.udp(53, 40000, bytes(40)), 17, "10.0.0.1", "10.0.0.2",
                         dont_fragment=False, frag_offset=3), 0x0800)
    fragcap.write(path, frames + [udp])
    with Capture(path) as cap:
        sels = list(iter_selected(cap, [25]))
    flags = [int(f) for s in sels for f in s.tcp.flags]
    flow = [int(f) for s in sels for f in s.flow]
    firsts = [i for i, f in enumerate(flags) if f & FRAG_FIRST]
    later = [i for i, f in enumerate(flags) if f & FRAG_ROW and not f & FRAG_FIRST]
    assert len(firsts) == 2 and all(flow[i] == 0 for i in firsts)
    assert len(later) == 5 + 7 + 1 and all(flow[i] == -1 for i in later)  # 353, 487 bytes
    assert [i for i in later if flags[i] & FRAG_UDP] == [later[-1]]


def _udp_mix() -> list[bytes]:
    """A VXLAN conversation whose fragmented outer packets come reversed, among fragmented
    UDP on no tunnel port between the same hosts: in order, reversed, without its first
    fragment, and one taking the identification of a VXLAN packet whose later fragments
    come after its own first one."""
    nfs = p.ether(p.ipv4(p.udp(2049, 800, bytes(300)), 17, "192.0.2.1", "192.0.2.2"), 0x0800)
    frames = []
    for i, f in enumerate(fragcap.conversation("whole")):
        if len(f) <= 300:
            frames += [fragcap.vxlan(f), *fragcap.outer(nfs, 1000 + i)]
            continue
        tun = fragcap.outer(fragcap.vxlan(f), 50 + i, 128)
        frames += tun[::-1] if i % 2 else tun[:1] + fragcap.outer(nfs, 50 + i)[:1] + tun[1:]
        frames += fragcap.outer(nfs, 2000 + i)[::-1] + fragcap.outer(nfs, 3000 + i)[1:]
    return frames


def _udp_mix_read(path: Path, backend: str, window: int):
    """The fragment rows selected, and what a reassembler and a count make of them."""
    flows, rows = FlowTable(), 0
    with Capture(path, backend=backend, window=window) as cap:
        r = Reassembler(cap.buffer, flows, server_ports={25}, backend=backend)
        conns = []
        for sel in iter_selected(cap, [25], flows=flows):
            rows += int(np.count_nonzero(np.asarray(sel.tcp.flags) & FRAG_ROW))
            conns += r.feed(sel)
        conns += r.finish()
        skipped = dict(r.defrag.take_skipped())
        r.close()
    seen = [(_seen(c.c2s), _seen(c.s2c), c.c2s.frame_at(0), c.s2c.frame_at(0))
            for c in conns]
    return rows, seen, skipped, compute_stats(path, ports={25}, backend=backend)


@pytest.fixture
def short_age(monkeypatch) -> int:
    """MAX_AGE of 32 frames, for the defragmenter and for selection, which keeps every row
    of a walk's first MAX_AGE frames (what came before them is not known)."""
    for mod in (fragments, selection):
        monkeypatch.setattr(mod, "MAX_AGE", 32)
    return 32


def _quiet(n: int) -> list[bytes]:
    """`n` frames of no fragment."""
    return [p.ether(p.ipv4(p.udp(53, 53, bytes(40)), 17, "10.9.9.9", "10.9.9.8"), 0x0800)] * n


def test_udp_let_go_in_its_window_is_no_fragment_row(tmp_path, short_age):
    """A datagram of UDP on no tunnel port whose fragments all come in one window, first
    fragment first, gives no fragment row past a walk's first MAX_AGE frames: it would be
    let go unread anyway, and held light, weighing on no bound, where it is fed.  Within
    them its rows stay: a datagram of its key may be pending from before the walk (a byte
    range's, or a ring buffer file's).  One whose first fragment comes last is always fed:
    until then it holds bytes (it may be a tunnel's), and so weighs."""
    nfs = p.ether(p.ipv4(p.udp(2049, 800, bytes(1200)), 17, "10.0.0.1", "10.0.0.3"), 0x0800)
    reverse = fragcap.outer(nfs, 2, 480)[::-1]
    frames = fragcap.outer(nfs, 1, 480) + reverse
    for quiet, rows in ((short_age, len(reverse)), (0, len(frames))):
        path = tmp_path / "nfs.pcap"
        fragcap.write(path, _quiet(quiet) + frames)
        for backend in BACKENDS:
            with Capture(path, backend=backend) as cap:
                assert sum(len(s) for s in iter_selected(cap, [25])) == rows, (backend, quiet)


@pytest.mark.parametrize("reverse", [False, True], ids=["in_order", "reversed"])
def test_udp_let_go_or_fed_never_pushes_a_tcp_datagram_out(tmp_path, monkeypatch, short_age,
                                                           reverse):
    """The defragmenter full (MAX_PENDING of 1) with an EHLO's first fragment, an NFS
    datagram's fragments come before the EHLO's others: a walk leaves them out where it
    sees them all in one window past its first MAX_AGE frames, and feeds them where a
    window ends among them or a walk (a byte range, a ring file) begins near them.  Fed,
    they must not push the EHLO out: what is put together may not depend on the windows."""
    monkeypatch.setattr(fragments, "MAX_PENDING", 1)
    conv = fragcap.conversation("order")
    nfs = p.ether(p.ipv4(p.udp(2049, 800, bytes(150)), 17, "10.0.0.1", "10.0.0.3"), 0x0800)
    nfs_frames = fragcap.outer(nfs, 5, 64)[::-1 if reverse else 1]
    for quiet in (short_age, 0):
        path = tmp_path / f"nfs{quiet}.pcap"
        fragcap.write(path, _quiet(quiet) + conv[:5] + nfs_frames + conv[5:])
        for backend in BACKENDS:
            for window in (2, 64):
                out, skipped, _rows = _defragmented(path, backend, window)
                assert (len(out), skipped) == (2, {}), (quiet, backend, window)


@pytest.mark.parametrize("window", [3, 5, 8, 1 << 16])
def test_udp_let_go_early_changes_nothing(tmp_path, monkeypatch, short_age, window):
    """Leaving out the fragments of UDP let go in their window gives what keeping them
    gives, whatever their order and wherever a window ends among them."""
    path = tmp_path / "mix.pcap"
    fragcap.write(path, _quiet(short_age) + _udp_mix())
    for backend in BACKENDS:
        rows, *got = _udp_mix_read(path, backend, window)
        with monkeypatch.context() as m:
            m.setattr(selection, "_let_go_udp", lambda *a: np.zeros(len(a[9]), bool))
            all_rows, *want = _udp_mix_read(path, backend, window)
        assert got == want, (backend, window)
        assert len(got[0]) == 1 and got[0][0][0].startswith(fragcap.CLIENT_BODY)
        assert got[2].selected_frames > 0
        # a window of 3 frames holds no datagram's 3 fragments whole: all stay rows
        assert rows < all_rows if window > 3 else rows == all_rows, (backend, window)


def _v6_udp(ident: int) -> list[bytes]:
    """An IPv6 NFS datagram from 2001:db8::1 to 2001:db8::2 in fragments of 64 bytes."""
    dg = p.udp(2049, 800, bytes(180))
    return [p.ether(p.ipv6(dg[a:a + 64], 17, "2001:db8::1", "2001:db8::2", ext_headers=[
        (p.IPPROTO_FRAGMENT, p.ipv6_frag_body(a // 8, a + 64 < len(dg), ident))]), 0x86DD)
        for a in range(0, len(dg), 64)]


def _datagram(kind: str, ident: int, order: list[int], drop: int | None,
              copy: int | None) -> list[bytes]:
    """The fragments of a VXLAN packet carrying a TCP segment to port 25, of a TCP segment
    to port 25, or of an NFS datagram, between the same hosts (so that their keys meet),
    IPv4 or IPv6, under a VLAN tag (`-vlan`, id 5: the hosts are public, so it is not in
    the key) or not: in `order` (indexes, taken modulo their number), without fragment
    `drop`, with fragment `copy` twice."""
    base, _, tag = kind.partition("-")
    if base == "vxlan":
        inner = p.tcp_frame("10.0.0.1", "10.0.0.2", 40000, 25, 1, 1, p.ACK, b"M" * 200)
        fr = fragcap.outer(fragcap.vxlan(inner), ident, 64)
    elif base in ("tcp", "tcp6"):
        v6 = base == "tcp6"
        src, dst = ("2001:db8::1", "2001:db8::2") if v6 else ("192.0.2.1", "192.0.2.2")
        fr = fragcap.fragments(v6, p.tcp(40000, 25, 1, 1, p.ACK, b"M" * 200, src=src,
                                         dst=dst), src, dst, ident)
    elif base == "nfs6":
        fr = _v6_udp(ident)
    else:
        fr = fragcap.outer(p.ether(p.ipv4(p.udp(2049, 800, bytes(180)), 17, "192.0.2.1",
                                          "192.0.2.2"), 0x0800), ident, 64)
    if tag:
        fr = [fragcap.tagged(f, [5], [0x8100]) for f in fr]
    picked = [fr[i % len(fr)] for i in order] or fr
    if drop is not None:
        del picked[drop % len(picked)]
    if copy is not None and picked:
        picked.insert(copy % (len(picked) + 1), picked[copy % len(picked)])
    return picked


_DATAGRAMS = st.lists(st.tuples(
    st.sampled_from(["vxlan", "vxlan-vlan", "tcp", "tcp6", "nfs", "nfs", "nfs-vlan", "nfs6",
                     "nfs6"]), st.sampled_from([0, 5, 6]),
    st.lists(st.integers(0, 5), max_size=6), st.none() | st.integers(0, 5),
    st.none() | st.integers(0, 5)), min_size=1, max_size=6)


def _defragmented(path: Path, backend: str, window: int, filtered: bool = True):
    """What a defragmenter makes of the fragment rows selected: the datagrams completed,
    what it gave up, and how many rows there were."""
    out, rows, d = [], 0, Defragmenter()
    keep = selection._let_go_udp
    if not filtered:
        selection._let_go_udp = lambda *a: np.zeros(len(a[9]), bool)
    try:
        with Capture(path, backend=backend, window=window) as cap:
            for sel in iter_selected(cap, [25]):
                for i in np.flatnonzero(np.asarray(sel.tcp.flags) & FRAG_ROW).tolist():
                    rows += 1
                    got = d.add_row(sel, i, cap.buffer)
                    if got is not None:
                        out.append((got.frame_no, got.flow, got.segment))
    finally:
        selection._let_go_udp = keep
    d.finish()
    return out, dict(d.skipped), rows


# a VXLAN packet's first fragment, then an NFS datagram of its key, windows apart
@example(datagrams=[("vxlan", 0, [0], None, None), ("nfs", 0, [], None, None)],
         mix=random.Random(0), window=2)
@settings(max_examples=15, deadline=None)
@given(datagrams=_DATAGRAMS, mix=st.randoms(use_true_random=False),
       window=st.sampled_from([2, 3, 4, 7, 16, 1 << 16]))
def test_udp_let_go_early_is_exact(tmp_path_factory, datagrams, mix, window):
    """Datagrams of VXLAN, TCP and NFS whose keys meet (IPv4 and IPv6, under a VLAN tag or
    not), their fragments reordered, missing, copied and interleaved: leaving out the rows
    of UDP let go changes nothing a defragmenter makes of the rest, whatever the windows,
    in both backends."""
    lanes = [_datagram(*d) for d in datagrams]
    frames = []
    while any(lanes):
        lane = mix.choice([x for x in lanes if x])
        frames.append(lane.pop(0))
    path = tmp_path_factory.mktemp("exact") / "mix.pcap"
    fragcap.write(path, _quiet(32) + frames)
    keep = fragments.MAX_AGE, selection.MAX_AGE
    fragments.MAX_AGE = selection.MAX_AGE = 32
    try:
        for backend in BACKENDS:
            got = _defragmented(path, backend, window)
            want = _defragmented(path, backend, window, filtered=False)
            assert got[:2] == want[:2], backend
            assert got[2] <= want[2]
    finally:
        fragments.MAX_AGE, selection.MAX_AGE = keep


_TAGS = st.lists(st.tuples(st.sampled_from([0x8100, 0x88A8, 0x9100]),
                           st.sampled_from([0, 1, 5, 4095])), max_size=3)


@st.composite
def _fragment_frames(draw) -> tuple[bytes, int]:
    """A fragment of IPv4 or IPv6 (extension headers around its fragment header), of UDP or
    TCP, under VLAN tags, alone, in VXLAN, or the outer packet of VXLAN cut, and how many
    of its bytes are captured."""
    v6, proto = draw(st.booleans()), draw(st.sampled_from([6, 17]))
    off, more = draw(st.sampled_from([0, 8, 64])), draw(st.booleans())
    ident = draw(st.integers(0, 0xFFFFFFFF if v6 else 0xFFFF))
    data = p.udp(5, 2049, bytes(60)) if proto == 17 else bytes(80)
    if v6:
        ext = [(e, b"") for e in draw(st.lists(st.sampled_from([0, 60, 43]), max_size=2))]
        ext.append((p.IPPROTO_FRAGMENT, p.ipv6_frag_body(off // 8, more, ident)))
        ext += [(60, b"")] * draw(st.integers(0, 1))
        ip = p.ipv6(data, proto, "2001:db8::1", "2001:db8::2", ext_headers=ext)
    else:
        ip = p.ipv4(data, proto, "192.0.2.1", "192.0.2.2", ident=ident, dont_fragment=False,
                    more_fragments=more, frag_offset=off // 8)
    frame = p.ether(ip, 0x86DD if v6 else 0x0800, vlans=draw(_TAGS))
    how = draw(st.sampled_from(["alone", "vxlan", "outer"]))
    if how != "alone":
        vx = p.ether(p.ipv4(p.udp(5555, 4789, bytes((8, 0, 0, 0, 0, 0, 1, 0)) + frame), 17,
                            "192.0.2.7", "192.0.2.8"), 0x0800)
        if how == "outer":
            vx = draw(st.sampled_from(fragcap.outer(vx, ident & 0xFFFF, 64)))
        tags = draw(_TAGS)
        frame = fragcap.tagged(vx, [v for _, v in tags], [t for t, _ in tags]) if tags else vx
    return frame, draw(st.integers(14, len(frame))) if draw(st.booleans()) else len(frame)


@example(frames=[(p.ether(p.ipv4(p.udp(5, 2049, bytes(60)), 17, "192.0.2.1", "192.0.2.2",
                                 ident=77, dont_fragment=False, more_fragments=True),
                          0x0800, vlans=[(0x88A8, 3), (0x9100, 5), (0x8100, 1)]), 120)])
@settings(max_examples=25, deadline=None)
@given(frames=st.lists(_fragment_frames(), min_size=1, max_size=12))
def test_fragment_columns_read_each_fragment_as_its_row_does(tmp_path_factory, frames):
    """The fragments' keys (VLAN id XORed in, IPv6 identification), offsets and lengths read
    for a whole window in numpy are what each row's own reading gives."""
    path = tmp_path_factory.mktemp("cols") / "f.pcap"
    fragcap.write(path, [(f[:cut], len(f)) for f, cut in frames])
    seen = []
    real = selection._let_go_udp

    def check(buf, offset, caplen, wire, sc_rows, frame_no, hd, outer, pick, later, tags,
              state):
        cut = pick[(hd.frag[pick] != 0) | (outer.frag[pick] != 0)]
        j = np.concatenate([later, cut])
        fc = selection.fragment_columns(buf, offset, caplen, wire, sc_rows, hd, outer, tags, j)
        for i, row in enumerate(j.tolist()):
            g, f = selection._fragment_row(buf, offset, caplen, sc_rows, hd, outer, tags, row)
            assert bool(fc.valid[i]) == (f is not None)
            r = int(sc_rows[row])
            assert fc.end[i] == min(int(g.ip_end[row]), max(int(wire[r]), int(caplen[r])))
            if f is None:
                continue
            start, data_at, off, mf, ident = f
            v6 = bool(fc.key[i, 0])
            frame = bytes(buf[int(offset[r]):int(offset[r]) + int(caplen[r])])
            assert (fc.start[i], fc.data_at[i], fc.offset[i], bool(fc.mf[i])) == (
                start, data_at, off, bool(mf))
            assert int.from_bytes(bytes(fc.key[i, 1:5]), "big") == ident
            assert bytes(fc.key[i, 5:37 if v6 else 13]) == frame[start:start + (32 if v6
                                                                                else 8)]
            seen.append(v6)
        return real(buf, offset, caplen, wire, sc_rows, frame_no, hd, outer, pick, later,
                    tags, state)

    selection._let_go_udp = check
    try:
        for backend in BACKENDS:
            with Capture(path, backend=backend, window=5) as cap:
                for _ in iter_selected(cap, [25]):
                    pass
    finally:
        selection._let_go_udp = real


def test_udp_fragments_without_their_first_stay_bounded(tmp_path, monkeypatch):
    """Later fragments of UDP whose first fragment never comes stay rows (theirs may be a
    tunnel's), so the defragmenter's bound on datagrams pending holds them, uncounted."""
    monkeypatch.setattr(fragments, "MAX_PENDING", 16)
    nfs = p.ether(p.ipv4(p.udp(2049, 800, bytes(300)), 17, "10.0.0.1", "10.0.0.3"), 0x0800)
    path = tmp_path / "headless.pcap"
    fragcap.write(path, [f for i in range(60) for f in fragcap.outer(nfs, i, 128)[1:]])
    flows, pending = FlowTable(), []
    with Capture(path, window=8) as cap:
        r = Reassembler(cap.buffer, flows, server_ports={25})
        for sel in iter_selected(cap, [25], flows=flows):
            r.feed(sel)
            pending.append(len(r.defrag))
        r.finish()
        assert r.defrag.take_skipped() == {}
        r.close()
    assert max(pending) == 16 and len(pending) > 10


def _row_args(frame: int, ident: int, off: int, data: bytes, more: bool = True,
              first: bool = False):
    raw = bytes(8) + data  # IPv4 addresses, then the data
    flags = FRAG_ROW | (0x4000 if more else 0) | (FRAG_FIRST if first else 0)
    return (frame, frame, 0 if first else -1, True, flags, 0 if first else off, ident, 8,
            raw, len(raw))


def test_hostile_fragments_stay_bounded():
    d = Defragmenter()
    # thousands of datagrams never completed: no more than MAX_PENDING held
    for i in range(3 * MAX_PENDING):
        assert d.add(*_row_args(i, i, 0, b"x" * 64, first=True)) is None
    assert len(d) == MAX_PENDING
    assert d.skipped[NOT_COMPLETED] == 2 * MAX_PENDING
    # huge offsets are dropped; MF on every fragment never completes; zero length is no data
    d = Defragmenter()
    assert d.add(*_row_args(1, 1, 65528, b"y" * 64)) is None
    assert d.held == 0
    for k in range(2000):
        d.add(*_row_args(2 + k, 2, 8 * (k % 50), b"z" * 8))
    assert d.held <= 1024 * (8 + PIECE_COST)
    assert d.add(*_row_args(5000, 3, 0, b"", more=False, first=True)) is None
    # a datagram not completed within MAX_AGE frames is given up
    d = Defragmenter()
    d.add(*_row_args(1, 9, 0, b"h" * 20 + b"a" * 12, first=True))
    d.add(*_row_args(10**6, 10, 0, b"q" * 8, first=True))
    assert d.add(*_row_args(10**6 + 1, 9, 32, b"b" * 8, more=False)) is None
    assert d.skipped[NOT_COMPLETED] == 1


def test_a_selected_datagram_outlives_fragments_of_other_ports():
    """Later fragments whose first fragment never comes never complete: over the bound they
    go first, counted (their port is unknown), and the datagram of a selected port
    completes."""
    d = Defragmenter()
    head = b"h" * 12 + bytes([0x50]) + b"h" * 7
    d.add(*_row_args(1, 70000, 0, head + b"a" * 12, first=True))
    for k in range(MAX_PENDING + 10):
        d.add(*_row_args(2 + k, k, 64, b"o" * 8))
    got = d.add(*_row_args(MAX_PENDING + 20, 70000, 32, b"b" * 8, more=False))
    assert got is not None and got.segment == head + b"a" * 12 + b"b" * 8
    assert len(d) == MAX_PENDING - 1 and d.skipped == {HEADLESS: 11}


def test_fragments_held_stay_within_their_bytes(monkeypatch):
    """Tiny fragments of many datagrams: what they hold, data and the cost of each, stays
    within MAX_HELD, the oldest datagrams given up."""
    monkeypatch.setattr(fragments, "MAX_HELD", 64 << 10)
    d = Defragmenter()
    for k in range(4000):
        d.add(*_row_args(k, k // 200, 8 + 8 * (k % 200), b"t" * 8))
        assert d.held <= 64 << 10
    d.add(*_row_args(5000, 99, 0, b"h" * 64, first=True))
    # none had a first fragment: each given up is counted, by its frames
    assert len(d) < 20 and d.skipped == {HEADLESS: 4000 - 200 * (len(d) - 1)}


def test_fragments_cut_by_the_snap_length_are_not_taken():
    """As Wireshark, which defragments no fragment it lacks bytes of: a last fragment cut
    short does not end the datagram early, and a first one cut short is counted."""
    d = Defragmenter()
    head = b"h" * 12 + bytes([0x50]) + b"h" * 7  # a TCP header of 20 bytes
    d.add(*_row_args(1, 5, 0, head + b"a" * 12, first=True))
    *args, raw, length = _row_args(2, 5, 32, b"b" * 16, more=False)
    assert d.add(*args, raw[:-8], length) is None  # its last 8 bytes not captured
    got = d.add(*_row_args(3, 5, 32, b"c" * 16, more=False))
    assert got is not None and got.segment == head + b"a" * 12 + b"c" * 16
    *args, raw, length = _row_args(4, 6, 0, head, first=True)
    assert d.add(*args, raw[:-1], length) is None
    assert d.skipped == {SNAPPED: 1}


def _colliding(order: str) -> list[bytes]:
    """A VXLAN conversation whose EHLO and reply travel in fragmented outer packets, the
    first fragment of each far from the others (so that a byte range ends between them),
    and between them a fragmented NFS datagram of the same addresses and identification:
    its first fragment alone (`first`) or all of it (`whole`), which Wireshark then puts
    together with the VXLAN packet's first fragment."""
    nfs = p.ether(p.ipv4(p.udp(2049, 800, bytes(300)), 17, "192.0.2.1", "192.0.2.2"), 0x0800)
    filler = p.ether(p.ipv4(p.udp(53, 53, bytes(600)), 17, "10.9.9.9", "10.9.9.8"), 0x0800)
    frames = []
    for i, f in enumerate(fragcap.conversation("whole")):
        if len(f) <= 300:
            frames.append(fragcap.vxlan(f))
            continue
        tun, other = fragcap.outer(fragcap.vxlan(f), 50 + i, 128), fragcap.outer(nfs, 50 + i)
        if order == "first":
            frames += tun[:1] + [filler] * 40 + other[:1] + tun[1:] + other[1:]
        else:
            frames += tun[:1] + [filler] * 40 + other + tun[1:]
    return frames


@pytest.mark.parametrize("order", ["first", "whole"])
def test_udp_of_a_tunnels_key_across_a_range_end_reads_as_tshark(tshark, tmp_path, order):
    """A fragmented VXLAN packet's first fragment in one byte range, its later ones in the
    next, and a fragmented UDP datagram of the same key between them: every byte range,
    backend and process reads the stream tshark reads, as one walk does."""
    path = tmp_path / f"{order}.pcap"
    fragcap.write(path, _colliding(order))
    ((client, server),) = _follows(tshark, path, 1)
    assert client.startswith(fragcap.CLIENT_BODY) == (order == "first")
    for backend in BACKENDS:
        (c,) = _conns(path, backend)
        assert (_seen(c.c2s), _seen(c.s2c)) == (client, server), backend
    assert compute_stats(path, ports={25}).selected_frames == len(_frames(tshark, path))
    whole = _result(path)
    assert _split(path, 2) == whole and _split(path, 3) == whole
    assert _streamed(path, 2) == whole


def _pushed(short_age: int) -> list[bytes]:
    """A VXLAN packet carrying the EHLO, its outer packet cut in fragments: its second, then
    an NFS datagram in order (let go unread in a window holding it whole, fed where a
    window or a walk cuts it) with a later fragment of TCP whose first never comes after
    its first, and the VXLAN packet's other fragments, its first last."""
    conv = fragcap.conversation("whole")
    tun = fragcap.outer(fragcap.vxlan(conv[4]), 77, 128)
    nfs = p.ether(p.ipv4(p.udp(2049, 800, bytes(300)), 17, "192.0.2.1", "192.0.2.2"), 0x0800)
    lone = fragcap.fragments(False, p.tcp(1, 2, 3, 4, p.ACK, bytes(100), src="10.0.0.5",
                                          dst="10.0.0.6"), "10.0.0.5", "10.0.0.6", 9)[1]
    nfs_frames = fragcap.outer(nfs, 78, 128)
    return (_quiet(short_age) + [fragcap.vxlan(f) for f in conv[:4]] + tun[1:2]
            + nfs_frames[:1] + [lone] + nfs_frames[1:] + tun[2:] + tun[:1]
            + [fragcap.vxlan(f) for f in conv[5:]])


def test_udp_datagrams_fed_or_let_go_push_none_out(tmp_path, monkeypatch, short_age):
    """The defragmenter's bound (MAX_PENDING of 2) holding a VXLAN packet's fragment:
    an NFS datagram whose fragments come in order, fed where a window cuts it and let go
    unread where one holds it whole, then a datagram of TCP begun, must not push the
    VXLAN packet out in one walk and not in another: it is held light, weighing on no
    bound."""
    monkeypatch.setattr(fragments, "MAX_PENDING", 2)
    path = tmp_path / "pushed.pcap"
    fragcap.write(path, _pushed(short_age))
    want = None
    for backend in BACKENDS:
        for window in (2, 64):
            out, skipped, _rows = _defragmented(path, backend, window)
            got = ([(f, seg[20:20 + len(fragcap.CLIENT_BODY)]) for f, _flow, seg in out],
                   skipped)
            want = want or got
            assert got == want, (backend, window)
    assert [seg for _f, seg in want[0]] == [fragcap.CLIENT_BODY]
    whole = _result(path)  # and so in every byte range and process, both backends
    assert [s["smtp"]["ehlo_name"] for s in whole[0]] == ["client.example.org"]
    assert _split(path, 2) == whole and _split(path, 3) == whole
    assert _streamed(path, 2) == whole and _result(path, backend="python") == whole


def test_light_datagrams_stay_bounded_by_their_age(monkeypatch):
    """First fragments of UDP on no selected port, never completed, are held light (no
    bytes, on no bound of datagrams) and so only until their age runs out: one a frame,
    never more than MAX_AGE + 1 at once, none counted, and a datagram of TCP begun among
    them pushes none out."""
    monkeypatch.setattr(fragments, "MAX_AGE", 32)
    monkeypatch.setattr(fragments, "MAX_PENDING", 4)
    d = Defragmenter()
    head = b"h" * 12 + bytes([0x50]) + b"h" * 7
    d.add(*_row_args(0, 70000, 0, head + b"a" * 12, first=True))
    for k in range(1, 1000):
        args = list(_row_args(k, k, 8, b"u" * 64))
        args[4] |= FRAG_OTHER | FRAG_UDP
        assert d.add(*args) is None
        assert len(d) <= 32 + 2 and d.held <= len(head) + 12 + PIECE_COST  # one of TCP
        if k == 20:  # the TCP datagram, among light ones, completed; another begun
            got = d.add(*_row_args(20, 70000, 32, b"b" * 8, more=False))
            assert got is not None and got.segment == head + b"a" * 12 + b"b" * 8
            d.add(*_row_args(20, 70001, 0, head + b"a" * 12, first=True))
    d.finish()
    assert d.skipped == {NOT_COMPLETED: 1}


@pytest.mark.parametrize("options,at", [
    (fragcap.route(["10.0.0.2"]), 3), (b"\x01" + fragcap.route(["1.1.1.1", "10.0.0.2"], 8), 8),
    (fragcap.route(["10.0.0.2"], 8), None), (fragcap.route(["1.1.1.1", "10.0.0.2"], 6), None),
    (b"\x00" + fragcap.route(["10.0.0.2"]), None), (bytes((0x9E, 13)) + fragcap.route([]), None),
    (bytes((0x94, 1)) + fragcap.route(["10.0.0.2"]), None), (b"\x01\x01", None)])
def test_a_routes_last_address_is_found_as_wireshark_walks_the_options(options, at):
    """Where the destination begins within the options, as packet-ip.c's `get_dst_offset`
    finds it: the first route still under way, unless an option before it ends the walk."""
    from fastcap.select.iproute import route_end

    assert route_end(options) == at


def test_a_source_routed_ehlo_joins_its_connection(tmp_path):
    """Without tshark at hand: fragments through two routers to one last hop are one
    datagram, of the connection with that host, in both backends."""
    path = tmp_path / "routed.pcap"
    fragcap.write(path, fragcap.routed("hops", fragcap.ROUTES["loose"]))
    for backend in BACKENDS:
        (conn,) = _conns(path, backend)
        assert _seen(conn.c2s) == fragcap.CLIENT_BODY, backend
