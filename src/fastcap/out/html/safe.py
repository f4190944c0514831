"""Text from packets as the page shows it: control characters escaped as in the terminal
output, and also the Unicode bidirectional controls, which on a page would reorder what
follows them (a certificate subject could otherwise display as a different name)."""

from __future__ import annotations

from ..textsafe import printable

__all__ = ["bidi_safe", "shown"]

_BIDI = {c: f"\\u{c:04x}" for c in (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F),
                                     *range(0x2066, 0x206A))}


def bidi_safe(text: str) -> str:
    """`text` (already printable) with its bidirectional controls written as \\uXXXX."""
    return text.translate(_BIDI)


def shown(text: str) -> str:
    """Packet text made printable and free of bidirectional controls."""
    return printable(text).translate(_BIDI)
