"""A leaf whose issuer was neither sent nor trusted: a missing intermediate of a trusted root
(send it) or a private CA (get a public certificate), told apart by evidence and said so.

Each piece of evidence (known intermediate by name or key identifier, organization, caIssuers
host) is tested alone, next to a near miss that must not count; then both outcomes for both
roles through Analyzer.check, diagnose and fastcap.scan on real OpenSSL handshakes.
"""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from fastcap.judge.diagnose import diagnose
from fastcap.judge.issuer_evidence import org_key, registrable_domain
from fastcap.judge.x509check import Analyzer, TrustStore
from fastcap.run.scanner import scan
from fastcap_synth.certs import Issued, make_ca, make_leaf
from fastcap_synth.smtpgen import ACCEPTED_COMMANDS, SmtpScenario, converse, render
from fastcap_synth.tlsgen import client_context, server_context
from fastcap_synth.writers import write_pcap

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
ROLES = ("client", "server")
SENDER = "mail.fabrikam.com"
PEER = "mx1.contoso.com"
ROOT_ORG = "Tailspin Toys"


def _ca_issuers(url: str) -> x509.AuthorityInformationAccess:
    return x509.AuthorityInformationAccess(
        [x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS,
                                x509.UniformResourceIdentifier(url))]
    )


def _crl(url: str) -> x509.CRLDistributionPoints:
    return x509.CRLDistributionPoints(
        [x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None, None)]
    )


def _leaf(issuer: Issued, **kw) -> Issued:
    name = kw.pop("name", SENDER)
    return make_leaf(issuer, name, sans=[name], **kw)


@pytest.fixture(scope="module")
def root() -> Issued:
    """The --ca-file root; it names its CRL host, as public roots often do."""
    return make_ca("Tailspin Root CA", org=ROOT_ORG,
                   extensions=[_crl("http://crl.tailspin.example/root.crl")])


@pytest.fixture(scope="module")
def analyzer(root) -> Analyzer:
    return Analyzer(TrustStore([root.cert], "ca-file"), today=NOW)


def check(analyzer: Analyzer, chain: list[Issued], role: str = "client"):
    name = SENDER if role == "client" else PEER
    return analyzer.check([c.der for c in chain], role=role, at=NOW, expected_name=name)


# --- the two outcomes, both roles ------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_private_root_not_sent_is_an_untrusted_ca(analyzer, role):
    private = make_ca("Contoso-DC01-CA", org="Contoso Ltd")
    r = check(analyzer, [_leaf(private, name=SENDER if role == "client" else PEER)], role)
    assert (r.trusted, r.problem) == (False, "untrusted_root"), r.detail
    assert "CN=Contoso-DC01-CA,O=Contoso Ltd" in r.detail
    assert "not a trusted CA" in r.detail and "private CA" in r.detail


@pytest.mark.parametrize("role", ROLES)
def test_intermediate_of_trusted_root_not_sent_is_an_incomplete_chain(root, analyzer, role):
    inter = make_ca("Tailspin Issuing CA 01", parent=root, org=ROOT_ORG)
    r = check(analyzer, [_leaf(inter, name=SENDER if role == "client" else PEER)], role)
    assert (r.trusted, r.problem) == (False, "missing_intermediate"), r.detail
    assert "Tailspin Issuing CA 01" in r.detail
    assert f"organization O={ROOT_ORG} is that of trusted CN=Tailspin Root CA" in r.detail


# --- each piece of evidence, and its near miss -----------------------------------------------


def test_known_intermediate_by_name(root):
    """The CA file holds the issuing CA, but the leaf was signed by its renewed key: the
    issuer is a known intermediate of the trusted root, and only the new one is missing."""
    old = make_ca("Tailspin Issuing CA 02", parent=root, org=None)
    renewed = make_ca("Tailspin Issuing CA 02", parent=root, org=None)
    a = Analyzer(TrustStore([root.cert, old.cert]), today=NOW)
    r = check(a, [_leaf(renewed)])
    assert r.problem == "missing_intermediate", r.detail
    assert ("its issuer is CN=Tailspin Issuing CA 02, an intermediate of trusted root"
            " CN=Tailspin Root CA (by name)") in r.detail


def test_known_intermediate_by_key_identifier(root):
    """The leaf's AKI is the key of an intermediate in the CA file known by another name."""
    known = make_ca("Tailspin Issuing CA 03", parent=root, org=None)
    other_name = make_ca("Tailspin Issuing CA 03 (reissued)", org=None).cert
    leaf = _leaf(Issued(other_name, known.key))  # signed by the known key, other issuer name
    a = Analyzer(TrustStore([root.cert, known.cert]), today=NOW)
    r = check(a, [leaf])
    assert r.problem == "missing_intermediate", r.detail
    ski = known.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert f"authority key identifier {ski.digest.hex()} is the key of" in r.detail
    assert "CN=Tailspin Issuing CA 03, an intermediate of trusted root" in r.detail


def test_lone_intermediate_in_the_ca_file_is_no_evidence():
    """An intermediate in the CA file whose root is not there is tied to no trusted root."""
    other_root = make_ca("Wingtip Root", org=None)
    old = make_ca("Wingtip Issuing", parent=other_root, org=None)
    renewed = make_ca("Wingtip Issuing", parent=other_root, org=None)
    a = Analyzer(TrustStore([old.cert]), today=NOW)
    assert check(a, [_leaf(renewed)]).problem == "untrusted_root"


def test_organization_needs_the_organization_not_the_name(analyzer):
    """A private CA that copies the trusted root's CN but not its O is not tied to it."""
    copy = make_ca("Tailspin Root CA", org="Tailspin Lab")
    r = check(analyzer, [_leaf(copy)])
    assert r.problem == "untrusted_root", r.detail
    assert "issued by CN=Tailspin Root CA,O=Tailspin Lab" in r.detail


def test_organization_is_compared_without_case_or_spacing(root, analyzer):
    inter = make_ca("Tailspin Issuing CA 04", parent=root, org="  tailspin   TOYS ")
    r = check(analyzer, [_leaf(inter)])
    assert r.problem == "missing_intermediate", r.detail


def test_copy_of_the_trusted_roots_whole_name_is_not_that_root(root, analyzer):
    """Same subject as the anchor, another key: a CA using the root's name, not a missing
    intermediate (the organization matches only because the whole name was copied)."""
    impostor = make_ca("Tailspin Root CA", org=ROOT_ORG)
    r = check(analyzer, [_leaf(impostor)])
    assert r.problem == "untrusted_root", r.detail
    assert "a trusted root has this name (CN=Tailspin Root CA) but did not sign it" in r.detail


def test_ca_issuers_host_in_a_domain_the_root_names(analyzer):
    inter = make_ca("Issuing CA 05", org="Wingtip Toys")  # O and name tie it to nothing
    leaf = _leaf(inter, extensions=[_ca_issuers("http://pki.tailspin.example/issuing05.crt")])
    r = check(analyzer, [leaf])
    assert r.problem == "missing_intermediate", r.detail
    assert ("its caIssuers host pki.tailspin.example is in tailspin.example, a domain named by"
            " the CRL URL of trusted CN=Tailspin Root CA") in r.detail


def test_ca_issuers_host_in_the_domain_that_spells_the_roots_organization(analyzer):
    inter = make_ca("Issuing CA 06", org="Wingtip Toys")
    leaf = _leaf(inter, extensions=[_ca_issuers("http://cacerts.tailspintoys.com/ca06.crt")])
    r = check(analyzer, [leaf])
    assert r.problem == "missing_intermediate", r.detail
    assert f"which spells the organization O={ROOT_ORG} of trusted CN=Tailspin Root CA" in r.detail


@pytest.mark.parametrize("url", [
    "http://pki.contoso-lab.example/ca.crt",  # a host no anchor names
    "http://tailspin.example.attacker.test/ca.crt",  # the root's domain, but not as a suffix
    "ldap:///CN=Contoso-DC01-CA,CN=AIA,CN=Public%20Key%20Services,DC=contoso,DC=local",
    "http://192.0.2.7/ca.crt",
    "http://[tailspin.example/ca.crt",  # not a URL at all: no evidence, no crash
])  # fmt: skip
def test_ca_issuers_host_unrelated_to_any_anchor_is_no_evidence(analyzer, url):
    inter = make_ca("Contoso Issuing CA", org="Contoso Ltd")
    r = check(analyzer, [_leaf(inter, extensions=[_ca_issuers(url)])])
    assert r.problem == "untrusted_root", r.detail


def test_shared_hosting_domain_is_no_evidence():
    """A root that names an S3 URL does not make every S3-hosted CA one of its own."""
    root = make_ca("Bucket Root", org="Bucket Corp",
                   extensions=[_crl("http://bucket-pki.s3.amazonaws.com/root.crl")])
    inter = make_ca("Someone Else CA", org="Someone Else")
    leaf = _leaf(inter, extensions=[_ca_issuers("http://other.s3.amazonaws.com/ca.crt")])
    a = Analyzer(TrustStore([root.cert]), today=NOW)
    assert check(a, [leaf]).problem == "untrusted_root"


@pytest.mark.parametrize(("host", "want"), [
    ("cacerts.digicert.com", "digicert.com"),
    ("PKI.Example.CO.UK.", "example.co.uk"),
    ("crl.tailspin.example", "tailspin.example"),
    ("pki", None),
    ("192.0.2.7", None),
    ("bad_label.example.com", None),
])  # fmt: skip
def test_registrable_domain(host, want):
    assert registrable_domain(host) == want


@pytest.mark.parametrize(("org", "want"), [
    ("DigiCert Inc", "digicert"),
    ("GoDaddy.com, Inc.", "godaddycom"),
    ("GlobalSign nv-sa", "globalsign"),
    ("IT Ltd", None),  # too short to be telling
])  # fmt: skip
def test_org_key(org, want):
    assert org_key(org) == want


# --- a sent intermediate whose own issuer is missing -----------------------------------------


def test_second_intermediate_missing_above_a_sent_one(root, analyzer):
    upper = make_ca("Tailspin Policy CA", parent=root, org=ROOT_ORG)
    lower = make_ca("Tailspin Issuing CA 07", parent=upper, org=ROOT_ORG)
    r = check(analyzer, [_leaf(lower), lower])
    assert r.problem == "missing_intermediate", r.detail
    assert ("issuer CN=Tailspin Policy CA,O=Tailspin Toys of chain certificate"
            " CN=Tailspin Issuing CA 07") in r.detail


def test_sent_private_intermediate_with_its_root_missing(analyzer):
    private = make_ca("Contoso Root", org="Contoso Ltd")
    lower = make_ca("Contoso Issuing", parent=private, org="Contoso Ltd")
    r = check(analyzer, [_leaf(lower), lower])
    assert r.problem == "untrusted_root", r.detail
    assert "CN=Contoso Root" in r.detail


# --- the Mozilla store -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def mozilla() -> Analyzer:
    return Analyzer(TrustStore.mozilla(), today=NOW)


def _mozilla_has_org(analyzer: Analyzer, org: str) -> bool:
    return any(
        a.value == org
        for c in analyzer.trust.roots
        for a in c.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    )


def test_mozilla_intermediate_by_organization(mozilla):
    if not _mozilla_has_org(mozilla, "DigiCert Inc"):
        pytest.skip("this certifi bundle has no DigiCert Inc root")
    fake = make_ca("DigiCert Global G2 TLS RSA SHA256 2020 CA1", org="DigiCert Inc")
    r = check(mozilla, [_leaf(fake)])
    assert r.problem == "missing_intermediate", r.detail
    assert "its organization O=DigiCert Inc is that of trusted CN=DigiCert" in r.detail


def test_mozilla_intermediate_by_ca_issuers_host(mozilla):
    if not _mozilla_has_org(mozilla, "DigiCert Inc"):
        pytest.skip("this certifi bundle has no DigiCert Inc root")
    fake = make_ca("Issuing CA 08", org="Northwind Traders")
    url = "http://cacerts.digicert.com/DigiCertGlobalG2TLSRSASHA2562020CA1-1.crt"
    r = check(mozilla, [_leaf(fake, extensions=[_ca_issuers(url)])])
    assert r.problem == "missing_intermediate", r.detail
    assert "its caIssuers host cacerts.digicert.com is in digicert.com" in r.detail


def test_mozilla_private_ca_copying_a_public_cn(mozilla):
    fake = make_ca("DigiCert Global G2 TLS RSA SHA256 2020 CA1", org="Northwind Traders")
    r = check(mozilla, [_leaf(fake)])
    assert r.problem == "untrusted_root", r.detail
    assert "which was not sent and is not a trusted CA" in r.detail


# --- end to end: real handshakes, fastcap.scan, diagnose --------------------------------------


@pytest.fixture(scope="module")
def captures(tmp_path_factory, root):
    """Four sessions, each sending a bare leaf: client/server x private CA/public intermediate."""
    d = tmp_path_factory.mktemp("privca")
    inter = make_ca("Tailspin Issuing CA 09", parent=root, org=ROOT_ORG)
    private = make_ca("Contoso-DC01-CA", org="Contoso Ltd")
    good_client, good_server = _leaf(inter), _leaf(inter, name=PEER)

    def bare(issuer: Issued, name: str) -> Issued:
        c = _leaf(issuer, name=name)
        return Issued(c.cert, c.key, [])  # the issuer is not sent

    cases = {
        "client_cert_untrusted_ca": (good_server, bare(private, SENDER), [private]),
        "client_cert_incomplete_chain": (good_server, bare(inter, SENDER), [root, inter]),
        "server_cert_untrusted_ca": (bare(private, PEER), good_client, [root]),
        "server_cert_incomplete_chain": (bare(inter, PEER), good_client, [root]),
    }
    start = int((NOW - dt.timedelta(hours=1)).timestamp()) * 10**9
    recs = []
    for i, (server, client, client_cas) in enumerate(cases.values()):
        sc = SmtpScenario(
            banner=f"220 {PEER} ESMTP Postfix", server_name=PEER, sni=PEER,
            commands=ACCEPTED_COMMANDS, start_ns=start + i * 10**9, client_port=42000 + i,
            server_ctx=server_context(server, client_auth="optional", client_cas=client_cas,
                                      max_version="1.2"),  # certificates in the clear
            client_ctx=client_context(cert=client, max_version="1.2"), client_cert=client,
        )
        conv = converse(sc)
        assert conv.tls is not None and conv.tls.completed, conv.tls
        recs += render(conv, sc)
    path = d / "privca.pcap"
    write_pcap(path, recs)
    ca = d / "root.pem"
    ca.write_bytes(root.pem)
    sessions = list(scan(path, ca_file=ca, expect_name=SENDER))
    return dict(zip(cases, sessions, strict=True))


@pytest.mark.parametrize("code", [
    "client_cert_untrusted_ca", "client_cert_incomplete_chain",
    "server_cert_untrusted_ca", "server_cert_incomplete_chain",
])  # fmt: skip
def test_scan_tells_private_ca_from_missing_intermediate(captures, code):
    s = captures[code]
    assert {v.code for v in s.verdicts} == {code}, [v.message for v in s.verdicts]
    (v,) = s.verdicts
    role = code.split("_")[0]
    chain = s.client_check if role == "client" else s.server_check
    assert len(chain.certs) == 1  # the bare leaf went on the wire
    if code.endswith("untrusted_ca"):
        assert "CN=Contoso-DC01-CA,O=Contoso Ltd" in v.message
        assert "not a trusted CA" in v.message and "private CA" in v.message
        assert "intermediate" not in v.hint
    else:
        assert "arrived without the intermediate CA that issued it" in v.message
        assert f"organization O={ROOT_ORG} is that of trusted CN=Tailspin Root CA" in v.message
        assert "intermediate" in v.hint and "private CA" not in v.hint


def test_diagnose_gives_the_hint_each_cause_needs(captures):
    """diagnose itself on the scanned sessions: the client verdicts point to opposite fixes."""
    private = captures["client_cert_untrusted_ca"]
    missing = captures["client_cert_incomplete_chain"]
    (p,) = diagnose(private, private.client_check, private.server_check, expect_name=SENDER)
    (m,) = diagnose(missing, missing.client_check, missing.server_check, expect_name=SENDER)
    assert (p.code, m.code) == ("client_cert_untrusted_ca", "client_cert_incomplete_chain")
    # the receiving server is Postfix: its own trust decides, or admission by fingerprint;
    # a publicly trusted CA is named only for Exchange Online
    assert "not Exchange Online" in p.hint and "permit_tls_clientcerts" in p.hint
    assert "Exchange Online would need a publicly trusted CA" in p.hint
    assert "smtp_tls_cert_file after the leaf" in m.hint
    assert "Intermediate Certification Authorities" in m.hint
    assert p.frame is not None and m.frame is not None


def test_placeholder_organization_is_no_evidence():
    """Lab CAs made with OpenSSL's defaults all say O=Internet Widgits Pty Ltd."""
    lab = make_ca("Lab Root", org="Internet Widgits Pty Ltd")
    other = make_ca("Other Lab CA", org="Internet Widgits Pty Ltd")
    a = Analyzer(TrustStore([lab.cert]), today=NOW)
    assert check(a, [_leaf(other)]).problem == "untrusted_root"
