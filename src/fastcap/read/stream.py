"""Captures that cannot be memory-mapped: gzip, zstd or lz4 files (found by their magic, not
their names), standard input (`-`) and pipes.

The stream is read in pieces of a few MiB.  Each piece is walked as an in-memory capture
(`Capture.over`) from the exact state where the previous piece stopped; a record cut off by
a piece's end is carried into the next piece.  So the same vectorized decoder sees the same
windows of frames as for a mapped file, memory stays at about two pieces, and results equal
those of the decompressed file.  Decompression runs in a thread of its own (zlib, zstd and
lz4 release the GIL), overlapping the walk.
"""

from __future__ import annotations

import os
import stat
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import BinaryIO

from ..errors import CaptureError, CaptureWarning
from ..options import PIECE as PIECE
from .capture import (
    DEFAULT_SLAB,
    DEFAULT_WINDOW,
    KEYS_DROPPED,
    Capture,
    CaptureMeta,
    WalkState,
    merge_meta,
    sniff_format,
)
from .frames import FrameWindow
from .pcapng import MAX_KEY_LOG_KEPT, TLS_KEY_LOG, Interface, SecretsBlock
from .walkstatus import MAX_BLOCK

MAX_PIECE = 4 * MAX_BLOCK + PIECE  # no record can need more; past it the stream is damaged
_MAGIC = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"\x04\x22\x4d\x18": "lz4"}


def compression_of(head: bytes) -> str | None:
    """'gzip', 'zstd' or 'lz4' from the first bytes, else None."""
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    return None


def needs_stream(path: str | os.PathLike) -> bool:
    """True for `-`, pipes and other non-regular files, and compressed files."""
    return stream_kind(path) is not None


def is_compressed_file(path: str | os.PathLike) -> bool:
    """True for a regular file of compressed data: unlike a pipe, it can be read again, and
    read by whichever part of the program reads the files beside it."""
    return stream_kind(path) == "compressed"


def stream_kind(path: str | os.PathLike) -> str | None:
    """'pipe' for `-` and non-regular files, 'compressed' for a regular file of compressed
    data, or None for a file to map (or one the mapped path reports the error of)."""
    path = os.fsdecode(path)
    if path == "-":
        return "pipe"
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None if stat.S_ISDIR(st.st_mode) else "pipe"
    try:
        with open(path, "rb") as f:
            return "compressed" if compression_of(f.read(4)) is not None else None
    except OSError:
        return None


_RAW_READ = 256 << 10  # compressed bytes per read: a few MiB once inflated
# A decompressor whose state cannot be copied gives nothing for a call that raises: its calls
# take at most _STEP compressed bytes, fewer where they inflate to more than about _STEP_OUT.
_STEP = 64 << 10
_STEP_OUT = 128 << 10  # one zstd block at most
_FIRST_STEP = 4 << 10  # the first call of a read, before its ratio is known
_MIN_STEP = 1 << 10
_RETRY_STEP = 64  # compressed bytes per call when a read is decompressed again up to damage


def _inflated(d, data: bytes) -> list:
    """[output..., rest, error] of feeding `data` to the decompressor `d`: everything it
    gives before any damage in `data` (a call that raises gives nothing, so damage would
    lose all a call inflated before it), then the input past the end of its member or frame
    (None if it did not end), then the damage (None if none).

    zlib's state can be copied: a read goes in one call and, when that raises, again from
    the copy in small steps, up to the damage.  zstd's and lz4's cannot: they are fed in
    steps sized by the ratio seen so far (a highly compressed capture inflates 30-fold and
    more), so damage costs one step's output, about _STEP_OUT bytes."""
    copy = getattr(d, "copy", None)
    saved = copy() if copy is not None else None
    step = len(data) if saved is not None else _FIRST_STEP
    out: list = []
    at = 0
    while at < len(data):
        chunk = data[at: at + step]
        try:
            got = d.decompress(chunk)
        except Exception as e:  # noqa: BLE001 - each library has its own error class
            if saved is not None:
                out = _up_to_damage(saved, data)
            return [*out, None, e]
        out.append(got)
        at += len(chunk)
        if d.eof:
            return [*out, (d.unused_data or b"") + data[at:], None]
        if saved is None:  # no output yet (a block is still coming): grow step by step
            step = min(_STEP, len(chunk) * _STEP_OUT // len(got) if got else 2 * step)
            step = max(_MIN_STEP, step)
    return [*out, None, None]


def _up_to_damage(d, data: bytes) -> list[bytes]:
    """What `d` (a zlib decompressor) gives for `data` up to the byte where it finds damage:
    in small steps, and the step that raises again a byte at a time."""
    out = []
    for at in range(0, len(data), _RETRY_STEP):
        before = d.copy()
        try:
            out.append(d.decompress(data[at: at + _RETRY_STEP]))
        except Exception:  # noqa: BLE001 - the damage lies in this step
            for i in range(at, min(at + _RETRY_STEP, len(data))):
                try:
                    out.append(before.decompress(data[i: i + 1]))
                except Exception:  # noqa: BLE001 - the damage: everything before it is out
                    break
            break
        if d.eof:
            break
    return out


def _decompressors(kind: str, path: str):
    """A factory of one-member decompressor objects (`decompress`, `eof`, `unused_data`)."""
    if kind == "gzip":
        import zlib

        return lambda: zlib.decompressobj(wbits=31)
    try:
        if kind == "zstd":
            import zstandard

            return zstandard.ZstdDecompressor().decompressobj
        import lz4.frame

        return lz4.frame.LZ4FrameDecompressor
    except ImportError:
        raise CaptureError(path, f"is {kind}-compressed and the {kind} module is missing "
                                 f"(pip install {'zstandard' if kind == 'zstd' else 'lz4'})"
                           ) from None


def _decompressed(raw: BinaryIO, head: bytes, kind: str | None, path: str
                  ) -> Iterator[bytes]:
    """The stream's bytes, decompressed, in chunks.  Concatenated members (as `cat a.gz b.gz`
    makes) follow one another.  Damage raises ValueError after every byte before it was
    delivered."""
    if kind is None:
        if head:
            yield head
        while data := raw.read(_RAW_READ):
            yield data
        return
    make = _decompressors(kind, path)
    d, pending = make(), head
    while True:
        data = pending or raw.read(_RAW_READ)
        pending = b""
        if not data:
            if not d.eof:
                raise ValueError("compressed data ends before its end-of-stream marker")
            return
        *outs, rest, error = _inflated(d, data)
        yield from filter(None, outs)  # an empty chunk would read as the end
        if error is not None:
            raise ValueError(f"damaged compressed data ({error})")
        if rest is not None:  # the member or frame ended: the next one follows
            d = make()
            if rest:
                pending = rest
            else:
                nxt = raw.read(_RAW_READ)
                if not nxt:
                    return
                pending = nxt


class HeadReader:
    """The decompressed bytes of a compressed file, from its start and forward only (`seek`
    skips ahead): what reading the blocks at a capture's head needs, without a walk.  Damage
    raises ValueError, as `_decompressed` does."""

    def __init__(self, path: str) -> None:
        self._raw = open(path, "rb")  # noqa: SIM115 - closed in close()
        head = self._raw.read(4)
        self._chunks = _decompressed(self._raw, head, compression_of(head), path)
        self._buf, self._at = b"", 0  # _buf: the bytes from offset _at on, read ahead

    def read(self, n: int) -> bytes:
        parts, have = [self._buf], len(self._buf)
        while have < n and (more := next(self._chunks, b"")):
            parts.append(more)
            have += len(more)
        data = b"".join(parts)
        out, self._buf = data[:n], data[n:]
        self._at += len(out)
        return out

    def seek(self, off: int) -> None:
        if off < self._at:
            raise ValueError("a decompressed stream is read forward only")
        skip = off - self._at
        while skip > len(self._buf):
            skip -= len(self._buf)
            self._at += len(self._buf)
            self._buf = next(self._chunks, b"")
            if not self._buf:
                return  # past the end: reads give nothing
        self._buf, self._at = self._buf[skip:], off

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> HeadReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Reader:
    """Fills pieces in a thread; `get(n)` returns up to n bytes (b"" at the end).  Damaged
    compressed data ends the stream early, with the reason in `error`."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        import queue  # only compressed or piped input reads in a thread

        self._chunks = chunks
        self._q: queue.Queue = queue.Queue(maxsize=4)
        self._pending = b""
        self._stop = threading.Event()
        self.done = 0  # decompressed bytes handed out
        self.error: str | None = None
        self._t = threading.Thread(target=self._fill, daemon=True)
        self._t.start()

    def _fill(self) -> None:
        try:
            for data in self._chunks:
                if self._stop.is_set():
                    return
                self._q.put(data)
        except Exception as e:  # noqa: BLE001 - whatever it is, the reader must not wait on
            self._q.put(e)  # for ever: the stream ends there, with the reason
            return
        self._q.put(b"")

    def get(self, n: int) -> list[bytes]:
        """Chunks adding up to n bytes, fewer at the end (joined once by the caller: a piece
        is copied once, not once per step)."""
        out, have = [], 0
        while have < n:
            item = self._pending or self._q.get()
            self._pending = b""
            if isinstance(item, Exception) or not item:
                if isinstance(item, Exception):
                    self.error = str(item)
                self._q.put(b"")  # the end stays the end
                break
            if have + len(item) > n:
                item, self._pending = item[: n - have], item[n - have:]
            out.append(item)
            have += len(item)
        self.done += have
        return out

    def close(self) -> None:
        import queue

        self._stop.set()
        while self._t.is_alive():
            try:
                self._q.get_nowait()
            except queue.Empty:
                self._t.join(0.05)


class StreamCapture:
    """The Capture interface (windows, buffer, meta) over a stream read once, in pieces.

    `buffer` is the piece the current window's offsets refer to; it changes between
    windows, so consumers that keep payload offsets must use them before the next window.
    """

    def __init__(self, path: str | os.PathLike, *, backend: str = "auto",
                 window: int = DEFAULT_WINDOW, slab_width: int = DEFAULT_SLAB,
                 piece: int = PIECE) -> None:
        self.path = os.fsdecode(path)
        self._opts = dict(backend=backend, window=window, slab_width=slab_width)
        self._piece = max(256, piece)
        self._raw = self._open()
        head = self._raw.read(4)
        self.compression = compression_of(head)
        chunks = _decompressed(self._raw, head, self.compression, self.path)
        first, error = b"", None
        try:
            while len(first) < 64 and (data := next(chunks, b"")):
                first += data
        except ValueError as e:
            error = str(e)
        if not first:
            raise CaptureError(self.path, f"cannot decompress: {error}" if error
                               else "empty stream (0 bytes), not a capture")
        self.format = sniff_format(self.path, first)
        self._reader = _Reader(_chain(first, chunks, error))
        self._cur: Capture | None = None
        self._metas: list[CaptureMeta] = []
        self._secrets: list[SecretsBlock] = []  # of the pieces walked
        self._kept_keys = 0
        self._meta: CaptureMeta | None = None
        self.walker = None
        self.frames_done = 0
        self.bytes_done = 0
        self.end_state: WalkState | None = None  # after the walk: where it stopped

    def _open(self) -> BinaryIO:
        if self.path == "-":
            return sys.stdin.buffer
        try:
            return open(self.path, "rb")  # noqa: SIM115 - closed in close()
        except FileNotFoundError:
            raise CaptureError(self.path, "no such file") from None
        except OSError as e:
            raise CaptureError(self.path, f"cannot open: {e.strerror}") from None

    @property
    def buffer(self):
        return self._cur.buffer if self._cur is not None else b""

    @property
    def buffer_base(self) -> int:
        """The file offset of the current piece's first byte: windows' offsets count from it."""
        return self._cur.buffer_base if self._cur is not None else 0

    @property
    def meta(self) -> CaptureMeta:
        """While walking: the current piece's (its interfaces are the live ones); after the
        walk: the whole stream's, merged."""
        if self._meta is not None:
            return self._meta
        if self._cur is not None:
            return self._cur.meta
        return CaptureMeta(self.path, 0, self.format)

    @property
    def interfaces(self) -> tuple[Interface, ...]:
        """The interfaces met so far (the current piece's are the live ones)."""
        if self._meta is None and self._cur is not None:
            return self._cur.interfaces
        return self.meta.interfaces

    def tell(self, *warnings: CaptureWarning) -> None:
        """Add what a later stage found after what the walk met: to the current piece's
        while walking, to the whole stream's after."""
        if self._meta is not None:
            self._meta = self._meta.told(*warnings)
        elif self._cur is not None:
            self._cur.tell(*warnings)

    def cut_at(self) -> int | None:
        """None: the pieces are this process's memory, which no other program can cut."""
        return None

    def meta_so_far(self) -> CaptureMeta:
        """What the walk has met up to now, for a reader that stops early: while walking, the
        pieces walked and the current one merged (a copy); after, `meta`."""
        if self._meta is None and self._cur is not None:
            return merge_meta([*self._metas, self._cur.meta])
        return self.meta

    def secrets_since(self, n: int) -> list[SecretsBlock]:
        """The Decryption Secrets Blocks the walk has met so far (those of the pieces read,
        then the current piece's), in file order, after the first `n`."""
        cur = self._cur.secrets_since(0) if self._cur is not None and self._meta is None else []
        done = len(self._secrets)
        return self._secrets[n:] + cur if n < done else cur[n - done:]

    def _piece_done(self, cap: Capture) -> None:
        """Keep a walked piece's metadata; the key logs of its secrets blocks are kept
        up to the first that would take the stream's total past MAX_KEY_LOG_KEPT."""
        secrets = list(cap.meta.secrets)
        for i, b in enumerate(secrets):
            if b.secrets_type == TLS_KEY_LOG:  # up to the first that does not fit
                if self._kept_keys + b.data_len <= MAX_KEY_LOG_KEPT:
                    self._kept_keys += b.data_len
                else:
                    if self._kept_keys <= MAX_KEY_LOG_KEPT and b.data:
                        cap.tell(CaptureWarning(cap.path, b.offset, "key_log_not_kept",
                                                KEYS_DROPPED))
                    self._kept_keys = MAX_KEY_LOG_KEPT + 1
                    secrets[i] = replace(b, data=b"")
        self._secrets += secrets
        self._metas.append(replace(cap.meta, secrets=tuple(secrets)))

    def windows(self, start: WalkState | None = None, stop: int | None = None
                ) -> Iterator[FrameWindow]:
        if start is not None or stop is not None:
            raise ValueError("a stream is read whole, from its start")
        base, state, header = 0, None, None
        rest, target = b"", self._piece
        frames: FrameWindow | None = None
        while True:
            buf = b"".join([rest, *self._reader.get(target - len(rest))])
            rest = b""
            eof = len(buf) < target
            cap = Capture.over(buf, name=self.path, fmt=self.format, base=base, more=not eof,
                               header=header, **self._opts)
            if frames is None:
                frames = FrameWindow.allocate(cap.window, cap.slab_width)
            cap.frames = frames  # one window for every piece: no allocation per piece
            self._cur = cap
            self.walker = cap.walker
            for win in cap.windows(state):
                self.frames_done += len(win)
                self.bytes_done = base + cap.bytes_done
                yield win
            end = cap.end_state
            self.end_state = WalkState(base + end.offset, end.frame)
            if eof or cap.stopped:
                if self._reader.error is not None:
                    cap.tell(CaptureWarning(
                        self.path, self._reader.done, "corrupt_stream",
                        f"{self.compression or 'stream'} data unreadable after decompressed "
                        f"offset {self._reader.done}: {self._reader.error}; stopped reading"),
                        skipped="damaged compressed data")
                self._piece_done(cap)
                break
            if end.offset == 0:  # not one record fits: look again with more in hand
                if len(buf) >= MAX_PIECE:
                    cap.tell(CaptureWarning(
                        self.path, base, "corrupt_stream",
                        f"no readable record in {len(buf)} bytes from offset {base}; "
                        f"stopped reading"),
                        skipped="corrupt block" if self.format == "pcapng" else "corrupt record")
                    self._piece_done(cap)
                    break
                rest, target = buf, 2 * len(buf)
                continue
            self._piece_done(cap)
            header = cap.pcap_header
            base += end.offset
            rest = buf[end.offset:]
            target = len(rest) + self._piece
            state = end.moved(0, end.frame)
        self._meta = _merged(self._metas, base + len(buf), self.compression)
        self._cur = None

    @property
    def progress_size(self) -> int:
        """Compressed bytes in the file, for progress reports (0: not known)."""
        try:
            return os.fstat(self._raw.fileno()).st_size if self._raw is not sys.stdin.buffer \
                else 0
        except (OSError, ValueError):
            return 0

    @property
    def progress_done(self) -> int:
        try:
            return self._raw.tell() if self.progress_size else self.bytes_done
        except (OSError, ValueError):
            return self.bytes_done

    def close(self) -> None:
        self._reader.close()
        if self._raw is not sys.stdin.buffer:
            self._raw.close()

    def __enter__(self) -> StreamCapture:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _merged(metas: list[CaptureMeta], size: int, compression: str | None) -> CaptureMeta:
    meta = merge_meta(metas)
    return replace(meta, size=size, compression=compression or meta.compression)


def _chain(first: bytes, rest: Iterator[bytes], error: str | None) -> Iterator[bytes]:
    yield first
    if error is not None:
        raise ValueError(error)
    yield from rest


def open_capture(path: str | os.PathLike, *, piece: int = PIECE, **kw
                 ) -> Capture | StreamCapture:
    """A mapped Capture for a regular uncompressed file, else a StreamCapture reading
    `piece` bytes at a time."""
    if needs_stream(path):
        return StreamCapture(path, piece=piece, **kw)
    return Capture(path, **kw)


__all__ = ["HeadReader", "StreamCapture", "compression_of", "is_compressed_file", "needs_stream",
           "open_capture", "stream_kind"]
