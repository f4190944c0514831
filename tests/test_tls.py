"""fastcap.proto.tls: real OpenSSL flights (synth.tlsgen), handcrafted edge cases, hostile input."""

from __future__ import annotations

import bisect
import hashlib
import json
import random
import struct
import tracemalloc
from dataclasses import dataclass, field
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastcap.proto.tls import (
    MAX_HANDSHAKE,
    Alert,
    Anomaly,
    Certificate,
    CertificateRequest,
    ChangeCipherSpec,
    ClientHello,
    EncryptedRecord,
    HandshakeMessage,
    Stopped,
    TlsConnection,
    TlsStream,
    dn_to_text,
    fold,
    ja,
    parse_flights,
    parse_handshake,
)
from fastcap.proto.tls import handshake as handshake_mod
from fastcap.proto.tls.const import (
    AlertDescription,
    CipherSuite,
    NamedGroup,
    is_grease,
    name_of,
    version_name,
)
from fastcap_synth import certs, tlsgen

# --------------------------------------------------------------------------- wire builders


def u16(v: int) -> bytes:
    return v.to_bytes(2, "big")


def u24(v: int) -> bytes:
    return v.to_bytes(3, "big")


def vec(size: int, body: bytes) -> bytes:
    return len(body).to_bytes(size, "big") + body


def record(ctype: int, body: bytes, version: int = 0x0303) -> bytes:
    return bytes([ctype]) + u16(version) + u16(len(body)) + body


def handshake(mtype: int, body: bytes) -> bytes:
    return bytes([mtype]) + u24(len(body)) + body


def ext(etype: int, body: bytes) -> bytes:
    return u16(etype) + vec(2, body)


def split_records(data: bytes) -> list[tuple[int, bytes]]:
    out, off = [], 0
    while off + 5 <= len(data):
        length = int.from_bytes(data[off + 3 : off + 5], "big")
        out.append((data[off], data[off + 5 : off + 5 + length]))
        off += 5 + length
    assert off == len(data)
    return out


def reframe(data: bytes, size: int | None) -> bytes:
    """Rewrite one direction's plaintext handshake records (before its ChangeCipherSpec):
    ``size=None`` coalesces each run into one record, else it splits it into ``size``-byte
    records, so messages share records or spread over many."""
    out, run, plaintext = [], b"", True

    def flush() -> None:
        nonlocal run
        if run:
            step = size or len(run)
            out.extend(record(22, run[i : i + step]) for i in range(0, len(run), step))
            run = b""

    for ctype, body in split_records(data):
        if ctype == 22 and plaintext:
            run += body
            continue
        flush()
        if ctype == 20:
            plaintext = False
        out.append(record(ctype, body))
    flush()
    return b"".join(out)


@dataclass
class FakeStream:
    """What the reassembler hands over: data, gaps and a stream-offset -> frame map."""

    data: bytes
    gaps: list[tuple[int, int]] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)

    def frame_at(self, offset: int) -> int | None:
        if not 0 <= offset < len(self.data):
            return None
        i = bisect.bisect_right(self.starts, offset) - 1
        return self.frames[i] if i >= 0 else None


def streams(flights, c2s_prefix=b"", s2c_prefix=b"") -> tuple[FakeStream, FakeStream]:
    """Each flight becomes one frame (numbered after the optional plaintext prefixes)."""
    c, s = FakeStream(b""), FakeStream(b"")
    frame = 0
    for st_, prefix in ((s, s2c_prefix), (c, c2s_prefix)):
        if prefix:
            frame += 1
            st_.starts.append(0)
            st_.frames.append(frame)
            st_.data += prefix
    for from_client, data in flights:
        frame += 1
        st_ = c if from_client else s
        st_.starts.append(len(st_.data))
        st_.frames.append(frame)
        st_.data += data
    return c, s


def direction(flights, from_client: bool) -> bytes:
    return b"".join(d for fc, d in flights if fc == from_client)


def feed_all(from_client: bool, data: bytes, cuts=(), version=None) -> list:
    stream = TlsStream(from_client)
    stream.set_version(version)
    events, prev = [], 0
    for cut in sorted(set(cuts)) + [len(data)]:
        events += stream.feed(data[prev:cut], prev)
        prev = cut
    return events + stream.end()


# --------------------------------------------------------------------------- real sessions


@cache
def pki():
    root = certs.make_ca("Fastcap Test Root")
    inter = certs.make_ca("Fastcap Test Issuing CA", parent=root)
    rogue = certs.make_ca("Rogue CA")
    return {
        "root": root,
        "inter": inter,
        "rogue": rogue,
        "server": certs.make_leaf(inter, "mx.example.net", sans=["mx.example.net"]),
        "client": certs.make_leaf(inter, "mail.fabrikam.com", sans=["mail.fabrikam.com"]),
        "untrusted": certs.make_leaf(rogue, "mail.fabrikam.com"),
    }


@cache
def session(version: str, auth: str, client: str | None, client_trusts: str | None = None):
    p = pki()
    s = tlsgen.server_context(
        p["server"], client_auth=auth, client_cas=[p["root"]], max_version=version
    )
    c = tlsgen.client_context(
        cert=p[client] if client else None,
        max_version=version,
        trust=[p[client_trusts]] if client_trusts else (),
    )
    return tlsgen.handshake(s, c, server_hostname="mx.example.net")


def flights(*args) -> list[tuple[bool, bytes]]:
    return session(*args).flights


SESSIONS = [
    ("1.2", "none", None),
    ("1.2", "optional", None),
    ("1.2", "optional", "client"),
    ("1.2", "required", None),
    ("1.3", "optional", "client"),
    ("1.3", "required", None),
]


def test_tls12_no_client_auth():
    p = pki()
    hs = parse_flights(flights("1.2", "none", None))
    assert hs.version == 0x0303 and hs.version_name == "TLS1.2"
    assert hs.cipher_name == name_of(CipherSuite, hs.cipher) and hs.cipher_name.startswith("TLS_")
    assert hs.server_certs == (p["server"].der, p["inter"].der)
    assert hs.server_certs_at.frame == 2
    assert hs.cert_request is None and not hs.cert_requested
    assert hs.client_certificate is None and hs.client_certificate_at is None
    assert hs.client_key_exchange_at.frame == 3
    assert hs.certificate_verify_at is None
    assert hs.outcome == "completed" and not hs.outcome_inferred
    assert not hs.tls13_encrypted
    assert hs.history == "CsxknGIFtif"
    assert hs.sni == "mx.example.net"
    assert hs.alerts == () and hs.anomalies == ()
    # both Finished records are encrypted handshake records after CCS
    assert hs.client_finished_at.frame == 3 and hs.server_finished_at.frame == 4
    assert hs.c2s_encrypted.records >= 1 and hs.s2c_encrypted.records >= 1


@pytest.mark.parametrize("suite, ske, group", [
    (0xC02F, b"\x03\x00\x1d" + vec(1, b"k" * 32), 29),  # ECDHE_RSA, named_curve x25519
    (0xC018, b"\x03\x00\x17" + vec(1, b"k" * 65), 23),  # ECDH_anon, secp256r1
    (0xC02B, b"\x01" + b"\x00" * 8, None),  # ECDHE with an explicit_prime curve: no name
    (0x009E, vec(2, b"p" * 0x300) + vec(2, b"\x02"), None),  # DHE: its p length opens with 3
    (0xCC13, b"\x03\x00\x18" + vec(1, b"k" * 97), 24),  # draft ChaCha20 ECDHE, secp384r1
    (0xC037, vec(2, b"h" * 0x300) + b"\x03\x00\x17", None),  # ECDHE_PSK: the hint first
], ids=["ecdhe", "ecdh_anon", "explicit_curve", "dhe", "ecdhe_old_chacha", "ecdhe_psk"])
def test_tls12_server_key_exchange_names_the_ecdhe_curve(suite, ske, group):
    """The ServerKeyExchange of an ECDHE suite opens with its ECParameters (RFC 8422 5.4):
    the named curve is kept (Zeek's ssl.log curve); another suite's is not read as one."""
    hello = u16(0x0303) + b"r" * 32 + vec(1, b"") + vec(2, u16(suite)) + vec(1, b"\x00")
    server_hello = u16(0x0303) + b"s" * 32 + vec(1, b"") + u16(suite) + b"\x00"
    hs = parse_flights([
        (True, record(22, handshake(1, hello + vec(2, b"")))),
        (False, record(22, handshake(2, server_hello) + handshake(12, ske)
                       + handshake(14, b""))),
    ])
    assert hs.cipher == suite and hs.server_key_exchange_at is not None
    assert hs.server_key_exchange_group == group
    assert hs.to_dict()["server_key_exchange_group"] == (
        None if group is None else name_of(NamedGroup, group))
    assert "".join(hs.history) == "Cskn"


def test_tls12_renegotiation_is_the_first_encrypted_handshake_record_after_finished():
    """After a side's Finished, a TLS 1.2 handshake record (a server's HelloRequest, a
    client's new ClientHello) is a renegotiation: whatever it carries, a CertificateRequest
    too, is encrypted.  The Finished records themselves are not one."""
    plain = flights("1.2", "none", None)
    assert parse_flights(plain).renegotiation_at is None
    hello_request = record(22, bytes(40))  # as encrypted: opaque to a reader without keys
    hs = parse_flights([*plain, (True, record(23, bytes(30))), (False, hello_request),
                        (True, record(22, bytes(200)))])
    assert hs.renegotiation_at.frame == len(plain) + 2
    assert hs.server_finished_at.frame == 4 and not hs.cert_requested
    assert hs.to_dict()["renegotiation"] == hs.renegotiation_at.to_dict()


def test_tls12_cert_requested_client_has_none_sends_empty_certificate():
    hs = parse_flights(flights("1.2", "optional", None))
    assert hs.cert_requested and hs.cert_request_at.frame == 2
    assert hs.cert_request.signature_algorithms  # TLS 1.2 form carries them
    assert hs.client_certificate == ()  # an EMPTY Certificate message: a first-class fact
    assert hs.client_certificates_length == 0
    assert hs.client_certificate_at.frame == 3
    assert hs.certificate_verify_at is None
    assert hs.outcome == "completed"
    assert "X" in hs.history and "Y" not in hs.history


def test_tls12_client_presents_chain_in_order():
    p = pki()
    hs = parse_flights(flights("1.2", "optional", "client"))
    assert hs.client_certificate == (p["client"].der, p["inter"].der)
    assert hs.client_certificates_length == sum(3 + len(d) for d in hs.client_certificate)
    assert hs.certificate_verify_at.frame == 3
    assert hs.outcome == "completed"
    assert hs.history == "CsxkrnXGYIFtif"
    d = hs.to_dict()
    json.dumps(d)
    assert [c["sha256"] for c in d["client_certificate"]["certificates"]] == [
        p["client"].sha256,
        p["inter"].sha256,
    ]
    assert d["client_certificate"]["empty"] is False
    assert d["client_certificate"]["frame"] == 3


def test_tls12_required_without_cert_server_alerts():
    hs = parse_flights(flights("1.2", "required", None))
    assert hs.client_certificate == ()
    assert hs.outcome == "alert"
    (alert,) = hs.alerts
    assert alert.sender == "server" and not alert.encrypted
    assert alert.level_name == "fatal" and alert.description_name == "handshake_failure"
    assert alert.at.frame == 4
    assert "handshake_failure" in hs.outcome_detail
    assert hs.history.endswith("l")


def test_tls12_required_untrusted_cert_server_alerts_unknown_ca():
    hs = parse_flights(flights("1.2", "required", "untrusted"))
    assert hs.client_certificate[0] == pki()["untrusted"].der
    assert hs.outcome == "alert"
    assert [(a.sender, a.description_name) for a in hs.alerts] == [("server", "unknown_ca")]


def test_client_rejects_server_certificate():
    hs = parse_flights(flights("1.2", "none", None, "rogue"))
    assert hs.outcome == "alert"
    assert [(a.sender, a.level_name, a.description_name) for a in hs.alerts] == [
        ("client", "fatal", "unknown_ca")
    ]


def test_tls13_is_encrypted_and_probably_completed():
    hs = parse_flights(flights("1.3", "optional", "client"))
    assert hs.version_name == "TLS1.3" and hs.tls13_encrypted
    assert hs.server_certs == () and hs.cert_request is None  # encrypted: not visible
    assert hs.client_certificate is None
    assert hs.outcome == "completed" and hs.outcome_inferred
    assert "probably" in hs.outcome_detail
    assert hs.c2s_encrypted.records >= 3 and hs.s2c_encrypted.records >= 4
    assert hs.history.startswith("Csi")
    assert hs.client_hello.versions[0] == 0x0304


def test_tls13_required_without_cert_flags_alert_sized_record():
    hs = parse_flights(flights("1.3", "required", None))
    assert hs.tls13_encrypted
    assert hs.s2c_encrypted.sizes[-1] == 19
    assert "tls.tls13.server_alert_suspected" in [a.code for a in hs.anomalies]
    assert "alert-sized" in hs.outcome_detail


def test_tls13_hello_retry_request():
    p = pki()
    s = tlsgen.server_context(p["server"], max_version="1.3")
    s.set_ecdh_curve("secp384r1")  # the client's key share is x25519: forces an HRR
    sess = tlsgen.handshake(s, tlsgen.client_context(max_version="1.3"))
    hs = parse_flights(sess.flights)
    assert hs.hello_retry_request
    # the client's compat CCS before its second ClientHello must not hide that ClientHello
    assert hs.history.startswith("CjiIC")
    assert hs.outcome == "completed" and hs.version_name == "TLS1.3"


@pytest.mark.parametrize("args", SESSIONS)
def test_parse_handshake_matches_incremental_and_maps_frames(args):
    fl = flights(*args)
    prefix_c = b"EHLO mail.fabrikam.com\r\nSTARTTLS\r\n"
    prefix_s = b"220 mx ESMTP\r\n250-mx\r\n250 STARTTLS\r\n220 2.0.0 go ahead\r\n"
    c, s = streams(fl, prefix_c, prefix_s)
    hs = parse_handshake(c, s, len(prefix_c), len(prefix_s))
    ref = parse_flights(fl)
    assert hs.client_hello_at.offset == len(prefix_c) + 5
    assert hs.client_hello_at.frame == 3  # after the two prefix frames
    assert hs.server_hello_at.frame == 4
    for name in (
        "version",
        "cipher",
        "server_certs",
        "client_certificate",
        "outcome",
        "history",
        "tls13_encrypted",
        "alerts",
        "hello_retry_request",
    ):
        got, want = getattr(hs, name), getattr(ref, name)
        if name == "alerts":
            got = [(a.sender, a.description, a.at.frame - 2) for a in got]
            want = [(a.sender, a.description, a.at.frame) for a in want]
        assert got == want, name


def test_gap_stops_direction_and_is_reported():
    fl = flights("1.2", "optional", "client")
    c, s = streams(fl)
    hello_len = len(fl[0][1])
    c.gaps = [(hello_len + 10, 50)]
    hs = parse_handshake(c, s)
    assert hs.outcome == "incomplete"
    assert hs.client_certificate is None  # it was behind the gap
    (stop,) = [x for x in hs.stops if x.from_client]
    assert stop.reason == "gap" and stop.at.offset == hello_len + 10
    assert "client ChangeCipherSpec" in hs.outcome_detail and "missing" in hs.outcome_detail
    assert "tls.stream.gap" in [a.code for a in hs.anomalies]
    assert [x.reason for x in hs.stops if not x.from_client] == ["end"]


def test_stream_ends_mid_record():
    fl = flights("1.2", "optional", "client")
    c, s = streams(fl)
    s.data = s.data[:100]  # inside the server's Certificate record
    hs = parse_handshake(c, s)
    assert hs.outcome == "incomplete"
    assert hs.server_hello is not None and hs.server_certs == ()
    assert "tls.stream.truncated" in [a.code for a in hs.anomalies]


# --------------------------------------------------------------------------- chunking


@pytest.mark.parametrize("args", SESSIONS)
def test_byte_by_byte_equals_whole(args):
    fl = flights(*args)
    version = 0x0304 if args[0] == "1.3" else None
    for from_client in (True, False):
        data = direction(fl, from_client)
        whole = feed_all(from_client, data, version=version)
        assert whole == feed_all(from_client, data, range(1, len(data)), version=version)
        assert not [e for e in whole if isinstance(e, Anomaly)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    which=st.sampled_from(SESSIONS),
    from_client=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=40),
)
def test_random_chunking_gives_identical_events(which, from_client, cuts):
    data = direction(flights(*which), from_client)
    assert feed_all(from_client, data, [c for c in cuts if c <= len(data)]) == feed_all(
        from_client, data
    )


@pytest.mark.parametrize("size", [None, 1, 7, 100])
@pytest.mark.parametrize("args", [("1.2", "optional", "client"), ("1.2", "optional", None)])
def test_record_fragmentation_does_not_change_the_facts(args, size):
    """Messages spread over many tiny records, or all sharing one record, parse the same."""
    fl = [(fc, reframe(d, size)) for fc, d in flights(*args)]
    ref = parse_flights(flights(*args))
    hs = parse_flights(fl)
    assert hs.server_certs == ref.server_certs and len(hs.server_certs) == 2
    assert hs.client_certificate == ref.client_certificate
    assert hs.cert_request == ref.cert_request
    assert hs.client_hello == ref.client_hello
    assert hs.history == ref.history and hs.outcome == "completed"
    assert hs.anomalies == ()


def test_message_offsets_across_records():
    """Several messages in one record, one message across three records: each message's offset
    is its first header byte, wherever that landed."""
    cert = b"\x30\x03\x02\x01\x05"
    cert_msg = handshake(11, vec(3, vec(3, cert) + vec(3, cert)))
    done = handshake(14, b"")
    hello_done_twice = done + done
    r1 = record(22, cert_msg[:4])
    r2 = record(22, cert_msg[4:9])
    r3 = record(22, cert_msg[9:] + hello_done_twice)
    events = feed_all(False, r1 + r2 + r3)
    msgs = [e for e in events if isinstance(e, HandshakeMessage)]
    assert [m.msg_type for m in msgs] == [11, 14, 14]
    assert msgs[0].offset == 5
    assert msgs[0].body == Certificate((cert, cert), 16)
    second_record_body_end = len(r1) + len(r2)
    assert msgs[1].offset == second_record_body_end + 5 + len(cert_msg) - 9
    assert msgs[2].offset == msgs[1].offset + 4


@pytest.mark.parametrize("general", [0, 3])
def test_records_split_over_segments_are_at_the_frame_completing_them(general):
    """As Wireshark does, a ChangeCipherSpec, a TLS 1.2 Finished, an application data record
    and an alert split over segments are at the segment that completes them, not the one that
    carries their first byte (as the handshake messages before them already were)."""
    fl = flights("1.2", "optional", "client")
    frames: dict[bool, list[tuple[int, int]]] = {True: [], False: []}  # (offset, frame)
    data = {True: b"", False: b""}
    n = 0
    tail = [(True, record(23, bytes(40))), (False, record(21, b"\x02\x28"))]
    for from_client, chunk in [*fl, *tail]:
        for at in range(0, len(chunk), 3):  # 3-byte segments, each its own frame
            n += 1
            frames[from_client].append((len(data[from_client]) + at, n))
        data[from_client] += chunk

    @dataclass
    class Stream:
        data: bytes
        table: list[tuple[int, int]]
        gaps: tuple = ()

        def frame_at(self, offset: int) -> int | None:
            i = bisect.bisect_right([o for o, _ in self.table], offset) - 1
            return self.table[i][1] if 0 <= i and offset < len(self.data) else None

    c2s, s2c = Stream(data[True], frames[True]), Stream(data[False], frames[False])
    hs = parse_handshake(c2s, s2c, _general=general)

    def last_frame(stream: Stream, offset: int) -> int | None:
        length = int.from_bytes(stream.data[offset + 3 : offset + 5], "big")
        return stream.frame_at(offset + 4 + length)

    for at, stream in [(hs.client_ccs_at, c2s), (hs.client_finished_at, c2s),
                       (hs.server_ccs_at, s2c), (hs.server_finished_at, s2c),
                       (hs.c2s_encrypted.first_at, c2s)]:
        assert at is not None and at.frame == last_frame(stream, at.offset)
        assert at.frame != stream.frame_at(at.offset)  # each really spans segments
    (alert,) = hs.alerts  # after the server's ChangeCipherSpec: an opaque record
    assert alert.encrypted and alert.at.frame == last_frame(s2c, alert.at.offset) == n


# --------------------------------------------------------------------------- handcrafted


def test_sslv2_compatible_client_hello():
    # RFC 5246 E.2: msg_length (high bit set), msg_type 1, version, three lengths, then data
    specs = bytes.fromhex("00c02f0100800000350000ff")  # one SSL 2.0-only kind
    challenge = bytes(range(16))
    body = b"\x01" + u16(0x0301) + u16(len(specs)) + u16(0) + u16(len(challenge))
    body += specs + challenge
    wire = bytes([0x80 | (len(body) >> 8), len(body) & 0xFF]) + body
    rest = record(21, b"\x02\x28")  # then ordinary TLS records follow
    events = feed_all(True, wire + rest)
    (msg,) = [e for e in events if isinstance(e, HandshakeMessage)]
    ch = msg.body
    assert isinstance(ch, ClientHello) and ch.sslv2
    assert msg.offset == 0 and ch.legacy_version == 0x0301
    assert ch.cipher_suites == (0xC02F, 0x0035, 0x00FF)
    assert ch.random == bytes(16) + challenge
    assert ch.extensions == () and ch.sni is None
    assert ch.ja3 == "769,49199-53-255,,,"
    alerts = [e for e in events if isinstance(e, Alert)]
    assert [(a.level_name, a.description_name) for a in alerts] == [("fatal", "handshake_failure")]
    assert not [e for e in events if isinstance(e, Anomaly)]


def test_sslv2_server_hello_is_reported_not_parsed():
    events = feed_all(False, b"\x80\x05\x04\x00\x00\x00\x00")
    assert events[0].code == "tls.sslv2.unsupported"
    assert isinstance(events[-1], Stopped) and events[-1].reason == "sslv2"


def crafted_client_hello() -> bytes:
    exts = b"".join(
        [
            ext(0x1A1A, b""),  # GREASE
            ext(0, vec(2, b"\x00" + vec(2, b"mx.example.net"))),
            ext(10, vec(2, u16(0x2A2A) + u16(29) + u16(23))),
            ext(11, vec(1, b"\x00")),
            ext(16, vec(2, vec(1, b"h2") + vec(1, b"http/1.1"))),
            ext(13, vec(2, u16(0x0403) + u16(0x0804))),
            ext(43, vec(1, u16(0x3A3A) + u16(0x0304) + u16(0x0303))),
        ]
    )
    body = u16(0x0303) + bytes(32) + vec(1, b"") + vec(2, u16(0x0A0A) + u16(0xC02F) + u16(0x1301))
    body += vec(1, b"\x00") + vec(2, exts)
    return record(22, handshake(1, body), version=0x0301)


def test_ja3_and_ja4_by_hand():
    (msg,) = [e for e in feed_all(True, crafted_client_hello()) if isinstance(e, HandshakeMessage)]
    ch = msg.body
    # JA3 by hand from the description: version, ciphers, extensions, groups, point formats,
    # decimal, GREASE (0x0a0a, 0x1a1a, 0x2a2a) dropped
    assert ch.ja3 == "771,49199-4865,0-10-11-16-13-43,29-23,0"
    assert ch.ja3_md5 == hashlib.md5(b"771,49199-4865,0-10-11-16-13-43,29-23,0").hexdigest()
    # JA4: t, highest supported version 13, SNI d, 2 ciphers, 6 extensions, ALPN h2
    b = hashlib.sha256(b"1301,c02f").hexdigest()[:12]
    c = hashlib.sha256(b"000a,000b,000d,002b_0403,0804").hexdigest()[:12]
    assert ch.ja4 == f"t13d0206h2_{b}_{c}"
    assert ch.ja4_r == "t13d0206h2_1301,c02f_000a,000b,000d,002b_0403,0804"
    assert ch.sni == "mx.example.net" and ch.alpn == ("h2", "http/1.1")
    assert ch.versions == (0x0304, 0x0303)
    assert ch.supported_groups == (0x2A2A, 29, 23)  # kept raw; fingerprints drop GREASE
    assert name_of(CipherSuite, 0x0A0A) == "GREASE(0x0a0a)" and is_grease(0xFAFA)


def test_ja4_spec_example():
    """The worked example of FoxIO's JA4.md."""
    ciphers = [
        0x1301,
        0x1302,
        0x1303,
        0xC02B,
        0xC02F,
        0xC02C,
        0xC030,
        0xCCA9,
        0xCCA8,
        0xC013,
        0xC014,
        0x009C,
        0x009D,
        0x002F,
        0x0035,
    ]
    exts = [
        0x001B,
        0x0000,
        0x0033,
        0x0010,
        0x4469,
        0x0017,
        0x002D,
        0x000D,
        0x0005,
        0x0023,
        0x0012,
        0x002B,
        0xFF01,
        0x000B,
        0x000A,
        0x0015,
    ]
    sigs = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]
    common = dict(
        legacy_version=0x0303,
        supported_versions=[0x0A0A, 0x0304, 0x0303],
        has_sni=True,
        first_alpn=b"h2",
    )
    fp, raw = ja.ja4(
        cipher_suites=[0x5A5A, *ciphers],
        extensions=[0x3A3A, *exts],
        signature_algorithms=sigs,
        **common,
    )
    assert fp == "t13d1516h2_8daaf6152771_e5627efa2ab1"
    assert raw.startswith("t13d1516h2_002f,0035,009c,009d,1301,")
    fp, _ = ja.ja4(cipher_suites=ciphers, extensions=exts, signature_algorithms=[], **common)
    assert fp.endswith("_6d807ffa2a79")
    fp, _ = ja.ja4(
        cipher_suites=[],
        extensions=[],
        signature_algorithms=[],
        **{**common, "has_sni": False, "first_alpn": None, "supported_versions": []},
    )
    assert fp == "t12i000000_000000000000_000000000000"


@pytest.mark.parametrize(
    ("alpn", "want"),
    [
        (b"\xab", "ab"),
        (b"\xab\xcd", "ad"),
        (b"\x30\xab", "3b"),
        (b"\x30\x31\xab\xcd", "3d"),
        (b"\x30\xab\xcd\x31", "01"),
        (b"h", "hh"),
        (b"http/1.1", "h1"),
        (b"", "00"),
    ],
)
def test_ja4_alpn_characters(alpn, want):
    fp, _ = ja.ja4(
        legacy_version=0x0303,
        supported_versions=[],
        has_sni=False,
        cipher_suites=[1],
        extensions=[16],
        signature_algorithms=[],
        first_alpn=alpn,
    )
    assert fp[8:10] == want


def dn_der(cn: str) -> bytes:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Fabrikam"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    ).public_bytes()


def test_certificate_request_tls12_with_ca_names():
    good, bad = dn_der("Fabrikam Issuing CA"), b"\x30\x03\x31\x01\x00"
    body = vec(1, bytes([1, 64])) + vec(2, u16(0x0403) + u16(0x0804))
    body += vec(2, vec(2, good) + vec(2, bad))
    events = feed_all(False, record(22, handshake(13, body)), version=0x0303)
    req = events[0].body
    assert req == CertificateRequest((1, 64), (0x0403, 0x0804), (good, bad))
    assert req.ca_names() == ["CN=Fabrikam Issuing CA,O=Fabrikam", None]
    assert req.certificate_type_names == ["rsa_sign", "ecdsa_sign"]
    assert req.signature_algorithm_names == ["ecdsa_secp256r1_sha256", "rsa_pss_rsae_sha256"]
    assert dn_to_text(pki()["root"].cert.subject.public_bytes()) == (
        pki()["root"].cert.subject.rfc4514_string()
    )
    assert dn_to_text(b"") is None and dn_to_text(good + b"\x00") is None


def test_certificate_request_tls11_form_has_no_signature_algorithms():
    good = dn_der("Old CA")
    body = vec(1, bytes([1])) + vec(2, vec(2, good))
    events = feed_all(False, record(22, handshake(13, body), 0x0302), version=0x0302)
    assert events[0].body == CertificateRequest((1,), (), (good,))


def test_tls13_certificate_form_when_visible():
    cert_a, cert_b = b"\x30\x01\x00", b"\x30\x02\x00\x00"
    entries = vec(3, cert_a) + vec(2, ext(5, b"\x01")) + vec(3, cert_b) + vec(2, b"")
    msg = record(22, handshake(11, vec(1, b"\x07") + vec(3, entries)))
    for version in (0x0304, None):  # the negotiated version picks the form, else lengths do
        events = feed_all(True, msg, version=version)
        cert = events[0].body
        assert cert.certificates == (cert_a, cert_b) and cert.context == b"\x07"
        assert cert.entry_extensions[0][0].type == 5 and cert.entry_extensions[1] == ()
    empty13 = record(22, handshake(11, vec(1, b"") + vec(3, b"")))
    assert feed_all(True, empty13, version=0x0304)[0].body == Certificate((), 0, b"", ())


def test_plaintext_and_encrypted_alerts():
    ccs = record(20, b"\x01")
    events = feed_all(True, record(21, b"\x01\x00\x02\x2a") + ccs + record(21, bytes(26)))
    alerts = [e for e in events if isinstance(e, Alert)]
    assert [(a.level_name, a.description_name, a.offset) for a in alerts[:2]] == [
        ("warning", "close_notify", 5),
        ("fatal", "bad_certificate", 7),
    ]
    assert alerts[2].encrypted and alerts[2].length == 26 and alerts[2].level is None
    assert isinstance(events[2], ChangeCipherSpec)
    assert Alert(0, 2, 0xFF).description_name == "unknown(0xff)"


def test_encrypted_alert_in_summary():
    client = crafted_client_hello() + record(20, b"\x01") + record(22, bytes(40))
    server = record(21, bytes(26), 0x0303)  # before any CCS: plaintext, malformed length
    hs = parse_flights([(True, crafted_client_hello()), (False, server)])
    assert hs.outcome == "alert"
    hs = parse_flights([(True, client), (False, record(20, b"\x01") + record(21, bytes(26)))])
    assert hs.alerts[0].encrypted and hs.alerts[0].sender == "server"
    assert hs.outcome == "alert" and "encrypted alert" in hs.outcome_detail


def test_code_point_names():
    assert name_of(CipherSuite, 0x1234) == "unknown(0x1234)"
    assert name_of(AlertDescription, 116, 2) == "certificate_required"
    assert version_name(0x0303) == "TLS1.2" and version_name(0x0300) == "SSLv3"
    assert version_name(0x7F17) == "TLS1.3-draft-23" and version_name(0x0999) == "unknown(0x0999)"


def test_not_tls_stops_at_once():
    events = feed_all(False, b"454 4.7.0 TLS not available\r\n")
    assert events[0].code == "tls.stream.not_tls"
    assert isinstance(events[-1], Stopped) and events[-1].reason == "not_tls"
    hs = parse_flights([(True, b"QUIT\r\n")])
    assert hs.outcome == "incomplete" and "no ClientHello" in hs.outcome_detail


def test_interleaved_and_overlapping_feeds():
    msg = handshake(11, vec(3, b""))
    data = record(22, msg[:3]) + record(23, b"xx") + record(22, msg[3:])
    codes = [e.code for e in feed_all(True, data) if isinstance(e, Anomaly)]
    assert codes == ["tls.record.interleaved"]
    stream = TlsStream(True)
    whole = record(21, b"\x02\x28")
    assert stream.feed(whole[:4], 0) == []
    events = stream.feed(whole, 0)  # the first 4 bytes again
    assert [type(e) for e in events] == [Anomaly, Alert]
    later = stream.feed(b"\x16", 100)  # a hole: 93 bytes never arrived
    assert isinstance(later[-1], Stopped) and later[-1].reason == "gap"


# --------------------------------------------------------------------------- hostile input


def test_huge_declared_handshake_length_does_not_allocate():
    header = handshake(11, b"")[:1] + u24(0xFFFFFF)
    chunk = bytes(16000)
    data = record(22, header + chunk) + b"".join(record(22, chunk) for _ in range(150))
    tracemalloc.start()
    events = feed_all(True, data)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < MAX_HANDSHAKE // 2
    assert [e.code for e in events if isinstance(e, Anomaly)] == ["tls.handshake.too_big"]
    assert not [e for e in events if isinstance(e, HandshakeMessage)]


def test_skipped_message_then_resync():
    big = 2 * MAX_HANDSHAKE
    first = handshake(11, b"")[:1] + u24(big)
    frags = [first + bytes(16000)]
    left = big - 16000
    while left:
        n = min(left, 16384)
        frags.append(bytes(n))
        left -= n
    frags[-1] += handshake(14, b"")
    events = feed_all(False, b"".join(record(22, f) for f in frags))
    msgs = [e for e in events if isinstance(e, HandshakeMessage)]
    assert [m.msg_type for m in msgs] == [14]


def test_hostile_lengths_inside_messages():
    bad_cert = handshake(11, u24(0xFFFFFF) + u24(5) + b"abc")
    bad_hello = handshake(1, u16(0x0303) + bytes(32) + b"\xff")
    bad_req = handshake(13, b"\x05\x01")
    events = feed_all(False, record(22, bad_cert + bad_hello + bad_req))
    assert [e.body for e in events if isinstance(e, HandshakeMessage)] == [None, None, None]
    codes = {e.code for e in events if isinstance(e, Anomaly)}
    assert {
        "tls.certificate.malformed",
        "tls.client_hello.malformed",
        "tls.certificate_request.malformed",
    } <= codes
    record_too_long = bytes([23, 3, 3, 0xFF, 0xFF])
    assert feed_all(True, record_too_long)[-1].reason == "corrupt"


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=3000),
    from_client=st.booleans(),
    version=st.sampled_from([None, 0x0301, 0x0303, 0x0304]),
)
def test_arbitrary_bytes_never_raise(data, from_client, version):
    events = feed_all(from_client, data, version=version)
    assert isinstance(events[-1], Stopped)


_records = st.lists(
    st.tuples(
        st.sampled_from([20, 21, 22, 22, 22, 23, 24, 99]),
        st.one_of(
            st.binary(max_size=60),
            st.builds(
                lambda t, b: handshake(t, b),
                st.sampled_from([1, 2, 11, 13, 14, 16, 20]),
                st.binary(max_size=80),
            ),
        ),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(client=_records, server=_records)
def test_structured_garbage_never_raises(client, server):
    c = b"".join(record(t, b) for t, b in client)
    s = b"".join(record(t, b) for t, b in server)
    hs = parse_flights([(True, c), (False, s)])
    json.dumps(hs.to_dict())


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    which=st.sampled_from(SESSIONS),
    seed=st.integers(0, 2**32 - 1),
    edits=st.integers(1, 8),
    cut=st.booleans(),
)
def test_mutated_real_flights_never_raise(which, seed, edits, cut):
    rng = random.Random(seed)
    flights_ = mutated(flights(*which), rng, edits, cut)
    hs = parse_flights(flights_)
    json.dumps(hs.to_dict())
    c, s = streams(flights_)
    c.gaps = [(rng.randrange(len(c.data) + 1), rng.randrange(1, 50))] if rng.random() < 0.3 else []
    parse_handshake(c, s, rng.randrange(3), 0)


def mutated(fl_in, rng: random.Random, edits: int, cut: bool) -> list[tuple[bool, bytes]]:
    """Flights with ``edits`` random byte edits (and, with ``cut``, one flight cut short)."""
    fl = [list(x) for x in fl_in]
    for _ in range(edits):
        i = rng.randrange(len(fl))
        buf = bytearray(fl[i][1])
        if not buf:
            continue
        pos = rng.randrange(len(buf))
        op = rng.randrange(3)
        if op == 0:
            buf[pos] = rng.randrange(256)
        elif op == 1:
            buf[pos : pos + 1] = struct.pack(">H", rng.randrange(65536))
        else:
            del buf[pos : pos + rng.randrange(1, 20)]
        fl[i][1] = bytes(buf)
    if cut:
        i = rng.randrange(len(fl))
        fl[i][1] = fl[i][1][: rng.randrange(len(fl[i][1]) + 1)]
    return [(bool(a), b) for a, b in fl]


def test_connection_feeds_in_time_order_with_chunks():
    fl = flights("1.3", "optional", "client")
    conn = TlsConnection()
    offsets = {True: 0, False: 0}
    for from_client, data in fl:
        for i in range(0, len(data), 97):
            conn.feed(from_client, data[i : i + 97], offsets[from_client] + i)
        offsets[from_client] += len(data)
    conn.end(True)
    conn.end(False)
    hs = conn.result()
    ref = parse_flights(fl)
    assert (hs.history, hs.outcome, hs.c2s_encrypted.sizes) == (
        ref.history,
        ref.outcome,
        ref.c2s_encrypted.sizes,
    )
    assert conn.c2s.feed(b"more", offsets[True]) == []  # stopped: nothing after end()


def test_after_change_cipher_spec_records_are_opaque_unless_tls13():
    hello = crafted_client_hello()
    ccs = record(20, b"\x01")
    fin = record(22, handshake(20, bytes(12)))
    events = feed_all(True, hello + ccs + fin + record(23, bytes(10)))
    opaque = [e for e in events if isinstance(e, EncryptedRecord)]
    assert opaque == [
        EncryptedRecord(len(hello) + len(ccs), 22, 16),
        EncryptedRecord(len(hello) + len(ccs) + len(fin), 23, 10),
    ]
    # TLS 1.3: the CCS is a compatibility no-op, a later type-22 record is still plaintext
    events = feed_all(True, hello + ccs + fin, version=0x0304)
    assert [e.msg_type for e in events if isinstance(e, HandshakeMessage)] == [1, 20]


def test_result_is_repeatable_and_flags_unsolicited_certificate():
    fl = flights("1.3", "required", None)
    conn = TlsConnection()
    offsets = {True: 0, False: 0}
    for from_client, data in fl:
        conn.feed(from_client, data, offsets[from_client])
        offsets[from_client] += len(data)
    assert conn.result() == conn.result()  # result() does not consume or mutate state
    client = crafted_client_hello() + record(22, handshake(11, vec(3, vec(3, b"\x30\x00"))))
    server_hello = handshake(2, u16(0x0303) + bytes(32) + vec(1, b"") + u16(0xC02F) + b"\x00")
    hs = parse_flights([(True, client), (False, record(22, server_hello))])
    assert hs.client_certificate == (b"\x30\x00",) and not hs.cert_requested
    assert "tls.certificate.unsolicited" in [a.code for a in hs.anomalies]
    assert hs.version_name == "TLS1.2" and hs.cipher_name == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"


def test_downgrade_sentinel_only_matters_if_tls13_was_offered():
    random_ = bytes(24) + b"DOWNGRD\x01"
    sh = handshake(2, u16(0x0303) + random_ + vec(1, b"") + u16(0xC02F) + b"\x00")
    hs = parse_flights([(True, crafted_client_hello()), (False, record(22, sh))])
    assert hs.server_hello.downgrade == "TLS1.2"
    assert "tls.server_hello.downgrade_sentinel" in [a.code for a in hs.anomalies]
    old_hello = record(
        22, handshake(1, u16(0x0303) + bytes(32) + b"\x00" + vec(2, u16(0x2F)) + b"\x01\x00")
    )
    hs = parse_flights([(True, old_hello), (False, record(22, sh))])
    assert hs.client_hello.extensions == () and hs.client_hello.versions == (0x0303,)
    assert "tls.server_hello.downgrade_sentinel" not in [a.code for a in hs.anomalies]


# --------------------------------------------------------------------------- one result per path

_SSLV2_HELLO = bytes.fromhex("801f010301000600000010") + bytes.fromhex("00c02f000035") + bytes(16)


@st.composite
def handshake_inputs(draw):
    """Two directions as parse_handshake gets them: real flights (refragmented or mutated),
    structured garbage or an SSL 2.0 hello, after an optional plaintext prefix, with gaps
    anywhere (before, across or after the start) and starts that may miss a record edge."""
    kind = draw(st.sampled_from(["real", "real", "mutated", "garbage", "sslv2"]))
    if kind == "garbage":
        fl = [(fc, b"".join(record(t, b) for t, b in draw(_records))) for fc in (True, False)]
    else:
        fl = flights(*draw(st.sampled_from(SESSIONS)))
        if kind == "mutated":
            rng = random.Random(draw(st.integers(0, 2**32 - 1)))
            fl = mutated(fl, rng, draw(st.integers(1, 8)), draw(st.booleans()))
        elif kind == "sslv2":
            fl = [(True, _SSLV2_HELLO), *fl[1:]]
        else:
            fl = [(fc, reframe(d, draw(st.sampled_from([None, None, 1, 7, 100])))) for fc, d in fl]
    prefix = draw(st.sampled_from([b"", b"220 2.0.0 ready\r\n"]))
    c, s = streams(fl, prefix, prefix)
    starts = []
    for st_ in (c, s):
        start = len(prefix) if draw(st.integers(0, 3)) else draw(st.integers(0, len(st_.data)))
        starts.append(start)
        for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
            st_.gaps.append((draw(st.integers(0, len(st_.data))), draw(st.integers(0, 60))))
    encrypted = (draw(st.integers(0, 4)) == 0, draw(st.integers(0, 4)) == 0)
    return c, s, starts[0], starts[1], encrypted


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inp=handshake_inputs(), piece=st.sampled_from([1, 5, 64, 1 << 30]))
def test_parse_handshake_shortcuts_and_bare_events_change_nothing(inp, piece):
    """parse_handshake's speed-ups (whole records read in one loop, a lone handshake message
    taken straight from its record, _Bare tuples instead of event objects) must give exactly
    the general path's result: event objects, every byte through the record and message
    buffering, fed in pieces through TlsStream.feed."""
    c, s, c_at, s_at, encrypted = inp
    fast = parse_handshake(c, s, c_at, s_at, encrypted=encrypted)
    general = parse_handshake(c, s, c_at, s_at, encrypted=encrypted, _general=piece)
    assert fast.to_dict() == general.to_dict()
    assert fast == general  # every field, the ones only the diagnosis reads too
    json.dumps(fast.to_dict())


def test_general_path_has_no_shortcut_and_no_bare_event(monkeypatch):
    """_general really takes the other path: the shortcuts and the bare form stay unused."""
    seen = []
    monkeypatch.setattr(TlsStream, "_whole_records", lambda *a: seen.append(a) or a[2])
    fold_bare = fold._FOLD[tuple]
    monkeypatch.setitem(fold._FOLD, tuple, lambda *a: seen.append(a) or fold_bare(*a))
    c, s = streams(flights("1.2", "optional", "client"))
    general = parse_handshake(c, s, _general=1 << 30)
    assert seen == [] and general.outcome == "completed"
    assert parse_handshake(c, s) == general and seen  # the production path takes them


@dataclass
class BatchStream(FakeStream):
    """A FakeStream that also looks up many offsets in one call, as the reassembler's do."""

    def frames_at(self, offsets: list[int | None]) -> list[int | None]:
        return [None if o is None else self.frame_at(o) for o in offsets]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inp=handshake_inputs(), batch=st.booleans())
def test_first_record_frame_is_the_earliest_frame_completing_a_first_record(inp, batch):
    """parse_handshake finds the frame ending each direction's first whole record in the
    same lookup as its events' frames; that is the earlier of the two frames each direction's
    own lookup gives, as TlsConnection finds it (None where no record was whole)."""
    c, s, c_at, s_at, encrypted = inp
    if batch:
        c, s = BatchStream(c.data, c.gaps, c.starts, c.frames), BatchStream(
            s.data, s.gaps, s.starts, s.frames)
    hs = parse_handshake(c, s, c_at, s_at, encrypted=encrypted)
    server, _ = handshake_mod._run(False, s, s_at, encrypted=encrypted[1], piece=64)
    client, _ = handshake_mod._run(True, c, c_at, server.version, encrypted[0], piece=64)
    frames = [st_.frame_at(end - 1) for end, st_ in ((client.first_end, c),
                                                      (server.first_end, s)) if end]
    assert hs.first_record_frame == min((f for f in frames if f is not None), default=None)


def test_handshake_of_passes_each_field_in_its_place():
    """handshake_of builds its TlsHandshake positionally (keywords cost twice as much): each
    argument is on its own line, named by its comment, and those names are the fields in
    order, so a field added, moved or renamed fails here rather than shifting the others."""
    import ast
    import inspect
    import re
    from dataclasses import fields

    from fastcap.proto.tls import outcome
    from fastcap.proto.tls.facts import TlsHandshake

    source = inspect.getsource(outcome.handshake_of)
    lines = source.splitlines()
    (call,) = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)
               and getattr(n.func, "id", None) == "_make_handshake"]
    assert not call.keywords
    named = []
    for arg in call.args:
        found = re.search(r"#\s*(\w+)\s*$", lines[arg.end_lineno - 1])
        named.append(found and found.group(1))
    assert named == [f.name for f in fields(TlsHandshake)]
