"""JSON lines splice in text encoded once per chain, check and hello shape: the bytes must be
those of json.dumps of the session's record, on every capture the tests carry."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastcap.out import jsonline, report
from fastcap.proto.smtp.dialogue import (
    AnomalyRecord,
    CommandRecord,
    GapRecord,
    ReplyRecord,
    SmtpDialogue,
)
from fastcap.proto.tls.facts import Where
from fastcap.run.scanner import scan
from fastcap.session import TcpFacts

PROJECT = Path(__file__).resolve().parents[1]
CAPTURES = sorted(p for d in (PROJECT / "tests" / "data", PROJECT / "examples")
                  for p in d.rglob("*") if p.suffix in (".pcap", ".pcapng"))


def _plain(s, path: str) -> str:
    return json.dumps(report.session_record(s, path), default=str)


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_line_is_json_dumps_of_the_record(capture: Path) -> None:
    sessions = list(scan(capture))
    if not sessions:  # not SMTP: no line to compare, and a pass would say it matched
        pytest.skip("no session in this capture")
    for s in sessions:
        assert report.to_jsonl_line(s, str(capture)) == _plain(s, str(capture))


def test_a_repeated_chain_and_hello_are_spliced_from_one_encoding() -> None:
    capture = PROJECT / "examples" / "all-scenarios.pcapng"
    sessions = [s for s in scan(capture) if s.tls is not None and s.tls.server_certs]
    assert len(sessions) >= 2
    jsonline._certs_text.cache_clear()
    lines = [report.to_jsonl_line(s, "x") for s in sessions]
    chains = {tuple(s.tls.server_certs) for s in sessions} | {
        tuple(s.tls.client_certificate) for s in sessions if s.tls.client_certificate is not None}
    info = jsonline._certs_text.cache_info()
    assert info.misses == len(chains) < info.misses + info.hits
    assert lines == [_plain(s, "x") for s in sessions]


@pytest.mark.parametrize("value", [
    {"a": "\x00<\u00e9%s", "b": None, "c": True, "d": 2**70, "e": 1.5, "f": [1, "x"]},
    {}, {"%d": 1, "k": float("nan")}, {1: "int key"}])
def test_dict_text_matches_json_dumps_for_odd_values(value) -> None:
    assert jsonline.dict_text(value) == json.dumps(value, default=str)
    assert jsonline.dict_text(value) == jsonline.dict_text(value)  # from the kept texts


def test_without_the_c_encoder_the_line_is_the_same(monkeypatch) -> None:
    capture = PROJECT / "examples" / "all-scenarios.pcapng"
    sessions = list(scan(capture))
    fast = [report.to_jsonl_line(s, "x") for s in sessions]
    monkeypatch.setattr(jsonline, "_C_ENCODE", None)
    jsonline._certs_text.cache_clear()
    jsonline._check_text.cache_clear()
    jsonline._hello_parts.cache_clear()
    jsonline._server_hello_parts.cache_clear()
    assert [report.to_jsonl_line(s, "x") for s in sessions] == fast == [
        _plain(s, "x") for s in sessions]


class _Str(str):
    """A str subclass: json writes it as a string, but not through the kept texts."""


_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.integers(0, 5000), st.text(max_size=20), st.text(max_size=300),
                    st.text(max_size=8).map(_Str), st.floats(allow_nan=True))
_ODD = st.one_of(_SCALAR, st.lists(_SCALAR, max_size=3), st.tuples(_SCALAR),
                 st.dictionaries(st.text(max_size=3), _SCALAR, max_size=2))


def _record(cls) -> st.SearchStrategy:
    return st.builds(cls, *[_SCALAR for _ in fields(cls)])


_RECORD = st.one_of(*[_record(c) for c in (CommandRecord, ReplyRecord, AnomalyRecord,
                                            GapRecord)])


def _field(name: str) -> st.SearchStrategy:
    if name in ("commands", "replies", "relay_denied", "anomalies", "gaps", "capabilities"):
        items = st.lists(st.one_of(_RECORD, _SCALAR), max_size=4)
        return st.one_of(items, items.map(tuple), _ODD)
    if name == "starttls_reply":
        return st.one_of(st.none(), _record(ReplyRecord), _record(CommandRecord), _ODD)
    return _ODD


@given(st.fixed_dictionaries({f.name: _field(f.name) for f in fields(SmtpDialogue)}))
@settings(max_examples=300, deadline=None)
def test_smtp_text_is_json_dumps_of_the_dialogue(values) -> None:
    d = SmtpDialogue(**values)
    text = jsonline.smtp_text(d)
    assert text == json.dumps(d.to_dict(), default=str) == jsonline.plain_text(d)


def test_smtp_text_writes_every_field_in_order() -> None:
    """A field added to the dialogue or its records must reach the line, in its place."""
    d = SmtpDialogue(starttls_reply=ReplyRecord(220, None, "go", 1, 2, "STARTTLS"),
                     commands=[CommandRecord("EHLO", "x", 0, 1)])
    out = json.loads(jsonline.smtp_text(d))
    # but the facts kept for the Zeek logs alone
    zeek_only = ("zeek_lines", "zeek_tails", "zeek_texts", "zeek_args", "zeek_sizes",
                 "zeek_answers", "zeek_bad_replies", "zeek_line_ends")
    assert list(out) == [f.name for f in fields(SmtpDialogue) if f.name not in zeek_only]
    assert list(out["starttls_reply"]) == [f.name for f in fields(ReplyRecord)]
    assert list(out["commands"][0]) == [f.name for f in fields(CommandRecord)]


_GAPS = st.lists(st.tuples(st.integers(0, 2**40), st.integers(0, 2**20)), max_size=3)


@given(st.builds(TcpFacts, *[_GAPS if f.name.endswith("_gaps") else _SCALAR
                             for f in fields(TcpFacts)]))
@settings(max_examples=200, deadline=None)
def test_tcp_text_is_json_dumps_of_the_session_dicts_tcp(tcp) -> None:
    # but the facts kept for the Zeek logs alone
    whole = {f.name: getattr(tcp, f.name) for f in fields(TcpFacts)
             if not f.name.startswith("zeek_")}
    whole.update(c2s_gaps=[list(g) for g in tcp.c2s_gaps],
                 s2c_gaps=[list(g) for g in tcp.s2c_gaps])
    assert tcp.to_dict() == whole
    assert jsonline._tcp(tcp) == json.dumps(whole, default=str)


@given(st.lists(st.one_of(st.integers(-2**70, 2**70), st.integers(0, 20000), st.booleans(),
                          st.none(), st.floats(allow_nan=True), st.text(max_size=3)),
                max_size=12))
def test_int_lists_are_json_dumps_of_the_list(values) -> None:
    assert jsonline._ints(list(values)) == json.dumps(list(values), default=str)


@given(_SCALAR, _SCALAR)
@settings(max_examples=300, deadline=None)
def test_a_position_is_json_dumps_of_the_where(offset, frame) -> None:
    """Exact ints are written straight; a bool, a float or a str subclass must still come
    out as json writes it."""
    w = Where(offset, frame)
    whole = json.dumps(w.to_dict(), default=str)
    assert jsonline._where(w) == whole
    assert "{" + jsonline._at(w) + '"x": 1}' == json.dumps({**w.to_dict(), "x": 1}, default=str)
    assert '{"x": 1, ' + jsonline._last(w) + "}" == json.dumps(
        {"x": 1, **w.to_dict()}, default=str)
    assert (jsonline._where(None), jsonline._at(None), jsonline._last(None)) == ("null", "", "")
