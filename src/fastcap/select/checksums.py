"""A sample of TCP checksums, to tell a capture whose payload bytes were changed after it was
taken (anonymised or edited by a tool that keeps the headers but not the checksums).

Checksums are not verified as a rule (as in Wireshark's default settings): a frame sent by the
capturing host carries what checksum offload left (zero, or the pseudo-header's sum only), and
one bad checksum says little. But segments whose IPv4 header checksum is right (or IPv6 ones,
which have none) while their TCP checksum is neither right nor an offloaded one are bytes
changed after the sender summed them; when many are, what the scan reads from them (SMTP lines,
TLS handshakes) is likely not what was sent, and the scan says so instead of reading as odd
sessions. Only some small segments are summed (up to `SAMPLED_PAYLOAD` bytes of payload: the
SMTP dialogue, most TLS handshake starts; those over `ALWAYS_SAMPLED` bytes one in
`SAMPLE_EVERY`), so the cost stays within the walk's noise.

Addresses or ports rewritten without the TCP checksums (a hand edit, or a tool that sums only
the IPv4 header anew; `tcprewrite` sums both) leave wrong checksums too, but not the same way:
in a ones'-complement sum each changed pseudo-header or port word moves every segment of one
flow direction by the same amount, while changed payload bytes move each segment by its own. So
the rewritten segments' sums are kept by flow direction (`FlowSums`), and a file whose every
flow direction with two or more of them has one sum was rewritten in its addresses, its
payloads intact. That is what lets IPv6 segments join the sample: with no header checksum to
tell a rewritten address by, the flow direction's one sum tells it. A frame checksum offload
left (the old pseudo-header's sum) is off from the new pseudo-header's sum by that one amount
too, so that difference is kept beside; one where offload left that sum's complement is not
(the complement of the old sum less the new one moves with the segment's length, which both
hold), but the stored checksum plus the new sum is the old sum's complement plus the new one:
the same amount negated, for every segment of the flow direction, so that sum is kept too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .decode import Headers, TcpFields

SAMPLED_PAYLOAD = 512  # payload bytes at most of a segment summed
ALWAYS_SAMPLED = 64  # payload bytes at most of a segment always summed: an SMTP command or
# a short reply (a few in every session), else ...
SAMPLE_EVERY = 8  # ... of those, the share summed: a hash of its sequence and acknowledgment
# numbers picks a segment, whatever the windows or ranges a walk reads the file in
_WIDTHS = (64, 128, 256, 60 + SAMPLED_PAYLOAD)  # widths rows are copied in, even
FLOWS_KEPT = 256  # flow directions whose rewritten sums are kept: those of the smallest
# keys (a hash), so that any windows, ranges or order keep the same ones

# flow direction key -> (least, greatest) of how far each of its rewritten segments' TCP sum
# is off, the same of how far its stored checksum is from the pseudo-header's sum (an
# offloaded frame's), the same of its stored checksum plus that sum (a frame offload left
# the complement of that sum in), and the segments
FlowSums = dict[int, tuple[int, int, int, int, int, int, int]]
_Row = tuple[int, int, int, int, int, int, int, int]  # a key, then as in FlowSums
_MERGE = (min, max) * 3 + (int.__add__,)  # how two windows' FlowSums values join


@dataclass(frozen=True, slots=True)
class ChecksumSample:
    """Of the segments summed: IPv6 ones and those whose IPv4 header checksum is right
    (`sampled`), and of those the ones whose TCP checksum is wrong and no offloaded one
    (`rewritten`), the first of which begins its frame at byte `first` of the file (-1:
    none), and their sums by flow direction (`flows`: a key, then as in FlowSums)."""

    sampled: int = 0
    rewritten: int = 0
    first: int = -1
    flows: tuple[_Row, ...] = ()


def add_flow_sums(into: FlowSums, rows) -> None:
    """Adds (key, *FlowSums' values) rows to `into` and keeps the FLOWS_KEPT smallest keys:
    a key let go is never among them again, so the result is the same whatever the order
    and grouping the rows come in (windows, ranges)."""
    for key, *got in rows:
        if key in into:
            into[key] = tuple(f(x, y) for f, x, y in zip(_MERGE, into[key], got, strict=True))
        else:
            into[key] = tuple(got)
    if len(into) > FLOWS_KEPT:
        for key in sorted(into)[FLOWS_KEPT:]:
            del into[key]


def rewrite_kind(flows: FlowSums) -> str | None:
    """What the kept flow directions say was rewritten: "addresses" when every one with two
    rewritten segments or more has them all off by the same sum, or their stored checksums
    all off the pseudo-header's sum by the same, or all summing to the same with it
    (offloaded before the rewrite, as that sum or its complement; a payload rewrite does
    any of these by chance once in 65,535 for each), "payload" when one has none, None when
    none has two segments to tell by."""
    told = [a == b or c == d or e == f for a, b, c, d, e, f, n in flows.values() if n > 1]
    if not told:
        return None
    return "addresses" if all(told) else "payload"


def _flow_keys(tf: TcpFields, idx: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row's addresses and ports, as the file has them."""
    a = np.ascontiguousarray(tf.src_addr[idx]).view(np.uint64)
    b = np.ascontiguousarray(tf.dst_addr[idx]).view(np.uint64)
    ports = (tf.sport[idx].astype(np.uint64) << np.uint64(16)) | tf.dport[idx]
    h = np.zeros(len(idx), np.uint64)
    for col in (a[:, 0], a[:, 1], b[:, 0], b[:, 1], ports):
        h = (h ^ col) * np.uint64(0x9E3779B97F4A7C15)
        h ^= h >> np.uint64(31)
    return h


def _per_flow(keys: np.ndarray, off: np.ndarray, from_partial: np.ndarray,
              with_partial: np.ndarray) -> tuple[_Row, ...]:
    """FlowSums' rows of the FLOWS_KEPT smallest `keys` (a key past them in one window is
    past them in the file too)."""
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    if len(starts) > FLOWS_KEPT:
        end = starts[FLOWS_KEPT]
        starts, order, keys = starts[:FLOWS_KEPT], order[:end], keys[:end]
    both = np.stack([off[order], from_partial[order], with_partial[order]], axis=1)
    lo = np.minimum.reduceat(both, starts, axis=0)
    hi = np.maximum.reduceat(both, starts, axis=0)
    n = np.diff(np.r_[starts, len(keys)])
    return tuple(zip(keys[starts].tolist(), lo[:, 0].tolist(), hi[:, 0].tolist(),
                     lo[:, 1].tolist(), hi[:, 1].tolist(), lo[:, 2].tolist(),
                     hi[:, 2].tolist(), n.tolist(), strict=True))


def _fold(s: np.ndarray) -> np.ndarray:
    for _ in range(3):  # 64-bit sums of at most a few thousand words fold in three steps
        s = (s & 0xFFFF) + (s >> 16)
    return s


def _word_sums(buf: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """The sum of the big-endian 16-bit words of buf[start:start+length] for each row (an
    odd last byte padded with zero), unfolded.  Rows are copied whole (`sliding_window_view`)
    in a few widths, so short segments are not summed at the longest one's width."""
    out = np.zeros(len(start), np.uint64)
    lo = 0
    for width in _WIDTHS:
        rows = np.flatnonzero((length > lo) & (length <= width))
        lo = width
        if not len(rows):
            continue
        at = start[rows]
        width = min(width, len(buf))
        near_end = at > len(buf) - width
        # rows an even number of bytes wide (a buffer shorter than the width may be odd),
        # so that they read as 16-bit words; a row's bytes past its end are zeros
        b = np.zeros((len(rows), width + (width & 1)), np.uint8)
        b[~near_end, :width] = sliding_window_view(buf, width)[at[~near_end]]
        for i in np.flatnonzero(near_end).tolist():  # the last frames of the buffer
            tail = buf[at[i]:]
            b[i, :len(tail)] = tail
        b *= np.arange(b.shape[1]) < length[rows, None]
        out[rows] = b.view(">u2").sum(axis=1, dtype=np.uint64)
    return out


def sample_checksums(buf: np.ndarray, frame_off: np.ndarray, hd: Headers, tf: TcpFields,
                     keys_up_to: int | None = None) -> ChecksumSample:
    """The checksums of the whole, unfragmented IPv4 and IPv6 TCP segments among the rows
    `tf` (with `hd` their headers, `frame_off` their frames' file offsets) that carry
    1..SAMPLED_PAYLOAD bytes of payload: all those with ALWAYS_SAMPLED bytes at most, one in
    SAMPLE_EVERY of the others.  `keys_up_to`: the greatest flow direction key kept when
    FLOWS_KEPT are (`add_flow_sums`), past which none is summed by flow."""
    seg = hd.ip_end - hd.l4_off  # the segment the IP header declares ...
    picked = (tf.seq + tf.ack) * np.uint32(0x9E3779B1) >> np.uint32(29)  # a hash of both
    # IPv6 with no extension header (a routing header's last address would be the
    # pseudo-header's destination)
    ip6 = (hd.l3 == 6) & (hd.l4_off - hd.l3_off == 40)
    m = (((hd.l3 == 4) | ip6) & (hd.frag == 0) & (tf.hdr_len >= 20) & (tf.payload_len > 0)
         & (tf.payload_len <= SAMPLED_PAYLOAD)
         & ((picked % SAMPLE_EVERY == 0) | (tf.payload_len <= ALWAYS_SAMPLED))
         # ... all of it captured (no Ethernet padding summed)
         & (seg == tf.hdr_len + tf.payload_len) & (tf.payload_caplen == tf.payload_len))
    if not m.any():
        return ChecksumSample()
    idx = np.flatnonzero(m)
    base = frame_off[idx].astype(np.int64)
    ip = base + hd.l3_off[idx]
    tcp = base + hd.l4_off[idx]
    seg = seg[idx].astype(np.int64)
    v6 = ip6[idx]
    ihl = np.where(v6, 0, hd.l4_off[idx] - hd.l3_off[idx]).astype(np.int64)
    ip_good = (_fold(_word_sums(buf, ip, ihl)) == 0xFFFF) | v6  # IPv6 has no header sum
    pseudo = seg.astype(np.uint64) + 6
    # the addresses as decoded: a source route's last address is the destination the
    # sender summed, as Wireshark's check takes it (`iproute`), not the next router
    for rows, lo in ((~v6, 12), (v6, 0)):
        if rows.any():
            rows = np.flatnonzero(rows)
            addr = np.concatenate([tf.src_addr[idx[rows], lo:], tf.dst_addr[idx[rows], lo:]],
                                  axis=1).astype(np.uint64)
            pseudo[rows] += (addr[:, 0::2] << 8).sum(axis=1) + addr[:, 1::2].sum(axis=1)
    total = _fold(_word_sums(buf, tcp, seg) + pseudo)  # 0xFFFF, or off by the change
    good = total == 0xFFFF
    stored = (buf[tcp + 16].astype(np.uint64) << 8) | buf[tcp + 17]
    partial = _fold(pseudo)
    offloaded = (stored == 0) | (stored == partial) | (stored == (partial ^ 0xFFFF))
    bad = np.flatnonzero(ip_good & ~good & ~offloaded)
    if not len(bad):
        return ChecksumSample(int(np.count_nonzero(ip_good)))
    sampled, rewritten, first = int(np.count_nonzero(ip_good)), len(bad), int(base[bad].min())
    keys = _flow_keys(tf, idx[bad])
    if keys_up_to is not None:  # flow directions past those kept so far are never kept
        keep = keys <= np.uint64(keys_up_to)
        keys, bad = keys[keep], bad[keep]
    return ChecksumSample(sampled, rewritten, first, _per_flow(
        keys, total[bad], _fold(stored[bad] + (partial[bad] ^ 0xFFFF)),
        _fold(stored[bad] + partial[bad])) if len(bad) else ())


def rewritten_note(path: str, sampled: int, rewritten: int, first: int = -1,
                   flows: FlowSums | None = None) -> str | None:
    """The warning for a file whose sample (`sampled` segments, `rewritten` of them wrong,
    the first in the frame at byte `first`, their sums by flow direction `flows`) says most
    of its bytes were changed after they were sent: its payloads, or (each flow direction
    off by one sum) only its addresses or ports; None when it does not (a stray bad checksum
    is a frame the receiver dropped, not a rewritten capture)."""
    if not rewritten or 2 * rewritten <= sampled:
        return None
    at = f" (the first in the frame at byte {first})" if first >= 0 else ""
    head = (f"{path}: {rewritten} of {sampled} sampled TCP segments on the selected "
            f"ports{at} have a TCP checksum that is wrong, and no checksum offload's, under a "
            "right IPv4 header checksum (or in IPv6, which has none)")
    mark = "(tshark -o tcp.check_checksum:TRUE marks each)"
    kind = rewrite_kind(flows or {})
    if kind == "addresses":
        return (f"{head}, off by the same sum in every segment of each flow direction: "
                "addresses or ports rewritten without the TCP checksums, payloads intact, "
                f"so the hosts and ports shown may not be those on the wire {mark}")
    if kind == "payload":
        return (f"{head}, off by a different sum from segment to segment of a flow "
                "direction: payload rewritten after it was sent (by an anonymiser or an "
                "edit), so the SMTP and TLS read from them may not be what was sent "
                f"{mark}")
    return (f"{head}: their bytes were changed after they were sent (payload rewritten, by "
            "an anonymiser or an edit, or addresses rewritten without the TCP checksums), so "
            f"the SMTP and TLS read from them may not be what was sent {mark}")
