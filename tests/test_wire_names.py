"""A hello's names (SNI, ALPN) are bytes in no promised encoding. fastcap keeps them as
printable ASCII with the other bytes written \\xNN (the JSON's `sni`); every writer that
escapes in its own way starts again from the bytes or the text, so nothing is escaped twice:
Zeek's ssl.log writes the bytes as Zeek does, and the table, `follow` and the report escape
the text once, as they escape the banner beside it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastcap.out.textsafe import printable
from fastcap.proto.tls.wirenames import wire_bytes, wire_str, wire_text
from fastcap_synth.scenarios import make_pki, scenario
from fastcap_synth.smtpgen import converse, render
from fastcap_synth.writers import write_pcap

HOSTILE = b"a\tb\x1b[2J\\c\xc3\xa9\xff.example"  # tab, ESC, backslash, UTF-8 e-acute, 0xff


@given(st.binary())
def test_the_kept_text_is_printable_ascii_and_gives_the_bytes_back(raw):
    text = wire_text(raw)
    assert text.isascii() and text.isprintable()
    assert wire_bytes(text) == raw
    assert wire_str(text).encode("utf-8", "surrogateescape") == raw


def test_the_kept_text_of_a_hostile_name():
    assert wire_text(HOSTILE) == "a\\x09b\\x1b[2J\\x5cc\\xc3\\xa9\\xff.example"
    assert wire_str(wire_text(b"mail.contoso.com")) == "mail.contoso.com"


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    """A TLS 1.2 session whose ClientHello names HOSTILE (SNI and ALPN), put in place of a
    placeholder of the same length after the handshake was made."""
    pki = make_pki()
    placeholder = "u" * len(HOSTILE)
    sc = scenario("no_client_cert", pki, sni=placeholder)
    sc.client_ctx.set_alpn_protocols([placeholder])
    sc.server_ctx.set_alpn_protocols([placeholder])
    conv = converse(sc)
    swapped = 0
    for m in conv.messages:
        if m.label.startswith("tls"):
            swapped += m.data.count(placeholder.encode())
            m.data = m.data.replace(placeholder.encode(), HOSTILE)
    assert swapped == 3  # the SNI, the client's ALPN and the server's
    path = tmp_path_factory.mktemp("names") / "names.pcap"
    write_pcap(path, render(conv, sc))
    return path


def fastcap(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fastcap.cli", *args], capture_output=True,
                          timeout=120)


def test_json_keeps_the_printable_text(capture):
    r = fastcap("scan", "--format", "jsonl", str(capture))
    hello = json.loads(r.stdout)["tls"]["client_hello"]
    assert hello["sni"] == wire_text(HOSTILE) and hello["alpn"] == [wire_text(HOSTILE)]


def test_zeeks_ssl_log_writes_the_bytes_as_zeek_escapes_them(capture, tmp_path):
    """Zeek writes a tab as \\x09, ESC as \\x1b, a backslash as \\\\, and the stretch after
    it, not valid UTF-8 (the 0xff), byte by byte (zeek_ascii's rule, Zeek's own)."""
    r = fastcap("scan", "--format", "zeek", "-o", str(tmp_path), str(capture))
    assert r.returncode == 1, r.stderr
    lines = (tmp_path / "ssl.log").read_bytes().split(b"\n")
    fields = next(x for x in lines if x.startswith(b"#fields")).split(b"\t")[1:]
    (row,) = [x.split(b"\t") for x in lines if x and not x.startswith(b"#")]
    want = b"a\\x09b\\x1b[2J\\\\c\\xc3\\xa9\\xff.example"
    assert row[fields.index(b"server_name")] == want
    assert row[fields.index(b"next_protocol")] == want


@pytest.mark.parametrize("command", [["scan"], ["follow", "--session", "1"]])
def test_the_table_and_follow_escape_the_name_once(capture, command):
    r = fastcap(*command, str(capture))
    out = r.stdout.decode("utf-8")
    once = printable(HOSTILE.decode("utf-8", "surrogateescape"))
    assert once == "a\\tb\\x1b[2J\\\\cé\\udcff.example"
    assert once in out and "\\\\x" not in out and "\x1b" not in out
