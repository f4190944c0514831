"""A session's TLS read with its keys: both directions decrypted, then the same parsers as for
plaintext run on what came out.

The decrypted handshake records are written back as plaintext records into a stream built for
the purpose, so a TLS 1.3 Certificate or CertificateRequest reaches the analysis a TLS 1.2 one
does; the decrypted application data is a stream of its own, read by the SMTP parser from the
client's EHLO on.  Every byte of both maps back to the frame that completed its ciphertext
record, so findings name the frames Wireshark shows.  Only sessions whose ClientHello random
the key log knows pay for any of this.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..options import DEFAULT_DECRYPT_LIMIT
from .decryption import Decryption as Decryption
from .decryption import DirectionDecryption as DirectionDecryption
from .decryption import PlainStream as PlainStream
from .smtp import SmtpDialogue, parse_dialogue
from .tls import TlsAnomaly, TlsHandshake, Where, parse_handshake
from .tls.const import is_tls13
from .tls.decrypt import (
    UNKEYED_WHY,
    CipherRecord,
    Decrypted,
    PlainRecord,
    Rekey,
    decrypt_direction,
    handshake_messages,
)
from .tls.keylog import KeyLog
from .tls.messages import ClientHello, ServerHello, parse_client_hello, parse_server_hello
from .tls.recordlist import list_records

_ENCRYPT_THEN_MAC = 22  # extension type (RFC 7366)
_ALERT, _HANDSHAKE, _APPLICATION_DATA = 21, 22, 23
_CLIENT_HELLO, _SERVER_HELLO = 1, 2
MAX_RENEGOTIATIONS = 8  # renegotiations whose keys are followed in one session
_OFFSET = re.compile(r"stream offset (\d+)")


def _plain_header(content_type: int, data: bytes) -> bytes:
    return bytes((content_type, 3, 3, len(data) >> 8, len(data) & 0xFF))


def _handshake_stream(src: Any, records: Sequence[CipherRecord], listed_end: int,
                      plain: Sequence[PlainRecord], begin: int = 0,
                      until: int | None = None) -> PlainStream:
    """The direction as plaintext TLS: wire records as they were, but each decrypted
    handshake or alert record in place of its ciphertext (application data stays opaque,
    as in a capture without keys), and whatever followed the listed records (a cut record)
    copied too, so the record layer reports it as before.  Records before stream offset
    ``begin`` are left out, and with ``until`` those from there on and the rest."""
    by_offset: dict[int, list[PlainRecord]] = {}
    for p in plain:
        by_offset.setdefault(p.offset, []).append(p)
    data = src.data
    out = bytearray()
    pieces: list[tuple[int, int, int, int]] = []
    for r in records:
        if r.offset < begin:
            continue
        if until is not None and r.offset >= until:
            return PlainStream(bytes(out), pieces, src.frame_at)
        end = r.offset + 5 + len(r.body)
        opened = by_offset.get(r.offset)
        if opened is None or all(p.content_type == _APPLICATION_DATA for p in opened):
            pieces.append((len(out), r.offset, end - r.offset, end))
            out += data[r.offset:end]
            continue
        for p in opened:
            if not p.data or p.content_type == _APPLICATION_DATA:
                continue
            pieces.append((len(out), r.offset, 0, end))
            out += _plain_header(p.content_type, p.data)
            out += p.data
    tail_end = len(data)
    for off, size in sorted(getattr(src, "gaps", ()) or ()):
        if size > 0 and off + size > listed_end:
            tail_end = max(off, listed_end)
            break
    if tail_end > listed_end:
        pieces.append((len(out), listed_end, tail_end - listed_end, tail_end))
        out += data[listed_end:tail_end]
    return PlainStream(bytes(out), pieces, src.frame_at)


def _app_stream(src: Any, plain: Sequence[PlainRecord], records: Sequence[CipherRecord]
                ) -> PlainStream:
    """The decrypted application data of one direction, as one stream."""
    ends = {r.offset: r.offset + 5 + len(r.body) for r in records}
    out = bytearray()
    pieces: list[tuple[int, int, int, int]] = []
    for p in plain:
        if p.content_type == _APPLICATION_DATA and p.data:
            pieces.append((len(out), p.offset, 0, ends.get(p.offset, p.offset + 1)))
            out += p.data
    return PlainStream(bytes(out), pieces, src.frame_at)


def _tls13_finished(tls: TlsHandshake) -> bool:
    """A TLS 1.3 handshake whose Finished messages were both decrypted, read as unfinished only
    because the client sent no application data before an alert of its own (read without
    keys, completion rests on it): the client's Finished is its last handshake message, so a
    client alert after it ends a completed handshake. A server alert (its refusal of the
    client's flight) leaves the outcome as read."""
    fin = tls.client_finished_at
    return (tls.version is not None and is_tls13(tls.version) and fin is not None
            and all(a.from_client and a.at.offset > fin.offset for a in tls.alerts))


def _remap(tls: TlsHandshake, before: TlsHandshake, c2s: PlainStream, s2c: PlainStream
           ) -> TlsHandshake:
    """``tls`` (read from the plaintext streams) with its offsets back on the wire, and what
    only the wire can say taken from ``before`` (the reading without keys): the opaque
    record counts and sizes, and where each direction stopped."""

    def where(w: Where | None, stream: PlainStream) -> Where | None:
        return None if w is None else Where(stream.wire_offset(w.offset), w.frame)

    changes: dict[str, Any] = {}
    for f in dataclasses.fields(tls):
        if f.name.endswith("_at") and f.name not in ("session_ticket_at", "renegotiation_at"):
            client = f.name.startswith("client_") or f.name == "certificate_verify_at"
            changes[f.name] = where(getattr(tls, f.name), c2s if client else s2c)
    changes["session_ticket_at"] = where(tls.session_ticket_at, s2c)
    changes["alerts"] = tuple(dataclasses.replace(a, at=where(a.at, c2s if a.from_client
                                                              else s2c)) for a in tls.alerts)
    changes["anomalies"] = tuple(
        dataclasses.replace(a, at=where(a.at, c2s if a.from_client else s2c))
        for a in tls.anomalies)
    changes.update(c2s_encrypted=before.c2s_encrypted, s2c_encrypted=before.s2c_encrypted,
                   stops=before.stops, tls13_encrypted=False,
                   renegotiation_at=before.renegotiation_at)
    if tls.client_finished_at and tls.server_finished_at and (
            tls.outcome == "completed" or _tls13_finished(tls)):
        changes.update(outcome="completed",
                       outcome_detail="both sides sent their Finished (decrypted)",
                       outcome_inferred=False)
    return dataclasses.replace(tls, **changes)


def _hellos(plain: Sequence[PlainRecord], hello_type: int) -> list[tuple[int, bytes]]:
    """(offset of the record where it begins, body) of each decrypted hello of one type in a
    direction: in TLS <= 1.2 each begins a renegotiation, as every hello after the first
    handshake travels encrypted."""
    return [(offset, body) for offset, mtype, body in handshake_messages(plain)
            if mtype == hello_type][:MAX_RENEGOTIATIONS]


Hello = tuple[int, bytes]  # (stream offset of the record where it begins, body)


def _paired_hellos(c_src: Any, c_plain: Sequence[PlainRecord], s_src: Any,
                   s_plain: Sequence[PlainRecord]) -> list[tuple[Hello, Hello]]:
    """The (ClientHello, ServerHello) of each renegotiation, in turn: a ServerHello answers
    the last ClientHello before it in the capture, so a ClientHello the server refused (a
    no_renegotiation alert, after which the connection may go on) is paired with none."""
    clients = [(c_src.frame_at(o) or 0, (o, b)) for o, b in _hellos(c_plain, _CLIENT_HELLO)]
    pairs = []
    for o, b in _hellos(s_plain, _SERVER_HELLO):
        frame = s_src.frame_at(o) or 0
        before = [hello for f, hello in clients if f < frame]
        if before and (not pairs or pairs[-1][0] != before[-1]):
            pairs.append((before[-1], (o, b)))
    return pairs


def _etm(ch: ClientHello, sh: ServerHello) -> bool:
    return (any(e.type == _ENCRYPT_THEN_MAC for e in sh.extensions)
            and any(e.type == _ENCRYPT_THEN_MAC for e in ch.extensions))


def _rekeys(pairs: Sequence[tuple[Hello, Hello]], keys: KeyLog, known: Sequence[Rekey]
            ) -> list[Rekey]:
    """``known`` and the keys of the renegotiations after them that both hellos and the key
    log give; the first one missing ends the list (later keys would not be reached)."""
    out = list(known)
    for (_co, c_body), (_so, s_body) in pairs[len(known):]:
        ch, sh = parse_client_hello(c_body, []), parse_server_hello(s_body, [])
        if ch is None or sh is None:
            break
        secrets = keys.lookup(ch.random)
        if secrets is None:
            break
        out.append(Rekey(sh.cipher_suite, ch.random, sh.random, secrets, _etm(ch, sh),
                         sh.version_name))
    return out


_RENEGOTIATED_CLIENT_CERT = ("cert_request", "cert_request_at", "client_certificate",
                             "client_certificate_at", "client_certificates_length",
                             "certificate_verify_at")


def _with_renegotiation(tls: TlsHandshake, again: TlsHandshake, c2s: PlainStream,
                        s2c: PlainStream) -> TlsHandshake:
    """The first handshake's reading with the client certificate exchange of a renegotiation
    (``again``, read from the decrypted streams ``c2s``/``s2c``): a server that asks for a
    certificate by renegotiating (as IIS does) judges the answer there."""

    def where(w: Where | None, stream: PlainStream) -> Where | None:
        return None if w is None else Where(stream.wire_offset(w.offset), w.frame)

    changes: dict[str, Any] = {f: getattr(again, f) for f in _RENEGOTIATED_CLIENT_CERT}
    changes.update(renegotiation_decrypted=True,
                   cert_request_at=where(again.cert_request_at, s2c),
                   client_certificate_at=where(again.client_certificate_at, c2s),
                   certificate_verify_at=where(again.certificate_verify_at, c2s))
    changes["anomalies"] = (*tls.anomalies, *(
        dataclasses.replace(a, at=where(a.at, c2s if a.from_client else s2c))
        for a in again.anomalies))
    return dataclasses.replace(tls, **changes)


def _renegotiations_read(tls: TlsHandshake, client: tuple[Any, Sequence[CipherRecord], int,
                                                         Decrypted],
                         server: tuple[Any, Sequence[CipherRecord], int, Decrypted]
                         ) -> TlsHandshake:
    """``tls`` with what the decrypted renegotiations show: each is read as a handshake of
    its own, from its hello in each direction up to where decryption stopped (past it the
    records are ciphertext again): the last one with a client certificate exchange gives
    it, and the last one with a server Certificate the server's.  ``renegotiation_decrypted``
    is set when that exchange was read, or when everything was decrypted and no
    renegotiation had one."""
    (cs, c_recs, c_end, cd), (ss, s_recs, s_end, sd) = client, server
    hellos = _paired_hellos(cs, cd.records, ss, sd.records)
    tls = _version_changes(tls, ss, s_recs, [sh for _ch, sh in hellos])
    pairs = [(c[0], s[0]) for c, s in hellos]
    sent = asked = None
    for c_begin, s_begin in reversed(pairs):
        c_plain = _handshake_stream(cs, c_recs, c_end, cd.records, c_begin, _stop(cd))
        s_plain = _handshake_stream(ss, s_recs, s_end, sd.records, s_begin, _stop(sd))
        again = parse_handshake(c_plain, s_plain)
        if sent is None and again.server_certs_at is not None:
            sent = (again, s_plain)
        if asked is None and (again.cert_request_at is not None
                              or again.client_certificate_at is not None):
            asked = (again, c_plain, s_plain)
        if sent is not None and asked is not None:
            break
    if sent is not None:  # the certificate the server holds to now: the latest one sent
        again, s_plain = sent
        at = again.server_certs_at
        tls = dataclasses.replace(
            tls, server_certs=again.server_certs,
            server_certificates_length=again.server_certificates_length,
            server_certs_at=Where(s_plain.wire_offset(at.offset), at.frame))
    later = _later_unread(tls, client, server)
    if asked is not None:
        # the exchange read stands, but a renegotiation past the keys may have replaced it
        return dataclasses.replace(_with_renegotiation(tls, *asked),
                                   renegotiation_unread_at=later[0] if later else None)
    if later is None:
        return tls
    if later:
        return dataclasses.replace(tls, renegotiation_unread_at=later[0])
    # Every renegotiation message was read, so one without a request (or refused before its
    # ServerHello) is known to have had none.
    return dataclasses.replace(tls, renegotiation_decrypted=True)


def _version_changes(tls: TlsHandshake, src: Any, records: Sequence[CipherRecord],
                     hellos: Sequence[Hello]) -> TlsHandshake:
    """``tls`` with an anomaly for each renegotiation whose ServerHello chose another
    version than the first handshake: OpenSSL refuses that (wrong ssl version, a
    protocol_version alert); where a peer goes on, its keys are derived for the new version."""
    ends = {r.offset: r.offset + 4 + len(r.body) for r in records}
    changes = []
    for offset, body in hellos:
        sh = parse_server_hello(body, [])
        if sh is None or tls.version is None or sh.version == tls.version:
            continue
        changes.append(TlsAnomaly(
            False, "tls.renegotiation.version_changed",
            f"the renegotiation's ServerHello chose {sh.version_name}, the first handshake "
            f"{tls.version_name} (OpenSSL refuses a version change in a renegotiation)",
            Where(offset, src.frame_at(ends.get(offset, offset)))))
    return dataclasses.replace(tls, anomalies=(*tls.anomalies, *changes)) if changes else tls


def _later_unread(tls: TlsHandshake, client: tuple, server: tuple) -> list[Where] | None:
    """Where renegotiations begin that the keys do not reach, earliest first ([] when every
    one was read); None when that cannot be told (no renegotiation, too many, or a direction
    that failed for another reason than missing keys)."""
    cd, sd = client[3], server[3]
    if tls.renegotiation_at is None or any(
            sum(t in (_CLIENT_HELLO, _SERVER_HELLO) for _o, t, _b in handshake_messages(d.records))
            > MAX_RENEGOTIATIONS for d in (cd, sd)):
        return None
    unread = [_unread(src, recs, d) for src, recs, _e, d in (client, server)]
    if any(u is _UNKNOWN for u in unread):
        return None
    return sorted((u for u in unread if isinstance(u, Where)), key=lambda w: w.frame or 0)


_UNKNOWN = object()  # a direction whose decryption failed: what it carried is not known


def _unread(src: Any, records: Sequence[CipherRecord], d: Decrypted) -> object:
    """What one direction's records hide of its renegotiations: None when every handshake
    record in it was read.  Stopped at a renegotiation's ChangeCipherSpec for want of its keys,
    everything of that renegotiation before it was read (it travels under the keys before
    it); past it its Finished is the one handshake record expected, and a handshake record
    after that begins a renegotiation the keys do not reach: where it is.  A direction that
    failed otherwise is unknown."""
    if d.error is None:
        return None
    stop = _stop(d)
    if not d.unkeyed or stop is None:
        return _UNKNOWN
    after = [r for r in records if r.offset > stop and r.content_type == _HANDSHAKE]
    if len(after) < 2:
        return None
    r = after[1]
    return Where(r.offset, src.frame_at(r.offset + 4 + len(r.body)))


@dataclass(frozen=True, slots=True)
class Inside:
    """What decryption added to a session: the handshake as read with keys (or the one read
    without, unchanged), the SMTP dialogue inside TLS, the facts of the decryption, and the
    decrypted application data of each direction (for `follow`)."""

    tls: TlsHandshake
    smtp: SmtpDialogue | None
    decryption: Decryption
    c2s: PlainStream | None
    s2c: PlainStream | None


def _direction(d: Decrypted) -> DirectionDecryption:
    hs = sum(len(p.data) for p in d.records if p.content_type == _HANDSHAKE)
    return DirectionDecryption(len(d.records), hs, d.app_bytes, d.limited, d.error)


def _error(name: str, d: Decrypted, src: Any, records: Sequence[CipherRecord],
           unkeyed_why: str | None = None) -> tuple[str, int | None] | None:
    """The direction's failure as a finding's text, and the frame that completed the record
    it names (decrypt_direction names records by their stream offset); ``unkeyed_why`` says
    why a renegotiation's keys were unknown, when the hellos tell."""
    if d.error is None:
        return None
    error = d.error
    if d.unkeyed and unkeyed_why and error.endswith(UNKEYED_WHY):
        error = f"{error.removesuffix(UNKEYED_WHY)} ({unkeyed_why})"
    m = _OFFSET.search(d.error)
    frame = None
    if m is not None:
        at = int(m.group(1))
        rec = next((r for r in records if r.offset == at), None)
        frame = src.frame_at(at + 4 + len(rec.body) if rec is not None else at)
    where = f" (frame {frame})" if frame is not None else ""
    return f"{name}: {error}{where}", frame


def _unkeyed_why(pairs: Sequence[tuple[Hello, Hello]], rekeys: Sequence[Rekey]) -> str:
    """Why the keys of the first renegotiation not followed are unknown."""
    if len(pairs) <= len(rekeys):
        return "its ClientHello and ServerHello were not both decrypted"
    ch = parse_client_hello(pairs[len(rekeys)][0][1], [])
    if ch is None:
        return "its ClientHello could not be read"
    return (f"the key log has no line for the renegotiation's client random "
            f"{ch.random.hex()[:16]}...")


def _stop(d: Decrypted) -> int | None:
    """The stream offset of the record a direction's decryption stopped at, if it did."""
    m = None if d.error is None else _OFFSET.search(d.error)
    return None if m is None else int(m.group(1))


def _alerts_named(tls: TlsHandshake, plain: dict[tuple[bool, int], bytes]) -> TlsHandshake:
    """A TLS <= 1.2 reading with its encrypted alerts named from their decrypted records
    (keyed by direction and record offset), as a TLS 1.3 handshake read again from its
    plaintext names them; the rest of the reading stands."""
    alerts = []
    for a in tls.alerts:
        data = plain.get((a.from_client, a.at.offset)) if a.encrypted else None
        if data is not None and len(data) == 2:
            a = dataclasses.replace(a, level=data[0], description=data[1], encrypted=False)
        alerts.append(a)
    return dataclasses.replace(tls, alerts=tuple(alerts))


def _no_banner_dropped(smtp: SmtpDialogue) -> SmtpDialogue:
    """Inside TLS the dialogue begins with the client's EHLO: the greeting was before STARTTLS,
    so its absence here is no anomaly."""
    if not any(a.kind == "no_banner" for a in smtp.anomalies):
        return smtp
    return dataclasses.replace(smtp, anomalies=tuple(a for a in smtp.anomalies
                                                     if a.kind != "no_banner"))


def decrypt_tls(c2s: Any, s2c: Any, c2s_start: int, s2c_start: int, tls: TlsHandshake,
                keys: KeyLog, *, app_limit: int = DEFAULT_DECRYPT_LIMIT) -> Inside:
    """Decrypt one session's TLS from the reassembled directions (TLS beginning at the
    ``*_start`` offsets) with the secrets ``keys`` holds for its ClientHello random, and read
    what comes out as ``tls`` was read.  Never raises on data: failures are facts."""
    ch, sh = tls.client_hello, tls.server_hello
    if ch is None or sh is None:
        why = "no ClientHello" if ch is None else "no ServerHello"
        return Inside(tls, None, Decryption(False, why_not=f"{why} in the capture"), None, None)
    secrets = keys.lookup(ch.random)
    if secrets is None:
        return Inside(tls, None, Decryption(
            False, why_not=f"the key log has no secrets for client random "
                           f"{ch.random.hex()[:16]}..."), None, None)
    etm = _etm(ch, sh)
    tls12 = not tls.tls13_encrypted and not (tls.version_name or "").startswith("TLS1.3")
    listed = [(from_client, src, *list_records(src.data, src.gaps, start))
              for from_client, src, start in ((True, c2s, c2s_start), (False, s2c, s2c_start))]
    rekeys: list[Rekey] = []
    while True:  # again with each renegotiation's keys, once its hellos are decrypted
        sides = []
        for from_client, src, records, listed_end in listed:
            d = decrypt_direction(records, from_client=from_client,
                                  version=tls.version_name or "",
                                  cipher_suite=sh.cipher_suite, client_random=ch.random,
                                  server_random=sh.random, secrets=secrets,
                                  encrypt_then_mac=etm, app_limit=app_limit, rekeys=rekeys)
            sides.append((src, records, listed_end, d))
        if not tls12 or tls.renegotiation_at is None:
            break
        more = _rekeys(_paired_hellos(sides[0][0], sides[0][3].records, sides[1][0],
                                      sides[1][3].records), keys, rekeys)
        if len(more) == len(rekeys):
            break
        rekeys = more
    (cs, c_recs, c_end, cd), (ss, s_recs, s_end, sd) = sides
    why = None
    if cd.unkeyed or sd.unkeyed:
        why = _unkeyed_why(_paired_hellos(cs, cd.records, ss, sd.records), rekeys)
    errors = [e for e in (_error("client->server", cd, cs, c_recs, why),
                          _error("server->client", sd, ss, s_recs, why)) if e is not None]
    handshake = any(p.content_type != _APPLICATION_DATA for p in (*cd.records, *sd.records))
    read = tls
    if tls.tls13_encrypted and handshake:
        c_plain = _handshake_stream(cs, c_recs, c_end, cd.records)
        s_plain = _handshake_stream(ss, s_recs, s_end, sd.records)
        read = _remap(parse_handshake(c_plain, s_plain), tls, c_plain, s_plain)
    elif any(a.encrypted for a in tls.alerts):
        read = _alerts_named(tls, {(from_client, p.offset): p.data
                                   for from_client, d in ((True, cd), (False, sd))
                                   for p in d.records if p.content_type == _ALERT})
    if tls12:
        read = _renegotiations_read(read, (cs, c_recs, c_end, cd), (ss, s_recs, s_end, sd))
    c_app, s_app = _app_stream(cs, cd.records, c_recs), _app_stream(ss, sd.records, s_recs)
    smtp = None
    if c_app.data or s_app.data:
        smtp = _no_banner_dropped(parse_dialogue(c_app, s_app))
    sources = tuple(dict.fromkeys((*secrets.sources,
                                   *(src for r in rekeys for src in r.secrets.sources))))
    facts = Decryption(
        True, sources, None, handshake, _direction(cd), _direction(sd),
        errors[0][0] if errors else None, errors[0][1] if errors else None)
    return Inside(read, smtp, facts, c_app, s_app)
