"""What a TCP reassembler core hands over per connection, C and Python cores alike: the raw
record reassembly.py turns into a `Connection`.  Kept apart so the C core can build it
without importing the Python core's module."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class RawDir:
    """One direction as a core hands it over: arrival-order segment map, fill mask."""

    data: bytes
    # uint8, ceil(len(data) / 8): bit i of byte j = byte 8j+i stored; None = all stored
    filled_bits: np.ndarray | None
    seg_off: np.ndarray  # int64
    seg_len: np.ndarray  # int32
    seg_frame: np.ndarray  # int64
    seen_bytes: int
    before_start: int
    untraced: int
    isn: int | None
    syn_frame: int | None
    fin_frame: int | None
    rst_frame: int | None
    seg_sorted: bool = False  # the core already knows the segment map is in offset order
    first_syn: int = -1  # the direction's first segment: 1 a SYN, 0 none, -1 no segment


@dataclass
class RawConn:
    index: int
    flow: int
    first_frame: int
    last_frame: int
    first_ts_ns: int
    last_ts_ns: int
    frames: int
    retransmissions: int
    conflicting_overlaps: int
    keepalives: int
    zero_window_probes: int
    out_of_order: int
    evicted: bool
    first_dir: int  # 0: endpoint a sent the first frame
    syn_dir: int  # sender of the first SYN without ACK, -1: none
    synack_dir: int  # sender of the first SYN-ACK, -1: none
    # it goes on with a connection closed on an RST: that one's first frame and the RST's
    # frame (-1: not so)
    after_first: int
    after_rst: int
    zeek_cut: int  # the first frame Zeek reads as another connection's, -1: none
    dirs: tuple[RawDir, RawDir]  # (a -> b, b -> a)
