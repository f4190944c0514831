"""benchmarks/session_floor.py: the floor it times builds exactly the records a judged session
is made of, every one of them, from their own values."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from benchmarks import session_floor

from fastcap.run.scanner import scan

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "all-scenarios.pcapng"


def test_the_floor_rebuilds_every_record_of_each_session_equal_to_it() -> None:
    sessions = list(scan(EXAMPLE))
    assert sessions
    originals = [obj for s in sessions for obj in session_floor.records_of(s)]
    plan = session_floor.rebuild_plan(sessions)
    rebuilt = [build(*values) for build, values in plan]
    assert len(rebuilt) == len(originals)
    for old, new in zip(originals, rebuilt, strict=True):
        assert type(new) is type(old) and new is not old
        assert [getattr(new, f.name) for f in dataclasses.fields(old)] == [
            getattr(old, f.name) for f in dataclasses.fields(old)]


def test_records_of_reaches_nested_records_once_each() -> None:
    s = next(s for s in scan(EXAMPLE) if s.tls is not None and s.verdicts)
    found = session_floor.records_of(s)
    assert found[0] is s
    assert len({id(o) for o in found}) == len(found)
    kinds = {type(o).__name__ for o in found}
    # the session, its parts, a record inside a list (verdicts) and inside a record (Where)
    assert {"Session", "TcpFacts", "TlsHandshake", "Verdict", "Where"} <= kinds
    if s.smtp is not None and s.smtp.commands:
        assert any(o is s.smtp.commands[0] for o in found)
