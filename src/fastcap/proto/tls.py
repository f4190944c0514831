"""Sans-I/O TLS handshake parser for one TCP connection's two reassembled byte streams.

fastcap has to tell a mail admin whether the sending MTA presented a client certificate, so the
parser keeps exactly the facts that decide it: versions, cipher, the server chain, the
CertificateRequest (and its CA names), the client ``Certificate`` message (absent, empty, or a
chain), alerts, and where encryption started. Everything else stays raw.

Layers, per direction (:class:`TlsStream`): bytes -> records (header checked before any body is
read, length capped) -> handshake messages (defragmented across records under a 1 MiB cap) ->
events carrying the stream offset of their first byte, which the caller maps to a frame number.
Once a direction is encrypted (after its ChangeCipherSpec in TLS <= 1.2, all type-23 records,
everything after a TLS 1.3 ServerHello) only record types and sizes are kept.

Both directions are folded into one :class:`TlsHandshake` by :func:`parse_handshake` (whole
streams) or :class:`TlsConnection` (incremental). Oddities become anomalies with stable dotted
codes; nothing here raises on any input (an exception escaping is a bug).

``history`` follows Zeek's ``ssl_history``: one letter per message, uppercase = client:
c client_hello, s server_hello, j hello_retry_request, t new_session_ticket, o
encrypted_extensions, x certificate, k server_key_exchange, r certificate_request, n
server_hello_done, y certificate_verify, g client_key_exchange, f finished (for TLS <= 1.2 the
first encrypted handshake record after ChangeCipherSpec), u certificate_status, h hello_request,
e end_of_early_data, p key_update, m message_hash, v hello_verify_request, w certificate_url, a
supplemental_data, z other handshake type, i change_cipher_spec, l alert, b heartbeat, d first
application-data (encrypted) record of a direction.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from ..pickling import compact
from .ja import ja3_md5, ja3_string, ja4
from .tlsconst import (
    DOWNGRADE_TLS11,
    DOWNGRADE_TLS12,
    HRR_RANDOM,
    AlertDescription,
    AlertLevel,
    CipherSuite,
    ClientCertificateType,
    CompressionMethod,
    ContentType,
    EcPointFormat,
    ExtensionType,
    HandshakeType,
    NamedGroup,
    SignatureScheme,
    is_grease,
    name_of,
    names_of,
    version_name,
)

# TLSCiphertext.length may not exceed 2^14 + 2048 (RFC 5246 6.2.3); anything longer is not TLS.
MAX_RECORD = 2**14 + 2048
# Largest handshake message we defragment; real certificate chains are a few KiB.
MAX_HANDSHAKE = 1 << 20
MAX_CERTS = 100  # certificates kept from one Certificate message
# Anomaly code: TLS 1.3, the server's only record after the client's Finished is alert-sized
# (it most likely rejected the client's certificate); the diagnosis looks for this code.
SERVER_ALERT_SUSPECTED = "tls.tls13.server_alert_suspected"
MAX_CAS = 1024  # distinguished names kept from one CertificateRequest
MAX_ANOMALIES = 100  # per direction
MAX_SIZES = 256  # encrypted record sizes kept per direction
MAX_HISTORY = 100  # as Zeek's max_ssl_history_length
_SSL2_RECORD = -2  # pseudo content type of an SSL 2.0 record
_record_header = struct.Struct(">BHH").unpack_from  # content type, version, length

TLS13 = 0x0304
# Handshake types as plain ints for the per-message dispatch (no enum attribute lookups)
_CLIENT_HELLO = int(HandshakeType.client_hello)
_SERVER_HELLO = int(HandshakeType.server_hello)
_CERTIFICATE = int(HandshakeType.certificate)
_CERTIFICATE_REQUEST = int(HandshakeType.certificate_request)
_NEW_SESSION_TICKET = int(HandshakeType.new_session_ticket)
_PARSED_TYPES = frozenset({_CLIENT_HELLO, _SERVER_HELLO, _CERTIFICATE, _CERTIFICATE_REQUEST,
                           _NEW_SESSION_TICKET})
_SESSION_TICKET_EXT = int(ExtensionType.session_ticket)
_PRE_SHARED_KEY_EXT = int(ExtensionType.pre_shared_key)
MAX_TICKETS = 4  # NewSessionTicket messages kept from one handshake


def _is_tls13(version: int | None) -> bool:
    return version is not None and (version == TLS13 or (version >> 8) == 0x7F)


def _printable(raw: bytes) -> str:
    """Wire text (SNI, ALPN) made safe to print: non-printable bytes become ``\\xNN``."""
    return "".join(chr(c) if 0x20 <= c < 0x7F and c != 0x5C else f"\\x{c:02x}" for c in raw)


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
    """A TLS <= 1.2 NewSessionTicket (RFC 5077 3.3), sent in plaintext before the server's
    ChangeCipherSpec: the ticket a later connection offers to resume this session."""

    lifetime_hint: int
    ticket: bytes


ParsedBody = ClientHello | ServerHello | Certificate | CertificateRequest | NewSessionTicket


# --------------------------------------------------------------------------- stream events


@dataclass(frozen=True, slots=True)
class HandshakeMessage:
    """A complete plaintext handshake message. ``offset`` is its first header byte's stream
    offset; ``body`` is parsed for the types fastcap needs (None otherwise or if malformed)."""

    offset: int
    msg_type: int
    length: int
    body: ParsedBody | None = None
    # End of the record that completed the message: Wireshark shows the message in the frame
    # carrying that record's last byte, so that is the frame a user should jump to.
    end: int | None = None

    @property
    def name(self) -> str:
        return name_of(HandshakeType, self.msg_type, 2)


@dataclass(frozen=True, slots=True)
class ChangeCipherSpec:
    offset: int


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert. Encrypted ones (after ChangeCipherSpec, TLS <= 1.2) have no level/description;
    ``length`` is the record length for those and 2 otherwise."""

    offset: int
    level: int | None
    description: int | None
    encrypted: bool = False
    length: int = 2

    @property
    def level_name(self) -> str | None:
        return None if self.level is None else name_of(AlertLevel, self.level, 2)

    @property
    def description_name(self) -> str | None:
        return None if self.description is None else name_of(AlertDescription, self.description, 2)


@dataclass(frozen=True, slots=True)
class EncryptedRecord:
    """A record whose body is opaque: application data, or a handshake record after
    ChangeCipherSpec (TLS <= 1.2 Finished). ``length`` excludes the 5-byte header."""

    offset: int
    content_type: int
    length: int


@dataclass(frozen=True, slots=True)
class Anomaly:
    """Something odd; parsing went on (or stopped, see :class:`Stopped`)."""

    offset: int
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Stopped:
    """The direction will parse nothing more: ``reason`` is ``end`` (data ran out), ``gap``
    (bytes missing), ``not_tls``, ``corrupt`` (a record header no TLS peer sends) or ``sslv2``."""

    offset: int
    reason: str
    detail: str


TlsEvent = HandshakeMessage | ChangeCipherSpec | Alert | EncryptedRecord | Anomaly | Stopped
# parse_handshake's streams report their two commonest events as bare tuples (TlsStream._bare):
# an EncryptedRecord as (offset, content_type, length), a HandshakeMessage as (offset,
# msg_type, length, body, end). An object for each was a visible share of the time; only
# _Summary sees them, and it tells them apart by length. parse_handshake(_general=n) folds
# event objects instead, for the tests that prove both forms give one result.
_Opaque = tuple[int, int, int]
_Message = tuple[int, int, int, ParsedBody | None, int | None]
_Bare = _Opaque | _Message


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
            host = _printable(name)
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
        tuple(_printable(a) for a in alpn),
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
    return ClientHello(legacy_version, random, session_id, *tail)


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
    return ServerHello(  # positional (in declaration order): faster than keywords
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
                alpn = _printable(names[0]) if names else None
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
    """The TLS <= 1.2 form only: TLS 1.3 sends its tickets encrypted, so a plaintext one
    there is reported and not read."""
    if _is_tls13(version):
        problems.append(("tls.new_session_ticket.plaintext_tls13",
                         "NewSessionTicket in plaintext after a TLS 1.3 ServerHello"))
        return None
    try:
        r = _Reader(bytes(body))
        hint = r.uint(4, "ticket_lifetime_hint")
        ticket = r.vec(2, "ticket")
        if r.left():
            raise _Malformed(f"{r.left()} bytes after the ticket")
    except _Malformed as exc:
        problems.append(("tls.new_session_ticket.malformed", str(exc)))
        return None
    return NewSessionTicket(hint, ticket)


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
    forms = (True, False) if _is_tls13(version) else (False, True)
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
    if _is_tls13(version):
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


# --------------------------------------------------------------------------- DN rendering


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
        return x509.load_der_x509_crl(crl).issuer.rfc4514_string()
    except Exception:  # hostile bytes: cryptography may reject them in more than one way
        return None


# --------------------------------------------------------------------------- per direction


class TlsStream:
    """One direction of a TLS connection: feed bytes in stream order, get events back.

    Records and handshake messages are emitted when their last byte arrives, so any chunking
    of the same bytes yields the same events. Record bodies are buffered only for plaintext
    handshake/alert/ChangeCipherSpec records (<= 18 KiB each); encrypted bodies are skipped.
    """

    def __init__(self, from_client: bool) -> None:
        self.from_client = from_client
        self.version: int | None = None  # negotiated (own ServerHello or set_version)
        self.stopped: Stopped | None = None
        self._expect: int | None = None  # stream offset of the next byte
        self._records = 0
        self._hdr = bytearray()
        self._in_body = False
        self._rec_off = 0
        self._rec_type = 0
        self._rec_len = 0
        self._need = 0
        self._keep = False
        self._body = bytearray()
        self._ccs = False
        self._hs = bytearray()
        self._hs_marks: list[tuple[int, int]] = []  # (position in _hs, stream offset)
        self._hs_skip = 0
        self._anomalies = 0
        # Report opaque records and handshake messages as _Bare tuples, not events: for
        # parse_handshake, whose _Summary takes both (feed's callers always get events).
        self._bare = False
        # The whole-record and whole-message shortcuts (_whole_records, the header in view in
        # _consume, the unbuffered loop in _hs_append); off, every byte goes through the
        # general record and message buffering. Tests prove both give the same events.
        self._shortcuts = True

    # -- public API

    def set_version(self, version: int | None) -> None:
        """Tell the client side what the server negotiated: in TLS 1.3 a ChangeCipherSpec is a
        compatibility no-op, so records after it are still plaintext (RFC 8446 D.4)."""
        if version is not None:
            self.version = version

    def feed(self, data: bytes | bytearray | memoryview, stream_offset: int) -> list[TlsEvent]:
        """Consume ``data`` whose first byte sits at ``stream_offset``."""
        out: list[TlsEvent] = []
        if self.stopped is not None:
            return out
        mv = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
        if self._expect is None:
            self._expect = stream_offset
        if stream_offset > self._expect:
            return self.gap(self._expect, stream_offset - self._expect)
        if stream_offset < self._expect:
            skip = self._expect - stream_offset
            self._anomaly(
                out,
                stream_offset,
                "tls.stream.overlap",
                f"{min(skip, len(mv))} bytes fed twice were ignored",
            )
            if skip >= len(mv):
                return out
            mv = mv[skip:]
            stream_offset = self._expect
        self._expect = stream_offset + len(mv)
        self._consume(mv, 0, len(mv), stream_offset, out)
        return out

    def _feed_whole(self, data: bytes, start: int, stop: int) -> list[TlsEvent]:
        """``feed(data[start:stop], start)`` for a fresh stream whose offsets are those of
        ``data``, without copying the bytes or going through a memoryview (whose item and
        struct reads cost more): parse_handshake's way in."""
        out: list[TlsEvent] = []
        self._expect = stop
        self._consume(data, start, stop, 0, out)
        return out

    def gap(self, stream_offset: int, size: int) -> list[TlsEvent]:
        """Bytes are missing from ``stream_offset``: nothing after can be trusted."""
        out: list[TlsEvent] = []
        if self.stopped is None:
            self._anomaly(out, stream_offset, "tls.stream.gap", f"{size} bytes missing")
            self._truncated(out, stream_offset)
            self._stop(out, stream_offset, "gap", f"{size} bytes missing at offset {stream_offset}")
        return out

    def end(self, stream_offset: int | None = None) -> list[TlsEvent]:
        """The stream is over (FIN, RST or end of capture)."""
        out: list[TlsEvent] = []
        if self.stopped is None:
            at = stream_offset if stream_offset is not None else (self._expect or 0)
            self._truncated(out, at)
            self._stop(out, at, "end", f"stream ended at offset {at}")
        return out

    # -- internals

    def _anomaly(self, out: list[TlsEvent], offset: int, code: str, message: str) -> None:
        self._anomalies += 1
        if self._anomalies <= MAX_ANOMALIES:
            out.append(Anomaly(offset, code, message))
        elif self._anomalies == MAX_ANOMALIES + 1:
            out.append(Anomaly(offset, "tls.anomaly.limit", f"more than {MAX_ANOMALIES}"))

    def _stop(self, out: list[TlsEvent], offset: int, reason: str, detail: str) -> None:
        self.stopped = Stopped(offset, reason, detail)
        out.append(self.stopped)

    def _truncated(self, out: list[TlsEvent], offset: int) -> None:
        if self._hdr or self._in_body:
            got = len(self._hdr) if not self._in_body else self._rec_len - self._need
            want = "header" if not self._in_body else f"{self._rec_len}-byte body"
            self._anomaly(
                out, self._rec_off, "tls.stream.truncated", f"record {want} cut at {got} bytes"
            )
        if self._hs:
            self._anomaly(
                out,
                self._hs_offset(0),
                "tls.handshake.truncated",
                f"{len(self._hs)} bytes of an unfinished handshake message",
            )

    def _encrypted(self) -> bool:
        return self._ccs and not _is_tls13(self.version)

    def _consume(
        self, mv: bytes | memoryview, pos: int, n: int, base: int, out: list[TlsEvent]
    ) -> None:
        """Consume ``mv[pos:n]``; ``base + i`` is the stream offset of ``mv[i]``."""
        shortcuts = self._shortcuts
        while pos < n and self.stopped is None:
            if shortcuts and not self._in_body and not self._hdr:
                pos = self._whole_records(mv, pos, n, base, out)
                if pos == n:
                    break
                if n - pos >= 5 and (self._records or mv[pos] < 0x80):  # not SSL 2.0
                    # a header in view that the fast loop leaves to the general checks
                    self._rec_off = base + pos
                    self._start_record(out, False, bytes(mv[pos : pos + 5]))
                    pos += 5
                    if self._in_body and self._need <= n - pos:
                        end = pos + self._need
                        self._need = 0
                        self._finish_record(out, bytes(mv[pos:end]) if self._keep else b"")
                        pos = end
                    continue
            if self._in_body:
                take = min(self._need, n - pos)
                if self._keep:
                    self._body += mv[pos : pos + take]
                pos += take
                self._need -= take
                if self._need == 0:
                    self._finish_record(out, bytes(self._body))
                continue
            if not self._hdr:
                self._rec_off = base + pos
                self._hdr.append(mv[pos])
                pos += 1
            sslv2 = self._records == 0 and bool(self._hdr[0] & 0x80)
            size = 2 if sslv2 else 5
            take = min(size - len(self._hdr), n - pos)
            self._hdr += mv[pos : pos + take]
            pos += take
            if len(self._hdr) == size:
                h = bytes(self._hdr)
                self._hdr.clear()
                self._start_record(out, sslv2, h)

    def _whole_records(
        self, mv: bytes | memoryview, pos: int, n: int, base: int, out: list[TlsEvent]
    ) -> int:
        """Handle the records lying wholly in ``mv[pos:n]``, with no header or body
        buffered; return where the general path must take over (end of data, a cut record, or
        one needing its checks: bad header, plaintext alert, odd ChangeCipherSpec, a record
        interleaved in a fragmented handshake message, a possible SSL 2.0 header).

        This is the common case when whole streams are fed, and the per-record cost of the
        general path (header buffering, two calls per record) was most of the parsing time.
        Events and state are exactly those of the general path.
        """
        append = out.append
        records = self._records
        bare = self._bare
        while n - pos >= 5:
            ctype, version, length = _record_header(mv, pos)
            end = pos + 5 + length
            if version >> 8 != 3 or length > MAX_RECORD or end > n:
                break
            if ctype == 23 or ctype == 24:
                if self._hs:
                    break
                off = base + pos
                append((off, ctype, length) if bare else EncryptedRecord(off, ctype, length))
            elif ctype == 22:  # never "interleaved", so a buffered fragment does not matter
                if self._ccs and not _is_tls13(self.version):
                    off = base + pos
                    append((off, 22, length) if bare else EncryptedRecord(off, 22, length))
                elif (
                    length >= 4
                    and ((mv[pos + 6] << 16) | (mv[pos + 7] << 8) | mv[pos + 8]) == length - 4
                    and not self._hs
                    and not self._hs_skip
                ):  # exactly one message (the usual case): what _hs_append would do
                    mtype = mv[pos + 5]
                    if bare and mtype not in _PARSED_TYPES:  # what _message would do
                        append((base + pos + 5, mtype, length - 4, None, base + end))
                    else:
                        self._message(base + pos + 5, mtype, length - 4, mv[pos + 9 : end], out,
                                      base + end)
                elif length:
                    self._hs_append(mv[pos + 5 : end], base + pos + 5, out)
                else:
                    self._anomaly(
                        out, base + pos, "tls.record.empty", "zero-length handshake record"
                    )
            elif self._hs:
                break
            elif ctype == 21 and self._ccs and not _is_tls13(self.version):
                append(Alert(base + pos, None, None, True, length))
            elif ctype == 20 and length == 1 and mv[pos + 5] == 1:
                append(ChangeCipherSpec(base + pos))
                self._ccs = True
            else:
                break
            records += 1
            pos = end
        self._records = records
        return pos

    def _start_record(self, out: list[TlsEvent], sslv2: bool, h: bytes) -> None:
        off = self._rec_off
        if sslv2:
            ctype, length = _SSL2_RECORD, ((h[0] & 0x7F) << 8) | h[1]
            keep = True
        else:
            ctype, length = h[0], (h[3] << 8) | h[4]
            if ctype not in (20, 21, 22, 23, 24) or h[1] != 3:
                first = self._records == 0
                code = "tls.stream.not_tls" if first else "tls.record.bad_header"
                self._anomaly(out, off, code, f"record header {h.hex()} is not TLS")
                self._stop(out, off, "not_tls" if first else "corrupt", f"bad header {h.hex()}")
                return
            if length > MAX_RECORD:
                self._anomaly(out, off, "tls.record.too_long", f"{length} > {MAX_RECORD} bytes")
                self._stop(out, off, "corrupt", f"record length {length}")
                return
            keep = ctype == 20 or (ctype in (21, 22) and not self._encrypted())
        self._rec_type, self._rec_len, self._need, self._keep = ctype, length, length, keep
        self._body.clear()
        self._in_body = True
        if length == 0:
            self._finish_record(out, b"")

    def _finish_record(self, out: list[TlsEvent], body: bytes) -> None:
        """The current record is complete; ``body`` is its bytes when kept (else empty)."""
        self._in_body = False
        self._records += 1
        ctype, off, length = self._rec_type, self._rec_off, self._rec_len
        self._body.clear()
        if ctype == _SSL2_RECORD:
            self._sslv2_record(body, off, out)
            return
        if self._hs and ctype != 22:
            self._anomaly(
                out,
                off,
                "tls.record.interleaved",
                f"{name_of(ContentType, ctype, 2)} record inside a fragmented handshake message",
            )
        enc = self._encrypted()
        if ctype == 22:
            if enc:
                out.append(EncryptedRecord(off, 22, length))
            elif not length:
                self._anomaly(out, off, "tls.record.empty", "zero-length handshake record")
            else:
                self._hs_append(body, off + 5, out)
        elif ctype == 20:
            if self._hs:
                self._anomaly(
                    out,
                    off,
                    "tls.handshake.truncated",
                    "ChangeCipherSpec inside a fragmented handshake message",
                )
                self._hs.clear()
                self._hs_marks.clear()
            if body == b"\x01":
                out.append(ChangeCipherSpec(off))
                self._ccs = True
            elif enc:
                out.append(EncryptedRecord(off, 20, length))
            else:
                self._anomaly(out, off, "tls.ccs.malformed", f"body {body[:8].hex()!r}")
                out.append(ChangeCipherSpec(off))
                self._ccs = True
        elif ctype == 21:
            if enc:
                out.append(Alert(off, None, None, encrypted=True, length=length))
                return
            if length == 0 or length % 2:
                self._anomaly(out, off, "tls.alert.bad_length", f"{length}-byte alert record")
            for i in range(0, length - 1, 2):
                out.append(Alert(off + 5 + i, body[i], body[i + 1]))
        else:  # 23 application data, 24 heartbeat
            out.append(EncryptedRecord(off, ctype, length))

    def _sslv2_record(self, body: bytes, off: int, out: list[TlsEvent]) -> None:
        if not self.from_client or not body or body[0] != 1:
            kind = body[0] if body else None
            self._anomaly(
                out,
                off,
                "tls.sslv2.unsupported",
                f"SSL 2.0 message type {kind} (only an SSLv2-compatible ClientHello is understood)",
            )
            self._stop(out, off, "sslv2", "SSL 2.0 record")
            return
        problems: Problems = []
        hello = parse_sslv2_client_hello(body, problems)
        out.append(HandshakeMessage(off, HandshakeType.client_hello, len(body), hello,
                                    end=off + len(body)))
        for code, msg in problems:
            self._anomaly(out, off, code, msg)

    def _hs_append(self, fragment: bytes | memoryview, frag_off: int, out: list[TlsEvent]
                   ) -> None:
        if self._hs_skip:
            k = min(self._hs_skip, len(fragment))
            fragment, frag_off = fragment[k:], frag_off + k
            self._hs_skip -= k
            if not fragment:
                return
        if not self._hs and self._shortcuts:
            # Nothing buffered: read the messages that are whole in this record straight from
            # it (the usual case), then buffer only a remainder, exactly as the general loop
            # below would leave it.
            p, n = 0, len(fragment)
            rec_end = frag_off + n
            while n - p >= 4:
                mlen = (fragment[p + 1] << 16) | (fragment[p + 2] << 8) | fragment[p + 3]
                if mlen > MAX_HANDSHAKE or n - p - 4 < mlen:
                    break
                self._message(
                    frag_off + p, fragment[p], mlen, fragment[p + 4 : p + 4 + mlen], out, rec_end
                )
                p += 4 + mlen
            if p == n:
                return
            fragment, frag_off = fragment[p:], frag_off + p
        self._hs_marks.append((len(self._hs), frag_off))
        self._hs += fragment
        rec_end = frag_off + len(fragment)
        buf, p = self._hs, 0
        while len(buf) - p >= 4:
            mtype = buf[p]
            mlen = (buf[p + 1] << 16) | (buf[p + 2] << 8) | buf[p + 3]
            moff = self._hs_offset(p)
            if mlen > MAX_HANDSHAKE:
                avail = len(buf) - p - 4
                self._anomaly(
                    out,
                    moff,
                    "tls.handshake.too_big",
                    f"{name_of(HandshakeType, mtype, 2)} of {mlen} bytes skipped "
                    f"(limit {MAX_HANDSHAKE})",
                )
                self._hs_skip = max(0, mlen - avail)
                p = len(buf)
                break
            if len(buf) - p - 4 < mlen:
                break
            self._message(moff, mtype, mlen, bytes(buf[p + 4 : p + 4 + mlen]), out, rec_end)
            p += 4 + mlen
        self._hs_consumed(p)

    def _hs_offset(self, pos: int) -> int:
        base_pos, base_off = self._hs_marks[0] if self._hs_marks else (0, 0)
        for bp, so in self._hs_marks:
            if bp > pos:
                break
            base_pos, base_off = bp, so
        return base_off + (pos - base_pos)

    def _hs_consumed(self, p: int) -> None:
        if p == 0:
            return
        del self._hs[:p]
        if not self._hs:
            self._hs_marks.clear()
            return
        marks: list[tuple[int, int]] = []
        for bp, so in self._hs_marks:
            if bp <= p:
                marks = [(0, so + (p - bp))]
            else:
                marks.append((bp - p, so))
        self._hs_marks = marks

    def _message(self, off: int, mtype: int, mlen: int, body: bytes | memoryview,
                 out: list[TlsEvent], end: int | None = None) -> None:
        if mtype not in _PARSED_TYPES:
            if self._bare:
                out.append((off, mtype, mlen, None, end))
            else:
                out.append(HandshakeMessage(off, mtype, mlen, None, end))
            return
        body = bytes(body)
        problems: Problems = []
        parsed: ParsedBody | None
        if mtype == _CLIENT_HELLO:
            parsed = parse_client_hello(body, problems)
        elif mtype == _SERVER_HELLO:
            parsed = parse_server_hello(body, problems)
            if parsed is not None and not self.from_client:
                self.version = parsed.version
        elif mtype == _CERTIFICATE:
            parsed = parse_certificate(body, self.version, problems)
        elif mtype == _NEW_SESSION_TICKET:
            parsed = None if self.from_client else parse_new_session_ticket(
                body, self.version, problems)
        else:
            parsed = parse_certificate_request(body, self.version, problems)
        if self._bare:
            out.append((off, mtype, mlen, parsed, end))
        else:
            out.append(HandshakeMessage(off, mtype, mlen, parsed, end))
        for code, msg in problems:
            self._anomaly(out, off, code, msg)


# --------------------------------------------------------------------------- summary types


@compact
@dataclass(frozen=True, slots=True)
class Where:
    """Stream offset of a message's first byte and the frame (1-based) that carried it."""

    offset: int
    frame: int | None

    def to_dict(self) -> dict[str, int | None]:
        return {"offset": self.offset, "frame": self.frame}


_new_object = object.__new__
_set_where_offset, _set_where_frame = Where.__compact_setters__  # type: ignore[attr-defined]


def _where(offset: int, frame: int | None) -> Where:
    """``Where(offset, frame)`` built through the slot descriptors: a frozen dataclass's
    ``__init__`` stores each field through ``object.__setattr__``, which costs twice as much,
    and a dozen are built per connection. Same object (Where has no ``__post_init__``)."""
    where = _new_object(Where)
    _set_where_offset(where, offset)
    _set_where_frame(where, frame)
    return where


@compact
@dataclass(frozen=True, slots=True)
class AlertInfo:
    from_client: bool
    level: int | None
    description: int | None
    encrypted: bool
    at: Where

    @property
    def sender(self) -> str:
        return "client" if self.from_client else "server"

    @property
    def level_name(self) -> str | None:
        return None if self.level is None else name_of(AlertLevel, self.level, 2)

    @property
    def description_name(self) -> str | None:
        return None if self.description is None else name_of(AlertDescription, self.description, 2)

    def text(self) -> str:
        if self.encrypted:
            return f"{self.sender} sent an encrypted alert"
        return f"{self.sender} sent {self.level_name} alert {self.description_name}"


@compact
@dataclass(frozen=True, slots=True)
class TlsAnomaly:
    from_client: bool
    code: str
    message: str
    at: Where


@compact
@dataclass(frozen=True, slots=True)
class EncryptedTraffic:
    """Opaque records of one direction: count, total body bytes, the first sizes, and where the
    first one started."""

    records: int = 0
    total_length: int = 0
    sizes: tuple[int, ...] = ()
    first_at: Where | None = None


@compact
@dataclass(frozen=True, slots=True)
class StreamStop:
    from_client: bool
    reason: str
    detail: str
    at: Where


def _extension_names(extensions: tuple[Extension, ...]) -> list[str]:
    return list(names_of(ExtensionType, tuple(e.type for e in extensions)))


def _cert_dict(der: bytes) -> dict[str, Any]:
    return {
        "sha256": hashlib.sha256(der).hexdigest(),
        "size": len(der),
        "der_b64": base64.b64encode(der).decode("ascii"),
    }


def _at(w: Where | None) -> dict[str, int | None] | None:
    return None if w is None else w.to_dict()


@compact
@dataclass(frozen=True, slots=True)
class TlsHandshake:
    """What one connection's TLS handshake showed. Judging it is ``diagnose``'s job.

    ``client_certificate`` is None when the client sent no Certificate message, ``[]`` when it
    sent an empty one ("no certificate to offer"), else its DER chain in wire order; with
    ``client_certificate_at`` set but ``client_certificate`` None the message was malformed
    (see ``anomalies``).
    ``outcome`` is ``completed``, ``alert`` or ``incomplete``; ``outcome_inferred`` is True when
    completion was inferred from encrypted record sizes (TLS 1.3 hides the Finished messages).
    """

    version: int | None
    version_name: str | None
    cipher: int | None
    cipher_name: str | None
    client_hello: ClientHello | None
    client_hello_at: Where | None
    server_hello: ServerHello | None
    server_hello_at: Where | None
    hello_retry_request: bool
    server_certs: list[bytes]
    server_certs_at: Where | None
    server_certificates_length: int | None
    cert_request: CertificateRequest | None
    cert_request_at: Where | None
    client_certificate: list[bytes] | None
    client_certificate_at: Where | None
    client_certificates_length: int | None
    server_key_exchange_at: Where | None
    server_hello_done_at: Where | None
    client_key_exchange_at: Where | None
    certificate_verify_at: Where | None
    client_ccs_at: Where | None
    server_ccs_at: Where | None
    client_finished_at: Where | None
    server_finished_at: Where | None
    alerts: list[AlertInfo]
    c2s_encrypted: EncryptedTraffic
    s2c_encrypted: EncryptedTraffic
    tls13_encrypted: bool
    outcome: str
    outcome_detail: str
    outcome_inferred: bool
    history: str
    stops: list[StreamStop] = field(default_factory=list)
    anomalies: list[TlsAnomaly] = field(default_factory=list)
    # How the handshake resumed an earlier session: "session_id" (the ServerHello echoes the
    # ClientHello's session ID), "ticket" (a session ticket was offered and accepted), "psk"
    # (TLS 1.3 pre_shared_key in the ServerHello); None for a full handshake.  A resumed
    # handshake carries no Certificate: the original handshake's client certificate applies.
    resumption: str | None = None
    # Tickets this handshake issued in plaintext NewSessionTicket messages (TLS <= 1.2), and
    # where the first one was.
    session_tickets: list[bytes] = field(default_factory=list)
    session_ticket_at: Where | None = None

    @property
    def offered_ticket(self) -> bytes | None:
        """The session ticket the ClientHello offered to resume with (non-empty), if any."""
        for ext in getattr(self.client_hello, "extensions", ()):
            if ext.type == _SESSION_TICKET_EXT:
                return ext.data or None
        return None

    @property
    def established_session_id(self) -> bytes | None:
        """The session ID a full TLS <= 1.2 handshake gave its session (a later connection
        resumes by offering it); None when resumed, for TLS 1.3, or when the server gave none."""
        sh = self.server_hello
        if sh is None or self.resumption is not None or _is_tls13(sh.version):
            return None
        return sh.session_id or None

    @property
    def cert_requested(self) -> bool:
        """The server sent a CertificateRequest (even one too malformed to parse)."""
        return self.cert_request_at is not None

    @property
    def sni(self) -> str | None:
        return self.client_hello.sni if self.client_hello else None

    @property
    def ja3(self) -> str | None:
        return self.client_hello.ja3 if self.client_hello else None

    @property
    def ja3_md5(self) -> str | None:
        return self.client_hello.ja3_md5 if self.client_hello else None

    @property
    def ja4(self) -> str | None:
        return self.client_hello.ja4 if self.client_hello else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: certificates as base64 DER with SHA-256 thumbprints, codes as names."""
        ch = self.client_hello
        sh = self.server_hello
        cr = self.cert_request
        return {
            "version": self.version_name,
            "version_code": self.version,
            "cipher": self.cipher_name,
            "cipher_code": self.cipher,
            "client_hello": None
            if ch is None
            else {
                **(_at(self.client_hello_at) or {}),
                "sslv2": ch.sslv2,
                "legacy_version": version_name(ch.legacy_version),
                "versions": ch.version_names,
                "sni": ch.sni,
                "alpn": list(ch.alpn),
                "cipher_suites": list(names_of(CipherSuite, ch.cipher_suites)),
                "extensions": _extension_names(ch.extensions),
                "signature_algorithms": list(names_of(SignatureScheme, ch.signature_algorithms)),
                "supported_groups": list(names_of(NamedGroup, ch.supported_groups)),
                "ec_point_formats": list(names_of(EcPointFormat, ch.ec_point_formats, 2)),
                "compression_methods": list(names_of(CompressionMethod, ch.compression_methods,
                                                     2)),
                "session_id": ch.session_id.hex(),
                "ja3": ch.ja3,
                "ja3_md5": ch.ja3_md5,
                "ja4": ch.ja4,
                "ja4_r": ch.ja4_r,
            },
            "server_hello": None
            if sh is None
            else {
                **(_at(self.server_hello_at) or {}),
                "version": sh.version_name,
                "legacy_version": version_name(sh.legacy_version),
                "cipher": sh.cipher_name,
                "session_id": sh.session_id.hex(),
                "alpn": sh.alpn,
                "group": None if sh.group is None else name_of(NamedGroup, sh.group),
                "extensions": _extension_names(sh.extensions),
                "downgrade_sentinel": sh.downgrade,
            },
            "hello_retry_request": self.hello_retry_request,
            "server_certificate": None
            if self.server_certs_at is None
            else {
                **self.server_certs_at.to_dict(),
                "certificates_length": self.server_certificates_length,
                "certificates": [_cert_dict(d) for d in self.server_certs],
            },
            "certificate_request": None
            if cr is None
            else {
                **(_at(self.cert_request_at) or {}),
                "certificate_types": cr.certificate_type_names,
                "signature_algorithms": cr.signature_algorithm_names,
                "certificate_authorities": [
                    {"name": name, "der_hex": dn.hex()}
                    for dn, name in zip(cr.certificate_authorities, cr.ca_names(), strict=True)
                ],
            },
            "client_certificate": None
            if self.client_certificate is None
            else {
                **(_at(self.client_certificate_at) or {}),
                "empty": not self.client_certificate,
                "certificates_length": self.client_certificates_length,
                "certificates": [_cert_dict(d) for d in self.client_certificate],
            },
            "server_key_exchange": _at(self.server_key_exchange_at),
            "server_hello_done": _at(self.server_hello_done_at),
            "client_key_exchange": _at(self.client_key_exchange_at),
            "certificate_verify": _at(self.certificate_verify_at),
            "client_change_cipher_spec": _at(self.client_ccs_at),
            "server_change_cipher_spec": _at(self.server_ccs_at),
            "client_finished": _at(self.client_finished_at),
            "server_finished": _at(self.server_finished_at),
            "alerts": [
                {
                    "from": a.sender,
                    "level": a.level_name,
                    "description": a.description_name,
                    "encrypted": a.encrypted,
                    **a.at.to_dict(),
                }
                for a in self.alerts
            ],
            "encrypted": {
                name: {
                    "records": t.records,
                    "total_length": t.total_length,
                    "sizes": list(t.sizes),
                    "first": _at(t.first_at),
                }
                for name, t in (("c2s", self.c2s_encrypted), ("s2c", self.s2c_encrypted))
            },
            "tls13_encrypted": self.tls13_encrypted,
            "outcome": self.outcome,
            "outcome_detail": self.outcome_detail,
            "outcome_inferred": self.outcome_inferred,
            "history": self.history,
            "resumption": self._resumption_dict(),
            "stops": [
                {
                    "from": "client" if s.from_client else "server",
                    "reason": s.reason,
                    "detail": s.detail,
                    **s.at.to_dict(),
                }
                for s in self.stops
            ],
            "anomalies": [
                {
                    "from": "client" if a.from_client else "server",
                    "code": a.code,
                    "message": a.message,
                    **a.at.to_dict(),
                }
                for a in self.anomalies
            ],
        }


    def _resumption_dict(self) -> dict[str, Any]:
        offered = self.offered_ticket
        sid = self.established_session_id
        return {
            "resumed": self.resumption,
            "established_session_id": None if sid is None else sid.hex(),
            "ticket_offered": None if offered is None else _ticket_dict(offered),
            "tickets_issued": [_ticket_dict(t) for t in self.session_tickets],
            "ticket_issued_at": _at(self.session_ticket_at),
        }


def _ticket_dict(ticket: bytes) -> dict[str, Any]:
    """Tickets are opaque and can be long: their size and a SHA-256 to match them by."""
    return {"length": len(ticket), "sha256": hashlib.sha256(ticket).hexdigest()}


# --------------------------------------------------------------------------- folding events

_LETTERS = {
    HandshakeType.hello_request: "h",
    HandshakeType.client_hello: "c",
    HandshakeType.server_hello: "s",
    HandshakeType.hello_verify_request: "v",
    HandshakeType.new_session_ticket: "t",
    HandshakeType.end_of_early_data: "e",
    HandshakeType.hello_retry_request: "j",
    HandshakeType.encrypted_extensions: "o",
    HandshakeType.certificate: "x",
    HandshakeType.server_key_exchange: "k",
    HandshakeType.certificate_request: "r",
    HandshakeType.server_hello_done: "n",
    HandshakeType.certificate_verify: "y",
    HandshakeType.client_key_exchange: "g",
    HandshakeType.finished: "f",
    HandshakeType.certificate_url: "w",
    HandshakeType.certificate_status: "u",
    HandshakeType.supplemental_data: "a",
    HandshakeType.key_update: "p",
    HandshakeType.message_hash: "m",
}
_SERVER_ONLY = frozenset({2, 3, 4, 8, 12, 13, 14})
_CLIENT_ONLY = frozenset({1, 5, 16})


class _Traffic:
    __slots__ = ("records", "total", "sizes", "first_at")

    def __init__(self) -> None:
        self.records = 0
        self.total = 0
        self.sizes: list[int] = []
        self.first_at: Where | None = None

    def add(self, length: int, at: Where) -> None:
        self.records += 1
        self.total += length
        if len(self.sizes) < MAX_SIZES:
            self.sizes.append(length)
        if self.first_at is None:
            self.first_at = at

    def freeze(self) -> EncryptedTraffic:
        return EncryptedTraffic(self.records, self.total, tuple(self.sizes), self.first_at)


# Where a handshake message is recorded in _Summary.at, per (type, from client); absent = not
# recorded. Certificates, CertificateRequests and the hellos are handled on their own.
_MARKS = {
    (int(HandshakeType.server_key_exchange), False): "server_key_exchange",
    (int(HandshakeType.server_hello_done), False): "server_hello_done",
    (int(HandshakeType.client_key_exchange), True): "client_key_exchange",
    (int(HandshakeType.certificate_verify), True): "certificate_verify",
    (int(HandshakeType.finished), True): "client_finished",
    (int(HandshakeType.finished), False): "server_finished",
}


class _Summary:
    """Folds both directions' events, in time order, into a :class:`TlsHandshake`.

    Completion is judged from per-direction facts only (CCS + encrypted Finished each way, or
    TLS 1.3 records after the hellos), so it does not depend on how the directions interleave;
    only ``history`` and the "server answered the client's Finished with an alert-sized record"
    hint use the cross-direction order.

    Events come with their offset and frame; a :class:`Where` is built only where one is kept
    (most events, application data above all, keep none).
    """

    __slots__ = (
        "ch", "ch_at", "sh", "sh_at", "hrr", "at", "server_cert", "client_cert", "cert_request",
        "alerts", "traffic", "ccs", "app_seen", "s2c_after_sh", "c2s_after_ch",
        "c2s_after_ch_first", "client_finished_seen", "s2c_after_client_fin",
        "s2c_after_client_fin_first", "alert_size", "history",
        "history_capped", "stops", "anomalies", "tickets",
    )

    def __init__(self) -> None:
        self.ch: ClientHello | None = None
        self.ch_at: Where | None = None
        self.sh: ServerHello | None = None
        self.sh_at: Where | None = None
        self.hrr: ServerHello | None = None
        self.at: dict[str, Where] = {}
        self.server_cert: Certificate | None = None
        self.client_cert: Certificate | None = None
        self.cert_request: CertificateRequest | None = None
        self.alerts: list[AlertInfo] = []
        self.traffic = {True: _Traffic(), False: _Traffic()}
        self.ccs = {True: False, False: False}
        self.app_seen = {True: False, False: False}
        self.s2c_after_sh = 0  # server type-23 records after its (final) ServerHello
        # sizes of the client's type-23 records after its last ClientHello, and the (offset,
        # frame) of the first (only the first's position is ever reported)
        self.c2s_after_ch: list[int] = []
        self.c2s_after_ch_first: tuple[int, int | None] = (0, None)
        self.client_finished_seen = False  # a non-alert-sized client record, TLS 1.3
        # server type-23 records after that one (counted up to 8), and the first's
        # (size, offset, frame)
        self.s2c_after_client_fin = 0
        self.s2c_after_client_fin_first: tuple[int, int, int | None] = (0, 0, None)
        # Size of an encrypted TLS 1.3 alert record: 2 + content type + AEAD tag (16, or 8
        # for TLS_AES_128_CCM_8_SHA256); set when the ServerHello is folded.
        self.alert_size = 19
        self.history: list[str] = []
        self.history_capped = False
        self.stops: list[StreamStop] = []
        self.anomalies: list[TlsAnomaly] = []
        self.tickets: list[tuple[bytes, Where]] = []

    def _letter(self, from_client: bool, letter: str, offset: int, frame: int | None) -> None:
        if len(self.history) >= MAX_HISTORY:
            if not self.history_capped:
                self.history_capped = True
                self.anomalies.append(
                    TlsAnomaly(
                        from_client,
                        "tls.history.limit",
                        f"history capped at {MAX_HISTORY}",
                        _where(offset, frame),
                    )
                )
            return
        self.history.append(letter.upper() if from_client else letter)

    def fold(
        self,
        c2s: Sequence[TlsEvent | _Bare],
        c2s_frames: Sequence[int | None],
        s2c: Sequence[TlsEvent | _Bare],
        s2c_frames: Sequence[int | None],
    ) -> None:
        """Fold both directions' events (with their frames, from :func:`_frames`) interleaved
        by frame number, each direction in its own order; an event without a frame inherits
        the previous one of its direction. Either side may be empty."""
        handler = _FOLD
        i = j = 0
        key_c = key_s = 0
        nc, ns = len(c2s), len(s2c)
        while i < nc and j < ns:
            fc = c2s_frames[i]
            fs = s2c_frames[j]
            kc = key_c if fc is None else fc
            ks = key_s if fs is None else fs
            if kc <= ks:
                key_c = kc
                ev = c2s[i]
                handler[type(ev)](self, True, ev, fc)
                i += 1
            else:
                key_s = ks
                ev = s2c[j]
                handler[type(ev)](self, False, ev, fs)
                j += 1
        # one direction is used up: the rest of the other follows in its own order
        for k in range(i, nc):
            ev = c2s[k]
            handler[type(ev)](self, True, ev, c2s_frames[k])
        for k in range(j, ns):
            ev = s2c[k]
            handler[type(ev)](self, False, ev, s2c_frames[k])

    def _change_cipher_spec(self, from_client: bool, ev: ChangeCipherSpec, frame: int | None
                            ) -> None:
        self.ccs[from_client] = True
        key = "client_ccs" if from_client else "server_ccs"
        if key not in self.at:
            self.at[key] = _where(ev.offset, frame)
        self._letter(from_client, "i", ev.offset, frame)

    def _alert(self, from_client: bool, ev: Alert, frame: int | None) -> None:
        at = _where(ev.offset, frame)
        self.alerts.append(AlertInfo(from_client, ev.level, ev.description, ev.encrypted, at))
        if ev.encrypted:
            self.traffic[from_client].add(ev.length, at)
        self._letter(from_client, "l", ev.offset, frame)

    def _anomaly(self, from_client: bool, ev: Anomaly, frame: int | None) -> None:
        at = _where(ev.offset, frame)
        self.anomalies.append(TlsAnomaly(from_client, ev.code, ev.message, at))

    def _stopped(self, from_client: bool, ev: Stopped, frame: int | None) -> None:
        self.stops.append(StreamStop(from_client, ev.reason, ev.detail, _where(ev.offset, frame)))

    def _handshake(self, from_client: bool, ev: HandshakeMessage, frame: int | None) -> None:
        self._message(from_client, (ev.offset, ev.msg_type, ev.length, ev.body, ev.end), frame)

    def _message(self, from_client: bool, msg: _Message, frame: int | None) -> None:
        off, t, _, body, _ = msg
        letter = _LETTERS.get(t, "z")
        # A message type only the other side sends is reported and otherwise ignored.
        if t in (_SERVER_ONLY if from_client else _CLIENT_ONLY):
            self.anomalies.append(
                TlsAnomaly(
                    from_client,
                    "tls.handshake.unexpected_direction",
                    f"{name_of(HandshakeType, t, 2)} from the "
                    f"{'client' if from_client else 'server'}",
                    _where(off, frame),
                )
            )
        elif t == _CLIENT_HELLO:
            if body is not None:
                if self.ch is None:
                    self.ch, self.ch_at = body, _where(off, frame)
                self.c2s_after_ch.clear()
        elif t == _SERVER_HELLO:
            if body is not None:
                if body.hello_retry_request:
                    self.hrr = body
                    letter = "j"
                elif self.sh is None:
                    self.sh, self.sh_at = body, _where(off, frame)
                    self.alert_size = 11 if body.cipher_suite == 0x1305 else 19
                    self.s2c_after_sh = 0
        elif t == _CERTIFICATE:
            key = "client_cert" if from_client else "server_cert"
            if key not in self.at:
                if from_client:
                    self.client_cert = body
                else:
                    self.server_cert = body
                self.at[key] = _where(off, frame)
        elif t == _CERTIFICATE_REQUEST:
            if "cert_request" not in self.at:
                self.cert_request = body
                self.at["cert_request"] = _where(off, frame)
        elif t == _NEW_SESSION_TICKET:
            if isinstance(body, NewSessionTicket) and len(self.tickets) < MAX_TICKETS:
                self.tickets.append((body.ticket, _where(off, frame)))
        else:
            key = _MARKS.get((t, from_client))
            if key is not None and key not in self.at:
                self.at[key] = _where(off, frame)
        if len(self.history) < MAX_HISTORY:  # _letter's common case, inlined
            self.history.append(letter.upper() if from_client else letter)
        else:
            self._letter(from_client, letter, off, frame)

    def _encrypted(self, from_client: bool, ev: EncryptedRecord, frame: int | None) -> None:
        self._bare(from_client, (ev.offset, ev.content_type, ev.length), frame)

    def _bare(self, from_client: bool, ev: _Bare, frame: int | None) -> None:
        """A _Bare tuple: a handshake message, or (inline: the commonest event) an opaque
        record."""
        if len(ev) != 3:
            self._message(from_client, ev, frame)
            return
        off, ctype, length = ev
        traffic = self.traffic[from_client]  # _Traffic.add, inlined: this is the hot path
        traffic.records += 1
        traffic.total += length
        if traffic.records <= MAX_SIZES:  # len(sizes) < MAX_SIZES before this record
            traffic.sizes.append(length)
        at = None
        if traffic.first_at is None:
            at = traffic.first_at = _where(off, frame)
        if ctype == 23:
            if not self.app_seen[from_client]:
                self.app_seen[from_client] = True
                self._letter(from_client, "d", off, frame)
            if from_client:
                sizes = self.c2s_after_ch
                if len(sizes) < MAX_SIZES:
                    if not sizes:
                        self.c2s_after_ch_first = (off, frame)
                    sizes.append(length)
                if length != self.alert_size:
                    self.client_finished_seen = True
            else:
                self.s2c_after_sh += 1
                if self.client_finished_seen and self.s2c_after_client_fin < 8:
                    if not self.s2c_after_client_fin:
                        self.s2c_after_client_fin_first = (length, off, frame)
                    self.s2c_after_client_fin += 1
        elif ctype == 22:
            key = "client_finished" if from_client else "server_finished"
            if key not in self.at:
                self.at[key] = _where(off, frame) if at is None else at
                self._letter(from_client, "f", off, frame)
        elif ctype == 24:
            self._letter(from_client, "b", off, frame)

    # -- verdict-free outcome

    def _stops_text(self) -> str:
        parts = []
        for s in self.stops:
            side = "client->server" if s.from_client else "server->client"
            frame = f" (after frame {s.at.frame})" if s.at.frame is not None else ""
            parts.append(f"{side}: {s.detail}{frame}")
        return "; ".join(parts)

    def _outcome(self, extra: list[TlsAnomaly]) -> tuple[str, str, bool]:
        """(outcome, detail, inferred); hints that need no raising go to ``extra``."""
        tls13 = self.sh is not None and _is_tls13(self.sh.version)
        if tls13:
            alert_size = self.alert_size
            client_real = any(n != alert_size for n in self.c2s_after_ch)
            if self.s2c_after_sh and client_real:
                detail = (
                    "TLS 1.3: encrypted records flowed both ways after the ServerHello, "
                    "so the handshake probably completed (its messages are encrypted)"
                )
                size, offset, frame = self.s2c_after_client_fin_first
                if self.s2c_after_client_fin == 1 and size == alert_size:
                    detail += (
                        "; but the server's only record after the client's Finished is "
                        f"alert-sized ({alert_size} bytes): it probably rejected the "
                        "client, e.g. its certificate"
                    )
                    extra.append(
                        TlsAnomaly(
                            False,
                            SERVER_ALERT_SUSPECTED,
                            f"single {alert_size}-byte record after the client's Finished",
                            Where(offset, frame),
                        )
                    )
                return "completed", detail, True
            if self.c2s_after_ch and not client_real:
                extra.append(
                    TlsAnomaly(
                        True,
                        "tls.tls13.client_alert_suspected",
                        f"the client's only encrypted records are {alert_size} bytes",
                        Where(*self.c2s_after_ch_first),
                    )
                )
        else:
            sh, ch = self.sh, self.ch
            if sh and sh.downgrade and ch and any(_is_tls13(v) for v in ch.versions):
                extra.append(
                    TlsAnomaly(
                        False,
                        "tls.server_hello.downgrade_sentinel",
                        f"the client offered TLS 1.3, the server chose {sh.version_name} and "
                        f"its random carries the {sh.downgrade} downgrade sentinel",
                        self.sh_at or Where(0, None),
                    )
                )
            if self.client_cert is not None and self.cert_request is None and self.sh:
                extra.append(
                    TlsAnomaly(
                        True,
                        "tls.certificate.unsolicited",
                        "client Certificate without a CertificateRequest",
                        self.at.get("client_cert", Where(0, None)),
                    )
                )
            at = self.at
            done = (
                self.ccs[True]
                and self.ccs[False]
                and "client_finished" in at
                and "server_finished" in at
            )
            if done:
                return (
                    "completed",
                    "both sides sent ChangeCipherSpec and an encrypted Finished",
                    False,
                )
        if self.alerts:
            fatal = [a for a in self.alerts if a.level == AlertLevel.fatal]
            first = (fatal or [a for a in self.alerts if a.encrypted] or self.alerts)[0]
            where = f" (frame {first.at.frame})" if first.at.frame is not None else ""
            return "alert", f"{first.text()}{where} before the handshake completed", False
        missing = []
        if self.ch is None:
            missing.append("no ClientHello")
        elif self.sh is None:
            missing.append("no ServerHello" + (" after the HelloRetryRequest" if self.hrr else ""))
        elif tls13:
            if not self.s2c_after_sh:
                missing.append("no encrypted server records after the ServerHello")
            if not self.c2s_after_ch:
                missing.append("no encrypted client records")
            elif not any(n != self.alert_size for n in self.c2s_after_ch):
                missing.append(
                    "the client sent only alert-sized encrypted records "
                    "(it probably aborted with an encrypted alert)"
                )
        else:
            for key, text in (
                ("client_ccs", "client ChangeCipherSpec"),
                ("client_finished", "client Finished"),
                ("server_ccs", "server ChangeCipherSpec"),
                ("server_finished", "server Finished"),
            ):
                if key not in self.at:
                    missing.append(f"no {text}")
        stops = self._stops_text()
        return "incomplete", "; ".join(missing) + (f" [{stops}]" if stops else ""), False

    def _resumption(self) -> str | None:
        """How this handshake resumed a session, from the hellos and the server's flight."""
        sh, ch = self.sh, self.ch
        if sh is None or ch is None:
            return None
        if _is_tls13(sh.version):
            return "psk" if any(e.type == _PRE_SHARED_KEY_EXT for e in sh.extensions) else None
        if "server_cert" in self.at or "server_hello_done" in self.at:
            return None  # a full handshake, whatever the session IDs say
        ticket = any(e.type == _SESSION_TICKET_EXT and e.data for e in ch.extensions)
        if sh.session_id and sh.session_id == ch.session_id:
            return "ticket" if ticket else "session_id"
        # RFC 5077 3.4: a ticket accepted without a session ID to echo shows only in the shape
        # of the server's flight: ServerHello, [NewSessionTicket], ChangeCipherSpec.
        return "ticket" if ticket and self.ccs[False] else None

    def result(self) -> TlsHandshake:
        sh, at = self.sh, self.at.get
        hello = sh or self.hrr
        version = hello.version if hello else None
        extra: list[TlsAnomaly] = []
        outcome, detail, inferred = self._outcome(extra)
        sc, cc = self.server_cert, self.client_cert
        return TlsHandshake(
            version=version,
            version_name=None if version is None else version_name(version),
            cipher=None if sh is None else sh.cipher_suite,
            cipher_name=None if sh is None else sh.cipher_name,
            client_hello=self.ch,
            client_hello_at=self.ch_at,
            server_hello=sh,
            server_hello_at=self.sh_at,
            hello_retry_request=self.hrr is not None,
            server_certs=list(sc.certificates) if sc else [],
            server_certs_at=at("server_cert"),
            server_certificates_length=sc.certificates_length if sc else None,
            cert_request=self.cert_request,
            cert_request_at=at("cert_request"),
            client_certificate=list(cc.certificates) if cc else None,
            client_certificate_at=at("client_cert"),
            client_certificates_length=cc.certificates_length if cc else None,
            server_key_exchange_at=at("server_key_exchange"),
            server_hello_done_at=at("server_hello_done"),
            client_key_exchange_at=at("client_key_exchange"),
            certificate_verify_at=at("certificate_verify"),
            client_ccs_at=at("client_ccs"),
            server_ccs_at=at("server_ccs"),
            client_finished_at=at("client_finished"),
            server_finished_at=at("server_finished"),
            alerts=list(self.alerts),
            c2s_encrypted=self.traffic[True].freeze(),
            s2c_encrypted=self.traffic[False].freeze(),
            tls13_encrypted=sh is not None and _is_tls13(sh.version),
            outcome=outcome,
            outcome_detail=detail,
            outcome_inferred=inferred,
            history="".join(self.history),
            stops=list(self.stops),
            anomalies=[*self.anomalies, *extra],
            resumption=self._resumption(),
            session_tickets=[t for t, _ in self.tickets],
            session_ticket_at=self.tickets[0][1] if self.tickets else None,
        )


# _Summary's handler for each event type: one dict lookup instead of an isinstance chain
_FOLD: dict[type, Callable[[_Summary, bool, Any, int | None], None]] = {
    tuple: _Summary._bare,
    EncryptedRecord: _Summary._encrypted,
    HandshakeMessage: _Summary._handshake,
    ChangeCipherSpec: _Summary._change_cipher_spec,
    Alert: _Summary._alert,
    Anomaly: _Summary._anomaly,
    Stopped: _Summary._stopped,
}


# --------------------------------------------------------------------------- entry points

FrameAt = Callable[[int], "int | None"]


class ReassembledStream(Protocol):
    """What the TCP reassembler hands over for one direction."""

    data: bytes
    gaps: Sequence[tuple[int, int]]

    def frame_at(self, offset: int) -> int | None: ...


def _frames(events: Sequence[TlsEvent | _Bare], frame_at: FrameAt | None) -> list[int | None]:
    """The frame of each event: the one carrying its first byte, but for a handshake message
    the one completing its record, and for a stop the last one before it."""
    if frame_at is None:
        return [None] * len(events)
    out: list[int | None] = []
    append = out.append
    for ev in events:
        cls = type(ev)
        if cls is tuple:
            if len(ev) == 3 or ev[4] is None or ev[4] <= ev[0]:
                append(frame_at(ev[0]))
            else:
                append(frame_at(ev[4] - 1))
        elif cls is HandshakeMessage and ev.end is not None and ev.end > ev.offset:
            append(frame_at(ev.end - 1))
        elif cls is Stopped:  # nothing at the stop offset: name the last frame before it
            append(frame_at(ev.offset - 1) if ev.offset > 0 else None)
        else:
            append(frame_at(ev.offset))
    return out


class TlsConnection:
    """Incremental use: feed each direction as bytes arrive (in time order), then
    :meth:`result`. The server's negotiated version is passed to the client side as soon as
    its ServerHello is parsed."""

    def __init__(
        self, c2s_frame_at: FrameAt | None = None, s2c_frame_at: FrameAt | None = None
    ) -> None:
        self.c2s = TlsStream(True)
        self.s2c = TlsStream(False)
        self._frame_at = {True: c2s_frame_at, False: s2c_frame_at}
        self._summary = _Summary()

    def _absorb(self, from_client: bool, events: list[TlsEvent]) -> list[TlsEvent]:
        frames = _frames(events, self._frame_at[from_client])
        if from_client:
            self._summary.fold(events, frames, (), ())
        else:
            self._summary.fold((), (), events, frames)
        if not from_client:
            self.c2s.set_version(self.s2c.version)
        return events

    def _stream(self, from_client: bool) -> TlsStream:
        return self.c2s if from_client else self.s2c

    def feed(
        self, from_client: bool, data: bytes | bytearray | memoryview, stream_offset: int
    ) -> list[TlsEvent]:
        return self._absorb(from_client, self._stream(from_client).feed(data, stream_offset))

    def gap(self, from_client: bool, stream_offset: int, size: int) -> list[TlsEvent]:
        return self._absorb(from_client, self._stream(from_client).gap(stream_offset, size))

    def end(self, from_client: bool, stream_offset: int | None = None) -> list[TlsEvent]:
        return self._absorb(from_client, self._stream(from_client).end(stream_offset))

    def result(self) -> TlsHandshake:
        return self._summary.result()


def _run(
    from_client: bool, src: ReassembledStream, start: int, version: int | None = None,
    encrypted: bool = False, piece: int = 0,
) -> tuple[TlsStream, list[TlsEvent | _Bare]]:
    """Parse one direction from ``start`` up to its first gap (or its end), with its
    commonest events in bare form; ``version`` is the server's, for the client side;
    ``encrypted``: ``start`` lies past the direction's ChangeCipherSpec. ``piece`` > 0 takes
    the general path instead: event objects, no shortcuts, fed ``piece`` bytes at a time."""
    stream = TlsStream(from_client)
    stream._bare = not piece
    stream._shortcuts = not piece
    stream.set_version(version)
    stream._ccs = encrypted
    data = src.data
    start = max(0, start)
    stop = len(data)
    gap_size = 0
    for off, size in sorted(src.gaps or ()):
        if size > 0 and off + size > start and off < stop:
            stop, gap_size = max(off, start), off + size - max(off, start)
            break
    if not piece:
        events = stream._feed_whole(data, start, stop) if stop > start else []
    else:
        events = []
        for at in range(start, stop, piece):
            events += stream.feed(data[at : min(stop, at + piece)], at)
    if gap_size:
        events += stream.gap(stop, gap_size)
    else:
        events += stream.end(max(stop, start))
    return stream, events


def parse_handshake(
    c2s: ReassembledStream, s2c: ReassembledStream, c2s_start: int = 0, s2c_start: int = 0,
    *, encrypted: tuple[bool, bool] = (False, False), _general: int = 0,
) -> TlsHandshake:
    """One connection's handshake from its two reassembled streams.

    ``*_start`` are the stream offsets where TLS begins (right after the STARTTLS 220; 0 for
    implicit TLS). Each direction stops at its first gap after its start. The server side is
    parsed first so the client side knows the negotiated version. ``encrypted`` (client,
    server) marks a direction read from a point past its ChangeCipherSpec (a capture that
    began mid-session), so its alerts and handshake records are opaque.

    The streams are parsed with TlsStream's shortcuts and _Bare events, for speed. Tests
    prove that changes nothing: ``_general`` > 0 takes the general path instead (event
    objects, every byte through the record and message buffering, fed through
    ``TlsStream.feed`` ``_general`` bytes at a time).
    """
    server, s_events = _run(False, s2c, s2c_start, encrypted=encrypted[1], piece=_general)
    _, c_events = _run(True, c2s, c2s_start, server.version, encrypted[0], piece=_general)
    summary = _Summary()
    c_frames, s_frames = _frames(c_events, c2s.frame_at), _frames(s_events, s2c.frame_at)
    summary.fold(c_events, c_frames, s_events, s_frames)
    return summary.result()


def parse_flights(flights: Iterable[tuple[bool, bytes]]) -> TlsHandshake:
    """Convenience for tests and tools: (from_client, bytes) flights in wire order, each
    flight its own pseudo-frame (numbered from 1)."""
    conn_frames: dict[bool, list[tuple[int, int]]] = {True: [], False: []}
    offsets = {True: 0, False: 0}
    chunks: list[tuple[bool, bytes, int]] = []
    for n, (from_client, data) in enumerate(flights, 1):
        conn_frames[from_client].append((offsets[from_client], n))
        chunks.append((from_client, data, offsets[from_client]))
        offsets[from_client] += len(data)

    def frame_at(from_client: bool) -> FrameAt:
        table = conn_frames[from_client]

        def lookup(offset: int) -> int | None:
            found = None
            for start, frame in table:
                if start > offset:
                    break
                found = frame
            return found if offset < offsets[from_client] else None

        return lookup

    conn = TlsConnection(frame_at(True), frame_at(False))
    for from_client, data, off in chunks:
        conn.feed(from_client, data, off)
    conn.end(True)
    conn.end(False)
    return conn.result()
