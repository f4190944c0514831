"""Differential tests on the public corpus: our frame index and port selection vs tshark.

expected.json was recorded with tshark 4.0; when tshark is installed we also ask it directly,
frame by frame, for timestamps, lengths and TCP ports.
"""

from __future__ import annotations

import re
import subprocess
from decimal import Decimal

import numpy as np
import pytest

from fastcap import Capture
from fastcap.errors import CaptureError
from fastcap.run.scanner import scan
from fastcap.select.stats import compute_stats

from .corpus import corpus_expected, corpus_params

EXPECTED = corpus_expected()

# Files where we read further than tshark, on purpose: tshark stops at the first damaged
# record; we resynchronise on the next chain of plausible records (fastcap.read.resync).  Each
# entry: (our frame count, the reason).
KNOWN_DEVIATIONS: dict[str, tuple[int, str]] = {
    "sv__smtp-to-comma-corrupt.pcap": (
        199, "3 bytes are damaged after record 18; tshark stops there, we skip those bytes "
             "and read all 199 frames of the undamaged original (sv__smtp-data-rejected.pcap)"),
    "sv__tls-der-incomplete-header.pcap": (
        13, "80 bytes are damaged after record 6; tshark stops there, we read 7 more frames "
            "of the same TCP connection (consecutive IP ids)"),
}


@pytest.mark.parametrize("path", corpus_params())
def test_frames_linktypes_and_port25_match_tshark(path, backend):
    exp = EXPECTED[path.name]
    s = compute_stats(path, backend=backend)
    if path.name in KNOWN_DEVIATIONS:
        assert s.frames == KNOWN_DEVIATIONS[path.name][0] > exp["frames"]
        assert len(s.unreadable) == 1 and s.warnings
        return
    assert s.frames == exp["frames"]
    assert list(s.linktypes) == exp["linktypes"]
    run = scan(path, backend=backend)  # it counts frames as Wireshark numbers them too
    try:
        list(run)
    except CaptureError:
        pass
    else:
        assert run.summary.frames == exp["frames"]
    streams = exp["tcp_port25_streams"]
    # tshark's tcp.port also matches TCP headers quoted inside ICMP errors; we count those apart.
    assert s.selected_frames + s.icmp_about_selected == sum(v["frames"] for v in streams.values())
    assert s.selected_flows == exp["tcp_port25_conversations"]
    container = exp["container"]
    if container.get("truncated_tail"):
        assert s.warnings, "a damaged tail must be reported"
        assert all(str(path) in w and "offset" in w for w in s.warnings)
    else:
        assert s.warnings == ()
    fmt = container["format"]
    assert s.format == fmt
    if fmt == "pcap":
        assert s.byte_orders == (container["endian"],)
        assert s.nanosecond == (container["ts_precision"] == "nsec")
    else:
        assert s.sections == container["sections"]
        assert s.interfaces == len(container["interfaces"])


def _tshark_frames(tshark: str, path) -> list[list[str]]:
    out = subprocess.run(
        [tshark, "-r", str(path), "-n", "-T", "fields", "-E", "separator=|",
         "-e", "frame.number", "-e", "frame.time_epoch", "-e", "frame.len",
         "-e", "frame.cap_len", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "ip.version",
         "-e", "ipv6.version"],
        capture_output=True, text=True, check=False)
    return [line.split("|") for line in out.stdout.splitlines() if line]


@pytest.mark.parametrize("path", corpus_params())
def test_every_frame_matches_tshark(path, tshark, backend):
    """Timestamps (to the ns), lengths and TCP ports of every frame equal tshark's."""
    rows = {}
    with Capture(path, backend=backend) as cap:
        from fastcap.select.selection import iter_selected

        for w in cap.windows():
            for i in range(len(w)):
                rows[int(w.frame_no[i])] = (int(w.ts_ns[i]), int(w.orig_len[i]),
                                            int(w.caplen[i]))
        ports = {}
    with Capture(path, backend=backend) as cap:
        all_ports = range(65536)
        for sel in iter_selected(cap, all_ports):
            for f, sp, dp in zip(sel.frame_no.tolist(), sel.tcp.sport.tolist(),
                                 sel.tcp.dport.tolist(), strict=True):
                ports[f] = (sp, dp)
    theirs = _tshark_frames(tshark, path)
    packet_frames = [t for t in theirs if int(t[0]) in rows]
    if path.name in KNOWN_DEVIATIONS:  # tshark's frames are our first ones; we read on
        assert [int(t[0]) for t in packet_frames] == sorted(rows)[: len(packet_frames)]
    else:
        assert len(packet_frames) == len(rows)
    for no, epoch, flen, clen, sport, dport, ipv, ip6v in packet_frames:
        ts, orig, cap_len = rows[int(no)]
        if epoch:
            want = int(Decimal(epoch) * 10**9)
            assert ts == want, f"frame {no}: ts {ts} != {want}"
        assert (orig, cap_len) == (int(flen), int(clen)), f"frame {no}"
        tunnelled = "," in sport or "," in ipv or "," in ip6v or (ipv and ip6v)
        if sport and not tunnelled:
            assert ports.get(int(no)) == (int(sport), int(dport)), f"frame {no}"
        elif not sport:
            assert int(no) not in ports, f"frame {no}: we saw TCP where tshark did not"


@pytest.mark.parametrize("path", corpus_params())
def test_backends_agree_on_corpus(path, require_native):
    a = compute_stats(path, backend="native", ports=range(65536)).to_dict()
    b = compute_stats(path, backend="python", ports=range(65536)).to_dict()
    a.pop("backend"), b.pop("backend")
    assert a == b


def test_window_size_does_not_change_results():
    paths = [p.values[0] for p in corpus_params() if p.values[0] is not None]
    if not paths:
        pytest.skip("corpus not found")
    for p in paths:
        ref = compute_stats(p, window=1 << 16).to_dict()
        for window in (1, 3, 17):
            got = compute_stats(p, window=window).to_dict()
            assert got == ref, (p.name, window)
            assert np.isfinite(got["frames"])


def test_damaged_copy_reads_as_its_undamaged_original(backend):
    """The damaged corpus file resynchronises into exactly the original's frames."""
    paths = {p.values[0].name: p.values[0] for p in corpus_params() if p.values[0] is not None}
    if "sv__smtp-to-comma-corrupt.pcap" not in paths:
        pytest.skip("corpus not found")
    hurt = compute_stats(paths["sv__smtp-to-comma-corrupt.pcap"], backend=backend).to_dict()
    whole = compute_stats(paths["sv__smtp-data-rejected.pcap"], backend=backend).to_dict()
    assert hurt["unreadable"] == [[3695, 3698]]
    for key in ("frames", "tcp", "selected_frames", "selected_flows", "first_ts_ns",
                "last_ts_ns"):
        assert hurt[key] == whole[key], key


def test_corpus_ships_with_the_tests():
    """A fresh clone runs every corpus test: each capture named in the manifest is in the
    repository, and nothing there lacks a manifest row (source and licence)."""
    from .corpus import CORPUS

    manifest = (CORPUS / "MANIFEST.md").read_text()
    listed = set(re.findall(r"^\| `([^`]+\.pcap(?:ng)?)`", manifest, re.M))
    present = {p.name for p in CORPUS.iterdir() if p.suffix in (".pcap", ".pcapng")}
    assert listed and listed == present
    assert set(corpus_expected()) >= present
