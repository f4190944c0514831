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


def _leaves(obj, out: list, into_records: bool = True) -> list:
    """Every value that is not a list, tuple, dict or (if ``into_records``) record, in field
    order."""
    if into_records and dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            _leaves(getattr(obj, f.name), out)
    elif isinstance(obj, list | tuple):
        for x in obj:
            _leaves(x, out, into_records)
    elif isinstance(obj, dict):
        for v in obj.values():
            _leaves(v, out, into_records)
    else:
        out.append(obj)
    return out


def test_the_copy_floor_carries_every_value_of_the_session_and_no_record() -> None:
    for s in scan(EXAMPLE):
        plain = session_floor.plain_values(s)
        assert isinstance(plain, tuple) and len(plain) == len(dataclasses.fields(s))
        flat = _leaves(plain, [], into_records=False)
        assert not any(dataclasses.is_dataclass(x) for x in flat)
        assert [id(x) for x in flat] == [id(x) for x in _leaves(s, [])]


def test_the_copy_floor_shares_a_record_reached_twice_as_pickle_would() -> None:
    s = next(s for s in scan(EXAMPLE) if s.verdicts)
    v = s.verdicts[0]
    a, b = session_floor.plain_values([v, v])
    assert a is b and a == tuple(session_floor.plain_values(getattr(v, f.name))
                                 for f in dataclasses.fields(v))
    assert session_floor.plain_values({"k": (v,)}) == {"k": (a,)}  # as records_of, dict values
