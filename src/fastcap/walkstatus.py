"""Shared vocabulary of the frame walkers (the C one and its pure-Python twin)."""

from __future__ import annotations

from dataclasses import dataclass

FULL = 0  # window full: call again from offset
END = 1  # clean end of data
TRUNCATED = 2  # the record at offset runs past the end of the file
CORRUPT = 3  # the record at offset has an impossible length
BLOCK = 4  # a pcapng block that is not a packet: the caller parses it
BAD_IFACE = 5  # a pcapng packet names an interface its section does not have

# Wireshark refuses pcap records above this size for ordinary link types; so do we.
MAX_CAPLEN = 262144
# Largest pcapng block accepted before a length is called corrupt (Wireshark uses 16 MiB too).
MAX_BLOCK = 16 * 1024 * 1024


@dataclass(slots=True)
class WalkStatus:
    code: int
    offset: int
    next_frame: int
    detail: int = 0


@dataclass(frozen=True, slots=True)
class IfaceParams:
    """What the walker needs of one pcapng interface."""

    snaplen: int
    tsres_pow2: bool
    tsres_exp: int
    tsoffset_s: int
    global_index: int


def ts_to_ns(units: int, pow2: bool, exp: int, offset_s: int) -> int:
    """Timestamp units → ns since the epoch, floored and clamped exactly like fc_ts_to_ns."""
    exp = max(exp, 0)  # if_tsresol holds 0..127; below reads as 0, as in C
    if pow2:
        scaled = units * 1_000_000_000
        ns = 0 if exp >= 127 else (scaled if exp <= 0 else scaled >> exp)
    elif exp <= 9:
        ns = units * 10 ** (9 - exp)
    elif exp - 9 >= 20:
        ns = 0
    else:
        ns = units // 10 ** (exp - 9)
    ns += offset_s * 1_000_000_000
    return max(-(2**63), min(2**63 - 1, ns))
