"""pcapng blocks the reader only counts (name resolution, interface statistics, unknown
types) are stepped over inside the walk, not handed back one by one: a file of many tiny
blocks took about 18 µs a block in the C walker (10 MB of 12-byte blocks: 30 s, tshark 0.25
s).  Counts, frame numbers and warnings stay what reading each block here gave, in both
walkers and in ranges (benchmarks/adversarial.py times it)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from fastcap.read.capture import Capture
from fastcap.read.frames import FrameWindow
from fastcap.read.walker import get_walker
from fastcap.read.walkstatus import BAD_IFACE, BLOCK, CORRUPT, END, FULL, IfaceParams
from fastcap_synth.writers import PcapngWriter

from .test_concatenated import _sessions
from .test_split import _split, _streamed

_FRAME = bytes(range(60))


def _blocks(types: list[int]) -> bytes:
    """The smallest sound block of each type: name resolution and statistics blocks have
    fixed fields (a shorter one is damage the reader reports)."""
    sizes = [{0x4: 16, 0x5: 24}.get(t, 12) for t in types]
    return b"".join(struct.pack("<II", t, n) + bytes(n - 12) + struct.pack("<I", n)
                    for t, n in zip(types, sizes, strict=True))


@pytest.mark.parametrize("backend", ["native", "python"])
def test_the_walk_counts_up_to_eight_types_and_hands_back_the_ninth(backend, require_native):
    """Quiet blocks of eight types are counted (in the order first met) and stepped over;
    a ninth type, and every block the reader needs (interfaces, secrets, custom), stops
    the walk as before; with quiet_max 0 the first quiet block does."""
    types = [0x100 + i % 8 for i in range(40)] + [0x4, 0x5, 0x4, 0x999, 0x4]
    buf = _blocks(types) + _blocks([0xBAD])
    walker = get_walker(backend)
    win = FrameWindow.allocate(4, 32)
    ifaces = [IfaceParams(0, False, 6, 0, 0)]
    bound = walker.bind(buf)

    def walk(start: int, length: int = len(buf), quiet_max: int = 8):
        return walker.walk_pcapng(bound, length, start, False, ifaces, 1 << 24, win, 0, 1,
                                  quiet_max=quiet_max)

    n, st = walk(0)
    assert (n, st.code, st.detail, st.offset) == (0, BLOCK, 0x4, 12 * 40)
    assert st.quiet == tuple((0x100 + i, 5) for i in range(8))
    _, st = walk(12 * 40)
    end = 12 * 40 + len(_blocks(types[40:]))
    assert (st.code, st.detail, st.offset) == (BLOCK, 0xBAD, end)
    assert st.quiet == ((4, 3), (5, 1), (0x999, 1))
    _, st = walk(0, quiet_max=0)
    assert (st.code, st.detail, st.offset, st.quiet) == (BLOCK, 0x100, 0, ())
    _, st = walk(12 * 40, len(buf) - 12)
    assert (st.code, st.offset, st.quiet) == (END, end, ((4, 3), (5, 1), (0x999, 1)))


def _capture(path: Path, rounds: int) -> tuple[int, dict]:
    """A capture with quiet blocks of eleven types between packets, an interface block
    added half way, secrets and custom blocks (which Wireshark numbers as frames): its
    frames and the block counts it must read as."""
    counts: dict[str, int] = {"section header": 1, "interface description": 2,
                              "enhanced packet": 0, "decryption secrets": 1, "custom": 1}
    with PcapngWriter(path) as w:
        w.section()
        w.interface(1)
        for r in range(rounds):
            if r == rounds // 2:
                w.interface(1, tsresol=9)
                w.dsb(0x544C534B, b"CLIENT_RANDOM 00 11\n")
                w.custom(32473, b"x")
            for k in range(11):
                w.raw_block(0x200 + k, b"" if k % 2 else b"abcd")
                name = f"type 0x{0x200 + k:08x}"
                counts[name] = counts.get(name, 0) + 1
            w.nrb([("10.0.0.1", "a")])
            w.isb(0, 5)
            counts["name resolution"] = counts.get("name resolution", 0) + 1
            counts["interface statistics"] = counts.get("interface statistics", 0) + 1
            w.epb(r >= rounds // 2, _FRAME, ts_units=1_700_000_000_000 + r)
            counts["enhanced packet"] += 1
    return rounds + 1, counts


def _read(path: Path, backend: str, window: int = 3) -> tuple[list, dict, list]:
    rows = []
    with Capture(path, backend=backend, window=window) as cap:
        for w in cap.windows():
            rows += zip(w.frame_no.tolist(), w.ts_ns.tolist(), w.iface.tolist(), strict=True)
        counts = dict(cap.meta.block_counts)
        counts.pop("enhanced packet", None)  # packets are frames, not counted as blocks
        return rows, counts, list(cap.meta.warnings)


@pytest.mark.parametrize("backend", ["native", "python"])
def test_counts_and_frames_are_those_of_reading_each_block(tmp_path, backend):
    path = tmp_path / "quiet.pcapng"
    frames, want = _capture(path, 40)
    rows, counts, warnings = _read(path, backend)
    want.pop("enhanced packet")
    assert counts == want and warnings == []
    # the custom block takes a frame number, as in Wireshark
    assert [r[0] for r in rows] == list(range(1, 21)) + list(range(22, 42))
    assert [r[2] for r in rows] == [0] * 20 + [1] * 20
    assert (frames, rows) == (41, _read(path, "python", 64)[0])


def test_ranges_read_as_one_walk(tmp_path):
    """`-j N`: ranges end inside runs of quiet blocks; each range's walk stops at its end
    (the block it ends inside is read by the straddler alone), so the ranges' frames,
    frame numbers and warnings are one walk's."""
    path = tmp_path / "quiet.pcapng"
    frames, _ = _capture(path, 3000)
    whole = _sessions(path)
    assert whole[1]["frames"] == frames
    assert _streamed(path, 7) == whole
    assert _split(path, 7) == whole


def test_both_walkers_step_over_random_block_runs_alike(require_native):
    """Random runs of packets, quiet blocks of up to a dozen types and blocks the reader
    needs, some damaged, the data cut anywhere: the same rows, stop and counts."""
    rng = np.random.default_rng(11)
    walkers = get_walker("native"), get_walker("python")
    ifaces = [IfaceParams(0, False, 6, 0, 0), IfaceParams(64, True, 20, -3, 1)]
    stepped = 0
    for trial in range(60):
        parts = []
        for _ in range(int(rng.integers(1, 400))):
            kind = rng.random()
            if kind < 0.3:
                data = bytes(int(rng.integers(0, 90)))
                body = struct.pack("<IIIII", int(rng.integers(0, 3)), 1,
                                   int(rng.integers(0, 2**32)), len(data),
                                   len(data) + 5) + data + bytes(-len(data) % 4)
                parts.append(struct.pack("<II", 6, len(body) + 12) + body
                             + struct.pack("<I", len(body) + 12))
            elif kind < 0.99:
                btype = int(rng.choice([4, 5, 1, 10, 0xBAD] + [0x300 + k for k in range(12)]))
                body = bytes(4 * int(rng.integers(0, 4)))
                blen = len(body) + 12
                if rng.random() < 0.01:
                    blen += 4  # a trailer that does not match
                parts.append(struct.pack("<II", btype, blen) + body + struct.pack("<I", blen))
            else:
                parts.append(bytes(int(rng.integers(1, 20))))
        buf = b"".join(parts)
        buf = buf[: len(buf) - int(rng.integers(0, 20))]
        cap, quiet_max, outs = int(rng.integers(1, 64)), int(rng.choice([0, 3, 8, 20])), []
        for w in walkers:
            bound, off, calls = w.bind(buf), 0, []
            while len(calls) < 2000:  # on past each stop as the reader goes on
                win = FrameWindow.allocate(cap, 16)
                k, st = w.walk_pcapng(bound, len(buf), off, False, ifaces, 1 << 24, win, 0, 1,
                                      quiet_max=quiet_max)
                h = win.head(k)
                calls.append((k, st.code, st.offset, st.next_frame, st.detail, st.quiet,
                              h.offset.tolist(), h.caplen.tolist(), h.ts_ns.tolist(),
                              h.iface.tolist(), h.flags.tolist()))
                if st.code == FULL:
                    off = st.offset
                elif st.code in (BLOCK, BAD_IFACE, CORRUPT) and len(buf) - st.offset >= 8:
                    off = st.offset + max(4, struct.unpack_from("<I", buf, st.offset + 4)[0])
                    off = off if 0 < off - st.offset <= 1 << 16 else st.offset + 4
                else:
                    break
            outs.append(calls)
        assert outs[0] == outs[1], trial
        stepped += sum(n for c in outs[0] for _, n in c[5])
    assert stepped > 500  # the runs were stepped over, not only handed back
