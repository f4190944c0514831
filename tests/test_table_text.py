"""The session table and the triage block as a terminal shows them: endpoints in full (a long
IPv6 pair is not cut, as tshark's conversation table does not cut one), and columns lined
up in display cells, so a name in wide East Asian characters or with combining marks does
not shift the columns after it."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from fastcap.out.report import format_table
from fastcap.out.triage import Problem, format_triage
from fastcap.session import iter_sessions
from fastcap_synth import packets as p
from fastcap_synth.writers import Record, write_pcap

V6_CLIENT = "2001:db8:1234:5678:9abc:def0:1234:5678"
V6_SERVER = "2001:db8:ffff:eeee:dddd:cccc:bbbb:aaaa"
WIDE_EHLO = "メール.例え.jp"  # katakana and kanji: two cells each
MARKED_EHLO = "cafe\u0301-mail.example"  # e and a combining acute accent: one cell


def _session(c: str, s: str, cport: int, ehlo: str) -> list[bytes]:
    hello = f"EHLO {ehlo}\r\n".encode()
    out = [p.tcp_frame(c, s, cport, 25, 100, 0, p.SYN),
           p.tcp_frame(s, c, 25, cport, 900, 101, p.SYN | p.ACK),
           p.tcp_frame(c, s, cport, 25, 101, 901, p.ACK)]
    greet, reply = b"220 mx.example.com ESMTP\r\n", b"250 mx.example.com\r\n"
    out.append(p.tcp_frame(s, c, 25, cport, 901, 101, p.ACK | p.PSH, greet))
    out.append(p.tcp_frame(c, s, cport, 25, 101, 901 + len(greet), p.ACK | p.PSH, hello))
    out.append(p.tcp_frame(s, c, 25, cport, 901 + len(greet), 101 + len(hello),
                           p.ACK | p.PSH, reply))
    return out


@pytest.fixture(scope="module")
def sessions(tmp_path_factory) -> list:
    path = Path(tmp_path_factory.mktemp("table")) / "names.pcap"
    frames = (_session(V6_CLIENT, V6_SERVER, 65432, WIDE_EHLO)
              + _session("10.0.0.1", "10.0.0.2", 40000, "plain.example")
              + _session("10.0.0.3", "10.0.0.2", 40001, MARKED_EHLO))
    write_pcap(path, [Record(f, i * 1000) for i, f in enumerate(frames)])
    got = list(iter_sessions(str(path)))
    assert [s.smtp.ehlo_name for s in got] == [WIDE_EHLO, "plain.example", MARKED_EHLO]
    return got


def _cells(text: str) -> int:
    return sum(0 if unicodedata.combining(ch) else
               2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _column_starts(line: str, cell_text: str) -> int:
    """The display cell at which `cell_text` starts in `line`."""
    return _cells(line[: line.index(cell_text)])


def test_a_long_ipv6_endpoint_pair_is_shown_whole(sessions):
    table = format_table(sessions)
    assert f"[{V6_CLIENT}]:65432 -> [{V6_SERVER}]:25" in table
    assert "…" not in table


def test_columns_line_up_in_display_cells_after_wide_and_combining_names(sessions):
    rows = format_table(sessions).splitlines()[1:]
    assert len(rows) == 3
    verdicts = [", ".join(v.code for v in s.verdicts) for s in sessions]
    # the TLS column ("no TLS") and the verdicts start at the same cell on every row
    assert len({_column_starts(r, "no TLS") for r in rows}) == 1, rows
    assert len({_cells(r) - _cells(v) for r, v in zip(rows, verdicts, strict=True)}) == 1, rows


def test_a_wide_name_is_cut_to_the_cells_of_the_column():
    from fastcap.out.cells import cells, clip

    assert cells(WIDE_EHLO) == 2 * 5 + 4 and cells(MARKED_EHLO) == len(MARKED_EHLO) - 1
    cut = clip("名" * 40, 60)
    assert cells(cut) <= 60 and cut.endswith("…") and cut == "名" * 29 + "…"
    assert clip("e\u0301" * 70, 60) == "e\u0301" * 59 + "…"  # no accent parted from its e


def test_enclosing_marks_take_no_cell_as_the_terminal_gives_them():
    """An enclosing mark (Unicode category Me: a keycap, a circle) is drawn over the letter
    before it, as a combining accent is: the C library's wcswidth is the oracle."""
    import ctypes
    import locale

    from fastcap.out.cells import cells

    old = locale.setlocale(locale.LC_CTYPE)
    try:
        locale.setlocale(locale.LC_CTYPE, "C.UTF-8")
    except locale.Error:
        pytest.skip("no C.UTF-8 locale for wcswidth")
    try:
        wcswidth = ctypes.CDLL(None).wcswidth
        wcswidth.argtypes = [ctypes.c_wchar_p, ctypes.c_size_t]
        texts = ("1\u20e3.example", "mail\u20dd.example", "x\u0488y", "e\u0301名")
        assert sum(unicodedata.category(ch) == "Me" for s in texts for ch in s) == 3
        for text in texts:
            assert cells(text) == wcswidth(text, len(text)), text
    finally:
        locale.setlocale(locale.LC_CTYPE, old)


def test_the_triage_block_lines_up_in_display_cells():
    def problem(server: str, subject: str) -> Problem:
        return Problem("no_client_cert", "error", "AB" * 20, subject, server, 1, 1, 0, 0,
                       (("a.pcap", 1),), "no certificate", "send one")

    problems = [problem(WIDE_EHLO, "CN=" + WIDE_EHLO), problem("plain.example", "CN=x"),
                problem(MARKED_EHLO, "CN=" + MARKED_EHLO)]
    text = format_triage(problems, total_sessions=3)
    rows = [line for line in text.splitlines()[2:] if not line.startswith("   ")]
    assert len(rows) == 3
    assert len({_column_starts(r, "CN=") for r in rows}) == 1, rows
    assert len({_column_starts(r, "#1") for r in rows}) == 1, rows
