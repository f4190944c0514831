"""pcap files before version 2.3 write each record's original length before its captured
length; version 2.3 files were written in both orders.  Wireshark reads the lengths swapped
in the first, and in the second where the first is the larger; so does fastcap, in both
walkers, in ranges and in its resync.  Before, a snapped record of such a file framed the
rest of the file wrongly."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from fastcap.read.capture import Capture

from .gencap import generate
from .test_concatenated import _sessions
from .test_split import _streamed
from .test_undated import _records


@pytest.fixture(scope="module")
def recs(tmp_path_factory) -> list:
    path = generate(tmp_path_factory.mktemp("ver"), size="1M", sessions=15, seed=17)["pcap"]
    # every fifth record claims a longer original: snapped, as by a snap length
    return [(s, u, o + (100 if i % 5 == 0 else 0), p)
            for i, (s, u, o, p) in enumerate(_records(path.read_bytes()))]


def _pcap(records, minor: int, old_order) -> bytes:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, minor, 0, 0, 262144, 1)]
    for i, (sec, usec, orig, pkt) in enumerate(records):
        first, second = (orig, len(pkt)) if old_order(i) else (len(pkt), orig)
        out.append(struct.pack("<IIII", sec, usec, first, second) + pkt)
    return b"".join(out)


def _rows(path: Path, backend: str) -> tuple[list, list]:
    rows = []
    with Capture(path, backend=backend) as cap:
        for w in cap.windows():
            rows += zip(w.frame_no.tolist(), w.ts_ns.tolist(), w.caplen.tolist(),
                        w.orig_len.tolist(), w.flags.tolist(), strict=True)
        return rows, [x.kind for x in cap.meta.warnings]


@pytest.mark.parametrize("backend", ["native", "python"])
@pytest.mark.parametrize("minor,old_order", [(2, lambda i: True), (0, lambda i: True),
                                             (3, lambda i: i % 2 == 0)])
def test_lengths_in_the_old_order_read_as_wireshark_reads_them(recs, tmp_path, backend,
                                                               minor, old_order):
    new, old = tmp_path / "new.pcap", tmp_path / "old.pcap"
    new.write_bytes(_pcap(recs, 4, lambda i: False))
    old.write_bytes(_pcap(recs, minor, old_order))
    want = _rows(new, backend)
    assert len(want[0]) == len(recs) and want[1] == []
    assert sum(r[2] < r[3] for r in want[0]) > 100
    assert _rows(old, backend) == want


def test_ranges_and_resync_of_an_old_file(recs, tmp_path):
    """`-j N` of a version 2.2 file is one walk's; a damaged length loses its record only."""
    old = tmp_path / "old.pcap"
    old.write_bytes(_pcap(recs, 2, lambda i: True))
    whole = _sessions(old)
    assert whole[1]["frames"] == len(recs) and len(whole[0]) > 10
    assert _streamed(old, 5) == whole
    data = bytearray(old.read_bytes())
    # record 300 (its successor snapped, so the resync reads lengths in the file's order)
    at = 24 + sum(16 + len(p) for *_, p in recs[:299])
    struct.pack_into("<I", data, at + 12, 0x7FFFFFF0)  # the captured length, in this order
    old.write_bytes(bytes(data))
    for backend in ("native", "python"):
        rows, kinds = _rows(old, backend)
        assert [r[0] for r in rows] == list(range(1, 300)) + list(range(300, len(recs)))
        assert kinds == ["corrupt_record"]


def test_both_walkers_frame_every_record_layout_alike(require_native):
    """Random records (some lengths damaged, the file cut anywhere) under each way of
    reading a record header (time resolution, length order, modified tails): the C walk,
    its interleaved chains included, and the Python twin give the same rows and stop."""
    from fastcap.read.frames import FrameWindow
    from fastcap.read.walker import get_walker

    rng = np.random.default_rng(3)
    walkers = get_walker("native"), get_walker("python")
    for trial in range(24):
        rules = (0, 1, 2, 4, 5, 8 << 8, 12 << 8 | 2, 4 << 8 | 4)[trial % 8]
        big = bool(trial % 3 == 0)
        o = ">" if big else "<"
        recs = []
        for i in range(int(rng.integers(1, 5000))):
            incl = int(rng.integers(0, 80))
            orig = incl + int(rng.integers(0, 3)) * int(rng.integers(0, 50))
            a, b = incl, orig
            if rules & 2 or (rules & 4 and rng.integers(2)):
                a, b = orig, incl
            if rng.random() < 0.0005:
                a = int(rng.integers(0, 2**32))
            recs.append(struct.pack(o + "IIII", 1_700_000_000 + i, int(rng.integers(0, 10**6)),
                                    a, b) + bytes(rules >> 8) + bytes(incl))
        buf = b"".join(recs)
        buf = buf[: len(buf) - int(rng.integers(0, 30))]
        outs = []
        for w in walkers:
            win = FrameWindow.allocate(8192, 16)
            k, st = w.walk_pcap(w.bind(buf), len(buf), 0, big, rules, 65535, 262144, win, 0, 1)
            h = win.head(k)
            outs.append((k, st.code, st.offset, st.next_frame, st.detail, h.offset.tolist(),
                         h.caplen.tolist(), h.orig_len.tolist(), h.ts_ns.tolist(),
                         h.flags.tolist()))
        assert outs[0] == outs[1], (trial, rules)
