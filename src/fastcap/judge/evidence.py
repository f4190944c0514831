"""Findings that need both halves: what the mail servers' logs and connector settings say,
held against what the capture shows.

Each verdict cites the log line (or the JSON object) by ``Where`` and sets ``Verdict.frame``
to the wire frame it is about: the client's Certificate message when there is one, else the
session's first frame.  Logs without a capture session get `log_only_verdicts`, which say so
and carry no frame.  The codes, their severities and hints live in ``evidence_codes`` (read
again from here) and are registered in ``diagnose``'s table, so counts, ``is_problem`` and the
README's list see them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Final

from ..evidence.join import Match, iso_utc, normal_ip
from ..evidence.records import CertClaim, LogConversation, LogReply, Where
from ..evidence.settings import ExchangeCertificate, InboundConnector, SendConnector, Settings
from ..session import Session
from ..verdict import CertInfo, Verdict
from .diagnose import NAME_UNCHECKED
from .evidence_codes import EVIDENCE_HINTS, EVIDENCE_TABLE
from .x509check import cert_info, sender_names
from .x509names import sender_name_fits

__all__ = ["EVIDENCE_HINTS", "EVIDENCE_TABLE", "connector_name_in_ok", "evidence_verdicts",
           "log_only_verdicts", "name_check_by_address", "settings_verdicts"]

_EXO_SUFFIX = ".mail.protection.outlook.com"
_FAILURE = re.compile(r"fail|error|untrusted|not trusted|alert|unable|denied|refused|reset",
                      re.IGNORECASE)
# what makes a failure a TLS one: an authentication refused (LogonDenied) or a connection
# refused is noted too, and is not
_TLS_WORDS = re.compile(r"TLS|SSL|certificate|handshake", re.IGNORECASE)


def _v(code: str, message: str, frame: int | None, severity: str | None = None) -> Verdict:
    return Verdict(code, severity or EVIDENCE_TABLE[code][0], message,
                   EVIDENCE_HINTS.get(code, ""), frame)


# --- the wire's side -------------------------------------------------------------------------

def _wire_leaf(session: Session) -> CertInfo | None:
    """The client's leaf certificate as the capture shows it (checked, or parsed here)."""
    check = session.client_check
    if check is not None and check.certs:
        return check.certs[0]
    tls = session.tls
    if tls is not None and tls.client_certificate:
        return cert_info(tls.client_certificate[0])
    return None


def _wire_frame(session: Session) -> int:
    tls = session.tls
    at = tls.client_certificate_at if tls is not None else None
    return at.frame if at is not None and at.frame is not None else session.first_frame


def _at(frame: int) -> str:
    return f"frame {frame}"


# --- certificates compared -------------------------------------------------------------------

# Attribute names as dotted OIDs, so the names Windows writes (CertNameToStr's X.500 keys:
# Get-ExchangeCertificate, TlsCertificateName, Exchange's logs) and those of RFC 4514 (the
# wire's certificate, which names only CN, L, ST, O, OU, C, STREET, DC and UID and writes
# other attributes as dotted OIDs) compare equal.  Windows writes an attribute it has no key
# for as "OID.<dotted>".
_DN_KEYS: Final = {
    "cn": "2.5.4.3", "sn": "2.5.4.4", "serialnumber": "2.5.4.5", "c": "2.5.4.6",
    "l": "2.5.4.7", "s": "2.5.4.8", "st": "2.5.4.8", "street": "2.5.4.9", "o": "2.5.4.10",
    "ou": "2.5.4.11", "t": "2.5.4.12", "title": "2.5.4.12", "description": "2.5.4.13",
    "postalcode": "2.5.4.17", "pobox": "2.5.4.18", "phone": "2.5.4.20",
    "g": "2.5.4.42", "givenname": "2.5.4.42", "i": "2.5.4.43", "initials": "2.5.4.43",
    "dnqualifier": "2.5.4.46", "e": "1.2.840.113549.1.9.1",
    "email": "1.2.840.113549.1.9.1", "emailaddress": "1.2.840.113549.1.9.1",
    "dc": "0.9.2342.19200300.100.1.25", "uid": "0.9.2342.19200300.100.1.1"}


def _dn_key(attr: str) -> str:
    a = attr.strip().lower()
    a = a[4:] if a.startswith("oid.") else a
    return _DN_KEYS.get(a, a)


def _dn(text: str | None) -> tuple[str, ...] | None:
    """A distinguished name as sorted "oid=lower-case value" parts, so Windows' "CN=a, O=b,
    S=c, OID.2.5.4.15=d" and RFC 4514's "CN=a,O=b,ST=c,2.5.4.15=d" (either order) compare
    equal, and so do their ways of holding a comma or plus in a value: Windows quotes it
    (O="GoDaddy.com, Inc."), RFC 4514 escapes it (O=GoDaddy.com\\, Inc.)."""
    if not text:
        return None
    out = []
    for p in _dn_parts(text):
        attr, eq, value = p.strip().partition("=")
        if not eq:
            continue
        v = " ".join(value.split()).lower()
        out.append(f"{_dn_key(attr)}={v}")
    return tuple(sorted(out)) or None


_HEX_PAIR = re.compile(r"[0-9A-Fa-f]{2}")


def _dn_parts(text: str) -> list[str]:
    """``text`` cut at the commas, plus signs and semicolons that separate attributes (not
    those quoted or escaped), with quotes and escapes undone."""
    parts: list[str] = []
    cur: list[str] = []
    quoted = False
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and not quoted and i + 1 < len(text):  # Windows quotes, never escapes
            pair = text[i + 1:i + 3]
            if _HEX_PAIR.fullmatch(pair):
                cur.append(chr(int(pair, 16)))
                i += 3
            else:
                cur.append(text[i + 1])
                i += 2
            continue
        if c == '"' and quoted and text[i + 1:i + 2] == '"':
            cur.append('"')  # Windows doubles a quote inside a quoted value
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c in ",+;" and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


def _hex(text: str | None) -> str | None:
    if not text:
        return None
    h = re.sub(r"[^0-9A-Fa-f]", "", text).upper().lstrip("0")
    return h or "0"


def _same(claim: CertClaim | ExchangeCertificate, leaf: CertInfo | CertClaim
          ) -> tuple[bool, str] | None:
    """Whether two descriptions name one certificate, and on what basis: the thumbprint, else
    serial and issuer, else the subject; None when they share none of these."""
    a, b = _hex(claim.thumbprint), _hex(_thumb(leaf))
    if a and b:
        return a == b, "thumbprint"
    sa, sb = _hex(claim.serial), _hex(leaf.serial)
    ia, ib = _dn(claim.issuer), _dn(leaf.issuer)
    if sa and sb and ia and ib:
        return (sa == sb and ia == ib), "serial and issuer"
    da, db = _dn(claim.subject), _dn(leaf.subject)
    if da and db:
        return da == db, "subject"
    return None


def _thumb(c: CertInfo | CertClaim) -> str | None:
    return c.sha1 if isinstance(c, CertInfo) else c.thumbprint


def _describe(c: CertInfo | CertClaim | ExchangeCertificate) -> str:
    subject = c.subject or "(no subject)"
    thumb = _thumb(c) if not isinstance(c, ExchangeCertificate) else c.thumbprint
    return f"{subject} (thumbprint {thumb})" if thumb else subject


def _exchange_entry(settings: Settings, c: CertInfo | CertClaim
                    ) -> tuple[ExchangeCertificate | None, str | None]:
    """The Get-ExchangeCertificate entry for a certificate, and the basis it was found on."""
    for entry in sorted(settings.certificates, key=lambda e: (e.where.file, e.where.line)):
        same = _same(entry, c)
        if same is not None and same[0]:
            return entry, same[1]
    return None, None


# --- names, as Exchange Online matches TlsSenderCertificateName ----------------------------
# One rule with the client_cert_name_mismatch verdict: `x509names.sender_name_fits`.

def _names(c: CertInfo | CertClaim) -> tuple[str, ...]:
    if isinstance(c, CertInfo):
        return sender_names(c)
    cn = re.search(r"(?:^|[,\s])CN=([^,]+)", c.subject or "", re.IGNORECASE)
    return tuple(c.names) + ((cn.group(1).strip(),) if cn else ())


# --- with a capture session ------------------------------------------------------------------

def evidence_verdicts(session: Session, matches: Sequence[Match], settings: Settings, *,
                      expect_name: str | None = None) -> list[Verdict]:
    """What the matched log conversations add to one session: one `log_evidence` per match,
    then each disagreement between log, settings and wire."""
    frame = _wire_frame(session)
    leaf = _wire_leaf(session)
    out: list[Verdict] = []
    for m in matches:
        c = m.conversation
        out.append(_v("log_evidence", f"{c.first} ({c.kind}, {iso_utc(c.start_ns)}) tells this "
                      f"session, matched by {m.basis}: {m.delta_ns / 1e9:+.3f} s from frame "
                      f"{session.first_frame} once the log's clock skew is taken off",
                      session.first_frame))
        claim = c.cert_sent if c.host_role == "client" else c.cert_received
        if claim is not None:
            out += _claim_verdicts(session, c, claim, leaf, frame, settings,
                                   expect_name or settings.expected_name())
        rejected = _rejected_unseen(session, c)
        if rejected is not None:
            reply, why = rejected
            out.append(_v("log_rejected_after_tls",
                          f"{reply.where}: the server answered \"{_reply_text(reply)}\" after "
                          f"STARTTLS; the capture cannot show it ({why}); wire: "
                          f"{_at(frame)}", frame))
        out += _tls_failed(c, frame)
    return out


def _claim_verdicts(session: Session, c: LogConversation, claim: CertClaim,
                    leaf: CertInfo | None, frame: int, settings: Settings,
                    expect_name: str | None) -> list[Verdict]:
    where = claim.where or c.first
    out: list[Verdict] = []
    tls = session.tls
    if leaf is not None:
        same = _same(claim, leaf)
        if same is not None and not same[0]:
            out.append(_v("log_cert_differs",
                          f"{where} says the certificate sent was {_describe(claim)}, but the "
                          f"client's Certificate ({_at(frame)}) carries {_describe(leaf)} "
                          f"(compared by {same[1]})", frame))
    elif tls is not None and (tls.client_certificate is not None and not tls.client_certificate):
        out.append(_v("log_cert_differs",
                      f"{where} says the certificate sent was {_describe(claim)}, but the "
                      f"client's Certificate ({_at(frame)}) is empty", frame))
    elif tls is not None and tls.tls13_encrypted and tls.client_certificate is None:
        out.append(_tls13_named(session, c, claim, where, frame, settings, expect_name))
    if settings.certificates and c.host_role == "client":
        entry, _basis = _exchange_entry(settings, claim)
        if entry is None:
            files = sorted({e.where.file for e in settings.certificates})
            out.append(_v("log_cert_not_in_exchange",
                          f"{where} names the certificate sent as {_describe(claim)}, which "
                          f"is not among the {len(settings.certificates)} of "
                          f"Get-ExchangeCertificate ({', '.join(files)}); wire: {_at(frame)}",
                          frame))
    return out


def _tls13_named(session: Session, c: LogConversation, claim: CertClaim, where: Where,
                 frame: int, settings: Settings, expect_name: str | None) -> Verdict:
    """TLS 1.3 hides the certificate; the log names it.  An error when the named certificate
    had expired at the session (its own NotAfter, or its Get-ExchangeCertificate entry's) or
    does not carry the expected name."""
    version = session.tls.version_name if session.tls else None
    text = (f"{version or 'TLS 1.3'} hides the client certificate on the wire ({_at(frame)}); "
            f"{where} names the one sent: {_describe(claim)}")
    entry, _basis = _exchange_entry(settings, claim)
    not_after = claim.not_after_ns
    if not_after is None and entry is not None:
        not_after = entry.not_after_ns
    problems = []
    if not_after is not None and not_after < session.first_ts_ns:
        src = "" if claim.not_after_ns is not None else f" ({entry.where})"  # type: ignore[union-attr]
        problems.append(f"it expired {iso_utc(not_after)}{src}, before the session")
    names = _names(claim)
    if expect_name and names and not sender_name_fits(names, expect_name):
        problems.append(f"it does not carry the expected name {expect_name}")
    if problems:
        return Verdict("log_names_tls13_cert", "error", f"{text}; {'; '.join(problems)}",
                       EVIDENCE_HINTS["exchange_cert_expired"] if not_after is not None
                       and not_after < session.first_ts_ns
                       else EVIDENCE_HINTS["connector_name_mismatch"], frame)
    return _v("log_names_tls13_cert", text, frame)


def _rejection_after_tls(c: LogConversation) -> LogReply | None:
    return next((r for r in c.replies if r.after_tls and (
        r.code >= 400 or (r.enhanced or "").startswith(("4.", "5.")))), None)


def _rejected_unseen(session: Session, c: LogConversation) -> tuple[LogReply, str] | None:
    """The log's first 4xx/5xx after STARTTLS, when the capture could not see it: TLS 1.3
    without keys, no decryption of the session, or no reply inside TLS on the wire."""
    reply = _rejection_after_tls(c)
    tls = session.tls
    if reply is None or tls is None:
        return None
    d = session.decryption
    if d is None or not d.keys_found:
        why = ("TLS 1.3 without keys" if tls.tls13_encrypted
               else "no keys for this session" if d is not None else "no keys given")
        return reply, why
    inner = session.smtp_tls
    if inner is None or not inner.replies:
        return reply, "no reply inside TLS was decrypted"
    return None


def _reply_text(r: LogReply) -> str:
    return r.text if r.text.startswith(str(r.code)) or not r.code else f"{r.code} {r.text}"


def _tls_failed(c: LogConversation, frame: int | None) -> list[Verdict]:
    failures = [(t, w) for t, w in c.notes if _FAILURE.search(t) and _TLS_WORDS.search(t)]
    if not failures:
        return []
    text, where = failures[0]
    more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
    if c.tls_protocol:  # a certificate that failed verification need not end the handshake:
        # Postfix goes on as "Untrusted" unless its policy demands a verified peer
        trust = f"{c.tls_trust} " if c.tls_trust else ""
        more += f"; the log also shows the TLS connection established ({trust}" \
                f"{c.tls_protocol})"
    wire = f"; wire: {_at(frame)}" if frame is not None else "; no capture session"
    return [_v("log_tls_failed", f"{where}: {text}{more}{wire}", frame)]


# --- connectors against the wire -------------------------------------------------------------

def settings_verdicts(session: Session, settings: Settings) -> list[Verdict]:
    """The certificate list and the connectors held against the wire's client certificate
    and address.

    `exchange_cert_expired`: the wire certificate's Get-ExchangeCertificate entry (found by
    thumbprint, else serial and issuer, else subject) has NotAfter before the session.

    `connector_name_mismatch`: no enabled OnPremises inbound connector's
    TlsSenderCertificateName fits the certificate (as Exchange Online matches it, see
    `x509names.sender_name_fits`); info when the client's public address is in an
    OnPremises connector that identifies the server by address instead.
    `send_connector_cert_mismatch`: no enabled send connector with a TlsCertificateName names
    the certificate by issuer and subject.
    `sender_ip_not_in_connector`: only for a connector whose rule applies to this
    connection, that is an OnPremises connector whose TlsSenderCertificateName the wire
    certificate fits: Exchange Online attributes the connection to it by certificate, and an
    address list it does not contain contradicts that attribution (stale addresses, or another
    route out).  Other connectors' address lists say nothing about this connection, and
    RestrictDomainsToIPAddresses does not make them: Microsoft documents it as applying to
    Partner connectors only.  A private client address (the capture taken inside NAT) is not what
    Exchange Online sees: then the verdict is info and says so.

    The connectors are about mail to Exchange Online, so only sessions to it are judged (its
    banner, an SNI or a server certificate under *.mail.protection.outlook.com): a capture on
    the sending server also holds its mail to other servers, which no connector here rules."""
    frame = _wire_frame(session)
    leaf = _wire_leaf(session)
    out: list[Verdict] = []
    if leaf is not None:
        entry, basis = _exchange_entry(settings, leaf)
        if entry is not None and entry.not_after_ns is not None \
                and entry.not_after_ns < session.first_ts_ns:
            out.append(_v("exchange_cert_expired",
                          f"the client certificate {_describe(leaf)} ({_at(frame)}) is "
                          f"{entry.where}'s Get-ExchangeCertificate entry (by {basis}), whose "
                          f"NotAfter {iso_utc(entry.not_after_ns)} is before the session",
                          frame))
    if not _to_exchange_online(session):
        return out
    inbound = [c for c in settings.on_premises() if c.tls_sender_certificate_name]
    if leaf is not None and inbound:
        names = _names(leaf)
        if not any(sender_name_fits(names, c.tls_sender_certificate_name or "") for c in inbound):
            c = inbound[0]
            others = f" (and {len(inbound) - 1} other connector(s))" if len(inbound) > 1 else ""
            text = (f"the client certificate {_describe(leaf)} ({_at(frame)}) names "
                    f"{', '.join(dict.fromkeys(names)) or 'no DNS names'}; inbound "
                    f"connector \"{c.name}\" ({c.where}) expects "
                    f"TlsSenderCertificateName {c.tls_sender_certificate_name}{others}")
            by_ip = _ip_connector(session, settings)
            if by_ip is None:
                out.append(_v("connector_name_mismatch", text, frame))
            else:
                ip, ic = by_ip
                out.append(_v("connector_name_mismatch",
                              f"{text}; but the client address {ip} is in SenderIPAddresses of "
                              f"inbound connector \"{ic.name}\" ({ic.where}), which identifies "
                              "the server by its address, not its certificate", frame,
                              severity="info"))
    send = [s for s in settings.send if s.enabled is not False
            and (s.tls_cert_issuer or s.tls_cert_subject)]
    if leaf is not None and send and not any(_send_fits(s, leaf) for s in send):
        s = send[0]
        out.append(_v("send_connector_cert_mismatch",
                      f"the client certificate ({_at(frame)}) has issuer {leaf.issuer} and "
                      f"subject {leaf.subject}; send connector \"{s.name}\" ({s.where}) "
                      f"names {s.tls_certificate_name or _tls_name(s)}", frame))
    out += _sender_ip(session, settings, leaf, frame)
    return out


def name_check_by_address(session: Session, settings: Settings,
                          expect_name: str | None) -> list[Verdict]:
    """The session's verdicts with `client_cert_name_mismatch` made info where the
    evidence's `connector_name_mismatch` is: the name expected is an OnPremises inbound
    connector's TlsSenderCertificateName, the session goes to Exchange Online, and the
    client's public address is in SenderIPAddresses of an OnPremises connector without a
    certificate name.  Microsoft documents that such a connector identifies the sending server
    by its address, so the certificate's name does not decide whether the mail gets in; the
    two findings then say the same thing at the same severity."""
    verdicts = list(session.verdicts)
    want = (expect_name or "").strip().lower().rstrip(".")
    if not want or not any(v.code == "client_cert_name_mismatch" and v.severity != "info"
                           for v in verdicts):
        return verdicts
    names = {(c.tls_sender_certificate_name or "").strip().lower().rstrip(".")
             for c in settings.on_premises()}
    if want not in names or not _to_exchange_online(session):
        return verdicts
    by_ip = _ip_connector(session, settings)
    if by_ip is None:
        return verdicts
    ip, c = by_ip
    why = (f"; but the client address {ip} is in SenderIPAddresses of inbound connector "
           f"\"{c.name}\" ({c.where}), which identifies the server by its address, not its "
           "certificate")
    return [replace(v, severity="info", message=v.message + why)
            if v.code == "client_cert_name_mismatch" else v for v in verdicts]


def connector_name_in_ok(verdicts: Sequence[Verdict], session: Session,
                         settings: Settings) -> list[Verdict]:
    """``verdicts`` with `ok`'s unchecked name answered where the connector settings held the
    certificate against their TlsSenderCertificateNames (`settings_verdicts`, for a session
    to Exchange Online): connectors of several names set no expected name, yet were
    compared.  `ok` then names the connector whose name the certificate fits, or says it fits
    none, beside `connector_name_mismatch`."""
    out = list(verdicts)
    marker = f"; {NAME_UNCHECKED}"
    inbound = [c for c in settings.on_premises() if c.tls_sender_certificate_name]
    leaf = _wire_leaf(session)
    if (leaf is None or not inbound or not any(v.code == "ok" and marker in v.message
                                                for v in out)
            or not _to_exchange_online(session)):
        return out
    names = _names(leaf)
    fit = next((c for c in inbound
                if sender_name_fits(names, c.tls_sender_certificate_name or "")), None)
    said = ("it fits no inbound connector's TlsSenderCertificateName (connector_name_mismatch)"
            if fit is None else f"it fits TlsSenderCertificateName "
            f"{fit.tls_sender_certificate_name} of inbound connector \"{fit.name}\" ({fit.where})")
    return [replace(v, message=f"{v.message.split(marker)[0]}; {said}")
            if v.code == "ok" and marker in v.message else v for v in out]


def _ip_connector(session: Session, settings: Settings
                  ) -> tuple[str, InboundConnector] | None:
    """The client's address and the enabled OnPremises connector without a
    TlsSenderCertificateName whose SenderIPAddresses hold it: Microsoft documents an
    OnPremises connector as identifying the sending server either by its certificate or by
    its address, so such a connector lets the connection in whatever certificate it shows.
    None for a private address (the capture was taken inside NAT: the address Exchange
    Online sees is not known)."""
    ip = normal_ip(session.client.rpartition(":")[0])
    if _private(ip):
        return None
    for c in settings.on_premises():
        if not c.tls_sender_certificate_name and c.allows_ip(ip):
            return ip, c
    return None


def _to_exchange_online(session: Session) -> bool:
    smtp, tls = session.smtp, session.tls
    # after TURN (roles_turned) the host that greeted first is the sender, not the receiver
    if smtp is not None and smtp.banner_names_exchange_online and not session.roles_turned:
        return True
    if tls is not None and (tls.sni or "").lower().rstrip(".").endswith(_EXO_SUFFIX):
        return True
    check = session.server_check
    leaf = check.certs[0] if check is not None and check.certs else None
    names = (*leaf.san_dns, leaf.subject_cn or "") if leaf is not None else ()
    return any(n.lower().rstrip(".").endswith(_EXO_SUFFIX) for n in names)


def _tls_name(s: SendConnector) -> str:
    return f"<I>{s.tls_cert_issuer or ''}<S>{s.tls_cert_subject or ''}"


def _send_fits(s: SendConnector, leaf: CertInfo) -> bool:
    issuer_ok = s.tls_cert_issuer is None or _dn(s.tls_cert_issuer) == _dn(leaf.issuer)
    subject_ok = s.tls_cert_subject is None or _dn(s.tls_cert_subject) == _dn(leaf.subject)
    return issuer_ok and subject_ok


# Addresses that only exist behind NAT (RFC 1918, RFC 6598 shared space, IPv6 ULA and
# link-local): what a capture inside the network shows, never what Exchange Online sees.
_NAT_NETS: Final = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
    "fc00::/7", "fe80::/10"))


def _private(ip: str) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr.version == n.version and addr in n for n in _NAT_NETS)


def _sender_ip(session: Session, settings: Settings, leaf: CertInfo | None,
               frame: int) -> list[Verdict]:
    ip = normal_ip(session.client.rpartition(":")[0])
    applies: list[tuple[InboundConnector, str]] = []
    for c in settings.on_premises():
        # RestrictDomainsToIPAddresses is not looked at: Microsoft documents it (with
        # RestrictDomainsToCertificate and RequireTls) as applying to Partner connectors only
        if leaf is not None and c.tls_sender_certificate_name \
                and sender_name_fits(_names(leaf), c.tls_sender_certificate_name):
            applies.append((c, f"its TlsSenderCertificateName {c.tls_sender_certificate_name} "
                               "fits the wire certificate"))
    for c, why in applies:
        if c.allows_ip(ip) is not False:
            continue
        listed = ", ".join(c.sender_ip_addresses)
        text = (f"the client address {ip} (session from frame {session.first_frame}) is not in "
                f"SenderIPAddresses [{listed}] of inbound connector \"{c.name}\" ({c.where}), "
                f"whose rule applies ({why}); documented by Microsoft: an OnPremises "
                "connector identifies the sending server by its certificate or by its address, "
                "and attribution goes by the certificate's domain first; inferred, not "
                "documented: that Exchange Online also holds the connection to this "
                f"connector's addresses{_also_listed(ip, c, settings)}")
        if _private(ip):
            return [_v("sender_ip_not_in_connector",
                       f"{text}; {ip} is a private address, so the capture was taken inside "
                       "NAT and Exchange Online sees the public address instead: check that "
                       "one is listed", frame, severity="info")]
        return [_v("sender_ip_not_in_connector", text, frame)]
    return []


def _also_listed(ip: str, applies: InboundConnector, settings: Settings) -> str:
    """Another enabled OnPremises connector that lists `ip`, said as a clause ("" if none):
    by the documented order the certificate's connector still comes first."""
    for c in settings.on_premises():
        if c is not applies and c.allows_ip(ip):
            return (f" (the address is in SenderIPAddresses of inbound connector \"{c.name}\" "
                    f"({c.where}), but the certificate's connector comes first)")
    return ""


# --- logs without a capture ------------------------------------------------------------------

def log_only_verdicts(conv: LogConversation, settings: Settings) -> list[Verdict]:
    """What a log conversation with no capture session shows by itself (and with the
    settings); every message says there was no capture session, and no verdict has a frame."""
    out: list[Verdict] = []
    nosess = "no capture session"
    reply = conv.rejection()
    if reply is not None:
        tls = " after STARTTLS" if reply.after_tls else ""
        out.append(_v("log_only_rejected", f"{reply.where}: rejected{tls}: "
                      f"\"{_reply_text(reply)}\" ({conv.kind}, {nosess})", None))
    exo = (conv.remote_name or "").lower().rstrip(".").endswith(_EXO_SUFFIX) or (
        reply is not None and reply.enhanced == "5.7.64")
    if conv.kind == "exchange-send" and conv.starttls and conv.cert_sent is None:
        sev = "error" if exo else None
        out.append(_v("log_only_no_cert", f"{conv.first}: TLS was negotiated"
                      f"{' with Exchange Online' if exo else ''} and the log names no "
                      f"certificate sent ({nosess})", None, severity=sev))
    claim = conv.cert_sent if conv.host_role == "client" else None
    if claim is not None and settings.certificates:
        where = claim.where or conv.first
        entry, basis = _exchange_entry(settings, claim)
        if entry is None:
            out.append(_v("log_cert_not_in_exchange",
                          f"{where} names the certificate sent as {_describe(claim)}, which is "
                          f"not in Get-ExchangeCertificate ({nosess})", None))
        elif entry.not_after_ns is not None and entry.not_after_ns < conv.start_ns:
            out.append(_v("exchange_cert_expired",
                          f"{where} names the certificate sent as {_describe(claim)}; its "
                          f"Get-ExchangeCertificate entry {entry.where} (by {basis}) expired "
                          f"{iso_utc(entry.not_after_ns)}, before the log's time ({nosess})",
                          None))
    out += _tls_failed(conv, None)
    return out
