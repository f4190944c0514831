"""Connector and certificate settings, as Get-InboundConnector, Get-SendConnector and
Get-ExchangeCertificate export them: the rules the receiving side judges a connection by,
and the certificates the sending side can present.  `fastcap.evidence.powershell` reads
them from `ConvertTo-Json` output, `fastcap.evidence.fmtlist` from `Format-List` text."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .records import CertClaim, Where

__all__ = ["ExchangeCertificate", "InboundConnector", "SendConnector", "Settings"]


def _in_entry(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, entry: str) -> bool | None:
    """Whether `ip` is within one SenderIPAddresses entry: an address, a CIDR block, or a
    range "a-b" (the forms the cmdlets accept); None when the entry is not one of them."""
    entry = entry.strip()
    try:
        if "-" in entry:
            lo, hi = (ipaddress.ip_address(x.strip()) for x in entry.split("-", 1))
            return lo.version == ip.version and lo <= ip <= hi  # type: ignore[operator]
        return ip in ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class InboundConnector:
    """An Exchange Online inbound connector: how it recognises mail from the organisation."""

    name: str
    connector_type: str | None  # OnPremises | Partner
    sender_ip_addresses: tuple[str, ...]  # as given: addresses, CIDR blocks, ranges "a-b"
    sender_domains: tuple[str, ...]
    require_tls: bool | None
    restrict_domains_to_certificate: bool | None
    restrict_domains_to_ip: bool | None
    tls_sender_certificate_name: str | None
    enabled: bool | None
    where: Where

    def allows_ip(self, ip: str) -> bool | None:
        """Whether `ip` is among SenderIPAddresses; None when the connector lists none (or
        `ip` is not an address)."""
        if not self.sender_ip_addresses:
            return None
        try:
            addr = ipaddress.ip_address(ip.strip("[]"))
        except ValueError:
            return None
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return any(_in_entry(addr, e) for e in self.sender_ip_addresses)


@dataclass(frozen=True, slots=True)
class SendConnector:
    """An on-premises Exchange send connector: which certificate it presents, and where to."""

    name: str
    tls_certificate_name: str | None  # raw, "<I>issuer<S>subject"
    tls_cert_issuer: str | None
    tls_cert_subject: str | None
    require_tls: bool | None
    tls_auth_level: str | None
    smart_hosts: tuple[str, ...]
    fqdn: str | None
    cloud_services_mail_enabled: bool | None
    enabled: bool | None
    where: Where


@dataclass(frozen=True, slots=True)
class ExchangeCertificate:
    """One certificate in the Exchange server's store, as Get-ExchangeCertificate lists it."""

    thumbprint: str  # SHA-1, upper-case hex
    subject: str | None
    issuer: str | None
    serial: str | None
    not_before_ns: int | None
    not_after_ns: int | None
    services: tuple[str, ...]  # e.g. ("IMAP", "POP", "SMTP")
    names: tuple[str, ...]  # CertificateDomains
    where: Where

    def claim(self) -> CertClaim:
        return CertClaim(subject=self.subject, issuer=self.issuer, serial=self.serial,
                         thumbprint=self.thumbprint, names=self.names,
                         not_after_ns=self.not_after_ns, where=self.where)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the settings exports said, merged across files."""

    inbound: tuple[InboundConnector, ...] = ()
    send: tuple[SendConnector, ...] = ()
    certificates: tuple[ExchangeCertificate, ...] = ()

    def merged(self, other: Settings) -> Settings:
        return Settings(self.inbound + other.inbound, self.send + other.send,
                        self.certificates + other.certificates)

    def __bool__(self) -> bool:
        return bool(self.inbound or self.send or self.certificates)

    def on_premises(self) -> tuple[InboundConnector, ...]:
        """The enabled inbound connectors of type OnPremises: those 5.7.64 is about."""
        return tuple(c for c in self.inbound if c.enabled is not False
                     and (c.connector_type or "").lower() == "onpremises")

    def expected_name(self) -> str | None:
        """The one TlsSenderCertificateName of the enabled OnPremises inbound connectors
        (what --expect-name defaults to), None when there is none or they differ."""
        names = {c.tls_sender_certificate_name.lower() for c in self.on_premises()
                 if c.tls_sender_certificate_name}
        return names.pop() if len(names) == 1 else None

    def certificate(self, thumbprint: str | None) -> ExchangeCertificate | None:
        if not thumbprint:
            return None
        want = thumbprint.upper()
        return next((c for c in self.certificates if c.thumbprint == want), None)
