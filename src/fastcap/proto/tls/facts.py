"""What one connection's TLS handshake showed, as frozen facts, and their JSON form.

:class:`TlsHandshake` is the TLS stage's output: judging it is ``fastcap.judge``'s job. Every
message fastcap reports carries a :class:`Where` (stream offset and frame).
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...pickling import compact, maker
from .const import (
    AlertDescription,
    AlertLevel,
    CipherSuite,
    CompressionMethod,
    EcPointFormat,
    ExtensionType,
    NamedGroup,
    SignatureScheme,
    is_tls13,
    name_of,
    names_of,
    version_name,
)
from .messages import (
    _PRE_SHARED_KEY_EXT,
    _SESSION_TICKET_EXT,
    CertificateRequest,
    ClientHello,
    Extension,
    ServerHello,
)


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
    first one started.

    ``peer_before[i]`` is how many of the other direction's opaque records came before record
    ``i`` (for the first ``fold.MAX_ORDER`` records): TLS 1.3 hides the handshake messages, and
    which records answer which is what tells the flights apart (``inference``)."""

    records: int = 0
    total_length: int = 0
    sizes: tuple[int, ...] = ()
    first_at: Where | None = None
    peer_before: tuple[int, ...] = ()


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


# Built by the dozen per connection: through their slot descriptors (pickling.maker).
_make_alert = maker(AlertInfo)
_make_anomaly = maker(TlsAnomaly)
_make_traffic = maker(EncryptedTraffic)
_make_stop = maker(StreamStop)


def cert_dicts(ders: Sequence[bytes]) -> list[dict[str, Any]]:
    """A DER chain as JSON data."""
    return [_cert_dict(d) for d in ders]


def hello_head(ch: ClientHello) -> dict[str, Any]:
    """A ClientHello's JSON fields before its session id: they depend on no field but those
    of :func:`hello_shape` (so text made from them serves every hello of that shape)."""
    return {
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
        "compression_methods": list(names_of(CompressionMethod, ch.compression_methods, 2)),
    }


def hello_prints(ch: ClientHello) -> dict[str, Any]:
    """A ClientHello's JSON fields after its session id: the fingerprints."""
    return {"ja3": ch.ja3, "ja3_md5": ch.ja3_md5, "ja4": ch.ja4, "ja4_r": ch.ja4_r}


def hello_shape(ch: ClientHello) -> tuple[Any, ...]:
    """Everything :func:`hello_head` and :func:`hello_prints` read: a hello's fields but its
    random and session id (extensions by type only, as their JSON names them)."""
    return (ch.sslv2, ch.legacy_version, ch.supported_versions, ch.sni, ch.alpn,
            ch.cipher_suites, tuple([e.type for e in ch.extensions]), ch.signature_algorithms,
            ch.supported_groups, ch.ec_point_formats, ch.compression_methods, ch.ja3,
            ch.ja3_md5, ch.ja4, ch.ja4_r)


def hello_dict(ch: ClientHello, at: dict[str, Any] | None) -> dict[str, Any]:
    """A ClientHello as JSON data, after its Where's fields (``at``)."""
    return {**(at or {}), **hello_head(ch), "session_id": ch.session_id.hex(),
            **hello_prints(ch)}


def _at(w: Where | None) -> dict[str, int | None] | None:
    return None if w is None else w.to_dict()


@compact
@dataclass(frozen=True, slots=True)
class TlsHandshake:
    """What one connection's TLS handshake showed. Judging it is ``diagnose``'s job.

    ``client_certificate`` is None when the client sent no Certificate message, ``()`` when it
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
    server_certs: tuple[bytes, ...]
    server_certs_at: Where | None
    server_certificates_length: int | None
    cert_request: CertificateRequest | None
    cert_request_at: Where | None
    client_certificate: tuple[bytes, ...] | None
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
    alerts: tuple[AlertInfo, ...]
    c2s_encrypted: EncryptedTraffic
    s2c_encrypted: EncryptedTraffic
    tls13_encrypted: bool
    outcome: str
    outcome_detail: str
    outcome_inferred: bool
    history: str
    stops: tuple[StreamStop, ...] = ()
    anomalies: tuple[TlsAnomaly, ...] = ()
    # How the handshake resumed an earlier session: "session_id" (the ServerHello echoes the
    # ClientHello's session ID), "ticket" (a session ticket was offered and accepted), "psk"
    # (TLS 1.3 pre_shared_key in the ServerHello); None for a full handshake.  A resumed
    # handshake carries no Certificate: the original handshake's client certificate applies.
    resumption: str | None = None
    # Tickets this handshake issued in plaintext NewSessionTicket messages (TLS <= 1.2), and
    # where the first one was.
    session_tickets: tuple[bytes, ...] = ()
    session_ticket_at: Where | None = None
    # TLS <= 1.2: the first encrypted handshake record after a side's Finished, a
    # renegotiation (a server's HelloRequest or a client's new ClientHello).  What it carries,
    # a CertificateRequest and the client's Certificate among it, is encrypted.
    renegotiation_at: Where | None = None
    # TLS <= 1.2 with an ECDHE suite: the named curve its ServerKeyExchange chose (TLS 1.3's
    # group is the ServerHello's key share)
    server_key_exchange_group: int | None = None
    # The renegotiation was decrypted and read (a key log): the client certificate exchange
    # above is the last renegotiation's, when it had one.
    renegotiation_decrypted: bool = False
    # With a key log: the first renegotiation the keys did not reach, a handshake record after
    # the Finished of a renegotiation whose keys the key log lacks (what it asked is unknown)
    renegotiation_unread_at: Where | None = None
    # The frame completing the first TLS record of either direction, whatever it held (a
    # ClientHello sent in two records ends after it): where Zeek, which reads records
    # whole, begins the connection's ssl.log record.
    first_record_frame: int | None = None
    # The frame of each letter of ``history`` (the one completing its record): where a
    # reader that stops at a moment, as Zeek's SSL analyzer at a content gap, stops in it.
    history_frames: tuple[int | None, ...] = ()
    # (ticket, its SHA-256) for the tickets issued and the one offered, hashed once when the
    # handshake is folded: linking and every output format name a ticket by its digest, and
    # sessions are all linked before any is written.  Not part of the JSON.
    ticket_digests: tuple[tuple[bytes, bytes], ...] = ()

    @property
    def offered_ticket(self) -> bytes | None:
        """The session ticket the ClientHello offered to resume with (non-empty), if any."""
        return offered_ticket(self.client_hello)

    def ticket_digest(self, ticket: bytes) -> bytes:
        """The SHA-256 of one of this handshake's tickets: the one kept in ``ticket_digests``,
        else (a record built or changed by hand) computed."""
        for known, digest in self.ticket_digests:
            if known == ticket:
                return digest
        return ticket_digest(ticket)

    @property
    def established_session_id(self) -> bytes | None:
        """The session ID a full TLS <= 1.2 handshake gave its session (a later connection
        resumes by offering it); None when resumed, for TLS 1.3, or when the server gave none."""
        sh = self.server_hello
        if sh is None or self.resumption is not None or is_tls13(sh.version):
            return None
        return sh.session_id or None

    def messages(self) -> list[tuple[str, Where, bool]]:
        """(name, where, from the client) of every handshake message seen, in the order of
        RFC 5246's flow (ChangeCipherSpec and the encrypted Finished included), as the
        report's ladder draws them.  Names are the messages' own ("ClientHello",
        "Certificate", ...); alerts are in ``alerts``."""
        seen = (("ClientHello", self.client_hello_at, True),
                ("ServerHello", self.server_hello_at, False),
                ("Certificate", self.server_certs_at, False),
                ("ServerKeyExchange", self.server_key_exchange_at, False),
                ("CertificateRequest", self.cert_request_at, False),
                ("ServerHelloDone", self.server_hello_done_at, False),
                ("Certificate", self.client_certificate_at, True),
                ("ClientKeyExchange", self.client_key_exchange_at, True),
                ("CertificateVerify", self.certificate_verify_at, True),
                ("ChangeCipherSpec", self.client_ccs_at, True),
                ("Finished", self.client_finished_at, True),
                ("NewSessionTicket", self.session_ticket_at, False),
                ("ChangeCipherSpec", self.server_ccs_at, False),
                ("Finished", self.server_finished_at, False))
        return [(name, at, client) for name, at, client in seen if at is not None]

    @property
    def cert_requested(self) -> bool:
        """The server sent a CertificateRequest (even one too malformed to parse). A TLS 1.3
        client sends its Certificate only in answer to one (RFC 8446 4.4.2), so that counts
        too: with keys for the client's flight but not the server's, the request stays
        encrypted while the answer is read."""
        return self.cert_request_at is not None or (
            self.client_certificate_at is not None and is_tls13(self.version))

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
        """JSON-ready: certificates as base64 DER with SHA-256 thumbprints, codes as names
        (fastcap.out.jsonline writes the same JSON without the dicts: a change here goes
        there too)."""
        ch = self.client_hello
        sh = self.server_hello
        cr = self.cert_request
        return {
            "version": self.version_name,
            "version_code": self.version,
            "cipher": self.cipher_name,
            "cipher_code": self.cipher,
            "client_hello": None if ch is None else hello_dict(ch, _at(self.client_hello_at)),
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
                "certificates": cert_dicts(self.server_certs),
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
                "certificates": cert_dicts(self.client_certificate),
            },
            "server_key_exchange": _at(self.server_key_exchange_at),
            "server_key_exchange_group": None
            if self.server_key_exchange_group is None
            else name_of(NamedGroup, self.server_key_exchange_group),
            "server_hello_done": _at(self.server_hello_done_at),
            "client_key_exchange": _at(self.client_key_exchange_at),
            "certificate_verify": _at(self.certificate_verify_at),
            "client_change_cipher_spec": _at(self.client_ccs_at),
            "server_change_cipher_spec": _at(self.server_ccs_at),
            "client_finished": _at(self.client_finished_at),
            "server_finished": _at(self.server_finished_at),
            "renegotiation": _at(self.renegotiation_at),
            "renegotiation_decrypted": self.renegotiation_decrypted,
            "renegotiation_unread": _at(self.renegotiation_unread_at),
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
                    "peer_before": list(t.peer_before),
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
            "ticket_offered": None if offered is None else self._ticket_dict(offered),
            "tickets_issued": [self._ticket_dict(t) for t in self.session_tickets],
            "ticket_issued_at": _at(self.session_ticket_at),
        }

    def _ticket_dict(self, ticket: bytes) -> dict[str, Any]:
        """Tickets are opaque and can be long: their size and a SHA-256 to match them by."""
        return {"length": len(ticket), "sha256": self.ticket_digest(ticket).hex()}


def offered_ticket(ch: ClientHello | None) -> bytes | None:
    """The session ticket a ClientHello offered to resume with (non-empty), if any: its
    session_ticket extension (TLS <= 1.2), else the first identity of its pre_shared_key
    extension, which for a resumption is the ticket a TLS 1.3 server issued (RFC 8446
    4.2.11), sent in the clear although the ticket itself went encrypted."""
    for ext in getattr(ch, "extensions", ()):
        if ext.type == _SESSION_TICKET_EXT and ext.data:
            return ext.data
        if ext.type == _PRE_SHARED_KEY_EXT:
            d = ext.data
            n = int.from_bytes(d[2:4], "big") if len(d) >= 4 else 0
            return d[4:4 + n] if n and len(d) >= 4 + n else None
    return None


def ticket_digests(issued: tuple[bytes, ...],
                   offered: bytes | None) -> tuple[tuple[bytes, bytes], ...]:
    """``TlsHandshake.ticket_digests``: each distinct ticket with its SHA-256."""
    if not issued and offered is None:
        return ()
    both = issued if offered is None else (*issued, offered)
    return tuple({t: ticket_digest(t) for t in both}.items())


@functools.lru_cache(maxsize=64)
def ticket_digest(ticket: bytes) -> bytes:
    """A ticket's SHA-256.  A resumption offers the ticket an earlier connection was issued,
    usually a few connections before: kept for the latest few tickets, it is computed once
    for both.  A ticket is under 64 KiB (RFC 8446 §4.6.1), so the cache holds at most
    4 MiB."""
    return hashlib.sha256(ticket).digest()


_make_handshake = maker(TlsHandshake)
