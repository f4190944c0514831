"""Alexey Kuznetzov's modified pcap (magic 0xa1b2cd34): each record header carries 8 more
bytes (interface index, protocol, packet type, padding) after the usual 16.  tshark reads it
("Modified tcpdump - pcap"); fastcap reads the same frames, in both walkers, in ranges and
from compressed streams, as it reads the same records in a standard pcap."""

from __future__ import annotations

import gzip
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
def plain(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("mod"), size="2M", sessions=30, seed=13)["pcap"]


def _modified(records, *, big: bool = False, extra: int = 8) -> bytes:
    """A modified pcap: `extra` 8 as the 1999-10-29 patch writes it, 12 as the 1999-09-15
    patch does (two SMP debugging bytes and three of padding more)."""
    o = ">" if big else "<"
    out = [struct.pack(o + "IHHiIII", 0xA1B2CD34, 2, 4, 0, 0, 262144, 1)]
    for i, (sec, usec, orig, pkt) in enumerate(records):
        tail = b"\x00" if extra == 8 else b"\x01\x02\xee\xee\xee"
        out.append(struct.pack(o + "IIIIIHB", sec, usec, len(pkt), orig, 2 + i % 3, 0x0800,
                               i % 5) + tail + pkt)
    return b"".join(out)


def _columns(path: Path, backend: str) -> list[tuple]:
    rows = []
    with Capture(path, backend=backend) as cap:
        for w in cap.windows():
            rows += zip(w.frame_no.tolist(), w.ts_ns.tolist(), w.caplen.tolist(),
                        w.orig_len.tolist(), map(bytes, np.array(w.slab)), strict=True)
        assert list(cap.meta.warnings) == []
    return rows


@pytest.mark.parametrize("backend", ["native", "python"])
@pytest.mark.parametrize("big,extra", [(False, 8), (True, 8), (False, 12), (True, 12)])
def test_a_modified_pcap_reads_as_the_standard_one(plain, tmp_path, backend, big, extra):
    """Every frame, time, length and leading byte as in the standard file; before, the file
    was refused as not a capture."""
    mod = tmp_path / "mod.pcap"
    mod.write_bytes(_modified(_records(plain.read_bytes()), big=big, extra=extra))
    want = _columns(plain, backend)
    assert len(want) > 1000 and _columns(mod, backend) == want


@pytest.mark.parametrize("extra", [8, 12])
def test_ranges_and_streams_of_a_modified_pcap_resynchronise_on_its_records(plain, tmp_path,
                                                                            extra):
    """Ranges begin at the 24-byte record headers (`-j N` gives one walk's sessions), and a
    gzip stream whose pieces end inside a record header reads on."""
    recs = _records(plain.read_bytes())
    mod = tmp_path / "mod.pcap"
    mod.write_bytes(_modified(recs, extra=extra))
    whole = _sessions(mod)
    want = _sessions(plain)
    assert len(whole[0]) > 20
    assert [{**s, "file": str(plain)} if "file" in s else s for s in whole[0]] == want[0]
    assert whole[1]["frames"] == want[1]["frames"] == len(recs)
    assert _streamed(mod, 9) == whole
    packed = tmp_path / "mod.pcap.gz"
    packed.write_bytes(gzip.compress(mod.read_bytes(), 1))
    cut = 24 + sum(16 + extra + len(p) for *_, p in recs[:100]) + 20  # inside a header
    got, summary = _sessions(packed, piece=cut)
    assert [{**s, "file": str(mod)} if "file" in s else s for s in got] == whole[0]
    assert summary["frames"] == len(recs) and summary["warnings"] == []


@pytest.mark.parametrize("backend", ["native", "python"])
def test_a_damaged_record_of_a_modified_pcap_resynchronises_on_the_next(plain, tmp_path,
                                                                        backend):
    """A record whose captured length is garbage: the walk finds the next 24-byte header,
    losing that one record only."""
    recs = _records(plain.read_bytes())[:400]
    data = bytearray(_modified(recs))
    at = 24 + sum(24 + len(p) for *_, p in recs[:200])
    struct.pack_into("<I", data, at + 8, 0x7FFFFFF0)
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(bytes(data))
    rows = _columns_any(bad, backend)
    assert [r[0] for r in rows] == list(range(1, 201)) + list(range(201, 400))
    assert [r[1] for r in rows] == [(s * 10**9 + u * 1000) for s, u, *_ in
                                    recs[:200] + recs[201:]]


def _columns_any(path: Path, backend: str) -> list[tuple]:
    rows = []
    with Capture(path, backend=backend) as cap:
        for w in cap.windows():
            rows += zip(w.frame_no.tolist(), w.ts_ns.tolist(), strict=True)
    return rows
