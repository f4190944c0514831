"""The seam between facts and judgement: judging reads typed facts by their declared fields
(no probing with getattr, no Any), and `judgement` returns a frozen value without touching
the Session it reads; `judge` stores that value on the Session."""

from __future__ import annotations

import ast
import dataclasses
import pickle
import typing
from pathlib import Path

import pytest

import fastcap
from fastcap.judge.judging import Judgement, judge, judgement
from fastcap.judge.x509check import Analyzer, ChainCheck, TrustStore
from fastcap.session import Session, iter_sessions
from fastcap.verdict import Verdict

SRC = Path(fastcap.__file__).resolve().parent
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
JUDGES = ("diagnose.py", "judging.py", "crosssession.py")


def _probes(text: str) -> list[str]:
    """getattr calls and uses of typing.Any in a module's source, with their lines."""
    found = []
    for node in ast.walk(ast.parse(text)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "hasattr")):
            found.append(f"{node.func.id} at line {node.lineno}")
        elif isinstance(node, ast.Name) and node.id == "Any":
            found.append(f"Any at line {node.lineno}")
        elif isinstance(node, ast.alias) and node.name == "Any":
            found.append("Any imported")
    return found


def test_probe_finder_sees_getattr_and_any():
    text = "from typing import Any\ndef f(x: Any):\n    return getattr(x, 'y', None)\n"
    assert sorted(_probes(text)) == ["Any at line 2", "Any imported", "getattr at line 3"]


@pytest.mark.parametrize("name", JUDGES)
def test_judging_reads_facts_by_declared_fields(name):
    assert _probes((SRC / name).read_text()) == []


def test_session_declares_what_judging_attaches():
    hints = typing.get_type_hints(Session)
    assert hints["client_check"] == ChainCheck | None
    assert hints["server_check"] == ChainCheck | None
    assert hints["verdicts"] == tuple[Verdict, ...]


@pytest.fixture(scope="module")
def analyzer():
    return Analyzer(TrustStore.from_pem_file(EXAMPLES / "test-root.pem"))


@pytest.fixture
def judged(analyzer):
    """Fresh, unjudged sessions of every standard scenario."""
    sessions = list(iter_sessions(EXAMPLES / "all-scenarios.pcapng"))
    assert len(sessions) > 5
    return analyzer, sessions


def test_judgement_reads_the_session_and_judge_stores_the_same(judged):
    analyzer, sessions = judged
    seen_checks = 0
    for s in sessions:
        j = judgement(s, analyzer)
        assert isinstance(j, Judgement) and isinstance(j.verdicts, tuple) and j.verdicts
        assert (s.client_check, s.server_check, s.verdicts) == (None, None, ())
        with pytest.raises(dataclasses.FrozenInstanceError):
            j.verdicts = ()  # type: ignore[misc]
        t = judge(s, analyzer)  # a new session: s is frozen, and stays unjudged
        assert t is not s and (s.client_check, s.server_check, s.verdicts) == (None, None, ())
        assert t.verdicts == j.verdicts
        assert (t.client_check, t.server_check) == (j.client_check, j.server_check)
        assert dataclasses.replace(t, client_check=None, server_check=None, verdicts=()) == s
        seen_checks += (j.client_check is not None) + (j.server_check is not None)
        assert pickle.loads(pickle.dumps(j)) == j
    assert seen_checks > 0


def test_judging_again_replaces_not_accumulates(judged):
    analyzer, sessions = judged
    s = sessions[0]
    first = judge(s, analyzer).verdicts
    assert judge(s, analyzer).verdicts == first
    assert judgement(s, analyzer).verdicts == first
