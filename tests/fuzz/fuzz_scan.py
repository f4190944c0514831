"""atheris harness for fastcap's Python side (and the C/Python twins against each other).

Byte 0 picks the target; the rest is its input:
  0  capture bytes -> Capture windows on both backends (must agree), then scan() on both
  1  two streams   -> tls.parse_handshake        (documented: never raises)
  2  two streams   -> smtp.parse_dialogue        (documented: never raises)
  3  DER bytes     -> x509check.cert_info        (documented: never raises)
  4  TCP rows      -> native and Python reassembler cores (must give identical RawConns)
"Two streams" = [flags][split u16][gap bytes x4][data]: data[:split] is c2s, the rest s2c.
Any exception other than FastcapError from a capture is a finding, as is any disagreement.

    python tests/fuzz/fuzz_scan.py build/fuzz/py-corpus build/fuzz/py-seeds -max_total_time=120
"""

from __future__ import annotations

import dataclasses
import dis
import operator
import os
import struct
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

import atheris
import numpy as np
from atheris.version_dependent import CMP_OP_SHIFT_AMOUNT

with atheris.instrument_imports(include=["fastcap"]):
    from fastcap._ffi import native_available
    from fastcap.errors import FastcapError
    from fastcap.judge import x509check
    from fastcap.proto import smtp, tls
    from fastcap.read.capture import Capture
    from fastcap.run.scanner import scan, trust_store
    from fastcap.tcp.reassembly import FrameCols, RawConn, _stream_dir, get_reassembler_core

COLUMNS = ("offset", "caplen", "orig_len", "ts_ns", "iface", "frame_no", "flags", "slab")
TMP = os.path.join(tempfile.mkdtemp(prefix="fastcap-atheris-"), "input")
BACKENDS = ("native", "python") if native_available() else ("python",)
TRUST = trust_store()  # loaded once; each input gets a fresh Analyzer so its memo stays small


_CMP = {"<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
        ">": operator.gt, ">=": operator.ge}
_native_trace_cmp: Any = atheris._trace_cmp


def _trace_cmp(a: Any, b: Any, op: int, counter: int, is_const: bool) -> Any:
    """atheris 3.0's compare hook leaks every non-bool result (a numpy comparison's array:
    ~1 GiB a minute here); numpy operands are compared directly, everything else traced."""
    if isinstance(a, np.ndarray | np.generic) or isinstance(b, np.ndarray | np.generic):
        return _CMP[dis.cmp_op[op >> CMP_OP_SHIFT_AMOUNT]](a, b)
    return _native_trace_cmp(a, b, op, counter, is_const)


@dataclasses.dataclass
class Stream:
    """Stands in for a reassembled direction (tls.ReassembledStream / smtp.StreamLike)."""

    data: bytes
    gaps: Sequence[tuple[int, int]]

    def frame_at(self, offset: int) -> int | None:
        return offset // 64 + 1 if 0 <= offset < len(self.data) else None


def _stream(data: bytes, gap_bytes: bytes) -> Stream:
    """Gaps as a reassembler reports them: sorted, disjoint, inside data, zero-filled."""
    gaps: list[tuple[int, int]] = []
    buf = bytearray(data)
    pos = 0
    for i in range(0, len(gap_bytes) - 1, 2):
        start, size = pos + gap_bytes[i] * 4, gap_bytes[i + 1]
        if size == 0 or start >= len(buf):
            continue
        size = min(size, len(buf) - start)
        buf[start : start + size] = bytes(size)
        gaps.append((start, size))
        pos = start + size
    return Stream(bytes(buf), gaps)


def _streams(data: bytes) -> tuple[int, Stream, Stream]:
    if len(data) < 7:
        data += bytes(7 - len(data))
    flags, split = data[0], struct.unpack_from("<H", data, 1)[0]
    gb, body = data[3:7], data[7:]
    split = min(split, len(body))
    return flags, _stream(body[:split], gb[:2]), _stream(body[split:], gb[2:])


def _capture(data: bytes) -> None:
    suffix = ".pcapng" if data[:4] == b"\x0a\x0d\x0d\x0a" else ".pcap"
    path = TMP + suffix
    with open(path, "wb") as fh:
        fh.write(data)
    window = 1 + (data[-1] % 7 if data else 0)
    seen: dict[str, Any] = {}
    analyzer = x509check.Analyzer(TRUST)
    for backend in BACKENDS:
        try:
            with Capture(path, backend=backend, window=window, slab_width=16) as cap:
                parts = [[getattr(w, k).tobytes() for k in COLUMNS] for w in cap.windows()]
                warns = [str(w) for w in cap.meta.warnings]
            got: Any = (parts, warns)
        except FastcapError as e:
            got = ("error", str(e))
        try:
            sessions = [s.to_dict() for s in scan(path, backend=backend, analyzer=analyzer,
                                                  stream_cap=8192)]
        except FastcapError as e:
            sessions = [("error", str(e))]
        seen[backend] = (got, sessions)
    if len(seen) == 2 and seen["native"] != seen["python"]:
        raise AssertionError("native and python backends disagree on this capture")
    os.unlink(path)


def _tls(data: bytes) -> None:
    flags, c2s, s2c = _streams(data)
    tls.parse_handshake(c2s, s2c, c2s_start=flags & 7, s2c_start=(flags >> 3) & 7)


def _smtp(data: bytes) -> None:
    flags, c2s, s2c = _streams(data)
    smtp.parse_dialogue(c2s, s2c, implicit_tls=bool(flags & 1))


def _x509(data: bytes) -> None:
    info = x509check.cert_info(data)
    info.to_dict()


_ROW = struct.Struct("<BBHhHIIBB")  # flow|dir, flags, plen, caplen, foff, seq, ack, ts, win
_FLOWS = (0, 1, 2, 3, -1, 2**63 - 1, -(2**63), 2**32)


def _reasm(data: bytes) -> None:
    if len(data) < 5:
        return
    cfg, data = data[:5], data[5:]
    n = min(len(data) // _ROW.size, 200)
    rows = [_ROW.unpack_from(data, i * _ROW.size) for i in range(n)]
    buf = data[n * _ROW.size :]
    cols: dict[str, list[int]] = {f: [] for f in FrameCols.__dataclass_fields__}
    ts = 1_700_000_000_000_000_000
    for i, (fd, fl, plen, caplen, foff, seq, ack, tsel, win) in enumerate(rows):
        ts = {0xFD: -(2**63), 0xFE: 2**63 - 1, 0xFF: 0}.get(tsel, ts + tsel * 1_000_000)
        ts = max(-(2**63), min(2**63 - 1, ts))
        for f, v in (("frame_no", i + 1), ("ts_ns", ts), ("flow", _FLOWS[fd & 7]),
                     ("from_a", not fd & 8), ("payload_file_off", foff - 8 if fd & 16 else foff),
                     ("seq", seq), ("ack", ack), ("flags", fl | (fd >> 5) << 8),
                     ("window", 0 if win & 1 else 65535),
                     ("payload_len", plen - 0x10000 if plen >= 0xFF00 else plen),
                     ("payload_caplen", caplen)):
            cols[f].append(v)
    dtypes = {"frame_no": np.int64, "ts_ns": np.int64, "flow": np.int64, "from_a": bool,
              "payload_file_off": np.int64, "seq": np.uint32, "ack": np.uint32,
              "flags": np.uint16, "window": np.uint16, "payload_len": np.int32,
              "payload_caplen": np.int32}
    fc = FrameCols(**{f: np.array(v, dtypes[f]) for f, v in cols.items()})
    limits = dict(cap=(0, 1, 64, 3000, 70000)[cfg[0] % 5],
                  budget=(0, 600, 5000, 1 << 20, 2**62)[cfg[1] % 5],
                  max_open=1 + cfg[2] % 5, max_segments=(0, 1, 3, 17, 1000)[cfg[3] % 5],
                  linger_ns=(0, 1, 10**6, 10**9, 2**62)[cfg[4] % 5])
    step = 1 + cfg[0] // 5 % 8
    out = {}
    for backend in BACKENDS:
        core = get_reassembler_core(backend, buf, **limits)
        got = []  # per call: the same connections must come back at the same time
        for lo in range(0, n, step):
            part = FrameCols(*(getattr(fc, f)[lo : lo + step]
                               for f in FrameCols.__dataclass_fields__))
            got.append(_conns(core.feed(part)))
        got.append(_conns(core.finish()))
        core.close()
        out[backend] = got
    if len(out) == 2 and out["native"] != out["python"]:
        raise AssertionError("native and python reassembler cores disagree")


def _conns(raws: list[RawConn]) -> list[dict[str, Any]]:
    """RawConns as the shared code sees them: by index, each direction through _stream_dir
    (the cores may differ in how they encode a complete fill map or a sorted segment map)."""
    out = []
    for r in sorted(raws, key=lambda r: r.index):
        d = {f.name: getattr(r, f.name) for f in dataclasses.fields(r) if f.name != "dirs"}
        d["dirs"] = [{k: v.tolist() if isinstance(v, np.ndarray) else v
                      for k, v in vars(_stream_dir(x, r.conflicting_overlaps > 0)).items()
                      if not k.startswith("_")}
                     for x in r.dirs]
        out.append(d)
    return out


TARGETS = (_capture, _tls, _smtp, _x509, _reasm)


def test_one_input(data: bytes) -> None:
    global _native_trace_cmp
    if atheris._trace_cmp is not _trace_cmp:  # atheris.Fuzz() installs its own on start
        _native_trace_cmp = atheris._trace_cmp
        atheris._trace_cmp = _trace_cmp  # instrumented code looks it up on every comparison
    if data:
        TARGETS[data[0] % len(TARGETS)](data[1:])


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
