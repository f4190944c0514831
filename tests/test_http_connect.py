"""SMTP through an HTTP CONNECT proxy (RFC 9110 §9.3.6): the client asks the proxy for a tunnel
to the mail server's port 25, the proxy answers 200, and the SMTP dialogue (STARTTLS and TLS
too) runs inside it. Wireshark's HTTP dissector hands the tunnel to the dissector of the
CONNECT target's port; fastcap reads a connection on a selected port (the proxy's, given with
--ports) the same way: from the bytes after the request and after the proxy's reply."""

from __future__ import annotations

import pytest

from fastcap.proto.smtp import parse_dialogue
from fastcap.run.scanner import scan
from fastcap_synth.scenarios import make_pki, scenario
from fastcap_synth.smtpgen import Message, converse, render
from fastcap_synth.writers import write_pcap

from .corpus import CORPUS

PROXY = 3128
REQUEST = b"CONNECT mx.contoso.com:25 HTTP/1.1\r\nHost: mx.contoso.com:25\r\n\r\n"
ANSWER = b"HTTP/1.1 200 Connection established\r\nProxy-Agent: squid\r\n\r\n"


class _Stream:
    """One direction, as parse_dialogue reads it: all of it in frame 1, no gaps."""

    def __init__(self, data: bytes) -> None:
        self.data, self.gaps = data, []

    def frame_at(self, offset: int) -> int | None:
        return 1 if offset < len(self.data) else None


@pytest.fixture(scope="module")
def tunnelled(tmp_path_factory):
    """A relay asked for a certificate it does not have, through a proxy on port 3128."""
    sc = scenario("no_client_cert", make_pki(), server_port=PROXY)
    conv = converse(sc)
    conv.messages[:0] = [Message(True, REQUEST, "connect"), Message(False, ANSWER, "200")]
    path = tmp_path_factory.mktemp("connect") / "proxied.pcap"
    write_pcap(path, render(conv, sc))
    return path


def test_the_dialogue_inside_the_tunnel_is_read(tunnelled):
    (s,) = scan(tunnelled, ports=(PROXY,))
    d = s.smtp
    assert d.banner_code == 220 and d.banner_frame is not None
    assert (d.ehlo_verb, d.ehlo_name) == ("EHLO", "mail.fabrikam.com")
    assert [c.verb for c in d.commands] == ["EHLO", "STARTTLS"]
    assert [r.answers for r in d.replies] == ["EHLO", "STARTTLS"]
    assert d.starttls_offered and d.starttls_accepted
    assert not [a for a in d.anomalies if a.kind in ("bad_command", "bad_reply_line")]
    (tunnel,) = [a for a in d.anomalies if a.kind == "http_connect_tunnel"]
    assert tunnel.detail == ("CONNECT mx.contoso.com:25 answered HTTP/1.1 200 Connection "
                             "established: SMTP read inside the tunnel")
    assert tunnel.frame == 4  # the CONNECT request, after the three-way handshake
    # and the handshake after STARTTLS is found and judged as on port 25
    assert s.tls is not None and s.tls.client_certificate == ()
    assert "no_client_cert" in {v.code for v in s.verdicts}


def test_the_tunnel_reads_as_the_same_dialogue_on_port_25(tunnelled, tmp_path):
    """The conversation without the proxy, straight to port 25, reads the same, each frame
    later by the two the tunnel adds (request and answer). tshark is no oracle here: its SMTP
    dissector tells commands from replies by port 25, which neither end of the tunnel has."""
    sc = scenario("no_client_cert", make_pki())
    path = tmp_path / "direct.pcap"
    write_pcap(path, render(converse(sc), sc))
    (direct,) = scan(path)
    (s,) = scan(tunnelled, ports=(PROXY,))

    def seen(x):
        d, t = x.smtp, x.tls
        what = ([d.banner_code] + [c.verb for c in d.commands]
                + [(r.code, r.answers) for r in d.replies] + [t.client_certificate])
        frames = ([d.banner_frame] + [c.frame for c in d.commands] + [r.frame for r in d.replies]
                  + [t.client_hello_at.frame, t.client_certificate_at.frame])
        return what, frames

    (what, frames), (direct_what, direct_frames) = seen(s), seen(direct)
    assert what == direct_what
    assert len({f - g for f, g in zip(frames, direct_frames, strict=True)}) == 1
    assert frames[0] > direct_frames[0]
    assert [v.code for v in s.verdicts] == [v.code for v in direct.verdicts]


def test_only_a_granted_tunnel_is_entered():
    """SMTP begins after the proxy's 2xx reply; a refused CONNECT (407: proxy authentication)
    carries none, nor does a request whose reply has not ended."""

    smtp = b"EHLO a\r\nQUIT\r\n"
    granted = (_Stream(REQUEST + smtp), _Stream(ANSWER + b"220 mx ESMTP\r\n250 a\r\n221 bye\r\n"))
    d = parse_dialogue(*granted)
    assert d == parse_dialogue(*granted, _general=True)  # the fast path reads it as the other
    assert [(c.verb, c.offset) for c in d.commands] == [("EHLO", len(REQUEST)),
                                                        ("QUIT", len(REQUEST) + 8)]
    assert d.banner_code == 220 and [r.answers for r in d.replies] == ["EHLO", "QUIT"]
    for answer in (b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
                   b"HTTP/1.1 200 Connection established\r\n"):
        d = parse_dialogue(_Stream(REQUEST + smtp), _Stream(answer + b"220 mx ESMTP\r\n"))
        assert not [a for a in d.anomalies if a.kind == "http_connect_tunnel"]


def test_the_corpus_proxy_session_pairs_its_replies():
    """zeek's connect-with-smtp.pcap: CONNECT mailin03.sul.t-online.de:25 on port 8240."""
    path = CORPUS / "zeek__http-connect-with-smtp.pcap"
    if not path.exists():
        pytest.skip("corpus not available")
    (s,) = scan(path, ports=(8240,))
    d = s.smtp
    assert (d.banner_frame, d.ehlo_verb, d.ehlo_frame) == (8, "HELO", 11)
    assert [(c.verb, c.frame) for c in d.commands] == [
        ("HELO", 11), ("MAIL", 14), ("RCPT", 16), ("DATA", 18), ("QUIT", 25)]
    assert [(r.code, r.answers) for r in d.replies] == [
        (250, "HELO"), (250, "MAIL"), (250, "RCPT"), (354, "DATA"), (250, "END_OF_DATA"),
        (221, "QUIT")]


def _socks5(user: bytes | None, rep: int = 0) -> tuple[bytes, bytes]:
    """A SOCKS5 CONNECT to mx.contoso.com:25 (RFC 1928), with RFC 1929 username/password
    authentication when ``user`` is given, answered ``rep``: (client's bytes, proxy's bytes)
    before the tunnel."""
    name = b"mx.contoso.com"
    if user is None:
        hello, chosen, auth, granted = b"\x05\x01\x00", b"\x05\x00", b"", b""
    else:
        hello, chosen = b"\x05\x02\x00\x02", b"\x05\x02"
        auth, granted = b"\x01" + bytes([len(user)]) + user + b"\x06secret", b"\x01\x00"
    request = b"\x05\x01\x00\x03" + bytes([len(name)]) + name + (25).to_bytes(2, "big")
    reply = bytes((5, rep, 0, 1, 198, 51, 100, 25)) + (25).to_bytes(2, "big")
    return hello + auth + request, chosen + granted + reply


_SOCKS4 = b"\x04\x01\x00\x19" + bytes((198, 51, 100, 25)) + b"relay\x00"
_SOCKS4A = b"\x04\x01\x00\x19\x00\x00\x00\x01\x00mx.contoso.com\x00"


@pytest.mark.parametrize(("client", "proxy", "refused", "target"), [
    (*_socks5(None), _socks5(None, 5)[1], "mx.contoso.com:25"),
    (*_socks5(b"relay"), _socks5(b"relay", 2)[1], "mx.contoso.com:25"),
    (_SOCKS4, b"\x00\x5a\x00\x19" + bytes(4), b"\x00\x5b" + bytes(6), "198.51.100.25:25"),
    (_SOCKS4A, b"\x00\x5a" + bytes(6), b"\x00\x5b" + bytes(6), "mx.contoso.com:25"),
], ids=["socks5", "socks5-auth", "socks4", "socks4a"])
def test_a_socks_tunnel_is_entered_too(client, proxy, refused, target):
    """SOCKS 4, 4a and 5 (RFC 1928, with RFC 1929 authentication, whose password is skipped,
    never shown): the dialogue is read from after the proxy's grant, as tshark's socks
    dissector hands it on; a refusal opens no tunnel."""
    smtp = b"EHLO a\r\nQUIT\r\n"
    replies = b"220 mx ESMTP\r\n250 a\r\n221 bye\r\n"
    streams = (_Stream(client + smtp), _Stream(proxy + replies))
    d = parse_dialogue(*streams)
    assert d == parse_dialogue(*streams, _general=True)
    assert [(c.verb, c.offset) for c in d.commands] == [("EHLO", len(client)),
                                                        ("QUIT", len(client) + 8)]
    assert d.banner_code == 220 and [r.answers for r in d.replies] == ["EHLO", "QUIT"]
    (tunnel,) = [a for a in d.anomalies if a.kind == "socks_tunnel"]
    assert target in tunnel.detail and "secret" not in tunnel.detail
    d = parse_dialogue(_Stream(client + smtp), _Stream(refused + replies))
    assert not [a for a in d.anomalies if a.kind == "socks_tunnel"]


def test_the_corpus_socks5_session_is_read_inside_its_tunnel():
    """arkime's socks5-smtp-503.pcap: SOCKS5 on port 1080, Exim's banner in frame 13, as
    tshark shows it."""
    path = CORPUS / "arkime__socks5-smtp-503.pcap"
    if not path.exists():
        pytest.skip("corpus not available")
    (s,) = scan(path, ports=(1080,))
    d = s.smtp
    assert (d.banner_code, d.banner_frame, d.ehlo_name, d.ehlo_frame) == (220, 13, "User", 14)
    assert not [a for a in d.anomalies if a.kind in ("bad_command", "bad_reply_line")]
    assert [a.kind for a in d.anomalies] == ["socks_tunnel"]


def _tunnel_to_465(kind: str, path, tls_only: bool) -> tuple[bytes, bytes]:
    """A relay's session through the proxy to port 465 (an HTTP CONNECT or a SOCKS5 one),
    written to `path`: its TLS alone, or the whole plaintext dialogue.  (The request and
    the proxy's answer.)"""
    sc = scenario("no_client_cert", make_pki(), server_port=PROXY)
    conv = converse(sc)
    if tls_only:
        conv.messages = [m for m in conv.messages if m.label.startswith("tls")]
    if kind == "http":
        request, answer = REQUEST.replace(b":25", b":465"), ANSWER
    else:
        request, answer = _socks5(None)
        request = request[:-2] + (465).to_bytes(2, "big")
    conv.messages[:0] = [Message(True, request, "connect"), Message(False, answer, "grant")]
    write_pcap(path, render(conv, sc))
    return request, answer


@pytest.mark.parametrize("kind", ["http", "socks5"])
def test_a_tunnel_to_465_reads_as_implicit_tls_on_465(kind, tmp_path):
    """A relay reaching port 465 through the proxy: TLS from the tunnel's first byte, as on
    465 itself (RFC 8314 §3.3), with no greeting to miss and no TLS to call unexpected."""
    path = tmp_path / "proxied465.pcap"
    request, answer = _tunnel_to_465(kind, path, tls_only=True)
    (s,) = scan(path, ports=(PROXY,))
    d = s.smtp
    assert d.implicit_tls and d.banner_code is None
    assert d.tls_c2s_offset == len(request) and d.tls_s2c_offset == len(answer)
    assert [a.kind for a in d.anomalies] == [
        "http_connect_tunnel" if kind == "http" else "socks_tunnel"]
    assert s.tls is not None and s.tls.client_certificate == ()
    assert s.tls.client_hello_at.frame == 6  # handshake, request, grant, its ACK
    assert "no_client_cert" in {v.code for v in s.verdicts}


@pytest.mark.parametrize("kind", ["http", "socks5"])
def test_a_tunnel_to_465_greeted_in_plaintext_warns_as_465_itself(kind, tmp_path):
    """A tunnel to port 465 whose server greets in plaintext is read as SMTP, with the
    plaintext_on_tls_port warning a direct connection to 465 gets, at the greeting's frame."""
    path = tmp_path / "plain465.pcap"
    _tunnel_to_465(kind, path, tls_only=False)
    (s,) = scan(path, ports=(PROXY,))
    d = s.smtp
    assert not d.implicit_tls and d.banner_code == 220 and d.starttls_accepted
    plain = [a for a in d.anomalies if a.kind == "plaintext_on_tls_port"]
    assert [(a.direction, a.frame) for a in plain] == [("s2c", d.banner_frame)]
    assert "port 465" in plain[0].detail
    (v,) = [v for v in s.verdicts if v.code == "plaintext_on_tls_port"]
    assert v.severity == "warning" and v.frame == d.banner_frame
    assert "on port 465 (mx.contoso.com:465, through the proxy " in v.message
    assert "no_client_cert" in {v.code for v in s.verdicts}
