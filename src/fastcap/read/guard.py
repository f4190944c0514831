"""A mapped file that another program cuts short while fastcap reads it (logrotate's
copytruncate, a capture tool reusing its file).  Past the new end, the rest of the last page
reads as zeros, and touching a later page raises SIGBUS, which ends the process wherever the
touch happens.  The guard answers such a fault with a page of zeros (the C module's handler,
or without it `_Faults`, on Linux) and tells the reader, after each window, where the file
now ends: the size the file has now, if it is still the file that was mapped, or else the
first page found gone.  A file mapped again, to read payloads whose frames were read
before, may also have been replaced by another under its name since (a ring file rotated
by rename): `map_again` tells it from the file the frames came from."""

from __future__ import annotations

import ctypes
import mmap
import os
import platform
import sys

from .._ffi import ffi, lib
from ..errors import CaptureError, CaptureWarning

__all__ = ["FileReplaced", "MappingGuard", "cut_message", "file_identity", "fs_type",
           "gone_warning", "guarded_map", "map_again", "replaced_message", "rewritten_message",
           "same_file"]


def cut_message(path: str) -> str:
    """The warning for a file cut short at the offset it is given at."""
    try:
        now = f" (it has {os.stat(path).st_size} bytes now)"
    except OSError:
        now = ""
    return (f"the file was cut short while it was read{now}: its bytes from here on were "
            f"gone; reading stopped")


def replaced_message(path: str) -> str:
    """The warning for a file replaced by another under its name (its frames were read
    from the one, its payloads would be from the other), at the first offset not read."""
    try:
        now = f" (the file now under its name has {os.stat(path).st_size} bytes)"
    except OSError:
        now = ""
    return (f"the file was replaced by another while it was read{now}: its bytes from here "
            f"on were not read; reading stopped")


class FileReplaced(CaptureError):
    """A file opened again to read more of it (a range of `-j N`) is no longer the file
    read before: another was put under its name.  Its bytes are not the capture's, so
    reading it stops at `offset` (the first not read) with `replaced_message`, not with
    whatever error the new bytes would give."""

    def __init__(self, path: str, message: str = "", offset: int | None = None) -> None:
        super().__init__(path, message or replaced_message(path), offset)


# statfs f_type (linux/magic.h) of filesystems served to several hosts, each of which
# numbers the mount's device its own way: NFS, SMB (smbfs, cifs, smb3), Ceph, AFS (two),
# Lustre, GPFS, 9p, FUSE (sshfs, GlusterFS, ...), GFS2, OCFS2, Coda, NCP.
_NETWORK_FS = frozenset({0x6969, 0x517B, 0xFF534D42, 0xFE534D42, 0x00C36400, 0x5346414F,
                         0x6B414653, 0x0BD00BD0, 0x47504653, 0x01021997, 0x65735546,
                         0x01161970, 0x7461636F, 0x73757245, 0x564C})


def fs_type(target: str | int) -> int | None:
    """statfs's f_type of the filesystem `target` (a path, or an open fd) is on; None where
    it cannot be asked (not Linux, no libc)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        call = libc.fstatfs if isinstance(target, int) else libc.statfs
    except (OSError, AttributeError):
        return None
    buf = ctypes.create_string_buffer(256)  # struct statfs: f_type, a long, comes first
    arg = target if isinstance(target, int) else os.fsencode(target)
    if call(arg, buf) != 0:
        return None
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF


def file_identity(st: os.stat_result, target: str | int) -> tuple[int, int]:
    """The file's identity, to tell it from another put under its name: (st_dev, st_ino),
    with st_dev 0 on a network filesystem (`target`, the file's path or fd, is on one),
    where another host (a Dask worker) reading the same file sees another st_dev."""
    return (0 if fs_type(target) in _NETWORK_FS else st.st_dev, st.st_ino)


def same_file(path: str, identity: tuple[int, int] | None, fd: int | None = None) -> bool:
    """Whether the file under `path` (or open as `fd`) is still the one whose
    `file_identity` was `identity` (None: whichever it is).  Size and mtime are not
    compared: a capture still being written grows, and is still the same file."""
    if identity is None:
        return True
    try:
        st = os.fstat(fd) if fd is not None else os.stat(path)
    except OSError:
        return False
    return file_identity(st, fd if fd is not None else path) == tuple(identity)


def rewritten_message(path: str) -> str:
    """The warning for a file written over in place (the same file, other bytes) between
    reading its frames and their payloads, at the first offset not read."""
    return ("the file was rewritten in place while it was read: its bytes from here on were "
            "not those its frames were read from; reading stopped")


def gone_warning(path: str, offset: int, identity: tuple[int, int] | None) -> CaptureWarning:
    """The warning for a file whose payloads were not read from `offset` on: rewritten in
    place if the file under `path` is still the one that was `identity`, else replaced."""
    if identity is not None and same_file(path, identity):
        return CaptureWarning(path, offset, "rewritten", rewritten_message(path))
    return CaptureWarning(path, offset, "replaced", replaced_message(path))


def guarded_map(path: str) -> tuple[mmap.mmap | bytes, MappingGuard | None]:
    """`path` mapped read-only with its guard (empty bytes and None for an empty file).
    Close the guard before the mapping."""
    mapped = map_again(path, None)
    assert mapped is not None
    return mapped


def map_again(path: str, identity: tuple[int, int] | None, fd: int | None = None
              ) -> tuple[mmap.mmap | bytes, MappingGuard | None] | None:
    """`guarded_map`, or None if the file now under `path` (or open as `fd`, a file held
    open since it was read, whatever is under its name now) is not the one whose
    `file_identity` is `identity` (`same_file`)."""
    with open(path, "rb") if fd is None else os.fdopen(os.dup(fd), "rb") as f:
        if not same_file(path, identity, f.fileno()):
            return None
        ident = file_identity(os.fstat(f.fileno()), f.fileno())
        try:  # length 0: the file as long as it is now, though cut since the stat
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # empty, or cut to nothing
            return b"", None
    return mm, MappingGuard(mm, len(mm), path, ident)


class MappingGuard:
    """The guard of one file mapping, from its registration to `close()` (before the unmap).
    `identity` is the mapped file's `file_identity`, to tell it from a file that has taken
    its name since."""

    def __init__(self, mapping, size: int, path: str, identity: tuple[int, int]) -> None:
        self.size, self.path, self.identity = size, path, identity
        self._dev = identity[0] != 0  # st_dev counts (not a network filesystem)
        self._slot = -1
        self._ptr = None
        self._zeros: _Zeros | None = None  # without the C module (see _Zeros, _Faults)
        self._watch: list[int] | None = None
        if lib is not None and size > 0:
            self._ptr = ffi.from_buffer("uint8_t[]", mapping)
            self._slot = lib.fc_guard_add(self._ptr, size)
        elif size > 0:
            self._zeros = _Zeros.over(mapping, size)
            if self._zeros is not None:
                self._watch = _Faults.watch(self._zeros.addr, size)

    def cut_at(self) -> int | None:
        """Where the file ends now, if it was cut short since it was mapped; else None."""
        if self._slot >= 0:
            gone = lib.fc_guard_gone(self._slot)
        else:
            gone = self._watch[2] if self._watch is not None else -1
        try:
            st = os.stat(self.path)
            now = st.st_size if (st.st_dev if self._dev else 0, st.st_ino) == self.identity \
                else None
        except OSError:
            now = None
        if now is not None and now < self.size:
            if self._zeros is not None:
                self._zeros.past(now)
            return now if gone < 0 else min(now, gone)
        return None if gone < 0 else int(gone)

    def look(self) -> None:
        """Before reading on, where no fault is answered (no C module): a cut since the
        last look has its pages past the new end made zeros (`_Zeros`)."""
        if self._zeros is not None:
            self.cut_at()

    def close(self) -> None:
        self._zeros = None
        if self._watch is not None:
            _Faults.forget(self._watch)
            self._watch = None
        if self._slot >= 0:
            lib.fc_guard_remove(self._slot)
            self._slot = -1
        if self._ptr is not None:
            ffi.release(self._ptr)
            self._ptr = None


class _Zeros:
    """Without the C module no fault is answered, so the pages past a cut must be made
    harmless before they are touched: once `cut_at` finds the file shorter, they are mapped
    over with zero pages (MAP_FIXED, through libc), and read as the guard's would.  Readers
    ask `cut_at` before each window or batch they read; a cut in the middle of one is met
    by `_Faults`.  Where libc's mmap cannot be called, nothing is done."""

    _PROT_READ, _MAP_PRIVATE, _MAP_FIXED, _MAP_ANONYMOUS = 1, 2, 0x10, 0x20  # Linux's

    def __init__(self, addr: int, size: int, mmap_fn) -> None:
        self.addr, self._end, self._mmap = addr, size, mmap_fn

    @classmethod
    def over(cls, mapping, size: int) -> _Zeros | None:
        if not isinstance(mapping, mmap.mmap) or not sys.platform.startswith("linux"):
            return None
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fn = libc.mmap
        except (OSError, AttributeError):
            return None
        fn.restype = ctypes.c_void_p
        fn.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long)
        view = ffi.from_buffer("uint8_t[]", mapping)
        try:
            addr = int(ffi.cast("uintptr_t", view))
        finally:
            ffi.release(view)
        return cls(addr, size, fn)

    def past(self, now: int) -> None:
        """Zero pages from the first whole page past `now` (the rest of its page reads as
        zeros already) to the mapping's end, if not done yet."""
        lo = -(-now // mmap.PAGESIZE) * mmap.PAGESIZE
        if lo >= self._end:
            return
        got = self._mmap(self.addr + lo, self._end - lo, self._PROT_READ,
                         self._MAP_PRIVATE | self._MAP_FIXED | self._MAP_ANONYMOUS, -1, 0)
        if got == self.addr + lo:
            self._end = lo

    @classmethod
    def page(cls, mmap_fn, at: int) -> bool:
        """The page `at` lies in mapped over with a page of zeros; whether it was."""
        lo = at - at % mmap.PAGESIZE
        return mmap_fn(lo, mmap.PAGESIZE, cls._PROT_READ,
                       cls._MAP_PRIVATE | cls._MAP_FIXED | cls._MAP_ANONYMOUS, -1, 0) == lo


class _Sigaction(ctypes.Structure):
    """struct sigaction as glibc and musl lay it out on x86-64 and AArch64 Linux."""

    _fields_ = (("handler", ctypes.c_void_p), ("mask", ctypes.c_ulong * 16),
                ("flags", ctypes.c_int), ("restorer", ctypes.c_void_p))


class _Faults:
    """The C guard's SIGBUS handler for an install without the C module, through ctypes: a
    cut in the middle of a window or batch (after the look before it) faults on the first
    page past the new end that the read touches.  The handler, called on the faulting
    thread, maps a page of zeros over that page and notes its offset, as the C handler does,
    so the read goes on and the next `cut_at` tells the cut.  No cost until a fault: the
    reads themselves are not changed.

    Linux on x86-64 and AArch64 only, where the layouts of siginfo_t (si_code at 8, si_addr
    at 16) and struct sigaction are known; elsewhere nothing is installed and a cut inside
    a window still ends the process (macOS and the BSDs raise SIGBUS too; Windows refuses to
    cut a file while a view of it is mapped).  A SIGBUS not in a watched mapping gets back
    the handler there was before and happens again under it.  Process-wide, as signal
    handlers are: the watched mappings are held here, each [lo, hi, lowest offset gone]."""

    _SIGBUS, _BUS_ADRERR = 7, 2
    _SA_SIGINFO, _SA_NODEFER = 4, 0x40000000
    _HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)

    watched: list[list[int]] = []
    _state: tuple | None = None  # (libc, mmap, handler, action before), once installed
    _tried = False

    @classmethod
    def watch(cls, addr: int, size: int) -> list[int] | None:
        """Watch [addr, addr + size) for faults; its entry (None if none can be)."""
        if not cls._install():
            return None
        entry = [addr, addr + size, -1]
        cls.watched = [*cls.watched, entry]  # a new list: the handler may be reading the old
        return entry

    @classmethod
    def forget(cls, entry: list[int]) -> None:
        cls.watched = [e for e in cls.watched if e is not entry]

    @classmethod
    def _install(cls) -> bool:
        if cls._tried:
            return cls._state is not None
        cls._tried = True
        if not sys.platform.startswith("linux") or \
                platform.machine() not in ("x86_64", "aarch64"):
            return False
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            mmap_fn, sigaction = libc.mmap, libc.sigaction
        except (OSError, AttributeError):
            return False
        mmap_fn.restype = ctypes.c_void_p
        mmap_fn.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                            ctypes.c_int, ctypes.c_long)
        sigaction.argtypes = (ctypes.c_int, ctypes.POINTER(_Sigaction),
                              ctypes.POINTER(_Sigaction))
        handler = cls._HANDLER(cls._on_sigbus)
        new, before = _Sigaction(), _Sigaction()
        new.handler = ctypes.cast(handler, ctypes.c_void_p).value
        new.flags = cls._SA_SIGINFO | cls._SA_NODEFER
        if sigaction(cls._SIGBUS, ctypes.byref(new), ctypes.byref(before)) != 0:
            return False
        cls._state = (libc, mmap_fn, handler, before)
        return True

    @classmethod
    def _on_sigbus(cls, sig: int, info: int | None, context: int | None) -> None:
        libc, mmap_fn, _handler, before = cls._state
        code, at = 0, 0
        if info:
            code = ctypes.c_int.from_address(info + 8).value
            at = ctypes.c_void_p.from_address(info + 16).value or 0
        if code == cls._BUS_ADRERR:
            for entry in cls.watched:
                if entry[0] <= at < entry[1]:
                    if not _Zeros.page(mmap_fn, at):
                        break
                    off = max(0, at - at % mmap.PAGESIZE - entry[0])
                    if entry[2] < 0 or off < entry[2]:
                        entry[2] = off
                    return  # the read is retried and finds zeros
        # Not a watched mapping: the handler before this one, for good.  A fault happens
        # again on return; a signal sent is sent again.
        libc.sigaction(cls._SIGBUS, ctypes.byref(before), None)
        cls._state = None
        if code <= 0:  # sent (kill, raise), not a fault
            getattr(libc, "raise")(sig)
