"""pcap files before version 2.3 write each record's original length before its captured
length; version 2.3 files were written in both orders.  Wireshark reads the lengths swapped
in the first, and in the second where the first is the larger; so does fastcap, in both
walkers, in ranges and in its resync.  Before, a snapped record of such a file framed the
rest of the file wrongly."""

from __future__ import annotations

import struct
from pathlib import Path

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
