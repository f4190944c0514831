"""Regenerate the committed certificates of ``tests/data/evidence/certs/``.

The mail-server log fixtures name certificates by subject, issuer, serial number and thumbprint,
so the captures paired with them must carry exactly those certificates: they are generated once,
committed, and read back by :mod:`fastcap_synth.evidence_pairs`. Running this again makes new keys
and serials, and every fixture that quotes them would have to be rewritten, so tests never call
it; it exists to show how the files were made and to rebuild them on purpose::

    python -m fastcap_synth.evidence_certs tests/data/evidence/certs

The PKI: "Contoso Test Root CA" (self-signed) issues "Contoso Test Issuing CA, O=Contoso Test
PKI", which issues ``good``, ``expired`` and ``wrongname``; ``untrusted`` comes from a private
"Relay1 Self-Signed CA" that ``roots.pem`` (the ``--ca-file`` bundle) leaves out. RSA 2048 keys
and the serverAuth+clientAuth EKU, as mail servers' certificates have.
"""

from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from .certs import Issued, make_ca, make_leaf

ORG = "Contoso Test PKI"
ROOT_CN = "Contoso Test Root CA"
ISSUING_CN = "Contoso Test Issuing CA"
RELAY1_CA_CN = "Relay1 Self-Signed CA"
MAIL_NAME = "mail.contoso.com"


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class LeafSpec:
    """One committed end-entity certificate: file stem, name, issuer stem and validity."""

    name: str
    cn: str
    issuer: str  # "issuing" | "relay1-ca"
    not_before: dt.datetime
    not_after: dt.datetime
    why: str


CAS = ("root", "issuing", "relay1-ca")
LEAVES = (
    LeafSpec("good", MAIL_NAME, "issuing", _utc("2026-01-15T00:00:00"),
             _utc("2028-01-15T00:00:00"), "valid, trusted, the connector's name"),
    LeafSpec("expired", MAIL_NAME, "issuing", _utc("2025-02-01T00:00:00"),
             _utc("2026-02-01T00:00:00"), "expired before the March 2026 sessions"),
    LeafSpec("wrongname", "smtp.contoso.local", "issuing", _utc("2026-01-15T00:00:00"),
             _utc("2028-01-15T00:00:00"), "valid and trusted, but not the connector's name"),
    LeafSpec("untrusted", MAIL_NAME, "relay1-ca", _utc("2026-01-15T00:00:00"),
             _utc("2028-01-15T00:00:00"), "right name, issued by a CA nobody trusts"),
)
NAMES = tuple(spec.name for spec in LEAVES)


def build() -> dict[str, Issued]:
    """A fresh PKI (new keys, new serials) keyed by file stem."""
    root = make_ca(ROOT_CN, org=ORG, key="rsa2048", not_before=_utc("2025-01-01T00:00:00"),
                   not_after=_utc("2035-01-01T00:00:00"))
    issuing = make_ca(ISSUING_CN, org=ORG, key="rsa2048", parent=root,
                      not_before=_utc("2025-01-01T00:00:00"),
                      not_after=_utc("2030-01-01T00:00:00"))
    relay1 = make_ca(RELAY1_CA_CN, org=None, key="rsa2048",
                     not_before=_utc("2025-01-01T00:00:00"),
                     not_after=_utc("2035-01-01T00:00:00"))
    out = {"root": root, "issuing": issuing, "relay1-ca": relay1}
    for spec in LEAVES:
        out[spec.name] = make_leaf(out[spec.issuer], spec.cn, sans=[spec.cn], key="rsa2048",
                                   not_before=spec.not_before, not_after=spec.not_after)
    return out


def windows_name(name: x509.Name) -> str:
    """A distinguished name as Get-ExchangeCertificate prints it: "CN=..., O=..."."""
    return ", ".join(a.rfc4514_string() for rdn in reversed(name.rdns) for a in rdn)


def facts(cert: x509.Certificate) -> dict[str, str]:
    """What the README lists for a certificate, in Exchange's spelling."""
    return {
        "Subject": windows_name(cert.subject),
        "Issuer": windows_name(cert.issuer),
        "SerialNumber": f"{cert.serial_number:X}",
        "Thumbprint": cert.fingerprint(hashes.SHA1()).hex().upper(),
        "SHA-256": cert.fingerprint(hashes.SHA256()).hex().upper(),
        "NotBefore": cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "NotAfter": cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _readme(issued: dict[str, Issued]) -> str:
    why = {spec.name: spec.why for spec in LEAVES}
    why.update({"root": "self-signed root; the only certificate in roots.pem",
                "issuing": "intermediate under the root; issues good, expired, wrongname",
                "relay1-ca": "private self-signed CA of the Postfix relay; not in roots.pem"})
    parts = [
        "# Test certificates for the mail-server log fixtures\n\n",
        "TEST ONLY. These certificates and private keys were made for fastcap's tests; the\n"
        "keys are public, so nothing here may be trusted anywhere else. The log and\n"
        "PowerShell fixtures in `tests/data/evidence/` quote the values below, and the\n"
        "captures paired with them (`fastcap_synth/evidence_pairs.py`) send these very\n"
        "certificates, so do not regenerate them casually:\n"
        "`python -m fastcap_synth.evidence_certs tests/data/evidence/certs` makes new keys and\n"
        "serial numbers, and every fixture quoting the old ones must then change (`--readme-only`\n"
        "rewrites just this file from the certificates here).\n\n",
        "Files: `NAME.pem` (the certificate), `NAME.key` (its PKCS#8 private key), `roots.pem`\n"
        "(the `--ca-file` bundle: the Contoso test root only). Names are given as\n"
        "Get-ExchangeCertificate shows them; SerialNumber and Thumbprint (SHA-1) in upper-case\n"
        "hex. All are RSA 2048 and SHA-256 signed; the leaves carry serverAuth+clientAuth and\n"
        "their CN as the only DNS name.\n\n",
        "Shape followed: the properties and spelling of Get-ExchangeCertificate\n"
        "(https://learn.microsoft.com/powershell/module/exchange/get-exchangecertificate):\n"
        "Thumbprint as a 40-digit upper-case hex digest, Subject and Issuer as X.500 names,\n"
        "NotBefore and NotAfter; SHA-256 is added for tools that print that digest instead.\n",
    ]
    for stem in (*CAS, *NAMES):
        parts.append(f"\n## {stem}\n\n{why[stem]}.\n\n")
        parts.extend(f"- {k}: `{v}`\n" for k, v in facts(issued[stem].cert).items())
    return "".join(parts)


def write(directory: str | Path) -> dict[str, Issued]:
    """Generate and write every file (certificates, keys, roots.pem, README.md)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    issued = build()
    for stem, item in issued.items():
        (d / f"{stem}.pem").write_bytes(item.pem)
        (d / f"{stem}.key").write_bytes(item.key_pem)
    (d / "roots.pem").write_bytes(issued["root"].pem)
    (d / "README.md").write_text(_readme(issued), encoding="utf-8")
    return issued


def load(directory: str | Path, stem: str) -> Issued:
    """One committed certificate with its key and its issuers (nearest first)."""
    d = Path(directory)
    cert = x509.load_pem_x509_certificate((d / f"{stem}.pem").read_bytes())
    # The keys are our own and checked when made; skipping the RSA check saves ~60 ms a key.
    key = serialization.load_pem_private_key((d / f"{stem}.key").read_bytes(), password=None,
                                             unsafe_skip_rsa_key_validation=True)
    chain: list[x509.Certificate] = []
    issuer_stem = {spec.name: spec.issuer for spec in LEAVES}.get(stem)
    if stem == "issuing":
        issuer_stem = "root"
    while issuer_stem is not None:
        chain.append(x509.load_pem_x509_certificate((d / f"{issuer_stem}.pem").read_bytes()))
        issuer_stem = "root" if issuer_stem == "issuing" else None
    return Issued(cert, key, chain)  # type: ignore[arg-type]


def write_readme(directory: str | Path) -> None:
    """Rewrite README.md from the certificates already there (no new keys)."""
    d = Path(directory)
    issued = {stem: load(d, stem) for stem in (*CAS, *NAMES)}
    (d / "README.md").write_text(_readme(issued), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("directory", help="where to write (e.g. tests/data/evidence/certs)")
    ap.add_argument("--readme-only", action="store_true",
                    help="only rewrite README.md from the certificates in DIRECTORY")
    args = ap.parse_args(argv)
    if args.readme_only:
        write_readme(args.directory)
    else:
        write(args.directory)


if __name__ == "__main__":
    main()
