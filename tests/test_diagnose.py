"""diagnose: hand-built sessions (one per verdict code) and an end-to-end run on generated
captures. Sessions use the real Session/SmtpDialogue/TlsHandshake dataclasses; certificate
checks use x509check's dataclasses when that module exists, else same-shaped stand-ins."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastcap.judge.diagnose import (
    CODES,
    PROBLEM_CODES,
    SEVERITIES,
    Verdict,
    client_cert_expected,
    diagnose,
    is_problem,
)
from fastcap.proto.smtp import CommandRecord, ReplyRecord, SmtpDialogue
from fastcap.proto.tls import (
    AlertInfo,
    EncryptedTraffic,
    StreamStop,
    TlsAnomaly,
    TlsHandshake,
    Where,
)
from fastcap.session import Session, TcpFacts

try:
    from fastcap.judge.x509check import CertInfo, ChainCheck
except ImportError:  # x509check is being written in parallel: same-shaped stand-ins

    @dataclasses.dataclass(frozen=True, slots=True)
    class CertInfo:  # type: ignore[no-redef]
        sha256: str
        sha1: str
        size: int
        subject: str | None
        issuer: str | None
        subject_cn: str | None
        issuer_cn: str | None
        san_dns: tuple[str, ...]
        san_ip: tuple[str, ...]
        serial: str | None
        not_before: dt.datetime | None
        not_after: dt.datetime | None
        key_type: str | None
        key_bits: int | None
        signature_algorithm: str | None
        signature_hash: str | None
        key_usage: tuple[str, ...]
        ext_key_usage: tuple[str, ...] | None
        is_ca: bool | None
        self_signed: bool
        parse_error: str | None

    @dataclasses.dataclass(frozen=True, slots=True)
    class ChainCheck:  # type: ignore[no-redef]
        role: str
        certs: tuple[CertInfo, ...]
        leaf_valid_at_capture: str
        leaf_valid_today: str
        trusted: bool | None
        problem: str | None
        detail: str
        expected_name: str | None
        name_matches: bool | None
        eku_ok: bool | None
        weak_signatures: tuple[tuple[int, str], ...]
        weak_keys: tuple[tuple[int, str], ...]


EXO = "contoso-com.mail.protection.outlook.com"
MX = "mx.contoso.com"  # the default peer: not Exchange Online, so no info verdict by default
CAPTURE = dt.datetime(2026, 11, 26, 9, 30, tzinfo=dt.UTC)
CAPTURE_NS = int(CAPTURE.timestamp()) * 1_000_000_000

# Frame plan of the default handshake: CH 10, server flight 12, client flight 14, server 15.
F_CH, F_SERVER, F_CLIENT, F_SERVER_FIN = 10, 12, 14, 15


# ---------------------------------------------------------------------------- builders


def cert(cn: str = "mail.fabrikam.com", **kw) -> CertInfo:
    base = dict(
        sha256="ab" * 32, sha1="cd" * 20, size=800,
        subject=f"CN={cn}", issuer="CN=Fabrikam Test Issuing CA 01",
        subject_cn=cn, issuer_cn="Fabrikam Test Issuing CA 01",
        san_dns=(cn,), san_ip=(), serial="01",
        not_before=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        not_after=dt.datetime(2027, 1, 1, tzinfo=dt.UTC),
        key_type="EC", key_bits=256, signature_algorithm="ecdsa-with-SHA256",
        signature_hash="sha256", key_usage=("digitalSignature",),
        ext_key_usage=("clientAuth", "serverAuth"), is_ca=False, self_signed=False,
        parse_error=None,
    )  # fmt: skip
    base.update(kw)
    return CertInfo(**base)


def check(role: str = "client", leaf: CertInfo | None = None, **kw) -> ChainCheck:
    """A clean chain check (trusted, valid, right usage) unless ``kw`` says otherwise."""
    leaf = leaf or cert(MX if role == "server" else "mail.fabrikam.com")
    base = dict(
        role=role, certs=(leaf, cert("Fabrikam Test Issuing CA 01", is_ca=True)),
        leaf_valid_at_capture="valid", leaf_valid_today="valid", trusted=True, problem=None,
        detail="", expected_name=None, name_matches=None, eku_ok=True,
        weak_signatures=(), weak_keys=(),
    )  # fmt: skip
    base.update(kw)
    return ChainCheck(**base)


def smtp(**kw) -> SmtpDialogue:
    """Banner, EHLO offering STARTTLS, STARTTLS accepted (frames 1..6)."""
    base = dict(
        banner_code=220, banner_text="mx.contoso.com ESMTP ready", banner_host="mx.contoso.com",
        banner_frame=4, ehlo_verb="EHLO", ehlo_name="mail.fabrikam.com", ehlo_frame=5,
        capabilities=["SIZE", "PIPELINING", "STARTTLS"], starttls_offered=True,
        starttls_command_frame=7,
        starttls_reply=ReplyRecord(220, "2.0.0", "2.0.0 SMTP server ready", 200, 8, "STARTTLS"),
        starttls_accepted=True,
    )  # fmt: skip
    base.update(kw)
    return SmtpDialogue(**base)


def exo_smtp(**kw) -> SmtpDialogue:
    text = f"{EXO} Microsoft ESMTP MAIL Service ready"
    return smtp(banner_text=text, banner_host=EXO, banner_names_exchange_online=True, **kw)


def w(frame: int | None) -> Where | None:
    return None if frame is None else Where(frame * 100, frame)


def tls(**kw) -> TlsHandshake:
    """A completed TLS 1.2 handshake in which the server asked for and got a client cert."""
    base = dict(
        version=0x0303, version_name="TLS 1.2", cipher=0xC02F,
        cipher_name="TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        client_hello=SimpleNamespace(sni=MX), client_hello_at=w(F_CH),
        server_hello=None, server_hello_at=w(F_SERVER), hello_retry_request=False,
        server_certs=[b"server-der", b"inter-der"], server_certs_at=w(F_SERVER),
        server_certificates_length=1000, cert_request=None, cert_request_at=w(F_SERVER),
        client_certificate=[b"client-der", b"inter-der"], client_certificate_at=w(F_CLIENT),
        client_certificates_length=900, server_key_exchange_at=w(F_SERVER),
        server_hello_done_at=w(F_SERVER), client_key_exchange_at=w(F_CLIENT),
        certificate_verify_at=w(F_CLIENT), client_ccs_at=w(F_CLIENT), server_ccs_at=w(F_SERVER_FIN),
        client_finished_at=w(F_CLIENT), server_finished_at=w(F_SERVER_FIN), alerts=[],
        c2s_encrypted=EncryptedTraffic(), s2c_encrypted=EncryptedTraffic(),
        tls13_encrypted=False, outcome="completed",
        outcome_detail="both sides sent ChangeCipherSpec and an encrypted Finished",
        outcome_inferred=False, history="cSXRNXGYIFif",
    )  # fmt: skip
    base.update(kw)
    return TlsHandshake(**base)


def tcp(**kw) -> TcpFacts:
    base = dict(
        client_by="syn", syn_seen=True, c2s_gaps=[], s2c_gaps=[], c2s_bytes=4000,
        s2c_bytes=6000, capped=False, evicted=False, retransmissions=0,
        conflicting_overlaps=0, out_of_order=0, closed_by="fin",
    )  # fmt: skip
    base.update(kw)
    return TcpFacts(**base)


def session(smtp_=None, tls_=None, tcp_=None) -> Session:
    return Session(
        number=1, client="203.0.113.10:49152", server="198.51.100.25:25", first_frame=1,
        last_frame=30, first_ts_ns=CAPTURE_NS, last_ts_ns=CAPTURE_NS + 10**9, frames=30,
        tcp=tcp_ or tcp(), smtp=smtp_, tls=tls_,
    )  # fmt: skip


def run(s: Session, client=None, server=None, **kw) -> list[Verdict]:
    out = diagnose(s, client, server, **kw)
    for v in out:  # invariants every test gets for free
        assert v.code in CODES and v.severity in SEVERITIES and v.message
        assert "\n" not in v.message
    assert [SEVERITIES.index(v.severity) for v in out] == sorted(
        SEVERITIES.index(v.severity) for v in out
    )
    return out


def codes(out: list[Verdict]) -> list[str]:
    return [v.code for v in out]


def one(out: list[Verdict], code: str) -> Verdict:
    (v,) = [v for v in out if v.code == code]
    return v


# ---------------------------------------------------------------------------- the seed scenario


def test_seed_empty_client_certificate_to_exchange_online():
    s = session(exo_smtp(), tls(client_certificate=[], client_certificates_length=0))
    out = run(s, None, check("server"))
    assert codes(out) == ["no_client_cert", "exchange_online_peer"]
    v = out[0]
    assert v.severity == "error" and v.frame == F_CLIENT
    assert f"frame {F_SERVER}" in v.message and f"frame {F_CLIENT}" in v.message
    assert "EMPTY" in v.message
    assert "Set-SendConnector -TlsCertificateName" in v.hint and "smtp_tls_cert_file" in v.hint
    assert out[1].severity == "info" and EXO in out[1].message


# ---------------------------------------------------------------------------- ok


def test_ok_only_when_everything_is_right():
    out = run(session(smtp(), tls()), check(), check("server"))
    assert codes(out) == ["ok"]
    assert "CN=mail.fabrikam.com" in out[0].message and out[0].frame == F_CLIENT
    assert out[0].hint == ""
    assert codes(
        run(session(smtp(), tls()), check(), check("server"), expect_name="mail.fabrikam.com")
    ) == ["ok"]


def test_ok_says_whether_the_name_was_compared():
    """Without an expected name, `ok` vouches for the chain, not for the name Exchange Online
    will hold against the connector: it says the name went unchecked, which names it carries
    and how to have it checked; the severity and the hint stay those of `ok`."""
    (v,) = run(session(smtp(), tls()), check(), check("server"))
    assert v.code == "ok" and v.severity == "ok" and v.hint == ""
    assert "its name was not compared with any expected name" in v.message
    assert "(SAN mail.fabrikam.com and CN mail.fabrikam.com)" in v.message
    assert "--expect-name" in v.message and "TlsSenderCertificateName" in v.message
    assert "--evidence" in v.message
    (v,) = run(session(smtp(), tls()), check(), check("server"), expect_name="mail.fabrikam.com")
    assert v.code == "ok" and v.severity == "ok" and v.hint == ""
    assert "not compared" not in v.message
    assert v.message.endswith("; it fits the expected name mail.fabrikam.com")


def test_ok_ignores_close_notify_and_post_handshake_encrypted_alerts():
    alerts = [AlertInfo(True, 1, 0, False, w(20)), AlertInfo(False, None, None, True, w(21))]
    assert codes(run(session(smtp(), tls(alerts=alerts)), check(), None)) == ["ok"]


@pytest.mark.parametrize("tweak", [
    {"trusted": None}, {"leaf_valid_at_capture": "unknown"},
])  # fmt: skip
def test_no_ok_without_positive_evidence(tweak):
    assert codes(run(session(smtp(), tls()), check(**tweak), None)) == []


def test_no_ok_without_client_check():
    assert codes(run(session(smtp(), tls()), None, None)) == []


# ---------------------------------------------------------------------------- client certificate


def test_no_client_cert_without_any_certificate_message():
    t = tls(client_certificate=None, client_certificate_at=None, client_certificates_length=None)
    out = run(session(smtp(), t))
    assert codes(out) == ["no_client_cert"]
    assert "no Certificate message" in out[0].message and out[0].frame == F_CLIENT


def test_client_cert_not_requested_by_an_ordinary_mx_is_info():
    t = tls(cert_request_at=None, client_certificate=None, client_certificate_at=None)
    out = run(session(smtp(), t), None, check("server"))
    assert codes(out) == ["client_cert_not_requested"]
    v = out[0]
    assert v.severity == "info" and v.hint == "" and not is_problem(v)
    assert "TLS 1.2" in v.message and "no client certificate is expected" in v.message


@pytest.mark.parametrize(("smtp_kw", "expect", "why"), [
    ({"exo": True}, None, "Exchange Online"),
    ({}, "mail.fabrikam.com", "--expect-name"),
    ({"sni": EXO}, None, f"SNI {EXO}"),
])  # fmt: skip
def test_client_cert_not_requested_where_one_is_expected_is_a_warning(smtp_kw, expect, why):
    t = tls(cert_request_at=None, client_certificate=None, client_certificate_at=None,
            client_hello=SimpleNamespace(sni=smtp_kw.get("sni", MX)))
    s = session(exo_smtp() if smtp_kw.get("exo") else smtp(), t)
    out = run(s, None, check("server"), expect_name=expect)
    v = one(out, "client_cert_not_requested")
    assert v.severity == "warning" and is_problem(v) and "attribution" in v.hint
    assert "TLS 1.2" in v.message and "is expected here" in v.message and why in v.message
    # a fact from elsewhere in the capture raises the info verdict the same way
    plain = one(run(session(smtp(), t), None, check("server")), "client_cert_not_requested")
    if why.startswith("SNI"):
        assert plain.severity == "warning"
    else:
        raised = client_cert_expected(plain, "this server asked for one on session 3")
        assert raised.severity == "warning" and "session 3" in raised.message
        assert raised.message.startswith(plain.message.split(";")[0])
    # a warning already says why a certificate is expected: another reason does not raise
    # it again, nor add to its message
    assert client_cert_expected(v, "this server asked for one on session 3") == v


@pytest.mark.parametrize("exo", [False, True])
def test_no_request_before_a_renegotiation_is_not_called_not_requested(exo):
    """IIS can ask for the client certificate by renegotiating: the request and the answer
    are then encrypted, so "the server never asked" would be a guess.  Where a certificate
    is expected that is a warning; for an ordinary MX, info."""
    t = tls(cert_request_at=None, client_certificate=None, client_certificate_at=None,
            renegotiation_at=w(40))
    out = run(session(exo_smtp() if exo else smtp(), t), None, check("server"))
    v = one(out, "client_cert_not_captured")
    assert "client_cert_not_requested" not in codes(out) and v.frame == 40
    assert "renegotiated TLS (frame 40)" in v.message and "not visible" in v.message
    want = ("warning", True) if exo else ("info", False)
    assert (v.severity, "renegotiating" in v.hint) == want


def test_not_requested_is_not_judged_before_the_server_flight_ends():
    t = tls(
        cert_request_at=None,
        client_certificate=None,
        client_certificate_at=None,
        server_hello_done_at=None,
        outcome="incomplete",
        outcome_detail="no server Finished",
        server_finished_at=None,
        server_ccs_at=None,
    )
    assert codes(run(session(smtp(), t, tcp(closed_by=None)))) == ["handshake_incomplete"]


def test_client_cert_expired_message_names_subject_and_dates():
    leaf = cert(not_after=dt.datetime(2026, 11, 23, 12, tzinfo=dt.UTC))
    c = check(
        leaf=leaf,
        leaf_valid_at_capture="expired",
        leaf_valid_today="expired",
        trusted=False,
        problem="expired",
        detail="certificate has expired",
    )
    out = run(session(smtp(), tls()), c, None)
    assert codes(out) == ["client_cert_expired"]
    m = out[0].message
    assert "client certificate CN=mail.fabrikam.com" in m and "expired 2026-11-23" in m
    assert "(capture 2026-11-26)" in m and "still expired today" in m
    assert f"frame {F_CLIENT}" in m and out[0].frame == F_CLIENT


def test_client_cert_not_yet_valid():
    leaf = cert(not_before=dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    c = check(
        leaf=leaf,
        leaf_valid_at_capture="not_yet_valid",
        leaf_valid_today="valid",
        trusted=False,
        problem="not_yet_valid",
    )
    out = run(session(smtp(), tls()), c, None)
    assert codes(out) == ["client_cert_not_yet_valid"]
    assert "2026-12-01" in out[0].message and "valid today" in out[0].message


@pytest.mark.parametrize(("problem", "code", "word"), [
    ("untrusted_root", "client_cert_untrusted_ca", "trusted CA"),
    ("invalid", "client_cert_untrusted_ca", "fails validation"),
    ("self_signed", "client_cert_self_signed", "self-signed"),
    ("missing_intermediate", "client_cert_incomplete_chain", "intermediate"),
])  # fmt: skip
def test_client_chain_problems(problem, code, word):
    # "invalid" with a path that reached the root and failed a check on the way
    error = "invalid CA certificate" if problem == "invalid" else None
    c = check(trusted=False, problem=problem, detail="issuer not found", path_error=error)
    out = run(session(smtp(), tls()), c, None)
    assert codes(out) == [code]
    assert word in out[0].message and "CN=mail.fabrikam.com" in out[0].message
    assert out[0].frame == F_CLIENT and out[0].hint
    assert "issuer not found" in out[0].message


@pytest.mark.parametrize(("problem", "text"), [
    ("untrusted_root", "{what} (issuer Fabrikam Test Issuing CA 01) does not chain to a "
                       "trusted CA"),
    ("self_signed", "{what} is self-signed"),
    ("missing_intermediate", "{what} arrived without an intermediate CA of its chain; 2 "
                             "certificate(s) sent"),
    ("expired", "a CA certificate in the {role} chain (frame {frame}) has expired"),
    ("not_yet_valid", "a CA certificate in the {role} chain (frame {frame}) is not yet valid"),
])  # fmt: skip
@pytest.mark.parametrize("role", ["client", "server"])
def test_each_chain_problem_is_said_in_its_own_words(problem, text, role):
    """The path verdict's whole text, for each problem and role: only the text of the
    problem found is made, so each must still be the one it names."""
    c = check(role, trusted=False, problem=problem)
    frame = F_CLIENT if role == "client" else F_SERVER
    name = "mail.fabrikam.com" if role == "client" else MX
    s = session(smtp(), tls())
    out = run(s, c, None) if role == "client" else run(s, check(), c)
    (v,) = [v for v in out if v.code.startswith(f"{role}_cert_")]
    what = f"{role} certificate CN={name} (frame {frame})"
    assert v.message == text.format(what=what, role=role, frame=frame)


def test_incomplete_chain_hint_says_send_the_full_chain():
    out = run(session(smtp(), tls()), check(problem="missing_intermediate", trusted=False), None)
    assert "full chain" in out[0].hint


def test_incomplete_chain_of_a_lone_leaf_names_the_missing_issuer():
    """A leaf sent alone: the CA that issued it is the one missing, so the message names it;
    with an intermediate sent, the missing one is further up and is not named."""
    leaf = cert()
    alone = check(leaf=leaf, certs=(leaf,), problem="missing_intermediate", trusted=False)
    (v,) = run(session(smtp(), tls()), alone, None)
    assert v.code == "client_cert_incomplete_chain"
    assert ("arrived without the intermediate CA that issued it (Fabrikam Test Issuing CA 01)"
            "; 1 certificate(s) sent") in v.message
    two = check(problem="missing_intermediate", trusted=False)
    (v,) = run(session(smtp(), tls()), two, None)
    assert "arrived without an intermediate CA of its chain; 2 certificate(s) sent" in v.message


def test_client_cert_name_mismatch_lists_the_names_it_has():
    leaf = cert(san_dns=("mail.fabrikam.com", "smtp.fabrikam.com"))
    out = run(session(smtp(), tls()), check(leaf=leaf), None, expect_name="relay.contoso.com")
    assert codes(out) == ["client_cert_name_mismatch"]
    m = out[0].message
    assert "relay.contoso.com" in m and "mail.fabrikam.com, smtp.fabrikam.com" in m


def test_client_name_only_judged_when_expected_name_given():
    leaf = cert(san_dns=("smtp.fabrikam.local",))
    assert codes(run(session(smtp(), tls()), check(leaf=leaf), None)) == ["ok"]


def test_client_name_uses_analyzer_answer_for_the_same_name():
    c = check(expected_name="mail.fabrikam.com", name_matches=False)
    out = run(session(smtp(), tls()), c, None, expect_name="MAIL.fabrikam.com")
    assert codes(out) == ["client_cert_name_mismatch"]


@pytest.mark.parametrize(("cn", "sans", "want", "ok"), [
    ("mail.contoso.com", ("smtp.contoso.com",), "mail.contoso.com", True),  # CN beside a SAN
    ("Contoso Relay", ("a.b.contoso.com",), "*.contoso.com", True),  # the domain and below
    ("Contoso Relay", ("contoso.com",), "*.contoso.com", True),
    ("Contoso Relay", ("mail.contoso.com",), "contoso.com", False),
])  # fmt: skip
def test_client_name_is_matched_as_the_inbound_connector_does(cn, sans, want, ok):
    leaf = cert(cn, san_dns=sans)
    out = run(session(smtp(), tls()), check(leaf=leaf), None, expect_name=want)
    assert codes(out) == (["ok"] if ok else ["client_cert_name_mismatch"])


@pytest.mark.parametrize(("names", "host", "ok"), [
    (("*.fabrikam.com",), "mail.fabrikam.com", True),
    (("*.fabrikam.com",), "a.mail.fabrikam.com", False),
    (("*.fabrikam.com",), "fabrikam.com", False),
    (("Mail.Fabrikam.com.",), "mail.fabrikam.com", False),  # OpenSSL: a trailing dot differs
    (("Mail.Fabrikam.com",), "mail.fabrikam.com.", True),  # in the name looked for, it does not
    (("x*.fabrikam.com",), "xy.fabrikam.com", False),  # no partial wildcards
])  # fmt: skip
def test_client_name_wildcards(names, host, ok):
    leaf = cert("Fabrikam Relay", san_dns=names)  # a CN that names no host: only the SANs count
    out = run(session(smtp(), tls()), check(leaf=leaf), None, expect_name=host)
    assert codes(out) == (["ok"] if ok else ["client_cert_name_mismatch"])


def test_client_cert_without_client_auth_eku():
    leaf = cert(ext_key_usage=("serverAuth",))
    c = check(leaf=leaf, eku_ok=False, problem="wrong_usage", trusted=False)
    out = run(session(smtp(), tls()), c, None)
    assert codes(out) == ["client_cert_no_client_auth_eku"]
    assert "clientAuth" in out[0].message and "serverAuth" in out[0].message


def test_weak_signature_in_either_chain():
    c = check(weak_signatures=((0, "sha1WithRSAEncryption"),))
    s = check("server", weak_signatures=((1, "md5WithRSAEncryption"),))
    out = run(session(smtp(), tls()), c, s)
    assert codes(out) == ["weak_signature"]
    m = out[0].message
    assert "sha1WithRSAEncryption" in m and "md5WithRSAEncryption" in m
    assert "CN=mail.fabrikam.com" in m and f"frame {F_SERVER}" in m
    # the verdict points at the first certificate it names: the client's, in its frame
    assert m.index(f"frame {F_CLIENT}") < m.index(f"frame {F_SERVER}")
    assert out[0].frame == F_CLIENT


def test_weak_signature_that_fails_a_trusted_chain_is_an_error():
    """A chain from a trusted CA that fails verification only for its SHA-1 digest (OpenSSL
    3 at its default security level: "CA signature digest algorithm too weak") fails the
    handshake for Exchange Online too: an error, not the warning of a weak link that still
    verifies."""
    c = check(weak_signatures=((0, "sha1WithRSAEncryption"),), problem="weak_signature",
              trusted=False, detail="CA signature digest algorithm too weak")
    (v,) = [v for v in run(session(smtp(), tls()), c, None) if v.code == "weak_signature"]
    assert v.severity == "error"
    assert "the client chain comes from a trusted CA but fails verification" in v.message


def test_weak_key():
    out = run(session(smtp(), tls()), check(weak_keys=((0, "RSA 1024"),)), None)
    assert codes(out) == ["weak_key"] and "RSA 1024" in out[0].message


# ---------------------------------------------------------------------------- server certificate


@pytest.mark.parametrize(("kw", "code"), [
    ({"leaf_valid_at_capture": "expired", "leaf_valid_today": "expired", "problem": "expired",
      "trusted": False}, "server_cert_expired"),
    ({"leaf_valid_at_capture": "not_yet_valid", "problem": "not_yet_valid", "trusted": False},
     "server_cert_not_yet_valid"),
    ({"problem": "untrusted_root", "trusted": False}, "server_cert_untrusted_ca"),
    ({"problem": "self_signed", "trusted": False}, "server_cert_self_signed"),
    ({"problem": "missing_intermediate", "trusted": False}, "server_cert_incomplete_chain"),
    ({"problem": "wrong_usage", "eku_ok": False}, "server_cert_no_server_auth_eku"),
])  # fmt: skip
def test_server_chain_problems(kw, code):
    out = run(session(smtp(), tls()), check(), check("server", **kw))
    assert codes(out) == [code]
    assert f"server certificate CN={MX}" in out[0].message and out[0].frame == F_SERVER


def test_server_cert_name_mismatch_only_against_known_sni():
    leaf = cert("mx.evil.example", san_dns=("mx.evil.example",))
    out = run(session(smtp(), tls()), check(), check("server", leaf=leaf))
    assert codes(out) == ["server_cert_name_mismatch"]
    assert MX in out[0].message and "mx.evil.example" in out[0].message
    no_sni = tls(client_hello=SimpleNamespace(sni=None))
    assert codes(run(session(smtp(), no_sni), check(), check("server", leaf=leaf))) == ["ok"]


def test_server_name_is_matched_as_a_host_name():
    """The SNI as OpenSSL checks it: a CN beside a DNS SAN does not count, unlike a client
    certificate's CN against the inbound connector."""
    leaf = cert(MX, san_dns=("smtp.contoso.com",))
    out = run(session(smtp(), tls()), check(), check("server", leaf=leaf))
    assert codes(out) == ["server_cert_name_mismatch"]
    assert f"SNI name {MX} (as a host name" in out[0].message
    assert codes(run(session(smtp(), tls()), check(leaf=leaf), None, expect_name=MX)) == ["ok"]


def test_cert_unparseable_chain():
    bad = cert(subject=None, subject_cn=None, parse_error="ASN.1 error: truncated")
    c = check(
        leaf=bad,
        problem="unparseable",
        trusted=None,
        leaf_valid_at_capture="unknown",
        leaf_valid_today="unknown",
        eku_ok=None,
    )
    out = run(session(smtp(), tls()), c, None)
    assert codes(out) == ["cert_unparseable"]
    assert "truncated" in out[0].message and f"frame {F_CLIENT}" in out[0].message


def test_cert_unparseable_in_both_chains_is_one_verdict_naming_both():
    """One verdict per code keeps the counts per code honest; its message must still name
    each chain that could not be parsed, with its frame."""
    def bad(role):
        leaf = cert(subject=None, subject_cn=None, parse_error=f"{role} ASN.1 error")
        return check(role, leaf=leaf, problem="unparseable", trusted=None,
                     leaf_valid_at_capture="unknown", leaf_valid_today="unknown", eku_ok=None)

    out = run(session(smtp(), tls()), bad("client"), bad("server"))
    (v,) = [v for v in out if v.code == "cert_unparseable"]
    assert "client ASN.1 error" in v.message and "server ASN.1 error" in v.message
    assert f"frame {F_CLIENT}" in v.message and f"frame {F_SERVER}" in v.message


def test_cert_unparseable_certificate_message():
    t = tls(client_certificate=None, client_certificates_length=None)  # at set, body malformed
    out = run(session(smtp(), t))
    assert codes(out) == ["cert_unparseable"] and out[0].frame == F_CLIENT


# ---------------------------------------------------------------------------- SMTP


def test_starttls_not_offered():
    d = smtp(
        starttls_offered=False,
        capabilities=["SIZE", "PIPELINING"],
        starttls_command_frame=None,
        starttls_reply=None,
        starttls_accepted=None,
    )
    out = run(session(d, None))
    assert codes(out) == ["starttls_not_offered"]
    assert "SIZE, PIPELINING" in out[0].message and out[0].frame == 5


def test_helo_after_a_refused_ehlo_is_why_starttls_was_not_offered():
    d = smtp(
        capabilities=[], starttls_offered=False, starttls_command_frame=None,
        starttls_reply=None, starttls_accepted=None,
        commands=[CommandRecord("EHLO", "a.example", 0, 5),
                  CommandRecord("HELO", "a.example", 17, 7)],
        replies=[ReplyRecord(502, "5.5.2", "5.5.2 Command not implemented", 40, 6, "EHLO"),
                 ReplyRecord(250, None, "hi", 75, 8, "HELO")],
    )  # fmt: skip
    (v,) = run(session(d, None))
    assert v.code == "starttls_not_offered" and v.frame == 7
    assert "HELO (frame 7) after its EHLO was refused (502 5.5.2 Command not implemented)" in (
        v.message)


def test_starttls_refused_names_the_reply():
    r = ReplyRecord(454, "4.7.0", "4.7.0 Temporary authentication failure", 300, 8, "STARTTLS")
    out = run(session(smtp(starttls_reply=r, starttls_accepted=False), None))
    assert codes(out) == ["starttls_refused"]
    assert "454 4.7.0 Temporary authentication failure" in out[0].message
    assert "frame 8" in out[0].message and out[0].frame == 8


def test_plaintext_only():
    d = smtp(
        starttls_command_frame=None, starttls_reply=None, starttls_accepted=None, message_bytes=2048
    )
    out = run(session(d, None))
    assert codes(out) == ["plaintext_only"] and "2048 bytes" in out[0].message


def test_starttls_offered_then_the_end_without_mail_says_no_mail_went():
    """EHLO, STARTTLS offered, then QUIT (a monitor's probe, or a sender that could not
    start TLS): a problem still, but nothing but EHLO crossed in plaintext."""
    d = smtp(starttls_command_frame=None, starttls_reply=None, starttls_accepted=None,
             commands=[CommandRecord("EHLO", "mail.fabrikam.com", 0, 5),
                       CommandRecord("QUIT", "", 24, 9)])
    (v,) = run(session(d, None, tcp(closed_by="fin")))
    assert v.code == "plaintext_only" and v.severity == "warning"
    assert "neither it nor any mail" in v.message and "unencrypted" not in v.message
    assert "probe" in v.hint
    mailed = smtp(starttls_command_frame=None, starttls_reply=None, starttls_accepted=None,
                  commands=[CommandRecord("MAIL", "FROM:<a@fabrikam.com>", 24, 7)])
    assert "never sent it" in run(session(mailed, None))[0].message


@pytest.mark.parametrize("code", [421, 521, 554])
def test_a_greeting_that_refuses_the_session_is_named_as_why(code):
    """RFC 5321 §3.1: a 554 (or 421, 521) greeting turns the sender away before any
    command; the verdict names it, a problem, instead of blaming the client for no EHLO."""
    text = "5.7.1 Service unavailable; Client host [203.0.113.10] blocked using Spamhaus"
    for d in (SmtpDialogue(banner_code=code, banner_text=text, banner_frame=4),
              SmtpDialogue(banner_code=code, banner_text=text + "\nsecond line",
                           banner_frame=4, ehlo_verb="EHLO", ehlo_frame=6,
                           commands=[CommandRecord("EHLO", "mail.fabrikam.com", 0, 6),
                                     CommandRecord("MAIL", "FROM:<a@fabrikam.com>", 24, 8)])):
        (v,) = run(session(d, None, tcp(closed_by="fin")))
        assert (v.code, v.severity, v.frame) == ("tls_not_reached", "warning", 4)
        assert f"refused the session in its greeting (frame 4): {code} {text};" in v.message
        assert "second line" not in v.message and "block list" in v.hint


def test_plaintext_only_when_the_ehlo_reply_was_not_captured():
    d = SmtpDialogue(
        ehlo_verb="EHLO",
        ehlo_name="mail.fabrikam.com",
        ehlo_frame=3,
        commands=[
            CommandRecord("EHLO", "mail.fabrikam.com", 0, 3),
            CommandRecord("MAIL", "FROM:<a@fabrikam.com>", 30, 5),
        ],
    )
    out = run(session(d, None, tcp(closed_by=None)))
    assert codes(out) == ["plaintext_only"] and out[0].frame == 5
    assert "not captured" in out[0].message


@pytest.mark.parametrize(
    ("d", "phrase"),
    [
        (
            SmtpDialogue(banner_code=220, banner_text="mx ESMTP", banner_frame=4),
            "the client never sent EHLO",
        ),
        (
            SmtpDialogue(banner_code=220, banner_text="mx", ehlo_verb="EHLO", ehlo_frame=6),
            "the EHLO (frame 6) got no successful reply",
        ),
    ],
)
def test_tls_not_reached(d, phrase):
    out = run(session(d, None, tcp(closed_by="rst")))
    assert codes(out) == ["tls_not_reached"] and out[0].severity == "info"
    assert phrase in out[0].message and "reset" in out[0].message


def test_starttls_sent_but_no_handshake_captured():
    d = smtp(starttls_reply=None, starttls_accepted=None)
    out = run(session(d, None, tcp(closed_by=None)))
    assert codes(out) == ["handshake_incomplete"]
    assert "frame 7" in out[0].message and "capture ended" in out[0].message


def test_helo_cannot_offer_starttls():
    d = smtp(
        ehlo_verb="HELO",
        capabilities=[],
        starttls_offered=False,
        starttls_command_frame=None,
        starttls_reply=None,
        starttls_accepted=None,
    )
    out = run(session(d, None))
    assert codes(out) == ["starttls_not_offered"] and "HELO (frame 5)" in out[0].message
    assert "EHLO" in out[0].hint


def test_alert_outcome_with_only_close_notify_is_still_reported():
    t = tls(
        alerts=[AlertInfo(False, 1, 0, False, w(13))],
        outcome="alert",
        server_finished_at=None,
    )
    out = run(session(smtp(), t), check(), None)
    assert codes(out) == ["tls_alert"] and "close_notify" in out[0].message


def test_relay_denied_in_plaintext():
    r = ReplyRecord(550, "5.7.64", "5.7.64 TenantAttribution; Relay Access Denied", 500, 11, "RCPT")
    d = exo_smtp(
        starttls_command_frame=None, starttls_reply=None, starttls_accepted=None, relay_denied=[r]
    )
    out = run(session(d, None))
    assert codes(out) == ["relay_denied", "plaintext_only", "exchange_online_peer"]
    v = out[0]
    assert v.frame == 11 and "frame 11" in v.message and "TenantAttribution" in v.message
    assert "TlsSenderCertificateName" in v.hint


@pytest.mark.parametrize("d", [None, SmtpDialogue()])
def test_no_smtp(d):
    out = run(session(d, None))
    assert codes(out) == ["no_smtp"] and out[0].severity == "info" and "1-30" in out[0].message


def test_exchange_online_peer_from_server_certificate():
    t = tls(client_hello=SimpleNamespace(sni=EXO))
    out = run(
        session(smtp(), t),
        check(),
        check("server", leaf=cert(EXO, san_dns=(EXO, "*.mail.protection.outlook.com"))),
    )
    assert codes(out) == ["ok", "exchange_online_peer"]  # ok and info coexist
    assert EXO in one(out, "exchange_online_peer").message


# ---------------------------------------------------------------------------- TLS


def test_tls_alert_after_client_certificate_means_rejection():
    alert = AlertInfo(False, 2, 42, False, w(16))  # fatal bad_certificate
    t = tls(
        alerts=[alert],
        outcome="alert",
        server_ccs_at=None,
        server_finished_at=None,
        outcome_detail="server sent fatal alert bad_certificate (frame 16)",
    )
    out = run(session(smtp(), t), check(), None)
    assert codes(out) == ["tls_alert"]
    m = out[0].message
    assert "server sent fatal alert bad_certificate (42) (frame 16)" in m
    assert "rejected the certificate itself" in m and out[0].frame == 16
    assert f"client's Certificate (frame {F_CLIENT})" in m


def _server_alert(description: int, **kw) -> Verdict:
    alert = AlertInfo(False, 2, description, False, w(16))
    t = tls(alerts=[alert], outcome="alert", server_ccs_at=None, server_finished_at=None, **kw)
    (v,) = [v for v in run(session(smtp(), t), check(), None) if v.code == "tls_alert"]
    return v


def test_server_alert_after_an_empty_certificate_means_one_is_required():
    """OpenSSL's server with verify required answers an empty Certificate with
    handshake_failure (TLS 1.2) or certificate_required (TLS 1.3): nothing was rejected."""
    for description in (40, 116):
        v = _server_alert(description, client_certificate=[])
        assert f"client's empty Certificate (frame {F_CLIENT})" in v.message
        assert "requires a client certificate" in v.message
        assert "rejected" not in v.message and "publicly trusted CA" not in v.hint
        assert "smtp_tls_cert_file" in v.hint and "TlsCertificateName" in v.hint


@pytest.mark.parametrize(("description", "said", "fix"), [
    (48, "could not chain the certificate to a CA it trusts", "intermediate CA after the leaf"),
    (45, "expired", "renew"),
    (43, "lacks clientAuth", "1.3.6.1.5.5.7.3.2"),
    (42, "not yet valid", "clock"),
])  # fmt: skip
def test_server_alert_on_a_client_certificate_names_its_reason(description, said, fix):
    """The reasons OpenSSL sends for each verification error (as a real OpenSSL server sent
    them for an untrusted, expired, serverAuth-only and not-yet-valid client certificate)."""
    v = _server_alert(description)
    assert f"({description}) (frame 16) right after the client's Certificate" in v.message
    assert said in v.message and fix in v.hint


def test_server_alert_on_the_hello_is_no_certificate_matter():
    v = _server_alert(70, client_certificate=None, client_certificate_at=None,
                      cert_request_at=None, client_key_exchange_at=None)
    assert "protocol_version (70)" in v.message and "TLS version" in v.message
    assert "Certificate" not in v.message and "smtp_tls_protocols" in v.hint


def test_tls_alert_from_client():
    alert = AlertInfo(True, 2, 48, False, w(13))  # unknown_ca
    t = tls(
        alerts=[alert],
        outcome="alert",
        cert_request_at=None,
        client_certificate=None,
        client_certificate_at=None,
        client_key_exchange_at=None,
    )
    out = run(session(smtp(), t), None, check("server"))
    assert codes(out) == ["tls_alert", "client_cert_not_requested"]
    assert "client sent fatal alert unknown_ca (48)" in out[0].message
    # the sending server distrusts the receiver's certificate, not the other way round
    assert "does not trust the CA of the receiving server's certificate" in out[0].message


def test_the_fatal_alert_is_named_when_a_warning_came_first():
    """A warning alert does not end the connection; the fatal one after it does (RFC 5246
    §7.2), so the verdict names the fatal alert and its frame."""
    warning = AlertInfo(False, 1, 112, False, w(12))  # unrecognized_name, a warning
    fatal = AlertInfo(False, 2, 48, False, w(16))  # unknown_ca after the client's flight
    t = tls(alerts=[warning, fatal], outcome="alert", server_ccs_at=None,
            server_finished_at=None)
    (v,) = [v for v in run(session(smtp(), t), check(), None) if v.code == "tls_alert"]
    assert v.severity == "error" and v.frame == 16
    assert "unknown_ca (48) (frame 16)" in v.message and "unrecognized_name" not in v.message


def test_warning_alert_is_a_warning():
    t = tls(alerts=[AlertInfo(True, 1, 41, False, w(14))])  # SSLv3 no_certificate
    out = run(session(smtp(), t), check(), None)
    assert codes(out) == ["tls_alert"] and out[0].severity == "warning"


@pytest.mark.parametrize(("tcp_kw", "phrase"), [
    ({"closed_by": None}, "capture ended"),
    ({"closed_by": "rst"}, "reset"),
    ({"capped": True, "closed_by": None}, "byte cap"),
    ({"evicted": True, "closed_by": None}, "evicted"),
    ({"s2c_gaps": [(1200, 300)]}, "lost 300 bytes server->client"),
])  # fmt: skip
def test_handshake_incomplete_names_the_cause(tcp_kw, phrase):
    t = tls(
        server_ccs_at=None,
        server_finished_at=None,
        outcome="incomplete",
        outcome_detail="no server ChangeCipherSpec; no server Finished",
    )
    out = run(session(smtp(), t, tcp(**tcp_kw)), check(), None)
    assert codes(out) == ["handshake_incomplete"]
    assert phrase in out[0].message and "no server Finished" in out[0].message


def test_handshake_incomplete_names_stream_stop_frame():
    stop = StreamStop(False, "gap", "bytes missing from the capture", w(13))
    t = tls(
        outcome="incomplete",
        outcome_detail="no server Finished",
        stops=[stop],
        server_finished_at=None,
    )
    out = run(session(smtp(), t), check(), None)
    assert codes(out) == ["handshake_incomplete"] and out[0].frame == 13


def test_tls13_encrypted():
    t = tls(
        version=0x0304,
        version_name="TLS 1.3",
        tls13_encrypted=True,
        server_certs=[],
        server_certs_at=None,
        cert_request_at=None,
        client_certificate=None,
        client_certificate_at=None,
        outcome_inferred=True,
    )
    out = run(session(exo_smtp(), t))
    assert codes(out) == ["tls13_encrypted", "exchange_online_peer"]
    assert "SSLKEYLOGFILE" in out[0].hint and out[0].severity == "info"


def test_tls13_suspected_server_alert():
    anomaly = TlsAnomaly(False, "tls.tls13.server_alert_suspected", "19-byte record", w(17))
    t = tls(
        version=0x0304,
        version_name="TLS 1.3",
        tls13_encrypted=True,
        server_certs=[],
        server_certs_at=None,
        cert_request_at=None,
        client_certificate=None,
        client_certificate_at=None,
        anomalies=[anomaly],
    )
    out = run(session(smtp(), t))
    assert codes(out) == ["tls_alert", "tls13_encrypted"] and out[0].frame == 17


# ---------------------------------------------------------------------------- tables


def test_code_tables():
    assert all(isinstance(d, str) and d.strip() for d in CODES.values())
    info = {"ok", "exchange_online_peer", "no_smtp", "tls13_encrypted", "tls_not_reached"}
    assert info <= set(CODES) and not (info & PROBLEM_CODES)
    assert PROBLEM_CODES < set(CODES)
    for code in (
        "no_client_cert",
        "client_cert_expired",
        "starttls_refused",
        "relay_denied",
        "handshake_incomplete",
        "tls_alert",
        "weak_signature",
        "plaintext_only",
    ):
        assert code in PROBLEM_CODES


def test_verdict_to_dict():
    v = Verdict("ok", "ok", "fine", "", 3)
    assert v.to_dict() == {
        "code": "ok",
        "severity": "ok",
        "message": "fine",
        "hint": "",
        "frame": 3,
    }


def test_problem_verdicts_have_hints():
    out = run(session(exo_smtp(), tls(client_certificate=[])), None, check("server"))
    assert all(v.hint for v in out if v.code in PROBLEM_CODES)


_CHECK_TWEAKS = st.sampled_from([
    {}, {"problem": "untrusted_root", "trusted": False}, {"problem": "self_signed"},
    {"leaf_valid_at_capture": "expired", "problem": "expired"}, {"eku_ok": False},
    {"weak_keys": ((0, "RSA 1024"),)}, {"problem": "unparseable"},
])  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    client_cert=st.sampled_from([None, [], [b"x"]]),
    requested=st.booleans(),
    outcome=st.sampled_from(["completed", "alert", "incomplete"]),
    tls13=st.booleans(),
    alert=st.sampled_from([None, (False, 2, 42, False), (True, 1, 0, False), (None, 2, 40, True)]),
    c_kw=_CHECK_TWEAKS, s_kw=_CHECK_TWEAKS, with_checks=st.booleans(),
    expect=st.sampled_from([None, "mail.fabrikam.com", "other.example"]),
    exo=st.booleans(), gaps=st.booleans(),
)  # fmt: skip
def test_property_ok_excludes_problems(
    client_cert, requested, outcome, tls13, alert, c_kw, s_kw, with_checks, expect, exo, gaps
):
    alerts = (
        [] if alert is None else [AlertInfo(bool(alert[0]), alert[1], alert[2], alert[3], w(16))]
    )
    t = tls(
        client_certificate=client_cert,
        cert_request_at=w(F_SERVER) if requested else None,
        outcome=outcome,
        tls13_encrypted=tls13,
        alerts=alerts,
    )
    s = session(exo_smtp() if exo else smtp(), t, tcp(c2s_gaps=[(5, 5)] if gaps else []))
    out = run(
        s,
        check(**c_kw) if with_checks else None,
        check("server", **s_kw) if with_checks else None,
        expect_name=expect,
    )
    found = codes(out)
    assert len(found) == len(set(found))
    if "ok" in found:
        assert not set(found) & PROBLEM_CODES
        assert outcome == "completed" and requested and client_cert and not tls13


# ---------------------------------------------------------------------------- end to end


EXPECTED_E2E = {
    "ok_client_cert": ["ok", "exchange_online_peer"],
    "no_client_cert": ["no_client_cert", "exchange_online_peer"],
    "cert_not_requested": ["client_cert_not_requested", "exchange_online_peer"],
    # The generator's OpenSSL server really rejects these, so its fatal alert is on the wire.
    "expired_client_cert": ["tls_alert", "client_cert_expired", "exchange_online_peer"],
    # Only the leaf is sent and nothing ties its issuer to a trusted root: a private CA.
    "untrusted_ca": ["tls_alert", "client_cert_untrusted_ca", "exchange_online_peer"],
    "name_mismatch": ["client_cert_name_mismatch", "exchange_online_peer"],
    # Refused/absent STARTTLS: the session goes on in plaintext and the 5.7.64 is visible.
    "starttls_refused": ["starttls_refused", "relay_denied", "exchange_online_peer"],
    "starttls_not_offered": ["starttls_not_offered", "relay_denied", "exchange_online_peer"],
    # TLS 1.3: the record sizes show the client's certificate flight
    "tls13_client_cert": ["client_cert_inferred_present", "tls13_encrypted",
                          "exchange_online_peer"],
}


def test_end_to_end_generated_captures(tmp_path):
    x509check = pytest.importorskip(
        "fastcap.judge.x509check", reason="fastcap.judge.x509check is not written yet"
    )
    from fastcap.session import iter_sessions
    from fastcap_synth.scenarios import SCENARIO_NAMES, make_pki, scenario
    from fastcap_synth.smtpgen import smtp_records
    from fastcap_synth.writers import write_pcap

    assert set(EXPECTED_E2E) == set(SCENARIO_NAMES)
    pki = make_pki()
    roots = tmp_path / "roots.pem"
    roots.write_bytes(pki.root.pem)
    analyzer = x509check.Analyzer(x509check.TrustStore.from_pem_file(roots))
    records = []
    now_ns = time.time_ns()  # the PKI is valid around now, so the capture must be too
    for i, name in enumerate(SCENARIO_NAMES):
        sc = scenario(name, pki, client_port=40000 + i, start_ns=now_ns + i * 10**10)
        records += smtp_records(sc)
    path = tmp_path / "all.pcap"
    write_pcap(path, sorted(records, key=lambda r: r.ts_ns))
    expect = "mail.fabrikam.com"
    got = {}
    for s, name in zip(iter_sessions(path), SCENARIO_NAMES, strict=True):
        at = dt.datetime.fromtimestamp(s.first_ts_ns // 10**9, dt.UTC)
        t = s.tls
        client = server = None
        if t is not None and t.client_certificate:
            client = analyzer.check(
                t.client_certificate, role="client", at=at, expected_name=expect
            )
        if t is not None and t.server_certs:
            server = analyzer.check(t.server_certs, role="server", at=at, expected_name=t.sni)
        got[name] = codes(run(s, client, server, expect_name=expect))
    assert got == EXPECTED_E2E


@pytest.mark.parametrize(("pattern", "host", "ok"), [
    ("*.contoso.com", "mail.contoso.com", True),
    ("*.com", "contoso.com", False),  # OpenSSL's X509_check_host refuses a wildcard TLD
    ("*.co.uk", "contoso.co.uk", True),
])  # fmt: skip
def test_host_wildcards_as_openssl_matches_them(pattern, host, ok):
    from fastcap.judge.x509names import host_matches as _host_matches

    assert _host_matches(pattern, host) is ok


@pytest.mark.parametrize("problem", ["untrusted_root", "self_signed"])
def test_untrusted_client_chain_fix_follows_the_receiving_server(problem):
    """Exchange Online admits only a publicly trusted CA; Postfix decides by its own trust
    store and can admit any certificate by fingerprint (permit_tls_clientcerts), so the fix
    for a private CA or a self-signed certificate depends on who receives."""
    code = f"client_cert_{'self_signed' if problem == 'self_signed' else 'untrusted_ca'}"
    bad = check(problem=problem, trusted=False)
    exo = one(run(session(exo_smtp(), tls()), bad, None), code)
    other = one(run(session(smtp(), tls()), bad, None), code)
    assert exo.severity == other.severity == "error"
    assert "publicly trusted CA" in exo.hint and "relay_clientcerts" not in exo.hint
    assert "not Exchange Online" in other.hint
    assert "relay_clientcerts" in other.hint and "permit_tls_clientcerts" in other.hint


def test_empty_certificate_to_a_server_that_only_asks_is_no_problem():
    """Postfix with smtpd_tls_ask_ccert = yes asks every client and goes on without a
    certificate: the receiving server decided nothing against the sender. Where one is
    expected (Exchange Online, --expect-name) or the server refused, it stays an error."""
    empty = {"client_certificate": [], "client_certificates_length": 0}
    (v,) = [v for v in run(session(smtp(), tls(**empty)), None, None)
            if v.code == "no_client_cert"]
    assert v.severity == "info" and not is_problem(v)
    assert f"EMPTY Certificate message (frame {F_CLIENT})" in v.message
    assert "asks without requiring" in v.message and "smtpd_tls_ask_ccert" in v.message
    assert "nothing to fix" in v.hint and "permit_tls_clientcerts" in v.hint
    for s, kw in ((session(exo_smtp(), tls(**empty)), {}),
                  (session(smtp(), tls(**empty)), {"expect_name": "mail.fabrikam.com"}),
                  (session(smtp(), tls(outcome="alert", **empty)), {})):
        (v,) = [v for v in run(s, None, None, **kw) if v.code == "no_client_cert"]
        assert v.severity == "error" and "asks without requiring" not in v.message


@pytest.mark.parametrize("role", ["client", "server"])
def test_self_signed_description_covers_what_openssl_only_takes_as_self_signed(role):
    """The verdict is also given for a certificate naming itself as its issuer that another
    key signed, which OpenSSL takes as self-signed without checking (error 18): its one-line
    description, and README's verdict table that shows it, say both."""
    code = f"{role}_cert_self_signed"
    assert CODES[code].startswith(f"the {role} certificate is self-signed, or names itself")
    assert "(error 18)" in CODES[code]
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    (row,) = [line for line in readme.splitlines() if line.startswith(f"| `{code}` |")]
    described = row.split(" | ")[2]
    assert described.startswith(CODES[code][:-1]) and "error 18" in described
