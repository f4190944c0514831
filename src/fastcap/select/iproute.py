"""The IPv4 destination as Wireshark reads it: a packet with a strict or loose source route
(RFC 791) is addressed to the route's last address, the header's destination being only
the next hop.  Wireshark's IPv4 dissector takes that address as the packet's destination
(`ip.dst`), so a datagram's fragments are keyed by it and the TCP segment it carries belongs
to the connection with that host, whichever routers the fragments went through.

The options are walked as Wireshark walks them to find the route: an option whose length
is under 2 or runs past the header, or the end-of-options option, ends the walk with the
header's destination (whatever an option's code, its length is not checked against what
that code should have); so does a route whose pointer is before its first address, inside
an address or past its end (the route is spent).  Only the first route counts.  Packets
with options are rare, so this is per packet, in Python.
"""

from __future__ import annotations

import numpy as np

_EOL, _NOP = 0, 1
_ROUTES = frozenset((131, 137))  # loose, strict source route


def route_end(options: bytes) -> int | None:
    """Where, within an IPv4 header's `options`, the address Wireshark reads as the
    destination begins (the last address of a source route still under way), or None for
    the header's own destination."""
    at, left = 0, len(options)
    while left > 0:
        code = options[at]
        left -= 1
        if code in (_EOL, _NOP):
            if code == _EOL:
                return None
            at += 1
            continue
        if left == 0:
            return None
        size = options[at + 1]
        left -= 1
        if size < 2 or size - 2 > left:
            return None
        if code in _ROUTES:
            ptr = options[at + 2]
            if ptr < 4 or ptr & 3 or ptr > size:
                return None
            return at + size - 4
        at += size
        left -= size - 2
    return None


def destination_at(buf: np.ndarray, ip: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """Per IPv4 header at `buf` offset `ip` (the frame's captured bytes ending at offset
    `cap`), where its destination as Wireshark reads it begins, from the header's start:
    16, or within its options (`route_end`)."""
    out = np.full(len(ip), 16, np.int64)
    if not len(ip):
        return out
    ihl = (buf[ip].astype(np.int64) & 0x0F) * 4
    for i in np.flatnonzero((ihl > 20) & (ip + ihl <= cap)).tolist():
        at = route_end(buf[ip[i] + 20:ip[i] + ihl[i]].tobytes())
        if at is not None:
            out[i] = 20 + at
    return out
