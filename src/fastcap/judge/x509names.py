"""Names as OpenSSL compares, matches and constrains them.

Chain building matches an issuer by name, and OpenSSL compares names in a canonical form
(ASCII case and runs of spaces do not count), so ``x509.Name`` equality is too strict.  A CA's
nameConstraints then bound the names below it: the subject, its email attributes, the SAN
entries (an SmtpUTF8Mailbox as an email, RFC 8398) and, for a leaf without a DNS SAN, a
host-like common name (OpenSSL's check_name_constraints with default host flags).

A certificate's names answer to a name looked for in two ways: as a host name (OpenSSL's
X509_check_host, `host_matches`: the sender checking the server's certificate) and as Exchange
Online's inbound connector TlsSenderCertificateName (`sender_name_fits`: the receiver checking
the client's).
"""

from __future__ import annotations

import ipaddress
import re
import string
from collections.abc import Iterable, Sequence
from typing import Any

from cryptography import x509

from . import x509lenient
from .x509lenient import Subtree

__all__ = ["REASONS", "canon_name", "check_name_constraints", "host_matches",
           "sender_name_fits"]


_SPACE = " \t\n\v\f\r"  # ossl_isspace
_SPACES = re.compile(f"[{_SPACE}]+")


# String types OpenSSL canonicalises (ASN1_MASK_CANON): UTF8, Printable, T61, IA5,
# Universal, BMP and Visible.  Others (NumericString...) compare as typed and written.
_CANON_TYPES = frozenset({12, 19, 20, 22, 26, 28, 30})


def _canon_value(attr: x509.NameAttribute) -> object:
    value = attr.value
    if isinstance(value, bytes):
        return ("raw", value)
    tag = getattr(getattr(attr, "_type", None), "value", None)
    if tag is not None and tag not in _CANON_TYPES:
        return ("raw", tag, value)
    # OpenSSL's canonical form: ASCII lower case, ASCII white space trimmed and runs made one
    # space (str.split would also take U+00A0 or U+001C for space, which OpenSSL does not).
    text = "".join(c.lower() if c.isascii() else c for c in value)
    return ("str", _SPACES.sub(" ", text.strip(_SPACE)))


def canon_name(name: x509.Name) -> tuple | None:
    """Comparable key of a name, equal where OpenSSL's X509_NAME_cmp says equal; None when
    the name does not decode."""
    try:
        return tuple(
            tuple(sorted((a.oid.dotted_string, repr(_canon_value(a))) for a in rdn))
            for rdn in name.rdns
        )
    except Exception:
        return None


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_LDH = frozenset(string.ascii_letters + string.digits + "-")


def host_matches(pattern: str, reference: str) -> bool:
    """Whether the certificate name ``pattern`` (a SAN dNSName, or a CN) answers to the host
    ``reference``, as OpenSSL's X509_check_host with X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS
    (Postfix's flags) decides: equal but for ASCII case; or ``*`` as the whole left-most label
    of a valid name of three labels at least, standing for one non-empty label of letters,
    digits and hyphens.  ``pattern`` is taken as written (a trailing dot or space in the
    certificate does not match); ``reference``, a name typed or asked for, is trimmed of white
    space and trailing dots."""
    ref = reference.strip().rstrip(".")
    if not ref:
        return False
    star = None if ref.startswith(".") else _valid_star(pattern)
    if star is None:
        return _equal_nocase(pattern, ref)
    suffix = pattern[star + 1:]  # a full-label star is the first character
    wild = ref[: len(ref) - len(suffix)]
    if len(ref) <= len(suffix) or not _equal_nocase(suffix, ref[len(wild):]):
        return False
    return wild == "*" or all(c in _LDH for c in wild)


def sender_name_fits(cert_names: Iterable[str], wanted: str) -> bool:
    """Whether a client certificate carrying ``cert_names`` (its SAN DNS names and its subject
    CNs, taken together) fits ``wanted``, an Exchange Online inbound connector's
    TlsSenderCertificateName, as Microsoft documents that setting: the certificate's CN or a
    SAN holds the domain (the CN counts beside DNS SANs, unlike in a host name check), and
    ``*.contoso.com`` stands for contoso.com and every name below it.  A name fits when it
    equals ``wanted`` but for ASCII case, or is a wildcard name `host_matches` takes for it.
    The certificate's names are taken as written; ``wanted`` is trimmed of spaces and a
    trailing dot."""
    want = wanted.strip().rstrip(".")
    if not want:
        return False
    lower = want.translate(_ASCII_LOWER)
    domain = lower[2:] if lower.startswith("*.") else None
    for name in cert_names:
        if host_matches(name, want):
            return True
        if domain and "\0" not in name and not name.startswith("."):
            low = name.translate(_ASCII_LOWER)
            if low == domain or low.endswith("." + domain):
                return True
    return False


def _equal_nocase(pattern: str, name: str) -> bool:
    return "\0" not in pattern and pattern.translate(_ASCII_LOWER) == name.translate(_ASCII_LOWER)


def _valid_star(pattern: str) -> int | None:
    """Index of the wildcard OpenSSL's valid_star accepts in ``pattern``, without partial
    wildcards; None when there is none (the pattern is then compared literally)."""
    star = None
    start, hyphen, idna, dots = True, False, False, 0
    for i, c in enumerate(pattern):
        if c == "*":
            at_end = i == len(pattern) - 1 or pattern[i + 1] == "."
            if star is not None or idna or dots or not (start and at_end):
                return None
            star, start = i, False
        elif c.isascii() and c.isalnum():
            if start and pattern[i:i + 4].lower() == "xn--":
                idna = True
            start = hyphen = False
        elif c == ".":
            if start or hyphen:
                return None
            start, hyphen, idna = True, False, False
            dots += 1
        elif c == "-":
            if start:
                return None
            hyphen = True
        else:
            return None
    if start or hyphen or dots < 2:
        return None
    return star


PERMITTED_VIOLATION = 47
EXCLUDED_VIOLATION = 48
SUBTREE_MINMAX = 49
UNSUPPORTED_CONSTRAINT_TYPE = 51
UNSUPPORTED_NAME_SYNTAX = 53
REASONS = {
    PERMITTED_VIOLATION: "permitted subtree violation",
    EXCLUDED_VIOLATION: "excluded subtree violation",
    SUBTREE_MINMAX: "name constraints minimum and maximum not supported",
    UNSUPPORTED_CONSTRAINT_TYPE: "unsupported name constraint type",
    UNSUPPORTED_NAME_SYNTAX: "unsupported or invalid name syntax",
}
# Names x constraints per pair of certificates: some 256 SANs under 256 subtrees, about 35 ms
# of matching at most, so that a capture of hostile certificates cannot cost a scan minutes.
# OpenSSL allows 1 << 20 (NAME_CHECK_MAX); real chains stay far below either.
_MAX_NAME_CHECKS = 1 << 16
_EMAIL_OID = "1.2.840.113549.1.9.1"
_IA5STRING = 22  # the only string type OpenSSL reads a subject emailAddress as
_SMTP_UTF8_MAILBOX = "1.3.6.1.5.5.7.8.9"  # RFC 8398: held to rfc822Name constraints
_EAI = "smtp-utf8-mailbox"


def check_name_constraints(
    chain: Sequence[x509.Certificate], self_issued: Sequence[bool],
    subtrees: Sequence[tuple[tuple[Subtree, ...], tuple[Subtree, ...]] | None] | None = None,
) -> tuple[int, int, str] | None:
    """First violation as (code, depth, note), or None.  ``chain`` is leaf first; a
    self-issued CA is not held to the constraints (RFC 5280 6.1.3 (b)).  ``subtrees`` tells,
    per certificate, what ``cryptography`` drops of its permitted and excluded subtrees
    (`x509lenient.subtrees`): which have neither a minimum nor a maximum (a subtree with one
    is an error when a name of its type meets it), and the octets of each iPAddress base."""
    constraints = [(j, _ext_value(c, x509.NameConstraints)) for j, c in enumerate(chain)]
    constraints = [(j, nc) for j, nc in constraints if nc is not None]
    if not constraints:
        return None
    for i in range(len(chain) - 1, -1, -1):
        if i != 0 and self_issued[i]:
            continue
        above = [(j, nc) for j, nc in reversed(constraints) if j > i]
        if not above:
            continue
        names = _constrained_names(chain[i], leaf=i == 0)
        if names is None:
            return UNSUPPORTED_NAME_SYNTAX, i, "a name the constraints cannot read"
        for j, nc in above:
            permitted = list(nc.permitted_subtrees or ())
            excluded = list(nc.excluded_subtrees or ())
            ok = subtrees[j] if subtrees is not None else None
            if ok is None or (len(ok[0]), len(ok[1])) != (len(permitted), len(excluded)):
                ok = (_UNBOUNDED,) * len(permitted), (_UNBOUNDED,) * len(excluded)
            permitted = [_subtree(sub, raw) for sub, raw in zip(permitted, ok[0], strict=True)]
            excluded = [_subtree(sub, raw) for sub, raw in zip(excluded, ok[1], strict=True)]
            if len(names) * (len(permitted) + len(excluded)) > _MAX_NAME_CHECKS:
                return UNSUPPORTED_NAME_SYNTAX, i, "too many names and constraints"
            for kind, value in names:
                if kind == "email-syntax":  # refused whatever the constraints hold
                    return UNSUPPORTED_NAME_SYNTAX, i, (
                        f"subject emailAddress {value} is not an IA5String")
                if kind == "cn-syntax":
                    return UNSUPPORTED_NAME_SYNTAX, i, "the subject CN holds a NUL character"
                err = _nc_match(kind, value, permitted, excluded)
                if err is not None:
                    code, why = err
                    return code, i, f"{why} (constraint of {_subject_text(chain[j])})"
    return None


_UNBOUNDED = Subtree(True, None)


def _subtree(base: x509.GeneralName, raw: Subtree) -> tuple[str, object, bool]:
    """(kind, base, has neither minimum nor maximum) of a subtree; an iPAddress base as its
    octets as sent (OpenSSL's nc_ip reads them as they are)."""
    kind, value = _kind(base)
    if kind == "ip" and raw.ip is not None:
        value = raw.ip
    if raw.form is not None:  # held as a stand-in: its form is what OpenSSL weighs
        kind, value = raw.form, None
    return kind, value, raw.unbounded


def _ext_value(cert: x509.Certificate, cls: type) -> Any:
    try:
        return x509lenient.extensions(cert)[0].get_extension_for_class(cls).value
    except Exception:
        return None


def _constrained_names(
    cert: x509.Certificate, *, leaf: bool
) -> list[tuple[str, object]] | None:
    """(kind, value) pairs OpenSSL holds against name constraints: the subject, its email
    attributes, the SAN entries and, for a leaf without DNS SAN, a hostname-like CN.  An
    email attribute of another string type than IA5String is kind ``email-syntax``: OpenSSL
    refuses it under any name constraints."""
    out: list[tuple[str, object]] = []
    try:
        subject = cert.subject
        if len(subject.rdns):
            out.append(("dir", subject))
            for attr in subject:
                if attr.oid.dotted_string == _EMAIL_OID:
                    ia5 = getattr(getattr(attr, "_type", None), "value", None) == _IA5STRING
                    out.append(("email" if ia5 else "email-syntax", attr.value))
        san = _ext_value(cert, x509.SubjectAlternativeName)
        general = list(san) if san is not None else []
        held = iter(general)
        for tag, content, why in x509lenient.san_entries(cert) or [(0, b"", None)] * len(general):
            if why is None:  # none left when the copy could not read the SAN either
                out += [_kind(gn)] if (gn := next(held, None)) is not None else []
            elif tag == 0x87:  # an iPAddress of neither 4 nor 16 octets, as OpenSSL reads it
                out.append(("ip", content))
            elif tag in (0xA3, 0xA5):  # meets the subtrees of its form only
                out.append(("x400Address" if tag == 0xA3 else "ediPartyName", None))
            # a non-ASCII string meets no subtree cryptography holds
        if leaf and not any(isinstance(gn, x509.DNSName) for gn in general):
            for attr in subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME):
                host = attr.value if isinstance(attr.value, str) else ""
                if "\0" in host.rstrip("\0"):  # cn2dnsid refuses an embedded NUL
                    out.append(("cn-syntax", host))
                elif _looks_like_hostname(host):
                    out.append(("cn", host))
    except Exception:
        return None
    return out


def _kind(gn: x509.GeneralName) -> tuple[str, object]:
    if isinstance(gn, x509.DNSName):
        return "dns", gn.value
    if isinstance(gn, x509.IPAddress):
        return "ip", gn.value
    if isinstance(gn, x509.DirectoryName):
        return "dir", gn.value
    if isinstance(gn, x509.RFC822Name):
        return "email", gn.value
    if isinstance(gn, x509.UniformResourceIdentifier):
        return "uri", gn.value
    if isinstance(gn, x509.OtherName):
        if gn.type_id.dotted_string == _SMTP_UTF8_MAILBOX:
            return _EAI, _utf8_string(gn.value)
        return "other:" + gn.type_id.dotted_string, gn.value
    return type(gn).__name__, None


def _looks_like_hostname(cn: str) -> bool:
    """OpenSSL's cn2dnsid: letters, digits, '_', internal '-' and '.', two labels or more."""
    cn = cn.rstrip("\0")
    dotted = False
    for i, c in enumerate(cn):
        if c.isascii() and (c.isalnum() or c == "_"):
            continue
        if 0 < i < len(cn) - 1:
            if c == "-":
                continue
            if c == "." and cn[i + 1] not in ".-" and cn[i - 1] != "-":
                dotted = True
                continue
        return False
    return dotted


def _nc_match(
    kind: str, value: object, permitted: list, excluded: list
) -> tuple[int, str] | None:
    """OpenSSL's nc_match: a name is held to the subtrees of its own type (a CN to the DNS
    ones, an SmtpUTF8Mailbox to the email ones); once one permitted subtree matched, the
    others are not looked at."""
    kind = "dns" if kind == "cn" else kind
    want = "email" if kind == _EAI else kind
    label = "email" if kind == _EAI else kind
    tried = matched = False
    for sub_kind, base, bounds_ok in permitted:
        if sub_kind != want:
            continue
        if not bounds_ok:
            return SUBTREE_MINMAX, f"a {label} subtree ({base}) has a minimum or maximum"
        tried = True
        if matched:
            continue
        got = _match_one(kind, value, base)
        if isinstance(got, tuple):
            return got
        matched = got
    if tried and not matched:
        return PERMITTED_VIOLATION, f"{label} name {value} is outside the permitted subtrees"
    for sub_kind, base, bounds_ok in excluded:
        if sub_kind != want:
            continue
        if not bounds_ok:
            return SUBTREE_MINMAX, f"a {label} subtree ({base}) has a minimum or maximum"
        got = _match_one(kind, value, base)
        if isinstance(got, tuple):
            return got
        if got:
            return EXCLUDED_VIOLATION, f"{label} name {value} is in an excluded subtree"
    return None


def _match_one(kind: str, name: object, base: object) -> bool | tuple[int, str]:
    if kind == "dir":
        want, have = canon_name(base), canon_name(name)
        return want is not None and have is not None and have[: len(want)] == want
    if kind == "dns":
        return _dns_within(str(name), str(base))
    if kind == "ip":
        return _ip_within(_octets(name), _octets(base))
    if kind == "email":
        return _email_within(str(name), str(base))
    if kind == _EAI:
        return _eai_within(str(name), str(base))
    if kind == "uri":
        host = _uri_host(str(name))
        if host is None:
            return UNSUPPORTED_NAME_SYNTAX, f"URI {name} has no host"
        base = str(base)
        if base.startswith("."):
            return len(host) > len(base) and host[-len(base):].lower() == base.lower()
        return host.lower() == base.lower()
    return UNSUPPORTED_CONSTRAINT_TYPE, f"{kind} constraints are not supported"


def _octets(ip: object) -> bytes:
    """An IP address, or a base as address and mask, as the octets OpenSSL compares."""
    if isinstance(ip, bytes):
        return ip
    if isinstance(ip, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return ip.network_address.packed + ip.netmask.packed
    return ip.packed  # type: ignore[attr-defined]


def _ip_within(host: bytes, base: bytes) -> bool | tuple[int, str]:
    """OpenSSL's nc_ip: an address of 4 or 16 octets, a base of twice as many (address and
    mask), compared octet by octet under the mask."""
    if len(host) not in (4, 16):
        return UNSUPPORTED_NAME_SYNTAX, (
            f"SAN iPAddress {host.hex(':') or 'of 0 octets'} ({len(host)} octets, neither 4"
            " nor 16) meets an iPAddress constraint")
    if len(base) not in (8, 32):
        return UNSUPPORTED_NAME_SYNTAX, (
            f"ip name {ipaddress.ip_address(host)} meets an iPAddress constraint of"
            f" {len(base)} octets (neither 8 nor 32)")
    if len(base) != 2 * len(host):
        return False
    mask = base[len(host):]
    return all(h & m == b & m for h, b, m in zip(host, base, mask, strict=False))


def _dns_within(dns: str, base: str) -> bool:
    if not base:
        return True
    if len(dns) < len(base):
        return False
    tail = dns[len(dns) - len(base):]
    if len(dns) > len(base) and not base.startswith(".") and dns[len(dns) - len(base) - 1] != ".":
        return False
    return tail.lower() == base.lower()


def _email_within(email: str, base: str) -> bool | tuple[int, str]:
    """OpenSSL's nc_email: the last ``@`` of each splits local part from domain (a quoted
    local part may hold one); a local part in the constraint is matched with case."""
    at = email.rfind("@")
    if at < 0:
        return UNSUPPORTED_NAME_SYNTAX, f"email {email} has no @"
    base_at = base.rfind("@")
    if base_at < 0 and base.startswith("."):
        return len(email) > len(base) and email[-len(base):].lower() == base.lower()
    if base_at >= 0:
        if base_at > 0:
            if base_at != at:
                return False
            if "\0" in base[:base_at] or "\0" in email[:at]:
                return UNSUPPORTED_NAME_SYNTAX, "an email local part holds a NUL"
            if base[:base_at] != email[:at]:
                return False
        base = base[base_at + 1:]
    return email[at + 1:].lower() == base.lower()


def _utf8_string(der: bytes) -> str | None:
    """The text of a DER UTF8String; None for any other value (OpenSSL: invalid syntax)."""
    if len(der) < 2 or der[0] != 0x0C:
        return None
    size, at = der[1], 2
    if size & 0x80:
        n = size & 0x7F
        size, at = int.from_bytes(der[2:2 + n], "big"), 2 + n
    try:
        return der[at:at + size].decode("utf-8") if at + size == len(der) else None
    except UnicodeDecodeError:
        return None


def _eai_within(mailbox: str | None, base: str) -> bool | tuple[int, str]:
    """OpenSSL's nc_email_eai: the mailbox's domain, no case, against the constraint's domain
    with its A-labels turned to U-labels.  A local part in the constraint is not read."""
    if "\0" in base:
        return UNSUPPORTED_NAME_SYNTAX, "an email constraint holds a NUL"
    if mailbox is None or "@" not in mailbox:
        return UNSUPPORTED_NAME_SYNTAX, f"SmtpUTF8Mailbox {mailbox} is no UTF8String mailbox"
    try:
        ulabel = ".".join(
            label[4:].encode("ascii").decode("punycode") if label[:4].lower() == "xn--"
            else label for label in base.split("."))
    except (UnicodeError, ValueError):
        return UNSUPPORTED_NAME_SYNTAX, f"email constraint {base} is no valid domain"
    if base.startswith("."):
        # OpenSSL 3.0 puts a dot before the converted constraint, which keeps its own: only
        # a mailbox ending in "..domain" matches.
        ulabel = "." + ulabel
        return len(mailbox) > len(ulabel) and _equal_nocase(ulabel, mailbox[-len(ulabel):])
    return _equal_nocase(ulabel, mailbox[mailbox.rfind("@") + 1:])


def _uri_host(uri: str) -> str | None:
    """The host part as OpenSSL's nc_uri reads it: after ``scheme://``, up to the first ``:``
    anywhere after it (a port, or one in the path), else up to the first ``/``."""
    scheme, sep, rest = uri.partition(":")
    if not sep or not rest.startswith("//"):
        return None
    host = rest[2:]
    stop = ":" if ":" in host else "/"
    return host.split(stop, 1)[0] or None


def _subject_text(cert: x509.Certificate) -> str:
    try:
        return cert.subject.rfc4514_string() or "empty subject"
    except Exception:
        return "?"
