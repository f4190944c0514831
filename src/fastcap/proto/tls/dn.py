"""Distinguished names as text: a CertificateRequest lists the CAs a server accepts as raw DER
Names, and a mail admin needs to read them (``CN=...,O=...``)."""

from __future__ import annotations

import warnings
from functools import lru_cache


def _der_tlv_len(der: bytes) -> int | None:
    """Total length of the single DER TLV at the start of ``der`` (None if not definite)."""
    if len(der) < 2:
        return None
    first = der[1]
    if first < 0x80:
        return 2 + first
    n = first & 0x7F
    if n == 0 or n > 4 or len(der) < 2 + n:
        return None
    return 2 + n + int.from_bytes(der[2 : 2 + n], "big")


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + content


_CRL_ALG = bytes.fromhex("300d06092a864886f70d01010b0500")  # sha256WithRSAEncryption
_CRL_TIME = _tlv(0x17, b"250101000000Z")


@lru_cache(maxsize=4096)  # pure; a server asks every client for the same CA names
def dn_to_text(der: bytes) -> str | None:
    """RFC 4514 text of a DER DistinguishedName, or None when it does not parse.

    cryptography has no loader for a bare Name, so the DN is set as the issuer of a minimal,
    unsigned CRL and read back as :class:`cryptography.x509.Name` (no signature is checked).
    """
    if not der or der[0] != 0x30 or _der_tlv_len(der) != len(der):
        return None
    from cryptography import x509  # local: parsing messages never needs it

    tbs = _tlv(0x30, _CRL_ALG + der + _CRL_TIME)
    crl = _tlv(0x30, tbs + _CRL_ALG + _tlv(0x03, b"\x00"))
    try:
        with warnings.catch_warnings():  # a name it would not build (a CN over 64, say)
            warnings.simplefilter("ignore", UserWarning)
            return x509.load_der_x509_crl(crl).issuer.rfc4514_string()
    except Exception:  # hostile bytes: cryptography may reject them in more than one way
        return None
