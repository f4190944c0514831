"""`tcp.feed.rewritten_at`: a file written over in place between reading its frames and
reading their payloads.  It compared the TCP headers before the first and the last payload
only, so a rewrite that kept those two (the frames between them changed, moved or other
frames) went unnoticed and its sessions were judged on the new bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fastcap.read.capture import Capture
from fastcap.run import ranges
from fastcap.select.fragments import FRAG_ROW
from fastcap.tcp.feed import rewritten_at

ALL = Path(__file__).resolve().parents[1] / "examples" / "all-scenarios.pcapng"


def _cols(backend: str):
    with Capture(str(ALL), backend=backend) as cap:
        (task,) = ranges.plan(cap, 1, {25, 465, 587}, backend, min_bytes=1)
    return ranges.read_range(task).cols


def _header(buf, cols, i: int) -> int:
    """Where row i's TCP header begins in `buf`."""
    off = int(cols.payload_file_off[i])
    want = (int(cols.seq[i]) & 0xFFFFFFFF).to_bytes(4, "big")
    (n,) = [n for n in range(20, 61, 4) if buf[off - n + 12] >> 4 == n // 4
            and bytes(buf[off - n + 4:off - n + 8]) == want]
    return off - n


@pytest.mark.parametrize("backend", ["native", "python"])
def test_a_rewrite_of_the_frames_between_the_first_and_last_is_told(backend):
    data = ALL.read_bytes()
    cols = _cols(backend)
    ok = np.flatnonzero((np.asarray(cols.flags) & FRAG_ROW) == 0)
    assert len(ok) > 40 and rewritten_at(data, cols, 0, len(cols), len(data)) is None
    first = int(cols.payload_file_off[0])
    # the middle half of the rows rewritten: their sequence numbers (then their windows)
    # changed, the first and the last row as they were
    for field in (4, 14):
        buf = bytearray(data)
        for i in ok[len(ok) // 4: 3 * len(ok) // 4]:
            at = _header(data, cols, int(i)) + field
            buf[at] ^= 0x5A
        assert rewritten_at(bytes(buf), cols, 0, len(cols), len(buf)) == first
    # a range of the rows: its own first payload
    lo = int(ok[len(ok) // 2])
    assert rewritten_at(bytes(buf), cols, lo, len(cols), len(buf)) == \
        int(cols.payload_file_off[lo])
