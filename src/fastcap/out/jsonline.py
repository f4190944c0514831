"""One session as a JSON line, byte for byte what ``json.dumps(session_record(s, path),
default=str)`` gives, at a fraction of the cost.

A session's JSON is mostly its certificate chains (base64 DER), their checks and its
ClientHello's lists of names, and those recur in every session of the same sender and
receiver. Here they are encoded once per distinct chain, check and hello shape and the text
spliced in; the rest is encoded as before. ``json.dumps`` of a dict with the default
separators is ``{`` + the ``"key": value`` members joined by ``, `` + ``}``, so splicing
member text gives the same bytes.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Sequence
from typing import Any

from ..identity import ByIdentity
from ..proto.tls.facts import TlsHandshake, cert_dicts, hello_head, hello_prints, hello_shape
from ..proto.tls.messages import ClientHello
from ..session import Session
from ..verdict import ChainCheck

_ENCODER = json.JSONEncoder(default=str)  # json.dumps(x, default=str) is _ENCODER.encode(x)
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
# The C encoder JSONEncoder.iterencode makes for each call, made once: without the circular
# reference check (its only state), which session data, a tree, never needs. A dozen pieces
# of a line are encoded, and the set-up was a visible share of each.
try:
    _C_ENCODE = None if _c_make_encoder is None else _c_make_encoder(
        None, _ENCODER.default, json.encoder.encode_basestring_ascii, _ENCODER.indent,
        _ENCODER.key_separator, _ENCODER.item_separator, _ENCODER.sort_keys,
        _ENCODER.skipkeys, _ENCODER.allow_nan)
except TypeError:  # another Python's private signature: encode as json.dumps does
    _C_ENCODE = None


def _dumps(obj: Any) -> str:
    """``_ENCODER.encode(obj)`` for a dict or list."""
    if _C_ENCODE is None:
        return _ENCODER.encode(obj)
    return "".join(_C_ENCODE(obj, 0))


class Encoded:
    """JSON text to splice in as it is: a value, or (``members``) ``"key": value`` members."""

    __slots__ = ("text", "members")

    def __init__(self, text: str, members: bool = False) -> None:
        self.text = text
        self.members = members


def encode_object(d: dict[str, Any], nested: Collection[str] = ()) -> str:
    """``json.dumps(d, default=str)`` for a dict whose values may be :class:`Encoded` (and
    whose ``Encoded`` member runs sit under keys that are not printed); the dicts under the
    keys ``nested`` may hold Encoded values too."""
    parts: list[str] = []
    run: dict[str, Any] = {}
    for k, v in d.items():
        if type(v) is dict and k in nested:
            v = Encoded(encode_object(v))
        if type(v) is Encoded:
            if run:
                parts.append(_dumps(run)[1:-1])
                run = {}
            if v.members:
                if v.text:
                    parts.append(v.text)
            else:
                parts.append(f"{_dumps(k)}: {v.text}")
        else:
            run[k] = v
    if run:
        parts.append(_dumps(run)[1:-1])
    return "{" + ", ".join(parts) + "}"


def _members(d: dict[str, Any]) -> Encoded:
    return Encoded(_dumps(d)[1:-1], members=True)


class _Shape:
    """A ClientHello compared by :func:`hello_shape`: hellos of one shape share their JSON
    but for the Where, random and session id."""

    __slots__ = ("hello", "key", "_hash")

    def __init__(self, hello: ClientHello) -> None:
        self.hello = hello
        self.key = hello_shape(hello)
        self._hash = hash(self.key)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Shape) and self.key == other.key


@functools.lru_cache(maxsize=256)
def _hello_parts(shape: _Shape) -> tuple[Encoded, Encoded]:
    return _members(hello_head(shape.hello)), _members(hello_prints(shape.hello))


@functools.lru_cache(maxsize=256)
def _certs_text(ders: tuple[bytes, ...]) -> Encoded:
    return Encoded(_dumps(cert_dicts(ders)))


@functools.lru_cache(maxsize=256)
def _check_text(check: ByIdentity) -> Encoded:
    return Encoded(_dumps(check.obj.to_dict()))  # type: ignore[attr-defined]


def _hello(ch: ClientHello, at: dict[str, Any] | None) -> Encoded:
    head, prints = _hello_parts(_Shape(ch))
    # member runs sit under keys that are never printed
    return Encoded(encode_object(
        {**(at or {}), "\0head": head, "session_id": ch.session_id.hex(), "\0prints": prints}))


# Chains larger than this are encoded each time: a hostile capture must not pin hundreds of
# huge chains in the cache (real ones are a few KiB).
_MEMO_MAX = 64 * 1024


def _certs(ders: Sequence[bytes]) -> Encoded:
    if sum(map(len, ders)) > _MEMO_MAX:
        return Encoded(_dumps(cert_dicts(ders)))
    return _certs_text(tuple(ders))


_CERTIFICATES = frozenset({"server_certificate", "client_certificate"})  # where _certs goes


def _tls(t: TlsHandshake) -> Encoded:
    return Encoded(encode_object(t.json_dict(_hello, _certs), _CERTIFICATES))


def _check(c: ChainCheck) -> Encoded:
    return _check_text(ByIdentity(c))  # checks are memoised per chain: the same object recurs


def session_line(s: Session, path: str, schema_version: int) -> str:
    """``json.dumps`` of the session's JSON record (its ``to_dict`` plus ``file`` and
    ``schema_version``), with the recurring parts encoded once."""
    d = s.json_dict(_tls, _check)
    d["file"] = path
    d["schema_version"] = schema_version
    return encode_object(d)
