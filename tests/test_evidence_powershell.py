"""PowerShell ConvertTo-Json exports of connectors and Exchange certificates: every shape a
property comes in (PowerShell 5.1 and 7, local and deserialized, past -Depth), the kind of
each object from its properties, and bad input as one warning, never an exception."""

from __future__ import annotations

import codecs
import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import hypothesis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastcap.evidence.powershell import looks_like, read_settings, read_settings_file
from fastcap.evidence.settings import Settings

DATA = Path(__file__).parent / "data" / "evidence"
INBOUND = DATA / "inbound-connector.json"
INBOUND_IP = DATA / "inbound-connector-ip-only.json"
SEND = DATA / "send-connector.json"
CERTS = DATA / "exchange-certificates.json"
EXPIRED_THUMBPRINT = "DCBFE993F26AA4EF1F0D18B03E560A88302F8297"


def _ns(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp()) * 10**9


def _read(obj: object, path: str = "x.json") -> tuple[Settings, list[str]]:
    warnings: list[str] = []
    text = obj if isinstance(obj, str) else json.dumps(obj)
    return read_settings(text, path, warnings.append), warnings


def _inbound(**extra: object) -> dict:
    base = {"Name": "c", "ConnectorType": "OnPremises", "SenderIPAddresses": [],
            "TlsSenderCertificateName": None}
    return {**base, **extra}


def _cert(**extra: object) -> dict:
    return {"Thumbprint": "ab", "NotAfter": "2026-02-01T00:00:00Z", **extra}


# -- the fixtures (the story) ----------------------------------------------------------


def test_fixtures_read_without_warnings_and_tell_the_story() -> None:
    settings = Settings()
    for path in (INBOUND, INBOUND_IP, SEND, CERTS):
        warnings: list[str] = []
        settings = settings.merged(read_settings_file(path, warnings.append))
        assert warnings == [], path
    assert [c.name for c in settings.inbound] == ["From on-prem contoso",
                                                  "From relay1 (IP only)"]
    cert_conn, ip_conn = settings.inbound
    assert cert_conn.tls_sender_certificate_name == "mail.contoso.com"
    assert cert_conn.sender_ip_addresses == ("203.0.113.10",)
    assert cert_conn.sender_domains == ("smtp:*;1",)
    assert (cert_conn.require_tls, cert_conn.enabled) == (True, True)
    assert ip_conn.tls_sender_certificate_name is None
    assert ip_conn.restrict_domains_to_ip is True
    assert cert_conn.where.file == str(INBOUND) and cert_conn.where.line == 1

    # The one certificate name of the enabled on-premises connectors (the IP-only one has none).
    assert settings.expected_name() == "mail.contoso.com"
    assert cert_conn.allows_ip("203.0.113.10") is True
    assert cert_conn.allows_ip("10.1.2.10") is False  # the capture's inside address
    assert ip_conn.allows_ip("192.0.2.25") is False  # relay1 moved out of the range
    assert ip_conn.allows_ip("192.0.2.35") is True and ip_conn.allows_ip("198.51.100.7") is True

    o365, dns = settings.send
    assert o365.name.startswith("Outbound to Office 365 - 1b0c")
    assert o365.tls_certificate_name == ("<I>CN=Contoso Test Issuing CA, O=Contoso Test PKI"
                                         "<S>CN=mail.contoso.com")
    assert o365.tls_cert_issuer == "CN=Contoso Test Issuing CA, O=Contoso Test PKI"
    assert o365.tls_cert_subject == "CN=mail.contoso.com"
    assert o365.smart_hosts == ("contoso-com.mail.protection.outlook.com",)
    assert (o365.require_tls, o365.tls_auth_level, o365.fqdn) == (
        True, "DomainValidation", "mail.contoso.com")
    assert (o365.cloud_services_mail_enabled, o365.enabled) == (True, True)
    assert (dns.tls_certificate_name, dns.smart_hosts, dns.enabled) == (None, (), False)
    assert dns.where.line == 2

    expired = settings.certificate(EXPIRED_THUMBPRINT.lower())
    assert expired is not None and expired.where.line == 1
    assert expired.not_after_ns == _ns("2026-02-01")
    assert expired.not_before_ns == _ns("2025-02-01")
    assert expired.services == ("IMAP", "POP", "IIS", "SMTP")
    assert expired.names == ("mail.contoso.com",)
    assert expired.serial == "7CE7E711CE6D527329E24AA515173EC5E565E74B"
    renewed = settings.certificates[1]
    assert renewed.not_after_ns == _ns("2028-01-15") and renewed.services == ()
    claim = expired.claim()
    assert (claim.thumbprint, claim.subject, claim.not_after_ns) == (
        EXPIRED_THUMBPRINT, "CN=mail.contoso.com", _ns("2026-02-01"))


def test_fixture_certificates_match_the_committed_test_certificates() -> None:
    """The export lists the very certificates the paired captures send."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives.serialization import Encoding
    certs = {"expired": 0, "good": 1}
    settings = read_settings_file(CERTS, lambda w: None)
    for name, index in certs.items():
        pem = DATA / "certs" / f"{name}.pem"
        if not pem.exists():
            pytest.skip("tests/data/evidence/certs not present")
        cert = x509.load_pem_x509_certificate(pem.read_bytes())
        entry = settings.certificates[index]
        der = cert.public_bytes(Encoding.DER)
        assert entry.thumbprint == hashlib.sha1(der).hexdigest().upper()
        assert entry.serial == f"{cert.serial_number:X}"
        assert entry.not_after_ns == int(cert.not_valid_after_utc.timestamp()) * 10**9


def test_utf16le_with_bom_as_windows_powershell_writes_it(tmp_path: Path) -> None:
    path = tmp_path / "certs.json"
    text = CERTS.read_text(encoding="utf-8").replace("\n", "\r\n")
    path.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    warnings: list[str] = []
    settings = read_settings_file(path, warnings.append)
    assert warnings == []
    assert [c.thumbprint for c in settings.certificates] == [
        EXPIRED_THUMBPRINT, "9B11ABE8A36579D6BF11A5B21E550659DDFF1E3E"]
    big_endian = tmp_path / "be.json"
    big_endian.write_bytes(codecs.BOM_UTF16_BE + text.encode("utf-16-be"))
    again = read_settings_file(big_endian, warnings.append)
    assert [(c.thumbprint, c.not_after_ns, c.services) for c in again.certificates] == [
        (c.thumbprint, c.not_after_ns, c.services) for c in settings.certificates]
    assert warnings == []


def test_utf8_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "inbound.json"
    path.write_bytes(codecs.BOM_UTF8 + INBOUND.read_bytes())
    settings = read_settings_file(path, lambda w: pytest.fail(w))
    assert settings.expected_name() == "mail.contoso.com"


def test_files_are_left_unchanged(tmp_path: Path) -> None:
    for src in (INBOUND, INBOUND_IP, SEND, CERTS):
        path = tmp_path / src.name
        path.write_bytes(src.read_bytes())
        os.chmod(path, 0o444)  # read-only: opening it for writing would fail
        before = (hashlib.sha256(path.read_bytes()).hexdigest(), os.stat(path).st_mtime_ns)
        assert read_settings_file(path, lambda w: None)
        after = (hashlib.sha256(path.read_bytes()).hexdigest(), os.stat(path).st_mtime_ns)
        assert before == after


# -- detection ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", [INBOUND, INBOUND_IP, SEND, CERTS])
def test_looks_like_the_fixtures(path: Path) -> None:
    assert looks_like(path.read_text(encoding="utf-8")[:8192])


@pytest.mark.parametrize("head", [
    '\ufeff[\r\n    {\r\n        "Thumbprint":  "AB"',
    'WARNING: Resulting JSON is truncated as serialization has exceeded the set depth of 2.\n'
    '{ "ConnectorType": "OnPremises"',
    '{"senderipaddresses": ["1.2.3.4"]}',
])
def test_looks_like_true(head: str) -> None:
    assert looks_like(head)


@pytest.mark.parametrize("head", [
    "",
    '{"name": "x", "value": 1}',  # JSON, but not a cmdlet export fastcap reads
    "#Software: Microsoft Exchange Server\n#Fields: date-time,connector-id,\"Thumbprint\":",
    'Dec  5 06:02:09 relay1 postfix/smtp[123]: {"Thumbprint": "AB"}',
    "Name : From on-prem contoso\nTlsSenderCertificateName : mail.contoso.com",  # Format-List
])
def test_looks_like_false(head: str) -> None:
    assert not looks_like(head)


# -- objects and documents ---------------------------------------------------------------


def test_single_object_and_array_give_the_same_settings() -> None:
    one, w1 = _read(_inbound(Name="a", TlsSenderCertificateName="mail.contoso.com"))
    many, w2 = _read([_inbound(Name="a", TlsSenderCertificateName="mail.contoso.com")])
    assert one == many and len(one.inbound) == 1 and w1 == w2 == []


def test_concatenated_documents_are_all_read_and_numbered_in_file_order() -> None:
    text = (json.dumps([_inbound(Name="a"), _cert(Thumbprint="01")], indent=4) + "\r\n"
            + json.dumps(_cert(Thumbprint="02")) + json.dumps([_inbound(Name="b")]))
    settings, warnings = _read(text)
    assert warnings == []
    assert [(c.name, c.where.line) for c in settings.inbound] == [("a", 1), ("b", 4)]
    assert [(c.thumbprint, c.where.line) for c in settings.certificates] == [("01", 2),
                                                                             ("02", 3)]


def test_kind_is_told_from_properties() -> None:
    settings, warnings = _read([
        {"Name": "in", "ConnectorType": "Partner"},  # ConnectorType alone: inbound
        {"Name": "send", "AddressSpaces": ["SMTP:*;1"], "ConnectorType": "Default"},
        {"Name": "sh", "SmartHosts": ["relay.example"]},
        {"Name": "exo-out", "SmartHosts": ["a"], "RecipientDomains": ["*"],
         "ConnectorType": "Partner"},  # Exchange Online outbound connector: not read
        {"Name": "recv", "Bindings": ["0.0.0.0:25"], "RemoteIPRanges": ["0.0.0.0-255.255.255.255"],
         "TlsCertificateName": None},  # a receive connector: not read
        {"NotAfter": "/Date(0)/", "Thumbprint": "AA"},
        {"Something": "else"},
        "a string",
        {"Name": "Hybrid Configuration", "SendingTransportServers": ["EX01"],  # what the HCW
         "OnPremisesSmartHost": "mail.contoso.com",  # set, not what a connector presents
         "TlsCertificateName": "<I>CN=Contoso CA<S>CN=mail.contoso.com"},
    ])
    assert [c.name for c in settings.inbound] == ["in"]
    assert [c.name for c in settings.send] == ["send", "sh"]
    assert [c.thumbprint for c in settings.certificates] == ["AA"]
    assert [w.split(":")[0] for w in warnings[:-1]] == [
        "x.json object 1", "x.json object 2", "x.json object 3"]  # "has no ..."
    assert warnings[-1:] == ["x.json: 5 of 9 objects are neither an inbound or send connector nor "
                        "an Exchange certificate (object 4, 5, 7, 8, 9); skipped"]


def test_property_names_are_case_insensitive() -> None:
    settings, warnings = _read({"name": "c", "CONNECTORTYPE": "onpremises",
                                "tlsSenderCertificateName": "mail.contoso.com",
                                "senderipaddresses": ["203.0.113.10"], "ENABLED": "True"})
    assert warnings == []
    assert settings.expected_name() == "mail.contoso.com"
    assert settings.inbound[0].enabled is True


# -- property shapes ---------------------------------------------------------------------


def test_sender_ip_addresses_as_strings_objects_and_wrappers() -> None:
    settings, warnings = _read([
        _inbound(Name="strings", SenderIPAddresses=["203.0.113.10", "198.51.100.0/24"]),
        _inbound(Name="wrapped", SenderIPAddresses={"value": ["203.0.113.10"], "Count": 1}),
        _inbound(Name="objects", SenderIPAddresses=[
            {"LowerBound": "203.0.113.10", "UpperBound": "203.0.113.10",
             "RangeFormat": "SingleAddress"},
            {"LowerBound": "198.51.100.0", "UpperBound": "198.51.100.255", "CIDRLength": 24,
             "RangeFormat": "CIDR"},
            {"LowerBound": "192.0.2.30", "UpperBound": "192.0.2.40", "RangeFormat": "LoHi"},
            {"Expression": "192.0.2.64/26"}]),
        _inbound(Name="joined", SenderIPAddresses="203.0.113.10 198.51.100.0/24"),
        _inbound(Name="hashtable", SenderIPAddresses=["@{Expression=203.0.113.10; Size=1}"]),
    ])
    assert warnings == []
    got = {c.name: c.sender_ip_addresses for c in settings.inbound}
    assert got == {
        "strings": ("203.0.113.10", "198.51.100.0/24"),
        "wrapped": ("203.0.113.10",),
        "objects": ("203.0.113.10", "198.51.100.0/24", "192.0.2.30-192.0.2.40",
                    "192.0.2.64/26"),
        "joined": ("203.0.113.10", "198.51.100.0/24"),
        "hashtable": ("203.0.113.10",),
    }
    objects = next(c for c in settings.inbound if c.name == "objects")
    assert [objects.allows_ip(ip) for ip in ("198.51.100.9", "192.0.2.35", "192.0.2.41",
                                             "192.0.2.70")] == [True, True, False, True]


def test_connector_type_and_tls_auth_level_as_numbers_or_names() -> None:
    settings, _ = _read([
        _inbound(Name="n1", ConnectorType=1), _inbound(Name="n2", ConnectorType=2),
        _inbound(Name="s", ConnectorType="OnPremises"), _inbound(Name="x", ConnectorType=9),
        {"Name": "a", "TlsCertificateName": None, "TlsAuthLevel": 4},
        {"Name": "b", "TlsCertificateName": None, "TlsAuthLevel": "2"},
        {"Name": "c", "TlsCertificateName": None, "TlsAuthLevel": "EncryptionOnly"},
    ])
    assert [c.connector_type for c in settings.inbound] == ["OnPremises", "Partner",
                                                           "OnPremises", "9"]
    assert [c.tls_auth_level for c in settings.send] == [
        "DomainValidation", "CertificateValidation", "EncryptionOnly"]


def test_tls_certificate_name_as_text_or_object() -> None:
    settings, warnings = _read([
        {"Name": "text", "TlsCertificateName": "<I>CN=CA, O=X<S>CN=mail.contoso.com"},
        {"Name": "object", "TlsCertificateName": {
            "CertificateIssuer": "CN=CA, O=X", "CertificateSubject": "CN=mail.contoso.com",
            "SubjectCommonName": "mail.contoso.com"}},
        {"Name": "subject-only", "TlsCertificateName": "<S>CN=mail.contoso.com"},
        {"Name": "odd", "TlsCertificateName": "mail.contoso.com"},
        {"Name": "none", "TlsCertificateName": None},
    ])
    assert warnings == []
    got = [(c.tls_certificate_name, c.tls_cert_issuer, c.tls_cert_subject)
           for c in settings.send]
    raw = "<I>CN=CA, O=X<S>CN=mail.contoso.com"
    assert got == [(raw, "CN=CA, O=X", "CN=mail.contoso.com"),
                   (raw, "CN=CA, O=X", "CN=mail.contoso.com"),
                   ("<S>CN=mail.contoso.com", None, "CN=mail.contoso.com"),
                   ("mail.contoso.com", None, None),
                   (None, None, None)]


def test_smart_hosts_as_strings_objects_or_the_string_property() -> None:
    settings, warnings = _read([
        {"Name": "s", "TlsCertificateName": None, "SmartHosts": ["a.example", "192.0.2.9"]},
        {"Name": "o", "TlsCertificateName": None, "SmartHosts": [
            {"Domain": {"HostnameString": "a.example", "IsIPAddress": False},
             "Address": None, "IsIPAddress": False},
            {"Domain": None, "Address": "192.0.2.9", "IsIPAddress": True},
            {"Domain": "b.example", "Address": None, "IsIPAddress": False}]},
        {"Name": "t", "TlsCertificateName": None, "SmartHosts": "Microsoft.Exchange.Data.SmartHost",
         "SmartHostsString": "[a.example],[192.0.2.9]"},
    ])
    assert [c.smart_hosts for c in settings.send] == [
        ("a.example", "192.0.2.9"), ("a.example", "192.0.2.9", "b.example"),
        ("a.example", "192.0.2.9")]
    assert warnings == ["x.json: SmartHosts held .NET type names, not values "
                        "(ConvertTo-Json -Depth too small; export with -Depth 4)"]


def test_fqdn_and_names_from_objects() -> None:
    settings, _ = _read([{"Name": "s", "TlsCertificateName": None,
                          "Fqdn": {"Domain": "mail.contoso.com"}},
                         {"Identity": {"Name": "by identity", "DistinguishedName": "CN=x"},
                          "TlsCertificateName": None},
                         {"TlsCertificateName": None}])
    assert settings.send[0].fqdn == "mail.contoso.com"
    assert [c.name for c in settings.send] == ["s", "by identity", "#3"]


@pytest.mark.parametrize(("value", "iso"), [
    ("/Date(1769904000000)/", "2026-02-01T00:00:00"),  # Windows PowerShell 5.1
    ("/Date(1769904000000+0100)/", "2026-02-01T00:00:00"),  # the zone suffix is informational
    ({"value": "/Date(1769904000000)/", "DisplayHint": 2,
      "DateTime": "Sunday, February 1, 2026 1:00:00 AM"}, "2026-02-01T00:00:00"),  # 5.1 + ETS
    ("2026-02-01T01:00:00+01:00", "2026-02-01T00:00:00"),  # PowerShell 7, local kind
    ("2026-02-01T00:00:00Z", "2026-02-01T00:00:00"),  # PowerShell 7, UTC kind
    ("2026-02-01T00:00:00", "2026-02-01T00:00:00"),  # unspecified kind: taken as UTC
])
def test_dates_in_both_forms(value: object, iso: str) -> None:
    settings, warnings = _read(_cert(NotAfter=value))
    assert warnings == []
    assert settings.certificates[0].not_after_ns == _ns(iso)


def test_date_as_windows_powershell_escapes_it() -> None:
    """5.1 writes the slashes escaped; that is JSON's escaping, undone by the parser."""
    settings, _ = _read('{"Thumbprint": "AB", "NotAfter":  "\\/Date(1769904000000)\\/"}')
    assert settings.certificates[0].not_after_ns == _ns("2026-02-01")


def test_seven_digit_fractions_keep_their_ticks() -> None:
    settings, _ = _read(_cert(NotAfter="2026-02-01T00:00:00.1234567Z"))
    assert settings.certificates[0].not_after_ns == _ns("2026-02-01") + 123_456_700


def test_unreadable_date_is_none_and_warned() -> None:
    settings, warnings = _read(_cert(NotAfter="Sunday, 1 February 2026"))
    assert settings.certificates[0].not_after_ns is None
    assert warnings == ["x.json object 1: NotAfter 'Sunday, 1 February 2026' is not a date "
                        "fastcap reads"]


@pytest.mark.parametrize(("value", "services"), [
    (16, ("SMTP",)),
    (31, ("IMAP", "POP", "UM", "IIS", "SMTP")),
    (0, ()),
    ("IMAP, POP, IIS, SMTP", ("IMAP", "POP", "IIS", "SMTP")),
    ("smtp", ("SMTP",)),
    ("None", ()),
    ("24", ("IIS", "SMTP")),
    (["IIS", "SMTP"], ("IIS", "SMTP")),
    ({"value": 16}, ("SMTP",)),
    (None, ()),
])
def test_services_as_flags_number_or_text(value: object, services: tuple[str, ...]) -> None:
    settings, _ = _read(_cert(Services=value))
    assert settings.certificates[0].services == services


def test_certificate_domains_as_strings_or_objects() -> None:
    settings, warnings = _read([
        _cert(CertificateDomains=["mail.contoso.com", "autodiscover.contoso.com"]),
        _cert(CertificateDomains=[
            {"Address": "mail.contoso.com", "Domain": "mail.contoso.com",
             "IncludeSubDomains": False},
            {"Domain": "contoso.com", "IncludeSubDomains": True},
            {"SmtpDomain": {"Domain": "contoso.net"}, "IncludeSubDomains": False}]),
        _cert(CertificateDomains=["Microsoft.Exchange.Data.SmtpDomainWithSubdomains"]),
    ])
    assert [c.names for c in settings.certificates] == [
        ("mail.contoso.com", "autodiscover.contoso.com"),
        ("mail.contoso.com", "*.contoso.com", "contoso.net"),
        (),
    ]
    assert warnings == ["x.json: CertificateDomains held .NET type names, not values "
                        "(ConvertTo-Json -Depth too small; export with -Depth 4)"]


def test_certificate_text_fields_are_normalised() -> None:
    settings, _ = _read(_cert(Thumbprint="dc bf e9:93", SerialNumber="7c:e7:e7",
                              Subject="CN=mail.contoso.com", Issuer="CN=CA",
                              SubjectName={"Name": "CN=ignored"}))
    cert = settings.certificates[0]
    assert (cert.thumbprint, cert.serial, cert.subject, cert.issuer) == (
        "DCBFE993", "7CE7E7", "CN=mail.contoso.com", "CN=CA")
    settings, _ = _read(_cert(SubjectName={"Name": "CN=from x500", "Oid": "System.Security"
                                           ".Cryptography.Oid"},
                              IssuerName={"Name": "CN=CA"}))
    assert (settings.certificates[0].subject, settings.certificates[0].issuer) == (
        "CN=from x500", "CN=CA")


def test_booleans_from_json_or_text() -> None:
    settings, _ = _read([_inbound(Name="a", Enabled=True, RequireTls="False",
                                  RestrictDomainsToCertificate="yes")])
    c = settings.inbound[0]
    assert (c.enabled, c.require_tls, c.restrict_domains_to_certificate) == (True, False, None)


# -- missing fields and bad input --------------------------------------------------------


def test_missing_needed_fields_warn_once_per_object_naming_file_and_index() -> None:
    settings, warnings = _read([
        {"Name": "no cert name", "ConnectorType": "OnPremises", "SenderIPAddresses": []},
        {"Name": "bare", "ConnectorType": "OnPremises"},
        {"Name": "send", "AddressSpaces": ["SMTP:*;1"]},
        {"Thumbprint": "AB"},
        {"NotAfter": "/Date(0)/", "Subject": "CN=x"},
        _inbound(Name="complete"),  # null values are given values: no warning
    ])
    assert warnings == [
        "x.json object 1: inbound connector 'no cert name' has no TlsSenderCertificateName",
        "x.json object 2: inbound connector 'bare' has no TlsSenderCertificateName or "
        "SenderIPAddresses",
        "x.json object 3: send connector 'send' has no TlsCertificateName",
        "x.json object 4: certificate 'AB' has no NotAfter",
        "x.json object 5: certificate 'CN=x' has no Thumbprint",
    ]
    assert settings.inbound[1].sender_ip_addresses == ()
    assert settings.inbound[1].tls_sender_certificate_name is None
    assert settings.send[0].tls_certificate_name is None
    assert settings.certificates[0].not_after_ns is None
    assert settings.certificates[1].thumbprint == ""


@pytest.mark.parametrize(("text", "where"), [
    ('{"Name": "a",\n "ConnectorType": }', "line 2 column 19"),
    ("[\n  {\n    \"Thumbprint\": \"AB\"\n  }\n", "line 5 column 1"),  # truncated
    ("Name : From on-prem contoso", "line 1 column 1"),  # Format-List, not JSON
])
def test_broken_json_is_one_warning_and_no_settings(text: str, where: str) -> None:
    settings, warnings = _read(text)
    assert settings == Settings()
    assert len(warnings) == 1
    assert warnings[0].startswith(f"x.json: not valid JSON at {where}: ")


def test_documents_before_a_broken_one_are_kept() -> None:
    text = json.dumps(_cert(Thumbprint="01")) + "\n" + '{"Thumbprint": "02", '
    settings, warnings = _read(text)
    assert [c.thumbprint for c in settings.certificates] == ["01"]
    assert len(warnings) == 1 and warnings[0].startswith("x.json: not valid JSON at line 2")


def test_powershell_warning_lines_are_skipped() -> None:
    text = ("WARNING: Resulting JSON is truncated as serialization has exceeded the set "
            "depth of 2.\r\n" + json.dumps(_cert(Thumbprint="01")))
    settings, warnings = _read(text)
    assert [c.thumbprint for c in settings.certificates] == ["01"] and warnings == []


def test_empty_and_whitespace_give_no_settings_and_no_warning() -> None:
    for text in ("", "  \r\n", "[]"):
        assert _read(text) == (Settings(), [])


@pytest.mark.parametrize("value", [
    [1, [2, {"Thumbprint": 3}]], {"ConnectorType": {"a": [None]}}, {"SenderIPAddresses": 5},
    {"Thumbprint": ["x"], "NotAfter": 12, "Services": {"a": 1}, "CertificateDomains": 7},
    {"TlsCertificateName": 5, "SmartHosts": [None, 1, {"x": 1}], "TlsAuthLevel": True},
    None, 3.5, "text", True,
])
def test_odd_values_never_raise(value: object) -> None:
    settings, _ = _read(value)
    assert isinstance(settings, Settings)


def test_numbers_and_nesting_past_what_python_reads_are_warnings() -> None:
    for text in ("[" * 100_000, '{"Services": ' + "1" * 5000 + "}"):
        settings, warnings = _read(text)
        assert settings == Settings() and len(warnings) == 1
        assert warnings[0].startswith("x.json: not valid JSON at line 1 column 1: ")
    settings, warnings = _read([_cert(Services="1" * 5000, NotAfter="/Date(" + "9" * 40 + ")/"),
                                _inbound(ConnectorType="\u00b2")])
    assert settings.certificates[0].not_after_ns is None and len(warnings) == 1
    assert settings.inbound[0].connector_type == "\u00b2"


@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
    | st.sampled_from(["/Date(0)/", "IMAP, SMTP", "<I>a<S>b", "System.Object[]", "@{a=b}"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["Name", "Thumbprint", "NotAfter", "Services", "SenderIPAddresses",
                         "TlsCertificateName", "SmartHosts", "ConnectorType", "value", "Count",
                         "CertificateDomains", "Domain", "Address", "LowerBound"]),
        inner, max_size=6),
    max_leaves=30))
@hypothesis.settings(max_examples=300, deadline=None)
def test_any_json_value_reads_without_raising(value: object) -> None:
    got, _ = _read(value)
    assert isinstance(got, Settings)


@given(st.data())
@hypothesis.settings(max_examples=200, deadline=None)
def test_damaged_fixtures_read_without_raising(data: st.DataObject) -> None:
    text = data.draw(st.sampled_from([INBOUND, SEND, CERTS])).read_text(encoding="utf-8")
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, len(text)))
    damaged = text[:start] + data.draw(st.text(max_size=8)) + text[end:]
    got, warnings = _read(damaged)
    assert isinstance(got, Settings) and all(isinstance(w, str) for w in warnings)


def test_file_over_the_limit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fastcap.evidence.powershell as powershell

    monkeypatch.setattr(powershell, "MAX_BYTES", 100)
    path = tmp_path / "big.json"
    path.write_bytes(CERTS.read_bytes())
    warnings: list[str] = []
    assert read_settings_file(path, warnings.append) == Settings()
    assert len(warnings) == 1 and warnings[0].startswith(f"{path}: ")
    assert "not read" in warnings[0]


def test_unreadable_file_is_a_warning(tmp_path: Path) -> None:
    warnings: list[str] = []
    missing = tmp_path / "missing.json"
    assert read_settings_file(missing, warnings.append) == Settings()
    assert len(warnings) == 1 and warnings[0].startswith(f"{missing}: cannot read")


def test_bad_utf8_bytes_are_replaced_and_warned(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"Name": "Versand M\xfcnchen", "TlsCertificateName": null}')
    warnings: list[str] = []
    settings = read_settings_file(path, warnings.append)
    assert settings.send[0].name == "Versand M\ufffdnchen"
    assert len(warnings) == 1 and "not UTF-8" in warnings[0]
