"""What `printable` escapes: every character no reader sees as itself, and nothing else, in
a form that cannot be forged and reads back to the very text."""

from __future__ import annotations

import re
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from fastcap.out.textsafe import printable, printable_bytes

INVISIBLE = {"Cc", "Cf", "Cs", "Zl", "Zp"}  # controls, surrogates, format, separators
ESCAPE = re.compile(r"\\(?:x([0-9a-f]{2})|u([0-9a-f]{4})|U([0-9a-f]{8})|([trn\\]))")


def unescaped(text: str) -> str:
    """`printable`'s output read back."""
    def one(m: re.Match[str]) -> str:
        hexa = m.group(1) or m.group(2) or m.group(3)
        return chr(int(hexa, 16)) if hexa else {"t": "\t", "r": "\r", "n": "\n",
                                                  "\\": "\\"}[m.group(4)]
    return ESCAPE.sub(one, text)


def test_every_invisible_character_and_no_other_is_escaped():
    """Against this Python's Unicode table, every assigned code point (the class is written
    out in the module, so a newer Unicode's additions show up here)."""
    wrong = []
    for c in range(0x110000):
        ch = chr(c)
        category = unicodedata.category(ch)
        if category == "Cn":
            continue
        if (printable(ch) != ch) != (category in INVISIBLE or ch == "\\"):
            wrong.append(f"U+{c:04X} {category}")
    assert wrong == []


def test_the_escapes_are_written_as_python_writes_them():
    assert printable("a\u202eb\x01\\") == "a\\u202eb\\x01\\\\"
    assert printable("\t\r\n\x7f\x9b\xad") == "\\t\\r\\n\\x7f\\x9b\\xad"
    assert printable("x\u200by\u2028z\ufeff") == "x\\u200by\\u2028z\\ufeff"
    assert printable("\U000e0041\ud800") == "\\U000e0041\\ud800"
    assert printable("mail.fabrikam.com é 漢字 \U0001f642") == "mail.fabrikam.com é 漢字 \U0001f642"


def test_fastcaps_own_messages_keep_their_backslashes():
    assert printable("a\\x09b\x1b", backslashes=False) == "a\\x09b\\x1b"
    assert printable("C:\\logs\\send.log", backslashes=False) == "C:\\logs\\send.log"


def test_bytes_are_read_as_utf8_with_the_rest_replaced():
    assert printable_bytes(b"EHLO \xff\x1b[2J\xe2\x80\xae") == "EHLO \ufffd\\x1b[2J\\u202e"


@given(st.text(st.characters(codec=None)))
def test_the_output_is_one_visible_line_that_reads_back_to_the_text(text):
    shown = printable(text)
    assert not any(unicodedata.category(ch) in INVISIBLE for ch in shown)
    assert unescaped(shown) == text


@given(st.text(st.sampled_from("\\xu0a9\u202e\n\t")))
def test_backslashes_and_escape_like_text_cannot_forge_an_escape(text):
    assert unescaped(printable(text)) == text
