"""The value a judgement produces: one `Verdict`.

It lives apart from ``diagnose`` (which makes verdicts) so that ``session``, which carries a
session's verdicts, can name the type without importing the judge that fills it in."""

from __future__ import annotations

from dataclasses import dataclass

from .pickling import compact

__all__ = ["Verdict"]


@compact
@dataclass(frozen=True, slots=True)
class Verdict:
    """One judgement about a session: a stable code plus plain words for the admin."""

    code: str
    severity: str  # ok | info | warning | error
    message: str  # one line, naming facts (subjects, dates, frames)
    hint: str  # what to change; "" when there is nothing to do
    frame: int | None  # the Wireshark frame to look at

    def to_dict(self) -> dict[str, str | int | None]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "hint": self.hint,
            "frame": self.frame,
        }
