"""What decrypting a session found, as a Session carries it: the `Decryption` record and the
`PlainStream`s the parsers read.

They live apart from the decryption itself (`fastcap.proto.decrypted`), which with the key
schedule and the ciphers is loaded only when a scan has keys, so that ``session`` can name
these types in its fields without importing it."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Decryption", "DirectionDecryption", "PlainStream"]


@dataclass(frozen=True, slots=True)
class DirectionDecryption:
    """What was decrypted of one direction."""

    records: int  # records decrypted
    handshake_bytes: int  # plaintext handshake bytes (TLS 1.3 flight, TLS 1.2 Finished and
    # renegotiations)
    app_bytes: int  # plaintext application-data bytes handed to the SMTP parser
    limited: bool  # stopped at the per-direction limit of application data
    error: str | None  # the first record that failed, and why

    def to_dict(self) -> dict[str, Any]:
        return {"records": self.records, "handshake_bytes": self.handshake_bytes,
                "app_bytes": self.app_bytes, "limited": self.limited, "error": self.error}


@dataclass(frozen=True, slots=True)
class Decryption:
    """Per session, when keys were given to the scan: whether the key log knew its
    ClientHello random, from where, and what could be decrypted with them."""

    keys_found: bool
    sources: tuple[str, ...] = ()  # "keys.log line 17", "x.pcapng DSB at byte 1234"
    why_not: str | None = None  # keys_found False: why (no ClientHello, not in the key log)
    handshake: bool = False  # handshake records decrypted (both directions' that were there)
    c2s: DirectionDecryption | None = None
    s2c: DirectionDecryption | None = None
    error: str | None = None  # first failure, naming the direction, offset and frame
    error_frame: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "keys_found": self.keys_found,
            "sources": list(self.sources),
            "why_not": self.why_not,
            "handshake": self.handshake,
            "c2s": None if self.c2s is None else self.c2s.to_dict(),
            "s2c": None if self.s2c is None else self.s2c.to_dict(),
            "error": self.error,
            "error_frame": self.error_frame,
        }


class PlainStream:
    """Bytes built from decrypted records, read by the parsers as a reassembled direction:
    no gaps, and each byte's frame (and wire offset) that of the ciphertext record it came
    from.  Pieces are (start here, wire offset, length on the wire or 0): a piece with a wire
    length is wire bytes copied as they were; one without is a decrypted record, every byte
    of which maps to its ciphertext record."""

    __slots__ = ("data", "gaps", "_starts", "_pieces", "_frame_at")

    def __init__(self, data: bytes, pieces: Sequence[tuple[int, int, int, int]],
                 frame_at: Callable[[int], int | None]) -> None:
        self.data = data
        self.gaps: tuple[tuple[int, int], ...] = ()
        self._pieces = list(pieces)  # (start, wire offset, wire length or 0, record end)
        self._starts = [p[0] for p in self._pieces]
        self._frame_at = frame_at

    def _piece(self, offset: int) -> tuple[int, int, int, int] | None:
        i = bisect_right(self._starts, offset) - 1
        return self._pieces[i] if i >= 0 else None

    def wire_offset(self, offset: int) -> int:
        """Where ``offset`` of this stream lies in the reassembled direction: the same byte
        for copied bytes, the start of its ciphertext record for decrypted ones."""
        p = self._piece(offset)
        if p is None:
            return offset
        start, wire, copied, _end = p
        return wire + (offset - start) if copied else wire

    def frame_at(self, offset: int) -> int | None:
        if not 0 <= offset < len(self.data):
            return None
        p = self._piece(offset)
        if p is None:
            return None
        start, wire, copied, end = p
        return self._frame_at(wire + (offset - start) if copied else end - 1)

    def contiguous_end(self, begin: int = 0) -> int:
        return len(self.data)
