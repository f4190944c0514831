"""Folds both directions' events, in time order, into the state a :class:`.facts.TlsHandshake`
is built from (:mod:`.outcome` does that).

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

from collections.abc import Callable, Sequence
from typing import Any

from .const import HandshakeType, name_of
from .events import (
    Alert,
    Anomaly,
    ChangeCipherSpec,
    EncryptedRecord,
    HandshakeMessage,
    Stopped,
    TlsEvent,
    _Bare,
    _Message,
)
from .facts import (
    AlertInfo,
    EncryptedTraffic,
    StreamStop,
    TlsAnomaly,
    Where,
    _make_alert,
    _make_anomaly,
    _make_stop,
    _make_traffic,
    _where,
)
from .messages import (
    _CERTIFICATE,
    _CERTIFICATE_REQUEST,
    _CLIENT_HELLO,
    _NEW_SESSION_TICKET,
    _SERVER_HELLO,
    _SERVER_KEY_EXCHANGE,
    Certificate,
    CertificateRequest,
    ClientHello,
    NewSessionTicket,
    ServerHello,
    ServerKeyExchange,
)

MAX_SIZES = 256  # encrypted record sizes kept per direction
MAX_ORDER = 32  # of those, how many keep their place relative to the other direction's
MAX_HISTORY = 100  # as Zeek's max_ssl_history_length
MAX_TICKETS = 4  # NewSessionTicket messages kept from one handshake


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
    __slots__ = ("records", "total", "sizes", "first_at", "peer_before")

    def __init__(self) -> None:
        self.records = 0
        self.total = 0
        self.sizes: list[int] = []
        self.first_at: Where | None = None
        self.peer_before: list[int] = []

    def add(self, length: int, at: Where, peer_records: int) -> None:
        self.records += 1
        self.total += length
        if len(self.sizes) < MAX_SIZES:
            self.sizes.append(length)
            if len(self.peer_before) < MAX_ORDER:
                self.peer_before.append(peer_records)
        if self.first_at is None:
            self.first_at = at

    def freeze(self) -> EncryptedTraffic:
        return _make_traffic(self.records, self.total, tuple(self.sizes), self.first_at,
                             tuple(self.peer_before))


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


# The suites whose ServerKeyExchange opens with ECParameters (RFC 8422 5.4): ECDHE_ECDSA,
# ECDHE_RSA and ECDH_anon, the draft ChaCha20 ones included; not ECDHE_PSK, whose message opens
# with the PSK identity hint (RFC 5489 2).
_ECDHE_SUITES = frozenset({
    0xC006, 0xC007, 0xC008, 0xC009, 0xC00A, 0xC010, 0xC011, 0xC012, 0xC013, 0xC014, 0xC015,
    0xC016, 0xC017, 0xC018, 0xC019, 0xC023, 0xC024, 0xC027, 0xC028, 0xC02B, 0xC02C, 0xC02F,
    0xC030, 0xC048, 0xC049, 0xC04C, 0xC04D, 0xC05C, 0xC05D, 0xC060, 0xC061, 0xC072, 0xC073,
    0xC076, 0xC077, 0xC086, 0xC087, 0xC08A, 0xC08B, 0xC0AC, 0xC0AD, 0xC0AE, 0xC0AF, 0xCC13,
    0xCC14, 0xCCA8, 0xCCA9,
})


def _ecdhe(sh: ServerHello | None) -> bool:
    """Whether the ServerHello's suite exchanges keys by ephemeral ECDH with the curve first
    in its ServerKeyExchange."""
    return sh is not None and sh.cipher_suite in _ECDHE_SUITES


class _Summary:
    """Both directions' events, folded in time order: what :func:`.outcome.handshake_of`
    turns into a :class:`.facts.TlsHandshake`.

    Completion (:mod:`.outcome`) is judged from per-direction facts only (CCS + encrypted
    Finished each way, or TLS 1.3 records after the hellos), so it does not depend on how the
    directions interleave; only ``history`` and the "server answered the client's Finished with
    an alert-sized record" hint use the cross-direction order.

    Events come with their offset and frame; a :class:`Where` is built only where one is kept
    (most events, application data above all, keep none).
    """

    __slots__ = (
        "ch", "ch_at", "sh", "sh_at", "hrr", "at", "server_cert", "client_cert", "cert_request",
        "alerts", "traffic", "ccs", "app_seen", "s2c_after_sh", "c2s_after_ch",
        "c2s_after_ch_first", "client_finished_seen", "s2c_after_client_fin",
        "s2c_after_client_fin_first", "alert_size", "history", "history_frames",
        "history_capped", "stops", "anomalies", "tickets", "ske_group", "first_record_frame",
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
        self.history_frames: list[int | None] = []  # the frame of each letter's record
        self.history_capped = False
        self.stops: list[StreamStop] = []
        self.anomalies: list[TlsAnomaly] = []
        self.tickets: list[tuple[bytes, Where]] = []
        # the named curve of the first ServerKeyExchange of an ECDHE suite (TLS <= 1.2)
        self.ske_group: int | None = None
        self.first_record_frame: int | None = None  # set by the caller that parsed the records

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
        self.history_frames.append(frame)

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
        self.alerts.append(_make_alert(from_client, ev.level, ev.description, ev.encrypted, at))
        if ev.encrypted:
            self.traffic[from_client].add(ev.length, at, self.traffic[not from_client].records)
        self._letter(from_client, "l", ev.offset, frame)

    def _anomaly(self, from_client: bool, ev: Anomaly, frame: int | None) -> None:
        at = _where(ev.offset, frame)
        self.anomalies.append(_make_anomaly(from_client, ev.code, ev.message, at))

    def _stopped(self, from_client: bool, ev: Stopped, frame: int | None) -> None:
        self.stops.append(_make_stop(from_client, ev.reason, ev.detail, _where(ev.offset, frame)))

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
        elif t == _SERVER_KEY_EXCHANGE and not from_client:
            if "server_key_exchange" not in self.at:
                self.at["server_key_exchange"] = _where(off, frame)
                if isinstance(body, ServerKeyExchange) and _ecdhe(self.sh):
                    self.ske_group = body.named_curve
        else:
            key = _MARKS.get((t, from_client))
            if key is not None and key not in self.at:
                self.at[key] = _where(off, frame)
        if len(self.history) < MAX_HISTORY:  # _letter's common case, inlined
            self.history.append(letter.upper() if from_client else letter)
            self.history_frames.append(frame)
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
        records = traffic.records = traffic.records + 1
        traffic.total += length
        if records <= MAX_SIZES:  # len(sizes) < MAX_SIZES before this record
            traffic.sizes.append(length)
            if records <= MAX_ORDER:
                traffic.peer_before.append(self.traffic[not from_client].records)
        at = None
        if records == 1:  # first_at is set by the first record (here or in _Traffic.add)
            at = traffic.first_at = _where(off, frame)
        if ctype == 23:
            app_seen = self.app_seen
            if not app_seen[from_client]:
                app_seen[from_client] = True
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
                if self.client_finished_seen:
                    after = self.s2c_after_client_fin
                    if after < 8:
                        if not after:
                            self.s2c_after_client_fin_first = (length, off, frame)
                        self.s2c_after_client_fin = after + 1
        elif ctype == 22:
            key = "client_finished" if from_client else "server_finished"
            if key not in self.at:
                self.at[key] = _where(off, frame) if at is None else at
                self._letter(from_client, "f", off, frame)
            elif "renegotiation" not in self.at:  # a handshake after this side's Finished
                self.at["renegotiation"] = _where(off, frame) if at is None else at
        elif ctype == 24:
            self._letter(from_client, "b", off, frame)


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
