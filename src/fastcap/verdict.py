"""The values a judgement produces: `Verdict`s, and the `ChainCheck` of each presented chain
with its `CertInfo`s.

They live apart from the judge (which makes them) so that ``session``, which carries a
session's judgement, can name the types without importing the judge that fills them in."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from .pickling import compact

__all__ = ["CertInfo", "ChainCheck", "Verdict"]


@compact
@dataclass(frozen=True, slots=True)
class Verdict:
    """One judgement about a session: a stable code plus plain words for the admin."""

    code: str
    severity: str  # ok | info | warning | error
    message: str  # one line, naming facts (subjects, dates, frames)
    hint: str  # what to change; "" when there is nothing to do
    frame: int | None  # the Wireshark frame to look at

    def to_dict(self) -> dict[str, str | int | None]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "hint": self.hint,
            "frame": self.frame,
        }


def iso_time(t: dt.datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


@compact
@dataclass(frozen=True, slots=True)
class CertInfo:
    """What an admin compares against Get-ExchangeCertificate, plus what the verdicts need."""

    sha256: str
    sha1: str  # UPPERCASE: Exchange's "Thumbprint"
    size: int
    subject: str | None
    issuer: str | None
    subject_cn: str | None
    issuer_cn: str | None
    san_dns: tuple[str, ...]
    san_ip: tuple[str, ...]
    serial: str | None  # upper-case hex, as Exchange shows SerialNumber
    not_before: dt.datetime | None
    not_after: dt.datetime | None
    key_type: str | None
    key_bits: int | None
    signature_algorithm: str | None
    signature_hash: str | None
    key_usage: tuple[str, ...]
    ext_key_usage: tuple[str, ...] | None  # None: extension absent, i.e. any usage
    is_ca: bool | None  # None: no basicConstraints extension (or unreadable)
    self_signed: bool
    parse_error: str | None
    # Every CN of the subject, in order (``subject_cn`` is the first): a host name check
    # without DNS SAN tries each, as OpenSSL does; the inbound connector's takes all, beside
    # the SANs.
    subject_cns: tuple[str, ...] = ()
    # The subjectAltName is present more than once: ``san_dns`` and ``san_ip`` hold the names
    # of every copy (as ``openssl x509 -text`` prints them), and a name check finds no SAN
    # and takes the CNs (OpenSSL's X509_get_ext_d2i finds none when there are two).
    san_repeated: bool = False
    # The other subjectAltName entries (email, URI, directory name, otherName, registered ID,
    # x400Address, ediPartyName, an iPAddress of odd size), as `openssl x509 -text` names them.
    san_other: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "sha1": self.sha1,
            "size": self.size,
            "subject": self.subject,
            "issuer": self.issuer,
            "subject_cn": self.subject_cn,
            "subject_cns": list(self.subject_cns),  # every CN, the first is subject_cn
            "issuer_cn": self.issuer_cn,
            "san_dns": list(self.san_dns),
            "san_ip": list(self.san_ip),
            "san_repeated": self.san_repeated,  # names of every copy; a name check takes none
            "san_other": list(self.san_other),
            "serial": self.serial,
            "not_before": iso_time(self.not_before),
            "not_after": iso_time(self.not_after),
            "key_type": self.key_type,
            "key_bits": self.key_bits,
            "signature_algorithm": self.signature_algorithm,
            "signature_hash": self.signature_hash,
            "key_usage": list(self.key_usage),
            "ext_key_usage": None if self.ext_key_usage is None else list(self.ext_key_usage),
            "is_ca": self.is_ca,
            "self_signed": self.self_signed,
            "parse_error": self.parse_error,
        }


@compact
@dataclass(frozen=True, slots=True)
class ChainCheck:
    """The verdict on one presented chain; ``problem`` is the single most specific cause."""

    role: str
    certs: tuple[CertInfo, ...]
    leaf_valid_at_capture: str  # valid | expired | not_yet_valid | unknown
    leaf_valid_today: str
    trusted: bool | None
    problem: str | None
    detail: str
    expected_name: str | None
    name_matches: bool | None
    eku_ok: bool | None
    weak_signatures: tuple[tuple[int, str], ...]
    weak_keys: tuple[tuple[int, str], ...]
    # RFC 5280 path validation as OpenSSL does it (what Postfix/Exim decide); ``trusted``
    # differs only by fastcap's own rules (SHA-1 refused, a pinned leaf accepted).
    path_valid: bool | None = None
    path_error: str | None = None  # OpenSSL's reason, e.g. "invalid CA certificate"
    path_error_depth: int | None = None  # 0 = leaf
    path_sha256: tuple[str, ...] = ()  # the path found, leaf first (anchor last when valid)
    # every (reason, depth) OpenSSL prints, in its order; the first is path_error
    path_errors: tuple[tuple[str, int], ...] = ()
    # Deviations from the CA/Browser-Forum web-PKI profile that mail servers accept.
    profile_notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "certs": [c.to_dict() for c in self.certs],
            "leaf_valid_at_capture": self.leaf_valid_at_capture,
            "leaf_valid_today": self.leaf_valid_today,
            "trusted": self.trusted,
            "problem": self.problem,
            "detail": self.detail,
            "expected_name": self.expected_name,
            "name_matches": self.name_matches,
            "eku_ok": self.eku_ok,
            "weak_signatures": [list(w) for w in self.weak_signatures],
            "weak_keys": [list(w) for w in self.weak_keys],
            "path_valid": self.path_valid,
            "path_error": self.path_error,
            "path_error_depth": self.path_error_depth,
            "path_sha256": list(self.path_sha256),
            "path_errors": [list(e) for e in self.path_errors],
            "profile_notes": list(self.profile_notes),
        }
