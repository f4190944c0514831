"""Port selection and bidirectional flow ids, vectorized over a window.

A flow is the unordered pair of TCP endpoints (address, port).  Its id is stable for the whole
file: ids are handed out in the order of each flow's first frame, so flow 0 is the first
selected conversation Wireshark would show.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


def port_lut(ports: Iterable[int]) -> np.ndarray:
    """A 65536-entry bool table: one gather per column beats np.isin on millions of rows."""
    lut = np.zeros(65536, dtype=bool)
    for p in ports:
        if not 0 <= int(p) <= 65535:
            raise ValueError(f"port {p} is outside 0-65535")
        lut[int(p)] = True
    return lut


def parse_ports(text: str) -> frozenset[int]:
    """'25,587,2525' or '25-26' → a set of ports; ValueError with the bad token otherwise.
    An empty element ('25,,26', '25,') is an error too: it is most likely a port left out."""
    out: set[int] = set()
    if not text.strip():
        raise ValueError("no ports given")
    for tok in text.split(","):
        tok = tok.strip()
        if not tok:
            raise ValueError(f"empty port in {text!r}")
        lo, sep, hi = tok.partition("-")
        try:
            a, b = (int(lo), int(hi)) if sep else (int(tok), int(tok))
        except ValueError:
            raise ValueError(f"bad port {tok!r}") from None
        if not (0 <= a <= b <= 65535):
            raise ValueError(f"bad port range {tok!r}")
        out.update(range(a, b + 1))
    if not out:
        raise ValueError("no ports given")
    return frozenset(out)


_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                 0x27D4EB2F165667C5, 0x94D049BB133111EB], np.uint64)


def _distinct(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first row of each distinct row, index of each row's distinct row) for (k, 5) uint64.

    Rows are grouped by a 64-bit mix of their words, which sorts far faster than 40-byte
    records; the grouping is then checked word for word, and only a collision (never seen in
    practice) falls back to sorting the records themselves."""
    h = words @ _MIX  # wraps modulo 2**64
    order = np.argsort(h, kind="stable")
    hs = h[order]
    new = np.empty(len(h), bool)
    new[0] = True
    np.not_equal(hs[1:], hs[:-1], out=new[1:])
    first = order[new]  # stable sort: each group's first row comes first
    inverse = np.empty(len(h), np.int64)
    inverse[order] = np.cumsum(new) - 1
    if (words == words[first[inverse]]).all():
        return first, inverse
    _, first, inverse = np.unique(np.ascontiguousarray(words).view("V40").ravel(),
                                  return_index=True, return_inverse=True)
    return first, inverse.ravel()


@dataclass
class FlowKey:
    a_addr: bytes  # 16 bytes; IPv4 as ::ffff:a.b.c.d
    a_port: int
    b_addr: bytes
    b_port: int


class FlowTable:
    """Maps canonical endpoint pairs to ids across all windows of one file."""

    def __init__(self) -> None:
        self._ids: dict[bytes, int] = {}
        self.keys: list[FlowKey] = []

    def __len__(self) -> int:
        return len(self.keys)

    def assign(self, src_addr: np.ndarray, sport: np.ndarray, dst_addr: np.ndarray,
               dport: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (flow id per row, True where the row goes from endpoint a to b)."""
        k = len(sport)
        if k == 0:
            return np.empty(0, np.int64), np.empty(0, bool)
        # Each endpoint as big-endian numbers (address high, address low, port): comparing
        # them in turn orders endpoints as their 18 bytes would.
        s = np.ascontiguousarray(src_addr).view(">u8").astype(np.uint64)
        d = np.ascontiguousarray(dst_addr).view(">u8").astype(np.uint64)
        sp, dp = np.asarray(sport, np.uint64), np.asarray(dport, np.uint64)
        s0, s1, d0, d1 = s[:, 0], s[:, 1], d[:, 0], d[:, 1]
        from_a = (s0 < d0) | (s0 == d0) & ((s1 < d1) | (s1 == d1) & (sp <= dp))
        words = np.stack([np.where(from_a, s0, d0), np.where(from_a, s1, d1),
                          np.where(from_a, d0, s0), np.where(from_a, d1, s1),
                          np.where(from_a, sp << 16 | dp, dp << 16 | sp)], axis=1)
        first_idx, inverse = _distinct(words)  # words: a's address, b's address, the ports
        ids = np.empty(len(first_idx), np.int64)
        be = words[first_idx].astype(">u8").view(np.uint8)  # (flows, 40) key bytes
        keys = np.concatenate([be[:, 0:16], be[:, 36:38], be[:, 16:32], be[:, 38:40]], axis=1)
        blob = keys.tobytes()
        for u in np.argsort(first_idx, kind="stable").tolist():  # a step per flow, not frame
            kb = blob[36 * u:36 * u + 36]
            fid = self._ids.get(kb)
            if fid is None:
                fid = self._ids[kb] = len(self.keys)
                self.keys.append(FlowKey(kb[:16], int.from_bytes(kb[16:18], "big"),
                                         kb[18:34], int.from_bytes(kb[34:36], "big")))
            ids[u] = fid
        return ids[inverse], from_a

    def ids_for(self, keys: list[FlowKey]) -> np.ndarray:
        """Global ids for another table's flows (its ids index `keys`), numbering new flows in
        that order: tables filled from consecutive parts of a file merge into the ids one
        table would have given the whole file."""
        out = np.empty(len(keys), np.int64)
        for i, k in enumerate(keys):
            kb = (k.a_addr + k.a_port.to_bytes(2, "big") + k.b_addr
                  + k.b_port.to_bytes(2, "big"))
            fid = self._ids.get(kb)
            if fid is None:
                fid = self._ids[kb] = len(self.keys)
                self.keys.append(k)
            out[i] = fid
        return out
