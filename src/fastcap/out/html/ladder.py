"""The arrows of a session's ladder diagram: every SMTP command and reply and every TLS
handshake message, with the frame that carried it, in the order the capture saw them.

Only the facts the scan kept are used (frame numbers, not times): the times are looked up
afterwards for all sessions of a file in one walk (`fastcap.read.frametimes`)."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from ...proto.tls.wirenames import wire_str
from ...session import Session
from ..textsafe import printable

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
    """(direction order, offset, arrow) for a dialogue's banner, commands and replies.  The
    session's client is the sender after the last 250 to TURN (Session.roles_turned), so a
    line before it goes the other way once for each turn still ahead of it (one in the frame
    of the 250 is ahead: the 250 came before the swap)."""
    turns = sorted(a.frame for a in dialogue.anomalies
                   if a.kind == "roles_turned" and a.frame is not None)

    def way(frame: int, command: bool) -> str:
        ahead = len(turns) - bisect.bisect_left(turns, frame)
        return C2S if command != (ahead % 2 == 1) else S2C

    out = []
    if dialogue.banner_frame is not None and dialogue.banner_code is not None:
        text = f"{dialogue.banner_code} {dialogue.banner_text or ''}".rstrip()
        d = way(dialogue.banner_frame, False)
        out.append((int(d == S2C), -1, Arrow(dialogue.banner_frame, d, "smtp",
                                        prefix + printable(text), dialogue.banner_code >= 400)))
    for c in dialogue.commands:
        if c.frame is not None:
            label = f"{c.verb} {c.arg}".rstrip()
            d = way(c.frame, True)
            out.append((int(d == S2C), c.offset,
                        Arrow(c.frame, d, "smtp", prefix + printable(label))))
    for r in dialogue.replies:
        if r.frame is not None:
            d = way(r.frame, False)
            out.append((int(d == S2C), r.offset, Arrow(r.frame, d, "smtp",
                                                  prefix + printable(f"{r.code} {r.text}"),
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
                        Arrow(where.frame, direction, kind, printable(label), bad)))

    ch = t.client_hello
    for name, at, client in t.messages():
        label, bad = name, False
        if name == "ClientHello" and ch is not None and ch.sni:
            label += f" SNI={wire_str(ch.sni)}"  # escaped with the label, once
        elif name == "ServerHello":
            label += (f" {t.version_name}" if t.version_name else "") + (
                f" {t.cipher_name}" if t.cipher_name else "")
        elif name == "Certificate" and not client:
            subject = _leaf_subject(s.server_check)
            label += f" {subject}" if subject else ""
        elif name == "Certificate":
            if t.client_certificate is None:
                label, bad = "Certificate (malformed)", True
            elif not t.client_certificate:
                label, bad = "Certificate (empty)", True
            else:
                label += " " + (_leaf_subject(s.client_check) or "(unparseable)")
        elif name == "Finished":
            label = "Finished (encrypted)"
        add(at, C2S if client else S2C, label, bad=bad)
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
