"""Findings that need a log or the connector settings besides the capture: each one fires on
a case made for it and stays quiet on its twin, citing the log line and the wire frame.

The sessions are real: generated SMTP conversations over OpenSSL handshakes, scanned."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest

from fastcap.evidence.join import Match, SessionKey, join
from fastcap.evidence.records import CertClaim, LogConversation, LogReply, Where
from fastcap.evidence.settings import (
    ExchangeCertificate,
    InboundConnector,
    SendConnector,
    Settings,
)
from fastcap.judge.diagnose import CODES, PROBLEM_CODES, is_problem, most_severe_first
from fastcap.judge.evidence import (
    EVIDENCE_TABLE,
    evidence_verdicts,
    log_only_verdicts,
    settings_verdicts,
)
from fastcap.judge.x509names import sender_name_fits
from fastcap.run.scanner import scan
from fastcap_synth.scenarios import keyed_conversations, make_pki, scenario
from fastcap_synth.smtpgen import converse, render
from fastcap_synth.writers import keylog_bytes, write_pcap

S = 1_000_000_000
LOG = "SEND20260310-1.LOG"
JSON = "exchange-certs.json"
DAY = 86400 * S


@dataclasses.dataclass
class World:
    sessions: dict[str, object]  # scenario -> its scanned Session
    path: str
    certs: dict[str, bytes]  # scenario -> the client leaf's DER


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    d = tmp_path_factory.mktemp("findings")
    pki = make_pki()
    start = (int(pki.client.cert.not_valid_before_utc.timestamp()) + 7200) * S
    plan = [  # name, client address, port
        ("no_client_cert", "10.1.2.10", 50123),
        ("ok_client_cert", "203.0.113.10", 50124),
        ("expired_client_cert", "10.1.2.10", 50125),
        ("tls13_client_cert", "10.1.2.10", 50126),
    ]
    records = []
    for i, (name, ip, port) in enumerate(plan):
        sc = scenario(name, pki, client_ip=ip, client_port=port, server_ip="52.101.68.5",
                      start_ns=start + i * 10 * S)
        records += render(converse(sc), sc)
    ((sc, conv),) = keyed_conversations(pki, ["keys_tls12_relay_denied"])
    sc = dataclasses.replace(sc, client_ip="10.1.2.10", client_port=50127,
                             server_ip="52.101.68.5", start_ns=start + 40 * S)
    records += render(conv, sc)
    path = d / "story.pcap"
    write_pcap(path, records)
    keys = d / "story.keys"
    keys.write_bytes(keylog_bytes(conv.keylog))
    ca = d / "root.pem"
    ca.write_bytes(pki.root.pem)
    names = [n for n, _, _ in plan] + ["keys_tls12_relay_denied"]
    sessions = list(scan(path, ca_file=str(ca), keylog=(str(keys),)))
    assert len(sessions) == len(names)
    return World(dict(zip(names, sessions, strict=True)), str(path),
                 {"ok_client_cert": pki.client.der, "expired_client_cert":
                  pki.client_expired.der})


def _conv(session, line: int, **fields) -> LogConversation:
    """The send log's conversation of `session`: its endpoints, a second after its start."""
    cip, _, cport = session.client.rpartition(":")
    sip, _, sport = session.server.rpartition(":")
    start = session.first_ts_ns + S
    base = dict(kind="exchange-send", file=LOG, first=Where(LOG, line, line * 90),
                last=Where(LOG, line + 20, line * 90 + 2000), start_ns=start,
                end_ns=start + 2 * S, host_role="client", local_ip=cip, local_port=int(cport),
                remote_ip=sip, remote_port=int(sport),
                remote_name="contoso-com.mail.protection.outlook.com", starttls=True)
    return LogConversation(**{**base, **fields})


def _match(world: World, name: str, conv: LogConversation) -> Match:
    """Joined for real: the conversation must find its session by exact endpoints."""
    session = world.sessions[name]
    r = join([SessionKey.of(s, world.path) for s in world.sessions.values()], [conv],
             skew_s=0)
    (m,) = r.matches[(world.path, session.number)]
    assert m.basis == "endpoints"
    return m


def _one(verdicts, code: str):
    found = [v for v in verdicts if v.code == code]
    assert len(found) == 1, [v.code for v in verdicts]
    return found[0]


def _none(verdicts, code: str) -> None:
    assert code not in {v.code for v in verdicts}, [v.message for v in verdicts]


def _cert_frame(session) -> int:
    return session.tls.client_certificate_at.frame


def _leaf(world: World, name: str):
    return world.sessions[name].client_check.certs[0]


def _claim(line: int, **fields) -> CertClaim:
    return CertClaim(where=Where(LOG, line, line * 90), **fields)


def _exchange_cert(thumbprint: str, not_after_ns: int, line: int = 2, **fields
                   ) -> ExchangeCertificate:
    base = dict(subject="CN=mail.contoso.com", issuer="CN=Some CA", serial="01",
                not_before_ns=None, services=("IMAP", "POP", "SMTP"), names=())
    return ExchangeCertificate(thumbprint=thumbprint, not_after_ns=not_after_ns,
                               where=Where(JSON, line, 0), **{**base, **fields})


def _inbound(name: str | None = "mail.contoso.com", ips: tuple[str, ...] = ("203.0.113.10",),
             restrict_ip: bool | None = False, kind: str = "OnPremises") -> InboundConnector:
    return InboundConnector(
        name="From on-prem contoso", connector_type=kind, sender_ip_addresses=ips,
        sender_domains=("*",), require_tls=True, restrict_domains_to_certificate=True,
        restrict_domains_to_ip=restrict_ip, tls_sender_certificate_name=name, enabled=True,
        where=Where("inbound.json", 1, 0))


# ------------------------------------------------------------------------- the code table

def test_every_new_code_is_registered_with_its_severity():
    for code, (severity, description) in EVIDENCE_TABLE.items():
        assert CODES[code] == description
        assert (code in PROBLEM_CODES) is (severity in ("warning", "error"))
    assert {"log_cert_differs", "connector_name_mismatch", "log_rejected_after_tls",
            "sender_ip_not_in_connector", "log_only_rejected"} <= PROBLEM_CODES
    assert not {"log_evidence", "log_names_tls13_cert"} & PROBLEM_CODES


# ------------------------------------------------------------------------- log_evidence

def test_log_evidence_one_per_match(world):
    s = world.sessions["ok_client_cert"]
    m1 = _match(world, "ok_client_cert", _conv(s, 10))
    trace = _conv(s, 3, kind="message-trace", file="trace.csv", first=Where("trace.csv", 3, 0),
                  last=Where("trace.csv", 3, 0), host_role="server", local_ip=None,
                  local_port=None, remote_ip=s.client.rpartition(":")[0], remote_port=None)
    m2 = Match(m1.key, trace, "time-and-peer", S)
    out = [v for v in evidence_verdicts(s, [m1, m2], Settings()) if v.code == "log_evidence"]
    assert len(out) == 2 and all(v.severity == "info" and v.frame == s.first_frame
                                 for v in out)
    assert f"{LOG} line 10" in out[0].message and "endpoints" in out[0].message
    assert "trace.csv line 3" in out[1].message and "time-and-peer" in out[1].message
    assert evidence_verdicts(s, [], Settings()) == []


# ------------------------------------------------------------------------- log_cert_differs

def test_log_cert_differs_by_thumbprint(world):
    s = world.sessions["ok_client_cert"]
    other = hashlib.sha1(world.certs["expired_client_cert"]).hexdigest().upper()
    m = _match(world, "ok_client_cert", _conv(s, 10, cert_sent=_claim(12, thumbprint=other,
                                                                     subject="CN=x")))
    v = _one(evidence_verdicts(s, [m], Settings()), "log_cert_differs")
    assert v.severity == "error" and is_problem(v)
    assert f"{LOG} line 12" in v.message and "compared by thumbprint" in v.message
    assert v.frame == _cert_frame(s) and f"frame {v.frame}" in v.message
    assert "Set-SendConnector -TlsCertificateName" in v.hint
    same = _leaf(world, "ok_client_cert").sha1
    m = _match(world, "ok_client_cert", _conv(s, 10, cert_sent=_claim(12, thumbprint=same)))
    _none(evidence_verdicts(s, [m], Settings()), "log_cert_differs")


def test_log_cert_differs_by_serial_and_issuer_then_subject(world):
    s = world.sessions["ok_client_cert"]
    leaf = _leaf(world, "ok_client_cert")
    windows_issuer = ", ".join(leaf.issuer.split(","))  # Exchange writes "CN=a, O=b"
    ok = _conv(s, 10, cert_sent=_claim(12, serial=leaf.serial, issuer=windows_issuer))
    _none(evidence_verdicts(s, [_match(world, "ok_client_cert", ok)], Settings()),
          "log_cert_differs")
    bad = _conv(s, 10, cert_sent=_claim(12, serial="0A0B", issuer=windows_issuer))
    v = _one(evidence_verdicts(s, [_match(world, "ok_client_cert", bad)], Settings()),
             "log_cert_differs")
    assert "compared by serial and issuer" in v.message and v.frame == _cert_frame(s)
    by_subject = _conv(s, 10, cert_sent=_claim(14, subject="CN=mail.contoso.com"))
    v = _one(evidence_verdicts(s, [_match(world, "ok_client_cert", by_subject)], Settings()),
             "log_cert_differs")
    assert "compared by subject" in v.message and f"{LOG} line 14" in v.message


def test_log_cert_differs_when_the_wire_certificate_is_empty(world):
    s = world.sessions["no_client_cert"]
    conv = _conv(s, 30, cert_sent=_claim(33, subject="CN=mail.contoso.com", thumbprint="AB"))
    v = _one(evidence_verdicts(s, [_match(world, "no_client_cert", conv)], Settings()),
             "log_cert_differs")
    assert "is empty" in v.message and f"{LOG} line 33" in v.message
    assert v.frame == _cert_frame(s)
    _none(evidence_verdicts(s, [_match(world, "no_client_cert", _conv(s, 30))], Settings()),
          "log_cert_differs")


# ------------------------------------------------------------ Get-ExchangeCertificate

def test_log_cert_not_in_exchange(world):
    s = world.sessions["ok_client_cert"]
    thumb = _leaf(world, "ok_client_cert").sha1
    conv = _conv(s, 10, cert_sent=_claim(12, thumbprint=thumb))
    m = _match(world, "ok_client_cert", conv)
    listed = Settings(certificates=(_exchange_cert("00FF", s.first_ts_ns + DAY),))
    v = _one(evidence_verdicts(s, [m], listed), "log_cert_not_in_exchange")
    assert v.severity == "warning" and f"{LOG} line 12" in v.message and JSON in v.message
    assert v.frame == _cert_frame(s)
    there = Settings(certificates=(_exchange_cert(thumb, s.first_ts_ns + DAY),))
    _none(evidence_verdicts(s, [m], there), "log_cert_not_in_exchange")
    _none(evidence_verdicts(s, [m], Settings()), "log_cert_not_in_exchange")


def test_exchange_cert_expired(world):
    s = world.sessions["ok_client_cert"]
    thumb = _leaf(world, "ok_client_cert").sha1
    expired = Settings(certificates=(_exchange_cert(thumb, s.first_ts_ns - DAY, line=4),))
    v = _one(settings_verdicts(s, expired), "exchange_cert_expired")
    assert v.severity == "error" and f"{JSON} line 4" in v.message
    assert "by thumbprint" in v.message and v.frame == _cert_frame(s)
    assert "Enable-ExchangeCertificate -Services SMTP" in v.hint
    valid = Settings(certificates=(_exchange_cert(thumb, s.first_ts_ns + DAY),))
    _none(settings_verdicts(s, valid), "exchange_cert_expired")
    # by serial and issuer when the export has no usable thumbprint
    leaf = _leaf(world, "ok_client_cert")
    by_serial = Settings(certificates=(_exchange_cert(
        "", s.first_ts_ns - DAY, serial=leaf.serial, issuer=leaf.issuer),))
    assert "by serial and issuer" in _one(settings_verdicts(s, by_serial),
                                          "exchange_cert_expired").message


# ------------------------------------------------------------------------- connectors

def test_name_fits_like_exchange_online():
    assert sender_name_fits(["mail.contoso.com"], "MAIL.contoso.com")
    assert sender_name_fits(["other", "mail.contoso.com"], "*.contoso.com")
    assert sender_name_fits(["contoso.com"], "*.contoso.com")
    assert sender_name_fits(["*.contoso.com"], "mail.contoso.com")
    assert not sender_name_fits(["*.contoso.com"], "a.b.contoso.com")
    assert not sender_name_fits(["mail.contoso.com.evil"], "*.contoso.com")
    assert not sender_name_fits(["mail.fabrikam.com"], "mail.contoso.com")


def test_connector_name_mismatch(world):
    s = world.sessions["ok_client_cert"]  # CN and SAN mail.fabrikam.com
    v = _one(settings_verdicts(s, Settings(inbound=(_inbound("mail.contoso.com"),))),
             "connector_name_mismatch")
    assert v.severity == "error" and "inbound.json line 1" in v.message
    assert "mail.fabrikam.com" in v.message and v.frame == _cert_frame(s)
    assert "Set-InboundConnector -TlsSenderCertificateName" in v.hint
    for fits in ("MAIL.FABRIKAM.COM", "*.fabrikam.com"):
        _none(settings_verdicts(s, Settings(inbound=(_inbound(fits),))),
              "connector_name_mismatch")
    partner = _inbound("mail.contoso.com", kind="Partner")  # not the 5.7.64 connector
    _none(settings_verdicts(s, Settings(inbound=(partner,))), "connector_name_mismatch")


def test_connector_name_mismatch_with_an_address_connector_is_info(world):
    # an OnPremises connector identifies the server by certificate or by address: one
    # without TlsSenderCertificateName that lists the client's public address lets it in
    s = world.sessions["ok_client_cert"]  # wire client 203.0.113.10, cert mail.fabrikam.com
    by_cert = _inbound("mail.contoso.com", ips=())
    by_ip = dataclasses.replace(_inbound(None, ips=("203.0.113.0/24",)), name="From relay1")
    v = _one(settings_verdicts(s, Settings(inbound=(by_cert, by_ip))),
             "connector_name_mismatch")
    assert v.severity == "info" and not is_problem(v)
    assert "203.0.113.10 is in SenderIPAddresses" in v.message and "From relay1" in v.message
    for other in (dataclasses.replace(by_ip, sender_ip_addresses=("198.51.100.0/24",)),
                  dataclasses.replace(by_ip, enabled=False),
                  dataclasses.replace(by_ip, connector_type="Partner")):
        v = _one(settings_verdicts(s, Settings(inbound=(by_cert, other))),
                 "connector_name_mismatch")
        assert v.severity == "error" and "SenderIPAddresses" not in v.message
    inside = world.sessions["expired_client_cert"]  # 10.1.2.10: the public address is unknown
    private = dataclasses.replace(by_ip, sender_ip_addresses=("10.0.0.0/8",))
    v = _one(settings_verdicts(inside, Settings(inbound=(by_cert, private))),
             "connector_name_mismatch")
    assert v.severity == "error"


def test_name_verdict_agrees_with_the_connector_finding(world):
    """With the connector's name as the expected one, `client_cert_name_mismatch` and
    `connector_name_mismatch` judge one fact: both are info when an address connector lets
    the client in, both stay errors when none does."""
    from fastcap.evidence.read import Evidence
    from fastcap.run.evidence import attach_evidence
    from fastcap.run.scanner import ScanSummary

    by_cert = _inbound("mail.contoso.com", ips=())
    by_ip = dataclasses.replace(_inbound(None, ips=("203.0.113.0/24",)), name="From relay1")
    for inbound, severity in (((by_cert, by_ip), "info"), ((by_cert,), "error")):
        (s,) = [x for x in scan(world.path, expect_name="mail.contoso.com")
                if x.client == world.sessions["ok_client_cert"].client]
        assert _one(s.verdicts, "client_cert_name_mismatch").severity == "error"
        results = [(world.path, [s], ScanSummary(world.path, sessions=1, with_problems=1))]
        # the session, and the summary, are replaced by ones with the findings
        attach_evidence(results, Evidence((), (), Settings(inbound=inbound), ()),
                        expect_name="mail.contoso.com")
        ((_, (s,), summary),) = results
        name = _one(s.verdicts, "client_cert_name_mismatch")
        assert name.severity == _one(s.verdicts, "connector_name_mismatch").severity == severity
        assert ("From relay1" in name.message) is (severity == "info")
        assert summary.with_problems == any(is_problem(v) for v in s.verdicts)
        assert s.verdicts == tuple(most_severe_first(s.verdicts))
    # the certificate fits another connector's name: the settings add no finding, and the
    # name verdict, made info, still takes its place after the problems
    fits = dataclasses.replace(_inbound("mail.fabrikam.com", ips=()), name="From fabrikam")
    (s,) = [x for x in scan(world.path, expect_name="mail.contoso.com")
            if x.client == world.sessions["ok_client_cert"].client]
    kept = [s]
    attach_evidence([(world.path, kept, ScanSummary(world.path))],
                    Evidence((), (), Settings(inbound=(by_cert, by_ip, fits)), ()),
                    expect_name="mail.contoso.com")
    (s,) = kept
    assert _one(s.verdicts, "client_cert_name_mismatch").severity == "info"
    assert s.verdicts == tuple(most_severe_first(s.verdicts))
    # an explicit --expect-name that is no connector's name is the admin's own check
    (s,) = [x for x in scan(world.path, expect_name="mail.example.net")
            if x.client == world.sessions["ok_client_cert"].client]
    kept = [s]
    attach_evidence([(world.path, kept, ScanSummary(world.path))],
                    Evidence((), (), Settings(inbound=(by_cert, by_ip)), ()),
                    expect_name="mail.example.net")
    (s,) = kept
    assert _one(s.verdicts, "client_cert_name_mismatch").severity == "error"


def test_ok_says_which_connector_name_the_certificate_fits(world):
    """Connectors of several names set no expected name, but the settings still hold the
    certificate against each: `ok` then says which connector's name it fits, or that it fits
    none, instead of a name left unchecked."""
    from fastcap.evidence.read import Evidence
    from fastcap.run.evidence import attach_evidence
    from fastcap.run.scanner import ScanSummary

    contoso = dataclasses.replace(_inbound("mail.contoso.com", ips=()), name="From contoso")
    fabrikam = dataclasses.replace(_inbound("*.fabrikam.com", ips=()), name="From fabrikam")
    for inbound, said in (((contoso, fabrikam), 'it fits TlsSenderCertificateName '
                           '*.fabrikam.com of inbound connector "From fabrikam" (inbound.json'
                           ' line 1)'),
                          ((contoso,), "it fits no inbound connector's "
                           "TlsSenderCertificateName (connector_name_mismatch)")):
        ca = str(Path(world.path).parent / "root.pem")
        (s,) = [x for x in scan(world.path, ca_file=ca)
                if x.client == world.sessions["ok_client_cert"].client]
        assert "was not compared" in _one(s.verdicts, "ok").message
        judged = [s]  # attach_evidence puts the judged sessions in the lists it is given
        attach_evidence([(world.path, judged, ScanSummary(world.path))],
                        Evidence((), (), Settings(inbound=inbound), ()))
        v = _one(judged[0].verdicts, "ok")
        assert said in v.message and "was not compared" not in v.message
        assert v.message.startswith(world.sessions["ok_client_cert"].verdicts[0].message
                                    .split("; its name")[0])


def _send(issuer: str | None, subject: str | None) -> SendConnector:
    return SendConnector(
        name="Outbound to Office 365 - 1b0c", tls_certificate_name=f"<I>{issuer}<S>{subject}",
        tls_cert_issuer=issuer, tls_cert_subject=subject, require_tls=True,
        tls_auth_level="CertificateValidation", smart_hosts=(), fqdn="mail.contoso.com",
        cloud_services_mail_enabled=True, enabled=True, where=Where("send.json", 1, 0))


def test_send_connector_cert_mismatch(world):
    s = world.sessions["ok_client_cert"]
    leaf = _leaf(world, "ok_client_cert")
    wrong = Settings(send=(_send(leaf.issuer, "CN=mail.contoso.com, O=Contoso, C=US"),))
    v = _one(settings_verdicts(s, wrong), "send_connector_cert_mismatch")
    assert v.severity == "error" and "send.json line 1" in v.message
    assert "<S>CN=mail.contoso.com" in v.message and v.frame == _cert_frame(s)
    assert "Set-SendConnector -TlsCertificateName" in v.hint
    windows = Settings(send=(_send(", ".join(leaf.issuer.split(",")),
                                   ", ".join(leaf.subject.split(","))),))
    _none(settings_verdicts(s, windows), "send_connector_cert_mismatch")


def test_send_connector_names_in_windows_form_match_the_wire(world):
    """Get-ExchangeCertificate's Issuer and Subject, and so the documented
    "<I>$($c.Issuer)<S>$($c.Subject)", are CertNameToStr's X.500 text: S, E, T, G, I, SN,
    SERIALNUMBER, PostalCode, and "OID.<dotted>" for an attribute without a key, a value
    holding a comma or backslash quoted (a quote in it doubled).  The wire's RFC 4514 text
    writes the same attributes as ST, dotted OIDs and backslash escapes: the two name one
    certificate."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID, ObjectIdentifier

    s = world.sessions["ok_client_cert"]
    subject = x509.Name([
        x509.NameAttribute(ObjectIdentifier("1.3.6.1.4.1.311.60.2.1.3"), "DE"),
        x509.NameAttribute(NameOID.BUSINESS_CATEGORY, "Private Organization"),
        x509.NameAttribute(NameOID.SERIAL_NUMBER, "HRB 12345"),
        x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
        x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "Bayern"),
        x509.NameAttribute(NameOID.POSTAL_CODE, "80331"),
        x509.NameAttribute(NameOID.STREET_ADDRESS, "Hauptstr. 1"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, 'Contoso "Mail", GmbH'),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Mail\\Relay"),
        x509.NameAttribute(NameOID.TITLE, "Relay"),
        x509.NameAttribute(NameOID.GIVEN_NAME, "Ada"),
        x509.NameAttribute(NameOID.SURNAME, "Lovelace"),
        x509.NameAttribute(NameOID.EMAIL_ADDRESS, "it@contoso.de"),
        x509.NameAttribute(NameOID.COMMON_NAME, "mail.contoso.de"),
    ])
    issuer = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "GB"),
        x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "Greater Manchester"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Sectigo Limited"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Sectigo RSA Organization Validation CA"),
    ])
    leaf = dataclasses.replace(_leaf(world, "ok_client_cert"),
                               subject=subject.rfc4514_string(), issuer=issuer.rfc4514_string())
    wire = dataclasses.replace(s, client_check=dataclasses.replace(
        s.client_check, certs=(leaf, *s.client_check.certs[1:])))
    win_subject = ('CN=mail.contoso.de, E=it@contoso.de, SN=Lovelace, G=Ada, T=Relay, '
                   'OU="Mail\\Relay", O="Contoso ""Mail"", GmbH", STREET=Hauptstr. 1, '
                   'PostalCode=80331, '
                   'S=Bayern, C=DE, SERIALNUMBER=HRB 12345, OID.2.5.4.15=Private Organization, '
                   'OID.1.3.6.1.4.1.311.60.2.1.3=DE')
    win_issuer = ("CN=Sectigo RSA Organization Validation CA, O=Sectigo Limited, "
                  "S=Greater Manchester, C=GB")
    _none(settings_verdicts(wire, Settings(send=(_send(win_issuer, win_subject),))),
          "send_connector_cert_mismatch")
    other = win_subject.replace("SERIALNUMBER=HRB 12345", "SERIALNUMBER=HRB 99999")
    _one(settings_verdicts(wire, Settings(send=(_send(win_issuer, other),))),
         "send_connector_cert_mismatch")


def test_sender_ip_not_in_connector(world):
    s = world.sessions["ok_client_cert"]  # wire client 203.0.113.10, cert mail.fabrikam.com
    applies = _inbound("mail.fabrikam.com", ips=("198.51.100.0/24",))
    v = _one(settings_verdicts(s, Settings(inbound=(applies,))), "sender_ip_not_in_connector")
    assert v.severity == "warning" and "203.0.113.10" in v.message
    assert "inbound.json line 1" in v.message and v.frame == _cert_frame(s)
    assert "-SenderIPAddresses" in v.hint
    # what Microsoft documents (identified by certificate or address, the certificate's
    # domain first) is told apart from what fastcap infers (the list still matters)
    documented, _, inferred = v.message.partition("documented by Microsoft:")[2].partition(
        "inferred, not documented:")
    assert "certificate or by its address" in documented and "first" in documented
    assert "addresses" in inferred and "SenderIPAddresses of" not in inferred
    by_ip = dataclasses.replace(_inbound(None, ips=("203.0.113.0/24",)), name="From relay1")
    v = _one(settings_verdicts(s, Settings(inbound=(applies, by_ip))),
             "sender_ip_not_in_connector")
    assert "SenderIPAddresses of inbound connector \"From relay1\"" in v.message
    assert "certificate's connector comes first" in v.message
    listed = _inbound("mail.fabrikam.com", ips=("203.0.113.0-203.0.113.20",))
    _none(settings_verdicts(s, Settings(inbound=(listed,))), "sender_ip_not_in_connector")
    # the certificate rule does not apply (another name)
    other = _inbound("mail.contoso.com", ips=("198.51.100.0/24",))
    _none(settings_verdicts(s, Settings(inbound=(other,))), "sender_ip_not_in_connector")


def test_restrict_domains_to_ip_addresses_does_not_apply_to_on_premises_connectors(world):
    # Microsoft documents RestrictDomainsToIPAddresses (with RestrictDomainsToCertificate and
    # RequireTls) as applying to Partner connectors only: on an OnPremises connector whose
    # certificate rule does not fit, it does not make the address list apply
    s = world.sessions["ok_client_cert"]  # wire client 203.0.113.10, cert mail.fabrikam.com
    restricted = _inbound("mail.contoso.com", ips=("198.51.100.0/24",), restrict_ip=True)
    _none(settings_verdicts(s, Settings(inbound=(restricted,))), "sender_ip_not_in_connector")
    fits = _inbound("mail.fabrikam.com", ips=("198.51.100.0/24",), restrict_ip=True)
    v = _one(settings_verdicts(s, Settings(inbound=(fits,))), "sender_ip_not_in_connector")
    assert "TlsSenderCertificateName mail.fabrikam.com fits" in v.message
    assert "RestrictDomainsToIPAddresses" not in v.message + v.hint


def test_connectors_judge_only_sessions_to_exchange_online(world):
    s = world.sessions["ok_client_cert"]
    conn = Settings(inbound=(_inbound("mail.contoso.com", ips=("198.51.100.0/24",)),),
                    send=(_send("CN=a", "CN=b"),))
    assert {v.code for v in settings_verdicts(s, conn)} == {
        "connector_name_mismatch", "send_connector_cert_mismatch"}
    fits = Settings(inbound=(_inbound("mail.fabrikam.com", ips=("198.51.100.0/24",)),))
    assert {v.code for v in settings_verdicts(s, fits)} == {"sender_ip_not_in_connector"}
    tls = dataclasses.replace(s.tls, client_hello=dataclasses.replace(
        s.tls.client_hello, sni="mx.fabrikam.net"))
    elsewhere = dataclasses.replace(
        s, smtp=dataclasses.replace(s.smtp, banner_names_exchange_online=False), tls=tls,
        server_check=None)
    assert settings_verdicts(elsewhere, conn) == []
    assert settings_verdicts(elsewhere, fits) == []


def test_sender_ip_behind_nat_is_info(world):
    s = world.sessions["expired_client_cert"]  # wire client 10.1.2.10, the story's inbound
    conn = _inbound("mail.fabrikam.com", ips=("203.0.113.10",))
    v = _one(settings_verdicts(s, Settings(inbound=(conn,))), "sender_ip_not_in_connector")
    assert v.severity == "info" and not is_problem(v)
    assert "private address" in v.message and "10.1.2.10" in v.message


# ------------------------------------------------------------------ rejections in TLS

def _rejected(line: int, after_tls: bool = True) -> tuple[LogReply, ...]:
    return (LogReply(550, "5.7.64", "550 5.7.64 TenantAttribution; Relay Access Denied",
                     after_tls, Where(LOG, line, line * 90)),)


def test_log_rejected_after_tls_when_the_capture_cannot_see_it(world):
    s = world.sessions["no_client_cert"]  # TLS 1.2, no keys for it
    m = _match(world, "no_client_cert", _conv(s, 30, replies=_rejected(41)))
    v = _one(evidence_verdicts(s, [m], Settings()), "log_rejected_after_tls")
    assert v.severity == "error" and f"{LOG} line 41" in v.message
    assert "550 5.7.64 TenantAttribution" in v.message and "no keys for this session" in v.message
    assert v.frame == _cert_frame(s)
    before = _match(world, "no_client_cert", _conv(s, 30, replies=_rejected(41, False)))
    _none(evidence_verdicts(s, [before], Settings()), "log_rejected_after_tls")


def test_log_rejected_after_tls_quiet_when_decrypted(world):
    s = world.sessions["keys_tls12_relay_denied"]
    assert s.decryption.keys_found and s.smtp_tls.relay_denied  # the wire shows it
    m = _match(world, "keys_tls12_relay_denied", _conv(s, 50, replies=_rejected(61)))
    _none(evidence_verdicts(s, [m], Settings()), "log_rejected_after_tls")


def test_log_rejected_after_tls13_without_keys(world):
    s = world.sessions["tls13_client_cert"]
    m = _match(world, "tls13_client_cert", _conv(s, 70, replies=_rejected(77)))
    v = _one(evidence_verdicts(s, [m], Settings()), "log_rejected_after_tls")
    assert "TLS 1.3 without keys" in v.message and v.frame == s.first_frame


# ---------------------------------------------------------------- TLS 1.3 names the cert

def test_log_names_tls13_cert(world):
    s = world.sessions["tls13_client_cert"]
    assert s.tls.tls13_encrypted and s.tls.client_certificate is None
    good = _claim(72, subject="CN=mail.fabrikam.com", thumbprint="AA11",
                  not_after_ns=s.first_ts_ns + DAY)
    m = _match(world, "tls13_client_cert", _conv(s, 70, cert_sent=good))
    v = _one(evidence_verdicts(s, [m], Settings(), expect_name="mail.fabrikam.com"),
             "log_names_tls13_cert")
    assert v.severity == "info" and f"{LOG} line 72" in v.message
    assert "CN=mail.fabrikam.com" in v.message and v.frame == s.first_frame
    expired = dataclasses.replace(good, not_after_ns=s.first_ts_ns - DAY)
    m = _match(world, "tls13_client_cert", _conv(s, 70, cert_sent=expired))
    v = _one(evidence_verdicts(s, [m], Settings()), "log_names_tls13_cert")
    assert v.severity == "error" and "expired" in v.message and is_problem(v)
    # expired by its Get-ExchangeCertificate entry, the log giving no date
    undated = dataclasses.replace(good, not_after_ns=None)
    entry = Settings(certificates=(_exchange_cert("AA11", s.first_ts_ns - DAY, line=9),))
    m = _match(world, "tls13_client_cert", _conv(s, 70, cert_sent=undated))
    v = _one(evidence_verdicts(s, [m], entry), "log_names_tls13_cert")
    assert v.severity == "error" and f"{JSON} line 9" in v.message
    # the wrong name for the connector
    m = _match(world, "tls13_client_cert", _conv(s, 70, cert_sent=good))
    v = _one(evidence_verdicts(s, [m], Settings(), expect_name="mail.contoso.com"),
             "log_names_tls13_cert")
    assert v.severity == "error" and "mail.contoso.com" in v.message
    # over TLS 1.2 the certificate is on the wire: compared, not merely named
    s12 = world.sessions["ok_client_cert"]
    m = _match(world, "ok_client_cert", _conv(s12, 10, cert_sent=good))
    _none(evidence_verdicts(s12, [m], Settings()), "log_names_tls13_cert")


# ------------------------------------------------------------------------ TLS failures

def test_log_tls_failed(world):
    s = world.sessions["expired_client_cert"]
    notes = (("TLS negotiation failed with error UnknownCA", Where(LOG, 88, 0)),
             ("Received certificate", Where(LOG, 86, 0)))
    m = _match(world, "expired_client_cert", _conv(s, 80, notes=notes))
    v = _one(evidence_verdicts(s, [m], Settings()), "log_tls_failed")
    assert f"{LOG} line 88" in v.message and "UnknownCA" in v.message
    assert v.frame == _cert_frame(s) and is_problem(v)
    quiet = _match(world, "expired_client_cert", _conv(s, 80, notes=notes[1:]))
    _none(evidence_verdicts(s, [quiet], Settings()), "log_tls_failed")


def test_log_tls_failed_only_for_failures_of_tls(world):
    # Exchange and Postfix note other failures too: an authentication refused after
    # STARTTLS, a connection refused; neither is a TLS failure
    s = world.sessions["expired_client_cert"]
    other = (("Outbound Authentication failed with LogonDenied", Where(LOG, 95, 0)),
             ("connect to mx2.example.net[192.0.2.26]:25: Connection refused",
              Where(LOG, 96, 0)))
    m = _match(world, "expired_client_cert", _conv(s, 80, notes=other))
    _none(evidence_verdicts(s, [m], Settings()), "log_tls_failed")
    _none(log_only_verdicts(_log_only(notes=other), Settings()), "log_tls_failed")
    tls = (("SSL_accept error from unknown[2001:db8::7]: -1", Where(LOG, 97, 0)),
           ("warning: TLS library problem: error:0A000076:SSL routines::no suitable "
            "signature algorithm:../ssl/t1_lib.c:3330:", Where(LOG, 98, 0)))
    v = _one(log_only_verdicts(_log_only(notes=other + tls), Settings()), "log_tls_failed")
    assert f"{LOG} line 97" in v.message and "(and 1 more)" in v.message


def test_log_tls_failed_says_when_tls_was_established_anyway():
    # Postfix logs a client certificate that fails verification, then (unless its policy
    # demands a verified client) "Untrusted TLS connection established": the failure did
    # not end the handshake, and the finding says so
    failed = (("certificate verification failed for relay1.contoso.com[203.0.113.25]: "
               "untrusted issuer /C=US/O=Contoso/CN=Contoso Root", Where(LOG, 11, 0)),)
    established = _log_only(kind="postfix", host_role="server", notes=failed,
                            tls_protocol="TLS1.3", tls_trust="Untrusted")
    v = _one(log_only_verdicts(established, Settings()), "log_tls_failed")
    assert "also shows the TLS connection established (Untrusted TLS1.3)" in v.message
    v = _one(log_only_verdicts(_log_only(kind="postfix", notes=failed), Settings()),
             "log_tls_failed")
    assert "established" not in v.message


# ------------------------------------------------------------------ logs without capture

def _log_only(**fields) -> LogConversation:
    base = dict(kind="exchange-send", file=LOG, first=Where(LOG, 100, 9000),
                last=Where(LOG, 120, 11000), start_ns=1_773_134_441_502_000_000,
                end_ns=1_773_134_443_502_000_000, host_role="client", local_ip="10.1.2.10",
                local_port=50177, remote_ip="52.101.68.5", remote_port=25,
                remote_name="contoso-com.mail.protection.outlook.com", starttls=True)
    return LogConversation(**{**base, **fields})


def test_log_only_rejected():
    v = _one(log_only_verdicts(_log_only(replies=_rejected(111)), Settings()),
             "log_only_rejected")
    assert v.frame is None and f"{LOG} line 111" in v.message
    assert "no capture session" in v.message and "5.7.64" in v.message
    ok = (LogReply(250, "2.6.0", "250 2.6.0 Queued mail for delivery", True,
                   Where(LOG, 111, 0)),)
    _none(log_only_verdicts(_log_only(replies=ok, cert_sent=_claim(104, subject="CN=a")),
                            Settings()), "log_only_rejected")


def test_log_only_no_cert():
    v = _one(log_only_verdicts(_log_only(), Settings()), "log_only_no_cert")
    assert v.severity == "error" and f"{LOG} line 100" in v.message
    assert "Exchange Online" in v.message and v.frame is None
    assert "no capture session" in v.message
    _none(log_only_verdicts(_log_only(cert_sent=_claim(104, subject="CN=a")), Settings()),
          "log_only_no_cert")
    _none(log_only_verdicts(_log_only(starttls=False), Settings()), "log_only_no_cert")


def test_log_only_settings_findings():
    claim = _claim(104, subject="CN=mail.contoso.com", thumbprint="C0FFEE")
    conv = _log_only(cert_sent=claim)
    expired = Settings(certificates=(_exchange_cert("C0FFEE", conv.start_ns - DAY, line=3),))
    v = _one(log_only_verdicts(conv, expired), "exchange_cert_expired")
    assert f"{LOG} line 104" in v.message and f"{JSON} line 3" in v.message
    assert v.frame is None
    other = Settings(certificates=(_exchange_cert("BEEF", conv.start_ns + DAY),))
    v = _one(log_only_verdicts(conv, other), "log_cert_not_in_exchange")
    assert "no capture session" in v.message
    fine = Settings(certificates=(_exchange_cert("C0FFEE", conv.start_ns + DAY),))
    out = log_only_verdicts(conv, fine)
    _none(out, "exchange_cert_expired")
    _none(out, "log_cert_not_in_exchange")


def test_send_connector_names_with_a_comma_match_as_windows_writes_them():
    """Windows quotes a value holding a comma (O="GoDaddy.com, Inc."); the certificate's RFC
    4514 text escapes it.  Both are the same issuer, and a different one is still told apart."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from fastcap.judge.evidence import _send_fits
    from fastcap.judge.x509check import cert_info

    issuer = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "GoDaddy.com, Inc."),
        x509.NameAttribute(NameOID.COMMON_NAME, "Go Daddy Secure Certificate Authority - G2")])
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    leaf = cert_info(x509.CertificateBuilder()
                     .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                                 "mail.contoso.com")]))
                     .issuer_name(issuer).public_key(key.public_key()).serial_number(1)
                     .not_valid_before(now).not_valid_after(now + dt.timedelta(days=90))
                     .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    windows = ('CN=Go Daddy Secure Certificate Authority - G2, O="GoDaddy.com, Inc.", C=US')
    assert _send_fits(_send(windows, "CN=mail.contoso.com"), leaf)
    assert not _send_fits(_send(windows.replace("Inc.", "LLC"), "CN=mail.contoso.com"), leaf)
