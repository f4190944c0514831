"""Width of text as a terminal shows it, for the columns of the text tables: an East Asian
wide or fullwidth character (a CJK name in a certificate subject, say) takes two cells and a
combining mark none, so counting characters would misalign every column after such a name.
Text reaching here is printable already (fastcap.out.textsafe): no controls or invisible
format characters are left to measure."""

from __future__ import annotations

import unicodedata

ELLIPSIS = "…"  # one cell


def _char_cells(ch: str) -> int:
    if unicodedata.category(ch) in ("Mn", "Me"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def cells(text: str) -> int:
    """The terminal cells `text` takes."""
    if text.isascii():
        return len(text)
    return sum(_char_cells(ch) for ch in text)


def clip(text: str, width: int) -> str:
    """`text` as it is if it fits in `width` cells, else cut to fit with "…" at the end
    (never half a wide character, never a combining mark parted from its letter)."""
    if cells(text) <= width:
        return text
    room, out = width - 1, []
    for ch in text:
        n = _char_cells(ch)
        if n > room:
            break
        out.append(ch)
        room -= n
    return "".join(out) + ELLIPSIS


def pad(text: str, width: int) -> str:
    """`text` followed by spaces up to `width` cells (str.ljust, counting cells)."""
    return text + " " * max(0, width - cells(text))
