"""The mail-server log part of `fastcap scan`'s output: which logs were read, the clock skew
found, and what matched nothing on either side (a log conversation with no capture session
may mean the capture missed an interface), as text and as JSON."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from ..evidence.detect import SETTINGS_READERS
from ..evidence.join import JoinResult, SessionKey
from ..evidence.read import Evidence
from ..evidence.records import LogConversation
from ..run.evidence import LogOnly
from .report import _SEVERITY_MARK
from .textsafe import printable

__all__ = ["evidence_json", "format_evidence", "format_log_only"]

MAX_LISTED = 50  # log conversations listed in the table output; JSON lists them all


def _time(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _seconds(ns: int) -> str:
    return f"{ns / 1e9:.3f} s".replace(".000 s", " s")


def conversation_line(c: LogConversation) -> str:
    """One log conversation in a line: where, when, who, TLS, and the first rejection."""
    ends = " -> ".join(x for x in (_end(c.local_ip, c.local_port), _end(
        c.remote_ip, c.remote_port) or (c.remote_name or "")) if x)
    if c.host_role == "server":
        ends = " -> ".join(x for x in (_end(c.remote_ip, c.remote_port),
                                       _end(c.local_ip, c.local_port)) if x)
    tls = (c.tls_protocol or "TLS") if c.starttls else "no TLS"
    if c.tls_trust:
        tls = f"{c.tls_trust} {tls}"
    cert = ""
    if c.cert_sent is not None:
        cert = f", sent {c.cert_sent.subject or c.cert_sent.thumbprint or 'a certificate'}"
    rej = c.rejection()
    reply = f", {rej.code or ''} {rej.enhanced or ''}".rstrip() if rej else ""
    return printable(f"{c.first}  {_time(c.start_ns)}  {c.kind}  {ends or '?'}  {tls}"
                     f"{cert}{reply}")


def _end(ip: str | None, port: int | None) -> str:
    if ip is None:
        return ""
    text = f"[{ip}]" if ":" in ip else ip
    return text if port is None else f"{text}:{port}"


def _verdict_lines(verdicts, indent: str) -> list[str]:
    out = []
    for v in verdicts:
        out.append(f"{indent}{_SEVERITY_MARK.get(v.severity, '')} {v.code}: "
                   f"{printable(v.message)}")
        if v.hint:
            out.append(f"{indent}  fix: {printable(v.hint)}")
    return out


def format_log_only(items: Sequence[LogOnly], limit: int = MAX_LISTED) -> list[str]:
    out = []
    for item in items[:limit]:
        out.append(f"  {conversation_line(item.conversation)}")
        out += _verdict_lines(item.verdicts, "    ")
    if len(items) > limit:
        out.append(f"  ... {len(items) - limit} more (--format json lists them all)")
    return out


def format_evidence(evidence: Evidence, joined: JoinResult | None,
                    unmatched: Sequence[LogOnly], *, captured: bool = True) -> str:
    """The block after the sessions' findings: logs read, skew, and the unmatched (the
    first `len(unmatched)` of them judged; the rest counted)."""
    total = len(joined.unmatched_conversations) if joined else len(evidence.conversations)
    lines = ["Log evidence:"]
    for f in evidence.files:
        what = (f"{f.lines} line(s), {f.conversations} conversation(s)"
                if f.kind not in SETTINGS_READERS else "settings")
        lines.append(f"  {printable(f.path)}: {f.kind}, {what}")
    s = evidence.settings
    if s:
        lines.append(f"  settings: {len(s.inbound)} inbound connector(s), {len(s.send)} send "
                     f"connector(s), {len(s.certificates)} Exchange certificate(s)")
    for k in joined.skews if joined else ():
        if not k.given and not k.pairs:
            lines.append(f"  clock: {printable(k.file)}: no unambiguous pair to estimate its "
                         "skew from; taken as 0 (--log-skew sets it)")
            continue
        how = "given" if k.given else (f"estimated from {k.pairs} pair(s), spread "
                                       f"{_seconds(k.spread_ns)}")
        lines.append(f"  clock: {printable(k.file)} runs {_seconds(abs(k.ns))} "
                     f"{'ahead of' if k.ns >= 0 else 'behind'} the capture ({how})")
    if not captured:
        lines.append(f"No capture given: what the logs alone show ({len(unmatched)} "
                     "conversation(s)):")
    elif unmatched:
        lines.append(f"Log conversations with no capture session ({len(unmatched)}): the "
                     "capture may have missed them (another interface, or outside its time)")
    lines += format_log_only(unmatched)
    if total > len(unmatched):
        lines.append(f"  ... and {total - len(unmatched)} more log conversation(s) with no "
                     "capture session, not judged")
    if joined is not None and joined.unmatched_sessions:
        keys = joined.unmatched_sessions
        several = len({k.file for k in keys}) > 1
        shown = ", ".join(_key(k, several) for k in keys[:20]) + (
            ", ..." if len(keys) > 20 else "")
        lines.append(f"Sessions with no log evidence ({len(keys)}): {shown}")
    return "\n".join(lines)


def _key(k: SessionKey, with_file: bool) -> str:
    return f"{printable(k.file)} #{k.number}" if with_file else f"#{k.number}"


def evidence_json(evidence: Evidence, joined: JoinResult | None,
                  unmatched: Sequence[LogOnly]) -> dict:
    """Top-level JSON keys: `evidence` (files read, settings, skew, warnings) and
    `unmatched` (log conversations with no session, sessions with no log)."""
    s = evidence.settings
    return {
        "evidence": {
            "files": [{"path": f.path, "kind": f.kind, "encoding": f.encoding,
                       "lines": f.lines, "conversations": f.conversations}
                      for f in evidence.files],
            "settings": {"inbound_connectors": len(s.inbound), "send_connectors": len(s.send),
                         "exchange_certificates": len(s.certificates),
                         "expected_name": s.expected_name()},
            "skews": [{"file": k.file, "skew_ns": k.ns, "pairs": k.pairs,
                       "spread_ns": k.spread_ns, "given": k.given}
                      for k in (joined.skews if joined else ())],
            "warnings": list(evidence.warnings),
        },
        "unmatched": {
            "log_conversations_total": (len(joined.unmatched_conversations) if joined
                                        else len(evidence.conversations)),
            "log_conversations": [u.to_dict() for u in unmatched],
            "sessions": [{"file": k.file, "number": k.number, "first_frame": k.first_frame}
                         for k in (joined.unmatched_sessions if joined else ())],
        },
    }
