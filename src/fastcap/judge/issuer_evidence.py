"""What ties a CA nobody sent to a trusted hierarchy: a missing intermediate or a private CA.

A leaf whose issuer was neither sent nor found in the trust store has two causes with opposite
fixes: a public CA's intermediate left out of the chain file (send it), or a private CA such as
a company's AD CS (get a certificate from a public CA). The issuer itself is not at hand, so
only what the certificate says about it and what the trust store holds can decide; without
evidence the issuer is taken for a private CA, since a false "incomplete chain" sends the admin
to fix the wrong thing.

Evidence comes from the trust store alone (never from other sessions), so every session and
every worker process reaches the same answer for the same chain:

- a known intermediate: a CA certificate in the trust store that chains to a self-signed anchor,
  whose subject is the issuer's name or whose key identifier is the certificate's AKI;
- the issuer's organization (O=) equals that of a trusted certificate;
- the host of the caIssuers URL lies in a domain the anchors name (in their own AIA, CRL or
  policy URLs, or as a domain written in their subject), or in the domain that spells a trusted
  organization's name (``cacerts.digicert.com`` and ``O=DigiCert Inc``).

Certificates here come from the wire: nothing raises on odd names or extensions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from . import x509lenient

__all__ = ["EvidenceIndex", "Evidence", "Finding", "find_evidence", "registrable_domain"]

# Domains anyone can host files under: a caIssuers URL there says nothing about who runs it.
_SHARED_HOSTING: Final = frozenset(
    {
        "amazonaws.com",
        "cloudfront.net",
        "windows.net",
        "azureedge.net",
        "azurewebsites.net",
        "googleapis.com",
        "appspot.com",
        "github.io",
        "githubusercontent.com",
        "herokuapp.com",
        "akamaized.net",
        "akamaihd.net",
        "fastly.net",
        "digitaloceanspaces.com",
        "ngrok.io",
    }
)
# Second-level labels under a two-letter country code that are not themselves registrable
# (co.uk, com.au, or.jp...): without a public suffix list, the usual ones.
_SECOND_LEVEL: Final = frozenset(
    {"co", "com", "net", "org", "gov", "edu", "ac", "or", "ne", "go", "gob", "gv", "nic"}
)
# Legal-form words dropped from the end of an organization name before it is compared with a
# domain ("DigiCert Inc" -> digicert, "GlobalSign nv-sa" -> globalsign).
_LEGAL_FORMS: Final = frozenset(
    {
        "inc", "incorporated", "ltd", "limited", "llc", "llp", "lp", "corp", "corporation",
        "co", "company", "gmbh", "ag", "sa", "s", "a", "nv", "bv", "plc", "spa", "p", "kft",
        "as", "ab", "oy", "oyj", "srl", "sl", "sas", "pty", "kk", "se", "sarl", "bhd", "sdn",
        "pte", "pvt", "ltda", "sro", "zrt", "rt",
    }
)  # fmt: skip
# Organizations that tools fill in by default: lab CAs share them without sharing an owner.
_PLACEHOLDER_ORGS: Final = frozenset(
    {"internet widgits pty ltd", "default company ltd", "some-organization", "example", "test"}
)
_MIN_ORG_KEY: Final = 4  # shorter organization names match domains by accident
_DOMAIN_IN_TEXT: Final = re.compile(r"(?<![\w.-])((?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,})")
_LABEL: Final = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")


@dataclass(frozen=True, slots=True)
class Evidence:
    """One fact that ties the missing issuer to a trusted hierarchy, in words for the detail."""

    kind: str  # known_intermediate | organization | aia_host
    text: str


@dataclass(frozen=True, slots=True)
class Finding:
    """The answer for one certificate: ``evidence`` empty means a private (untrusted) CA, and
    ``against`` then says why, when something looked like a tie but is not one."""

    evidence: tuple[Evidence, ...]
    against: str | None = None

    @property
    def tied(self) -> bool:
        return bool(self.evidence)


@dataclass(frozen=True, slots=True)
class EvidenceIndex:
    """The trust store seen from the side of a missing issuer; built once per store."""

    anchor_names: MappingProxyType[x509.Name, str]  # self-named anchor's subject -> label
    by_org: MappingProxyType[str, tuple[str, str]]  # normalised O -> (O as written, label)
    by_org_key: MappingProxyType[str, tuple[str, str]]  # O spelled as a domain -> same
    domains: MappingProxyType[str, str]  # registrable domain -> where an anchor names it
    known_by_name: MappingProxyType[x509.Name, str]  # intermediate subject -> description
    known_by_keyid: MappingProxyType[bytes, str]  # intermediate SKI -> description

    @classmethod
    def build(
        cls,
        certs: Iterable[x509.Certificate],
        issuer_of: Callable[[x509.Certificate], x509.Certificate | None],
    ) -> EvidenceIndex:
        """Index ``certs`` (the store's anchors, in the store's order: the first one named
        wins, so the answer does not depend on anything but the store)."""
        names: dict[x509.Name, str] = {}
        by_org: dict[str, tuple[str, str]] = {}
        by_key: dict[str, tuple[str, str]] = {}
        domains: dict[str, str] = {}
        known_name: dict[x509.Name, str] = {}
        known_keyid: dict[bytes, str] = {}
        for cert in certs:
            subject = _safe(lambda c=cert: c.subject)
            if subject is None:
                continue
            label = _label(subject)
            if subject == _safe(lambda c=cert: c.issuer):
                names.setdefault(subject, label)
            org = _org(subject)
            if org is not None and _norm_org(org) not in _PLACEHOLDER_ORGS:
                by_org.setdefault(_norm_org(org), (org, label))
                key = org_key(org)
                if key is not None:
                    by_key.setdefault(key, (org, label))
            for where, host in _anchor_hosts(cert, subject):
                dom = registrable_domain(host)
                if dom is not None and dom not in _SHARED_HOSTING:
                    domains.setdefault(dom, f"{where} of trusted {label}")
            root = _anchor_above(cert, issuer_of)
            if root is not None:
                desc = f"{label}, an intermediate of trusted root {_label(root.subject)}"
                known_name.setdefault(subject, desc)
                ski = _ski(cert)
                if ski is not None:
                    known_keyid.setdefault(ski, desc)
        return cls(
            MappingProxyType(names),
            MappingProxyType(by_org),
            MappingProxyType(by_key),
            MappingProxyType(domains),
            MappingProxyType(known_name),
            MappingProxyType(known_keyid),
        )


def find_evidence(cert: x509.Certificate, index: EvidenceIndex) -> Finding:
    """What ties the issuer of ``cert`` (neither sent nor found in the store) to the store."""
    issuer = _safe(lambda: cert.issuer)
    if issuer is not None and issuer in index.anchor_names:
        # The issuer's full name is an anchor's, yet that anchor did not sign: not that CA.
        return Finding((), f"a trusted root has this name ({index.anchor_names[issuer]}) but"
                           " did not sign it, so it is another CA using that name")
    found: list[Evidence] = []
    if issuer is not None and issuer in index.known_by_name:
        found.append(Evidence(
            "known_intermediate", f"its issuer is {index.known_by_name[issuer]} (by name)"))
    aki = _aki(cert)
    if aki is not None and aki in index.known_by_keyid:
        found.append(Evidence(
            "known_intermediate",
            f"its authority key identifier {aki.hex()} is the key of"
            f" {index.known_by_keyid[aki]}",
        ))
    org = _org(issuer) if issuer is not None else None
    if org is not None:
        hit = index.by_org.get(_norm_org(org))
        if hit is not None:
            found.append(Evidence(
                "organization", f"its organization O={org} is that of trusted {hit[1]}"))
    for host in _ca_issuers_hosts(cert):
        ev = _host_evidence(host, index)
        if ev is not None:
            found.append(ev)
            break
    return Finding(tuple(found))


def _host_evidence(host: str, index: EvidenceIndex) -> Evidence | None:
    dom = registrable_domain(host)
    if dom is None or dom in _SHARED_HOSTING:
        return None
    where = index.domains.get(dom)
    if where is not None:
        return Evidence(
            "aia_host", f"its caIssuers host {host} is in {dom}, a domain named by the {where}")
    for key in _domain_keys(dom):
        hit = index.by_org_key.get(key)
        if hit is not None:
            return Evidence(
                "aia_host",
                f"its caIssuers host {host} is in {dom}, which spells the organization"
                f" O={hit[0]} of trusted {hit[1]}",
            )
    return None


# --- names and domains -----------------------------------------------------------------------


def _safe(fn: Callable[[], x509.Name]) -> x509.Name | None:
    """cryptography decodes names lazily: hostile bytes can raise on first use."""
    try:
        return fn()
    except Exception:
        return None


def _label(name: x509.Name) -> str:
    """A short way to name a CA: its CN, else its whole name."""
    try:
        cn = name.get_attributes_for_oid(NameOID.COMMON_NAME)
        if cn and isinstance(cn[0].value, str):
            return f"CN={cn[0].value}"
        return name.rfc4514_string() or "(empty name)"
    except Exception:
        return "?"


def _org(name: x509.Name) -> str | None:
    try:
        attrs = name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    except Exception:
        return None
    if not attrs or not isinstance(attrs[0].value, str):
        return None
    value = " ".join(attrs[0].value.split())
    return value or None


def _norm_org(org: str) -> str:
    return " ".join(org.casefold().split())


def org_key(org: str) -> str | None:
    """An organization name as a domain would spell it, legal form dropped: "DigiCert Inc" ->
    "digicert", "GoDaddy.com, Inc." -> "godaddycom"; None when too short to be telling."""
    words = re.findall(r"[0-9a-z]+", org.casefold())
    while words and words[-1] in _LEGAL_FORMS:
        words.pop()
    key = "".join(words)
    return key if len(key) >= _MIN_ORG_KEY else None


def _domain_keys(dom: str) -> tuple[str, ...]:
    """``digicert.com`` -> ("digicert", "digicertcom"): the name alone, and with its suffix."""
    first = dom.split(".", 1)[0].replace("-", "")
    return (first, re.sub(r"[^0-9a-z]", "", dom))


def registrable_domain(host: str) -> str | None:
    """The domain an organization registers (``crl.digicert.com`` -> ``digicert.com``,
    ``pki.example.co.uk`` -> ``example.co.uk``); None for IP addresses and single labels."""
    h = host.strip().rstrip(".").casefold()
    labels = h.split(".")
    if len(labels) < 2 or not all(_LABEL.match(x) for x in labels):
        return None
    if labels[-1].isdigit() or not labels[-1].isalpha():
        return None  # an IPv4 address, or not a DNS name
    take = 2
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL:
        take = 3
    if len(labels) < take:
        return None
    return ".".join(labels[-take:])


def _url_host(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        return parts.hostname if parts.scheme.lower() in ("http", "https", "ftp") else None
    except ValueError:
        return None


def _extension(cert: x509.Certificate, kind: type) -> object | None:
    try:
        return x509lenient.extensions(cert)[0].get_extension_for_class(kind).value
    except Exception:  # absent, duplicated or malformed
        return None


def _ca_issuers_hosts(cert: x509.Certificate) -> list[str]:
    aia = _extension(cert, x509.AuthorityInformationAccess)
    out: list[str] = []
    if isinstance(aia, x509.AuthorityInformationAccess):
        for desc in aia:
            if desc.access_method == AuthorityInformationAccessOID.CA_ISSUERS and isinstance(
                desc.access_location, x509.UniformResourceIdentifier
            ):
                host = _url_host(desc.access_location.value)
                if host:
                    out.append(host)
    return out


def _anchor_hosts(cert: x509.Certificate, subject: x509.Name) -> Iterator[tuple[str, str]]:
    """(where, host) for every host an anchor names: its AIA, CRL and policy URLs, and domains
    written in its subject (``OU=www.digicert.com``, ``CN=Izenpe.com``, an e-mail address)."""
    aia = _extension(cert, x509.AuthorityInformationAccess)
    if isinstance(aia, x509.AuthorityInformationAccess):
        for desc in aia:
            loc = desc.access_location
            if isinstance(loc, x509.UniformResourceIdentifier) and (h := _url_host(loc.value)):
                yield "AIA URL", h
    crl = _extension(cert, x509.CRLDistributionPoints)
    if isinstance(crl, x509.CRLDistributionPoints):
        for point in crl:
            for gn in point.full_name or ():
                if isinstance(gn, x509.UniformResourceIdentifier) and (h := _url_host(gn.value)):
                    yield "CRL URL", h
    policies = _extension(cert, x509.CertificatePolicies)
    if isinstance(policies, x509.CertificatePolicies):
        for policy in policies:
            for q in policy.policy_qualifiers or ():
                if isinstance(q, str) and (h := _url_host(q)):
                    yield "policy URL", h
    try:
        values = [a.value for a in subject if isinstance(a.value, str)]
    except Exception:
        values = []
    for value in values:
        for m in _DOMAIN_IN_TEXT.finditer(value.casefold()):
            yield "subject", m.group(1)


def _ski(cert: x509.Certificate) -> bytes | None:
    ski = _extension(cert, x509.SubjectKeyIdentifier)
    return ski.digest if isinstance(ski, x509.SubjectKeyIdentifier) else None


def _aki(cert: x509.Certificate) -> bytes | None:
    aki = _extension(cert, x509.AuthorityKeyIdentifier)
    if isinstance(aki, x509.AuthorityKeyIdentifier) and aki.key_identifier:
        return aki.key_identifier
    return None


def _is_ca(cert: x509.Certificate) -> bool:
    bc = _extension(cert, x509.BasicConstraints)
    return isinstance(bc, x509.BasicConstraints) and bc.ca


def _anchor_above(
    cert: x509.Certificate,
    issuer_of: Callable[[x509.Certificate], x509.Certificate | None],
    limit: int = 8,
) -> x509.Certificate | None:
    """The self-signed store certificate ``cert`` chains to, when ``cert`` is a CA that is not
    self-named; None otherwise (a lone intermediate in a CA file is not tied to a root)."""
    if not _is_ca(cert) or _safe(lambda: cert.subject) == _safe(lambda: cert.issuer):
        return None
    current = cert
    for _ in range(limit):
        parent = issuer_of(current)
        if parent is None or parent is current:
            return None
        if _safe(lambda p=parent: p.subject) == _safe(lambda p=parent: p.issuer):
            return parent
        current = parent
    return None
