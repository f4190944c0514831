"""Make text from packet data safe to print: an attacker's EHLO name or certificate subject
must not be able to move an admin's cursor or recolour the terminal."""

from __future__ import annotations

_ESCAPES = {"\t": "\\t", "\r": "\\r", "\n": "\\n", "\\": "\\\\"}
_ESCAPES_KEEP_BACKSLASH = {k: v for k, v in _ESCAPES.items() if k != "\\"}


def printable(text: str, *, backslashes: bool = True) -> str:
    """Control characters (C0, DEL, C1) and lone surrogates escaped as \\xNN / \\uNNNN;
    backslashes doubled unless told not to (fastcap's own messages, which quote names and
    text already escaped: doubling there would only garble them)."""
    escapes = _ESCAPES if backslashes else _ESCAPES_KEEP_BACKSLASH
    out = []
    for ch in text:
        o = ord(ch)
        if ch in escapes:
            out.append(escapes[ch])
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
