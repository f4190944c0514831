"""Streaming pcap and pcapng writers.

They exist so tests can produce every variant a reader must accept (both byte orders, nanosecond
pcap, FCS bits, multi-section pcapng, odd time resolutions, obsolete and unknown blocks) without
depending on libpcap. Nothing is buffered beyond a bounded write chunk, so multi-gigabyte
benchmark files can be written from generators.
"""

from __future__ import annotations

import io
import ipaddress
import os
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D

BT_SHB = 0x0A0D0D0A
BT_IDB = 0x00000001
BT_OPB = 0x00000002
BT_SPB = 0x00000003
BT_NRB = 0x00000004
BT_ISB = 0x00000005
BT_EPB = 0x00000006
BT_DSB = 0x0000000A
BT_CB_COPY = 0x00000BAD
BT_CB_NOCOPY = 0x40000BAD
BYTE_ORDER_MAGIC = 0x1A2B3C4D

OPT_ENDOFOPT = 0
OPT_COMMENT = 1
IF_NAME = 2
IF_TSRESOL = 9
IF_TSOFFSET = 14
SECRETS_TLS_KEYLOG = 0x544C534B

_CHUNK = 1 << 20


@dataclass
class Record:
    """One captured packet: bytes as captured, absolute time in ns, and the on-wire length."""

    data: bytes
    ts_ns: int
    orig_len: int | None = None


def pcap_fcs_bits(fcs_words: int) -> int:
    """Upper link-type bits announcing ``fcs_words`` 16-bit words of FCS (F bit + length)."""
    return ((fcs_words & 0xF) << 28) | 0x04000000


class _Sink:
    """Open ``dest`` if it is a path; otherwise write through to the caller's file object."""

    def __init__(self, dest: str | os.PathLike | BinaryIO) -> None:
        if isinstance(dest, str | os.PathLike):
            self.fh: BinaryIO = open(dest, "wb")  # closed in close()
            self.owned = True
        else:
            self.fh = dest
            self.owned = False
        self.parts: list[bytes] = []
        self.pending = 0

    def write(self, data: bytes) -> None:
        self.parts.append(data)
        self.pending += len(data)
        if self.pending >= _CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            self.fh.write(b"".join(self.parts))
            self.parts.clear()
            self.pending = 0

    def close(self) -> None:
        self.flush()
        if self.owned:
            self.fh.close()
        elif hasattr(self.fh, "flush"):
            self.fh.flush()


def write_pcap(
    dest: str | os.PathLike | BinaryIO,
    records: Iterable[Record],
    *,
    linktype: int = 1,
    nanosecond: bool = False,
    big_endian: bool = False,
    snaplen: int = 262144,
    fcs_bits: int = 0,
) -> None:
    """Write a classic pcap file, streaming ``records``.

    ``fcs_bits`` is OR-ed verbatim into the link-type field (see :func:`pcap_fcs_bits`).
    Timestamps are split with floor division, so sub-resolution digits are truncated.
    Data is written as given (never truncated to ``snaplen``) so tests can write oversize records.
    """
    if fcs_bits & 0xFFFF:
        raise ValueError("fcs_bits must not touch the 16-bit link type")
    bo = ">" if big_endian else "<"
    magic = PCAP_MAGIC_NS if nanosecond else PCAP_MAGIC_US
    div = 1 if nanosecond else 1000
    rec = struct.Struct(bo + "IIII")
    sink = _Sink(dest)
    try:
        sink.write(struct.pack(bo + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype | fcs_bits))
        for r in records:
            sec, frac = divmod(r.ts_ns, 1_000_000_000)
            orig = len(r.data) if r.orig_len is None else r.orig_len
            sink.write(rec.pack(sec & 0xFFFFFFFF, frac // div, len(r.data), orig))
            sink.write(r.data)
    finally:
        sink.close()


def _opts(bo: str, options: Sequence[tuple[int, bytes]]) -> bytes:
    """Encode options padded to 32 bits and terminated with opt_endofopt (none: empty)."""
    if not options:
        return b""
    out = []
    for code, value in options:
        out.append(struct.pack(bo + "HH", code, len(value)))
        out.append(value + b"\x00" * (-len(value) % 4))
    out.append(struct.pack(bo + "HH", OPT_ENDOFOPT, 0))
    return b"".join(out)


def _pad4(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 4)


def tsresol_units(tsresol: int) -> int:
    """Units per second for a raw if_tsresol byte (high bit set: power of two)."""
    if tsresol & 0x80:
        return 1 << (tsresol & 0x7F)
    return 10**tsresol


@dataclass
class _Iface:
    linktype: int
    snaplen: int
    units: int  # timestamp units per second
    tsoffset: int  # seconds


class PcapngWriter:
    """Block-by-block pcapng writer; use as a context manager over a path or binary file.

    A section is opened implicitly (little-endian) if a block is written before ``section()``.
    Interface ids restart at 0 in each section, as in the format.
    """

    def __init__(self, dest: str | os.PathLike | BinaryIO) -> None:
        self._sink = _Sink(dest)
        self._bo = "<"
        self._ifaces: list[_Iface] = []
        self._in_section = False

    def __enter__(self) -> PcapngWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._sink.close()

    # --- generic ---

    def raw_block(self, block_type: int, body: bytes) -> None:
        """Write any block: body is padded to 32 bits and framed with both length fields."""
        if not self._in_section and block_type != BT_SHB:
            self.section()
        body = _pad4(body)
        total = len(body) + 12
        self._sink.write(struct.pack(self._bo + "II", block_type, total) + body)
        self._sink.write(struct.pack(self._bo + "I", total))

    def _block(self, block_type: int, fixed: bytes, options: Sequence[tuple[int, bytes]]) -> None:
        self.raw_block(block_type, _pad4(fixed) + _opts(self._bo, options))

    # --- blocks ---

    def section(
        self, *, big_endian: bool = False, options: Sequence[tuple[int, bytes]] = ()
    ) -> None:
        """Start a new section (section length -1: unknown, as streaming writers do)."""
        self._bo = ">" if big_endian else "<"
        self._ifaces = []
        self._in_section = True
        fixed = struct.pack(self._bo + "IHHq", BYTE_ORDER_MAGIC, 1, 0, -1)
        self._block(BT_SHB, fixed, options)

    def interface(
        self,
        linktype: int,
        *,
        snaplen: int = 0,
        tsresol: int | None = None,
        tsoffset: int | None = None,
        name: str | None = None,
        options: Sequence[tuple[int, bytes]] = (),
    ) -> int:
        """Add an interface; returns its id within the current section.

        ``tsresol`` is the raw if_tsresol byte (default: microseconds, option omitted);
        ``tsoffset`` is whole seconds added by readers to every timestamp.
        """
        if not self._in_section:
            self.section()
        opts = list(options)
        if name is not None:
            opts.append((IF_NAME, name.encode()))
        if tsresol is not None:
            opts.append((IF_TSRESOL, bytes([tsresol])))
        if tsoffset is not None:
            opts.append((IF_TSOFFSET, struct.pack(self._bo + "q", tsoffset)))
        self._block(BT_IDB, struct.pack(self._bo + "HHI", linktype, 0, snaplen), opts)
        self._ifaces.append(
            _Iface(
                linktype, snaplen, tsresol_units(6 if tsresol is None else tsresol), tsoffset or 0
            )
        )
        return len(self._ifaces) - 1

    def to_units(self, iface: int, ts_ns: int) -> int:
        """Convert absolute ns to the interface's units: floor((ts_ns - tsoffset s) * units / 1e9).

        Floor (not round) matches what a reader gets back when it truncates, and keeps values
        monotonic; the tsoffset is subtracted because readers add it back.
        """
        i = self._ifaces[iface]
        return (ts_ns - i.tsoffset * 1_000_000_000) * i.units // 1_000_000_000

    def _ts(self, iface: int, ts_ns: int | None, ts_units: int | None) -> int:
        if (ts_ns is None) == (ts_units is None):
            raise ValueError("give exactly one of ts_ns and ts_units")
        if ts_units is not None:
            return ts_units
        return self.to_units(iface, ts_ns)  # type: ignore[arg-type]

    def epb(
        self,
        iface: int,
        data: bytes,
        *,
        ts_ns: int | None = None,
        ts_units: int | None = None,
        orig_len: int | None = None,
        options: Sequence[tuple[int, bytes]] = (),
    ) -> None:
        """Enhanced Packet Block. ``ts_ns`` uses the interface's tsresol/tsoffset (see to_units)."""
        ts = self._ts(iface, ts_ns, ts_units) & 0xFFFFFFFFFFFFFFFF
        orig = len(data) if orig_len is None else orig_len
        fixed = struct.pack(self._bo + "IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(data), orig)
        self._block(BT_EPB, fixed + _pad4(data), options)

    def spb(self, data: bytes, *, orig_len: int | None = None) -> None:
        """Simple Packet Block (no timestamp; belongs to interface 0)."""
        orig = len(data) if orig_len is None else orig_len
        self.raw_block(BT_SPB, struct.pack(self._bo + "I", orig) + data)

    def obsolete_pb(
        self,
        iface: int,
        data: bytes,
        *,
        ts_units: int = 0,
        orig_len: int | None = None,
        drops: int = 0,
        options: Sequence[tuple[int, bytes]] = (),
    ) -> None:
        """Obsolete Packet Block (type 2), still emitted by some old tools."""
        orig = len(data) if orig_len is None else orig_len
        ts = ts_units & 0xFFFFFFFFFFFFFFFF
        fixed = struct.pack(
            self._bo + "HHIIII", iface, drops, ts >> 32, ts & 0xFFFFFFFF, len(data), orig
        )
        self._block(BT_OPB, fixed + _pad4(data), options)

    def nrb(
        self,
        entries: Iterable[tuple[str, str | Sequence[str]]],
        *,
        options: Sequence[tuple[int, bytes]] = (),
    ) -> None:
        """Name Resolution Block from (address, name or names) pairs."""
        recs = []
        for addr, names in entries:
            ip = ipaddress.ip_address(addr)
            names = [names] if isinstance(names, str) else list(names)
            value = ip.packed + b"".join(n.encode() + b"\x00" for n in names)
            rtype = 1 if ip.version == 4 else 2
            recs.append(struct.pack(self._bo + "HH", rtype, len(value)) + _pad4(value))
        recs.append(struct.pack(self._bo + "HH", 0, 0))
        self._block(BT_NRB, b"".join(recs), options)

    def isb(
        self, iface: int, ts_units: int = 0, *, options: Sequence[tuple[int, bytes]] = ()
    ) -> None:
        """Interface Statistics Block."""
        ts = ts_units & 0xFFFFFFFFFFFFFFFF
        self._block(
            BT_ISB, struct.pack(self._bo + "III", iface, ts >> 32, ts & 0xFFFFFFFF), options
        )

    def dsb(self, secrets_type: int, data: bytes) -> None:
        """Decryption Secrets Block (e.g. SECRETS_TLS_KEYLOG with an NSS key log)."""
        self._block(BT_DSB, struct.pack(self._bo + "II", secrets_type, len(data)) + data, ())

    def custom(self, pen: int, data: bytes, *, copyable: bool = True) -> None:
        """Custom Block: 0x00000BAD when copyable, 0x40000BAD when it must not be copied."""
        btype = BT_CB_COPY if copyable else BT_CB_NOCOPY
        self.raw_block(btype, struct.pack(self._bo + "I", pen) + data)


def write_pcapng(
    dest: str | os.PathLike | BinaryIO,
    records: Iterable[Record],
    *,
    linktype: int = 1,
    big_endian: bool = False,
    tsresol: int | None = None,
    snaplen: int = 0,
    tls_keylog: bytes | None = None,
) -> None:
    """Convenience: one section, one interface, every record as an EPB.

    ``tls_keylog`` (NSS key log bytes) goes into a Decryption Secrets Block right after the
    section header, where ``editcap --inject-secrets tls,FILE`` puts the file's bytes verbatim.
    """
    with PcapngWriter(dest) as w:
        w.section(big_endian=big_endian)
        if tls_keylog is not None:
            w.dsb(SECRETS_TLS_KEYLOG, tls_keylog)
        w.interface(linktype, snaplen=snaplen, tsresol=tsresol)
        for r in records:
            w.epb(0, r.data, ts_ns=r.ts_ns, orig_len=r.orig_len)


def keylog_bytes(lines: Iterable[str]) -> bytes:
    """An NSS key log file's bytes from its lines (one per line, newline-terminated)."""
    return "".join(f"{line}\n" for line in lines).encode("ascii")


def to_bytes(write: Callable[..., None], *args: object, **kwargs: object) -> bytes:
    """Run a writer function into memory, e.g. ``to_bytes(write_pcap, records)``."""
    buf = io.BytesIO()
    write(buf, *args, **kwargs)
    return buf.getvalue()
