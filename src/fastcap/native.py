"""The only importer of fastcap._native: picks the C walker or its pure-Python twin.

Both expose the same two calls, so the rest of fastcap never asks which one it has.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from .frames import FrameWindow
from .pcap import walk_pcap_py
from .pcapng import walk_pcapng_py
from .walkstatus import IfaceParams, WalkStatus

try:  # the C extension is optional: a machine without a compiler still gets correct results
    from . import _native  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - exercised on installs without a compiler
    _native = None

BACKENDS = ("native", "python")


class Walker(Protocol):
    name: str

    def bind(self, buf) -> object: ...

    def walk_pcap(self, bound, length, start, big_endian, nanos, snaplen, max_caplen,
                  win: FrameWindow, row0: int, next_frame: int) -> tuple[int, WalkStatus]: ...

    def walk_pcapng(self, bound, length, start, big_endian, ifaces: list[IfaceParams],
                    max_block: int, win: FrameWindow, row0: int,
                    next_frame: int) -> tuple[int, WalkStatus]: ...


def native_available() -> bool:
    return _native is not None


@dataclass
class PythonWalker:
    name: str = "python"

    def bind(self, buf):
        return buf

    def walk_pcap(self, bound, length, start, big_endian, nanos, snaplen, max_caplen, win,
                  row0, next_frame):
        return walk_pcap_py(bound, length, start, big_endian, nanos, snaplen, max_caplen, win,
                            row0, next_frame)

    def walk_pcapng(self, bound, length, start, big_endian, ifaces, max_block, win, row0,
                    next_frame):
        return walk_pcapng_py(bound, length, start, big_endian, ifaces, max_block, win, row0,
                              next_frame)


_LITTLE_HOST = memoryview(b"\x01\x00").cast("H")[0] == 1


class NativeWalker:
    name = "native"

    def __init__(self) -> None:
        self.ffi = _native.ffi
        self.lib = _native.lib

    def bind(self, buf):
        return self.ffi.from_buffer("uint8_t[]", buf)

    def _cols(self, win: FrameWindow, row0: int):
        ffi = self.ffi
        c = ffi.new("fc_cols *")
        c.offset = ffi.cast("int64_t *", win.offset.ctypes.data) + row0
        c.caplen = ffi.cast("uint32_t *", win.caplen.ctypes.data) + row0
        c.orig_len = ffi.cast("uint32_t *", win.orig_len.ctypes.data) + row0
        c.ts_ns = ffi.cast("int64_t *", win.ts_ns.ctypes.data) + row0
        c.iface = ffi.cast("uint32_t *", win.iface.ctypes.data) + row0
        c.frame_no = ffi.cast("int64_t *", win.frame_no.ctypes.data) + row0
        c.flags = ffi.cast("uint8_t *", win.flags.ctypes.data) + row0
        c.slab = ffi.cast("uint8_t *", win.slab.ctypes.data) + row0 * win.slab_width
        c.cap = win.cap - row0
        c.slab_width = win.slab_width
        return c

    def _status(self, next_frame: int):
        st = self.ffi.new("fc_status *")
        st.next_frame = next_frame
        return st

    @staticmethod
    def _result(n, st) -> tuple[int, WalkStatus]:
        return int(n), WalkStatus(st.code, st.offset, st.next_frame, st.detail)

    def walk_pcap(self, bound, length, start, big_endian, nanos, snaplen, max_caplen, win,
                  row0, next_frame):
        cols, st = self._cols(win, row0), self._status(next_frame)
        swapped = int(big_endian == _LITTLE_HOST)
        n = self.lib.fc_walk_pcap(bound, length, start, swapped, int(nanos), snaplen,
                                  max_caplen, cols, st)
        return self._result(n, st)

    def walk_pcapng(self, bound, length, start, big_endian, ifaces, max_block, win, row0,
                    next_frame):
        arr = self.ffi.new("fc_iface[]", max(1, len(ifaces)))
        for i, p in enumerate(ifaces):
            arr[i].snaplen = p.snaplen
            arr[i].tsres_pow2 = int(p.tsres_pow2)
            arr[i].tsres_exp = p.tsres_exp
            arr[i].tsoffset_s = p.tsoffset_s
            arr[i].global_index = p.global_index
        cols, st = self._cols(win, row0), self._status(next_frame)
        swapped = int(big_endian == _LITTLE_HOST)
        n = self.lib.fc_walk_pcapng(bound, length, start, swapped, arr, len(ifaces), max_block,
                                    cols, st)
        return self._result(n, st)


def get_walker(backend: str = "auto") -> Walker:
    """`auto` prefers C; `native` insists on it; `python` forces the fallback."""
    if backend not in ("auto", *BACKENDS):
        raise ValueError(f"unknown backend {backend!r}; use auto, native or python")
    if backend == "python" or (backend == "auto" and _native is None):
        return PythonWalker()
    if _native is None:
        raise ImportError("fastcap._native is not built: reinstall with a C compiler "
                          "(pip install .) or use backend='python'")
    return NativeWalker()


# --- TCP reassembler (csrc/reassembly.c; its pure-Python twin lives in reassembly.py) --------

_I64, _I32, _U32, _U16 = "int64_t *", "int32_t *", "uint32_t *", "uint16_t *"
_ROW_COLS = (  # fc_tcp_rows field, numpy dtype, cffi pointer type
    ("frame_no", "int64", _I64), ("ts_ns", "int64", _I64), ("flow", "int64", _I64),
    ("from_a", "uint8", "uint8_t *"), ("payload_file_off", "int64", _I64),
    ("seq", "uint32", _U32), ("ack", "uint32", _U32), ("flags", "uint16", _U16),
    ("window", "uint16", _U16), ("payload_len", "int32", _I32),
    ("payload_caplen", "int32", _I32))


class ReassemblerCore(Protocol):
    """What reassembly.Reassembler drives: feed FrameCols windows, get RawConn records."""

    name: str
    mem: int
    open: int

    def feed(self, cols) -> list: ...

    def finish(self) -> list: ...

    def feed_iter(self, cols) -> Iterator: ...

    def finish_iter(self) -> Iterator: ...

    def evict_before_iter(self, index: int) -> Iterator: ...

    def close(self) -> None: ...


class NativeReassemblerCore:
    """C reassembler state behind cffi; freed by close() or when collected."""

    name = "native"

    def __init__(self, buf, *, cap: int, budget: int, max_open: int, max_segments: int,
                 linger_ns: int) -> None:
        self.ffi, self.lib = _native.ffi, _native.lib
        if self.ffi.sizeof("fc_conn_info") != _CONN_INFO.size:
            raise ImportError("fastcap._native does not match this fastcap: reinstall it")
        self._buf = self.ffi.from_buffer("uint8_t[]", buf)
        ptr = self.lib.fc_reasm_new(cap, budget, max_open, max_segments, linger_ns)
        if ptr == self.ffi.NULL:
            raise MemoryError("fc_reasm_new failed (bad limits or out of memory)")
        self._r = self.ffi.gc(ptr, self.lib.fc_reasm_free)

    def rebind(self, buf) -> None:
        """Payload offsets of the next frames refer to `buf` (a stream's next piece)."""
        self._buf = self.ffi.from_buffer("uint8_t[]", buf)

    @property
    def mem(self) -> int:
        return int(self.lib.fc_reasm_mem(self._r))

    @property
    def open(self) -> int:
        return int(self.lib.fc_reasm_open(self._r))

    def close(self) -> None:
        if self._r is not None:
            self.ffi.release(self._r)  # runs fc_reasm_free now
            self._r = None
            self._buf = None

    def feed(self, cols) -> list:
        """`cols`: a reassembly.FrameCols window."""
        return list(self.feed_iter(cols))

    def feed_iter(self, cols) -> Iterator:
        """Like feed, one connection at a time (see _drain_done); exhaust it before the next
        call."""
        self._feed(cols)
        return self._drain_done()

    def _feed(self, cols) -> None:
        import numpy as np

        n = len(cols.frame_no)
        rows = self.ffi.new("fc_tcp_rows *")
        keep = []  # the contiguous copies must outlive the call
        for field, dtype, ctype in _ROW_COLS:
            col = getattr(cols, field)
            if field == "from_a":
                col = np.asarray(col, bool)
            a = np.ascontiguousarray(col).astype(dtype, copy=False)
            if len(a) != n:
                raise ValueError(f"column {field} has {len(a)} rows, expected {n}")
            keep.append(a)
            setattr(rows, field, self.ffi.cast(ctype, a.ctypes.data))
        k = self.lib.fc_reasm_feed(self._r, self._buf, len(self._buf), rows, n)
        if k < 0:
            raise MemoryError("fc_reasm_feed: out of memory")

    def finish(self) -> list:
        return list(self.finish_iter())

    def finish_iter(self) -> Iterator:
        if self.lib.fc_reasm_finish(self._r) < 0:
            raise MemoryError("fc_reasm_finish: out of memory")
        return self._drain_done()

    def evict_before_iter(self, index: int) -> Iterator:
        if self.lib.fc_reasm_evict_before(self._r, index) < 0:
            raise MemoryError("fc_reasm_evict_before: out of memory")
        return self._drain_done()

    def _drain_done(self) -> Iterator:
        """The done list in index order, each connection copied out and its C buffers freed
        before the next: 100k connections finishing at once are never held twice."""
        info = self.ffi.new("fc_conn_info *")
        raw_info = self.ffi.buffer(info)
        order = []
        while self.lib.fc_reasm_done_info(self._r, len(order), info) == 0:
            order.append(_CONN_INFO.unpack_from(raw_info)[0])
        for i in sorted(range(len(order)), key=order.__getitem__):
            (conn,) = self._take_done(only=i)
            self.lib.fc_reasm_done_release(self._r, i)
            yield conn
        self.lib.fc_reasm_done_clear(self._r)

    def _take_done(self, only: int | None = None) -> list:
        """Copy the done list (or only its item `only`) out of C; the whole list is then
        cleared, a single item is left for the caller to release."""
        import numpy as np

        from .reassembly import RawConn, RawDir

        ffi, lib, out = self.ffi, self.lib, []
        info = ffi.new("fc_conn_info *")
        raw_info = ffi.buffer(info)
        avail = ffi.new("int64_t *")
        i = 0 if only is None else only
        while lib.fc_reasm_done_info(self._r, i, info) == 0:
            v = _CONN_INFO.unpack_from(raw_info)  # one call instead of 34 field reads
            dirs = []
            for k in range(2):
                (n, seen, nseg, before, untraced, isn, syn_f, fin_f, rst_f, complete,
                 seg_sorted) = v[16 + 11 * k : 27 + 11 * k]
                ptr = lib.fc_reasm_done_data(self._r, i, k, avail)
                data = ffi.buffer(ptr, avail[0])[:] if avail[0] else b""
                if n > avail[0]:
                    data += bytes(n - avail[0])
                bits = None if complete else np.empty((n + 7) // 8, np.uint8)
                so, sl, sf = np.empty(nseg, np.int64), np.empty(nseg, np.int32), np.empty(
                    nseg, np.int64)
                # from_buffer is far cheaper than building numpy's .ctypes helper per array
                lib.fc_reasm_done_copy(
                    self._r, i, k,
                    ffi.NULL if bits is None else ffi.from_buffer("uint8_t[]", bits),
                    ffi.from_buffer("int64_t[]", so), ffi.from_buffer("int32_t[]", sl),
                    ffi.from_buffer("int64_t[]", sf))
                dirs.append(RawDir(
                    data=data, filled_bits=bits, seg_off=so, seg_len=sl, seg_frame=sf,
                    seen_bytes=seen, before_start=before, untraced=untraced,
                    isn=None if isn < 0 else isn, syn_frame=None if syn_f < 0 else syn_f,
                    fin_frame=None if fin_f < 0 else fin_f,
                    rst_frame=None if rst_f < 0 else rst_f, seg_sorted=bool(seg_sorted)))
            out.append(RawConn(
                index=v[0], flow=v[1], first_frame=v[2], last_frame=v[3], first_ts_ns=v[4],
                last_ts_ns=v[5], frames=v[6], retransmissions=v[7], conflicting_overlaps=v[8],
                keepalives=v[9], zero_window_probes=v[10], out_of_order=v[11],
                evicted=bool(v[12]), first_dir=v[13], syn_dir=v[14], synack_dir=v[15],
                dirs=(dirs[0], dirs[1])))
            if only is not None:
                return out
            i += 1
        lib.fc_reasm_done_clear(self._r)
        return out


# fc_conn_info as laid out in csrc/fastcap.h: 12 int64, 4 int32, then 2 x 11 int64.
_CONN_INFO = struct.Struct("=12q4i22q")


def get_reassembler_core(backend: str, buf, *, cap: int, budget: int, max_open: int,
                         max_segments: int, linger_ns: int) -> ReassemblerCore:
    """Reassembler core for `backend` (auto/native/python), like get_walker for the walk."""
    from .reassembly import PyReassemblerCore  # reassembly imports this module at load time

    if backend not in ("auto", *BACKENDS):
        raise ValueError(f"unknown backend {backend!r}; use auto, native or python")
    kw = dict(cap=cap, budget=budget, max_open=max_open, max_segments=max_segments,
              linger_ns=linger_ns)
    if backend == "python" or (backend == "auto" and _native is None):
        return PyReassemblerCore(buf, **kw)
    if _native is None:
        raise ImportError("fastcap._native is not built: reinstall with a C compiler "
                          "(pip install .) or use backend='python'")
    return NativeReassemblerCore(buf, **kw)
