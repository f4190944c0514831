"""What the folded events add up to: the verdict-free outcome (``completed``, ``alert`` or
``incomplete``, with the prose that says why), how a session was resumed, and the frozen
:class:`.facts.TlsHandshake`.

Completion is judged from per-direction facts only (CCS + encrypted Finished each way, or
TLS 1.3 records after the hellos); TLS 1.3 hides the Finished messages, so there completion is
inferred from encrypted record sizes and flagged as inferred.
"""

from __future__ import annotations

from .const import AlertLevel, is_tls13, version_name
from .facts import (
    TlsAnomaly,
    TlsHandshake,
    Where,
    _make_handshake,
    offered_ticket,
    ticket_digests,
)
from .fold import _Summary
from .messages import _PRE_SHARED_KEY_EXT, _SESSION_TICKET_EXT

# Anomaly code: TLS 1.3, the server's only record after the client's Finished is alert-sized
# (it most likely rejected the client's certificate); the diagnosis looks for this code.
SERVER_ALERT_SUSPECTED = "tls.tls13.server_alert_suspected"


def _stops_text(summary: _Summary) -> str:
    parts = []
    for s in summary.stops:
        side = "client->server" if s.from_client else "server->client"
        frame = f" (after frame {s.at.frame})" if s.at.frame is not None else ""
        parts.append(f"{side}: {s.detail}{frame}")
    return "; ".join(parts)


def _outcome(summary: _Summary, extra: list[TlsAnomaly]) -> tuple[str, str, bool]:
    """(outcome, detail, inferred); hints that need no raising go to ``extra``."""
    tls13 = summary.sh is not None and is_tls13(summary.sh.version)
    if tls13:
        alert_size = summary.alert_size
        client_real = any(n != alert_size for n in summary.c2s_after_ch)
        if summary.s2c_after_sh and client_real:
            detail = (
                "TLS 1.3: encrypted records flowed both ways after the ServerHello, "
                "so the handshake probably completed (its messages are encrypted)"
            )
            size, offset, frame = summary.s2c_after_client_fin_first
            if summary.s2c_after_client_fin == 1 and size == alert_size:
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
        if summary.c2s_after_ch and not client_real:
            extra.append(
                TlsAnomaly(
                    True,
                    "tls.tls13.client_alert_suspected",
                    f"the client's only encrypted records are {alert_size} bytes",
                    Where(*summary.c2s_after_ch_first),
                )
            )
    else:
        sh, ch = summary.sh, summary.ch
        if sh and sh.downgrade and ch and any(is_tls13(v) for v in ch.versions):
            extra.append(
                TlsAnomaly(
                    False,
                    "tls.server_hello.downgrade_sentinel",
                    f"the client offered TLS 1.3, the server chose {sh.version_name} and "
                    f"its random carries the {sh.downgrade} downgrade sentinel",
                    summary.sh_at or Where(0, None),
                )
            )
        if summary.client_cert is not None and summary.cert_request is None and summary.sh:
            extra.append(
                TlsAnomaly(
                    True,
                    "tls.certificate.unsolicited",
                    "client Certificate without a CertificateRequest",
                    summary.at.get("client_cert", Where(0, None)),
                )
            )
        at = summary.at
        done = (
            summary.ccs[True]
            and summary.ccs[False]
            and "client_finished" in at
            and "server_finished" in at
        )
        if done:
            return (
                "completed",
                "both sides sent ChangeCipherSpec and an encrypted Finished",
                False,
            )
    if summary.alerts:
        fatal = [a for a in summary.alerts if a.level == AlertLevel.fatal]
        first = (fatal or [a for a in summary.alerts if a.encrypted] or summary.alerts)[0]
        where = f" (frame {first.at.frame})" if first.at.frame is not None else ""
        return "alert", f"{first.text()}{where} before the handshake completed", False
    missing = []
    if summary.ch is None:
        missing.append("no ClientHello")
    elif summary.sh is None:
        missing.append("no ServerHello" + (" after the HelloRetryRequest" if summary.hrr else ""))
    elif tls13:
        if not summary.s2c_after_sh:
            missing.append("no encrypted server records after the ServerHello")
        if not summary.c2s_after_ch:
            missing.append("no encrypted client records")
        elif not any(n != summary.alert_size for n in summary.c2s_after_ch):
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
            if key not in summary.at:
                missing.append(f"no {text}")
    stops = _stops_text(summary)
    return "incomplete", "; ".join(missing) + (f" [{stops}]" if stops else ""), False


def _resumption(summary: _Summary) -> str | None:
    """How this handshake resumed a session, from the hellos and the server's flight."""
    sh, ch = summary.sh, summary.ch
    if sh is None or ch is None:
        return None
    if is_tls13(sh.version):
        return "psk" if any(e.type == _PRE_SHARED_KEY_EXT for e in sh.extensions) else None
    if "server_cert" in summary.at or "server_hello_done" in summary.at:
        return None  # a full handshake, whatever the session IDs say
    ticket = any(e.type == _SESSION_TICKET_EXT and e.data for e in ch.extensions)
    if sh.session_id and sh.session_id == ch.session_id:
        return "ticket" if ticket else "session_id"
    # RFC 5077 3.4: a ticket accepted without a session ID to echo shows only in the shape
    # of the server's flight: ServerHello, [NewSessionTicket], ChangeCipherSpec.
    return "ticket" if ticket and summary.ccs[False] else None


def handshake_of(summary: _Summary) -> TlsHandshake:
    """The frozen facts of a folded connection; folding more events afterwards changes
    nothing already returned."""
    sh, at = summary.sh, summary.at.get
    hello = sh or summary.hrr
    version = hello.version if hello else None
    extra: list[TlsAnomaly] = []
    outcome, detail, inferred = _outcome(summary, extra)
    sc, cc = summary.server_cert, summary.client_cert
    tickets = tuple(t for t, _ in summary.tickets)
    # positionally, in field order: keywords made this call cost twice as much
    return _make_handshake(
        version,  # version
        None if version is None else version_name(version),  # version_name
        None if sh is None else sh.cipher_suite,  # cipher
        None if sh is None else sh.cipher_name,  # cipher_name
        summary.ch,  # client_hello
        summary.ch_at,  # client_hello_at
        sh,  # server_hello
        summary.sh_at,  # server_hello_at
        summary.hrr is not None,  # hello_retry_request
        tuple(sc.certificates) if sc else (),  # server_certs
        at("server_cert"),  # server_certs_at
        sc.certificates_length if sc else None,  # server_certificates_length
        summary.cert_request,  # cert_request
        at("cert_request"),  # cert_request_at
        tuple(cc.certificates) if cc else None,  # client_certificate
        at("client_cert"),  # client_certificate_at
        cc.certificates_length if cc else None,  # client_certificates_length
        at("server_key_exchange"),  # server_key_exchange_at
        at("server_hello_done"),  # server_hello_done_at
        at("client_key_exchange"),  # client_key_exchange_at
        at("certificate_verify"),  # certificate_verify_at
        at("client_ccs"),  # client_ccs_at
        at("server_ccs"),  # server_ccs_at
        at("client_finished"),  # client_finished_at
        at("server_finished"),  # server_finished_at
        tuple(summary.alerts),  # alerts
        summary.traffic[True].freeze(),  # c2s_encrypted
        summary.traffic[False].freeze(),  # s2c_encrypted
        sh is not None and is_tls13(sh.version),  # tls13_encrypted
        outcome,  # outcome
        detail,  # outcome_detail
        inferred,  # outcome_inferred
        "".join(summary.history),  # history
        tuple(summary.stops),  # stops
        (*summary.anomalies, *extra),  # anomalies
        _resumption(summary),  # resumption
        tickets,  # session_tickets
        summary.tickets[0][1] if summary.tickets else None,  # session_ticket_at
        at("renegotiation"),  # renegotiation_at
        summary.ske_group,  # server_key_exchange_group
        False,  # renegotiation_decrypted
        None,  # renegotiation_unread_at
        summary.first_record_frame,  # first_record_frame
        tuple(summary.history_frames),  # history_frames
        ticket_digests(tickets, offered_ticket(summary.ch)),  # ticket_digests
    )
