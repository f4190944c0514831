"""Connector and certificate settings from PowerShell `ConvertTo-Json` exports.

What an admin can hand over is what the cmdlets print: `Get-InboundConnector` (Exchange
Online), `Get-SendConnector` and `Get-ExchangeCertificate` (Exchange Server), piped to
`ConvertTo-Json` and saved with `>` or `Out-File` - UTF-16 with a BOM from Windows
PowerShell 5.1, UTF-8 from PowerShell 7.  The same property comes in several shapes, by
PowerShell version, by remoting (deserialized values), and by the `-Depth` the export used:

- dates: `"\\/Date(1769904000000)\\/"` (5.1), ISO 8601 text (7), or a 5.1 wrapper object
  `{"value": ..., "DisplayHint": 2, "DateTime": "..."}`; arrays likewise as
  `{"value": [...], "Count": n}`;
- enums: numbers (local 5.1) or names (7, remoting): Services `16` or `"IMAP, POP, SMTP"`;
- multi-valued properties: strings, or objects (`IPRange`, `SmartHost`,
  `SmtpDomainWithSubdomains`, `SmtpX509Identifier`) whose parts are read by name;
- nested objects past `-Depth`: their `ToString()` - a type name such as
  `"Microsoft.Exchange.Data.SmartHost"` (unknown, told once per file) or `"@{Key=Value; ...}"`.

The kind of each object comes from its properties, never from the file name.  Nothing in
the content raises: a file that is not JSON is one warning and no settings.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import FastcapError
from .records import Where, in_ns_range
from .settings import ExchangeCertificate, InboundConnector, SendConnector, Settings
from .text import LogText

__all__ = ["KNOWN_PROPERTIES", "MAX_BYTES", "date_ns", "looks_like", "read_settings",
           "read_settings_file", "settings_from"]

MAX_BYTES = 64 << 20  # a settings export is a few KB to a few MB; more is not one

Warn = Callable[[str], None]

# Property names that say "this is a cmdlet export fastcap reads" (detection, lower case).
_KNOWN = ("connectortype", "senderipaddresses", "tlssendercertificatename",
          "tlscertificatename", "smarthosts", "addressspaces", "thumbprint", "notafter",
          "certificatedomains", "restrictdomainstocertificate", "cloudservicesmailenabled")
_HEAD_KEY = re.compile(r'"(' + "|".join(_KNOWN) + r')"\s*:', re.IGNORECASE)
KNOWN_PROPERTIES = frozenset(_KNOWN)

# Microsoft.Exchange.Management.SystemConfigurationTasks.AllowedServices ([Flags]).
_SERVICES = ((1, "IMAP"), (2, "POP"), (4, "UM"), (8, "IIS"), (16, "SMTP"), (32, "Federation"),
             (64, "UMCallRouter"))
_SERVICE_NAMES = {name.lower(): name for _, name in _SERVICES}
_CONNECTOR_TYPES = {1: "OnPremises", 2: "Partner"}  # Microsoft.Exchange.Data.TenantConnectorType
_TLS_AUTH_LEVELS = {1: "EncryptionOnly", 2: "CertificateValidation", 4: "DomainValidation"}

# A .NET type name: what ConvertTo-Json writes for a nested object past its -Depth.
_TYPE_NAME = re.compile(r"(?:Deserialized\.)?(?:System|Microsoft)\.[A-Z]\w*(?:\.\w+)*"
                        r"(?:`\d+)?(?:\[.*\])?$", re.DOTALL)
_HASHTABLE = re.compile(r"@\{(.*)\}$", re.DOTALL)  # a PSCustomObject's ToString()
_MS_DATE = re.compile(r"/Date\((-?[0-9]{1,15})(?:[+-][0-9]{4})?\)/$")
_NUMBER = re.compile(r"[0-9]{1,9}$")  # an enum's value written as text
_CERT_NAME = re.compile(r"\s*(?:<I>(.*?))?<S>(.*)$", re.DOTALL)  # SmtpX509Identifier text
_SPLIT = re.compile(r"[\s,]+")
_WRAPPER_KEYS = frozenset({"value", "count", "displayhint", "datetime"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def looks_like(head: str) -> bool:
    """A JSON object or array that names a connector or certificate property."""
    text = head.lstrip("\ufeff \t\r\n")
    while text.startswith(("WARNING:", "VERBOSE:")):  # 5.1 `*>` redirects the streams too
        text = text.partition("\n")[2].lstrip(" \t\r\n")
    return text[:1] in ("{", "[") and _HEAD_KEY.search(text) is not None


def read_settings_file(path: str | os.PathLike, warn: Warn) -> Settings:
    """The settings in one export file, opened read-only; its encoding told as for logs
    (BOM, else NUL bytes, else UTF-8).  Unreadable or over MAX_BYTES: a warning, no settings."""
    name = os.fspath(path)
    try:
        text = LogText(name)
        if text.size > MAX_BYTES:
            warn(f"{name}: {text.size} bytes, more than a settings export "
                 f"({MAX_BYTES >> 20} MiB); not read")
            return Settings()
        with open(name, "rb") as f:
            data = f.read(MAX_BYTES + 1)[text.bom:]
    except FastcapError as e:
        warn(str(e))
        return Settings()
    except OSError as e:
        warn(f"{name}: cannot read: {e.strerror or e}")
        return Settings()
    if text.encoding.startswith("utf-16"):
        data = data[: len(data) & ~1]
    try:
        decoded = data.decode(text.encoding)
    except UnicodeDecodeError as e:
        decoded = data.decode(text.encoding, errors="replace")
        warn(f"{name}: bytes that are not {text.encoding.upper()} at byte {e.start}, "
             "shown replaced")
    return read_settings(decoded, name, warn)


def read_settings(text: str, path: str, warn: Warn) -> Settings:
    """Every inbound connector, send connector and Exchange certificate in `text` (one
    ConvertTo-Json document, or several appended one after another).  Objects are numbered
    from 1 in file order (`Where.line`); fields a finding needs, when absent, are warned
    about naming the object.  Never raises on content."""
    return settings_from(list(enumerate(_objects(text, path, warn), 1)), path, warn)


def settings_from(objects: list[tuple[int, Any]], path: str, warn: Warn,
                  unit: str = "object") -> Settings:
    """The settings in already parsed objects, each with the number that places it in its
    file (`Where.line`): its place among the objects, or the `unit` "line" it starts on."""
    reader = _Reader(path, warn, unit)
    inbound: list[InboundConnector] = []
    send: list[SendConnector] = []
    certs: list[ExchangeCertificate] = []
    unknown: list[int] = []
    for index, obj in objects:
        props = {str(k).lower(): v for k, v in obj.items()} if isinstance(obj, dict) else None
        kind = _kind(props) if props is not None else None
        if kind == "inbound":
            inbound.append(reader.inbound(props, index))  # type: ignore[arg-type]
        elif kind == "send":
            send.append(reader.send(props, index))  # type: ignore[arg-type]
        elif kind == "certificate":
            certs.append(reader.certificate(props, index))  # type: ignore[arg-type]
        else:
            unknown.append(index)
    if unknown:
        shown = ", ".join(map(str, unknown[:10])) + (", ..." if len(unknown) > 10 else "")
        warn(f"{path}: {len(unknown)} of {len(objects)} objects are neither an inbound or "
             f"send connector nor an Exchange certificate ({unit} {shown}); skipped")
    reader.finish()
    return Settings(tuple(inbound), tuple(send), tuple(certs))


def _objects(text: str, path: str, warn: Warn) -> Iterator[Any]:
    """The top-level values, arrays flattened: PowerShell writes one object bare and several
    as an array, and `>>` appends whole documents.  Stops at the first broken document."""
    decoder = json.JSONDecoder()
    pos, end = 0, len(text)
    while True:
        pos = _skip_noise(text, pos)
        if pos >= end:
            return
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            warn(f"{path}: not valid JSON at line {e.lineno} column {e.colno}: {e.msg}")
            return
        except (ValueError, RecursionError) as e:  # a huge number, nesting past the stack
            line = text.count("\n", 0, pos) + 1
            column = pos - text.rfind("\n", 0, pos)
            warn(f"{path}: not valid JSON at line {line} column {column}: "
                 f"{str(e).partition(';')[0]}")
            return
        if isinstance(value, list):
            for item in value:
                yield from item if isinstance(item, list) else (item,)
        else:
            yield value


def _skip_noise(text: str, pos: int) -> int:
    """Past whitespace, BOMs and the WARNING:/VERBOSE: lines a `*>` redirect adds."""
    while True:
        while pos < len(text) and text[pos] in " \t\r\n\ufeff\x00":
            pos += 1
        if not text.startswith(("WARNING:", "VERBOSE:"), pos):
            return pos
        nl = text.find("\n", pos)
        pos = len(text) if nl < 0 else nl + 1


def _kind(props: dict[str, Any]) -> str | None:
    if "remoteipranges" in props or "bindings" in props:  # a receive connector
        return None
    if "sendingtransportservers" in props or "onpremisessmarthost" in props:
        return None  # Get-HybridConfiguration: its TlsCertificateName is no send connector's
    if any(k in props for k in ("senderipaddresses", "tlssendercertificatename",
                                "restrictdomainstocertificate", "restrictdomainstoipaddresses",
                                "senderdomains")):
        return "inbound"
    if ("addressspaces" in props or "tlscertificatename" in props
            or ("smarthosts" in props and "recipientdomains" not in props)):
        return "send"  # Exchange Online's outbound connectors list RecipientDomains instead
    if "thumbprint" in props or "notafter" in props:
        return "certificate"
    if "connectortype" in props and "recipientdomains" not in props:
        return "inbound"
    return None


class _Reader:
    """Turns one file's objects into settings, gathering what it warns about."""

    def __init__(self, path: str, warn: Warn, unit: str = "object") -> None:
        self.path = path
        self.warn = warn
        self.unit = unit  # what the numbers in Where count: objects, or lines
        self.truncated: set[str] = set()  # properties that held type names (-Depth too small)

    def finish(self) -> None:
        if self.truncated:
            self.warn(f"{self.path}: {', '.join(sorted(self.truncated))} held .NET type names, "
                      "not values (ConvertTo-Json -Depth too small; export with -Depth 4)")

    def _missing(self, index: int, what: str, name: str, props: dict[str, Any],
                 needed: Iterable[str]) -> None:
        gone = [n for n in needed if n.lower() not in props]
        if gone:
            self.warn(f"{self.path} {self.unit} {index}: {what} {name!r} has no "
                      f"{' or '.join(gone)}")

    def inbound(self, p: dict[str, Any], index: int) -> InboundConnector:
        name = self._name(p, index)
        self._missing(index, "inbound connector", name, p,
                      ("TlsSenderCertificateName", "SenderIPAddresses"))
        return InboundConnector(
            name=name,
            connector_type=self._enum(p, "connectortype", _CONNECTOR_TYPES),
            sender_ip_addresses=tuple(self._items(p, "senderipaddresses", _ip_entry)),
            sender_domains=tuple(self._items(p, "senderdomains", _domain_entry)),
            require_tls=_bool(p.get("requiretls")),
            restrict_domains_to_certificate=_bool(p.get("restrictdomainstocertificate")),
            restrict_domains_to_ip=_bool(p.get("restrictdomainstoipaddresses")),
            tls_sender_certificate_name=self._text(p, "tlssendercertificatename",
                                                   ("Address", "Domain")),
            enabled=_bool(p.get("enabled")),
            where=Where(self.path, index, 0),
        )

    def send(self, p: dict[str, Any], index: int) -> SendConnector:
        name = self._name(p, index)
        self._missing(index, "send connector", name, p, ("TlsCertificateName",))
        raw, issuer, subject = self._cert_name(p)
        hosts = self._items(p, "smarthosts", _smart_host)
        if not hosts and isinstance(p.get("smarthostsstring"), str):
            hosts = [h.strip("[]") for h in _SPLIT.split(p["smarthostsstring"]) if h.strip("[]")]
        return SendConnector(
            name=name,
            tls_certificate_name=raw,
            tls_cert_issuer=issuer,
            tls_cert_subject=subject,
            require_tls=_bool(p.get("requiretls")),
            tls_auth_level=self._enum(p, "tlsauthlevel", _TLS_AUTH_LEVELS),
            smart_hosts=tuple(hosts),
            fqdn=self._text(p, "fqdn", ("Domain", "HostnameString")),
            cloud_services_mail_enabled=_bool(p.get("cloudservicesmailenabled")),
            enabled=_bool(p.get("enabled")),
            where=Where(self.path, index, 0),
        )

    def certificate(self, p: dict[str, Any], index: int) -> ExchangeCertificate:
        thumbprint = self._text(p, "thumbprint", ())
        subject = self._text(p, "subject", ()) or self._text(p, "subjectname", ("Name",))
        self._missing(index, "certificate", thumbprint or subject or f"#{index}", p,
                      ("Thumbprint", "NotAfter"))
        serial = self._text(p, "serialnumber", ())
        return ExchangeCertificate(
            thumbprint=_hex(thumbprint) if thumbprint else "",
            subject=subject,
            issuer=self._text(p, "issuer", ()) or self._text(p, "issuername", ("Name",)),
            serial=_hex(serial) if serial else None,
            not_before_ns=self._date(p, "notbefore", index),
            not_after_ns=self._date(p, "notafter", index),
            services=self._services(p.get("services")),
            names=tuple(self._items(p, "certificatedomains", _domain_entry)),
            where=Where(self.path, index, 0),
        )

    # -- one property each -------------------------------------------------------------

    def _name(self, p: dict[str, Any], index: int) -> str:
        return (self._text(p, "name", ()) or self._text(p, "identity", ("Name",))
                or f"#{index}")

    def _text(self, p: dict[str, Any], key: str, parts: tuple[str, ...]) -> str | None:
        """A string property; an object gives its first non-empty part named in `parts`."""
        value = _unwrap(p.get(key))
        if isinstance(value, str):
            value = self._plain(value, key)
            if isinstance(value, str):
                return value.strip() or None
        if isinstance(value, dict):
            return _part(value, parts)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        return None

    def _plain(self, value: str, key: str) -> str | dict[str, str] | None:
        """A string as written, unless it is a type name (None, remembered) or a
        PowerShell hashtable text (its key/value pairs)."""
        if _TYPE_NAME.match(value):
            self.truncated.add(_PROPER.get(key, key))
            return None
        m = _HASHTABLE.match(value)
        if m:
            pairs = (kv.partition("=") for kv in m.group(1).split("; "))
            return {k.strip(): v.strip() for k, _, v in pairs if k.strip()}
        return value

    def _items(self, p: dict[str, Any], key: str,
               entry: Callable[[dict[str, Any]], str | None]) -> list[str]:
        """A multi-valued property: a list of strings or objects (read by `entry`), or one
        string (space- or comma-separated, as a collection's ToString() joins them)."""
        value = _unwrap(p.get(key))
        values = value if isinstance(value, list) else [] if value is None else [value]
        out: list[str] = []
        for v in values:
            v = _unwrap(v)
            if isinstance(v, str):
                v = self._plain(v, key)
            if isinstance(v, str):
                out.extend(s for s in _SPLIT.split(v.strip()) if s)
            elif isinstance(v, dict):
                got = entry({str(k).lower(): x for k, x in v.items()})
                if got:
                    out.append(got)
        return out

    def _enum(self, p: dict[str, Any], key: str, names: dict[int, str]) -> str | None:
        value = _unwrap(p.get(key))
        if isinstance(value, int) and not isinstance(value, bool):
            return names.get(value, str(value))
        if isinstance(value, str) and _NUMBER.match(value.strip()):
            return names.get(int(value), value.strip())
        return self._text(p, key, ("Value",))

    def _cert_name(self, p: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
        """(raw "<I>issuer<S>subject", issuer, subject) of TlsCertificateName."""
        value = _unwrap(p.get("tlscertificatename"))
        if isinstance(value, str):
            value = self._plain(value, "tlscertificatename")
        if isinstance(value, dict):
            issuer = _part(value, ("CertificateIssuer",))
            subject = _part(value, ("CertificateSubject",))
            if issuer is None and subject is None:
                return None, None, None
            return f"<I>{issuer or ''}<S>{subject or ''}", issuer, subject
        if not isinstance(value, str) or not value.strip():
            return None, None, None
        raw = value.strip()
        m = _CERT_NAME.match(raw)
        if m is None:
            return raw, None, None
        return raw, (m.group(1) or "").strip() or None, m.group(2).strip() or None

    def _date(self, p: dict[str, Any], key: str, index: int) -> int | None:
        value = _unwrap(p.get(key))
        if value is None:
            return None
        ns = date_ns(value)
        if ns is None:
            self.warn(f"{self.path} {self.unit} {index}: {_PROPER.get(key, key)} "
                      f"{str(value)[:60]!r} is not a date fastcap reads")
        return ns

    def _services(self, value: Any) -> tuple[str, ...]:
        value = _unwrap(value)
        if isinstance(value, str) and _NUMBER.match(value.strip()):
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return tuple(name for bit, name in _SERVICES if value & bit)
        words: list[str] = []
        for v in value if isinstance(value, list) else [value]:
            v = _unwrap(v)
            if isinstance(v, int) and not isinstance(v, bool):
                words.extend(self._services(v))
            elif isinstance(v, str) and not _TYPE_NAME.match(v):
                words.extend(w for w in _SPLIT.split(v) if w)
        found = {_SERVICE_NAMES.get(w.lower(), w) for w in words if w.lower() != "none"}
        known = tuple(name for _, name in _SERVICES if name in found)
        return known + tuple(sorted(found.difference(known)))


_PROPER = {k.lower(): k for k in (
    "SenderIPAddresses", "SenderDomains", "TlsSenderCertificateName", "TlsCertificateName",
    "SmartHosts", "CertificateDomains", "Name", "Identity", "Fqdn", "Subject", "Issuer",
    "SubjectName", "IssuerName", "Thumbprint", "SerialNumber", "NotBefore", "NotAfter",
    "ConnectorType", "TlsAuthLevel")}


def _unwrap(value: Any) -> Any:
    """The value inside Windows PowerShell 5.1's wrappers of values that carry extra
    (ETS) properties: {"value": [...], "Count": n} and {"value": date, "DisplayHint": ...}."""
    while (isinstance(value, dict) and value
           and {str(k).lower() for k in value} <= _WRAPPER_KEYS
           and any(str(k).lower() == "value" for k in value)):
        value = next(v for k, v in value.items() if str(k).lower() == "value")
    return value


def _part(obj: dict[str, Any], names: tuple[str, ...], depth: int = 3) -> str | None:
    """The first non-empty text among the named properties (an object: its host or name)."""
    lowered = {str(k).lower(): v for k, v in obj.items()}
    for name in names:
        v = _unwrap(lowered.get(name.lower()))
        if isinstance(v, dict) and depth > 0:
            v = _part(v, ("Domain", "HostnameString", "Address", "Name"), depth - 1)
        if isinstance(v, str) and v.strip() and not _TYPE_NAME.match(v):
            return v.strip()
    return None


def _ip_entry(obj: dict[str, Any]) -> str | None:
    """An IPRange object: its text form if given, else its bounds (and CIDR length)."""
    text = _part(obj, ("Expression", "IPRange", "Value"))
    if text:
        return text
    lo, hi = _part(obj, ("LowerBound", "Start")), _part(obj, ("UpperBound", "End"))
    if lo is None:
        return _part(obj, ("Address", "IPAddressToString"))
    cidr = obj.get("cidrlength")
    fmt = obj.get("rangeformat")
    if isinstance(cidr, int) and not isinstance(cidr, bool) and fmt in ("CIDR", 1):
        return f"{lo}/{cidr}"
    return lo if hi in (None, lo) else f"{lo}-{hi}"


def _domain_entry(obj: dict[str, Any]) -> str | None:
    """An SmtpDomainWithSubdomains (or AddressSpace) object."""
    address = _part(obj, ("Address",))
    if address:
        return address
    domain = _part(obj, ("Domain", "SmtpDomain"))
    if domain and obj.get("includesubdomains") is True and not domain.startswith("*"):
        return f"*.{domain}"
    return domain


def _smart_host(obj: dict[str, Any]) -> str | None:
    """A SmartHost object: its host name, else its IP address."""
    return _part(obj, ("Domain", "Address", "HostnameString"))


def _bool(value: Any) -> bool | None:
    value = _unwrap(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return {"true": True, "false": False}.get(value.strip().lower())
    return None


def _hex(text: str) -> str:
    """Upper case, without the spaces or colons some tools put between byte pairs."""
    return re.sub(r"[\s:]", "", text).upper()


def date_ns(value: Any) -> int | None:
    """UTC ns of "/Date(ms)/" (5.1; the offset suffix only tells the writer's zone) or of
    ISO 8601 text (7); a time without a zone is taken as UTC."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    m = _MS_DATE.match(text)
    if m:
        return in_ns_range(int(m.group(1)) * 1_000_000)
    frac = re.match(r"(.*T\d\d:\d\d:\d\d)\.(\d+)(.*)$", text)
    extra_ns = 0
    if frac:  # Python reads at most microseconds; .NET writes 100 ns ticks
        digits = frac.group(2)
        extra_ns = int((digits + "000000000")[:9]) % 1000
        text = f"{frac.group(1)}.{digits[:6]}{frac.group(3)}"
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return in_ns_range((dt - _EPOCH) // timedelta(microseconds=1) * 1000 + extra_ns)
