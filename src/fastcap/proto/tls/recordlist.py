"""One direction's TLS records as they lie on the wire, listed for decryption.

The record layer (:mod:`.records`) keeps no bodies once a direction is encrypted, for speed;
decrypting needs them, and only for the sessions a key log names, so they are listed here
separately, from where TLS starts up to the first gap.
"""

from __future__ import annotations

from collections.abc import Sequence

from .decrypt import CipherRecord
from .records import MAX_RECORD


def list_records(data: bytes, gaps: Sequence[tuple[int, int]], start: int
                 ) -> tuple[tuple[CipherRecord, ...], int]:
    """(the whole records from ``start`` on, the offset where the listing stopped): at the
    first gap, a record cut by it or by the end, or bytes that are not a TLS record header."""
    stop = len(data)
    for off, size in sorted(gaps or ()):
        if size > 0 and off + size > start and off < stop:
            stop = max(off, start)
            break
    out: list[CipherRecord] = []
    pos = max(0, start)
    while stop - pos >= 5:
        ctype, major, length = data[pos], data[pos + 1], data[pos + 3] << 8 | data[pos + 4]
        end = pos + 5 + length
        if not 20 <= ctype <= 24 or major != 3 or length > MAX_RECORD or end > stop:
            break
        out.append(CipherRecord(ctype, data[pos + 1] << 8 | data[pos + 2], data[pos + 5:end],
                                pos))
        pos = end
    return tuple(out), pos
