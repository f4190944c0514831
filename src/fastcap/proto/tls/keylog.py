"""NSS key log files (``SSLKEYLOGFILE``) indexed by client random, with bounded memory.

A busy server's key log can be gigabytes, and a capture matches only a few of its sessions. So
nothing but an index is kept: per source, the first 8 bytes of each line's client random, the
line's offset and its number, sorted (16 bytes a line; 24 past 4 GiB). ``lookup``
binary-searches that index, then reads and checks the few matching lines from the file
(memory-mapped) or the kept bytes of a pcapng Decryption Secrets Block. Parsing is vectorised
over chunks of the file, so indexing a 1 GB file takes a few seconds and about its index's
size in memory.

Lines are ``LABEL <64 hex client random> <hex secret>``. The labels fastcap uses are
``CLIENT_RANDOM`` (TLS 1.2 master secret) and the four TLS 1.3 traffic secrets; other labels
(``CLIENT_EARLY_TRAFFIC_SECRET``, ``EXPORTER_SECRET``, ``RSA``...) are ignored, as are ``#``
comments and blank lines; CRLF line ends are accepted. A garbled or truncated line gives one
warning naming the source and the line number. When the same label is logged twice for one
client random, the later line wins (a later file over an earlier one), as a key log that was
appended to is most current at its end.
"""

from __future__ import annotations

import mmap
import os
import stat
from dataclasses import dataclass, field, replace

import numpy as np

from ...errors import FastcapError
from ...pickling import compact

MAX_WARNINGS = 100  # warnings kept; the rest are counted in ``KeyLog.warnings_dropped``
CHUNK = 4 << 20  # bytes parsed at a time: bounds the temporary arrays of the vectorised parse
MAX_LINE = 1 << 16  # no key log line is longer; a longer one is skipped, not buffered
MAX_PIPED = 256 << 20  # a key log from a pipe is kept in memory: at most this much
MIN_LINE = 143  # the shortest valid line: a 13-letter label, 64 + 64 hex digits, two spaces

# label -> (SessionSecrets field, allowed secret lengths in bytes)
LABELS: dict[bytes, tuple[str, tuple[int, ...]]] = {
    b"CLIENT_RANDOM": ("master_secret", (48,)),
    b"CLIENT_HANDSHAKE_TRAFFIC_SECRET": ("client_handshake", (32, 48)),
    b"SERVER_HANDSHAKE_TRAFFIC_SECRET": ("server_handshake", (32, 48)),
    b"CLIENT_TRAFFIC_SECRET_0": ("client_traffic0", (32, 48)),
    b"SERVER_TRAFFIC_SECRET_0": ("server_traffic0", (32, 48)),
}

_HEXVAL = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEXVAL[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEXVAL[_c] = 10 + _i
_NOT_HEX = _HEXVAL == 255
_SHIFTS = np.arange(60, -4, -4).astype(np.uint64)  # 16 nibbles -> one big-endian uint64
# (label bytes as uint8 array, full line lengths allowed) per known label
_SHAPES = [
    (np.frombuffer(lab, dtype=np.uint8), tuple(len(lab) + 66 + 2 * n for n in lens))
    for lab, (_, lens) in LABELS.items()
]


@compact  # may travel back from worker processes inside a session
@dataclass(frozen=True, slots=True)
class SessionSecrets:
    """What the key logs know about one session, found by its ClientHello random."""

    client_random: bytes  # 32 bytes
    master_secret: bytes | None = None  # TLS 1.2: CLIENT_RANDOM <cr> <master secret>
    client_handshake: bytes | None = None  # CLIENT_HANDSHAKE_TRAFFIC_SECRET
    server_handshake: bytes | None = None  # SERVER_HANDSHAKE_TRAFFIC_SECRET
    client_traffic0: bytes | None = None  # CLIENT_TRAFFIC_SECRET_0
    server_traffic0: bytes | None = None  # SERVER_TRAFFIC_SECRET_0
    sources: tuple[str, ...] = ()  # "keys.log line 17", "x.pcapng DSB at byte 1234 line 3"


@dataclass(slots=True)
class _Source:
    """One indexed key log: its name, where its bytes are, and its sorted index."""

    name: str
    path: str | None  # a file, read again on lookup
    data: bytes | None  # or bytes kept in memory (a Decryption Secrets Block)
    prefixes: np.ndarray  # uint64, sorted
    offsets: np.ndarray  # uint32 or uint64 line start offsets, same order
    lines: np.ndarray  # uint32 or uint64 line numbers (1-based), same order
    _map: mmap.mmap | None = field(default=None, repr=False)

    def line_at(self, offset: int) -> bytes:
        buf = self.data if self.data is not None else self._mapped()
        end = buf.find(b"\n", offset)
        return bytes(buf[offset:end if end >= 0 else len(buf)])

    def _mapped(self):
        if self._map is None:
            with open(self.path, "rb") as f:  # type: ignore[arg-type]
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        return self._map

    def __getstate__(self):
        return (self.name, self.path, self.data, self.prefixes, self.offsets, self.lines)

    def __setstate__(self, state) -> None:
        self.name, self.path, self.data, self.prefixes, self.offsets, self.lines = state
        self._map = None


def _parse_line(line: bytes) -> tuple[str, bytes, bytes] | str | None:
    """(field, client random, secret) for a known label; None for what is skipped silently;
    a message for a garbled line."""
    line = line.rstrip(b"\r").strip()
    if not line or line.startswith(b"#"):
        return None
    parts = line.split()
    label = parts[0]
    known = LABELS.get(label)
    if known is None:
        if label.replace(b"_", b"").isalnum() and label.upper() == label and len(parts) == 3:
            return None  # a label fastcap does not use
        return "not a key log line"
    name = label.decode()
    if len(parts) != 3:
        return f"{name} needs a client random and a secret"
    cr_hex, secret_hex = parts[1], parts[2]
    try:
        cr, secret = bytes.fromhex(cr_hex.decode("ascii")), bytes.fromhex(
            secret_hex.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return f"{name}: not hex"
    if len(cr) != 32:
        return f"{name}: client random has {len(cr)} bytes, not 32"
    if len(secret) not in known[1]:
        return f"{name}: secret has {len(secret)} bytes (truncated?)"
    return known[0], cr, secret


class KeyLog:
    """Secrets indexed once by client random; picklable (workers may need it)."""

    def __init__(self) -> None:
        self._sources: list[_Source] = []
        self._keyless: list[str] = []  # names of sources read that gave no key
        self.warnings: list[str] = []
        self.warnings_dropped = 0
        self._count: int | None = None

    # ---- building ----

    def add_file(self, path: str | os.PathLike) -> None:
        """Index a key log file; never raises on content. An unreadable file raises
        :class:`FastcapError` with one line naming it."""
        name = os.fspath(path)
        try:
            mode = os.stat(name).st_mode
            if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode):
                # a pipe (`--keylog <(...)`) gives its bytes once: kept, not read again
                with open(name, "rb") as f:
                    data = f.read(MAX_PIPED + 1)
                if len(data) > MAX_PIPED:
                    raise FastcapError(f"{name}: a key log over {MAX_PIPED >> 20} MiB from a "
                                       "pipe; give it as a file")
                self.add_bytes(data, name)
                return
            size = os.path.getsize(name)
            with open(name, "rb") as f:
                prefixes, offsets, lines = self._index(f.read, size, name)
        except OSError as exc:
            raise FastcapError(f"{name}: cannot read key log: {exc.strerror or exc}") from None
        self._add(_Source(name, name, None, prefixes, offsets, lines))

    def add_bytes(self, data: bytes, source: str) -> None:
        """Index key log text held in memory, e.g. a pcapng Decryption Secrets Block."""
        data = bytes(data)
        pos = [0]

        def read(n: int) -> bytes:
            chunk = data[pos[0]:pos[0] + n]
            pos[0] += len(chunk)
            return chunk

        prefixes, offsets, lines = self._index(read, len(data), source)
        self._add(_Source(source, None, data, prefixes, offsets, lines))

    def joined(self, other: KeyLog) -> KeyLog:
        """A key log reading this one's sources, then ``other``'s (whose lines win): the
        indexes are shared, not copied."""
        out = KeyLog()
        out._sources = [*self._sources, *other._sources]
        out._keyless = [*self._keyless, *other._keyless]
        return out

    def _add(self, src: _Source) -> None:
        if len(src.prefixes):
            self._sources.append(src)
            self._count = None
        else:
            self._keyless.append(src.name)

    @property
    def names(self) -> set[str]:
        """The name of every key log read into this one, those that gave no key included:
        what not to read again (and warn of twice)."""
        return {s.name for s in self._sources}.union(self._keyless)

    def _warn(self, message: str) -> None:
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(message)
        else:
            self.warnings_dropped += 1

    def _index(self, read, size: int, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        off_type = np.uint32 if size < 1 << 32 else np.uint64
        # Filled in place: arrays appended chunk by chunk fragment the heap (RSS grew to half
        # the file's size). No valid line is shorter than MIN_LINE, so this bounds the count;
        # the untouched tail of np.empty costs no memory.
        room = size // MIN_LINE + 1
        prefixes = np.empty(room, np.uint64)
        offsets = np.empty(room, off_type)
        lines = np.empty(room, off_type)
        filled = 0
        base = 0  # stream offset of ``pending``
        line_no = 1  # line number of the first line in ``pending``
        pending = b""
        skipping = False  # inside a line too long to be a key log line
        while True:
            chunk = read(CHUNK)
            eof = not chunk
            if skipping:
                nl = chunk.find(b"\n")
                base += len(chunk) if nl < 0 else nl + 1
                if nl < 0 and not eof:
                    continue
                skipping, line_no, chunk = False, line_no + 1, chunk[nl + 1:] if nl >= 0 else b""
            buf = pending + chunk
            if not buf:
                break
            cut = len(buf) if eof else buf.rfind(b"\n") + 1
            if cut == 0 and not eof:  # no line end yet
                if len(buf) > MAX_LINE:
                    self._warn(f"{name} line {line_no}: longer than {MAX_LINE} bytes")
                    skipping, base, pending = True, base + len(buf), b""
                else:
                    pending = buf
                continue
            p, o, n, count = self._parse_chunk(buf, cut, base, line_no, name, eof)
            if filled + len(p) > len(prefixes):  # cannot happen (MIN_LINE); stay correct
                grow = filled + len(p) + room
                prefixes, offsets, lines = (np.resize(x, grow) for x in (prefixes, offsets, lines))
            prefixes[filled:filled + len(p)] = p
            offsets[filled:filled + len(p)] = o
            lines[filled:filled + len(p)] = n
            filled += len(p)
            base += cut
            line_no += count
            pending = buf[cut:]
            if eof:
                break
        order = np.argsort(prefixes[:filled], kind="stable")  # equal prefixes keep line order
        prefixes = prefixes[order]
        offsets = offsets[order]
        lines = lines[order]
        return prefixes, offsets, lines

    def _parse_chunk(self, buf: bytes, cut: int, base: int, first_line: int, name: str,
                     eof: bool):
        """Index the whole lines in ``buf[:cut]``. The fast path takes the lines that have the
        exact shape of a known label's line (label, space, 64 hex, space, hex of the right
        length) with array operations on same-length rows; the rest (comments, other labels,
        garbled lines) go through :func:`_parse_line` one by one."""
        a = np.frombuffer(buf, dtype=np.uint8, count=cut)
        nl = np.flatnonzero(a == 10)
        ends = nl if buf[cut - 1:cut] == b"\n" else np.append(nl, cut)
        starts = np.concatenate(([0], nl + 1))[: len(ends)]
        count = len(ends)
        if count == 0:
            return np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(0, np.int64), 0
        ends = ends - ((ends > starts) & (a[np.maximum(ends - 1, 0)] == 13))  # CRLF
        length = ends - starts
        ok = np.zeros(count, dtype=bool)
        pre_parts, idx_parts = [], []
        for lab, lengths in _SHAPES:
            head = np.append(lab, 32).astype(np.uint8)
            for size in lengths:
                cand = np.flatnonzero(length == size)
                if not len(cand) or size > cut:
                    continue
                rows = np.lib.stride_tricks.sliding_window_view(a, size)[starts[cand]]
                body = rows[:, len(head):]
                good = np.all(rows[:, :len(head)] == head, axis=1)
                good &= body[:, 64] == 32
                hexes = ~_NOT_HEX[body]
                hexes[:, 64] = True
                good &= np.all(hexes, axis=1)
                nibbles = _HEXVAL[body[good, :16]].astype(np.uint64)
                pre_parts.append(np.bitwise_or.reduce(nibbles << _SHIFTS, axis=1))
                idx_parts.append(cand[good])
                ok[cand[good]] = True
        # Slow path: comments, blank lines, other labels, garbled or odd-spaced lines.
        extra_pre: list[int] = []
        extra_idx: list[int] = []
        for i in np.flatnonzero(~ok).tolist():
            got = _parse_line(buf[int(starts[i]):int(ends[i])])
            if isinstance(got, str):
                truncated = eof and i == count - 1 and buf[cut - 1:cut] != b"\n"
                self._warn(f"{name} line {first_line + i}: {got}"
                           + (" (file ends inside this line)" if truncated else ""))
            elif got is not None:
                extra_pre.append(int.from_bytes(got[1][:8], "big"))
                extra_idx.append(i)
        pre_parts.append(np.array(extra_pre, dtype=np.uint64))
        idx_parts.append(np.array(extra_idx, dtype=np.int64))
        idx = np.concatenate(idx_parts)
        return np.concatenate(pre_parts), starts[idx] + base, idx + first_line, count

    # ---- querying ----

    def lookup(self, client_random: bytes) -> SessionSecrets | None:
        """All secrets logged for this client random, or None if there are none."""
        if len(client_random) != 32:
            return None
        key = np.uint64(int.from_bytes(client_random[:8], "big"))
        found = SessionSecrets(client_random)
        sources: list[str] = []
        for src in self._sources:
            lo = int(np.searchsorted(src.prefixes, key, "left"))
            hi = int(np.searchsorted(src.prefixes, key, "right"))
            for j in sorted(range(lo, hi), key=lambda j: int(src.offsets[j])):  # later wins
                try:
                    got = _parse_line(src.line_at(int(src.offsets[j])))
                except (OSError, ValueError):  # the file changed or vanished since indexing
                    continue
                if not isinstance(got, tuple) or got[1] != client_random:
                    continue
                found = replace(found, **{got[0]: got[2]})
                sources.append(f"{src.name} line {int(src.lines[j])}")
        if not sources:
            return None
        return replace(found, sources=tuple(sources))

    def __len__(self) -> int:
        """Distinct client randoms indexed (told apart by their first 8 bytes)."""
        if self._count is None:
            if not self._sources:
                self._count = 0
            else:  # sorted prefixes: count the steps (np.unique would take 5x the memory)
                joined = (self._sources[0].prefixes if len(self._sources) == 1
                          else np.sort(np.concatenate([s.prefixes for s in self._sources])))
                self._count = int(np.count_nonzero(joined[1:] != joined[:-1])) + 1
        return self._count

    def index_bytes(self) -> int:
        """Memory held by the index (not counting bytes kept from DSBs)."""
        return sum(s.prefixes.nbytes + s.offsets.nbytes + s.lines.nbytes for s in self._sources)

    def __getstate__(self):
        return (self._sources, self._keyless, self.warnings, self.warnings_dropped)

    def __setstate__(self, state) -> None:
        self._sources, self._keyless, self.warnings, self.warnings_dropped = state
        self._count = None
