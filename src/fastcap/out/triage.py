"""The triage summary: a scan's problem verdicts grouped by cause, so that 625 failing
sessions that are four mistakes read as four lines.

A cause is one (verdict code, client certificate thumbprint or none, server name): the same
certificate failing the same way against the same server is one thing to fix, however many
times the sending server retried.  The table output prints these groups first and the JSON
carries them as `problems`, so both show one result."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..judge.diagnose import NAME_UNCHECKED, SEVERITIES, is_problem
from ..proto.tls.wirenames import wire_str
from ..session import Session
from .cells import cells, clip, pad
from .filelabels import file_labels
from .textsafe import printable

__all__ = ["MAX_SAMPLES", "Problem", "format_triage", "format_unchecked_names",
           "problem_sessions", "triage"]

MAX_SAMPLES = 3  # session numbers quoted per group: enough to open one in follow or Wireshark
_MARK = {"error": "!", "warning": "~"}
_WIDTH = 60  # widest cell of the block, as in the session table


@dataclass(frozen=True, slots=True)
class Problem:
    """One cause: the sessions sharing a problem verdict, certificate and server."""

    code: str
    severity: str  # error | warning: the most severe of the group's verdicts
    thumbprint: str | None  # SHA-1 of the client certificate's leaf (upper hex); None: none
    cert_subject: str | None
    server: str  # SNI, else the banner's host name, else the server address (no port)
    sessions: int
    clients: int  # distinct client addresses (no port)
    first_ts_ns: int  # the first session's start; 0: none of its sessions has a time
    last_ts_ns: int  # the last session's end; 0 as first_ts_ns
    samples: tuple[tuple[str, int], ...]  # (file, session number) of the first sessions
    message: str  # the first session's verdict message, as an example
    fix: str  # that verdict's hint

    def to_dict(self) -> dict[str, Any]:
        from ..evidence.join import iso_utc  # the log join's module: a table never needs it

        return {
            "code": self.code,
            "severity": self.severity,
            "thumbprint": self.thumbprint,
            "cert_subject": self.cert_subject,
            "server": self.server,
            "sessions": self.sessions,
            "clients": self.clients,
            "first_ts_ns": self.first_ts_ns,
            "last_ts_ns": self.last_ts_ns,
            "first_seen": iso_utc(self.first_ts_ns) if self.first_ts_ns else None,
            "last_seen": iso_utc(self.last_ts_ns) if self.last_ts_ns else None,
            "samples": [{"file": f, "session": n} for f, n in self.samples],
            "message": self.message,
            "fix": self.fix,
        }


class _Group:
    """A Problem while it is being counted."""

    __slots__ = ("clients", "first", "last", "last_session", "message", "fix", "samples",
                 "sessions", "severity", "subject")

    def __init__(self, severity: str, subject: str | None, message: str, fix: str) -> None:
        self.severity, self.subject, self.message, self.fix = severity, subject, message, fix
        self.sessions = 0
        self.clients: set[str] = set()
        self.first: int | None = None
        self.last: int | None = None
        self.samples: list[tuple[str, int]] = []
        self.last_session: tuple[str, int] | None = None


def _host(endpoint: str) -> str:
    """"10.0.0.1:25" -> "10.0.0.1", "[2001:db8::1]:25" -> "2001:db8::1"."""
    if endpoint.startswith("["):
        return endpoint[1:endpoint.find("]")]
    return endpoint.rpartition(":")[0] or endpoint


def server_name(s: Session) -> str:
    """The name a person knows the server by: the SNI the client asked for, else the host
    its banner names, else its address."""
    hello = s.tls.client_hello if s.tls is not None else None
    if hello is not None and hello.sni:
        return wire_str(hello.sni)  # text, as the banner's host: the outputs escape it once
    if s.smtp is not None and s.smtp.banner_host and not s.roles_turned:
        # (after TURN the host that greeted first sends the mail: it is no name of the server)
        return s.smtp.banner_host
    return _host(s.server)


def _rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def triage(results: Iterable[tuple[str, Iterable[Session], object]]) -> list[Problem]:
    """The problem verdicts of every (file, sessions, summary) grouped by (code, client
    certificate thumbprint, server), most severe first, then the most sessions."""
    groups: dict[tuple[str, str | None, str], _Group] = {}
    for path, sessions, _summary in results:
        for s in sessions:
            verdicts = [v for v in s.verdicts if is_problem(v)]
            if not verdicts:
                continue
            check = s.client_check
            leaf = check.certs[0] if check is not None and check.certs else None
            thumb = leaf.sha1 if leaf is not None else None
            server, client, here = server_name(s), _host(s.client), (path, s.number)
            for v in verdicts:
                key = (v.code, thumb, server)
                g = groups.get(key)
                if g is None:
                    g = groups[key] = _Group(v.severity, leaf.subject if leaf else None,
                                             v.message, v.hint)
                elif _rank(v.severity) < _rank(g.severity):
                    g.severity = v.severity
                if g.last_session == here:  # one code twice in a session counts it once
                    continue
                g.last_session = here
                g.sessions += 1
                g.clients.add(client)
                if s.first_ts_ns:  # 0: no frame of the session has a time; it dates nothing
                    g.first = s.first_ts_ns if g.first is None else min(g.first, s.first_ts_ns)
                    g.last = s.last_ts_ns if g.last is None else max(g.last, s.last_ts_ns)
                if len(g.samples) < MAX_SAMPLES:
                    g.samples.append(here)
    problems = [Problem(code, g.severity, thumb, g.subject, server, g.sessions, len(g.clients),
                        g.first or 0, g.last or 0, tuple(g.samples), g.message, g.fix)
                for (code, thumb, server), g in groups.items()]
    problems.sort(key=lambda p: (_rank(p.severity), -p.sessions, p.code, p.server,
                                 p.thumbprint or ""))
    return problems


def problem_sessions(results: Iterable[tuple[str, Iterable[Session], object]]) -> int:
    """Sessions with at least one problem verdict (a session may be in several groups)."""
    return sum(any(is_problem(v) for v in s.verdicts) for _p, ss, _x in results for s in ss)


def format_unchecked_names(results: Iterable[tuple[str, Iterable[Session], object]]) -> str:
    """The line under the headline when sessions judged `ok` had no name to compare the
    client certificate's with ("" when none): "no problems" vouches for the chain, not for
    the name Exchange Online holds against the connector."""
    n = sum(any(v.code == "ok" and NAME_UNCHECKED in v.message for v in s.verdicts)
            for _p, ss, _x in results for s in ss)
    if not n:
        return ""
    return (f"{n} session(s) ok, but the client certificate's name was not compared with any "
            "expected name: give --expect-name NAME (the inbound connector's "
            "TlsSenderCertificateName), or the connector settings with --evidence, to compare "
            "it")


def _clip(text: str) -> str:
    return clip(text, _WIDTH)


def _cert(p: Problem) -> str:
    if p.thumbprint is None:
        return "none"
    subject = printable(p.cert_subject) if p.cert_subject else "(no subject)"
    return f"{_clip(subject)} ({p.thumbprint[:8]}…)"


def _when(ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ns // 1_000_000_000, dt.UTC)


def _seen(p: Problem) -> str:
    """"first .. last" in UTC to the second; the day is not repeated ("-": no time)."""
    if not p.first_ts_ns:
        return "-"
    a, b = _when(p.first_ts_ns), _when(p.last_ts_ns)
    first = a.strftime("%Y-%m-%d %H:%M:%S")
    if a == b:
        return first
    return f"{first} .. {b.strftime('%H:%M:%S' if a.date() == b.date() else '%Y-%m-%d %H:%M:%S')}"


def _samples(samples: Sequence[tuple[str, int]], named: bool,
             labels: Mapping[str, str]) -> str:
    """"#3, #17" or, from several files, "a.pcap #3, #17, b.pcap #1" (files of one name by
    their `labels`: "one/a.pcap #3, two/a.pcap #1")."""
    out, before = [], None
    for f, n in samples:
        out.append(f"{printable(labels.get(f) or os.path.basename(f))} #{n}"
                   if named and f != before else f"#{n}")
        before = f
    return ", ".join(out)


def format_triage(problems: Sequence[Problem], *, total_sessions: int,
                  with_problems: int | None = None, several_files: bool = False,
                  files: Sequence[str] = ()) -> str:
    """The block that heads the table output: a headline, then per group a line (severity,
    sessions, distinct clients, code, server, client certificate, when, sample sessions), the
    first session's message and the fix.  Sample sessions carry their file's name when the
    scan read several files, with the folders that tell it from the other `files` (the
    scan's inputs) and samples' files of that name."""
    if not problems:
        return f"no problems in {total_sessions} session(s)"
    of = f"{with_problems} of " if with_problems is not None else ""
    lines = [f"{len(problems)} problem(s) in {of}{total_sessions} session(s)"]
    named = several_files or len({f for p in problems for f, _n in p.samples}) > 1
    labels = file_labels([*files, *(f for p in problems for f, _n in p.samples)])
    head = ["", "sessions", "clients", "problem", "server", "client certificate",
            "seen (UTC)", "sessions e.g."]
    rows = [[_MARK.get(p.severity, "?"), str(p.sessions), str(p.clients), p.code,
             _clip(printable(p.server)), _cert(p), _seen(p),
             _samples(p.samples, named, labels)] for p in problems]
    widths = [max(cells(r[i]) for r in [head, *rows]) for i in range(len(head) - 1)]

    def line(row: list[str]) -> str:
        return "  ".join(pad(c, w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1]

    lines.append(line(head).rstrip())
    for p, row in zip(problems, rows, strict=True):
        lines.append(line(row).rstrip())
        if p.samples:
            lines.append(f"   {_samples(p.samples[:1], named, labels)}: {printable(p.message)}")
        if p.fix:
            lines.append(f"   fix: {printable(p.fix)}")
    return "\n".join(lines)
