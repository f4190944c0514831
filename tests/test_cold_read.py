"""How a capture not in the page cache comes off the disk: each window is read in file order
before it is walked (``fc_read_in_order``), since the walk's interleaved chains would fault at
16 places of it; and the mapping asks for 2 MiB folios, since a walk beginning mid-file would
otherwise be read as random pages.  Either way the disk would serve many small reads."""

from __future__ import annotations

import ctypes
import mmap
import os
from pathlib import Path

import numpy as np
import pytest

from fastcap import Capture

from .test_read_ahead import _big_pcap as _capture  # ~15 MB at 12,000 frames
from .test_read_ahead import _smaps

PAGE = mmap.PAGESIZE
_libc = ctypes.CDLL(None, use_errno=True)


def _resident(mm: mmap.mmap) -> np.ndarray:
    """Which pages of the mapping are in the page cache (mincore(2)), one bool per page."""
    view = np.frombuffer(mm, dtype=np.uint8)
    try:
        vec = (ctypes.c_ubyte * ((len(mm) + PAGE - 1) // PAGE))()
        if _libc.mincore(ctypes.c_void_p(view.ctypes.data), ctypes.c_size_t(len(mm)), vec):
            pytest.skip(f"mincore failed: errno {ctypes.get_errno()}")
        return np.frombuffer(vec, dtype=np.uint8) & 1 == 1
    finally:
        del view


def _evict(path: Path) -> None:
    """Out of the page cache, or skip where the filesystem keeps its pages (tmpfs)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mm:
            if _resident(mm).mean() > 0.5:
                pytest.skip(f"{path.parent}'s filesystem keeps the file's pages in memory")
    finally:
        os.close(fd)


def test_a_cold_mapping_is_read_whole_and_in_order(tmp_path, require_native):
    from fastcap import _ffi

    path = _capture(tmp_path, 12_000)
    _evict(path)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        buf = _ffi.ffi.from_buffer("uint8_t[]", mm)
        lo, hi = 3 * PAGE + 5, len(mm) - 7
        assert _ffi.lib.fc_read_in_order(buf, lo, hi) == 1
        resident = _resident(mm)
        assert resident[lo // PAGE : (hi - 1) // PAGE + 1].all()
        assert _ffi.lib.fc_read_in_order(buf, lo, hi) == 0  # now resident: nothing to do
        del buf


def test_memory_of_this_process_is_never_touched_as_a_file(require_native):
    from fastcap import _ffi

    data = bytearray(os.urandom(64 * PAGE))
    before = bytes(data)
    buf = _ffi.ffi.from_buffer("uint8_t[]", data)
    assert _ffi.lib.fc_read_in_order(buf, 0, len(data)) == 0  # resident: the heap's pages
    assert _ffi.lib.fc_read_in_order(buf, 10, 10 + PAGE) == 0  # under two pages: never worth it
    assert bytes(data) == before


@pytest.mark.parametrize("ahead", [True, False])
def test_the_walk_reads_a_cold_window_in_order_and_a_warm_one_as_it_is(
        tmp_path, require_native, monkeypatch, ahead):
    """The first window of an evicted capture is read in order first, a second walk of the
    same file (now cached) never is, and both walks give the Python walker's frames."""
    from fastcap.read import walker

    seen: list[int] = []
    result = walker.NativeWalker._result

    def watch(n, st):
        seen.append(int(st.in_order))
        return result(n, st)

    monkeypatch.setattr(walker.NativeWalker, "_result", staticmethod(watch))
    path = _capture(tmp_path, 12_000)

    def offsets(backend: str) -> list[int]:
        with Capture(path, backend=backend, window=10_000) as cap:
            cap.read_ahead = ahead
            return [int(o) for w in cap.windows() for o in w.offset[: len(w)]]

    _evict(path)
    cold = offsets("native")
    assert seen and seen[0] == 1, seen
    seen.clear()
    warm = offsets("native")
    assert seen and not any(seen), seen
    assert cold == warm == offsets("python")
    assert len(cold) == 12_000


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs /proc/self/smaps")
def test_the_mapping_asks_for_sequential_reads_in_huge_folios(tmp_path):
    """MADV_SEQUENTIAL ("sr") and, where the kernel has transparent huge pages, MADV_HUGEPAGE
    ("hg"): with it a walk starting mid-file (a -j N range) reads the disk in 2 MiB folios."""
    path = _capture(tmp_path, 100)
    with Capture(path) as cap:
        assert cap.meta.format == "pcap"
        flags = set(_smaps(path, "VmFlags:"))
    assert "sr" in flags, flags
    if not Path("/sys/kernel/mm/transparent_hugepage/enabled").exists():
        pytest.skip("this kernel has no transparent huge pages")
    assert "hg" in flags, flags
