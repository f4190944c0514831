"""Interface options of a length other than their type's (an `if_tsresol` of 2 bytes, an
`if_tsoffset` of 4): Wireshark takes a one-byte option only at length 1 and an eight-byte
one only at length 8, and the first such option of a code only; the others are passed over.
fastcap reads them alike, so its frame times are tshark's.  Before, an `if_tsresol` of 2
bytes was read by its first byte (times a thousand times apart from tshark's), and a later
second `if_tsoffset` or `if_fcslen` replaced the first."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from fastcap.read.capture import Capture

from .test_undated import _block

T0 = 1_000_000  # small: a nanosecond count read as microseconds stays in 64 bits


def _capture(path: Path, options: bytes, units_per_s: int) -> None:
    """Three packets one second apart, their times in `units_per_s`, on an interface with
    `options`."""
    out = [_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)),
           _block(1, struct.pack("<HHI", 1, 0, 65535) + options + bytes(4))]
    for i in range(3):
        t = (T0 + i) * units_per_s
        pkt = bytes(60)
        out.append(_block(6, struct.pack("<IIIII", 0, t >> 32, t & 0xFFFFFFFF, 60, 60) + pkt))
    path.write_bytes(b"".join(out))


def _opt(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + bytes(-len(value) % 4)


CASES = {
    # name: (options, units per second the times are written in)
    "tsresol of 2 bytes": (_opt(9, b"\x09\x00"), 10**9),
    "tsresol of 2 bytes, then of 1": (_opt(9, b"\x03\x00") + _opt(9, b"\x09"), 10**9),
    "tsresol of 0 bytes, then of 1": (_opt(9, b"") + _opt(9, b"\x09"), 10**9),
    "two tsoffsets": (_opt(14, struct.pack("<q", 100)) + _opt(14, struct.pack("<q", 7)),
                      10**6),
    "tsoffset of 4 bytes": (_opt(14, struct.pack("<i", 100)), 10**6),
}


def _times(path: Path, backend: str) -> list[int]:
    with Capture(path, backend=backend) as cap:
        return [t for w in cap.windows() for t in w.ts_ns.tolist()]


@pytest.mark.parametrize("case", CASES)
def test_frame_times_are_tsharks(tmp_path, case, tshark):
    path = tmp_path / "opt.pcapng"
    _capture(path, *CASES[case])
    out = subprocess.run([tshark, "-r", str(path), "-T", "fields", "-e", "frame.time_epoch"],
                         capture_output=True, text=True, check=True).stdout.split()
    theirs = [int(t.replace(".", "")) for t in out]  # tshark prints 9 decimals
    assert len(theirs) == 3
    for backend in ("native", "python"):
        assert _times(path, backend) == theirs


@pytest.mark.parametrize("backend", ["native", "python"])
def test_options_of_a_wrong_length_are_passed_over(tmp_path, backend):
    """Without tshark: the expected times follow from the options Wireshark takes."""
    want = {"tsresol of 2 bytes": (T0 * 10**9 * 1000, 10**12),  # read as microseconds
            "tsresol of 2 bytes, then of 1": (T0 * 10**9, 10**9),
            "two tsoffsets": ((T0 + 100) * 10**9, 10**9),
            "tsoffset of 4 bytes": (T0 * 10**9, 10**9)}
    for case, (first, step) in want.items():
        path = tmp_path / "opt.pcapng"
        _capture(path, *CASES[case])
        assert _times(path, backend) == [first, first + step, first + 2 * step], case
