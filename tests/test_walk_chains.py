"""The C pcap walk follows several record chains at once from guessed starts; whatever the
guesses, it must give exactly the rows and stops of the one-chain Python walk.  The windows
are the default size (the chains run in windows of thousands of rows, over whatever part of
the file those rows may span) and the payloads carry decoy record headers, so some guessed
starts are wrong and must be thrown away."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastcap import Capture
from fastcap_synth.writers import Record, write_pcap

COLS = ("offset", "caplen", "orig_len", "ts_ns", "iface", "frame_no", "flags", "slab")
T0 = 1_700_000_000


def walk(path: Path, backend: str) -> tuple[dict, list[str]]:
    cols: dict[str, list] = {k: [] for k in COLS}
    with Capture(path, backend=backend) as cap:
        for w in cap.windows():
            for k in COLS:
                cols[k].append(getattr(w, k).copy())
        warnings = [str(x) for x in cap.meta.warnings]
    return {k: np.concatenate(v) if v else np.empty(0) for k, v in cols.items()}, warnings


def decoy(rng: np.random.Generator) -> bytes:
    """Bytes that read as a run of plausible record headers: a resync guess may settle here."""
    out = b""
    for _ in range(5):
        n = int(rng.integers(14, 60))
        out += struct.pack("<IIII", T0 + 1, 0, n, n) + bytes(n)
    return out


def capture(seed: int, records: int, decoys: float) -> bytes:
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(records):
        body = rng.integers(0, 256, int(rng.integers(14, 400)), dtype=np.uint8).tobytes()
        if rng.random() < decoys:
            body = body[:14] + decoy(rng) + body[14:]
        recs.append(Record(body, (T0 + i // 100) * 10**9 + i, len(body) + int(rng.integers(0, 3))))
    buf = io.BytesIO()
    write_pcap(buf, recs, snaplen=65535)
    return buf.getvalue()


def record_starts(data: bytes) -> list[int]:
    offs, off = [], 24
    while off + 16 <= len(data):
        offs.append(off)
        off += 16 + struct.unpack_from("<I", data, off + 8)[0]
    return offs


def agree(tmp_path: Path, data: bytes) -> dict:
    path = tmp_path / "c.pcap"
    path.write_bytes(data)
    a, wa = walk(path, "native")
    b, wb = walk(path, "python")
    for k in COLS:
        assert np.array_equal(a[k], b[k]), k
    assert wa == wb
    return a


@pytest.mark.parametrize("decoys", [0.0, 0.3, 1.0])
def test_chained_walk_equals_serial_walk(tmp_path, require_native, decoys):
    data = capture(1, 3000, decoys)
    cols = agree(tmp_path, data)
    assert len(cols["frame_no"]) == 3000
    assert list(cols["offset"]) == [o + 16 for o in record_starts(data)]


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), where=st.floats(0.0, 1.0),
       damage=st.sampled_from(["huge_length", "cut", "zero_header", "garbage"]))
def test_damage_anywhere_in_a_chain_stops_both_walks_alike(tmp_path, require_native, seed,
                                                         where, damage):
    data = bytearray(capture(seed, 1500, 0.2))
    starts = record_starts(bytes(data))
    at = starts[min(len(starts) - 1, int(where * len(starts)))]
    if damage == "huge_length":
        struct.pack_into("<I", data, at + 8, 0x7FFFFFFF)
    elif damage == "cut":
        del data[at + 20:]
    elif damage == "zero_header":
        data[at:at + 16] = bytes(16)
    else:
        data[at:at + 64] = np.random.default_rng(seed).integers(0, 256, 64, dtype=np.uint8
                                                                 ).tobytes()
    cols = agree(tmp_path, bytes(data))
    assert len(cols["frame_no"]) >= starts.index(at)
