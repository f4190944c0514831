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
    assert s.tls is not None and s.tls.client_certificate == []
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

    class Stream:
        def __init__(self, data: bytes) -> None:
            self.data, self.gaps = data, []

        def frame_at(self, offset: int) -> int | None:
            return 1 if offset < len(self.data) else None

    smtp = b"EHLO a\r\nQUIT\r\n"
    granted = (Stream(REQUEST + smtp), Stream(ANSWER + b"220 mx ESMTP\r\n250 a\r\n221 bye\r\n"))
    d = parse_dialogue(*granted)
    assert d == parse_dialogue(*granted, _general=True)  # the fast path reads it as the other
    assert [(c.verb, c.offset) for c in d.commands] == [("EHLO", len(REQUEST)),
                                                        ("QUIT", len(REQUEST) + 8)]
    assert d.banner_code == 220 and [r.answers for r in d.replies] == ["EHLO", "QUIT"]
    for answer in (b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
                   b"HTTP/1.1 200 Connection established\r\n"):
        d = parse_dialogue(Stream(REQUEST + smtp), Stream(answer + b"220 mx ESMTP\r\n"))
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
