"""The client certificate's name, held to the inbound connector's TlsSenderCertificateName by
the two places that judge it: the `client_cert_name_mismatch` verdict (`--expect-name`, or its
default from the connector) and the `connector_name_mismatch` finding (`--evidence`).  On the
same session they must agree, by the rule Microsoft documents for that setting: the
certificate's CN or a SAN DNS name holds the domain, and ``*.contoso.com`` stands for
contoso.com and every name below it.  The server's certificate is still held to the SNI as a
host name (SAN DNS names, the CN only without them), as the sending MTA's OpenSSL does.

The sessions are real: SMTP conversations over OpenSSL handshakes to an Exchange Online-like
server, written to one capture and scanned."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509

from fastcap.evidence.records import Where
from fastcap.evidence.settings import InboundConnector, Settings
from fastcap.judge.evidence import settings_verdicts
from fastcap.judge.x509check import Analyzer, TrustStore, cert_info
from fastcap.judge.x509names import sender_name_fits
from fastcap.run.scanner import scan
from fastcap_synth.certs import make_leaf
from fastcap_synth.scenarios import make_pki, scenario
from fastcap_synth.smtpgen import converse, render
from fastcap_synth.writers import write_pcap

S = 1_000_000_000
CERTS = {  # name: (subject CN, SAN DNS names)
    "cn_beside_san": ("mail.contoso.com", ["smtp.contoso.com"]),
    "san_only": ("Contoso relay", ["mail.contoso.com"]),
    "apex": ("Contoso relay", ["contoso.com"]),
    "deep": ("Contoso relay", ["a.b.contoso.com"]),
    "cn_no_san": ("mail.contoso.com", []),
    "wildcard_cert": ("Contoso relay", ["*.contoso.com"]),
    "elsewhere": ("smtp.fabrikam.local", ["smtp.fabrikam.local"]),
    "lookalike": ("xcontoso.com", ["mail.contoso.com.fabrikam.net"]),
}
CASES = [  # certificate, TlsSenderCertificateName, whether Exchange Online takes it
    ("cn_beside_san", "mail.contoso.com", True),  # the CN counts beside a SAN
    ("cn_beside_san", "SMTP.Contoso.com", True),
    ("cn_beside_san", "*.contoso.com", True),
    ("san_only", "*.contoso.com", True),  # a wildcard connector: the domain and below
    ("apex", "*.contoso.com", True),
    ("deep", "*.contoso.com", True),
    ("cn_no_san", "mail.contoso.com", True),
    ("wildcard_cert", "mail.contoso.com", True),  # one label, as a host name check takes it
    ("san_only", "contoso.com", False),  # a plain domain is that name alone
    ("apex", "mail.contoso.com", False),
    ("wildcard_cert", "a.b.contoso.com", False),
    ("elsewhere", "mail.contoso.com", False),
    ("elsewhere", "*.contoso.com", False),
    ("lookalike", "*.contoso.com", False),
    ("lookalike", "contoso.com", False),
]


@dataclasses.dataclass
class World:
    path: str
    ca: str
    ders: dict[str, bytes]
    by_name: dict[str, dict[str, object]] = dataclasses.field(default_factory=dict)

    def sessions(self, want: str) -> dict[str, object]:
        """The capture scanned with --expect-name ``want``: certificate name -> Session."""
        if want not in self.by_name:
            got = list(scan(self.path, ca_file=self.ca, expect_name=want))
            assert len(got) == len(CERTS)
            self.by_name[want] = dict(zip(CERTS, got, strict=True))
        return self.by_name[want]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    d = tmp_path_factory.mktemp("sender_name")
    pki = make_pki()
    start = (int(pki.client.cert.not_valid_before_utc.timestamp()) + 7200) * S
    records, ders = [], {}
    for i, (name, (cn, sans)) in enumerate(CERTS.items()):
        leaf = make_leaf(pki.intermediate, cn, sans=sans)
        ders[name] = leaf.der
        sc = scenario("ok_client_cert", dataclasses.replace(pki, client=leaf),
                      client_ip="203.0.113.10", client_port=50200 + i,
                      server_ip="52.101.68.5", start_ns=start + i * 10 * S)
        records += render(converse(sc), sc)
    path = d / "names.pcap"
    write_pcap(path, records)
    ca = d / "root.pem"
    ca.write_bytes(pki.root.pem)
    return World(str(path), str(ca), ders)


def _connector(name: str) -> Settings:
    return Settings(inbound=(InboundConnector(
        name="From on-prem contoso", connector_type="OnPremises", sender_ip_addresses=(),
        sender_domains=("*",), require_tls=True, restrict_domains_to_certificate=True,
        restrict_domains_to_ip=False, tls_sender_certificate_name=name, enabled=True,
        where=Where("inbound.json", 1, 0)),))


@pytest.mark.parametrize(("cert", "want", "fits"), CASES)
def test_verdict_and_finding_agree_on_one_session(world, cert, want, fits):
    session = world.sessions(want)[cert]
    assert session.client_check is not None and session.client_check.name_matches is fits
    verdicts = {v.code: v for v in session.verdicts}
    findings = {v.code for v in settings_verdicts(session, _connector(want))}
    assert ("client_cert_name_mismatch" not in verdicts) is fits
    assert ("connector_name_mismatch" not in findings) is fits
    cn, sans = CERTS[cert]
    assert sender_name_fits([*sans, cn], want) is fits


def test_the_verdict_says_which_names_and_which_rule(world):
    v = next(v for v in world.sessions("*.contoso.com")["elsewhere"].verdicts
             if v.code == "client_cert_name_mismatch")
    assert "expected name *.contoso.com" in v.message
    assert "SAN DNS names and subject CNs together" in v.message
    assert "*.contoso.com stands for contoso.com and every name below it" in v.message
    assert "it names SAN smtp.fabrikam.local and CN smtp.fabrikam.local" in v.message
    v = next(v for v in world.sessions("contoso.com")["lookalike"].verdicts
             if v.code == "client_cert_name_mismatch")
    assert "stands for" not in v.message  # a plain name is no wildcard
    assert "it names SAN mail.contoso.com.fabrikam.net and CN xcontoso.com" in v.message


def test_the_server_certificate_is_still_matched_as_a_host_name(world):
    """The same certificate: as a client's, its CN counts beside its SAN; as a server's (held
    to the SNI by the sending MTA's OpenSSL) it does not."""
    root = x509.load_pem_x509_certificate(Path(world.ca).read_bytes())
    analyzer = Analyzer(TrustStore([root]))
    der = world.ders["cn_beside_san"]
    info = cert_info(der)
    assert info.subject_cn == "mail.contoso.com" and info.san_dns == ("smtp.contoso.com",)
    at = info.not_before + dt.timedelta(hours=2)
    client = analyzer.check([der], role="client", at=at, expected_name="mail.contoso.com")
    server = analyzer.check([der], role="server", at=at, expected_name="mail.contoso.com")
    assert client.name_matches is True and server.name_matches is False


@pytest.mark.parametrize(("names", "want"), [
    (["x\0.contoso.com"], "*.contoso.com"),  # a NUL never matches
    ([".contoso.com"], "*.contoso.com"),  # nor an empty label
    (["mail.contoso.com."], "*.contoso.com"),  # the certificate's names as written
    (["mail.contoso.com"], ""),
    (["mail.contoso.com"], "*."),
])
def test_sender_name_fits_refuses(names, want):
    assert not sender_name_fits(names, want)


def test_sender_name_fits_trims_the_name_looked_for():
    assert sender_name_fits(["mail.contoso.com"], " *.Contoso.COM. ")
    assert sender_name_fits(["MAIL.contoso.com"], "mail.contoso.com.")
