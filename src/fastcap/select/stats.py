"""`fastcap stats`: what a capture holds, read in one pass, as a dataclass / JSON / text."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..options import ScanOptions, resolve
from ..read.capture import DEFAULT_SLAB, DEFAULT_WINDOW
from ..read.linktypes import describe
from ..read.stream import open_capture
from .checksums import rewritten_note
from .flows import FlowTable
from .fragments import FRAG_FIRST, FRAG_ROW, FRAG_V6, Defragmenter
from .selection import FrameCounters, iter_selected


@dataclass(frozen=True, slots=True)
class FileStats:
    path: str
    backend: str
    format: str
    size: int
    byte_orders: tuple[str, ...]
    sections: int
    interfaces: int
    linktypes: tuple[str, ...]
    nanosecond: bool
    snaplen: int
    frames: int  # Wireshark's frame count (packet records + frame-numbered blocks)
    packets: int
    other_records: dict[str, int]
    bytes: int
    first_ts_ns: int | None
    last_ts_ns: int | None
    ipv4: int
    ipv6: int
    tcp: int
    udp: int
    other: int
    fragments: int
    snapped: int
    ports: tuple[int, ...]
    selected_frames: int
    selected_flows: int
    icmp_about_selected: int
    skipped: dict[str, int] = field(default_factory=dict)
    unreadable: tuple[tuple[int, int], ...] = ()  # [start, end) bytes
    warnings: tuple[str, ...] = ()
    warning_offsets: tuple[int, ...] = ()
    checksums_verified: bool = False  # like Wireshark's default: bad checksums still count
    # the sample the scan sums to tell rewritten payloads (`select.checksums`): segments
    # summed (under a right IPv4 header checksum, or IPv6), those of them wrong and no offload's
    checksums_sampled: int = 0
    checksums_rewritten: int = 0
    compression: str | None = None  # gzip | zstd | lz4: size is then the decompressed size
    # Frames a reading limit touched, by reason (times held at the ends of 64-bit
    # nanoseconds): the first and last timestamps above may be such a held time.
    limits: dict[str, int] = field(default_factory=dict)
    # Frames whose inner frame was decoded and selected on, by outermost tunnel (VXLAN, ERSPAN...)
    tunnels: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain JSON data: the sequences as lists, as JSON gives them back."""
        return {**asdict(self), "byte_orders": list(self.byte_orders),
                "linktypes": list(self.linktypes), "ports": list(self.ports),
                "unreadable": [list(r) for r in self.unreadable],
                "warnings": list(self.warnings),
                "warning_offsets": list(self.warning_offsets)}


def compute_stats(path: str | bytes | os.PathLike, options: ScanOptions | None = None, *,
                  window: int = DEFAULT_WINDOW, slab_width: int = DEFAULT_SLAB,
                  **kw: Any) -> FileStats:
    """Read the whole file once and summarise it; CaptureError if it is not a capture.
    Of `options` (or the keywords that build them: `ports`, `backend`, `piece`), the ports
    to count as selected, the reader and the stream piece size apply."""
    o = resolve(options, kw, "compute_stats")
    ports, backend, piece = tuple(sorted(o.ports)), o.backend, o.piece
    counters = FrameCounters()
    flows = FlowTable()
    selected = 0
    with open_capture(path, backend=backend, window=window, slab_width=slab_width,
                      piece=piece) as cap:
        defrag = Defragmenter()  # a TCP segment in IP fragments counts in its last frame
        for sel in iter_selected(cap, ports, counters, flows):
            frag = np.flatnonzero(np.asarray(sel.tcp.flags) & FRAG_ROW)
            selected += len(sel) - len(frag)
            t = sel.tcp
            for i in frag.tolist():
                selected += defrag.add_row(sel, i, cap.buffer) is not None
                # an IPv4 first fragment Wireshark does not defragment (cut by the snap
                # length) is read as the TCP segment it begins; an IPv6 one is not
                selected += int(t.flags[i]) & (FRAG_FIRST | FRAG_V6) == FRAG_FIRST and int(
                    t.payload_caplen[i]) < int(t.payload_len[i])
        defrag.finish()
        counters.skipped.update(defrag.take_skipped())
        meta = cap.meta
        skipped = dict(counters.skipped)
        for reason, count in meta.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + count
        warnings = [(str(w), w.offset) for w in meta.warnings]
        rewritten = rewritten_note(meta.path, counters.checksums_sampled,
                                   counters.checksums_rewritten, counters.checksums_first,
                                   counters.checksums_flows)
        if rewritten:  # as the scan warns: the same sample, the same words
            warnings.append((rewritten, counters.checksums_first))
        linktypes = []
        for ifc in meta.interfaces:
            if describe(ifc.linktype) not in linktypes:
                linktypes.append(describe(ifc.linktype))
        return FileStats(
            path=meta.path,
            backend=cap.walker.name,
            format=meta.format,
            size=meta.size,
            byte_orders=tuple(meta.byte_orders),
            sections=meta.sections,
            interfaces=len(meta.interfaces),
            linktypes=tuple(linktypes),
            nanosecond=meta.nanosecond,
            snaplen=meta.snaplen,
            frames=counters.packets + sum(meta.other_records.values()),
            packets=counters.packets,
            other_records=dict(meta.other_records),
            bytes=counters.bytes,
            first_ts_ns=counters.first_ts_ns,
            last_ts_ns=counters.last_ts_ns,
            ipv4=counters.ipv4,
            ipv6=counters.ipv6,
            tcp=counters.tcp,
            udp=counters.udp,
            other=counters.other,
            fragments=counters.fragments,
            snapped=counters.snapped,
            ports=ports,
            selected_frames=selected,
            selected_flows=len(flows),
            icmp_about_selected=counters.icmp_about_selected,
            skipped=skipped,
            unreadable=tuple(meta.unreadable),
            warnings=tuple(w for w, _ in warnings),
            warning_offsets=tuple(at for _, at in warnings),
            checksums_sampled=counters.checksums_sampled,
            checksums_rewritten=counters.checksums_rewritten,
            compression=meta.compression,
            limits=dict(counters.notes),
            tunnels=dict(sorted(counters.tunnels.items())),
        )
