"""Connector and certificate settings from `Export-Clixml` files (PowerShell's CLIXML, the
serialization remoting uses: schemas.microsoft.com/powershell/2004/04).

Unlike printed output it keeps every value, typed: `<S>` text (characters XML cannot hold
written `_xHHHH_`), `<B>` true/false, `<I32>` and friends, `<DT>` ISO 8601 dates with the
offset, `<Nil/>`, and `<Obj>` - a collection (`<LST>`, `<IE>`), or an object whose
`<ToString>` is how PowerShell shows it (an enum's name, an IPRange, a TlsCertificate) and whose
`<Props>`/`<MS>` hold its properties.  An object met again is written `<Ref RefId=".."/>`.
Each top-level object's properties are handed to the reader of ConvertTo-Json exports, so the
two forms give the same settings.  Text that is not well-formed XML is one warning naming
its line and column, and no settings."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from .powershell import settings_from
from .settings import Settings

__all__ = ["looks_like", "read_settings"]

Warn = Callable[[str], None]

_NS = "{http://schemas.microsoft.com/powershell/2004/04}"
_HEAD = re.compile(r"<Objs\b[^>]*schemas\.microsoft\.com/powershell/2004/04")
_DECLARATION = re.compile(r"\s*<\?xml[^>]*\?>")
_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
_SURROGATE = re.compile("[\ud800-\udfff]")
_NUMBERS = frozenset({"I16", "I32", "I64", "U16", "U32", "U64", "By", "SB"})
_TEXTS = frozenset({"S", "DT", "TS", "G", "URI", "Version", "D", "Db", "Sg", "XD", "SBK"})
_MAX_DEPTH = 24  # properties of properties: connectors need 3


def looks_like(head: str) -> bool:
    """A CLIXML document (what Export-Clixml writes)."""
    return _HEAD.search(head[:4096]) is not None


def read_settings(text: str, path: str, warn: Warn) -> Settings:
    """Every inbound connector, send connector and Exchange certificate among the file's
    top-level objects, numbered from 1 in file order."""
    body = _DECLARATION.sub("", text.lstrip("\ufeff"), count=1)
    if "<!DOCTYPE" in body or "<!ENTITY" in body:  # never in CLIXML; entities can explode
        warn(f"{path}: a DOCTYPE or ENTITY declaration, which CLIXML never has; not read")
        return Settings()
    try:
        root = ET.fromstring(body)
    except ET.ParseError as e:
        line, column = e.position
        warn(f"{path}: not well-formed CLIXML at line {line} column {column + 1}: "
             f"{str(e).partition(':')[0]}")
        return Settings()
    reader = _Values()
    objects: list[Any] = []
    for obj in _children(root, "Obj"):
        got = reader.value(obj, 0)  # `-InputObject $list` writes the list as one object
        objects.extend(got if isinstance(got, list) else [got])
    return settings_from(list(enumerate(objects, 1)), path, warn)


def _children(el: ET.Element, tag: str) -> list[ET.Element]:
    return [c for c in el if c.tag == _NS + tag]


def _text(el: ET.Element) -> str:
    """An element's text, its escapes undone.  The serializer escapes each UTF-16 surrogate
    on its own (U+1F4E7 is `_xD83D__xDCE7_`): a pair is joined into its character, a lone
    one (a string cut inside a pair) is U+FFFD, as no encoder takes it."""
    text = el.text or ""
    if "_x" not in text:
        return text
    text = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


class _Values:
    """Typed CLIXML values as the plain values ConvertTo-Json would have written."""

    def __init__(self) -> None:
        self.refs: dict[str, Any] = {}  # RefId -> the value of the <Obj> that defined it

    def value(self, el: ET.Element, depth: int) -> Any:
        tag = el.tag[len(_NS):] if el.tag.startswith(_NS) else el.tag
        if tag == "Nil" or depth > _MAX_DEPTH:
            return None
        if tag == "B":
            return _text(el).strip().lower() == "true"
        if tag in _NUMBERS:
            try:
                return int(_text(el).strip())
            except ValueError:
                return None
        if tag in _TEXTS:
            return _text(el)
        if tag == "Ref":
            return self.refs.get(el.get("RefId", ""))
        if tag != "Obj":
            return None
        got = self._object(el, depth)
        if el.get("RefId") is not None:
            self.refs[el.get("RefId", "")] = got
        return got

    def _object(self, el: ET.Element, depth: int) -> Any:
        for kind in ("LST", "IE", "QUE", "STK"):
            for items in _children(el, kind):
                return [self.value(item, depth + (depth > 0)) for item in items]
        props: dict[str, Any] = {}
        for section in (*_children(el, "Props"), *_children(el, "MS")):
            for p in section:
                name = p.get("N")
                if name:
                    props[name] = self.value(p, depth + 1)
        shown = _children(el, "ToString")
        if depth == 0:  # a top-level object: its properties are what is read
            return props
        if shown:  # an enum, an IPRange, a TlsCertificate: what PowerShell shows
            return _text(shown[0])
        return props or None
