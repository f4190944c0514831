"""Shared vocabulary of the frame walkers (the C one and its pure-Python twin)."""

from __future__ import annotations

from dataclasses import dataclass

from .._ffi import WALK_CODES

# Why a walk stopped: enum fc_walk_code in csrc/fastcap.h, which says what each one means.
FULL = WALK_CODES["FULL"]
END = WALK_CODES["END"]
TRUNCATED = WALK_CODES["TRUNCATED"]
CORRUPT = WALK_CODES["CORRUPT"]
BLOCK = WALK_CODES["BLOCK"]
BAD_IFACE = WALK_CODES["BAD_IFACE"]

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
    # pcapng blocks stepped over and counted, (type, count) in the order first met
    quiet: tuple[tuple[int, int], ...] = ()


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
