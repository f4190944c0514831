"""Output of `fastcap scan`: a readable table, JSON, JSON lines, CSV, and exported
certificates.  Everything printed from packet data goes through textsafe first."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
from collections.abc import Iterable
from pathlib import Path

from ..judge.diagnose import INFERRED_ABSENT, INFERRED_PRESENT
from ..proto.tls.inference import infer_client_cert
from ..run.scanner import ScanSummary
from ..session import Session
from .cells import cells, clip, pad
from .jsonline import session_line
from .textsafe import printable

SCHEMA_VERSION = 1
_SEVERITY_MARK = {"error": "!", "warning": "~", "info": "i", "ok": ""}


def client_cert_text(s: Session) -> str:
    """What the client presented, in a few words: as seen (in plaintext, or decrypted with
    keys), else as the record sizes of a TLS 1.3 handshake show it, marked inferred."""
    t = s.tls
    if t is None:
        return "-"
    if t.tls13_encrypted and t.client_certificate is None:
        return _inferred_cert_text(s)
    if t.client_certificate is None:
        return "not requested" if not t.cert_requested else "none (no Certificate message)"
    if not t.client_certificate:
        return "none (empty Certificate)"
    leaf = s.client_check.certs[0] if s.client_check and s.client_check.certs else None
    if leaf is None or leaf.subject is None:
        return "unparseable certificate"
    return printable(leaf.subject)


def _inferred_cert_text(s: Session) -> str:
    """The TLS 1.3 client certificate hidden by encryption: what the diagnosis inferred from
    record sizes (its verdict says whether it decided), else only that it is encrypted."""
    codes = {v.code for v in s.verdicts}
    if INFERRED_PRESENT in codes:
        return "sent (inferred)"
    if INFERRED_ABSENT in codes and s.tls is not None:
        asked = infer_client_cert(s.tls).requested
        return "none (inferred)" if asked is not False else "not requested (inferred)"
    return "encrypted (TLS 1.3)"


_LOG_NAMES = {"exchange-send": "send", "exchange-receive": "recv", "postfix": "postfix",
              "message-tracking": "track", "message-trace": "trace"}


def log_mark(s: Session) -> str:
    """The logs a session was joined to, in a word each ("-" for none)."""
    kinds = dict.fromkeys(_LOG_NAMES.get(m.conversation.kind, m.conversation.kind)
                          for m in s.evidence or ())
    return ",".join(kinds) or "-"


def _row(s: Session, logs: bool = False) -> list[str]:
    smtp, t = s.smtp, s.tls
    return [
        str(s.number),
        *([log_mark(s)] if logs else []),
        f"{s.first_frame}-{s.last_frame}",
        f"{s.client} -> {s.server}",
        printable(smtp.ehlo_name or "-") if smtp else "-",
        (t.version_name or "?") if t else ("no TLS" if smtp and smtp.banner_code else "-"),
        client_cert_text(s),
        ", ".join(v.code for v in s.verdicts),
    ]


TABLE_ROWS = 50  # rows of the session table unless --details asks for all
_CELL = 60  # terminal cells of the widest column but the endpoints; longer names are cut


def format_table(sessions: Iterable[Session], limit: int | None = None) -> str:
    """One row per session; with logs given (--evidence), a "log" column names the logs
    each session was joined to.  Past `limit` rows, a note says how many were left out and
    how to see them (the triage block above already groups their problems)."""
    sessions = list(sessions)
    more = len(sessions) - limit if limit is not None and len(sessions) > limit else 0
    if more:
        sessions = sessions[:limit]
    logs = any(s.evidence is not None for s in sessions)
    head = ["#", *(["log"] if logs else []), "frames", "client -> server", "EHLO", "TLS",
            "client certificate", "verdicts"]
    rows = [head] + [_row(s, logs) for s in sessions]
    endpoints = head.index("client -> server")  # shown whole, as tshark's conversations are
    widths = [max(cells(r[i]) for r in rows) if i == endpoints
              else min(max(cells(r[i]) for r in rows), _CELL) for i in range(len(head) - 1)]
    out = []
    for r in rows:
        out.append("  ".join(pad(clip(c, w), w) for c, w in zip(r, widths, strict=False))
                   + "  " + r[-1])
    if more:
        out.append(f"... {more} more session(s): --details lists every session and its "
                   "findings")
    return "\n".join(out)


def format_details(s: Session) -> str:
    """The verdict lines under a session: message, then what to do."""
    lines = []
    for v in s.verdicts:
        mark = _SEVERITY_MARK.get(v.severity, "")
        where = f" [frame {v.frame}]" if v.frame else ""
        lines.append(f"    {mark} {v.code}: {printable(v.message)}{where}")
        if v.hint:
            lines.append(f"      fix: {printable(v.hint)}")
    # a verdict words one of OpenSSL's errors; where a path fails several checks, each in
    # OpenSSL's order, so the next one is not met only after fixing the first
    for role, check in (("client", s.client_check), ("server", s.server_check)):
        if check is not None and len(check.path_errors) > 1:
            errors = "; ".join(f"{printable(e)} at depth {d}" for e, d in check.path_errors)
            lines.append(f"    {role} path (OpenSSL): {errors}")
    return "\n".join(lines)


def format_summary(summaries: list[ScanSummary]) -> str:
    total = sum(x.sessions for x in summaries)
    bad = sum(x.with_problems for x in summaries)
    counts: dict[str, int] = {}
    for x in summaries:
        for code, n in x.verdicts.items():
            counts[code] = counts.get(code, 0) + n
    lines = [f"{total} session(s) in {len(summaries)} file(s); {bad} with problems"]
    lines += [f"  {n:6d}  {code}" for code, n in sorted(counts.items(), key=lambda kv: -kv[1])]
    for x in summaries:
        head = f"{printable(x.path)}: " if len(summaries) > 1 else ""
        for reason, n in sorted(x.skipped.items()):
            lines.append(f"skipped: {head}{reason}: {n}")
        for a, b in x.unreadable:
            lines.append(f"unreadable: {head}bytes {a}-{b - 1}")
        for reason, n in sorted(x.limits.items()):
            lines.append(f"limit: {head}{reason}: {n}")
    sampled = sum(x.checksums_sampled for x in summaries)
    if sampled:  # the sample behind a rewrite warning, which "not verified" alone belies
        wrong = sum(x.checksums_rewritten for x in summaries)
        lines.append("TCP/IP checksums are not verified (as in Wireshark's default settings); "
                     f"a sample summed: {wrong} of {sampled} small IPv4/IPv6 segments wrong and no "
                     "offload's")
    else:
        lines.append("TCP/IP checksums are not verified (as in Wireshark's default settings)")
    return "\n".join(lines)


def session_record(s: Session, path: str) -> dict:
    """One session as JSON data (the schema README documents)."""
    d = s.to_dict()
    d["file"] = path
    d["schema_version"] = SCHEMA_VERSION
    return d


def to_json(results: list[tuple[str, list[Session], ScanSummary]], errors: list[dict],
            extra: dict | None = None) -> str:
    """The whole scan as one document; `extra` adds top-level keys (the logs' `evidence`
    and `unmatched`, when logs were given)."""
    doc = {
        "schema_version": SCHEMA_VERSION,
        "files": [{"path": p, "summary": summ.to_dict(),
                   "sessions": [session_record(s, p) for s in sess]}
                  for p, sess, summ in results],
        "errors": errors,
        **(extra or {}),
    }
    return json.dumps(doc, indent=2, default=str)


def to_jsonl_line(s: Session, path: str) -> str:
    """``json.dumps(session_record(s, path), default=str)``, its recurring parts (chains,
    checks, hellos) encoded once per scan rather than once per session."""
    return session_line(s, path, SCHEMA_VERSION)


CSV_FIELDS = ["file", "session", "first_frame", "last_frame", "client", "server", "ehlo",
              "banner", "starttls", "tls_version", "cert_requested", "client_certificate",
              "client_cert_sha1", "client_cert_not_after", "verdicts", "message",
              "roles_turned"]  # new columns go last: readers by position keep working


_CERT_CELL = CSV_FIELDS.index("client_certificate")
_FORMULA_START = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")  # and their full-width forms
_BEFORE_FORMULA = " \"'\u00a0\u3000"  # what a spreadsheet may trim or drop before one


def _cell(value: object, *, escaped: bool = False) -> str:
    """Spreadsheet-safe: a cell that starts like a formula is prefixed with a quote, also when
    spaces or quotes come first (a spreadsheet that trims them on import would still see
    the formula).  `escaped`: the text is printable already (client_cert_text)."""
    text = "" if value is None else str(value)
    if not escaped:
        text = printable(text)
    head = text.lstrip(_BEFORE_FORMULA)[:1]
    if text.strip(_BEFORE_FORMULA) == "-":  # a lone dash, "none", is no formula
        return text
    return "'" + text if head and head in _FORMULA_START else text


def cert_requested(s: Session) -> bool | None:
    """Whether the server asked for a client certificate: as seen, else, for a TLS 1.3
    handshake that hides it, as the client's answer shows it (None when it does not), as
    client_cert_text tells it."""
    t = s.tls
    if t is None:
        return None
    if t.tls13_encrypted and t.client_certificate is None and t.cert_request_at is None:
        return infer_client_cert(t).requested
    return t.cert_requested


def csv_row(s: Session, path: str) -> list[str]:
    smtp, t = s.smtp, s.tls
    leaf = s.client_check.certs[0] if s.client_check and s.client_check.certs else None
    values = [
        path, s.number, s.first_frame, s.last_frame, s.client, s.server,
        smtp.ehlo_name if smtp else None, smtp.banner_text if smtp else None,
        None if smtp is None else smtp.starttls_accepted,
        t.version_name if t else None, cert_requested(s),
        client_cert_text(s), leaf.sha1 if leaf else None,
        leaf.not_after.isoformat() if leaf and leaf.not_after else None,
        ";".join(v.code for v in s.verdicts),
        s.verdicts[0].message if s.verdicts else None, s.roles_turned,
    ]
    # client_cert_text is made printable already
    return [_cell(v, escaped=i == _CERT_CELL) for i, v in enumerate(values)]


def csv_header() -> str:
    import csv  # --format csv only

    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(CSV_FIELDS)
    return buf.getvalue()


def csv_line(s: Session, path: str) -> str:
    import csv

    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(csv_row(s, path))
    return buf.getvalue()


def export_certs(s: Session, directory: str | os.PathLike) -> list[str]:
    """Write every certificate of the session as DER and PEM named by its SHA-256.

    Names come from the hash only, so nothing can escape the directory. What cannot be done
    is returned as one-line warnings, and the rest is still written: an existing file with
    other content (left alone), a file or directory that cannot be written."""
    out_dir = Path(directory)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return [f"{out_dir}: cannot create the directory: {e.strerror or e}"]
    warnings = []
    ders = []
    if s.tls is not None:
        ders += list(s.tls.server_certs) + list(s.tls.client_certificate or [])
    if ders:  # X.509 code is imported only for a session with certificates
        from ..judge.x509check import load_certificate
    for der in ders:
        digest = hashlib.sha256(der).hexdigest()
        files = [(out_dir / f"{digest}.der", der)]
        if load_certificate(der) is not None:  # unparseable: the DER alone is still worth it
            files.append((out_dir / f"{digest}.pem", _pem(der)))
        for target, content in files:
            if (problem := _write_new(target, content)) is not None:
                warnings.append(problem)
    return warnings


def _pem(der: bytes) -> bytes:
    """PEM of the bytes as sent (not as `cryptography` would re-encode a certificate that is
    not strict DER), 64 columns as OpenSSL writes it."""
    b64 = base64.b64encode(der)
    lines = b"".join(b64[i : i + 64] + b"\n" for i in range(0, len(b64), 64))
    return b"-----BEGIN CERTIFICATE-----\n" + lines + b"-----END CERTIFICATE-----\n"


def _write_new(target: Path, content: bytes) -> str | None:
    """Write ``content`` as ``target`` unless that exists; a warning, or None.

    Through a temporary file renamed into place, so a full disk leaves no half certificate
    under a thumbprint's name (and none of the temporary file either)."""
    try:
        if target.exists():
            if target.read_bytes() != content:
                return f"{target}: exists with other content; not overwritten"
            return None
        tmp = target.with_suffix(target.suffix + ".tmp")
        try:
            tmp.write_bytes(content)
            os.replace(tmp, target)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as e:
        return f"{target}: cannot write: {e.strerror or e}"
    return None
