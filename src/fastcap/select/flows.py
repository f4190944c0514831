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
    """'25,587,2525' or '25-26' → a set of ports; ValueError with the bad token otherwise."""
    out: set[int] = set()
    for tok in text.split(","):
        tok = tok.strip()
        if not tok:
            continue
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


def _endpoint_bytes(addr: np.ndarray, port: np.ndarray) -> np.ndarray:
    """(k,16) address + port → (k,18) big-endian bytes that sort like (address, port)."""
    out = np.empty((len(port), 18), np.uint8)
    out[:, :16] = addr
    out[:, 16] = port >> 8
    out[:, 17] = port & 0xFF
    return out


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
        src = _endpoint_bytes(src_addr, sport)
        dst = _endpoint_bytes(dst_addr, dport)
        differ = src != dst
        first = differ.argmax(axis=1)
        r = np.arange(k)
        from_a = ~differ.any(axis=1) | (src[r, first] < dst[r, first])
        key = np.empty((k, 36), np.uint8)
        key[:, :18] = np.where(from_a[:, None], src, dst)
        key[:, 18:] = np.where(from_a[:, None], dst, src)
        uniq, first_idx, inverse = np.unique(
            np.ascontiguousarray(key).view("V36").ravel(), return_index=True,
            return_inverse=True)
        ids = np.empty(len(uniq), np.int64)
        for u in np.argsort(first_idx, kind="stable"):  # one step per flow, not per frame
            kb = uniq[u].tobytes()
            fid = self._ids.get(kb)
            if fid is None:
                fid = self._ids[kb] = len(self.keys)
                self.keys.append(FlowKey(kb[:16], int.from_bytes(kb[16:18], "big"),
                                         kb[18:34], int.from_bytes(kb[34:36], "big")))
            ids[u] = fid
        return ids[inverse.ravel()], from_a

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
