"""Picks the C frame walker or its pure-Python twin.

Both expose the same two calls, so the rest of fastcap never asks which one it has.  The C
module itself is loaded by `_ffi`.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from typing import Any, Protocol

from .. import _ffi
from .frames import FrameWindow
from .pcap import walk_pcap_py
from .pcapng import walk_pcapng_py
from .walkstatus import IfaceParams, WalkStatus


class Walker(Protocol):
    name: str

    def bind(self, buf) -> object: ...

    def walk_pcap(self, bound, length, start, big_endian, rules, snaplen, max_caplen,
                  win: FrameWindow, row0: int, next_frame: int) -> tuple[int, WalkStatus]: ...

    def walk_pcapng(self, bound, length, start, big_endian, ifaces: list[IfaceParams],
                    max_block: int, win: FrameWindow, row0: int,
                    next_frame: int, quiet_max: int = 0, more: bool = False
                    ) -> tuple[int, WalkStatus]: ...

    def release(self, bound, lo: int, hi: int) -> None:
        """Let go of the mapped pages between `lo` and `hi` (rounded down to pages) that the
        walk has left behind: they leave the process's resident set, not the page cache, and
        unmapping the file at the end has that much less to do."""


@dataclass
class PythonWalker:
    name: str = "python"

    def bind(self, buf):
        return buf

    def walk_pcap(self, bound, length, start, big_endian, rules, snaplen, max_caplen, win,
                  row0, next_frame):
        return walk_pcap_py(bound, length, start, big_endian, rules, snaplen, max_caplen, win,
                            row0, next_frame)

    def walk_pcapng(self, bound, length, start, big_endian, ifaces, max_block, win, row0,
                    next_frame, quiet_max=0, more=False):
        return walk_pcapng_py(bound, length, start, big_endian, ifaces, max_block, win, row0,
                              next_frame, quiet_max, more)

    def release(self, bound, lo, hi):
        if isinstance(bound, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
            lo, hi = lo - lo % mmap.PAGESIZE, hi - hi % mmap.PAGESIZE
            if 0 <= lo < hi:
                bound.madvise(mmap.MADV_DONTNEED, lo, hi - lo)


_LITTLE_HOST = memoryview(b"\x01\x00").cast("H")[0] == 1


class NativeWalker:
    name = "native"

    def __init__(self) -> None:
        self.ffi = _ffi.ffi
        self.lib = _ffi.lib
        # The C interface table of the last walk and which interfaces it holds (first, last,
        # count): it grows as interface blocks come, never rebuilt whole per block.
        self._table = None
        self._held: tuple = (None, None, 0)

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
        quiet = tuple((int(st.quiet_type[i]), int(st.quiet_count[i])) for i in range(st.n_quiet))
        return int(n), WalkStatus(st.code, st.offset, st.next_frame, st.detail, quiet)

    def walk_pcap(self, bound, length, start, big_endian, rules, snaplen, max_caplen, win,
                  row0, next_frame):
        cols, st = self._cols(win, row0), self._status(next_frame)
        swapped = int(big_endian == _LITTLE_HOST)
        n = self.lib.fc_walk_pcap(bound, length, start, swapped, int(rules), snaplen,
                                  max_caplen, cols, st)
        return self._result(n, st)

    def walk_pcapng(self, bound, length, start, big_endian, ifaces, max_block, win, row0,
                    next_frame, quiet_max=0, more=False):
        arr = self._iface_table(ifaces)
        cols, st = self._cols(win, row0), self._status(next_frame)
        st.quiet_max = quiet_max
        st.more = int(more)
        swapped = int(big_endian == _LITTLE_HOST)
        n = self.lib.fc_walk_pcapng(bound, length, start, swapped, arr, len(ifaces), max_block,
                                    cols, st)
        return self._result(n, st)

    def _iface_table(self, ifaces: list) -> Any:
        """The C table of `ifaces`.  A section may describe thousands of interfaces, each
        between packet blocks, and the walk is called again after each: building the whole
        table per call was quadratic (a 1 MB file of interface blocks took 14 minutes).  The
        table grows by the interfaces added since the last call (a section only appends);
        any other list gets a new table, so an entry a walk may be reading is never
        rewritten."""
        first, last, k = self._held
        n = len(ifaces)
        same = 0 < k <= n and ifaces[0] is first and ifaces[k - 1] is last
        arr = self._table
        if not same:
            k = 0
        if not same or len(arr) < n:
            grown = self.ffi.new("fc_iface[]", max(4, 2 * n))
            if k:
                self.ffi.memmove(grown, arr, k * self.ffi.sizeof("fc_iface"))
            arr = self._table = grown
        for i in range(k, n):
            p = ifaces[i]
            arr[i].snaplen = p.snaplen
            arr[i].tsres_pow2 = int(p.tsres_pow2)
            arr[i].tsres_exp = p.tsres_exp
            arr[i].tsoffset_s = p.tsoffset_s
            arr[i].global_index = p.global_index
        self._held = (ifaces[0], ifaces[-1], n) if n else (None, None, 0)
        return arr

    def release(self, bound, lo, hi):
        self.lib.fc_release(bound, lo, hi)


def get_walker(backend: str = "auto") -> Walker:
    """`auto` prefers C; `native` insists on it; `python` forces the fallback."""
    return NativeWalker() if _ffi.use_native(backend) else PythonWalker()

