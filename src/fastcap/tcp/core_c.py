"""The C TCP reassembler core (csrc/reassembly.c) behind cffi, and the protocol both cores
follow; its pure-Python twin, PyReassemblerCore, lives in reassembly.py, which picks one."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from operator import itemgetter
from typing import Protocol

import numpy as np  # loaded with .raw, whose records hold arrays

from .. import _ffi
from .raw import RawConn, RawDir

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
    late: int
    beyond: int

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
        self.ffi, self.lib = _ffi.ffi, _ffi.lib
        self._buf = self.ffi.from_buffer("uint8_t[]", buf)
        ptr = self.lib.fc_reasm_new(cap, budget, max_open, max_segments, linger_ns)
        if ptr == self.ffi.NULL:
            raise MemoryError("fc_reasm_new failed (bad limits or out of memory)")
        self._r = self.ffi.gc(ptr, self.lib.fc_reasm_free)
        self._info_bufs: tuple | None = None  # _copy_done's fc_conn_info, made once

    def rebind(self, buf) -> None:
        """Payload offsets of the next frames refer to `buf` (a stream's next piece)."""
        self._buf = self.ffi.from_buffer("uint8_t[]", buf)

    @property
    def mem(self) -> int:
        return int(self.lib.fc_reasm_mem(self._r))

    @property
    def open(self) -> int:
        return int(self.lib.fc_reasm_open(self._r))

    @property
    def late(self) -> int:
        return int(self.lib.fc_reasm_late(self._r))

    @property
    def beyond(self) -> int:
        return int(self.lib.fc_reasm_beyond(self._r))

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
        order = []
        done_info, r = self.lib.fc_reasm_done_info, self._r
        while done_info(r, len(order), info) == 0:
            order.append(info.index)  # the one field needed here: no unpack of all of them
        for i in sorted(range(len(order)), key=order.__getitem__):
            conn = self._copy_done(i)
            self.lib.fc_reasm_done_release(self._r, i)
            yield conn
        self.lib.fc_reasm_done_clear(self._r)

    def _copy_done(self, i: int) -> RawConn:
        """Copy item `i` of the done list out of C; the caller releases it.

        The segment maps of both directions share two arrays (offsets and frames in one
        int64 array, lengths in one int32 array), each direction's a view of them: one
        allocation and one cffi pointer per type instead of one per map, as this runs once
        per connection."""
        ffi, lib, r = self.ffi, self.lib, self._r
        bufs = self._info_bufs
        if bufs is None:
            info = ffi.new("fc_conn_info *")
            bufs = self._info_bufs = (info, ffi.buffer(info), ffi.new("int64_t *"))
        info, raw_info, avail = bufs
        if lib.fc_reasm_done_info(r, i, info) != 0:
            raise IndexError(f"no connection {i} in the done list")
        v = _CONN_INFO.unpack_from(raw_info)  # one call instead of 38 field reads
        d0, d1 = _DIR_VALUES[0](v), _DIR_VALUES[1](v)
        n0, n1 = d0[2], d1[2]
        wide, narrow = np.empty(2 * (n0 + n1), np.int64), np.empty(n0 + n1, np.int32)
        # from_buffer is far cheaper than building numpy's .ctypes helper per array
        p64, p32 = ffi.from_buffer("int64_t[]", wide), ffi.from_buffer("int32_t[]", narrow)
        maps = ((0, n0, 0), (2 * n0, n1, n0))  # (start in wide, segments, start in narrow)
        dirs = []
        for k, (n, seen, nseg, before, untraced, isn, syn_f, fin_f, rst_f, complete,
                seg_sorted, first_syn) in enumerate((d0, d1)):
            ptr = lib.fc_reasm_done_data(r, i, k, avail)
            got = avail[0]
            data = ffi.buffer(ptr, got)[:] if got else b""
            if n > got:
                data += bytes(n - got)
            bits = None if complete else np.empty((n + 7) // 8, np.uint8)
            at, _, at32 = maps[k]
            lib.fc_reasm_done_copy(
                r, i, k, ffi.NULL if bits is None else ffi.from_buffer("uint8_t[]", bits),
                p64 + at, p32 + at32, p64 + at + nseg)
            dirs.append(RawDir(  # positional, in declaration order
                data, bits, wide[at : at + nseg], narrow[at32 : at32 + nseg],
                wide[at + nseg : at + 2 * nseg], seen, before, untraced,
                None if isn < 0 else isn, None if syn_f < 0 else syn_f,
                None if fin_f < 0 else fin_f, None if rst_f < 0 else rst_f,
                bool(seg_sorted), first_syn))
        conn = RawConn(*_CONN_VALUES(v), dirs=(dirs[0], dirs[1]))
        conn.evicted = bool(conn.evicted)
        return conn


# Where each value sits in the tuple one unpack of fc_conn_info gives (layout from fastcap.h),
# looked up by C field name once, so _copy_done pays one itemgetter call per record.
_CONN_INFO = _ffi.CONN_INFO
_AT = {name: i for i, name in enumerate(_ffi.CONN_INFO_FIELDS)}
# RawConn's fields but `dirs` carry fc_conn_info's names, in RawConn's order
_CONN_VALUES = itemgetter(*(_AT[f.name] for f in fields(RawConn) if f.name != "dirs"))
# fc_dir_info fields in the order _copy_done unpacks them, for dir[0] and dir[1]
_DIR_READ = ("data_len", "seen_bytes", "n_segs", "before_start", "untraced", "isn", "syn_frame",
             "fin_frame", "rst_frame", "complete", "seg_sorted", "first_syn")
_DIR_VALUES = tuple(itemgetter(*(_AT[f"dir[{k}].{name}"] for name in _DIR_READ))
                    for k in range(2))
