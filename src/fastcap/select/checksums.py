"""A sample of TCP checksums, to tell a capture whose payload bytes were changed after it was
taken (anonymised or edited by a tool that keeps the headers but not the checksums).

Checksums are not verified as a rule (as in Wireshark's default settings): a frame sent by
the capturing host carries what checksum offload left (zero, or the pseudo-header's sum
only), and one bad checksum says little.  But IPv4 segments whose header checksum is right
while their TCP checksum is neither right nor an offloaded one are bytes changed after the
sender summed them; when many are, what the scan reads from them (SMTP lines, TLS
handshakes) is likely not what was sent, and the scan says so instead of reading as odd
sessions.  Only some small segments are summed (up to `SAMPLED_PAYLOAD` bytes of payload: the
SMTP dialogue, most TLS handshake starts; those over `ALWAYS_SAMPLED` bytes one in
`SAMPLE_EVERY`), so the cost stays within the walk's noise.
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


@dataclass(frozen=True, slots=True)
class ChecksumSample:
    """Of the segments summed: those whose IPv4 header checksum is right (`sampled`), and
    of those the ones whose TCP checksum is wrong and no offloaded one (`rewritten`), the
    first of which begins its frame at byte `first` of the file (-1: none)."""

    sampled: int = 0
    rewritten: int = 0
    first: int = -1


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


def sample_checksums(buf: np.ndarray, frame_off: np.ndarray, hd: Headers, tf: TcpFields
                     ) -> ChecksumSample:
    """The checksums of the whole, unfragmented IPv4 TCP segments among the rows `tf` (with
    `hd` their headers, `frame_off` their frames' file offsets) that carry 1..SAMPLED_PAYLOAD
    bytes of payload: all those with ALWAYS_SAMPLED bytes at most, one in SAMPLE_EVERY of the
    others."""
    seg = hd.ip_end - hd.l4_off  # the segment the IPv4 header declares ...
    picked = (tf.seq + tf.ack) * np.uint32(0x9E3779B1) >> np.uint32(29)  # a hash of both
    m = ((hd.l3 == 4) & (hd.frag == 0) & (tf.hdr_len >= 20) & (tf.payload_len > 0)
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
    ihl = (hd.l4_off[idx] - hd.l3_off[idx]).astype(np.int64)
    ip_good = _fold(_word_sums(buf, ip, ihl)) == 0xFFFF
    # the addresses as decoded: a source route's last address is the destination the
    # sender summed, as Wireshark's check takes it (`iproute`), not the next router
    addr = np.concatenate([tf.src_addr[idx, 12:16], tf.dst_addr[idx, 12:16]],
                          axis=1).astype(np.uint64)
    pseudo = (addr[:, 0::2] << 8).sum(axis=1) + addr[:, 1::2].sum(axis=1) + 6 + seg.astype(
        np.uint64)
    good = _fold(_word_sums(buf, tcp, seg) + pseudo) == 0xFFFF
    stored = (buf[tcp + 16].astype(np.uint64) << 8) | buf[tcp + 17]
    partial = _fold(pseudo)
    offloaded = (stored == 0) | (stored == partial) | (stored == (partial ^ 0xFFFF))
    bad = np.flatnonzero(ip_good & ~good & ~offloaded)
    return ChecksumSample(int(np.count_nonzero(ip_good)), len(bad),
                          int(base[bad].min()) if len(bad) else -1)


def rewritten_note(path: str, sampled: int, rewritten: int, first: int = -1) -> str | None:
    """The warning for a file whose sample (`sampled` segments, `rewritten` of them wrong,
    the first in the frame at byte `first`) says most of its payload bytes were changed after
    they were sent; None when it does not (a stray bad checksum is a frame the receiver
    dropped, not a rewritten capture)."""
    if not rewritten or 2 * rewritten <= sampled:
        return None
    at = f" (the first in the frame at byte {first})" if first >= 0 else ""
    return (f"{path}: {rewritten} of {sampled} sampled TCP segments on the selected ports{at} have "
            "a TCP checksum that is wrong, and no checksum offload's, under a right IPv4 "
            "header checksum: their bytes were changed after they were sent (payload "
            "rewritten, by an anonymiser or an edit, or addresses rewritten without the TCP "
            "checksums), so the SMTP and TLS read from them may not be what was sent "
            "(tshark -o tcp.check_checksum:TRUE marks each)")
