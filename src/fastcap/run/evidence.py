"""Mail-server logs and connector settings joined to a scan's sessions.

The join needs every session of the scan at once (the clock skew between the log host and
the capture host is estimated from all unambiguous pairs), so it runs after the scan, on the
judged sessions, and adds its findings to their verdicts; the scan itself is unchanged."""

from __future__ import annotations

from collections import Counter
from collections.abc import MutableSequence, Sequence
from dataclasses import dataclass, replace

from ..evidence.join import (
    DEFAULT_TOLERANCE_S,
    DEFAULT_WINDOW_S,
    JoinResult,
    SessionKey,
    join,
)
from ..evidence.read import Evidence
from ..evidence.records import LogConversation
from ..judge.diagnose import is_problem, most_severe_first
from ..judge.evidence import (
    connector_name_in_ok,
    evidence_verdicts,
    log_only_verdicts,
    name_check_by_address,
    settings_verdicts,
)
from ..session import Session, evolve
from ..verdict import Verdict
from .scanner import ScanSummary

__all__ = ["MAX_LOGS_ALONE", "MAX_LOG_ONLY", "JoinSettings", "LogOnly", "attach_evidence",
           "log_only"]

# Unmatched log conversations judged and listed, in log time order; the rest are counted.
# With a capture they are what it missed (each costs a read of its lines again); without
# one they are the whole diagnosis.
MAX_LOG_ONLY = 200
MAX_LOGS_ALONE = 10_000


@dataclass(frozen=True, slots=True)
class JoinSettings:
    """How log conversations are matched to sessions (see fastcap.evidence.join)."""

    tolerance_s: float = DEFAULT_TOLERANCE_S
    window_s: float = DEFAULT_WINDOW_S
    skew_s: float | None = None


@dataclass(frozen=True, slots=True)
class LogOnly:
    """A log conversation no capture session matched, with what the log alone shows."""

    conversation: LogConversation
    verdicts: tuple[Verdict, ...]

    def to_dict(self) -> dict:
        c = self.conversation
        return {"source": c.kind, "file": c.file, "line": c.first.line,
                "time_ns": c.start_ns, "facts": c.to_dict(),
                "verdicts": [v.to_dict() for v in self.verdicts]}


def attach_evidence(results: MutableSequence[tuple[str, MutableSequence[Session],
                                                   ScanSummary]],
                    evidence: Evidence, how: JoinSettings = JoinSettings(), *,
                    expect_name: str | None = None) -> JoinResult:
    """Join `evidence` to every session of `results` (path, sessions, summary): each session
    is replaced, in its list, by one whose `evidence` lists its matches and whose verdicts
    gain the findings (sessions are frozen), and each entry of `results` by one whose summary
    (frozen too) counts them."""
    keys = [SessionKey.of(s, path) for path, sessions, _ in results for s in sessions]
    joined = join(keys, evidence.conversations, tolerance_s=how.tolerance_s,
                  window_s=how.window_s, skew_s=how.skew_s)
    joined = _with_facts(joined, evidence)
    settings = evidence.settings
    for at, (path, sessions, summary) in enumerate(results):
        verdicts, problems = Counter(summary.verdicts), summary.with_problems
        for i, s in enumerate(sessions):
            matches = joined.matches.get((path, s.number), ())
            s = evolve(s, evidence=tuple(matches))
            found = evidence_verdicts(s, matches, settings, expect_name=expect_name)
            found += settings_verdicts(s, settings)
            was = any(is_problem(v) for v in s.verdicts)
            checked = connector_name_in_ok(name_check_by_address(s, settings, expect_name),
                                           s, settings)
            if found or tuple(checked) != s.verdicts:
                s = evolve(s, verdicts=tuple(most_severe_first([*checked, *found])))
                verdicts.update(v.code for v in found)
            problems += any(is_problem(v) for v in s.verdicts) - was
            sessions[i] = s
        results[at] = (path, sessions, replace(summary, verdicts=verdicts,
                                               with_problems=problems))
    return joined


def _with_facts(joined: JoinResult, evidence: Evidence) -> JoinResult:
    """The join with its matched conversations' facts read (the join needs only their
    endpoints and times; the findings need their certificates and replies)."""
    flat = [m for ms in joined.matches.values() for m in ms]
    full = evidence.materialize(m.conversation for m in flat)
    by_id = {id(m): replace(m, conversation=c) for m, c in zip(flat, full, strict=True)}
    return replace(joined, matches={k: tuple(by_id[id(m)] for m in ms)
                                    for k, ms in joined.matches.items()})


def log_only(conversations: Sequence[LogConversation], evidence: Evidence,
             limit: int = MAX_LOG_ONLY) -> list[LogOnly]:
    """What each unmatched log conversation shows on its own, in log time order: the first
    `limit` of them (a big log joined to a small capture leaves most of it unmatched, and
    each listed conversation's facts are read again from its file)."""
    first = sorted(conversations, key=lambda c: (c.start_ns, c.file, c.first.line))[:limit]
    return [LogOnly(c, tuple(most_severe_first(log_only_verdicts(c, evidence.settings))))
            for c in evidence.materialize(first)]
