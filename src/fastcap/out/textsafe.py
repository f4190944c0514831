"""Make text from packet data safe to print: an attacker's EHLO name or certificate subject
must not be able to move an admin's cursor or recolour the terminal."""

from __future__ import annotations

_ESCAPES = {"\t": "\\t", "\r": "\\r", "\n": "\\n", "\\": "\\\\"}


def printable(text: str) -> str:
    """Control characters (C0, DEL, C1) and lone surrogates escaped as \\xNN / \\uNNNN."""
    out = []
    for ch in text:
        o = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif o < 0x20 or 0x7F <= o < 0xA0:
            out.append(f"\\x{o:02x}")
        elif 0xD800 <= o < 0xE000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    return "".join(out)


def printable_bytes(data: bytes) -> str:
    """Bytes as text (UTF-8 where valid, U+FFFD elsewhere), safe for a terminal."""
    return printable(data.decode("utf-8", "replace"))
