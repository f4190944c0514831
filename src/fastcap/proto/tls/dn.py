"""Distinguished names as text: a CertificateRequest lists the CAs a server accepts as raw DER
Names, and a mail admin needs to read them (``CN=...,O=...``)."""

from __future__ import annotations

import warnings
from functools import lru_cache

from .der import DerError, element, encode


def _whole(der: bytes) -> bool:
    """``der`` is exactly one element."""
    try:
        return element(der, 0, len(der))[2] == len(der)
    except DerError:
        return False


_CRL_ALG = bytes.fromhex("300d06092a864886f70d01010b0500")  # sha256WithRSAEncryption
_CRL_TIME = encode(0x17, b"250101000000Z")


@lru_cache(maxsize=4096)  # pure; a server asks every client for the same CA names
def dn_to_text(der: bytes) -> str | None:
    """RFC 4514 text of a DER DistinguishedName, or None when it does not parse.

    cryptography has no loader for a bare Name, so the DN is set as the issuer of a minimal,
    unsigned CRL and read back as :class:`cryptography.x509.Name` (no signature is checked).
    """
    if not der or der[0] != 0x30 or not _whole(der):
        return None
    from cryptography import x509  # local: parsing messages never needs it

    tbs = encode(0x30, _CRL_ALG + der + _CRL_TIME)
    crl = encode(0x30, tbs + _CRL_ALG + encode(0x03, b"\x00"))
    try:
        with warnings.catch_warnings():  # a name it would not build (a CN over 64, say)
            warnings.simplefilter("ignore", UserWarning)
            return x509.load_der_x509_crl(crl).issuer.rfc4514_string()
    except Exception:  # hostile bytes: cryptography may reject them in more than one way
        return None
