"""Handshake message bodies fastcap reads, as frozen values, and their wire parsers.

The hellos, Certificate, CertificateRequest and (TLS <= 1.2) NewSessionTicket are the messages
that decide whether a client certificate was asked for and presented; every other message stays
raw. Parsers take one message body (after its 4-byte header) and a ``problems`` list: a length
that runs past its container is a problem, never an exception. Unknown code points and
extensions are kept as numbers (:mod:`.const` names them).
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from typing import Any

from ...pickling import compact, maker
from .const import (
    DOWNGRADE_TLS11,
    DOWNGRADE_TLS12,
    HRR_RANDOM,
    CipherSuite,
    ClientCertificateType,
    ExtensionType,
    HandshakeType,
    SignatureScheme,
    is_grease,
    is_tls13,
    name_of,
    version_name,
)
from .dn import dn_to_text
from .ja import ja3_md5, ja3_string, ja4
from .wirenames import wire_text

MAX_CERTS = 100  # certificates kept from one Certificate message
MAX_CAS = 1024  # distinguished names kept from one CertificateRequest
# Handshake types as plain ints for the per-message dispatch (no enum attribute lookups)
_CLIENT_HELLO = int(HandshakeType.client_hello)
_SERVER_HELLO = int(HandshakeType.server_hello)
_CERTIFICATE = int(HandshakeType.certificate)
_CERTIFICATE_REQUEST = int(HandshakeType.certificate_request)
_NEW_SESSION_TICKET = int(HandshakeType.new_session_ticket)
_SERVER_KEY_EXCHANGE = int(HandshakeType.server_key_exchange)
_PARSED_TYPES = frozenset({_CLIENT_HELLO, _SERVER_HELLO, _CERTIFICATE, _CERTIFICATE_REQUEST,
                           _NEW_SESSION_TICKET, _SERVER_KEY_EXCHANGE})
_SESSION_TICKET_EXT = int(ExtensionType.session_ticket)
_PRE_SHARED_KEY_EXT = int(ExtensionType.pre_shared_key)


# --------------------------------------------------------------------------- parsed messages


@compact
@dataclass(frozen=True, slots=True)
class Extension:
    """One hello extension, kept raw so nothing unknown is lost."""

    type: int
    data: bytes

    @property
    def name(self) -> str:
        return name_of(ExtensionType, self.type)


@compact
@dataclass(frozen=True, slots=True)
class ClientHello:
    """ClientHello (RFC 8446 4.1.2), or an SSL 2.0-compatible one (RFC 5246 E.2, ``sslv2``)."""

    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_suites: tuple[int, ...]
    compression_methods: tuple[int, ...]
    extensions: tuple[Extension, ...]
    sni: str | None
    alpn: tuple[str, ...]
    supported_versions: tuple[int, ...]
    signature_algorithms: tuple[int, ...]
    supported_groups: tuple[int, ...]
    ec_point_formats: tuple[int, ...]
    ja3: str
    ja3_md5: str
    ja4: str
    ja4_r: str
    sslv2: bool = False

    @property
    def versions(self) -> tuple[int, ...]:
        """Versions offered: supported_versions without GREASE, else the legacy version."""
        offered = tuple(v for v in self.supported_versions if not is_grease(v))
        return offered or (self.legacy_version,)

    @property
    def version_names(self) -> list[str]:
        return [version_name(v) for v in self.versions]

    @property
    def cipher_names(self) -> list[str]:
        return [name_of(CipherSuite, c) for c in self.cipher_suites]


@compact
@dataclass(frozen=True, slots=True)
class ServerHello:
    """ServerHello; ``version`` is the negotiated one (supported_versions wins, RFC 8446)."""

    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_suite: int
    compression_method: int
    extensions: tuple[Extension, ...]
    version: int
    hello_retry_request: bool
    alpn: str | None = None
    group: int | None = None  # key_share's group (TLS 1.3)
    # "TLS1.2"/"TLS1.1" when the random ends in RFC 8446's downgrade sentinel: normal if the
    # client did not offer TLS 1.3, an attack (or a broken middlebox) if it did
    downgrade: str | None = None

    @property
    def version_name(self) -> str:
        return version_name(self.version)

    @property
    def cipher_name(self) -> str:
        return name_of(CipherSuite, self.cipher_suite)


_make_client_hello = maker(ClientHello)
_make_server_hello = maker(ServerHello)


@compact
@dataclass(frozen=True, slots=True)
class Certificate:
    """Certificate message: DER certificates in wire order (leaf first, by convention).

    ``certificates_length`` is the declared length of the list (0 = an empty message, which from
    a client means "I have no certificate to offer"). ``context`` and ``entry_extensions`` exist
    only in the TLS 1.3 form.
    """

    certificates: tuple[bytes, ...]
    certificates_length: int
    context: bytes | None = None
    entry_extensions: tuple[tuple[Extension, ...], ...] = ()


@compact
@dataclass(frozen=True, slots=True)
class CertificateRequest:
    """CertificateRequest: what the server will accept from the client.

    ``certificate_authorities`` are raw DER DistinguishedNames (RFC 5246 7.4.4); render them
    with :meth:`ca_names`. TLS 1.3's form (``context`` + extensions) fills the same fields from
    the signature_algorithms and certificate_authorities extensions.
    """

    certificate_types: tuple[int, ...]
    signature_algorithms: tuple[int, ...]
    certificate_authorities: tuple[bytes, ...]
    context: bytes | None = None
    extensions: tuple[Extension, ...] = ()

    def ca_names(self) -> list[str | None]:
        """Each CA name as RFC 4514 text, or None where the DER does not parse."""
        return [dn_to_text(dn) for dn in self.certificate_authorities]

    @property
    def certificate_type_names(self) -> list[str]:
        return [name_of(ClientCertificateType, t, 2) for t in self.certificate_types]

    @property
    def signature_algorithm_names(self) -> list[str]:
        return [name_of(SignatureScheme, s) for s in self.signature_algorithms]


@compact
@dataclass(frozen=True, slots=True)
class NewSessionTicket:
    """A NewSessionTicket: the ticket a later connection offers to resume this session.  TLS
    <= 1.2 sends it in plaintext before the server's ChangeCipherSpec (RFC 5077 3.3); TLS 1.3
    after the handshake, encrypted, so it is read only with keys (RFC 8446 4.6.1)."""

    lifetime_hint: int
    ticket: bytes


@compact
@dataclass(frozen=True, slots=True)
class ServerKeyExchange:
    """The start of a ServerKeyExchange read as ECDHE's ECParameters (RFC 8422 5.4): the
    named curve when its curve_type is named_curve (3), else None.  Whether the message is
    ECDHE's at all depends on the cipher suite, which the fold knows."""

    named_curve: int | None


ParsedBody = (ClientHello | ServerHello | Certificate | CertificateRequest | NewSessionTicket
              | ServerKeyExchange)


# --------------------------------------------------------------------------- byte reader


class _Malformed(Exception):
    """Internal: a length field ran past its container. Never leaves this module."""


class _Reader:
    """Bounds-checked big-endian reader: every length is checked before slicing."""

    __slots__ = ("_b", "_p")

    def __init__(self, b: bytes) -> None:
        self._b = b
        self._p = 0

    def left(self) -> int:
        return len(self._b) - self._p

    def take(self, n: int, what: str) -> bytes:
        if n > len(self._b) - self._p:
            raise _Malformed(f"{what}: needs {n} bytes, {len(self._b) - self._p} left")
        out = self._b[self._p : self._p + n]
        self._p += n
        return out

    def uint(self, size: int, what: str) -> int:
        return int.from_bytes(self.take(size, what), "big")

    def vec(self, size: int, what: str) -> bytes:
        """A TLS vector ``<0..2^(8*size)-1>``: length prefix, then that many bytes."""
        return self.take(self.uint(size, what), what)

    def rest(self) -> bytes:
        out = self._b[self._p :]
        self._p = len(self._b)
        return out


def _u16s(raw: bytes, what: str) -> tuple[int, ...]:
    if len(raw) % 2:
        raise _Malformed(f"{what}: odd length {len(raw)}")
    return struct.unpack(f">{len(raw) // 2}H", raw)


Problems = list[tuple[str, str]]


def _extensions(block: bytes, where: str, problems: Problems) -> tuple[Extension, ...]:
    """An extension list; a broken entry ends it, keeping what came before."""
    # Inlined (not _Reader) and the extension's name looked up only for the error message:
    # this runs for every hello, and name_of per extension was a visible share of the cost.
    # The messages are exactly what _Reader.uint/vec would say.
    out: list[Extension] = []
    p, n = 0, len(block)
    while p < n:
        if n - p < 2:
            problems.append(
                (f"tls.{where}.bad_extension_list", f"extension type: needs 2 bytes, {n - p} left")
            )
            break
        etype = (block[p] << 8) | block[p + 1]
        p += 2
        if n - p < 2:
            what = f"extension {name_of(ExtensionType, etype)}"
            problems.append(
                (f"tls.{where}.bad_extension_list", f"{what}: needs 2 bytes, {n - p} left")
            )
            break
        elen = (block[p] << 8) | block[p + 1]
        p += 2
        if n - p < elen:
            what = f"extension {name_of(ExtensionType, etype)}"
            problems.append(
                (f"tls.{where}.bad_extension_list", f"{what}: needs {elen} bytes, {n - p} left")
            )
            break
        out.append(Extension(etype, bytes(block[p : p + elen])))
        p += elen
    return tuple(out)


# --------------------------------------------------------------------------- message parsers


def _sni(data: bytes) -> str | None:
    r = _Reader(data)
    names = _Reader(r.vec(2, "server_name_list"))
    if r.left():
        raise _Malformed("server_name: trailing bytes")
    host = None
    while names.left():
        kind = names.uint(1, "name_type")
        name = names.vec(2, "host_name")
        if kind == 0 and host is None:
            host = wire_text(name)
    return host


def _alpn(data: bytes) -> list[bytes]:
    r = _Reader(data)
    names = _Reader(r.vec(2, "protocol_name_list"))
    if r.left():
        raise _Malformed("alpn: trailing bytes")
    out = []
    while names.left():
        out.append(names.vec(1, "protocol_name"))
    return out


def _vec_exact(data: bytes, size: int, what: str) -> bytes:
    r = _Reader(data)
    out = r.vec(size, what)
    if r.left():
        raise _Malformed(f"{what}: trailing bytes")
    return out


def _client_hello_tail(
    legacy_version: int,
    suites: tuple[int, ...],
    compression: tuple[int, ...],
    exts: tuple[Extension, ...],
    problems: Problems,
    sslv2: bool = False,
) -> tuple[Any, ...]:
    """Every ClientHello field after ``session_id``, in declaration order (with the
    fingerprints), so callers can build the hello positionally around their own random and
    session id."""
    sni: str | None = None
    has_sni = False
    alpn: list[bytes] = []
    versions: tuple[int, ...] = ()
    sigalgs: tuple[int, ...] = ()
    groups: tuple[int, ...] = ()
    formats: tuple[int, ...] = ()
    seen: set[int] = set()
    for ext in exts:
        if ext.type in seen:
            problems.append(("tls.client_hello.duplicate_extension", ext.name))
            continue
        seen.add(ext.type)
        try:
            if ext.type == ExtensionType.server_name:
                has_sni = True
                sni = _sni(ext.data)
            elif ext.type == ExtensionType.application_layer_protocol_negotiation:
                alpn = _alpn(ext.data)
            elif ext.type == ExtensionType.supported_versions:
                versions = _u16s(_vec_exact(ext.data, 1, "supported_versions"), "versions")
            elif ext.type == ExtensionType.signature_algorithms:
                sigalgs = _u16s(_vec_exact(ext.data, 2, "signature_algorithms"), "sigalgs")
            elif ext.type == ExtensionType.supported_groups:
                groups = _u16s(_vec_exact(ext.data, 2, "supported_groups"), "groups")
            elif ext.type == ExtensionType.ec_point_formats:
                formats = tuple(_vec_exact(ext.data, 1, "ec_point_formats"))
        except _Malformed as exc:
            problems.append(("tls.client_hello.bad_extension", f"{ext.name}: {exc}"))
    ext_types = [e.type for e in exts]
    j3 = ja3_string(legacy_version, suites, ext_types, groups, formats)
    j4, j4r = ja4(
        legacy_version=legacy_version,
        supported_versions=versions,
        has_sni=has_sni,
        cipher_suites=suites,
        extensions=ext_types,
        signature_algorithms=sigalgs,
        first_alpn=alpn[0] if alpn else None,
    )
    return (
        suites,
        compression,
        exts,
        sni,
        tuple(wire_text(a) for a in alpn),
        versions,
        sigalgs,
        groups,
        formats,
        j3,
        ja3_md5(j3),
        j4,
        j4r,
        sslv2,
    )


def _client_hello(
    legacy_version: int,
    random: bytes,
    session_id: bytes,
    suites: tuple[int, ...],
    compression: tuple[int, ...],
    exts: tuple[Extension, ...],
    problems: Problems,
    sslv2: bool = False,
) -> ClientHello:
    tail = _client_hello_tail(legacy_version, suites, compression, exts, problems, sslv2)
    return ClientHello(legacy_version, random, session_id, *tail)


_NO_PROBLEMS: tuple[tuple[str, str], ...] = ()
# Messages larger than this are parsed without memoising: real hellos and chains are a few
# KiB, and a hostile capture must not pin hundreds of 1 MiB messages in the caches.
_MEMO_MAX = 64 * 1024


def _memoised(cached, data: bytes, *args):
    """Call an lru_cache'd parser, bypassing the cache for messages too big to keep pinned."""
    return (cached if len(data) <= _MEMO_MAX else cached.__wrapped__)(*args)


@functools.lru_cache(maxsize=256)
def _client_hello_rest(
    legacy_version: int, rest: bytes
) -> tuple[tuple[Any, ...] | None, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """(fields after session_id or None if malformed, problems before the session-id check,
    problems after it) for the ClientHello bytes following ``legacy_session_id``.

    Memoised because one sending MTA repeats the same hello in every session apart from its
    random and session id (which are not part of ``rest``): extension parsing and the JA3/JA4
    hashes were most of the per-session TLS cost. Everything cached is immutable.
    """
    r = _Reader(rest)
    try:
        suites = _u16s(r.vec(2, "cipher_suites"), "cipher_suites")
        compression = tuple(r.vec(1, "compression_methods"))
        ext_block = r.vec(2, "extensions") if r.left() else b""
    except _Malformed as exc:
        return None, (("tls.client_hello.malformed", str(exc)),), _NO_PROBLEMS
    pre: Problems = []
    if r.left():
        pre.append(("tls.client_hello.trailing_bytes", f"{r.left()} bytes after extensions"))
    post: Problems = []
    exts = _extensions(ext_block, "client_hello", post)
    tail = _client_hello_tail(legacy_version, suites, compression, exts, post)
    return tail, tuple(pre), tuple(post)


def _hello_head(body: bytes, kind: str, problems: Problems
                ) -> tuple[int, bytes, bytes, bytes] | None:
    """(legacy_version, random, session_id, rest) common to both hellos; None if cut."""
    if len(body) >= 35 and len(body) >= 35 + body[34]:  # the usual, well-formed case
        sid_end = 35 + body[34]
        return (body[0] << 8) | body[1], body[2:34], body[35:sid_end], bytes(body[sid_end:])
    r = _Reader(body)
    try:
        legacy_version = r.uint(2, "legacy_version")
        random = r.take(32, "random")
        session_id = r.vec(1, "legacy_session_id")
    except _Malformed as exc:
        problems.append((f"tls.{kind}.malformed", str(exc)))
        return None
    return legacy_version, random, session_id, bytes(r.rest())


def parse_client_hello(body: bytes, problems: Problems) -> ClientHello | None:
    """ClientHello body (after the 4-byte handshake header); None if malformed."""
    head = _hello_head(body, "client_hello", problems)
    if head is None:
        return None
    legacy_version, random, session_id, rest = head
    tail, pre, post = _memoised(_client_hello_rest, rest, legacy_version, rest)
    problems.extend(pre)
    if tail is None:
        return None
    if len(session_id) > 32:
        problems.append(("tls.client_hello.long_session_id", f"{len(session_id)} bytes"))
    problems.extend(post)
    return _make_client_hello(legacy_version, random, session_id, *tail)


def parse_sslv2_client_hello(body: bytes, problems: Problems) -> ClientHello | None:
    """SSL 2.0-compatible CLIENT-HELLO (RFC 5246 E.2), ``body`` starting at msg_type.

    Only cipher specs whose first byte is 0 are TLS cipher suites; the others are SSL 2.0
    kinds and are dropped. The challenge, right-aligned and zero-padded, is the random.
    """
    r = _Reader(body)
    try:
        r.uint(1, "msg_type")
        version = r.uint(2, "version")
        specs_len = r.uint(2, "cipher_spec_length")
        sid_len = r.uint(2, "session_id_length")
        challenge_len = r.uint(2, "challenge_length")
        specs = r.take(specs_len, "cipher_specs")
        session_id = r.take(sid_len, "session_id")
        challenge = r.take(challenge_len, "challenge")
    except _Malformed as exc:
        problems.append(("tls.sslv2.malformed", str(exc)))
        return None
    if specs_len % 3:
        problems.append(
            ("tls.sslv2.malformed", f"cipher_spec_length {specs_len} not a multiple of 3")
        )
    if r.left():
        problems.append(("tls.sslv2.trailing_bytes", f"{r.left()} bytes after the challenge"))
    if not 16 <= challenge_len <= 32:
        problems.append(("tls.sslv2.challenge_length", f"{challenge_len} bytes (16..32 allowed)"))
    suites = tuple(
        (specs[i + 1] << 8) | specs[i + 2] for i in range(0, len(specs) - 2, 3) if specs[i] == 0
    )
    random = challenge[-32:].rjust(32, b"\x00")
    return _client_hello(version, random, session_id, suites, (0,), (), problems, sslv2=True)


def parse_server_hello(body: bytes, problems: Problems) -> ServerHello | None:
    head = _hello_head(body, "server_hello", problems)
    if head is None:
        return None
    legacy_version, random, session_id, rest = head
    tail, found = _memoised(_server_hello_rest, rest, legacy_version, rest)
    problems.extend(found)
    if tail is None:
        return None
    suite, compression, exts, version, alpn, group = tail
    downgrade = None
    if random[-8:] == DOWNGRADE_TLS12:
        downgrade = "TLS1.2"
    elif random[-8:] == DOWNGRADE_TLS11:
        downgrade = "TLS1.1"
    return _make_server_hello(  # positional, in declaration order
        legacy_version,
        random,
        session_id,
        suite,
        compression,
        exts,
        version,
        random == HRR_RANDOM,  # hello_retry_request
        alpn,
        group,
        downgrade,
    )


@functools.lru_cache(maxsize=256)
def _server_hello_rest(
    legacy_version: int, rest: bytes
) -> tuple[tuple[Any, ...] | None, tuple[tuple[str, str], ...]]:
    """(cipher_suite, compression, extensions, version, alpn, group) or None if malformed,
    with the problems found, for the ServerHello bytes after ``legacy_session_id``.

    Memoised for the same reason as ClientHellos: one server answers every session alike, and
    only its random and session id (not part of ``rest``) change. The result is immutable.
    """
    problems: Problems = []
    r = _Reader(rest)
    try:
        suite = r.uint(2, "cipher_suite")
        compression = r.uint(1, "compression_method")
        ext_block = r.vec(2, "extensions") if r.left() else b""
    except _Malformed as exc:
        return None, (("tls.server_hello.malformed", str(exc)),)
    if r.left():
        problems.append(("tls.server_hello.trailing_bytes", f"{r.left()} bytes after extensions"))
    exts = _extensions(ext_block, "server_hello", problems)
    version, alpn, group = legacy_version, None, None
    for ext in exts:
        try:
            if ext.type == ExtensionType.supported_versions:
                if len(ext.data) != 2:
                    raise _Malformed(f"selected_version: {len(ext.data)} bytes, expected 2")
                version = int.from_bytes(ext.data, "big")
            elif ext.type == ExtensionType.application_layer_protocol_negotiation:
                names = _alpn(ext.data)
                alpn = wire_text(names[0]) if names else None
            elif ext.type == ExtensionType.key_share:
                group = _Reader(ext.data).uint(2, "key_share group")
        except _Malformed as exc:
            problems.append(("tls.server_hello.bad_extension", f"{ext.name}: {exc}"))
    return (suite, compression, exts, version, alpn, group), tuple(problems)


def _cert_list(raw: bytes, tls13: bool, problems: Problems) -> Certificate:
    """The certificate_list of either form (already length-checked as a whole)."""
    r = _Reader(raw)
    certs: list[bytes] = []
    entry_exts: list[tuple[Extension, ...]] = []
    while r.left():
        der = r.vec(3, "certificate")
        if len(certs) >= MAX_CERTS:
            problems.append(("tls.certificate.too_many", f"more than {MAX_CERTS} certificates"))
            break
        if not der:
            problems.append(("tls.certificate.empty_entry", f"entry {len(certs)} is empty"))
        certs.append(der)
        if tls13:
            entry_exts.append(
                _extensions(r.vec(2, "certificate extensions"), "certificate", problems)
            )
    return Certificate(tuple(certs), len(raw), None, tuple(entry_exts))


def parse_new_session_ticket(body: bytes, version: int | None, problems: Problems
                             ) -> NewSessionTicket | None:
    """The form the negotiated version gives: TLS 1.3 adds an age, a nonce and extensions
    around the ticket (a TLS 1.3 one is met decrypted, its records read with keys)."""
    try:
        r = _Reader(bytes(body))
        hint = r.uint(4, "ticket_lifetime_hint")
        if is_tls13(version):
            r.uint(4, "ticket_age_add")
            r.vec(1, "ticket_nonce")
        ticket = r.vec(2, "ticket")
        if is_tls13(version):
            r.vec(2, "extensions")
        if r.left():
            raise _Malformed(f"{r.left()} bytes after the ticket")
    except _Malformed as exc:
        problems.append(("tls.new_session_ticket.malformed", str(exc)))
        return None
    return NewSessionTicket(hint, ticket)


def parse_server_key_exchange(body: bytes) -> ServerKeyExchange:
    """A ServerKeyExchange's named curve, if it starts as ECDHE's does."""
    named = len(body) >= 3 and body[0] == 3
    return ServerKeyExchange((body[1] << 8) | body[2] if named else None)


def parse_certificate(body: bytes, version: int | None, problems: Problems) -> Certificate | None:
    """Certificate in the TLS <= 1.2 form or the TLS 1.3 form (context + per-entry extensions);
    the negotiated version picks the form, the other is tried if the lengths disagree."""
    body = bytes(body)
    cert, found = _memoised(_parse_certificate_cached, body, body, version)
    problems.extend(found)
    return cert


@functools.lru_cache(maxsize=128)
def _parse_certificate_cached(
    body: bytes, version: int | None
) -> tuple[Certificate | None, tuple[tuple[str, str], ...]]:
    """Memoised: a capture repeats the same chain in session after session. The result is
    immutable (tuples of bytes), so sharing it is safe."""
    problems: Problems = []
    return _parse_certificate(body, version, problems), tuple(problems)


def _parse_certificate(body: bytes, version: int | None, problems: Problems) -> Certificate | None:
    forms = (True, False) if is_tls13(version) else (False, True)
    errors = []
    for tls13 in forms:
        r = _Reader(body)
        try:
            context = r.vec(1, "certificate_request_context") if tls13 else None
            raw = r.vec(3, "certificate_list")
            if r.left():
                raise _Malformed(f"{r.left()} bytes after certificate_list")
            found: Problems = []
            cert = _cert_list(raw, tls13, found)
        except _Malformed as exc:
            errors.append(f"{'1.3' if tls13 else '1.2'} form: {exc}")
            continue
        problems.extend(found)
        if tls13 != forms[0] and version is not None:
            problems.append(
                (
                    "tls.certificate.unexpected_form",
                    f"TLS {'1.3' if tls13 else '<= 1.2'} form under {version_name(version)}",
                )
            )
        if tls13:
            cert = Certificate(
                cert.certificates, cert.certificates_length, context, cert.entry_extensions
            )
        return cert
    problems.append(("tls.certificate.malformed", "; ".join(errors)))
    return None


def _dn_list(raw: bytes, problems: Problems) -> tuple[bytes, ...]:
    r = _Reader(raw)
    out: list[bytes] = []
    while r.left():
        dn = r.vec(2, "distinguished name")
        if len(out) >= MAX_CAS:
            problems.append(("tls.certificate_request.too_many_cas", f"more than {MAX_CAS}"))
            break
        out.append(dn)
    return tuple(out)


def _cert_request_form(body: bytes, form: str, problems: Problems) -> CertificateRequest:
    r = _Reader(body)
    if form == "1.3":
        context = r.vec(1, "certificate_request_context")
        exts = _extensions(r.vec(2, "extensions"), "certificate_request", problems)
        if r.left():
            raise _Malformed(f"{r.left()} trailing bytes")
        sigalgs: tuple[int, ...] = ()
        cas: tuple[bytes, ...] = ()
        for ext in exts:
            if ext.type == ExtensionType.signature_algorithms and not sigalgs:
                sigalgs = _u16s(_vec_exact(ext.data, 2, "signature_algorithms"), "sigalgs")
            elif ext.type == ExtensionType.certificate_authorities and not cas:
                cas = _dn_list(_vec_exact(ext.data, 2, "certificate_authorities"), problems)
        return CertificateRequest((), sigalgs, cas, context, exts)
    types = tuple(r.vec(1, "certificate_types"))
    sig_raw = r.vec(2, "supported_signature_algorithms") if form == "1.2" else b""
    cas = _dn_list(r.vec(2, "certificate_authorities"), problems)
    if r.left():
        raise _Malformed(f"{r.left()} trailing bytes")
    return CertificateRequest(types, _u16s(sig_raw, "signature algorithms"), cas)


def parse_certificate_request(
    body: bytes, version: int | None, problems: Problems
) -> CertificateRequest | None:
    """CertificateRequest: TLS 1.2 (types, signature algorithms, CAs), TLS 1.0/1.1 (no
    signature algorithms) or TLS 1.3 (context + extensions)."""
    body = bytes(body)
    req, found = _memoised(_parse_certificate_request_cached, body, body, version)
    problems.extend(found)
    return req


@functools.lru_cache(maxsize=128)
def _parse_certificate_request_cached(
    body: bytes, version: int | None
) -> tuple[CertificateRequest | None, tuple[tuple[str, str], ...]]:
    """Memoised like certificates: one server sends the same request (CA list) every time."""
    problems: Problems = []
    return _parse_certificate_request(body, version, problems), tuple(problems)


def _parse_certificate_request(
    body: bytes, version: int | None, problems: Problems
) -> CertificateRequest | None:
    if is_tls13(version):
        forms = ("1.3", "1.2", "1.1")
    elif version is not None and version < 0x0303:
        forms = ("1.1", "1.2", "1.3")
    else:
        forms = ("1.2", "1.1", "1.3")
    errors = []
    for form in forms:
        found: Problems = []
        try:
            req = _cert_request_form(body, form, found)
        except _Malformed as exc:
            errors.append(f"{form} form: {exc}")
            continue
        problems.extend(found)
        if form != forms[0] and version is not None:
            problems.append(
                (
                    "tls.certificate_request.unexpected_form",
                    f"TLS {form} form under {version_name(version)}",
                )
            )
        return req
    problems.append(("tls.certificate_request.malformed", "; ".join(errors)))
    return None
