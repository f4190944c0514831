"""One session as a JSON line, byte for byte what ``json.dumps(session_record(s, path),
default=str)`` gives, at a fraction of the cost.

``json.dumps`` with the default separators writes a dict as ``{`` + its ``"key": value``
members joined by ``, `` + ``}`` (a list likewise in brackets), and a value's text does not
depend on where it sits, so a line can be put together from the texts of its parts. Each
record's text is written here straight from its fields into a template of its keys, mirroring
its ``to_dict`` without building the dicts that would only be encoded; each value goes
through the function json's encoder uses for its exact type, anything else through the
encoder itself. The parts that recur in every session of a sender and receiver (certificate
chains as base64 DER, their checks, the ClientHello's and ServerHello's names, the
CertificateRequest) are encoded once per distinct value, in caches of fixed size.
``tests/test_jsonline.py`` holds every text to ``json.dumps`` of the dict it mirrors.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from json.encoder import encode_basestring_ascii
from operator import attrgetter
from typing import Any

from ..identity import ByIdentity
from ..proto.smtp.dialogue import _NOT_JSON, CommandRecord, ReplyRecord, SmtpDialogue, _plain
from ..proto.tls.const import NamedGroup, name_of, version_name
from ..proto.tls.facts import (
    EncryptedTraffic,
    TlsHandshake,
    Where,
    _extension_names,
    cert_dicts,
    hello_head,
    hello_prints,
    hello_shape,
)
from ..proto.tls.messages import CertificateRequest, ClientHello, ServerHello
from ..session import Session, TcpFacts
from ..verdict import ChainCheck, Verdict

_ENCODER = json.JSONEncoder(default=str)  # json.dumps(x, default=str) is _ENCODER.encode(x)
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
# The C encoder JSONEncoder.iterencode makes for each call, made once: without the circular
# reference check (its only state), which session data, a tree, never needs.
try:
    _C_ENCODE = None if _c_make_encoder is None else _c_make_encoder(
        None, _ENCODER.default, json.encoder.encode_basestring_ascii, _ENCODER.indent,
        _ENCODER.key_separator, _ENCODER.item_separator, _ENCODER.sort_keys,
        _ENCODER.skipkeys, _ENCODER.allow_nan)
except TypeError:  # another Python's private signature: encode as json.dumps does
    _C_ENCODE = None


def _dumps(obj: Any) -> str:
    """``json.dumps(obj, default=str)`` of any value."""
    if _C_ENCODE is None:
        return _ENCODER.encode(obj)
    return "".join(_C_ENCODE(obj, 0))


class _Kept(dict):
    """JSON texts of one type's values by value, for the values that recur (names, codes,
    reply texts, sizes, offsets): converting a value is most of what writing it costs.  Only
    short values are kept, and the whole is dropped when full, so memory stays flat."""

    __slots__ = ("_convert", "_fits")

    def __init__(self, convert: Callable[[Any], str], fits: Callable[[Any], bool]) -> None:
        super().__init__()
        self._convert = convert
        self._fits = fits

    def __missing__(self, value: Any) -> str:
        text = self._convert(value)
        if self._fits(value):
            if len(self) >= _KEPT_MAX:
                self.clear()
            self[value] = text
        return text


_KEPT_MAX = 4096

# json.dumps of a value of exactly one of these types, by the function json's C encoder
# applies to it (a subclass, a float, a container go to the encoder itself), its text kept
# (_Kept) where the value is short.  Looked up by exact type: True == 1 and must not share
# a text with it.
_VALUE: dict[type, Callable[[Any], str]] = {
    str: _Kept(encode_basestring_ascii, lambda s: len(s) <= 256).__getitem__,
    int: _Kept(int.__repr__, lambda i: -1 < i < 1 << 20).__getitem__,
    bool: ("false", "true").__getitem__,
    type(None): "null".format,
}
# The same, not kept: for values that seldom recur (frames, times, addresses, messages).
_ONCE: dict[type, Callable[[Any], str]] = {
    str: encode_basestring_ascii,
    int: int.__repr__,
    bool: ("false", "true").__getitem__,
    type(None): "null".format,
}
_value = _VALUE.get
_once = _ONCE.get


def _text(value: Any) -> str:
    """``json.dumps(value, default=str)``."""
    return _value(type(value), _dumps)(value)


def _texts(values: tuple[Any, ...]) -> tuple[str, ...]:
    """``json.dumps(v, default=str)`` of each value."""
    return tuple([_value(type(v), _dumps)(v) for v in values])


def _once_text(value: Any) -> str:
    """``json.dumps(value, default=str)`` of a value unlikely to recur."""
    return _once(type(value), _dumps)(value)


def _array(texts: list[str]) -> str:
    return "[" + ", ".join(texts) + "]"


def _members(*keys: str) -> str:
    """The members of a dict with these keys, ``%s`` standing for each value's text."""
    return ", ".join(_dumps(k).replace("%", "%%") + ": %s" for k in keys)


def _object(*keys: str) -> str:
    return "{" + _members(*keys) + "}"


@functools.lru_cache(maxsize=64)
def _dict_template(keys: tuple[str, ...]) -> str:
    return _object(*keys)


def dict_text(d: dict[str, Any]) -> str:
    """``json.dumps(d, default=str)``: the values' texts into a template of the keys, made
    once per key order."""
    if not all(type(k) is str for k in d):  # keys json would convert: leave it to json
        return _dumps(d)
    return _dict_template(tuple(d)) % _texts(tuple(d.values()))


# --------------------------------------------------------------- dataclasses as plain data


@functools.lru_cache(maxsize=64)
def _fields_of(cls: type) -> tuple[str, Callable[[Any], tuple[Any, ...]]]:
    """A dataclass's template and a getter of its field values, in the order ``_plain``
    (``SmtpDialogue.to_dict``) reads them."""
    names = tuple(n for n in cls.__dataclass_fields__  # type: ignore[attr-defined]
                  if n not in _NOT_JSON)
    if len(names) == 1:
        one = names[0]
        return _object(one), lambda obj: (getattr(obj, one),)
    return _object(*names), attrgetter(*names) if names else (lambda obj: ())


def plain_text(value: Any) -> str:
    """``json.dumps(_plain(value), default=str)`` (the form ``SmtpDialogue.to_dict`` gives
    its records and lists), written without the dicts."""
    enc = _value(type(value))
    if enc is not None:
        return enc(value)
    if hasattr(type(value), "__dataclass_fields__"):
        template, get = _fields_of(type(value))
        return template % tuple([_value(type(v), plain_text)(v) for v in get(value)])
    if isinstance(value, list | tuple):
        return "[" + ", ".join([_value(type(v), plain_text)(v) for v in value]) + "]"
    if isinstance(value, dict):
        return _dumps(_plain(value))
    return _dumps(value)


# --------------------------------------------------------------- the SMTP dialogue


def _p(value: Any) -> str:
    """``plain_text`` of one value, its text kept when it is a short scalar."""
    return _value(type(value), plain_text)(value)


def _o(value: Any) -> str:
    """``plain_text`` of a value unlikely to recur (a frame, an offset): not kept.  An exact
    int's text is its repr, as json's encoder writes it (a bool is not one)."""
    if type(value) is int:
        return repr(value)
    return _once(type(value), plain_text)(value)


# A command's or reply's values written as _p and _o write them, each through the function
# its exact type maps to, called here directly: a session has a dozen such records and the
# call of _p or _o per value was a third of what each cost.
_KEEP, _ONCE_OR = _VALUE.get, _ONCE.get


def _command(c: Any) -> str:
    if type(c) is not CommandRecord:
        return plain_text(c)
    keep, once, pt = _KEEP, _ONCE_OR, plain_text
    verb, arg, offset, frame, end_frame, cut = (
        c.verb, c.arg, c.offset, c.frame, c.end_frame, c.cut)
    return (f'{{"verb": {keep(type(verb), pt)(verb)}, "arg": {keep(type(arg), pt)(arg)}, '
            f'"offset": {once(type(offset), pt)(offset)}, '
            f'"frame": {once(type(frame), pt)(frame)}, '
            f'"end_frame": {once(type(end_frame), pt)(end_frame)}, '
            f'"cut": {keep(type(cut), pt)(cut)}}}')


def _reply(r: Any) -> str:
    if type(r) is not ReplyRecord:
        return plain_text(r)
    keep, once, pt = _KEEP, _ONCE_OR, plain_text
    code, enhanced, text, offset, frame, answers, last_text, lines, end_frame, changes, gap = (
        r.code, r.enhanced, r.text, r.offset, r.frame, r.answers, r.last_text, r.lines,
        r.end_frame, r.code_changes, r.gap_line)
    return (f'{{"code": {keep(type(code), pt)(code)}, '
            f'"enhanced": {keep(type(enhanced), pt)(enhanced)}, '
            f'"text": {keep(type(text), pt)(text)}, '
            f'"offset": {once(type(offset), pt)(offset)}, '
            f'"frame": {once(type(frame), pt)(frame)}, '
            f'"answers": {keep(type(answers), pt)(answers)}, '
            f'"last_text": {keep(type(last_text), pt)(last_text)}, '
            f'"lines": {once(type(lines), pt)(lines)}, '
            f'"end_frame": {once(type(end_frame), pt)(end_frame)}, '
            f'"code_changes": {"[]" if changes == () else pt(changes)}, '
            f'"gap_line": {once(type(gap), pt)(gap)}}}')


def _items(values: Any, write: Callable[[Any], str]) -> str:
    if type(values) is not list and type(values) is not tuple:
        return plain_text(values)
    return "[" + ", ".join([write(v) for v in values]) + "]"


def smtp_text(d: Any) -> str:
    """``plain_text(d)`` of an SmtpDialogue, written field by field: the generic walk looked
    up how to write each of a dialogue's ~60 values, a third of a session's JSON line.
    Anything but the exact record types goes through ``plain_text``."""
    if type(d) is not SmtpDialogue:
        return plain_text(d)
    reply = d.starttls_reply
    return "".join((
        '{"implicit_tls": ', _p(d.implicit_tls),
        ', "banner_code": ', _p(d.banner_code),
        ', "banner_text": ', _p(d.banner_text),
        ', "banner_host": ', _p(d.banner_host),
        ', "banner_frame": ', _o(d.banner_frame),
        ', "banner_end_frame": ', _o(d.banner_end_frame),
        ', "banner_names_exchange_online": ', _p(d.banner_names_exchange_online),
        ', "ehlo_verb": ', _p(d.ehlo_verb),
        ', "ehlo_name": ', _p(d.ehlo_name),
        ', "ehlo_frame": ', _o(d.ehlo_frame),
        ', "capabilities": ', _items(d.capabilities, _p),
        ', "starttls_offered": ', _p(d.starttls_offered),
        ', "starttls_command_frame": ', _o(d.starttls_command_frame),
        ', "starttls_reply": ', "null" if reply is None else _reply(reply),
        ', "starttls_accepted": ', _p(d.starttls_accepted),
        ', "tls_c2s_offset": ', _o(d.tls_c2s_offset),
        ', "tls_s2c_offset": ', _o(d.tls_s2c_offset),
        ', "tls_c2s_frame": ', _o(d.tls_c2s_frame),
        ', "tls_s2c_frame": ', _o(d.tls_s2c_frame),
        ', "commands": ', _items(d.commands, _command),
        ', "replies": ', _items(d.replies, _reply),
        ', "relay_denied": ', _items(d.relay_denied, _reply),
        ', "message_bytes": ', _o(d.message_bytes),
        ', "anomalies": ', _items(d.anomalies, plain_text),
        ', "gaps": ', _items(d.gaps, plain_text),
        ', "closed": ', _p(d.closed), "}"))


# --------------------------------------------------------------- the TLS handshake


def _position(w: Where) -> str:
    """A Where's two members, ``"offset": .., "frame": ..``: written straight when both are
    exact ints (or the frame None), as nearly always; a dozen per handshake."""
    offset, frame = w.offset, w.frame
    if type(offset) is int:
        if type(frame) is int:
            return f'"offset": {offset!r}, "frame": {frame!r}'
        if frame is None:
            return f'"offset": {offset!r}, "frame": null'
    return (f'"offset": {_value(type(offset), _dumps)(offset)}, '
            f'"frame": {_once(type(frame), _dumps)(frame)}')


def _at(w: Where | None) -> str:
    """A Where's members leading a dict (``{**_at(w), ...}``); none for None."""
    return "" if w is None else _position(w) + ", "


def _last(w: Where | None) -> str:
    """A Where's members ending a dict; none for None."""
    return "" if w is None else _position(w)


def _where(w: Where | None) -> str:
    """``Where.to_dict``'s text, or null."""
    return "null" if w is None else "{" + _position(w) + "}"


class _Shape:
    """A message compared by ``key``, everything its cached text is made from."""

    __slots__ = ("obj", "key", "_hash")

    def __init__(self, obj: Any, key: tuple[Any, ...]) -> None:
        self.obj = obj
        self.key = key
        self._hash = hash(key)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Shape) and self.key == other.key


@functools.lru_cache(maxsize=256)
def _hello_parts(shape: _Shape) -> tuple[str, str]:
    """A ClientHello's members before its session id and after it."""
    ch = shape.obj
    return _dumps(hello_head(ch))[1:-1], _dumps(hello_prints(ch))[1:-1]


def _client_hello(ch: ClientHello, at: Where | None) -> str:
    """``hello_dict``'s text: hellos of one :func:`hello_shape` share all but the Where and
    session id."""
    head, prints = _hello_parts(_Shape(ch, hello_shape(ch)))
    return f'{{{_at(at)}{head}, "session_id": "{ch.session_id.hex()}", {prints}}}'


@functools.lru_cache(maxsize=256)
def _server_hello_parts(shape: _Shape) -> tuple[str, str]:
    """A ServerHello's members before its session id and after it."""
    sh = shape.obj
    group = None if sh.group is None else name_of(NamedGroup, sh.group)
    return (f'"version": {_text(sh.version_name)}, '
            f'"legacy_version": {_text(version_name(sh.legacy_version))}, '
            f'"cipher": {_text(sh.cipher_name)}',
            f'"alpn": {_text(sh.alpn)}, "group": {_text(group)}, '
            f'"extensions": {_dumps(_extension_names(sh.extensions))}, '
            f'"downgrade_sentinel": {_text(sh.downgrade)}')


def _server_hello(sh: ServerHello, at: Where | None) -> str:
    """The server_hello's text: hellos of one shape share all but the Where and session id."""
    key = (sh.version, sh.legacy_version, sh.cipher_suite, sh.alpn, sh.group,
           tuple([e.type for e in sh.extensions]), sh.downgrade)
    head, tail = _server_hello_parts(_Shape(sh, key))
    return f'{{{_at(at)}{head}, "session_id": "{sh.session_id.hex()}", {tail}}}'


# Values larger than this are encoded each time: a hostile capture must not pin hundreds of
# huge chains or CA lists in the caches (real ones are a few KiB).
_MEMO_MAX = 64 * 1024


@functools.lru_cache(maxsize=256)
def _certs_text(ders: tuple[bytes, ...]) -> str:
    return _dumps(cert_dicts(ders))


def _certs(ders: Sequence[bytes]) -> str:
    """``cert_dicts``'s text, once per distinct chain."""
    if sum(map(len, ders)) > _MEMO_MAX:
        return _dumps(cert_dicts(ders))
    return _certs_text(tuple(ders))


def _request_members(cr: CertificateRequest) -> str:
    authorities = [f'{{"name": {_text(name)}, "der_hex": "{dn.hex()}"}}' for dn, name
                   in zip(cr.certificate_authorities, cr.ca_names(), strict=True)]
    return (f'"certificate_types": {_dumps(cr.certificate_type_names)}, '
            f'"signature_algorithms": {_dumps(cr.signature_algorithm_names)}, '
            f'"certificate_authorities": [{", ".join(authorities)}]}}')


_request_kept = functools.lru_cache(maxsize=64)(_request_members)


def _request(cr: CertificateRequest, at: Where | None) -> str:
    """The certificate_request's text, its members once per distinct request."""
    if sum(map(len, cr.certificate_authorities)) > _MEMO_MAX:
        return "{" + _at(at) + _request_members(cr)
    return "{" + _at(at) + _request_kept(cr)


def _traffic(t: EncryptedTraffic) -> str:
    return (f'{{"records": {_text(t.records)}, "total_length": {_text(t.total_length)}, '
            f'"sizes": {_ints(list(t.sizes))}, "first": {_where(t.first_at)}, '
            f'"peer_before": {_ints(list(t.peer_before))}}}')


def _ints(values: list[Any]) -> str:
    """A list's text. Of exact ints (record sizes and counts: always, but for a hand-made
    record) that is the list's repr, json's separators being repr's."""
    if set(map(type, values)) <= _INT:
        return repr(values)
    return "[" + ", ".join([_value(type(v), _dumps)(v) for v in values]) + "]"


_INT = {int}


def _ticket(t: TlsHandshake, ticket: bytes) -> str:
    return (f'{{"length": {_text(len(ticket))}, '
            f'"sha256": "{t.ticket_digest(ticket).hex()}"}}')


def _resumption(t: TlsHandshake) -> str:
    offered = t.offered_ticket
    sid = t.established_session_id
    return (f'{{"resumed": {_text(t.resumption)}, "established_session_id": '
            + ("null" if sid is None else f'"{sid.hex()}"')
            + ', "ticket_offered": ' + ("null" if offered is None else _ticket(t, offered))
            + f', "tickets_issued": [{", ".join([_ticket(t, x) for x in t.session_tickets])}], '
            f'"ticket_issued_at": {_where(t.session_ticket_at)}}}')


def _side(from_client: bool) -> str:
    return '"client"' if from_client else '"server"'


def tls_text(t: TlsHandshake) -> str:
    """``json.dumps(t.to_dict(), default=str)``."""
    ch, sh, cr, cc = t.client_hello, t.server_hello, t.cert_request, t.client_certificate
    alerts = [f'{{"from": {_text(a.sender)}, "level": {_text(a.level_name)}, '
              f'"description": {_text(a.description_name)}, '
              f'"encrypted": {_text(a.encrypted)}, {_last(a.at)}}}' for a in t.alerts]
    stops = [f'{{"from": {_side(s.from_client)}, "reason": {_text(s.reason)}, '
             f'"detail": {_text(s.detail)}, {_last(s.at)}}}' for s in t.stops]
    anomalies = [f'{{"from": {_side(a.from_client)}, "code": {_text(a.code)}, '
                 f'"message": {_text(a.message)}, {_last(a.at)}}}' for a in t.anomalies]
    return "".join((
        '{"version": ', _text(t.version_name),
        ', "version_code": ', _text(t.version),
        ', "cipher": ', _text(t.cipher_name),
        ', "cipher_code": ', _text(t.cipher),
        ', "client_hello": ', "null" if ch is None else _client_hello(ch, t.client_hello_at),
        ', "server_hello": ', "null" if sh is None else _server_hello(sh, t.server_hello_at),
        ', "hello_retry_request": ', _text(t.hello_retry_request),
        ', "server_certificate": ', "null" if t.server_certs_at is None else "".join((
            "{", _at(t.server_certs_at),
            '"certificates_length": ', _text(t.server_certificates_length),
            ', "certificates": ', _certs(t.server_certs), "}")),
        ', "certificate_request": ', "null" if cr is None else _request(cr, t.cert_request_at),
        ', "client_certificate": ', "null" if cc is None else "".join((
            "{", _at(t.client_certificate_at), '"empty": ', _text(not cc),
            ', "certificates_length": ', _text(t.client_certificates_length),
            ', "certificates": ', _certs(cc), "}")),
        ', "server_key_exchange": ', _where(t.server_key_exchange_at),
        ', "server_key_exchange_group": ', "null" if t.server_key_exchange_group is None
        else _text(name_of(NamedGroup, t.server_key_exchange_group)),
        ', "server_hello_done": ', _where(t.server_hello_done_at),
        ', "client_key_exchange": ', _where(t.client_key_exchange_at),
        ', "certificate_verify": ', _where(t.certificate_verify_at),
        ', "client_change_cipher_spec": ', _where(t.client_ccs_at),
        ', "server_change_cipher_spec": ', _where(t.server_ccs_at),
        ', "client_finished": ', _where(t.client_finished_at),
        ', "server_finished": ', _where(t.server_finished_at),
        ', "renegotiation": ', _where(t.renegotiation_at),
        ', "renegotiation_decrypted": ', _text(t.renegotiation_decrypted),
        ', "renegotiation_unread": ', _where(t.renegotiation_unread_at),
        ', "alerts": [', ", ".join(alerts),
        '], "encrypted": {"c2s": ', _traffic(t.c2s_encrypted),
        ', "s2c": ', _traffic(t.s2c_encrypted),
        '}, "tls13_encrypted": ', _text(t.tls13_encrypted),
        ', "outcome": ', _text(t.outcome),
        ', "outcome_detail": ', _text(t.outcome_detail),
        ', "outcome_inferred": ', _text(t.outcome_inferred),
        ', "history": ', _text(t.history),
        ', "resumption": ', _resumption(t),
        ', "stops": [', ", ".join(stops),
        '], "anomalies": [', ", ".join(anomalies), "]}"))


# --------------------------------------------------------------- the session


@functools.lru_cache(maxsize=256)
def _check_text(check: ByIdentity) -> str:
    return _dumps(check.obj.to_dict())  # type: ignore[attr-defined]


def _check(c: ChainCheck) -> str:
    return _check_text(ByIdentity(c))  # checks are memoised per chain: the same object recurs


def _verdict(v: Verdict) -> str:
    message, frame = v.message, v.frame
    return (f'{{"code": {_text(v.code)}, "severity": {_text(v.severity)}, '
            f'"message": {_once(type(message), _dumps)(message)}, "hint": {_text(v.hint)}, '
            f'"frame": {_once(type(frame), _dumps)(frame)}}}')


def _tcp(tcp: TcpFacts) -> str:
    """``json.dumps`` of the transport facts (their fields, the gaps as lists), written
    straight: the dict and its generic writing were 7 us of every line."""
    if type(tcp) is not TcpFacts:
        return dict_text(tcp.to_dict())
    return "".join((
        '{"client_by": ', _text(tcp.client_by),
        ', "syn_seen": ', _text(tcp.syn_seen),
        ', "c2s_gaps": ', _dumps([list(g) for g in tcp.c2s_gaps]) if tcp.c2s_gaps else "[]",
        ', "s2c_gaps": ', _dumps([list(g) for g in tcp.s2c_gaps]) if tcp.s2c_gaps else "[]",
        ', "c2s_bytes": ', _once_text(tcp.c2s_bytes),
        ', "s2c_bytes": ', _once_text(tcp.s2c_bytes),
        ', "capped": ', _text(tcp.capped),
        ', "evicted": ', _text(tcp.evicted),
        ', "retransmissions": ', _text(tcp.retransmissions),
        ', "conflicting_overlaps": ', _text(tcp.conflicting_overlaps),
        ', "out_of_order": ', _text(tcp.out_of_order),
        ', "closed_by": ', _text(tcp.closed_by),
        ', "after_reset": ', _dumps(tcp.after_reset), "}"))



def session_line(s: Session, path: str, schema_version: int) -> str:
    """``json.dumps`` of the session's JSON record (its ``to_dict`` plus ``file`` and
    ``schema_version``)."""
    parts = [
        '{"number": ', _text(s.number),
        ', "client": ', _once_text(s.client),
        ', "server": ', _once_text(s.server),
        ', "first_frame": ', _once_text(s.first_frame),
        ', "last_frame": ', _once_text(s.last_frame),
        ', "first_ts_ns": ', _once_text(s.first_ts_ns),
        ', "last_ts_ns": ', _once_text(s.last_ts_ns),
        ', "frames": ', _text(s.frames),
        ', "continues_into": ', _dumps(list(s.continues_into)) if s.continues_into else "[]",
        ', "tcp": ', _tcp(s.tcp),
        ', "smtp": ', smtp_text(s.smtp) if s.smtp else "null",
        ', "tls": ', tls_text(s.tls) if s.tls else "null",
        ', "client_cert_check": ', _check(s.client_check) if s.client_check else "null",
        ', "server_cert_check": ', _check(s.server_check) if s.server_check else "null",
        ', "verdicts": [', ", ".join([_verdict(v) for v in s.verdicts]),
        '], "mid_session": ', _dumps(s.mid_session.to_dict()) if s.mid_session else "null"]
    if s.decryption is not None:  # keys were given: without, the JSON stays as it was
        parts += (', "decryption": ', _dumps(s.decryption.to_dict()), ', "smtp_tls": ',
                  smtp_text(s.smtp_tls) if s.smtp_tls else "null")
    if s.evidence is not None:  # logs were given: likewise
        parts += ', "evidence": ', _dumps([m.to_dict() for m in s.evidence])
    if s.roles_turned:  # only after TURN: likewise
        parts += ', "roles_turned": true',
    parts += ', "file": ', _text(path), ', "schema_version": ', _text(schema_version), "}"
    return "".join(parts)
