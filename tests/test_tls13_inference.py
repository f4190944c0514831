"""TLS 1.3 client-certificate inference from record sizes (proto/tls/inference.py).

The rule is checked against real OpenSSL handshakes (fastcap_synth.tls13cases) whose client
flight is decrypted with the key log: it must be right on every case it decides, on the
scanner's parsing path as on the incremental one, and it may leave undecided only the cases it
has a reason for. Hand-built record sizes cover what OpenSSL never sends (coalesced or padded
records, early data, a client alert). Then the verdicts diagnose makes of it.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from types import SimpleNamespace

import pytest

from fastcap.judge.diagnose import CODES, PROBLEM_CODES, client_cert_expected
from fastcap.proto.tls import EncryptedTraffic, TlsHandshake, Where, parse_flights, parse_handshake
from fastcap.proto.tls.inference import ClientCertInference, infer_client_cert
from fastcap_synth.tls13cases import CHAINS, KEYS, SUITES, Case, generate

from .test_diagnose import exo_smtp, run, session, smtp


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    return generate()


def _streams(flights) -> tuple[SimpleNamespace, SimpleNamespace]:
    """Both directions as the reassembler hands them over, each flight its own frame."""
    sides = {True: [bytearray(), []], False: [bytearray(), []]}
    for n, (from_client, data) in enumerate(flights, 1):
        buf, starts = sides[from_client]
        starts.append((len(buf), n))
        buf += data

    def stream(from_client: bool) -> SimpleNamespace:
        buf, starts = sides[from_client]

        def frame_at(offset: int) -> int | None:
            found = None
            for start, frame in starts:
                if start > offset:
                    break
                found = frame
            return found if offset < len(buf) else None

        return SimpleNamespace(data=bytes(buf), gaps=[], frame_at=frame_at)

    return stream(True), stream(False)


def _expected(case: Case) -> str:
    return "present" if case.truth else "absent"


# ---------------------------------------------------------------- generated, keys as the truth


def test_the_matrix_covers_what_the_issue_asks(cases):
    assert {c.suite for c in cases} == set(SUITES)
    sent = [c for c in cases if c.client != "none" and c.server_auth != "none"]
    assert {(c.key, c.chain) for c in sent} == {(k, n) for k in KEYS for n in CHAINS}
    assert {(c.server_auth, c.client) for c in cases} >= {
        ("none", "none"), ("none", "chain"), ("optional", "none"), ("required", "none"),
        ("optional", "chain"), ("required", "chain"), ("optional", "refused"),
        ("required", "refused")}
    assert {c.extra for c in cases} == {"", "hrr", "pha"}


def test_decrypted_flights_are_what_each_case_set_up(cases):
    """The ground truth is read from the wire, and it agrees with the set-up: a server that
    does not ask gets no Certificate, a client without one sends it empty, a chain of n."""
    for c in cases:
        if c.server_auth == "none":
            assert c.truth is None, c.label
        elif c.client == "none":
            assert c.truth == 0, c.label
        else:
            assert c.truth == c.chain, c.label
        # OpenSSL refuses an untrusted chain, and `required` refuses an empty Certificate
        assert c.completed == (c.client != "refused"
                               and not (c.server_auth == "required" and c.client == "none"))


def test_the_rule_is_right_on_every_case_it_decides(cases):
    tally: Counter[str] = Counter()
    for c in cases:
        got = infer_client_cert(parse_flights(c.flights))
        if got.decided:
            assert got.verdict == _expected(c), (c.label, got)
            assert got.requested == (c.truth is not None), (c.label, got)
            assert got.confidence in ("high", "medium") and got.reason is None
            tally["right"] += 1
        else:
            tally["undecided"] += 1
            # the one case OpenSSL makes that the sizes cannot settle: a client offering
            # post-handshake authentication to a server that did not ask during the handshake
            assert c.extra == "pha" and "post-handshake" in got.reason, (c.label, got)
    assert tally == {"right": len(cases) - len(SUITES), "undecided": len(SUITES)}


def test_the_scanner_path_infers_the_same(cases):
    """parse_handshake (bare events, shortcuts) and its general path keep the same order
    facts as the incremental TlsConnection behind parse_flights."""
    for c in cases[:: 7]:
        c2s, s2c = _streams(c.flights)
        fast = parse_handshake(c2s, s2c)
        assert fast == parse_handshake(c2s, s2c, _general=5), c.label
        want = parse_flights(c.flights)
        assert fast.c2s_encrypted.peer_before == want.c2s_encrypted.peer_before
        assert infer_client_cert(fast) == infer_client_cert(want), c.label


def test_evidence_names_the_suite_sizes_and_the_request(cases):
    c = next(c for c in cases if c.suite == "TLS_AES_128_CCM_8_SHA256" and c.key == "rsa4096"
             and c.client == "refused" and c.server_auth == "optional")
    got = infer_client_cert(parse_flights(c.flights))
    assert got.verdict == "present" and got.confidence == "high"
    assert "8-byte tag, 32-byte hash" in got.evidence
    assert "RSA-4096 signature" in got.evidence
    assert "CertificateRequest-sized record" in got.evidence
    assert "probably refused the certificate" in got.evidence
    sha384 = next(c for c in cases if c.suite == "TLS_AES_256_GCM_SHA384" and c.truth == 0
                  and not c.extra)
    got = infer_client_cert(parse_flights(sha384.flights))
    assert got.verdict == "absent" and got.requested
    assert "16-byte tag, 48-byte hash" in got.evidence and "empty Certificate (25 bytes" in \
        got.evidence
    hrr = next(c for c in cases if c.extra == "hrr" and c.truth)
    assert "HelloRetryRequest" in infer_client_cert(parse_flights(hrr.flights)).evidence


def test_peer_order_is_in_the_json(cases):
    t = parse_flights(cases[0].flights)
    enc = t.to_dict()["encrypted"]
    assert enc["c2s"]["peer_before"] == list(t.c2s_encrypted.peer_before)
    assert enc["c2s"]["peer_before"][0] == len([n for n in enc["s2c"]["peer_before"]
                                                if n == 0])  # the server's whole flight first


# ---------------------------------------------------------------- hand-built record sizes


@pytest.fixture(scope="module")
def base(cases) -> TlsHandshake:
    """A real AES-128-GCM handshake (server did not ask) whose record sizes are replaced."""
    c = next(c for c in cases if c.suite == "TLS_AES_128_GCM_SHA256"
             and c.server_auth == "none" and c.client == "none" and not c.extra)
    return parse_flights(c.flights)


SERVER = (23, 936, 95, 53)  # EncryptedExtensions, Certificate, CertificateVerify, Finished


def _with(t: TlsHandshake, client: tuple[int, ...], server: tuple[int, ...] = SERVER,
          order: tuple[int, ...] | None = None, **kw) -> ClientCertInference:
    order = (len(server),) * len(client) if order is None else order
    c2s = EncryptedTraffic(len(client), sum(client), client, Where(900, 9), order)
    s2c = EncryptedTraffic(len(server), sum(server), server, Where(300, 4),
                           (0,) * len(server))
    return infer_client_cert(dataclasses.replace(t, c2s_encrypted=c2s, s2c_encrypted=s2c, **kw))


def test_the_layouts_it_decides(base):
    lone = _with(base, (53, 40))
    assert (lone.verdict, lone.requested, lone.confidence) == ("absent", False, "high")
    empty = _with(base, (25, 53, 40), (23, 60, 936, 95, 53))
    assert (empty.verdict, empty.requested, empty.confidence) == ("absent", True, "high")
    coalesced_empty = _with(base, (8 + 4 + 32 + 17, 40))  # empty Certificate + Finished
    assert (coalesced_empty.verdict, coalesced_empty.confidence) == ("absent", "medium")
    chain = _with(base, (1400, 281, 53, 40))
    assert chain.verdict == "present" and "RSA-2048" in chain.evidence
    cert_and_verify = _with(base, (1700, 53, 40), (23, 60, 936, 95, 53))
    assert (cert_and_verify.verdict, cert_and_verify.confidence) == ("present", "high")
    # the server's flight shows no separate CertificateRequest: it may share a record with
    # EncryptedExtensions, so the answer stands, less sure
    assert _with(base, (1700, 53, 40)).confidence == "medium"
    whole = _with(base, (1750, 40))  # Certificate, CertificateVerify and Finished in one
    assert (whole.verdict, whole.confidence) == ("present", "medium")
    # a lone Finished although the server's flight has a CertificateRequest-sized record
    odd = _with(base, (53, 40), (23, 60, 936, 95, 53))
    assert (odd.verdict, odd.confidence) == ("absent", "medium")


@pytest.mark.parametrize(("client", "reason"), [
    ((19, 53), "alert-sized"),  # the client aborted
    ((30, 60, 41), "padding"),  # nothing fits an unpadded layout
    ((25, 70, 41), "padding"),
    ((1400, 30, 53), "no CertificateVerify"),
    ((528, 528, 528), "padding"),  # padded to 512: an empty Certificate's flight looks big
    ((272, 528, 272), "padding"),  # padded to 256: a lone Finished, then a two-block line
    ((272, 19), "padding"),  # ... then an alert, which may go unpadded
    ((272,), "padding"),  # ... and nothing after it
    ((25,), "missing data"),  # the capture ends inside the flight
    ((), "missing data"),
])
def test_what_it_leaves_undecided(base, client, reason):
    got = _with(base, client)
    assert not got.decided and got.confidence == "none"
    assert reason in got.reason and got.reason_undecided == got.reason


def test_early_data_is_skipped(base):
    # two client records before the server's flight (0-RTT the server refused), then its flight
    got = _with(base, (500, 300, 25, 53, 40), (23, 60, 936, 95, 53), order=(0, 0, 5, 5, 5))
    assert got.verdict == "absent" and got.requested and "early data" in got.evidence
    only_early = _with(base, (500, 300), order=(0, 0))
    assert "missing data" in only_early.reason


def test_it_refuses_what_record_sizes_cannot_show(base):
    # a server flight with more than EncryptedExtensions and Finished breaks RFC 8446 4.3.2
    assert "more than its EncryptedExtensions" in _with(base, (53,), resumption="psk").reason
    assert "unknown" in _with(base, (53,), cipher=0x1399).reason
    tls12 = dataclasses.replace(base, tls13_encrypted=False, version=0x0303)
    assert not infer_client_cert(tls12).decided
    quirk = _with(base, (53, 40), client_ccs_at=Where(950, 10))
    assert "middlebox compatibility" in quirk.reason
    no_server = _with(base, (53,), server=())
    assert "no encrypted server record" in no_server.reason


def test_a_psk_handshake_has_no_client_certificate_whatever_the_padding(base):
    """RFC 8446 4.3.2: no CertificateRequest in a handshake the server authenticates with a
    pre-shared key, so even padded records that fit no layout mean no certificate."""
    for client in ((53, 40), (4112, 4112, 4112)):
        got = _with(base, client, (23, 53), resumption="psk")
        assert (got.verdict, got.requested, got.confidence) == ("absent", False, "high")
        assert "RFC 8446 4.3.2" in got.evidence
    # but a post-handshake request, once offered, could bring one as application data
    pha = dataclasses.replace(base.client_hello, extensions=(
        *base.client_hello.extensions, dataclasses.replace(base.client_hello.extensions[0],
                                                          type=49, data=b"")))
    got = _with(base, (53, 40), (23, 53), resumption="psk", client_hello=pha)
    assert not got.decided and "post-handshake" in got.reason


def test_padded_records_bound_what_the_flight_can_hold(base):
    """Records padded alike say nothing by size, but two 80-byte records (126 bytes of
    messages at most) before the server's next record cannot hold a certificate chain."""
    asked = (23, 60, 936, 95, 53, 250)  # the server's flight, then its NewSessionTicket
    got = _with(base, (80, 80, 80), asked, order=(5, 5, 6))
    assert (got.verdict, got.requested, got.confidence) == ("absent", True, "medium")
    assert "at most 126 bytes" in got.evidence
    unasked = _with(base, (80, 80, 80), (23, 936, 95, 53, 250), order=(4, 4, 5))
    assert (unasked.verdict, unasked.requested) == ("absent", False)
    refused = {
        "room for a chain": _with(base, (528, 528, 528), asked, order=(5, 5, 6)),
        "no server record after": _with(base, (80, 80, 80), asked[:5], order=(5, 5, 5)),
        "an alert after": _with(base, (80, 80, 80), (*asked[:5], 19), order=(5, 5, 6)),
        "a padded server flight": _with(base, (80, 80, 80), (23, 60, 936, 95, 80, 250),
                                        order=(5, 5, 6)),
        "four records: room for a chain": _with(base, (80,) * 4, asked, order=(5, 5, 5, 5)),
    }
    for why, got in refused.items():
        assert not got.decided and "record padding" in got.reason, why


def test_without_order_facts_the_first_client_record_starts_the_flight(base):
    assert _with(base, (25, 53), order=()).verdict == "absent"


# ---------------------------------------------------------------- verdicts


def _tls(cases, **want) -> TlsHandshake:
    c = next(c for c in cases if c.suite == "TLS_AES_128_GCM_SHA256" and not c.extra
             and all(getattr(c, k) == v for k, v in want.items()))
    return parse_flights(c.flights)


def test_verdicts_follow_the_tls12_severities(cases):
    assert "client_cert_inferred_absent" in PROBLEM_CODES
    assert "client_cert_inferred_present" in CODES
    assert "client_cert_inferred_present" not in PROBLEM_CODES
    asked = _tls(cases, server_auth="optional", client="none")
    empty = run(session(exo_smtp(), asked))
    v = next(v for v in empty if v.code == "client_cert_inferred_absent")
    assert v.severity == "error" and v.message.startswith("inferred from record sizes (high")
    assert "the client sent none" in v.message and "25" in v.message
    assert [x.code for x in empty] == ["client_cert_inferred_absent", "tls13_encrypted",
                                       "exchange_online_peer"]
    # as no_client_cert: a server no certificate is expected for, which went on without one
    optional = next(v for v in run(session(smtp(), asked))
                    if v.code == "client_cert_inferred_absent")
    assert optional.severity == "info" and "asks without requiring" in optional.message

    asked_none = _tls(cases, server_auth="none", client="none")
    info = next(v for v in run(session(smtp(), asked_none))
                if v.code == "client_cert_inferred_absent")
    assert info.severity == "info" and "no CertificateRequest" in info.message
    raised = client_cert_expected(info, "this server asked for one on session 1")
    assert raised.severity == "warning" and raised.code == "client_cert_inferred_absent"
    assert "asked for one on session 1" in raised.message
    exo = next(v for v in run(session(exo_smtp(), asked_none))
               if v.code == "client_cert_inferred_absent")
    assert exo.severity == "warning" and "Exchange Online" in exo.message

    sent = run(session(smtp(), _tls(cases, server_auth="required", client="chain", key="ec")))
    v = next(v for v in sent if v.code == "client_cert_inferred_present")
    assert v.severity == "info" and "ECDSA P-256" in v.message
    assert "SSLKEYLOGFILE" in v.hint
    enc = next(v for v in sent if v.code == "tls13_encrypted")
    assert "only inferred from record sizes" in enc.message


def test_undecided_keeps_tls13_encrypted_with_the_reason(cases):
    c = next(c for c in cases if c.extra == "pha")
    out = run(session(smtp(), parse_flights(c.flights)))
    assert [v.code for v in out] == ["tls13_encrypted"]
    assert "post-handshake authentication" in out[0].message
