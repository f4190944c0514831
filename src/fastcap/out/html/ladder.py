"""The arrows of a session's ladder diagram: every SMTP command and reply and every TLS
handshake message, with the frame that carried it, in the order the capture saw them.

Only the facts the scan kept are used (frame numbers, not times): the times are looked up
afterwards for all sessions of a file in one walk (`fastcap.read.frametimes`)."""

from __future__ import annotations

from dataclasses import dataclass

from ...session import Session
from .safe import shown

__all__ = ["Arrow", "ladder"]

C2S, S2C = "c2s", "s2c"


@dataclass(frozen=True, slots=True)
class Arrow:
    """One message between client and server; `bad` marks what broke the session (the empty
    client Certificate, an alert, a 4xx/5xx reply)."""

    frame: int
    direction: str  # c2s | s2c
    kind: str  # smtp | tls | alert | log
    label: str  # already made printable (control characters escaped)
    bad: bool = False


def _smtp(dialogue, prefix: str = "") -> list[tuple[int, int, Arrow]]:
    """(direction order, offset, arrow) for a dialogue's banner, commands and replies."""
    out = []
    if dialogue.banner_frame is not None and dialogue.banner_code is not None:
        text = f"{dialogue.banner_code} {dialogue.banner_text or ''}".rstrip()
        out.append((1, -1, Arrow(dialogue.banner_frame, S2C, "smtp", prefix + shown(text),
                                 dialogue.banner_code >= 400)))
    for c in dialogue.commands:
        if c.frame is not None:
            label = f"{c.verb} {c.arg}".rstrip()
            out.append((0, c.offset, Arrow(c.frame, C2S, "smtp", prefix + shown(label))))
    for r in dialogue.replies:
        if r.frame is not None:
            out.append((1, r.offset, Arrow(r.frame, S2C, "smtp",
                                           prefix + shown(f"{r.code} {r.text}"),
                                           r.code >= 400)))
    return out


def _leaf_subject(check) -> str | None:
    if check is None or not check.certs:
        return None
    return check.certs[0].subject


def _tls(s: Session) -> list[tuple[int, int, Arrow]]:
    t = s.tls
    out: list[tuple[int, int, Arrow]] = []

    def add(where, direction: str, label: str, kind: str = "tls", bad: bool = False) -> None:
        if where is not None and where.frame is not None:
            out.append((0 if direction == C2S else 1, where.offset,
                        Arrow(where.frame, direction, kind, shown(label), bad)))

    ch = t.client_hello
    add(t.client_hello_at, C2S, "ClientHello" + (f" SNI={ch.sni}" if ch and ch.sni else ""))
    add(t.server_hello_at, S2C, "ServerHello" + (f" {t.version_name}" if t.version_name else "")
        + (f" {t.cipher_name}" if t.cipher_name else ""))
    subject = _leaf_subject(s.server_check)
    add(t.server_certs_at, S2C, "Certificate" + (f" {subject}" if subject else ""))
    add(t.server_key_exchange_at, S2C, "ServerKeyExchange")
    add(t.cert_request_at, S2C, "CertificateRequest")
    add(t.server_hello_done_at, S2C, "ServerHelloDone")
    if t.client_certificate_at is not None:
        if t.client_certificate is None:
            add(t.client_certificate_at, C2S, "Certificate (malformed)", bad=True)
        elif not t.client_certificate:
            add(t.client_certificate_at, C2S, "Certificate (empty)", bad=True)
        else:
            subject = _leaf_subject(s.client_check)
            add(t.client_certificate_at, C2S, "Certificate " + (subject or "(unparseable)"))
    add(t.client_key_exchange_at, C2S, "ClientKeyExchange")
    add(t.certificate_verify_at, C2S, "CertificateVerify")
    add(t.client_ccs_at, C2S, "ChangeCipherSpec")
    add(t.client_finished_at, C2S, "Finished (encrypted)")
    add(t.server_ccs_at, S2C, "ChangeCipherSpec")
    add(t.server_finished_at, S2C, "Finished (encrypted)")
    for a in t.alerts:
        label = ("Alert (encrypted)" if a.encrypted
                 else f"Alert {a.level_name or '?'} {a.description_name or '?'}")
        add(a.at, C2S if a.from_client else S2C, label, "alert", True)
    return out


def ladder(s: Session) -> list[Arrow]:
    """The session's arrows in capture order: by frame, and within one frame (one direction)
    by stream offset.  The decrypted dialogue, where keys gave one, is marked with a lock."""
    items = _smtp(s.smtp) if s.smtp is not None else []
    if s.tls is not None:
        items += _tls(s)
    if s.smtp_tls is not None:
        # decrypted bytes have their own offsets: after the handshake in the same direction
        items += [(d, off + (1 << 40), a) for d, off, a in _smtp(s.smtp_tls, "\U0001f512 ")]
    items.sort(key=lambda x: (x[2].frame, x[0], x[1]))
    return [a for _, _, a in items]
