"""Stage 6: facts in, verdicts out.

Parsing (``smtp``, ``tls``) and certificate checks (``x509check``) only record what happened;
this module judges one session at a time and says, in a mail admin's words, what is wrong and
what to change. It is a pure function of its inputs, so the CLI, the JSON report and the tests
all see the same verdicts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from types import MappingProxyType
from typing import Final

from ..pickling import maker
from ..proto.midstart import MidSession, StreamStart
from ..proto.smtp import EXO_SUFFIX, TLS_VERBS, SmtpDialogue
from ..proto.tls import SERVER_ALERT_SUSPECTED, AlertInfo, TlsHandshake, Where
from ..proto.tls.inference import ClientCertInference, infer_client_cert
from ..proto.tls.wirenames import wire_str
from ..session import Session, TcpFacts, turn_verb
from ..verdict import CertInfo, ChainCheck, Verdict
from .alert_meaning import CLIENT as CLIENT_ALERTS
from .alert_meaning import SERVER_ON_CLIENT_CERT, SERVER_ON_HELLO
from .evidence_codes import EVIDENCE_HINTS, EVIDENCE_TABLE

__all__ = ["CODES", "PROBLEM_CODES", "SEVERITIES", "Verdict", "client_cert_expected", "diagnose",
           "is_problem"]

# Report order: problems first, then the headline `ok`, then context (info).
SEVERITIES: Final = ("error", "warning", "ok", "info")
_RANK: Final = MappingProxyType({s: i for i, s in enumerate(SEVERITIES)})
# Codes other modules act on (crosssession links resumptions and raises expectations).
RESUMED: Final = "tls_session_resumed"
NOT_REQUESTED: Final = "client_cert_not_requested"
INFERRED_ABSENT: Final = "client_cert_inferred_absent"
INFERRED_PRESENT: Final = "client_cert_inferred_present"


# code -> (default severity, one-line description). Severity may be raised or lowered per case.
_TABLE: Final = MappingProxyType(
    {
        "ok": ("ok", "a client certificate was requested, sent, trusted and valid"),
        "no_client_cert": ("error", "the server asked for a certificate; the client sent none"),
        "client_cert_not_requested": (
            "warning",
            "the server sent no CertificateRequest, so no client certificate was sent",
        ),
        "client_cert_expired": ("error", "the client certificate had expired at capture time"),
        "client_cert_not_yet_valid": ("error", "the client certificate was not yet valid"),
        "client_cert_untrusted_ca": (
            "error",
            "the client certificate's chain ends at an untrusted CA",
        ),
        "client_cert_self_signed": (
            "error",
            "the client certificate is self-signed, or names itself as its issuer so OpenSSL "
            "takes it as self-signed (error 18)",
        ),
        "client_cert_incomplete_chain": (
            "error",
            "the client sent its certificate without the intermediate CA(s)",
        ),
        "client_cert_name_mismatch": (
            "error",
            "the client certificate's names do not include the expected name",
        ),
        "client_cert_no_client_auth_eku": (
            "error",
            "the client certificate's extended key usage excludes clientAuth",
        ),
        "server_cert_expired": ("error", "the server certificate had expired at capture time"),
        "server_cert_not_yet_valid": ("error", "the server certificate was not yet valid"),
        "server_cert_untrusted_ca": (
            "error",
            "the server certificate's chain ends at an untrusted CA",
        ),
        "server_cert_self_signed": (
            "error",
            "the server certificate is self-signed, or names itself as its issuer so OpenSSL "
            "takes it as self-signed (error 18)",
        ),
        "server_cert_incomplete_chain": (
            "error",
            "the server sent its certificate without the intermediate CA(s)",
        ),
        "server_cert_name_mismatch": (
            "error",
            "the server certificate does not match the SNI name",
        ),
        "server_cert_no_server_auth_eku": (
            "error",
            "the server certificate's extended key usage excludes serverAuth",
        ),
        "weak_signature": ("warning", "a certificate in a chain is signed with SHA-1 or MD5"),
        "weak_key": ("warning", "a certificate in a chain has a weak public key"),
        "cert_profile_note": (
            "info",
            "a trusted chain departs from the web-PKI profile (mail servers accept it)",
        ),
        "cert_unparseable": ("error", "a certificate (or Certificate message) could not be parsed"),
        "starttls_not_offered": ("error", "the server's EHLO reply did not offer STARTTLS"),
        "starttls_refused": ("error", "the server refused STARTTLS (454 or 5xx)"),
        "tls_alert": ("error", "a TLS alert ended or disturbed the handshake"),
        "handshake_incomplete": (
            "error",
            "the capture does not show the handshake finishing (end, gap, cap, eviction)",
        ),
        "tls13_encrypted": ("info", "TLS 1.3: certificates are encrypted and not visible"),
        "client_cert_inferred_absent": (
            "error",
            "TLS 1.3, inferred from record sizes: the client sent no certificate",
        ),
        "client_cert_inferred_present": (
            "info",
            "TLS 1.3, inferred from record sizes: the client sent a certificate (its chain "
            "cannot be checked without keys)",
        ),
        "tls_session_resumed": (
            "info",
            "the handshake resumed an earlier TLS session: no certificate crossed the wire, the "
            "original handshake's client certificate applies",
        ),
        "relay_denied": (
            "error",
            "Exchange Online answered 550 5.7.64 TenantAttribution in plaintext",
        ),
        "decryption_failed": (
            "warning",
            "keys for the session were given, but a TLS record could not be decrypted with them",
        ),
        "no_key_for_session": (
            "info",
            "keys were given, but none for this session's TLS (its ClientHello random)",
        ),
        "exchange_online_peer": (
            "info",
            "the server is Exchange Online (*.mail.protection.outlook.com)",
        ),
        "no_smtp": ("info", "nothing SMTP-like was seen in the session"),
        "plaintext_on_tls_port": (
            "warning",
            "the host listening on an implicit-TLS port greeted in plaintext: read as SMTP",
        ),
        "tls_not_reached": (
            "info",
            "the session ended before TLS could start (no EHLO, or EHLO not answered)",
        ),
        "plaintext_only": (
            "warning",
            "STARTTLS was not attempted (offered, or offer not captured): mail went in plaintext",
        ),
        "capture_started_mid_session": (
            "info",
            "the capture began after the connection did (no SYN): its opening is missing",
        ),
        "client_cert_not_captured": (
            "warning",
            "the capture began too late to show whether a client certificate was asked for "
            "or sent",
        ),
        # what mail-server logs and connector settings add (fastcap.judge.evidence)
        **EVIDENCE_TABLE,
    }
)

CODES: Final[dict[str, str]] = {code: desc for code, (_sev, desc) in _TABLE.items()}
# Codes whose default severity is a problem.  What counts is each verdict's own severity
# (`is_problem`): client_cert_not_requested is only a problem where a certificate is expected.
PROBLEM_CODES: Final = frozenset(
    c for c, (sev, _d) in _TABLE.items() if sev in ("warning", "error")
)


def most_severe_first(verdicts: Iterable[Verdict]) -> list[Verdict]:
    """Report order (SEVERITIES); verdicts of one severity keep their order."""
    return sorted(verdicts, key=lambda v: _RANK[v.severity])


def is_problem(verdict: Verdict) -> bool:
    """A verdict the admin must act on (warning or error): what makes `scan` exit 1."""
    return verdict.severity in ("error", "warning")

_HINTS: Final = MappingProxyType(
    {
        "plaintext_on_tls_port": (
            "a client that expects TLS at once on this port cannot talk to this server; if the "
            "port is meant for plain SMTP, leave it out of --implicit-tls-ports"
        ),
        "no_client_cert": (
            "no certificate is bound to the sending connector; bind one whose subject/SAN matches "
            "the inbound connector (e.g. Set-SendConnector -TlsCertificateName "
            "'<I>issuer<S>subject'), or for Postfix set smtp_tls_cert_file/smtp_tls_key_file"
        ),
        "client_cert_not_requested": (
            "certificate-based attribution cannot happen on this connection; check that it reaches "
            "the intended endpoint (your tenant's *.mail.protection.outlook.com MX, not a filter "
            "or proxy that terminates TLS) and that the inbound connector is set to identify the "
            "sender by certificate (TlsSenderCertificateName)"
        ),
        "client_cert_expired": (
            "renew the certificate and bind the new one to the send connector "
            "(Set-SendConnector -TlsCertificateName; Postfix: smtp_tls_cert_file), then restart "
            "transport"
        ),
        "client_cert_not_yet_valid": (
            "check the sending server's clock, or wait until the certificate's start date"
        ),
        "client_cert_untrusted_ca": (
            "Exchange Online accepts only certificates from a publicly trusted CA (not a private "
            "or internal CA such as AD CS): replace it with one from a public CA whose subject/SAN "
            "matches the inbound connector"
        ),
        "client_cert_self_signed": (
            "self-signed certificates are never accepted for attribution: use one issued by a "
            "publicly trusted CA"
        ),
        "client_cert_incomplete_chain": (
            "send the full chain: get the missing intermediate CA certificate from the issuing CA "
            "and install it on the sending server (Windows: Intermediate Certification "
            "Authorities store; Postfix: append it to smtp_tls_cert_file after the leaf)"
        ),
        "client_cert_name_mismatch": (
            "bind a certificate whose subject or SAN contains the name the inbound connector "
            "expects (Get-InboundConnector | fl TlsSenderCertificateName), or correct that setting"
        ),
        "client_cert_no_client_auth_eku": (
            "reissue the certificate with Client Authentication (1.3.6.1.5.5.7.3.2) in its "
            "extended key usage, or without an extended key usage restriction"
        ),
        "server_cert_expired": ("the receiving server must renew its certificate"),
        "server_cert_not_yet_valid": ("check the clocks of both servers"),
        "server_cert_untrusted_ca": (
            "the sending server may refuse this peer: a private CA must be trusted explicitly "
            "(install its root), or check for a TLS intercepting proxy between the servers"
        ),
        "server_cert_self_signed": (
            "a self-signed server certificate often means a TLS intercepting proxy or firewall "
            "sits between the servers; send straight to the real endpoint"
        ),
        "server_cert_incomplete_chain": (
            "the receiving server should send its intermediate CA certificate(s) after its own"
        ),
        "server_cert_name_mismatch": (
            "the connection may reach the wrong host (or a proxy): check the smart host / MX the "
            "send connector uses"
        ),
        "server_cert_no_server_auth_eku": (
            "the receiving server's certificate lacks Server Authentication usage; reissue it"
        ),
        "weak_signature": ("replace SHA-1/MD5-signed certificates with SHA-256-signed ones"),
        "weak_key": ("reissue with at least RSA 2048 bits or an EC P-256 key"),
        "cert_profile_note": (
            "nothing to fix for mail (OpenSSL and Windows accept it); when the certificate is "
            "next renewed, a public CA's standard profile removes these deviations"
        ),
        "cert_unparseable": (
            "open the frame in Wireshark and export the certificate; reissue it if it is corrupt"
        ),
        "starttls_not_offered": (
            "TLS (and certificate attribution) is impossible on this connection: check that the "
            "server is the intended one and that no firewall strips STARTTLS (Cisco ASA 'inspect "
            "esmtp' does)"
        ),
        "starttls_refused": (
            "the receiving server refused TLS: check its certificate configuration and logs; a "
            "454 4.7.0 is often a temporary problem on the receiving side"
        ),
        "handshake_incomplete": (
            "capture the whole connection (a larger snaplen and byte cap, no ring-buffer drops) "
            "to see how it ended"
        ),
        "tls13_encrypted": (
            "capture with keys (SSLKEYLOGFILE or a pcapng with decryption secrets), or force TLS "
            "1.2 on the sending side for the diagnosis"
        ),
        "client_cert_inferred_absent": (
            "the record sizes show an empty Certificate message: no certificate is bound to the "
            "sending connector (Set-SendConnector -TlsCertificateName; Postfix: "
            "smtp_tls_cert_file/smtp_tls_key_file); a capture with keys (SSLKEYLOGFILE) confirms it"
        ),
        "client_cert_inferred_present": (
            "to check the certificate itself (chain, validity, names), capture with keys "
            "(SSLKEYLOGFILE or a pcapng with decryption secrets), or force TLS 1.2 on the "
            "sending side"
        ),
        "relay_denied": (
            "Exchange Online could not attribute the connection to your tenant: the on-premises "
            "inbound connector must match this sender by public IP (SenderIPAddresses) or by "
            "certificate (TlsSenderCertificateName matching the certificate's subject/SAN)"
        ),
        "decryption_failed": (
            "check that the key log comes from this capture's sessions (the client's or the "
            "server's SSLKEYLOGFILE of the same run) and is complete: one wrong or missing line "
            "is enough"
        ),
        "plaintext_only": (
            "enable opportunistic or mandatory TLS on the sender (Exchange: RequireTLS on the send "
            "connector; Postfix: smtp_tls_security_level = may or encrypt)"
        ),
        "capture_started_mid_session": (
            "what was before the first captured frame is unknown; start the capture before the "
            "connection opens to see all of it"
        ),
        "client_cert_not_captured": (
            "capture a new connection from its start (start the capture before the sending "
            "server connects; with a ring buffer, keep enough files to hold the whole handshake)"
        ),
        **EVIDENCE_HINTS,
    }
)

# The client-chain fixes above speak of Exchange Online, which admits only a publicly trusted
# CA. Another receiving server decides by its own trust store, and Postfix can admit a client
# certificate by its fingerprint alone (permit_tls_clientcerts: "it is OK if the issuing CA is
# not trusted"), so a private CA or a self-signed certificate can be right there.
_OTHER_PEER_HINTS: Final = MappingProxyType(
    {
        "client_cert_untrusted_ca": (
            "the receiving server (not Exchange Online) decides by its own trust: it must hold "
            "this CA's root (Postfix: smtpd_tls_CAfile, which permit_tls_all_clientcerts "
            "needs), or admit the certificate by fingerprint (Postfix: relay_clientcerts with "
            "permit_tls_clientcerts, which needs no trusted CA); Exchange Online would need a "
            "publicly trusted CA"
        ),
        "client_cert_self_signed": (
            "no CA vouches for it: the receiving server (not Exchange Online) can admit it "
            "only by fingerprint (Postfix: relay_clientcerts with permit_tls_clientcerts); "
            "where it must be verified, and for Exchange Online, use one issued by a publicly "
            "trusted CA"
        ),
    }
)

_PROBLEM_TO_CODE: Final = MappingProxyType(
    {
        "self_signed": "self_signed",
        "untrusted_root": "untrusted_ca",
        "invalid": "untrusted_ca",
        "missing_intermediate": "incomplete_chain",
        "expired": "expired",
        "not_yet_valid": "not_yet_valid",
    }
)


# Verdict(...) built through its slot descriptors: every session gets a few (see maker)
_verdict = maker(Verdict)


def _v(
    code: str,
    message: str,
    frame: int | None,
    *,
    severity: str | None = None,
    hint: str | None = None,
) -> Verdict:
    sev = severity or _TABLE[code][0]
    return _verdict(code, sev, message, _HINTS.get(code, "") if hint is None else hint, frame)


def _tls_port_reached(smtp: SmtpDialogue, server: str) -> str:
    """Where the client spoke: the server's address, or, through a proxy, the tunnel's
    target (its anomaly's "CONNECT host:port"), since the proxy's own port is no TLS port."""
    tunnel = next((a for a in smtp.anomalies
                   if a.kind in ("http_connect_tunnel", "socks_tunnel")), None)
    if tunnel is None:
        return server
    target = tunnel.detail.partition("CONNECT ")[2].split(" ", 1)[0]
    return f"port {target.rpartition(':')[2]} ({target}, through the proxy {server})"


def _frame_text(frame: int | None) -> str:
    return f" (frame {frame})" if frame is not None else ""


def _cert_frame_text(tls: TlsHandshake | None, frame: int | None) -> str:
    """Where a certificate was, and whether a renegotiation (read with the key log) sent it
    rather than the first handshake: the verdicts rest on the latest one sent."""
    again = None if tls is None else _where_frame(tls.renegotiation_at)
    if frame is None or again is None or frame <= again:
        return _frame_text(frame)
    return f" (frame {frame}, sent in a renegotiation)"


def _where_frame(where: Where | None) -> int | None:
    return None if where is None else where.frame


def _cert_name(cert: CertInfo | None) -> str:
    """How a person recognises a certificate: CN, else subject, else thumbprint prefix."""
    if cert is None:
        return "(no certificate)"
    if cert.subject_cn:
        return f"CN={cert.subject_cn}"
    if cert.subject:
        return cert.subject
    return f"SHA-256 {cert.sha256[:16]}…"


def _date(d: dt.datetime | None) -> str:
    return d.date().isoformat() if d is not None else "?"


def _capture_date(session: Session) -> str | None:
    ts = session.first_ts_ns
    if not ts:
        return None
    return dt.datetime.fromtimestamp(ts / 1e9, dt.UTC).date().isoformat()


def _leaf_names(cert: CertInfo | None) -> tuple[str, ...]:
    """DNS names a peer would match against (SAN first; each CN only without SAN, RFC 6125
    §6.4.4 and OpenSSL)."""
    if cert is None:
        return ()
    if cert.san_dns:
        return tuple(cert.san_dns)
    return cert.subject_cns or ((cert.subject_cn,) if cert.subject_cn else ())


def _name_ok(check: ChainCheck, name: str) -> bool:
    """Trust the analyzer's answer when it checked this very name; otherwise match here, by
    the same rule: the client's certificate as the inbound connector's TlsSenderCertificateName
    is matched, the server's as a host name."""
    expected = check.expected_name
    if (
        expected
        and expected.lower().rstrip(".") == name.lower().rstrip(".")
        and (check.name_matches is not None)
    ):
        return bool(check.name_matches)
    # imported here: a scan with no certificate loads no X.509
    from .x509check import name_matches, sender_name_matches

    leaf = check.certs[0] if check.certs else None
    if leaf is None:
        return False
    return (sender_name_matches if check.role == "client" else name_matches)(leaf, name)


def _names_text(cert: CertInfo | None) -> str:
    names = list(_leaf_names(cert)) + (list(cert.san_ip) if cert is not None else [])
    return ", ".join(names) if names else "no DNS names"


def _mismatch_text(role: str, leaf: CertInfo, name: str) -> str:
    """Which names were compared with ``name``, and by which rule, so that an admin can see
    why they do not match."""
    if role != "client":
        return (f"SNI name {name} (as a host name: the SAN DNS names, each CN only when there "
                f"is none); it names {_names_text(leaf)}")
    want = name.strip().rstrip(".")
    wild = (f"; {want} stands for {want[2:]} and every name below it"
            if want.startswith("*.") else "")
    return (f"expected name {name} (as Exchange Online matches TlsSenderCertificateName: the "
            f"SAN DNS names and subject CNs together{wild}); it names {_sender_names(leaf)}")


def _sender_names(leaf: CertInfo) -> str:
    """The names TlsSenderCertificateName is matched against: SAN DNS names and CNs both."""
    cns = leaf.subject_cns or ((leaf.subject_cn,) if leaf.subject_cn else ())
    names = [f"{kind} {', '.join(ns)}" for kind, ns in (("SAN", leaf.san_dns), ("CN", cns)) if ns]
    return " and ".join(names) if names else "no DNS names"


_TODAY: Final = MappingProxyType({
    "valid": "valid today",
    "expired": "still expired today",
    "not_yet_valid": "still not valid today",
})


def _leaf_error_first(check: ChainCheck) -> bool:
    """Whether OpenSSL's first error on the path is one the leaf's own verdicts say (its
    purpose, its dates), so that they come before the verdict on the rest of the path."""
    from .x509path import CERT_HAS_EXPIRED, CERT_NOT_YET_VALID, INVALID_PURPOSE, REASONS

    if check.path_error_depth != 0:
        return False
    own = {REASONS[CERT_HAS_EXPIRED], REASONS[CERT_NOT_YET_VALID]}
    if check.eku_ok is False:
        own.add(REASONS[INVALID_PURPOSE])
    return check.path_error in own


def _path_text(suffix: str, role: str, what: str, at: str, issuer: str, sent: int) -> str:
    """The path verdict's text for `suffix` (a value of _PROBLEM_TO_CODE): `what` the leaf
    as named, `at` where it was seen, `sent` the certificates sent.  Only the one text asked
    for is made: a capture of test certificates has a chain problem in nearly every session."""
    if suffix == "untrusted_ca":
        return f"{what}{at} (issuer {issuer}) does not chain to a trusted CA"
    if suffix == "self_signed":
        return f"{what}{at} is self-signed"
    if suffix == "incomplete_chain":
        if sent == 1:
            return (f"{what}{at} arrived without the intermediate CA that issued it "
                    f"({issuer}); {sent} certificate(s) sent")
        return (f"{what}{at} arrived without an intermediate CA of its chain; "
                f"{sent} certificate(s) sent")
    if suffix == "expired":
        return f"a CA certificate in the {role} chain{at} has expired"
    return f"a CA certificate in the {role} chain{at} is not yet valid"


def _chain_verdicts(
    role: str, check: ChainCheck, frame: int | None, session: Session, name: str | None,
    other_peer: bool = False,
) -> list[Verdict]:
    """Verdicts for one ChainCheck; ``name`` is the name the leaf must carry (or None);
    ``other_peer``: the receiving server is known not to be Exchange Online, whose rules the
    default fixes give."""
    out: list[Verdict] = []
    leaf = check.certs[0] if check.certs else None
    what = f"{role} certificate {_cert_name(leaf)}"
    at = _cert_frame_text(session.tls, frame)
    broken = [(i, c) for i, c in enumerate(check.certs) if c.parse_error]
    if check.problem == "unparseable" or broken or leaf is None:
        i, c = broken[0] if broken else (0, leaf)
        why = c.parse_error if c is not None and c.parse_error else check.detail or "unreadable"
        out.append(
            _v(
                "cert_unparseable",
                f"{role} certificate #{i + 1}{at} could not be parsed: {why}",
                frame,
            )
        )
        if leaf is None or (broken and broken[0][0] == 0):
            return out
    dated = check.leaf_valid_at_capture in ("expired", "not_yet_valid")
    at_path = len(out)  # where the path's verdict goes, when there is one
    suffix = _PROBLEM_TO_CODE.get(check.problem or "")
    if suffix and not (dated and suffix in ("expired", "not_yet_valid")):
        issuer = leaf.issuer_cn or leaf.issuer or "an unknown issuer"
        text = _path_text(suffix, role, what, at, issuer, len(check.certs))
        from .x509path import AFTER_BUILD_REASONS  # as above: only with a chain judged

        if check.problem == "invalid" and check.path_error in AFTER_BUILD_REASONS:
            # A trusted root was reached: the path failed a check on the way (a CA flag, a
            # purpose, a signature, a date), and the detail names which.
            text = f"{what}{at} chains to a trusted root, but the path fails validation"
        elif check.problem == "invalid":
            # No path was built, though the store holds a certificate of an issuer's name on
            # the chain (key identifiers that disagree, a stale look-alike taken instead).
            text = (f"{what}{at} (issuer {issuer}) does not chain to a trusted CA: no path to"
                    " a trusted root was built")
        if check.detail:
            text += f": {check.detail}"
        code = f"{role}_cert_{suffix}"
        out.append(_v(code, text, frame,
                      hint=_OTHER_PEER_HINTS.get(code) if other_peer else None))
    if check.eku_ok is False or (check.problem == "wrong_usage" and check.eku_ok is not True):
        code = f"{role}_cert_no_{role}_auth_eku"
        usage = ", ".join(leaf.ext_key_usage or ()) or "none"
        need = "clientAuth" if role == "client" else "serverAuth"
        out.append(_v(code, f"{what}{at} lacks {need} in its extended key usage ({usage})", frame))
    # after the path and the purpose: the order of OpenSSL's checks (x509check)
    if dated:  # the capture date and today's state only go into these two
        cap = _capture_date(session)
        cap_text = f" (capture {cap})" if cap else ""
        today = _TODAY.get(check.leaf_valid_today, "")
        today = f"; {today}" if today else ""
    if check.leaf_valid_at_capture == "expired":
        out.append(
            _v(
                f"{role}_cert_expired",
                f"{what}{at} expired {_date(leaf.not_after)}{cap_text}{today}",
                frame,
            )
        )
    elif check.leaf_valid_at_capture == "not_yet_valid":
        out.append(
            _v(
                f"{role}_cert_not_yet_valid",
                f"{what}{at} is valid only from {_date(leaf.not_before)}{cap_text}{today}",
                frame,
            )
        )
    if check.problem == "invalid" and len(out) > at_path + 1 and _leaf_error_first(check):
        out.append(out.pop(at_path))  # OpenSSL's first error is the leaf's own: it leads
    if name and not _name_ok(check, name):
        out.append(
            _v(
                f"{role}_cert_name_mismatch",
                f"{what}{at} does not match {_mismatch_text(role, leaf, name)}",
                frame,
            )
        )
    if check.profile_notes:
        text = f"{what}{at}: " + "; ".join(check.profile_notes)
        out.append(_v("cert_profile_note", text, frame))
    return out


def _weak(code: str, checks: Iterable[tuple[ChainCheck, int | None]]) -> Verdict | None:
    """weak_signature or weak_key: the flagged certificates of every chain, in one verdict."""
    parts: list[str] = []
    frame = None
    rejected = []  # roles whose otherwise trusted chain failed only for its digest
    for check, f in checks:
        found = check.weak_signatures if code == "weak_signature" else check.weak_keys
        for index, what in found:
            cert = check.certs[index] if 0 <= index < len(check.certs) else None
            parts.append(f"{check.role} #{index + 1} {_cert_name(cert)}: {what}{_frame_text(f)}")
            frame = f if frame is None else frame
        if code == "weak_signature" and check.problem == "weak_signature":
            rejected.append(check.role)
    if not parts:
        return None
    label = "weak signature" if code == "weak_signature" else "weak key"
    text = f"{label}: " + "; ".join(parts)
    if rejected:
        text += (f"; the {' and '.join(rejected)} chain comes from a trusted CA but fails "
                 f"verification for this digest alone (Exchange Online rejects it too)")
        return _v(code, text, frame, severity="error")
    return _v(code, text, frame)


def _after_handshake(tls: TlsHandshake, a: AlertInfo) -> bool:
    """Whether a completed handshake outlived ``a``: an alert still encrypted, or a client alert
    decrypted from past the client's Finished, its last handshake message (an OpenSSL 3 client
    sends decode_error when the server drops the connection without close_notify). A server
    alert after that Finished can be its refusal of the client certificate, so it stays."""
    if tls.outcome != "completed":
        return False
    if a.encrypted:
        return True
    fin = tls.client_finished_at
    return a.from_client and fin is not None and a.at.offset > fin.offset


def _relevant_alerts(tls: TlsHandshake) -> list[AlertInfo]:
    """Alerts that say something: not close_notify, not the ones the handshake outlived
    (encrypted, or decrypted after the client's Finished)."""
    return [
        a
        for a in tls.alerts
        if a.description_name != "close_notify" and not _after_handshake(tls, a)
    ]


def _alert_verdict(tls: TlsHandshake) -> Verdict | None:
    alerts = _relevant_alerts(tls) or (list(tls.alerts) if tls.outcome == "alert" else [])
    if not alerts:
        return None
    fatal = [a for a in alerts if a.level_name == "fatal" or a.encrypted]
    a = (fatal or alerts)[0]
    frame = a.at.frame
    code = "" if a.encrypted or a.description is None else f" ({a.description})"
    msg = f"{a.text()}{code}{_frame_text(frame)}"
    why, hint = _alert_meaning(tls, a)
    sev = "error" if fatal else "warning"
    return _v("tls_alert", f"{msg}{why}", frame, severity=sev, hint=hint)


_ALERT_LOG_HINT: Final = (
    "find the matching entry in the sending server's log "
    "(Exchange: protocol log; Postfix: mail.log) for the peer's reason"
)


def _alert_meaning(tls: TlsHandshake, a: AlertInfo) -> tuple[str, str]:
    """What the alert says, read by its sender and by where it came: the words after the
    alert in the message, and the fix. A receiving server's alert right after the client's
    Certificate judges that certificate, or, when it was empty, says one is required."""
    cert_frame = _where_frame(tls.client_certificate_at)
    desc = None if a.encrypted else a.description
    frame = a.at.frame
    if a.from_client:
        why = CLIENT_ALERTS.get(desc) if desc is not None else None
        return (f": {why}" if why else ": the sending server aborted the handshake",
                "the sending server usually aborts when it distrusts the receiver's "
                "certificate or finds no common protocol/cipher; check its TLS settings and "
                "logs")
    if cert_frame is not None and (frame is None or frame >= cert_frame):
        if (tls.client_certificate is not None and not tls.client_certificate):
            return (f" right after the client's empty Certificate (frame {cert_frame}): the "
                    "server requires a client certificate and the client sent none",
                    _HINTS["no_client_cert"])
        known = SERVER_ON_CLIENT_CERT.get(desc) if desc is not None else None
        if known is not None:
            return (f" right after the client's Certificate (frame {cert_frame}): "
                    f"{known[0]}", known[1])
        return (f" right after the client's Certificate (frame {cert_frame}): the server "
                "most likely rejected the client certificate",
                "check the client certificate: a publicly trusted CA, full chain sent, valid "
                "dates, a name that matches the inbound connector")
    on_hello = SERVER_ON_HELLO.get(desc) if desc is not None else None
    if on_hello is not None:
        return (f": {on_hello}",
                "compare the TLS versions and ciphers both servers allow (Exchange: the "
                "Schannel TLS settings; Postfix: smtp_tls_protocols, smtp_tls_ciphers)")
    return "", _ALERT_LOG_HINT


def _incomplete_verdict(session: Session, tls: TlsHandshake) -> Verdict:
    """Name why the handshake is unfinished: cap, eviction, lost bytes, reset, or capture end."""
    tcp = session.tcp
    why: list[str] = []
    if tcp.evicted:
        why.append("the connection was evicted early to stay within the memory budget")
    if tcp.capped:
        why.append("a direction passed the per-direction byte cap")
    for name, gaps in (("client->server", tcp.c2s_gaps), ("server->client", tcp.s2c_gaps)):
        if gaps:
            lost = sum(size for _off, size in gaps)
            why.append(
                f"the capture lost {lost} bytes {name} (first at stream offset {gaps[0][0]})"
            )
    frame = None
    for stop in tls.stops:
        side = "client" if stop.from_client else "server"
        why.append(f"{side} stream stopped: {stop.detail}{_frame_text(stop.at.frame)}")
        frame = stop.at.frame if frame is None else frame
    if tcp.closed_by == "rst":
        why.append("the connection was reset (RST)")
    elif tcp.closed_by == "fin":
        why.append("the connection was closed (FIN) before the handshake finished")
    elif not (tcp.evicted or tcp.capped):
        why.append("the capture ended before the connection closed")
    frame = session.last_frame if frame is None else frame
    detail = f" ({tls.outcome_detail})" if tls.outcome_detail else ""
    return _v(
        "handshake_incomplete", f"TLS handshake did not finish{detail}: " + "; ".join(why), frame
    )


def _and_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _began_with(side: str, start: StreamStart) -> str:
    if start.kind == "empty":
        return f"the {side} sent nothing in the capture"
    if start.kind == "none":
        return f"the {side}'s {start.skipped} bytes hold no SMTP line or TLS record start"
    text = f"the {side}'s stream begins with {start.what}{_frame_text(start.frame)}"
    if start.skipped:
        text += f" after {start.skipped} bytes of a unit whose start was not captured"
    return text


def _mid_session_verdict(session: Session, mid: MidSession) -> Verdict:
    """What the capture missed of a connection it joined late, and where each side begins."""
    smtp, tls = session.smtp, session.tls
    lost: list[str] = []
    if _smtp_like(smtp) and not smtp.implicit_tls and (smtp.replies or smtp.commands):
        if smtp.banner_text is None:
            lost.append("the SMTP greeting")
        if smtp.ehlo_verb is None and (smtp.commands or tls is not None):
            lost.append("EHLO")
        if smtp.starttls_command_frame is None and tls is not None:
            lost.append("STARTTLS")
    if tls is not None:
        lost += [f"the {name}" for name, hello in (("ClientHello", tls.client_hello),
                                                    ("ServerHello", tls.server_hello))
                 if hello is None]
    after = f"after {_and_list(lost)}" if lost else "mid-conversation"
    start = f"the capture starts at frame {mid.first_frame}, {after}: no SYN"
    if session.tcp.after_reset:  # not the capture's start: the closed connection went on
        first, rst = session.tcp.after_reset
        start = (f"at frame {mid.first_frame} the connection of the session beginning at "
                 f"frame {first} goes on, {after}, past its RST (frame {rst}) that the "
                 "receiver did not act on or never got (tshark: one stream)")
    return _v(
        "capture_started_mid_session",
        f"{start}; {_began_with('client', mid.c2s)}; {_began_with('server', mid.s2c)}",
        mid.first_frame,
    )


def _cut_client_cert(session: Session, tls: TlsHandshake) -> Verdict | None:
    """The question the capture cannot answer: it began after the server's hello with no
    CertificateRequest in view, or after the request with no ClientHello or client
    Certificate in view. None when the handshake's deciding messages are all there."""
    mid = session.mid_session
    if mid is None:
        return None
    cert_frame = _where_frame(tls.client_certificate_at)
    if tls.server_hello is None and not tls.cert_requested:
        msg = (
            "the capture starts after the server's hello, so whether the server asked for a "
            "client certificate, and whether one was sent, is not visible; "
            f"{_began_with('server', mid.s2c)}"
        )
        if tls.client_certificate_at is not None:
            msg += (
                f"; a client Certificate message is in view{_frame_text(cert_frame)} but is not "
                "judged without the request it answered"
            )
        return _v("client_cert_not_captured", msg, mid.s2c.frame or mid.first_frame)
    if tls.cert_requested and tls.client_hello is None and tls.client_certificate_at is None:
        req = _where_frame(tls.cert_request_at)
        return _v(
            "client_cert_not_captured",
            f"the server asked for a client certificate{_frame_text(req)}, but the capture "
            "starts after the client's Certificate would have gone, so whether one was sent is "
            f"not visible; {_began_with('client', mid.c2s)}",
            mid.c2s.frame or mid.first_frame,
        )
    return None


def _smtp_like(smtp: SmtpDialogue | None) -> bool:
    return smtp is not None and bool(
        smtp.banner_text is not None
        or smtp.replies
        or smtp.commands
        or smtp.implicit_tls
    )


def _exchange_online(smtp: SmtpDialogue | None, server: ChainCheck | None) -> Verdict | None:
    if smtp is not None and smtp.banner_names_exchange_online:
        host = smtp.banner_host or (smtp.banner_text or "").split(" ")[0]
        return _v(
            "exchange_online_peer",
            f"banner names Exchange Online ({host}){_frame_text(smtp.banner_frame)}",
            smtp.banner_frame,
        )
    leaf = server.certs[0] if server is not None and server.certs else None
    for n in _leaf_names(leaf):
        if n.lower().rstrip(".").endswith(EXO_SUFFIX):
            return _v(
                "exchange_online_peer", f"server certificate names Exchange Online ({n})", None
            )
    return None


_MAIL_VERBS: Final = frozenset({"MAIL", "RCPT", "DATA", "BDAT"})


def _tcp_end_text(tcp: TcpFacts) -> str:
    if tcp.closed_by == "rst":
        return "the connection was reset (RST)"
    if tcp.closed_by == "fin":
        return "the connection was closed (FIN)"
    return "the capture ended"


def _helo_fallback(smtp: SmtpDialogue) -> tuple[str, int | None] | None:
    """(the refusal, the HELO's frame) when the greeting that counted was a HELO sent after
    the EHLO was refused: then HELO, not the EHLO reply, is why no extension was offered."""
    if smtp.ehlo_verb != "EHLO":
        return None
    ok = [r for r in smtp.replies if r.answers in ("EHLO", "HELO") and 200 <= r.code < 300]
    if not ok or ok[-1].answers != "HELO":
        return None
    refusal = next((r for r in smtp.replies if r.answers == "EHLO" and r.code >= 400), None)
    helo = next((c for c in reversed(smtp.commands) if c.verb == "HELO"), None)
    said = f"{refusal.code} {refusal.text}".strip() if refusal is not None else "no 2xx reply"
    return said, helo.frame if helo is not None else None


_NO_STARTTLS_NO_MAIL_HINT: Final = (
    "if this is the sending server, not a monitor: read its log for this connection (a "
    "server that requires TLS but cannot start it, e.g. its certificate or key cannot be "
    "loaded, may end the session after EHLO); a monitor's probe needs no action"
)
_REFUSING_GREETINGS: Final = frozenset({421, 521, 554})  # RFC 5321 §3.1, §3.8; RFC 7504
_REFUSED_HINT: Final = (
    "the server turned this sender away before TLS: its reply says why (554 5.7.1 with a "
    "block list named: delist the sending IP; 421: throttled or shutting down, the sender "
    "retries); certificate attribution never got its chance"
)


def _tls_required(smtp: SmtpDialogue) -> str:
    """The server's 530 (RFC 3207 §4: "530 5.7.0 Must issue a STARTTLS command first") as
    evidence: the receiver requires TLS, so the mail it answers was refused, not delivered."""
    r = next((r for r in smtp.replies if r.code == 530), None)
    if r is None:
        return ""
    said = r.text if r.text.startswith("530") else f"530 {r.text}".strip()
    what = f"{r.answers} " if r.answers else ""
    return (f"; the server answered {what}with {said}{_frame_text(r.frame)}: it requires TLS "
            "and refused the mail")


def _tls_verb(smtp: SmtpDialogue) -> str:
    """The command that asked for TLS as the client sent it: STARTTLS, or Exchange's
    X-ANONYMOUSTLS, so that a verdict names what is on the wire."""
    frame = smtp.starttls_command_frame
    for c in smtp.commands:
        if c.frame == frame and c.verb in TLS_VERBS:
            return c.verb
    return "STARTTLS"


def _starttls_verdicts(session: Session, smtp: SmtpDialogue) -> list[Verdict]:
    """Why TLS never began, when it did not; never empty, so every session gets a verdict."""
    if smtp.starttls_accepted is False:
        r = smtp.starttls_reply
        frame = r.frame if r is not None else smtp.starttls_command_frame
        said = f"{r.code} {r.text}".strip() if r is not None else "no usable reply"
        if r is not None and r.text.startswith(str(r.code)):
            said = r.text
        went_on = next((a for a in smtp.anomalies if a.kind == "starttls_not_taken"), None)
        if r is None and went_on is not None:  # RFC 3207 §4: plaintext next means no 220
            said = ("its reply was not captured, and the client went on in plaintext"
                    f"{_frame_text(went_on.frame)}, so TLS never began")
        verb = _tls_verb(smtp)
        return [
            _v("starttls_refused", f"server refused {verb}{_frame_text(frame)}: {said}", frame)
        ]
    if smtp.starttls_command_frame is not None or smtp.implicit_tls:
        frame = smtp.starttls_command_frame
        what = (f"client sent {_tls_verb(smtp)}{_frame_text(frame)}" if frame
                else "implicit TLS port")
        return [
            _v(
                "handshake_incomplete",
                f"{what} but no TLS handshake was captured; {_tcp_end_text(session.tcp)}",
                frame if frame is not None else session.last_frame,
            )
        ]
    if smtp.banner_code in _REFUSING_GREETINGS:
        # RFC 5321 §3.1: the server turned this sender away before any command (a block
        # list, a rate limit, shutting down); the client is not to blame for what follows.
        first_line = (smtp.banner_text or "").split("\n", 1)[0]
        said = f"{smtp.banner_code} {first_line}".strip()
        return [
            _v(
                "tls_not_reached",
                f"server refused the session in its greeting{_frame_text(smtp.banner_frame)}: "
                f"{said}; no STARTTLS or TLS could follow; {_tcp_end_text(session.tcp)}",
                smtp.banner_frame or session.first_frame,
                severity="warning",
                hint=_REFUSED_HINT,
            )
        ]
    ehlo_frame = smtp.ehlo_frame
    if smtp.starttls_offered is False:
        helo = _helo_fallback(smtp)
        if smtp.ehlo_verb == "HELO" or helo is not None:
            refused = ""
            if helo is not None:  # RFC 5321 §4.1.4: a client whose EHLO is refused says HELO
                refused, ehlo_frame = f" after its EHLO was refused ({helo[0]})", helo[1]
            msg = (
                f"client greeted with HELO{_frame_text(ehlo_frame)}{refused}, which allows no "
                "extensions, so STARTTLS could not be offered"
            )
            hint = (
                "make the sending server use EHLO (every current MTA does unless configured not to)"
            )
            return [_v("starttls_not_offered", msg, ehlo_frame, hint=hint)]
        caps = ", ".join(smtp.capabilities) or "no extensions"
        required = _tls_required(smtp)
        stripped = ("; a server that requires TLS yet does not offer it most likely had its "
                    "offer removed on the way (a firewall's SMTP inspection), or its own TLS "
                    "setup is broken" if required else "")
        return [
            _v(
                "starttls_not_offered",
                f"EHLO reply lacks STARTTLS (offered: {caps}); the session stayed plaintext"
                f"{required}{stripped}",
                ehlo_frame,
            )
        ]
    sent = smtp.message_bytes
    tail = f"; {sent} bytes of message content went unencrypted" if sent else ""
    mail = [c for c in smtp.commands if c.verb in _MAIL_VERBS]
    if smtp.starttls_offered:
        if not (mail or sent):  # EHLO, then the end: nothing went in plaintext but EHLO
            text = ("server offered STARTTLS but the client sent neither it nor any mail "
                    f"before the session ended ({_tcp_end_text(session.tcp)}): a connection "
                    "probe, or a sender that wanted TLS and could not start it")
            return [_v("plaintext_only", text, ehlo_frame, hint=_NO_STARTTLS_NO_MAIL_HINT)]
        return [
            _v(
                "plaintext_only",
                f"server offered STARTTLS but the client never sent it{tail}"
                f"{_tls_required(smtp)}",
                ehlo_frame,
            )
        ]
    late = smtp.ehlo_verb is None and session.mid_session is not None
    if mail or sent:
        frame = mail[0].frame if mail else ehlo_frame
        why = (
            "the capture began after EHLO, so whether STARTTLS was offered, refused or not "
            "tried is not visible" if late else "the server's EHLO reply was not captured"
        )
        return [
            _v(
                "plaintext_only",
                f"client sent mail without STARTTLS{_frame_text(frame)} ({why}){tail}",
                frame,
            )
        ]
    if late:
        why = "the capture began after EHLO"
    elif smtp.ehlo_verb is None:
        why = "the client never sent EHLO"
    else:
        why = f"the {smtp.ehlo_verb}{_frame_text(ehlo_frame)} got no successful reply"
    return [
        _v(
            "tls_not_reached",
            f"no STARTTLS or TLS in frames {session.first_frame}-{session.last_frame}: {why}; "
            f"{_tcp_end_text(session.tcp)}",
            ehlo_frame or smtp.banner_frame or session.first_frame,
        )
    ]


_NOT_EXPECTED: Final = (
    "; no client certificate is expected here (not Exchange Online, no --expect-name, no "
    "CertificateRequest from this server earlier in the capture), as for any ordinary MX"
)


# A server that asks but does not require: Postfix with smtpd_tls_ask_ccert = yes (without
# smtpd_tls_req_ccert) asks every client, and most send none; the mail goes on.
_OPTIONAL_ASKED: Final = (
    "; the server went on without one (the handshake completed), so it asks without requiring "
    "(as Postfix does with smtpd_tls_ask_ccert = yes), and no client certificate is expected "
    "here (not Exchange Online, no --expect-name)"
)
_OPTIONAL_ASKED_HINT: Final = (
    "nothing to fix for ordinary delivery; only if this server is to admit the sender by "
    "certificate (Postfix: permit_tls_clientcerts for relaying) configure one on the sender "
    "(Postfix: smtp_tls_cert_file/smtp_tls_key_file; Exchange: Set-SendConnector "
    "-TlsCertificateName)"
)


def _server_went_on(tls: TlsHandshake) -> bool:
    """The server carried on after the client's answer: the handshake completed, with no
    server alert in view nor, in TLS 1.3 without keys, an alert-sized record in its place."""
    return (tls.outcome == "completed"
            and not any(not a.from_client for a in _relevant_alerts(tls))
            and not any(a.code == SERVER_ALERT_SUSPECTED for a in tls.anomalies))


def _not_requested(text: str, frame: int | None, expected_by: str | None,
                   code: str = NOT_REQUESTED, hint: str | None = None) -> Verdict:
    """client_cert_not_requested (or its TLS 1.3 inferred twin, client_cert_inferred_absent
    without a CertificateRequest, or client_cert_not_captured where a renegotiation may have
    hidden the request): a warning where a certificate is expected, else info."""
    if expected_by is None:
        return _v(code, text + _NOT_EXPECTED, frame, severity="info", hint="")
    return _v(code, f"{text}; a client certificate is expected here: {expected_by}", frame,
              severity="warning", hint=_HINTS[NOT_REQUESTED] if hint is None else hint)


def client_cert_expected(verdict: Verdict, expected_by: str) -> Verdict:
    """An info client_cert_not_requested raised to a warning once another fact (e.g. the same
    server asking for a certificate on an earlier connection) says one is expected."""
    if not awaits_expectation(verdict):
        return verdict
    return _not_requested(verdict.message.removesuffix(_NOT_EXPECTED), verdict.frame,
                          expected_by, verdict.code)


def awaits_expectation(verdict: Verdict) -> bool:
    """A client_cert_not_requested (or client_cert_inferred_absent: no CertificateRequest) that
    no fact has yet made a problem: what `client_cert_expected` raises."""
    return verdict.code in (NOT_REQUESTED, INFERRED_ABSENT) and verdict.severity == "info"


def _inferred_verdict(tls: TlsHandshake, inferred: ClientCertInference,
                      expected_by: str | None) -> Verdict:
    """The TLS 1.3 client certificate as the record sizes show it (`inference`), with the
    severity the same finding has over TLS 1.2: an empty Certificate is as bad as
    no_client_cert, a handshake without CertificateRequest as client_cert_not_requested."""
    frame = _where_frame(inferred.at) or _where_frame(tls.server_hello_at)
    label = f"inferred from record sizes ({inferred.confidence} confidence)"
    if inferred.verdict == "present":
        return _v(INFERRED_PRESENT, f"{label}: the client sent a certificate; "
                  f"{inferred.evidence}", frame)
    if inferred.requested:
        text = (f"{label}: the server asked for a client certificate, the client sent none; "
                f"{inferred.evidence}")
        if expected_by is None and _server_went_on(tls):
            return _v(INFERRED_ABSENT, text + _OPTIONAL_ASKED, frame, severity="info",
                      hint=_OPTIONAL_ASKED_HINT)
        return _v(INFERRED_ABSENT, text, frame)
    return _not_requested(f"{label}: the server sent no CertificateRequest in "
                          f"{tls.version_name or 'TLS 1.3'}, so the client sent no certificate; "
                          f"{inferred.evidence}", frame, expected_by, INFERRED_ABSENT)


def _cert_expected_by(
    tls: TlsHandshake, smtp: SmtpDialogue | None, server: ChainCheck | None,
    expect_name: str | None,
) -> str | None:
    """Why this connection should carry a client certificate, if anything says so."""
    if expect_name:
        return f"the user expects a certificate named {expect_name} (--expect-name)"
    exo = _exchange_online(smtp, server)
    if exo is not None:
        return f"Exchange Online attributes senders by certificate ({exo.message})"
    sni = wire_str(tls.sni or "").lower().rstrip(".")
    if sni.endswith(EXO_SUFFIX):
        return f"the client asked for Exchange Online (SNI {sni})"
    return None


_RENEGOTIATED_HINT: Final = (
    "a server that asks for the client certificate by renegotiating (as IIS can) hides both "
    "the request and the answer: give the session's key log (--keylog) to read them, or read "
    "the sending server's log for the certificate it sent, or have the receiving server ask "
    "in the first handshake"
)


_UNREAD_HINT: Final = (
    "the key log lacks the line for an earlier renegotiation's client random (the decryption "
    "error names it), whose keys carry the later one: give the whole key log of the same run, "
    "or read the sending server's log for the certificate it sent"
)


def _renegotiated(tls: TlsHandshake, expected_by: str | None) -> Verdict:
    """No CertificateRequest in the first handshake, but a renegotiation after it: a
    request may have come there, encrypted, so "not requested" would be a guess."""
    frame = _where_frame(tls.renegotiation_at)
    text = (f"the server sent no CertificateRequest in the first {tls.version_name or 'TLS'} "
            f"handshake, but the connection renegotiated TLS{_frame_text(frame)}: a "
            "certificate asked for and sent there is encrypted, so whether one was is not "
            "visible")
    if tls.renegotiation_unread_at is not None:
        first, frame = frame, _where_frame(tls.renegotiation_unread_at)
        text = (f"the server sent no CertificateRequest in the first "
                f"{tls.version_name or 'TLS'} handshake nor in its renegotiation"
                f"{'' if first is None else f' at frame {first}'} (decrypted), but the "
                f"connection renegotiated again{_frame_text(frame)} under keys the key log "
                "does not have: a certificate asked for and sent there is encrypted, so "
                "whether one was is not visible")
    hint = _RENEGOTIATED_HINT if tls.renegotiation_unread_at is None else _UNREAD_HINT
    return _not_requested(text, frame, expected_by, "client_cert_not_captured", hint)


def _renegotiation_read(tls: TlsHandshake) -> str:
    """Where the renegotiation was decrypted too, the words that say it had no request
    either."""
    if not tls.renegotiation_decrypted:
        return ""
    frame = _where_frame(tls.renegotiation_at)
    at = "" if frame is None else f" at frame {frame}"
    return f" (neither in the first handshake nor in its renegotiation{at}, decrypted)"


def _resumed_verdict(tls: TlsHandshake) -> Verdict:
    """The facts of a resumption; the scan links it to the session that established it."""
    how = {"session_id": "by session ID", "ticket": "by session ticket",
           "psk": "by pre-shared key (TLS 1.3)"}.get(tls.resumption, "")
    frame = _where_frame(tls.server_hello_at)
    if tls.resumption == "psk":
        text = (f"resumed a TLS session {how}{_frame_text(frame)}; its ticket was issued "
                "encrypted, so the original handshake (and its client certificate) is known "
                "only when the capture holds it and its keys are given (--keylog)")
    else:
        text = (f"resumed a TLS session {how}{_frame_text(frame)}: no certificate crossed the "
                "wire; the client certificate is that of the handshake that established it")
    return _v(RESUMED, text, frame)


def _client_cert_verdicts(
    session: Session, tls: TlsHandshake, client: ChainCheck | None, expect_name: str | None,
    expected_by: str | None = None, exo_peer: bool = True,
) -> list[Verdict]:
    """The client certificate as the last exchange read shows it; where a later
    renegotiation went unread for want of its keys, each finding says the certificate may
    have changed there, as nothing tells what that one asked and got."""
    out = _client_cert_exchange(session, tls, client, expect_name, expected_by, exo_peer)
    unread = tls.renegotiation_unread_at
    if unread is None or not tls.cert_requested:
        return out  # with no request read, _renegotiated already names the unread one
    later = (f"; the connection renegotiated again{_frame_text(unread.frame)} under keys the "
             "key log does not have: whether a certificate was asked for and sent there, "
             "and so which one holds after it, is not known")
    return [_verdict(v.code, v.severity, v.message + later, v.hint, v.frame) for v in out]


def _client_cert_exchange(
    session: Session, tls: TlsHandshake, client: ChainCheck | None, expect_name: str | None,
    expected_by: str | None = None, exo_peer: bool = True,
) -> list[Verdict]:
    cert_at = tls.client_certificate_at
    frame = _where_frame(cert_at)
    req_frame = _where_frame(tls.cert_request_at)
    if not tls.cert_requested:
        if tls.resumption:
            return []  # no CertificateRequest in an abbreviated handshake: see the original
        if tls.renegotiation_at is not None and not tls.renegotiation_decrypted:
            return [_renegotiated(tls, expected_by)]
        done = tls.outcome == "completed" or tls.server_hello_done_at
        if done and tls.version_name:
            return [
                _not_requested(
                    f"the server never sent a CertificateRequest in {tls.version_name}"
                    f"{_renegotiation_read(tls)}, so the client could not present a "
                    "certificate",
                    _where_frame(tls.server_hello_done_at)
                    or _where_frame(tls.server_certs_at),
                    expected_by,
                )
            ]
        return []
    if (tls.client_certificate is not None and not tls.client_certificate):
        text = (f"server requested a client certificate{_frame_text(req_frame)}; the client "
                f"answered with an EMPTY Certificate message{_frame_text(frame)}")
        if expected_by is None and _server_went_on(tls):
            return [_v("no_client_cert", text + _OPTIONAL_ASKED, frame, severity="info",
                       hint=_OPTIONAL_ASKED_HINT)]
        return [_v("no_client_cert", text, frame)]
    if tls.client_certificate is None:
        if cert_at is not None:
            return [
                _v(
                    "cert_unparseable",
                    f"the client's Certificate message{_frame_text(frame)} is malformed",
                    frame,
                )
            ]
        later = tls.client_key_exchange_at
        if later is not None:
            return [
                _v(
                    "no_client_cert",
                    f"server requested a client certificate{_frame_text(req_frame)}; the "
                    "client sent no Certificate message at all",
                    later.frame,
                )
            ]
        return []
    if client is None:
        return []
    return _chain_verdicts("client", client, frame, session, expect_name,
                           other_peer=not exo_peer)


def _sent_after_turn(session: Session, verdicts: list[Verdict]) -> list[Verdict]:
    """The client-certificate ``verdicts`` naming the hosts when a 250 to TURN made the
    connection's responder the sender: "the client" is then the host that greeted first,
    which an admin would take for the receiving server."""
    smtp = session.smtp
    if not session.roles_turned or smtp is None:
        return verdicts
    turned = next((a.frame for a in smtp.anomalies if a.kind == "roles_turned"), None)
    who = (f" (after {turn_verb(smtp)}{_frame_text(turned)} the client is the connection's "
           f"responder {session.client}, the server its originator {session.server})")
    return [_verdict(v.code, v.severity, v.message + who, v.hint, v.frame) for v in verdicts]


def diagnose(
    session: Session, client: ChainCheck | None, server: ChainCheck | None, *,
    expect_name: str | None = None,
) -> list[Verdict]:
    """Judge one Session; ``client``/``server`` are the ChainChecks of the certificates it
    carried (None when absent or not analysed). Verdicts come most urgent first.
    """
    smtp, tls = session.smtp, session.tls
    # Whose banner names the receiving server: none after TURN, when the host that greeted
    # first sends the mail (roles_turned) and is the client.
    greeter = None if session.roles_turned else smtp
    if tls is None and not _smtp_like(smtp):
        return [
            _v(
                "no_smtp",
                f"no SMTP dialogue or TLS handshake seen in frames "
                f"{session.first_frame}-{session.last_frame}",
                session.first_frame,
            )
        ]
    out: list[Verdict] = []
    if tls is None and smtp is not None:
        out += _starttls_verdicts(session, smtp)
    if smtp is not None and smtp.relay_denied:
        r = smtp.relay_denied[0]
        why, hint = _relay_cause(tls, client)
        to = ""
        if session.roles_turned:  # denied to the originator, before the TLS of the turn
            turned = next(a.frame for a in smtp.anomalies if a.kind == "roles_turned")
            to = (f" to {session.server}, before the roles turned ({turn_verb(smtp)}"
                  f"{_frame_text(turned)})")
            why = ("; no TLS before it, so no certificate: only the sender's public IP "
                   "(SenderIPAddresses) could attribute it")
            hint = None
        out.append(
            _v(
                "relay_denied",
                f"relay denied in a plaintext reply{_frame_text(r.frame)}{to}: "
                f"{r.code} {r.text}".rstrip() + why,
                r.frame,
                hint=hint,
            )
        )
    out += _decryption_verdicts(session, client)
    if tls is not None:
        unseen = _cut_client_cert(session, tls)
        alert = _alert_verdict(tls)
        # After a cut start, encrypted alerts alone are most likely the closing ones.
        if alert is not None and not (unseen and all(a.encrypted for a in tls.alerts)):
            out.append(alert)
        if tls.outcome == "incomplete" and unseen is None:
            out.append(_incomplete_verdict(session, tls))
        if tls.resumption:
            out.append(_resumed_verdict(tls))
        hidden = tls.tls13_encrypted and tls.client_certificate is None and not tls.server_certs
        if unseen is not None:
            out.append(unseen)
        elif hidden:
            inferred = infer_client_cert(tls)
            none_sent = inferred.verdict == "absent" and bool(inferred.requested)
            if inferred.decided and tls.resumption:
                # as with keys: no certificate verdict of its own, the resumption's covers it
                seen = f"no client certificate in this handshake: {inferred.evidence}"
            elif inferred.decided:
                expected_by = _cert_expected_by(tls, greeter, None, expect_name)
                out += _sent_after_turn(session, [_inferred_verdict(tls, inferred,
                                                                      expected_by)])
                seen = ("the client certificate is only inferred from record sizes, its chain "
                        "cannot be checked without keys")
            else:
                seen = ("whether a client certificate was sent is not visible without keys; "
                        f"nor from record sizes: {inferred.reason}")
            out.append(
                _v(
                    "tls13_encrypted",
                    f"{tls.version_name or 'TLS 1.3'} hides the certificates; {seen}",
                    _where_frame(tls.server_hello_at),
                )
            )
            suspect = [a for a in tls.anomalies if a.code == SERVER_ALERT_SUSPECTED]
            if suspect and alert is None:
                f = suspect[0].at.frame
                why, hint = (
                    ("it probably requires a client certificate, and the record sizes show "
                     "the client sent none (certificate_required, RFC 8446 §4.4.2.4)",
                     _HINTS["client_cert_inferred_absent"]) if none_sent else
                    ("it probably rejected the client certificate",
                     "check the client certificate, or capture with keys"))
                out.append(
                    _v(
                        "tls_alert",
                        f"the server's only record after the client's Finished is "
                        f"alert-sized{_frame_text(f)}: {why}",
                        f,
                        severity="warning",
                        hint=hint,
                    )
                )
        else:
            expected_by = _cert_expected_by(
                tls, greeter, server if tls.server_certs else None, expect_name)
            shown = server if tls.server_certs else None
            sni = wire_str(tls.sni or "").lower().rstrip(".")
            exo_peer = _exchange_online(greeter, shown) is not None or sni.endswith(EXO_SUFFIX)
            out += _sent_after_turn(session, _client_cert_verdicts(
                session, tls, client, expect_name, expected_by, exo_peer))
        if server is not None and tls.server_certs:
            sni = None if tls.sni is None else wire_str(tls.sni)
            out += _chain_verdicts(
                "server", server, _where_frame(tls.server_certs_at), session, sni
            )
        pairs: list[tuple[ChainCheck, int | None]] = []
        if client is not None and tls.client_certificate:
            pairs.append((client, _where_frame(tls.client_certificate_at)))
        if server is not None and tls.server_certs:
            pairs.append((server, _where_frame(tls.server_certs_at)))
        for code in ("weak_signature", "weak_key"):
            w = _weak(code, pairs)
            if w is not None:
                out.append(w)
    plain = None if smtp is None else next(
        (a for a in smtp.anomalies if a.kind == "plaintext_on_tls_port"), None)
    if plain is not None:
        # the port the connection was made to: the responder's, the client's after TURN; its
        # host greeted, "the server" or not
        listening = session.client if session.roles_turned else session.server
        out.append(_v(
            "plaintext_on_tls_port",
            f"the host listening on {_tls_port_reached(smtp, listening)}, a port where TLS "
            f"starts at once (--implicit-tls-ports), greeted in plaintext"
            f"{_frame_text(plain.frame)}: the dialogue is read as SMTP",
            plain.frame,
        ))
    exo = _exchange_online(greeter, server if tls is not None and tls.server_certs else None)
    if exo is not None:
        out.append(exo)
    mid = session.mid_session
    if mid is not None:
        out.append(_mid_session_verdict(session, mid))
    if not any(map(is_problem, out)) and _clean_client_auth(tls, client):
        leaf = client.certs[0]
        frame = _where_frame(tls.client_certificate_at)
        out.append(
            _v(
                "ok",
                f"{tls.version_name or 'TLS'}: client certificate {_cert_name(leaf)}"
                f"{_frame_text(frame)} was requested, sent, trusted and valid "
                f"(until {_date(leaf.not_after)}); {_ok_name_text(leaf, expect_name)}",
                frame,
            )
        )
    return most_severe_first(_merge_same_code(out))


# What `ok` says when no name was given to compare the certificate's with (the evidence
# stage replaces it when the connector settings compared it after all).
NAME_UNCHECKED: Final = "its name was not compared with any expected name"


def _ok_name_text(leaf: CertInfo, expect_name: str | None) -> str:
    """Whether `ok` covers the certificate's name: Exchange Online also holds it against the
    inbound connector's TlsSenderCertificateName, which a chain that verifies says nothing
    of, so an unchecked name is said so, with how to have it checked."""
    if expect_name:
        return f"it fits the expected name {expect_name}"
    return (f"{NAME_UNCHECKED} ({_sender_names(leaf)}): give --expect-name NAME (the inbound "
            "connector's TlsSenderCertificateName), or the connector settings with "
            "--evidence, to compare it")


def _relay_cause(tls: TlsHandshake | None, client: ChainCheck | None) -> tuple[str, str | None]:
    """What the wire says about the 5.7.64's cause: Exchange Online attributes a connection by
    the client certificate or by the sender's IP, so whether a certificate crossed, and
    whether it was sound, tells which of the inbound connector's settings failed."""
    if tls is None:
        return ("; no TLS on this connection, so no certificate: only the sender's public IP "
                "(SenderIPAddresses) could attribute it", None)
    empty = tls.client_certificate is not None and not tls.client_certificate
    if empty or (tls.cert_requested is False and not tls.resumption
                 and not tls.tls13_encrypted):
        at = _frame_text(_where_frame(tls.client_certificate_at))
        return (f"; the client sent no certificate{at}, so only the sender's public IP "
                "(SenderIPAddresses) could attribute it", None)
    if not tls.client_certificate or client is None or not client.certs:
        return "", None
    leaf = client.certs[0]
    sound = (client.trusted is True and client.problem is None and client.eku_ok is not False
             and client.leaf_valid_at_capture == "valid")
    if not sound:
        return (f"; the client certificate {_cert_name(leaf)}"
                f"{_frame_text(_where_frame(tls.client_certificate_at))} has the problems "
                "named in its own verdicts", None)
    return (f"; the client certificate {_cert_name(leaf)}"
            f"{_frame_text(_where_frame(tls.client_certificate_at))} is trusted and valid, so "
            f"the connector did not match it: it names {_sender_names(leaf)}",
            "the certificate is sound, so check the inbound connector: its ConnectorType must "
            "be OnPremises and it must be enabled, and its TlsSenderCertificateName must be a "
            "name the certificate carries (SAN or CN, above) and a domain accepted in your "
            "tenant (Get-InboundConnector | fl ConnectorType,Enabled,TlsSenderCertificateName; "
            "Get-AcceptedDomain)")


def _decryption_verdicts(session: Session, client: ChainCheck | None = None) -> list[Verdict]:
    """What keys showed (only when the scan was given keys): the SMTP dialogue inside TLS
    judged as the plaintext one is, a record that would not decrypt, or no key at all."""
    d = session.decryption
    if d is None:
        return []
    out: list[Verdict] = []
    inner = session.smtp_tls
    if inner is not None and inner.relay_denied:
        r = inner.relay_denied[0]
        why, hint = _relay_cause(session.tls, client)
        out.append(_v("relay_denied", f"relay denied in a reply inside TLS (decrypted)"
                                      f"{_frame_text(r.frame)}: {r.code} {r.text}".rstrip() + why,
                      r.frame, hint=hint))
    if d.error is not None:
        out.append(_v("decryption_failed", f"TLS decryption failed: {d.error}", d.error_frame))
    elif not d.keys_found:
        tls = session.tls
        frame = _where_frame(tls.client_hello_at) if tls is not None else None
        out.append(_v("no_key_for_session", f"no key for this session: {d.why_not}", frame))
    return out


def _merge_same_code(verdicts: list[Verdict]) -> list[Verdict]:
    """One verdict per code (e.g. both chains unparseable), so counts per code stay honest.
    Only codes of one fixed severity come twice (cert_unparseable and cert_profile_note for
    the two chains, relay_denied in plaintext and decrypted); those whose severity depends on
    the case come from one branch each, so the first one's severity is the merged one's."""
    merged: dict[str, Verdict] = {}
    for v in verdicts:
        first = merged.get(v.code)
        if first is None:
            merged[v.code] = v
            continue
        merged[v.code] = Verdict(
            v.code,
            first.severity,
            f"{first.message}; {v.message}",
            first.hint or v.hint,
            first.frame if first.frame is not None else v.frame,
        )
    return list(merged.values())


def _clean_client_auth(tls: TlsHandshake | None, client: ChainCheck | None) -> bool:
    """`ok` needs positive evidence, not just the absence of complaints."""
    return (
        tls is not None
        and not tls.tls13_encrypted
        and tls.outcome == "completed"
        and tls.cert_requested
        and bool(tls.client_certificate)
        and client is not None
        and bool(client.certs)
        and client.trusted is True
        and client.problem is None
        and client.leaf_valid_at_capture == "valid"
    )
