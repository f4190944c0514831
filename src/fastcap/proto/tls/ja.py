"""JA3 and JA4 client fingerprints of a ClientHello.

A mail admin compares the sending MTA's fingerprint across sessions ("did the Exchange server
change TLS stack after the update?") and against threat-intel lists, so the strings must match
what other tools print. Both follow their public descriptions:

- JA3 (Salesforce): ``SSLVersion,Ciphers,Extensions,EllipticCurves,EllipticCurvePointFormats``,
  decimal values joined by ``-``, GREASE (RFC 8701) removed, then MD5.
- JA4 (FoxIO, ``technical_details/JA4.md``): ``ja4_a_ja4_b_ja4_c`` where b and c are truncated
  SHA-256 of the sorted cipher list and of the sorted extension list (SNI and ALPN removed)
  followed by the signature algorithms in wire order; GREASE ignored everywhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from .const import is_grease

_JA4_VERSIONS = {
    0x0304: "13",
    0x0303: "12",
    0x0302: "11",
    0x0301: "10",
    0x0300: "s3",
    0x0002: "s2",
    0xFEFF: "d1",
    0xFEFD: "d2",
    0xFEFC: "d3",
}
_EMPTY_HASH = "000000000000"
_SNI = 0x0000
_ALPN = 0x0010


def _no_grease(values: Sequence[int]) -> list[int]:
    return [v for v in values if not is_grease(v)]


def ja3_string(
    legacy_version: int,
    cipher_suites: Sequence[int],
    extensions: Sequence[int],
    groups: Sequence[int],
    point_formats: Sequence[int],
) -> str:
    """The JA3 text before hashing (extension types in wire order)."""
    fields = (
        [legacy_version],
        _no_grease(cipher_suites),
        _no_grease(extensions),
        _no_grease(groups),
        list(point_formats),
    )
    return ",".join("-".join(str(v) for v in f) for f in fields)


def ja3_md5(text: str) -> str:
    return hashlib.md5(text.encode("ascii"), usedforsecurity=False).hexdigest()


def _ja4_version(legacy_version: int, supported_versions: Sequence[int]) -> str:
    offered = _no_grease(supported_versions)
    v = max(offered) if offered else legacy_version
    return _JA4_VERSIONS.get(v, "00")


def _alnum(b: int) -> bool:
    return 0x30 <= b <= 0x39 or 0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A


def _ja4_alpn(first_alpn: bytes | None) -> str:
    """First and last character of the first ALPN value; hex digits if either end is not
    ASCII alphanumeric; ``00`` when there is none."""
    if not first_alpn:
        return "00"
    first, last = first_alpn[0], first_alpn[-1]
    if _alnum(first) and _alnum(last):
        return chr(first) + chr(last)
    h = first_alpn.hex()
    return h[0] + h[-1]


def _sha12(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:12]


def ja4(
    *,
    legacy_version: int,
    supported_versions: Sequence[int],
    has_sni: bool,
    cipher_suites: Sequence[int],
    extensions: Sequence[int],
    signature_algorithms: Sequence[int],
    first_alpn: bytes | None,
    protocol: str = "t",
) -> tuple[str, str]:
    """(JA4, JA4_r): the fingerprint and its unhashed, sorted raw form."""
    ciphers = _no_grease(cipher_suites)
    exts = _no_grease(extensions)
    a = (
        f"{protocol}{_ja4_version(legacy_version, supported_versions)}"
        f"{'d' if has_sni else 'i'}{min(len(ciphers), 99):02d}{min(len(exts), 99):02d}"
        f"{_ja4_alpn(first_alpn)}"
    )
    cipher_text = ",".join(f"{c:04x}" for c in sorted(ciphers))
    ext_text = ",".join(f"{e:04x}" for e in sorted(exts) if e not in (_SNI, _ALPN))
    sig_text = ",".join(f"{s:04x}" for s in _no_grease(signature_algorithms))
    c_text = f"{ext_text}_{sig_text}" if sig_text else ext_text
    b = _sha12(cipher_text) if ciphers else _EMPTY_HASH
    c = _sha12(c_text) if ext_text else _EMPTY_HASH
    return f"{a}_{b}_{c}", f"{a}_{cipher_text}_{c_text}"
