"""Open a capture read-only, memory-map it, detect its format by magic and walk it in windows.

This is the only place that knows where a file's records are; everything after it sees
FrameWindow columns.  Non-packet pcapng blocks (sections, interfaces, secrets, custom blocks)
are handled here in Python: they are rare, and keeping their state in one place lets the C
walker stay a tight loop over packet records.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, replace
from functools import partial
from typing import Any

import numpy as np

from ..errors import CaptureError, CaptureWarning
from . import pcap, pcapng, resync
from .ahead import Slot
from .counts import NONE, Counts
from .frames import FrameWindow, record_ends
from .guard import MappingGuard, cut_message, file_identity, gone_warning
from .walker import Walker, get_walker
from .walkstatus import (
    BAD_IFACE,
    BLOCK,
    CORRUPT,
    END,
    FULL,
    MAX_BLOCK,
    MAX_CAPLEN,
    TRUNCATED,
    WalkStatus,
)

DEFAULT_WINDOW = 1 << 17
DEFAULT_SLAB = 80  # Ethernet + 802.1Q + IPv6 + TCP up to its data offset; rarer rows re-read
_HEAD_ROOM = 64  # more than any record or block header before a packet's first byte
_RELEASE_MIN = 4 << 20  # let go of left-behind pages in steps of at least this many bytes
_YEAR_S = 366 * 86400  # a resynchronised pcap record lies within this of the last good one
_GZIP, _ZSTD, _LZ4 = b"\x1f\x8b", b"\x28\xb5\x2f\xfd", b"\x04\x22\x4d\x18"
KEYS_DROPPED = (f"secrets blocks hold over {pcapng.MAX_KEY_LOG_KEPT >> 20} MiB of TLS key log: "
                 "this block and later ones are not used (give the keys with --keylog)")
_PARSED_BLOCKS = (0x00000001, 0x0000000A)  # interface description, decryption secrets
# pcapng blocks that Wireshark shows as frames of their own, without packet data.
_FRAME_LIKE_BLOCKS = {0x00000BAD: "custom", 0x40000BAD: "custom", 0x00000009: "systemd journal"}


@dataclass(frozen=True)
class CaptureMeta:
    """What the file's own headers say and what its walk met: a snapshot (`Capture.meta`),
    frozen, so that what a caller holds never changes under it.  The walk fills a tally of
    its own; a stage that adds to it tells the reader (`Capture.tell`), and one that adds to
    a snapshot once the reader is gone makes a changed copy (`told`, `dataclasses.replace`)."""

    path: str
    size: int
    format: str  # "pcap" | "pcapng"
    byte_orders: tuple[str, ...] = ()  # "little"/"big", one per section
    nanosecond: bool = False  # pcap only
    version: tuple[int, int] = (0, 0)
    snaplen: int = 0  # pcap only
    interfaces: tuple[pcapng.Interface, ...] = ()
    sections: int = 0
    block_counts: Counts = NONE
    other_records: Counts = NONE  # frame-numbered, no packet data
    secrets: tuple[pcapng.SecretsBlock, ...] = ()
    warnings: tuple[CaptureWarning, ...] = ()
    skipped: Counts = NONE  # reason -> frames/blocks not indexed
    unreadable: tuple[tuple[int, int], ...] = ()  # [start, end) skipped
    compression: str | None = None  # gzip | zstd | lz4 when read through a decompressor
    # `guard.file_identity` of the mapped file read: a file mapped again to read payloads
    # must be this one, not another put under its name since (`guard.map_again`)
    identity: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        for name in ("byte_orders", "interfaces", "secrets", "warnings"):  # given as lists
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for name in ("block_counts", "other_records", "skipped"):  # or as Counters
            if not isinstance(getattr(self, name), Counts):
                object.__setattr__(self, name, Counts(getattr(self, name)))
        object.__setattr__(self, "unreadable", tuple(tuple(r) for r in self.unreadable))

    def told(self, *warnings: CaptureWarning) -> CaptureMeta:
        """This metadata with `warnings` told after its own (a later stage's findings)."""
        return replace(self, warnings=self.warnings + warnings) if warnings else self


@dataclass
class _Tally:
    """What a walk fills as it meets sections, interfaces and damage: the reader's own,
    never handed out; `Capture.meta` hands back a frozen snapshot of it."""

    path: str
    size: int
    format: str
    byte_orders: list[str] = field(default_factory=list)
    nanosecond: bool = False
    version: tuple[int, int] = (0, 0)
    snaplen: int = 0
    interfaces: list[pcapng.Interface] = field(default_factory=list)
    sections: int = 0
    block_counts: Counter = field(default_factory=Counter)
    other_records: Counter = field(default_factory=Counter)
    secrets: list[pcapng.SecretsBlock] = field(default_factory=list)
    warnings: list[CaptureWarning] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    unreadable: list[tuple[int, int]] = field(default_factory=list)
    compression: str | None = None
    identity: tuple[int, int] | None = None

    def snapshot(self) -> CaptureMeta:
        """The tally as it stands, frozen (copied: the walk goes on filling the tally)."""
        return CaptureMeta(**{f.name: getattr(self, f.name) for f in fields(self)})


def _guide_s(win: FrameWindow, a: int, n: int, before: tuple[int | None, int | None]
             ) -> tuple[tuple[int | None, int | None], int]:
    """Seconds of the last two records that carried a packet, up to row `n` of the window
    (`before`: those up to row `a`), and how many rows a..n carried one (at least; two or
    more is all a walk needs to know): what a resync checks record times against (`_guide`).
    A record of length 0 (all its header zeros, as a hole of zeros in the file reads) is a
    frame, as Wireshark counts it, but no guide: a guide of 1970 made the resync refuse every
    real record after such a hole, or settle 4 bytes off a record, where the microseconds
    field passes for seconds of January 1970.  Nor is a record stamped exactly 1970-01-01
    00:00:00, or one with no bytes captured: where a hole of zeros ends inside a header, that
    header is zeros but for its wire length."""
    for lo in (max(a, n - 64), a):  # the usual case: the last rows carry packets
        ts = win.ts_ns[lo:n]
        carried = np.flatnonzero((win.caplen[lo:n] != 0) & (ts != 0))
        if len(carried) >= 2 or lo == a:
            break
    if not len(carried):
        return before, 0
    secs = (ts[carried[-2:]] // 1_000_000_000).tolist()
    return ((secs[-1], secs[0]) if len(secs) == 2 else (secs[0], before[0])), len(carried)


def _same_rules(a: pcap.PcapHeader, b: pcap.PcapHeader | None) -> bool:
    """Whether a walk reads the records after header `a` as after `b`."""
    return b is not None and (a.big_endian, a.rules, a.snaplen) == (
        b.big_endian, b.rules, b.snaplen)


def _guide(last: tuple[int | None, int | None]) -> int | None:
    """The time guide for a resync from the last two records that carried a packet: the
    last, unless over a year lies between them.  A hole that ends inside a header leaves one
    garbage record before the damage the walk stops at, stamped with whatever bytes follow
    the hole (1980, say): guided by it, the resync refused every real record after it."""
    ref_s, prev_s = last
    if ref_s is None or prev_s is None or abs(ref_s - prev_s) <= _YEAR_S:
        return ref_s
    return prev_s


class _CutShort(Exception):
    """Raised through a walk when the mapping guard found pages gone past `offset`."""

    def __init__(self, offset: int) -> None:
        super().__init__(offset)
        self.offset = offset


@dataclass(frozen=True)
class WalkState:
    """Where a walk stands between two records: all a walk needs to start mid-file and read
    on exactly as a walk from the file's start would (see `Capture.windows`).  Frozen: the
    end of one walk is the start of the next range's or piece's, in this process or another."""

    offset: int
    frame: int  # number the next frame gets
    ref_s: int | None = None  # pcap: seconds of the last record with a packet (resync guide)
    prev_s: int | None = None  # ... and of the one before it (see `_guide`)
    header: pcap.PcapHeader | None = None  # pcap: another capture's, when its rules apply
    section: pcapng.Section | None = None  # pcapng: the section being read ...
    params: tuple = ()  # ... its interfaces' walk parameters ...
    interfaces: tuple[pcapng.Interface, ...] = ()  # ... and all so far

    def moved(self, offset: int, frame: int) -> WalkState:
        """This state at another offset and frame number: how a walk begins where another
        left off (the next range, the next piece of a stream)."""
        return replace(self, offset=offset, frame=frame)

    def key(self) -> tuple:
        """What must agree for two walks to read on identically (not the frame number, which
        a split walk counts from its own start)."""
        sec = self.section
        return (self.offset, None if sec is None else (sec.index, sec.big_endian),
                self.params, len(self.interfaces), self.header)


def _cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _open_mapping(path: str) -> tuple[mmap.mmap | bytes, int, tuple[int, int]]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise CaptureError(path, "no such file") from None
    except PermissionError:
        raise CaptureError(path, "permission denied") from None
    except OSError as e:
        raise CaptureError(path, f"cannot open: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise CaptureError(path, "is a directory, not a capture file")
    if not stat.S_ISREG(st.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "not a regular file"
        raise CaptureError(path, f"is {kind}, which cannot be mapped: open it with "
                                 f"fastcap.read.stream.open_capture")
    if st.st_size == 0:
        raise CaptureError(path, "empty file (0 bytes), not a capture")
    try:
        fd = os.open(path, os.O_RDONLY)
    except PermissionError:
        raise CaptureError(path, "permission denied") from None
    except OSError as e:
        raise CaptureError(path, f"cannot open: {e.strerror}") from None
    try:
        ident = file_identity(os.fstat(fd), fd)
        # Length 0 maps the file as long as it is then: a length taken from a stat before
        # is refused (ValueError) once another program has cut the file short since (a
        # `-j N` worker opening a range of a file cut while the scan runs).
        try:
            mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        except ValueError:  # cut to nothing since the stat above
            raise CaptureError(path, "empty file (0 bytes), not a capture") from None
        size = len(mm)
    finally:
        os.close(fd)
    if hasattr(mm, "madvise") and hasattr(mmap, "MADV_SEQUENTIAL"):
        mm.madvise(mmap.MADV_SEQUENTIAL)
    _hugepage(mm)
    return mm, size, ident


def _hugepage(mm: mmap.mmap) -> None:
    """Ask for the file's pages in 2 MiB folios (MADV_HUGEPAGE).  A fault on a page not yet
    read then reads its whole aligned 2 MiB, and the next, from anywhere in the file: without
    it a walk that begins mid-file (a `-j N` range) is taken for random reads and the disk
    serves it in requests of under 1 MB, with it in 4 MB ones.  Where the kernel has no such
    folios for files the advice is refused or ignored, and nothing changes."""
    if hasattr(mm, "madvise") and hasattr(mmap, "MADV_HUGEPAGE"):
        try:
            mm.madvise(mmap.MADV_HUGEPAGE)
        except OSError:
            pass


def sniff_format(path: str, head: bytes) -> str:
    """'pcap' or 'pcapng' from the magic number; CaptureError for anything else."""
    if len(head) >= 4 and head[:4] == b"\x0a\x0d\x0d\x0a":
        return "pcapng"
    if pcap.parse_header(head[:4] + bytes(pcap.MAX_HEADER_LEN - 4)) is not None:
        return "pcap"
    magic = head[:4].hex() if head else ""
    if head[:2] == _GZIP or head[:4] in (_ZSTD, _LZ4):
        raise CaptureError(path, f"is compressed (magic 0x{magic}), which cannot be mapped: "
                                 f"open it with fastcap.read.stream.open_capture")
    for sign, kind in _OTHER_PACKINGS:
        if head.startswith(sign):
            raise CaptureError(path, f"{kind}, which fastcap does not unpack (it reads gzip, "
                                     f"zstd and lz4): unpack it first (magic 0x{magic})")
    raise CaptureError(path, f"not a pcap or pcapng file (magic 0x{magic})")


# Compressions and archives a capture is often sent in, named so the error says what to do.
_OTHER_PACKINGS = ((b"BZh", "a bzip2 file"), (b"\xfd7zXZ\x00", "an xz file"),
                   (b"PK\x03\x04", "a zip archive"), (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
                   (b"\x1f\x9d", "a compress (.Z) file"))


class Capture:
    """A capture file opened for one pass.  Use as a context manager; iterate `windows()`.

    Windows are reused between iterations to keep memory flat: copy what you keep.
    """

    def __init__(self, path: str | bytes | os.PathLike, *, backend: str = "auto",
                 window: int = DEFAULT_WINDOW, slab_width: int = DEFAULT_SLAB,
                 max_caplen: int = MAX_CAPLEN) -> None:
        self.path = os.fsdecode(path)
        mm, size, identity = _open_mapping(self.path)
        self._setup(mm, size, sniff_format(self.path, bytes(mm[:64])), backend, window,
                    slab_width, max_caplen)
        self._guard = MappingGuard(mm, size, self.path, identity)
        self._tally.identity = identity

    def _setup(self, buf, size: int, fmt: str, backend: str, window: int, slab_width: int,
               max_caplen: int, base: int = 0, more: bool = False,
               header: pcap.PcapHeader | None = None) -> None:
        self.walker: Walker = get_walker(backend)
        self.window = max(1, int(window))
        self.slab_width = max(16, int(slab_width))
        self.max_caplen = max_caplen
        self._mm = buf
        self._mapped = isinstance(buf, mmap.mmap)  # the file itself, not a piece in memory
        self._guard: MappingGuard | None = None  # a file's own mapping has one (__init__)
        self._walking = False
        self._before_cut: tuple | None = None  # the counts when a cut was first met
        self._cut_told = False
        self._tally = _Tally(self.path, size, fmt)
        # Held while the tally changes (a step of a walk, `tell`, a cut) and while `meta`
        # copies it: a thread asking for `meta` while another walks gets the tally as a
        # window left it, not one half updated.  Re-entrant: a walk's step tells a cut.
        self._lock = threading.RLock()
        self._changes = 0  # counts the tally's changes: a snapshot built at another is stale
        self._snap: tuple[int, CaptureMeta] | None = None
        self._bound = self.walker.bind(self._mm)
        self._np: np.ndarray | None = None
        self._base = base  # file offset of buffer byte 0 (offsets in reports are the file's)
        self._more = more  # the file goes on past the buffer: a record cut at its end waits
        # Reading stopped for good where the walk ended, whatever follows (a capture of
        # another link type appended): a stream reads no further piece.
        self.stopped = False
        self._kept_keys = 0  # key log bytes kept from secrets blocks (MAX_KEY_LOG_KEPT)
        self._once: dict[str, int] = {}  # a warning told once (_ONCE): where it is in the list
        self.pcap_header = header
        self.frames: FrameWindow | None = None  # a window to fill; one of its own if None
        self.frames_done = 0
        self.bytes_done = 0  # file offset reached, for progress reports
        # Walk the next window on a thread while this one is worked on (`ahead`) when there
        # is a core to spare; a caller whose other cores are busy (a reading worker of -j N)
        # turns it off.
        self.read_ahead = _cores() > 1
        self._walks: set[Slot] = set()  # the walk ahead of each walk under way
        self._begun: tuple | None = None  # (start, stop, slot, walk) of walk_first_ahead
        self._released = 0  # mapped bytes before this offset have been let go (_behind)

    @classmethod
    def over(cls, buf, *, name: str, fmt: str, base: int = 0, more: bool = False,
             header: pcap.PcapHeader | None = None, backend: str = "auto",
             window: int = DEFAULT_WINDOW, slab_width: int = DEFAULT_SLAB,
             max_caplen: int = MAX_CAPLEN) -> Capture:
        """A capture held in memory: one piece of a stream that starts at file offset `base`.
        With `more`, a record cut off by the buffer's end ends the walk quietly (the next
        piece re-reads it), and resynchronisation never settles on the buffer's end."""
        self = cls.__new__(cls)
        self.path = name
        self._setup(buf, len(buf), fmt, backend, window, slab_width, max_caplen, base, more,
                    header)
        return self

    @property
    def buffer(self):
        """The read-only mapping (for payload reads by later stages)."""
        return self._mm

    @property
    def buffer_base(self) -> int:
        """The file offset of `buffer`'s first byte, which windows' offsets count from: 0 for
        a mapped file, the piece's start for a piece of a stream (`over`)."""
        return self._base

    @property
    def meta(self) -> CaptureMeta:
        """What the file's headers say and the walk has met so far, frozen: built when asked
        and kept until the walk goes on or a stage tells more (`tell`)."""
        with self._lock:
            changes, snap = self._changes, self._snap
            if snap is None or snap[0] != changes:
                snap = self._snap = (changes, self._tally.snapshot())
            return snap[1]

    @property
    def format(self) -> str:
        """'pcap' or 'pcapng', from the magic number."""
        return self._tally.format

    @property
    def interfaces(self) -> tuple[pcapng.Interface, ...]:
        """The interfaces met so far: what a reader of each window needs of the metadata,
        without a snapshot of all of it."""
        return tuple(self._tally.interfaces)

    def tell(self, *warnings: CaptureWarning, skipped: str | None = None) -> None:
        """Add what a later stage found to what the walk met: `warnings` after the walk's,
        and one more frame or block not read for reason `skipped`.  Snapshots handed out
        before stay as they were."""
        with self._lock:
            self._tally.warnings += warnings
            if skipped is not None:
                self._tally.skipped[skipped] += 1
            self._changes += 1

    def meta_so_far(self) -> CaptureMeta:
        """What the walk has met up to now (`meta`: a file's fills as it goes), for a reader
        that stops early."""
        return self.meta

    def secrets_since(self, n: int) -> list[pcapng.SecretsBlock]:
        """The Decryption Secrets Blocks the walk has met so far, in file order, after the
        first `n` (those taken already)."""
        return self._tally.secrets[n:]

    @property
    def progress_size(self) -> int:
        return self._tally.size

    @property
    def progress_done(self) -> int:
        return self.bytes_done

    def close(self) -> None:
        begun, self._begun = self._begun, None
        if begun is not None:  # first: its thread may start the walk ahead of its walk
            begun[2].settle()
        for slot in list(self._walks):  # a walk ahead must be done before the map goes
            slot.settle()
        self._bound = self._np = None
        if self._guard is not None:  # before the unmap: the addresses may be reused
            self._guard.close()
        if isinstance(self._mm, mmap.mmap):
            try:
                self._mm.close()
            except BufferError:  # numpy views still alive; the GC unmaps it later
                pass

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _warn(self, offset: int, kind: str, message: str) -> None:
        if self._walking and self._guard is not None and self._guard.cut_at() is not None:
            # Damage met after a cut is the cut's (a record reaching past it, or zeros): not
            # told, and what the walk counts from here is undone when the cut is (cut_short).
            if self._before_cut is None:
                m = self._tally
                self._before_cut = (Counter(m.skipped), len(m.unreadable), len(m.warnings))
            return
        self._tally.warnings.append(CaptureWarning(self.path, self._base + offset, kind, message))

    def windows(self, start: WalkState | None = None, stop: int | None = None
                ) -> Iterator[FrameWindow]:
        """Frame windows in file order.  `start` (a state from a split plan) begins mid-file;
        `stop` ends before the first record that starts at or after it.  The record that
        straddles `stop` is read whole: a split walk's ranges then join without gap or
        overlap.  `end_state` tells where the walk stopped; `start_used` whether a resync
        relied on `start`'s guide values (before two records with a packet were read)."""
        begun, self._begun = self._begun, None
        if begun is not None:
            b_start, b_stop, slot, walk = begun
            if b_start is start and b_stop == stop:
                return self._gone_on(slot, walk)
            slot.settle()  # begun with other bounds: not this walk
            self._walks.discard(slot)
            walk.close()
        return self._windows(start, stop)

    def walk_first_ahead(self, start: WalkState | None = None, stop: int | None = None
                         ) -> None:
        """Begin `windows(start, stop)` now, its first window walked on a thread of its own,
        so that the caller's work until it asks for the windows (judging the file before
        this one) overlaps the walk; the next `windows` call with these bounds goes on from
        it.  Where the walk may not go ahead (see `read_ahead`), nothing is begun."""
        if not self._reads_ahead():
            return
        walk, slot = self._windows(start, stop), Slot()
        self._walks.add(slot)  # close() waits for it
        slot.start(next, walk, None)
        self._begun = (start, stop, slot, walk)

    def _gone_on(self, slot: Slot, walk: Iterator[FrameWindow]) -> Iterator[FrameWindow]:
        try:
            first = slot.result()
        finally:
            self._walks.discard(slot)
        try:
            if first is not None:
                yield first
                yield from walk
        finally:  # left after its first window: the walk ahead of the second ends too
            walk.close()

    def _windows(self, start: WalkState | None, stop: int | None) -> Iterator[FrameWindow]:
        walk = self._walk(start, stop)
        try:
            while True:  # each step under the lock, each window handed out without it
                with self._lock:
                    win = next(walk, None)
                if win is None:
                    return
                yield win
        finally:  # the tally changed since the last window: warnings at the end, a cut
            with self._lock:
                walk.close()
                self._changes += 1

    def _walk(self, start: WalkState | None, stop: int | None) -> Iterator[FrameWindow]:
        if self.frames is not None:
            win, spare = self.frames, self._spare(self.frames)
        elif self._reads_ahead():
            win, spare = FrameWindow.allocate_many(2, self.window, self.slab_width)
        else:
            win, spare = FrameWindow.allocate(self.window, self.slab_width), None
        whole = start is None and stop is None and self._mapped
        self._stop = self._tally.size if stop is None else max(0, min(stop, self._tally.size))
        self.start_used = False
        slot = Slot()
        self._walks.add(slot)
        self._walking = True
        try:
            if self._tally.format == "pcap":
                yield from self._walk_pcap(win, spare, start, slot)
            else:
                yield from self._walk_pcapng(win, spare, start, slot)
        except _CutShort as cut:
            self.cut_short(cut.offset)
            return
        finally:  # a walk ahead still writing must be done before its buffer or map goes
            self._walking = False
            slot.settle()
            self._walks.discard(slot)
        cut_at = self._guard.cut_at() if self._guard is not None else None
        if cut_at is not None and cut_at < self._stop:  # met in the walk's last steps
            self.cut_short(cut_at)
        elif whole:
            self._note_growth()

    def cut_at(self) -> int | None:
        """Where the file now ends, if another program cut it short since it was mapped
        (None: it was not, or this is no mapped file).  A reader of payloads asks before it
        reads them: past that offset the mapping reads as zeros."""
        return self._guard.cut_at() if self._guard is not None else None

    def cut_short(self, gone: int) -> None:
        """Record that the file was cut short at `gone` (once): reading ends there, as at a
        truncated record, and what the walk counted past it is undone."""
        with self._lock:
            if self._cut_told:
                return
            self._cut_told = True
            self._walking = False  # this warning is the cut's own
            if self._before_cut is not None:
                skipped, unreadable, warnings = self._before_cut
                self._tally.skipped = skipped
                del self._tally.unreadable[unreadable:], self._tally.warnings[warnings:]
            self._warn(gone, "cut_short", cut_message(self.path))
            self._tally.skipped["file cut short while read"] += 1
            self._changes += 1
            self.end_state = WalkState(gone, self.frames_done + 1)

    def rewritten(self, gone: int) -> None:
        """Record that the file's bytes from `gone` on are no longer those its frames were
        read from (written over in place since they were walked: `tcp.feed.rewritten_at`),
        once: reading ends there, as at a cut, told as the other readers tell it."""
        with self._lock:
            if self._cut_told:
                return
            self._cut_told = True
            self._walking = False
            self._tally.warnings.append(gone_warning(self.path, gone, self._tally.identity))
            self._changes += 1
            self.end_state = WalkState(gone, self.frames_done + 1)

    def _reads_ahead(self) -> bool:
        """Whether to walk ahead: the C walker on the file itself only (a piece of a stream
        is read in place of the next one)."""
        return self.read_ahead and self._mapped and self.walker.name == "native"

    def _spare(self, win: FrameWindow) -> FrameWindow | None:
        """A second window like `win` for the walk ahead to fill, or None to walk in turn."""
        return FrameWindow.allocate(win.cap, win.slab_width) if self._reads_ahead() else None

    def _behind(self, upto: int, walk: Callable[..., Any] | None = None, *args: Any) -> Any:
        """Let go of the mapped pages before `upto` that are not let go yet, then take the
        walk's next step (on the walk-ahead thread, or in turn).  The window being worked on
        starts at or after `upto`; earlier bytes, should anyone read them again, come back
        from the page cache unchanged.  Only the file's own mapping: a piece of a stream is
        memory of this process, not a view of the page cache."""
        if self._mapped and upto - self._released >= _RELEASE_MIN:
            self.walker.release(self._bound, self._released, upto)
            self._released = upto
        return None if walk is None else walk(*args)

    @property
    def walking_ahead(self) -> bool:
        """Whether a walk ahead is under way (the next window being walked on its thread)."""
        return any(slot.pending for slot in list(self._walks))

    def _note_growth(self) -> None:
        """A capture still being written is read up to its size when it was opened; say so,
        so a cut-off last record is not mistaken for damage."""
        try:
            now = os.stat(self.path).st_size
        except OSError:
            return
        if now > self._tally.size:
            self._warn(self._tally.size, "growing_file",
                       f"file grew to {now} bytes while it was read; results cover the first "
                       f"{self._tally.size} bytes (its size when opened)")

    # -- pcap -------------------------------------------------------------------------------
    def _straddler(self, walk, win: FrameWindow, n: int, off: int, fno: int, *args, **kw):
        """The record at `off` starts before the range end but runs past it: read just that
        one record against the whole file (the window's row n, with room made first)."""
        return walk(self._bound, self._tally.size, off, *args, win.head(n + 1), n, fno, **kw)

    def _walk_pcap(self, win: FrameWindow, spare: FrameWindow | None, start: WalkState | None,
                   slot: Slot) -> Iterator[FrameWindow]:
        meta, size, lim = self._tally, self._tally.size, self._stop
        hdr = self.pcap_header
        if hdr is None:
            try:
                hdr = pcap.parse_header(bytes(self._mm[: pcap.MAX_HEADER_LEN]))
            except ValueError:
                self._warn(0, "truncated_header", f"pcap file header cut short ({size} bytes)")
                self.end_state = WalkState(0, 1)
                return
            hdr = self.pcap_header = pcap.with_records(hdr, self._mm, size)
        meta.byte_orders = ["big" if hdr.big_endian else "little"]
        meta.nanosecond = hdr.nanosecond
        meta.version = hdr.version
        meta.snaplen = hdr.snaplen
        meta.sections = 1
        meta.interfaces = [pcapng.Interface(0, 0, hdr.linktype, hdr.snaplen,
                                            tsres_exp=9 if hdr.nanosecond else 6,
                                            fcs_len=hdr.fcs_len or None)]
        max_caplen = max(self.max_caplen, 0)
        off, fno, n = hdr.header_len, 1, 0
        # seconds of the last two records with a packet, for resynchronising; and how many
        # of them this walk read itself (fewer than two: the guide used the start's)
        last: tuple[int | None, int | None] = (None, None)
        own = folded = 0  # folded: rows of `win` in `last` already
        appended = None  # the header whose rules apply, when another capture's (see _joined)
        if start is not None:
            off, fno, last = start.offset, start.frame, (start.ref_s, start.prev_s)
            appended = start.header
            hdr = appended or hdr
        args = (hdr.big_endian, hdr.rules, hdr.snaplen, max_caplen)
        while True:
            if slot.pending:
                k, st = slot.result()
            else:
                k, st = self.walker.walk_pcap(self._bound, lim, off, *args, win, n, fno)
            n, off, fno = n + k, st.offset, st.next_frame
            if st.code == TRUNCATED and off < lim < size:
                if n == win.cap:
                    last, k = _guide_s(win, folded, n, last)
                    own += k
                    yield from self._emit(win, n, off)
                    n = folded = 0
                k, st = self._straddler(self.walker.walk_pcap, win, n, off, fno, *args)
                n, off, fno = n + k, st.offset, st.next_frame
            last, k = _guide_s(win, folded, n, last)
            own += k
            folded = n
            if st.code == FULL:
                win, spare = yield from self._hand_over(win, spare, n, off, fno, slot,
                                                        self.walker.walk_pcap, lim, args)
                n = folded = 0
                continue
            ref_s = _guide(last)
            if st.code == BLOCK:
                if size - off < pcap.MAX_HEADER_LEN and self._more:
                    break  # the rest of the header is in the next piece
                joined = self._joined(off, hdr)
                if joined is None:
                    break
                hdr, off = joined, off + joined.header_len
                appended = None if _same_rules(hdr, self.pcap_header) else hdr
                args = (hdr.big_endian, hdr.rules, hdr.snaplen, max_caplen)
                continue
            lo, hi = (1, 2**32 - 1) if ref_s is None else (ref_s - _YEAR_S, ref_s + _YEAR_S)
            limits = (hdr.big_endian, hdr.rules, min(max_caplen, 2**32 - 1), lo, hi)
            if st.code == TRUNCATED and self._more:
                break  # the rest of the record is in the next piece
            if st.code in (TRUNCATED, CORRUPT):
                # The resync below relies on the plan's guide values (fewer than two records
                # with a packet read since the start).
                self.start_used |= start is not None and own < 2
                cut = st.code == TRUNCATED and resync.cut_not_damaged_pcap(
                    self._array(), off, size, *limits)
                if cut and ref_s is None and size - off >= 4:  # its time is the best guide
                    sec = int(resync.u32(self._array(), np.array([off]), hdr.big_endian)[0])
                    limits = (*limits[:3], sec - _YEAR_S, sec + _YEAR_S)
                nxt = resync.next_pcap_record(self._array(), off + 1, size, *limits,
                                              allow_eof=not (cut or self._more))
                if nxt is None and self._more:
                    break  # look again with more of the stream in hand
                if nxt is not None:
                    self._skip_range(off, nxt, "corrupt_record", "corrupt record header",
                                     "corrupt record")
                    off = nxt
                    continue
            if st.code == TRUNCATED:
                self._warn(off, "truncated_record",
                           f"truncated record: needs {st.detail} bytes, {size - off} remain")
                meta.skipped["truncated record"] += 1
            elif st.code == CORRUPT:
                self._warn(off, "corrupt_record",
                           f"corrupt record: captured length {st.detail} exceeds the maximum "
                           f"{max_caplen}; stopped reading")
                meta.skipped["corrupt record"] += 1
            break
        if n:
            yield from self._emit(win, n, off)
        self.end_state = WalkState(off, fno, ref_s=last[0], prev_s=last[1], header=appended)

    def _joined(self, off: int, hdr: pcap.PcapHeader) -> pcap.PcapHeader | None:
        """Another capture's file header at `off` (captures concatenated, `cat a.pcap
        b.pcap`): its records are read by its own rules (byte order, time resolution),
        where tshark stops.  None, after a warning, where reading cannot go on: a header cut
        short, or another link type, which every frame of a pcap shares."""
        try:
            joined = pcap.parse_header(bytes(self._mm[off: off + pcap.MAX_HEADER_LEN]))
        except ValueError:
            joined = None
        if joined is not None:
            joined = pcap.with_records(joined, self._mm, self._tally.size, off)
        if joined is None:
            self._warn(off, "truncated_header", "another capture's pcap file header cut short "
                                                "(captures concatenated); stopped reading")
            self._tally.skipped["truncated record"] += 1
            return None
        if (joined.linktype, joined.fcs_len) != (hdr.linktype, hdr.fcs_len):
            self._warn(off, "concatenated", f"another capture's pcap file header, of link type "
                                            f"{joined.linktype} (captures concatenated: split "
                                            "them, or join them with mergecap); stopped reading")
            self._tally.skipped["capture of another link type appended"] += 1
            self.stopped = True
            return None
        rules = ", ".join(w for w, on in (("nanosecond", joined.nanosecond),
                                          (f"{16 + joined.extra}-byte record headers",
                                           joined.extra > 0),
                                          ("big-endian", joined.big_endian)) if on)
        self._warn(off, "concatenated", f"captures concatenated: the records after another "
                                        f"pcap file header ({rules or 'microsecond'}) are read "
                                        f"by its rules, from the header")
        return joined

    def _array(self) -> np.ndarray:
        if self._np is None:
            self._np = np.frombuffer(self._mm, dtype=np.uint8)
        return self._np

    def _skip_block(self, off: int, blen: int, kind: str, what: str, reason: str) -> int:
        """Step over one well-framed block that cannot be used; returns the next offset."""
        self._warn(off, kind, f"{what}; block skipped")
        self._tally.skipped[reason] += 1
        return off + blen

    def _skip_range(self, off: int, nxt: int, kind: str, what: str, reason: str | None
                    ) -> None:
        """Report bytes [off, nxt) as unreadable: reading goes on at the next good record."""
        a, b = self._base + off, self._base + nxt
        # CaptureWarning adds " at offset {a}": the message reads on to name the range
        self._warn(off, kind, f"{what}; reading resumed at offset {b}, past {b - a} unreadable "
                              f"byte{'s' if b - a != 1 else ''}")
        self._tally.unreadable.append((a, b))
        if reason is not None:
            self._tally.skipped[reason] += 1

    def _hand_over(self, win: FrameWindow, spare: FrameWindow | None, n: int, off: int,
                   fno: int, slot: Slot, walk: Callable[..., Any] | None, lim: int,
                   args: tuple) -> Iterator[FrameWindow]:
        """Hand over a full window; returns (window to fill next, spare).  With a spare, the
        next window's walk (`walk` from `off`, exactly as the loop would take it) starts on
        the walk-ahead thread first; either way the pages before this window are let go."""
        behind = int(win.offset[0]) - _HEAD_ROOM
        if spare is not None and walk is not None:
            slot.start(self._behind, behind, walk, self._bound, lim, off, *args, spare, 0, fno)
        else:
            self._behind(behind)
        yield from self._emit(win, n, off)
        return (win, None) if spare is None else (spare, win)

    def _emit(self, win: FrameWindow, n: int, off: int) -> Iterator[FrameWindow]:
        gone = self._guard.cut_at() if self._guard is not None else None
        raise_after = None
        if gone is not None:  # the file was cut short: what lies past `gone` reads as zeros
            # a record reaching past it (a pcapng block's tail) is truncated in the file as cut
            ends = record_ends(self._array(), self._tally.format != "pcap", win.offset[:n],
                               win.caplen[:n], win.flags[:n])
            kept = int(np.searchsorted(ends > gone, True))  # records in file order
            if kept < n or off >= gone:  # the walk has reached the cut: it ends here
                n, raise_after = kept, _CutShort(gone)
        self.frames_done += n
        self.bytes_done = off
        self._changes += 1  # what the walk met up to here: a snapshot asked for is new
        if n:
            yield win.head(n)
            if self._guard is not None:  # before the walk goes on
                self._guard.look()
        if raise_after is not None:
            raise raise_after

    # -- pcapng ----------------------------------------------------------------------------
    def _walk_pcapng(self, win: FrameWindow, spare: FrameWindow | None,
                     start: WalkState | None, slot: Slot) -> Iterator[FrameWindow]:
        meta, size, mm, lim = self._tally, self._tally.size, self._mm, self._stop
        section: pcapng.Section | None = None
        params: list = []
        off, fno, n = 0, 1, 0
        if start is not None:
            off, fno, section = start.offset, start.frame, start.section
            params, meta.interfaces = list(start.params), list(start.interfaces)
        # Blocks only counted here (name resolution, statistics, unknown types) are stepped
        # over and counted in the walk, not one by one here; never past the range's end (the
        # straddler's walk reads the one block at its end).
        # A block whose verdict needs bytes past the range's or the piece's end is handed
        # back as cut by it (`more`): decided with them, by the straddler's walk or in the
        # next piece, as the whole file decides it.
        walk = partial(self.walker.walk_pcapng, quiet_max=pcapng.QUIET_TYPES,
                       more=lim < size or self._more)
        while True:
            if off >= lim:
                break
            if section is None:
                st = WalkStatus(BLOCK, off, fno, pcapng.BT_SHB)
                k = 0
            else:
                args = (section.big_endian, params, MAX_BLOCK)
                if slot.pending:
                    k, st = slot.result()
                else:
                    k, st = walk(self._bound, lim, off, *args, win, n, fno)
                self._count_quiet(st)
                if st.code == TRUNCATED and st.offset < lim < size:
                    n, off, fno = n + k, st.offset, st.next_frame
                    if n == win.cap:
                        yield from self._emit(win, n, off)
                        n = 0
                    k, st = self._straddler(self.walker.walk_pcapng, win, n, off, fno, *args,
                                            more=self._more)
            n, off, fno = n + k, st.offset, st.next_frame
            if st.code == FULL:
                win, spare = yield from self._hand_over(
                    win, spare, n, off, fno, slot,
                    walk if off < lim else None,  # the loop ends at lim
                    lim, (section.big_endian, list(params), MAX_BLOCK))
                n = 0
                continue
            if st.code == END:
                break
            if st.code == BLOCK:
                if st.detail == pcapng.BT_SHB:
                    if self._more and self._shb_cut(off):
                        break  # the rest of the section header is in the next piece
                    told = len(meta.warnings), meta.skipped.copy()
                    new = self._read_shb(off, len(meta.byte_orders) if section is None
                                         else section.index + 1)
                    if new is None:
                        big = section.big_endian if section is not None else None
                        nxt = resync.next_pcapng_block(self._array(), off + 1, size, big,
                                                       allow_eof=not self._more,
                                                       more=self._more)
                        if nxt is None:
                            if self._more:  # look again with more in hand, and say it once
                                del meta.warnings[told[0]:]
                                meta.skipped = told[1]
                            break
                        self._skip_range(off, nxt, "corrupt_block",
                                         "unreadable section header", None)
                        off = nxt
                        continue
                    section, blen = new
                    params = []
                    off += blen
                    continue
                order = ">" if section.big_endian else "<"
                btype, blen = struct.unpack_from(order + "II", mm, off)
                blen = pcapng.padded(blen)  # as the walker framed it
                least = pcapng.MIN_BLOCK.get(btype, 12)
                if blen < least:  # framed, but its fixed fields are not all there
                    name = pcapng.BLOCK_NAMES[btype]
                    if self._told_short(name):
                        meta.skipped[f"corrupt {name} block"] += 1
                        off = self._step_told_short(mm, order, off + blen, lim)
                        continue
                    self._once[name] = len(meta.warnings)
                    off = self._skip_block(off, blen, "corrupt_block",
                                           f"{name} block of {blen} bytes is shorter than "
                                           f"its fixed fields ({least} bytes at least; "
                                           "each such block is skipped and counted)",
                                           f"corrupt {name} block")
                    continue
                meta.block_counts[pcapng.BLOCK_NAMES.get(btype, f"type 0x{btype:08x}")] += 1
                # Only the blocks parsed here are read; others are skipped by length untouched.
                body = bytes(mm[off + 8 : off + blen - 4]) if btype in _PARSED_BLOCKS else b""
                if btype == pcapng.BT_IDB:
                    try:
                        ifc = pcapng.parse_idb(body, order, len(meta.interfaces), section.index)
                    except ValueError as e:
                        self._warn(off, "corrupt_block", f"{e}")
                        meta.skipped["corrupt interface block"] += 1
                    else:
                        meta.interfaces.append(ifc)
                        section = section.with_interface(ifc)
                        params.append(ifc.params())
                        cut = pcapng.cut_option(body[8:], order)
                        if cut is not None:
                            self._warn(off + 16 + cut, "corrupt_block",
                                       f"interface {ifc.index} has an option longer than its "
                                       "block; the options from there on are not read (its "
                                       "time resolution may be wrong)")
                elif btype == pcapng.BT_DSB and len(body) >= 8:
                    stype, slen = struct.unpack_from(order + "II", body)
                    slen = min(slen, len(body) - 8)
                    data = b""
                    if stype == pcapng.TLS_KEY_LOG:  # kept up to the first that does not fit
                        if self._kept_keys + slen <= pcapng.MAX_KEY_LOG_KEPT:
                            data = body[8:8 + slen]
                            self._kept_keys += slen
                        else:
                            if self._kept_keys <= pcapng.MAX_KEY_LOG_KEPT:
                                self._warn(off, "key_log_not_kept", KEYS_DROPPED)
                            self._kept_keys = pcapng.MAX_KEY_LOG_KEPT + 1
                    at = self._base + off
                    meta.secrets.append(pcapng.SecretsBlock(at, stype, at + 16, slen, fno, data))
                elif btype in _FRAME_LIKE_BLOCKS:
                    meta.other_records[_FRAME_LIKE_BLOCKS[btype]] += 1
                    fno += 1  # Wireshark numbers these as frames; stay in step with it
                off += blen
                continue
            if st.code == BAD_IFACE:
                order = ">" if section.big_endian else "<"
                blen = pcapng.padded(struct.unpack_from(order + "I", mm, off + 4)[0])
                what = (f"packet block names interface {st.detail}, but its section has "
                        f"{len(params)} (each such block is skipped and counted)")
                at = self._once.get(what, -1)  # its place, unless a cut took it back
                if 0 <= at < len(meta.warnings) and meta.warnings[at].message == (
                        f"{what}; block skipped"):
                    # every block of a file whose interface block was lost: one line, not
                    # one per packet
                    meta.skipped["packet block with unknown interface"] += 1
                    off += blen
                else:
                    self._once[what] = len(meta.warnings)
                    off = self._skip_block(off, blen, "bad_interface", what,
                                           "packet block with unknown interface")
                continue
            if st.code == CORRUPT:
                blen = resync.pcapng_block_len(self._array(), off, size, section.big_endian,
                                               self._more)
                if blen is None:
                    break  # told with bytes of the next piece
                if blen:  # framing is sound, a field inside is not: lose this block only
                    off = self._skip_block(off, blen, "corrupt_packet",
                                           f"corrupt packet block (captured length "
                                           f"{st.detail} does not fit its block)",
                                           "corrupt packet block")
                    continue
            if st.code == TRUNCATED and self._more:
                break  # the rest of the block is in the next piece
            if st.code in (TRUNCATED, CORRUPT):
                cut = st.code == TRUNCATED and resync.cut_not_damaged_pcapng(
                    self._array(), off, size, section.big_endian)
                nxt = resync.next_pcapng_block(self._array(), off + 1, size, section.big_endian,
                                               allow_eof=not (cut or self._more),
                                               eof_in_step=None if self._more else off,
                                               more=self._more)
                if nxt is None and self._more:
                    break  # look again with more of the stream in hand
                if nxt is not None:
                    self._skip_range(off, nxt, "corrupt_block",
                                     f"corrupt block (length field {st.detail})", "corrupt block")
                    off = nxt
                    continue
            if st.code == TRUNCATED:
                self._warn(off, "truncated_block",
                           f"truncated block: needs {st.detail} bytes, {size - off} remain")
                meta.skipped["truncated block"] += 1
            elif st.code == CORRUPT:
                self._warn(off, "corrupt_block",
                           f"corrupt block (length field {st.detail}); stopped reading")
                meta.skipped["corrupt block"] += 1
            break
        if n:
            yield from self._emit(win, n, off)
        self.end_state = WalkState(off, fno, section=section, params=tuple(params),
                                   interfaces=tuple(meta.interfaces))

    def _told_short(self, name: str) -> bool:
        """Whether the warning for `name` blocks too short for their fixed fields is told
        already (and not taken back by a cut)."""
        meta = self._tally
        at = self._once.get(name, -1)  # said once a type, at the first
        return 0 <= at < len(meta.warnings) and meta.warnings[at].message.startswith(
            f"{name} block of")

    def _step_told_short(self, mm, order: str, off: int, lim: int) -> int:
        """Step over the blocks from `off` that are too short for their fixed fields, of
        types already told, counting each: a file of nothing else would otherwise hand the
        walk back for every 12 bytes (about 18 µs each, 0.2 MB/s).  Stops at the first block
        that is anything else, or not framed whole, and leaves it to the walk."""
        meta = self._tally
        while off + 12 <= lim:
            btype, blen = struct.unpack_from(order + "II", mm, off)
            name = pcapng.BLOCK_NAMES.get(btype)
            if (name is None or not 12 <= blen < pcapng.MIN_BLOCK.get(btype, 12)
                    or blen % 4 or off + blen > lim
                    or struct.unpack_from(order + "I", mm, off + blen - 4)[0] != blen
                    or not self._told_short(name)):
                break
            meta.skipped[f"corrupt {name} block"] += 1
            off += blen
        return off

    def _count_quiet(self, st: WalkStatus) -> None:
        """Count the blocks the walk stepped over, as the loop counts the blocks it reads."""
        for btype, count in st.quiet:
            self._tally.block_counts[pcapng.BLOCK_NAMES.get(btype, f"type 0x{btype:08x}")] += count

    def _shb_cut(self, off: int) -> bool:
        """The section header at `off` runs past the buffer's end (its length is sane), or
        whether it swallowed the next block, or whether that block is framed (which reads
        on past a damaged magic or trailer), is told by bytes past it: in each byte order
        its magic allows (both, where it is damaged)."""
        size = self._tally.size
        if size - off < 28:
            return True
        big = pcapng.byte_order_of_shb(self._mm, off)
        for b in (False, True) if big is None else (big,):
            (blen,) = struct.unpack_from(">I" if b else "<I", self._mm, off + 4)
            if size - off < blen <= MAX_BLOCK:
                return True
            if 28 <= blen <= MAX_BLOCK and not blen % 4 and resync.pcapng_block_len(
                    self._array(), off + blen, size, b, True) is None:
                return True
        if big is None:
            return False
        order = ">" if big else "<"
        (blen,) = struct.unpack_from(order + "I", self._mm, off + 4)
        return self._swallows(off, blen, order, True) > 1

    def _swallows(self, off: int, blen: int, order: str, more: bool = False) -> int:
        """pcapng.swallows_a_block for the section header at `off`, framed whole with
        length `blen` (0 where it is not): its length damaged to reach a field of the
        interface block after it (its snap length) loses that interface, and with it every
        packet of the section."""
        mm, size = self._mm, self._tally.size
        if not 28 <= blen <= size - off or struct.unpack_from(order + "I", mm,
                                                               off + blen - 4)[0] != blen:
            return 0
        return pcapng.swallows_a_block(mm, size, off, 12, blen, order, MAX_BLOCK, more)

    def _framed_order(self, off: int) -> bool | None:
        """The one byte order (True: big) in which the section header at `off`, its
        byte-order magic damaged, has a sane length equal to its trailer and is followed by a
        well-framed block (or the end); None when neither or both fit."""
        size, fits = self._tally.size, []
        for big in (False, True):
            (blen,) = struct.unpack_from(">I" if big else "<I", self._mm, off + 4)
            if (28 <= blen <= min(MAX_BLOCK, size - off) and not blen % 4
                    and struct.unpack_from(">I" if big else "<I", self._mm,
                                           off + blen - 4)[0] == blen
                    and (off + blen == size
                         or resync.pcapng_block_len(self._array(), off + blen, size, big))):
                fits.append(big)
        return fits[0] if len(fits) == 1 else None

    def _read_shb(self, off: int, index: int) -> tuple[pcapng.Section, int] | None:
        meta, size, mm = self._tally, self._tally.size, self._mm
        if size - off < 28:
            self._warn(off, "truncated_block", "truncated section header block")
            meta.skipped["truncated block"] += 1
            return None
        big = pcapng.byte_order_of_shb(mm, off)
        if big is None:
            big = self._framed_order(off)
            if big is None:
                self._warn(off, "corrupt_block", "section header block has a bad byte-order "
                                                 "magic")
                meta.skipped["corrupt block"] += 1
                return None
            # Its length and trailer agree, and the next block is framed, in one byte order
            # only: without it the section would be lost, as with a damaged trailer.
            self._warn(off, "corrupt_block", "section header block has a bad byte-order magic "
                       f"(its length frames it and the next block {'big' if big else 'little'}"
                       "-endian: read on)")
        order = ">" if big else "<"
        blen, _magic, vmaj, vmin = struct.unpack_from(order + "IIHH", mm, off + 4)
        stepped = blen < 28 or blen % 4 or blen > MAX_BLOCK or self._swallows(off, blen, order)
        if stepped:
            # The byte-order magic is sound: the section's blocks can be found by their
            # framing, from where the smallest section header would end.
            nxt = resync.next_pcapng_block(self._array(), off + 28, size, big,
                                           allow_eof=not self._more, more=self._more)
            if nxt is None:
                self._warn(off, "corrupt_block", f"corrupt section header block (length {blen})")
                meta.skipped["corrupt block"] += 1
                return None
            self._skip_range(off, nxt, "corrupt_block", f"corrupt section header block (length "
                             f"{blen}), its byte order read on", None)
            blen = nxt - off
        if blen > size - off:
            self._warn(off, "truncated_block",
                       f"truncated block: needs {blen} bytes, {size - off} remain")
            meta.skipped["truncated block"] += 1
            return None
        if not stepped and struct.unpack_from(order + "I", mm, off + blen - 4)[0] != blen:
            if off + blen < size and resync.pcapng_block_len(self._array(), off + blen,
                                                              size, big):
                # Only its trailer is damaged: its byte order and length are sound, and the
                # next block is framed where the length puts it.  Without it every block of
                # the section would be lost, as the next section header is all a resync
                # without a byte order can look for.
                self._warn(off, "corrupt_block", "section header block trailing length "
                           "mismatch (its length leads to a sound block: read on)")
            else:
                self._warn(off, "corrupt_block", "section header block trailing length mismatch")
                meta.skipped["corrupt block"] += 1
                return None
        meta.block_counts["section header"] += 1
        meta.byte_orders.append("big" if big else "little")
        meta.sections += 1
        meta.version = (vmaj, vmin)
        return pcapng.Section(index, off, big, (vmaj, vmin)), blen


_ONCE = frozenset({"bad_interface"})  # warnings told once per file for the same message


def _told(warnings: list[CaptureWarning], kind: str, message: str) -> bool:
    """Whether `warnings` hold this one already (a walk's, or a range's before it)."""
    return any(w.kind == kind and w.message == message for w in warnings)


_SHORT = " bytes is shorter than its fixed fields"  # a short block's warning (once a type)


def _short_told(warnings: list[CaptureWarning], w: CaptureWarning) -> bool:
    """Whether `w` tells of blocks too short for their fixed fields of a type `warnings`
    told already: one walk tells the first of a type only, so the pieces of a file do too."""
    if w.kind != "corrupt_block" or _SHORT not in w.message:
        return False
    kind = w.message.split(" block of ", 1)[0]
    return any(t.kind == w.kind and _SHORT in t.message
               and t.message.split(" block of ", 1)[0] == kind for t in warnings)


def merge_meta(parts: list[CaptureMeta]) -> CaptureMeta:
    """The metadata of consecutive pieces of one capture, as one walk would have filled it."""
    first, last = parts[0], parts[-1]
    meta = _Tally(first.path, first.size, first.format, nanosecond=first.nanosecond,
                  snaplen=first.snaplen, version=first.version,
                  interfaces=list(last.interfaces), identity=first.identity)
    for m in parts:
        if first.format == "pcapng":
            meta.byte_orders += m.byte_orders
            meta.sections += m.sections
            if m.sections:
                meta.version = m.version
        meta.block_counts.update(m.block_counts)
        meta.other_records.update(m.other_records)
        meta.secrets += m.secrets
        meta.warnings += [w for w in m.warnings
                          if (w.kind not in _ONCE or not _told(meta.warnings, w.kind, w.message))
                          and not _short_told(meta.warnings, w)]
        meta.skipped.update(m.skipped)
        meta.unreadable += m.unreadable
    if first.format == "pcap":
        meta.byte_orders, meta.sections = list(first.byte_orders), first.sections
    return meta.snapshot()
