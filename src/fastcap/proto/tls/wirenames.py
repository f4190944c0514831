"""Names a hello carries (SNI host name, ALPN protocols) as text, and that text back.

The names are bytes on the wire, in no promised encoding.  They are kept as printable ASCII
in which every other byte, and the backslash, is written ``\\xNN``: safe to print and to key
on as it is, and exactly reversible.  A writer that must give the bytes (Zeek's logs escape
them their own way) or the text (to escape it once with the rest of a line) reverses it
here, instead of escaping the escapes a second time."""

from __future__ import annotations

import re

__all__ = ["wire_bytes", "wire_str", "wire_text"]

_ESCAPE = re.compile(rb"\\x([0-9a-f]{2})")


def wire_text(raw: bytes) -> str:
    """Wire bytes as printable ASCII: printable bytes but ``\\`` kept, the rest ``\\xNN``."""
    return "".join(chr(c) if 0x20 <= c < 0x7F and c != 0x5C else f"\\x{c:02x}" for c in raw)


def wire_bytes(text: str) -> bytes:
    """The bytes `text` (made by :func:`wire_text`) was made from."""
    return _ESCAPE.sub(lambda m: bytes.fromhex(m.group(1).decode()), text.encode("ascii"))


def wire_str(text: str) -> str:
    """The name as text (UTF-8; a byte that is not, as a lone surrogate, as file names are
    decoded), for output that escapes a whole line once, and for the verdicts' words."""
    if "\\" not in text:  # printable ASCII as sent: the common case, already the text
        return text
    return wire_bytes(text).decode("utf-8", "surrogateescape")
