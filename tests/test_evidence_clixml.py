"""Connector and certificate settings from `Export-Clixml` files: the typed serialization
gives the same settings as the ConvertTo-Json export of the same objects.

The documents follow PowerShell's CLIXML ([MS-PSRP] 2.2.5): deserialized objects with their
type names, `<ToString>`, adapted `<Props>` and extended `<MS>`, collections as `<LST>`,
objects met again as `<Ref>`, strings with `_xHHHH_` escapes, dates as ISO 8601 with offset."""

from __future__ import annotations

import codecs
import json

from fastcap.evidence import clixml
from fastcap.evidence.detect import kind_of
from fastcap.evidence.powershell import read_settings as read_json
from fastcap.evidence.read import read_evidence

_NS = 'xmlns="http://schemas.microsoft.com/powershell/2004/04"'
_EX = "Deserialized.Microsoft.Exchange"

# Get-InboundConnector | Export-Clixml inbound.xml (two connectors; the second's IP list
# written as IPRange objects, its type names as a TNRef to the first's)
INBOUND = f"""<Objs Version="1.1.0.1" {_NS}>
  <Obj RefId="0">
    <TN RefId="0">
      <T>{_EX}.Data.Directory.SystemConfiguration.TenantInboundConnector</T>
      <T>Deserialized.System.Object</T>
    </TN>
    <ToString>From on-prem contoso</ToString>
    <Props>
      <B N="Enabled">true</B>
      <Obj N="ConnectorType" RefId="1">
        <TN RefId="1"><T>{_EX}.Data.TenantConnectorType</T>
          <T>Deserialized.System.Enum</T></TN>
        <ToString>OnPremises</ToString>
        <I32>1</I32>
      </Obj>
      <Nil N="Comment" />
      <Obj N="SenderIPAddresses" RefId="2">
        <TN RefId="2">
          <T>{_EX}.Data.MultiValuedProperty`1[[Microsoft.Exchange.Data.IPRange]]</T></TN>
        <LST>
          <S>203.0.113.10</S>
          <S>198.51.100.0/24</S>
        </LST>
      </Obj>
      <Obj N="SenderDomains" RefId="3">
        <TN RefId="3">
          <T>{_EX}.Data.MultiValuedProperty`1[[Microsoft.Exchange.Data.AddressSpace]]</T></TN>
        <LST><S>smtp:*;1</S></LST>
      </Obj>
      <B N="RequireTls">true</B>
      <B N="RestrictDomainsToIPAddresses">false</B>
      <B N="RestrictDomainsToCertificate">false</B>
      <Obj N="TlsSenderCertificateName" RefId="4">
        <TN RefId="4"><T>{_EX}.Data.TlsCertificate</T></TN>
        <ToString>*.contoso.com</ToString>
        <Props><B N="IsWildcard">true</B></Props>
      </Obj>
      <S N="Identity">From on-prem contoso</S>
      <DT N="WhenChanged">2026-03-01T10:00:00.1234567+01:00</DT>
    </Props>
    <MS><S N="Name">From on-prem contoso</S></MS>
  </Obj>
  <Obj RefId="5">
    <TNRef RefId="0" />
    <ToString>From relay_x005F_x1</ToString>
    <Props>
      <B N="Enabled">true</B>
      <Ref N="ConnectorType" RefId="1" />
      <Obj N="SenderIPAddresses" RefId="6">
        <TNRef RefId="2" />
        <LST>
          <Obj RefId="7"><TN RefId="5"><T>{_EX}.Data.IPRange</T></TN>
            <ToString>192.0.2.0/24</ToString>
            <Props><S N="LowerBound">192.0.2.0</S><S N="UpperBound">192.0.2.255</S></Props>
          </Obj>
        </LST>
      </Obj>
      <Nil N="TlsSenderCertificateName" />
      <S N="Name">From relay_x005F_x1</S>
    </Props>
  </Obj>
</Objs>"""

JSON = json.dumps([
    {"Enabled": True, "ConnectorType": 1, "Comment": None,
     "SenderIPAddresses": ["203.0.113.10", "198.51.100.0/24"], "SenderDomains": ["smtp:*;1"],
     "RequireTls": True, "RestrictDomainsToIPAddresses": False,
     "RestrictDomainsToCertificate": False, "TlsSenderCertificateName": "*.contoso.com",
     "Identity": "From on-prem contoso", "Name": "From on-prem contoso"},
    {"Enabled": True, "ConnectorType": "OnPremises", "SenderIPAddresses": ["192.0.2.0/24"],
     "TlsSenderCertificateName": None, "Name": "From relay_x1"}])

CERTS = f"""<Objs Version="1.1.0.1" {_NS}>
  <Obj RefId="0">
    <TN RefId="0"><T>{_EX}.Management.SystemConfigurationTasks.ExchangeCertificate</T></TN>
    <ToString>[Subject]_x000D__x000A_  CN=mail.contoso.com</ToString>
    <Props>
      <S N="Thumbprint">DCBFE993F26AA4EF1F0D18B03E560A88302F8297</S>
      <S N="Subject">CN=mail.contoso.com</S>
      <S N="Issuer">CN=R3, O=Let's Encrypt, C=US</S>
      <S N="SerialNumber">03F1A2</S>
      <DT N="NotBefore">2025-12-01T00:00:00-05:00</DT>
      <DT N="NotAfter">2026-03-01T18:59:59-05:00</DT>
      <Obj N="Services" RefId="1">
        <TN RefId="1"><T>{_EX}.Management.SystemConfigurationTasks.AllowedServices</T>
          <T>Deserialized.System.Enum</T></TN>
        <ToString>IMAP, POP, SMTP</ToString>
        <I32>19</I32>
      </Obj>
      <Obj N="CertificateDomains" RefId="2">
        <TN RefId="2"><T>Deserialized.System.Collections.ObjectModel.ReadOnlyCollection`1[[
          Microsoft.Exchange.Data.SmtpDomainWithSubdomains]]</T></TN>
        <LST><S>mail.contoso.com</S><S>autodiscover.contoso.com</S></LST>
      </Obj>
      <BA N="RawData">MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA</BA>
    </Props>
  </Obj>
</Objs>"""


def _warnings():
    got: list[str] = []
    return got, got.append


def test_clixml_gives_the_settings_its_json_twin_gives():
    w1, warn1 = _warnings()
    w2, warn2 = _warnings()
    from_xml = clixml.read_settings(INBOUND, "x", warn1)
    from_json = read_json(JSON, "x", warn2)
    assert w1 == w2 == []
    assert from_xml == from_json
    first, second = from_xml.inbound
    assert first.sender_ip_addresses == ("203.0.113.10", "198.51.100.0/24")
    assert first.tls_sender_certificate_name == "*.contoso.com"
    assert first.connector_type == "OnPremises" and first.restrict_domains_to_ip is False
    assert second.connector_type == "OnPremises"  # by <Ref> to the first's
    assert second.sender_ip_addresses == ("192.0.2.0/24",) and second.allows_ip("192.0.2.9")
    assert second.name == "From relay_x1"  # "_x005F_" is an escaped underscore


def test_certificates_from_clixml_keep_their_dates(tmp_path):
    path = tmp_path / "certs.xml"  # Windows PowerShell 5.1 writes UTF-16 with a BOM
    path.write_bytes(codecs.BOM_UTF16_LE + CERTS.encode("utf-16-le"))
    ev = read_evidence([path])
    assert ev.warnings == () and [f.kind for f in ev.files] == ["powershell-clixml"]
    (cert,) = ev.settings.certificates
    assert cert.not_after_ns == 1772409599 * 10**9  # 2026-03-01T23:59:59Z
    assert cert.services == ("IMAP", "POP", "SMTP")
    assert cert.names == ("mail.contoso.com", "autodiscover.contoso.com")
    assert cert.issuer == "CN=R3, O=Let's Encrypt, C=US" and cert.serial == "03F1A2"


def test_broken_clixml_is_one_warning_naming_the_place(tmp_path):
    path = tmp_path / "inbound.xml"
    path.write_text(INBOUND[:900], encoding="utf-8")
    ev = read_evidence([path])
    assert not ev.settings
    (warning,) = ev.warnings
    assert warning.startswith(f"{path}: not well-formed CLIXML at line ")
    assert "\n" not in warning
    bomb = ('<!DOCTYPE Objs [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
            + INBOUND.replace("<S>203.0.113.10</S>", "<S>&b;</S>"))
    got, warn = _warnings()
    assert not clixml.read_settings(bomb, "x", warn)
    assert got == ["x: a DOCTYPE or ENTITY declaration, which CLIXML never has; not read"]


def test_clixml_is_told_by_its_content():
    assert kind_of(INBOUND) == "powershell-clixml" and kind_of(CERTS) == "powershell-clixml"
    assert kind_of('<?xml version="1.0"?>\n<Objs Version="1.1.0.1" ' + _NS + ">") \
        == "powershell-clixml"
    assert not clixml.looks_like("<Objs><Obj/></Objs>")  # no PowerShell namespace
    assert not clixml.looks_like('{"Name": "<Objs"}')


def test_a_character_beyond_the_bmp_is_read_from_its_two_escapes():
    # PowerShell's serializer writes each UTF-16 surrogate as its own escape, so U+1F4E7 is
    # "_xD83D__xDCE7_"; read one at a time they were two lone surrogates, text no encoder
    # takes; a lone one (a string cut inside a pair) is U+FFFD
    for written, read in (("_xD83D__xDCE7_ From relay_x005F_x1", "\U0001F4E7 From relay_x1"),
                          ("From relay _xD83D_", "From relay \ufffd")):
        doc = INBOUND.replace('<S N="Name">From relay_x005F_x1</S>',
                              f'<S N="Name">{written}</S>')
        assert doc != INBOUND
        got, warn = _warnings()
        second = clixml.read_settings(doc, "x", warn).inbound[1]
        assert got == [] and second.name == read
        second.name.encode("utf-8")
