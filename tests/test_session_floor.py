"""benchmarks/session_floor.py: the floor it times builds exactly the records a judged session
is made of, every one of them, from their own values."""

from __future__ import annotations

import dataclasses
import gc
import json
import sys
from pathlib import Path

import pytest
from benchmarks import session_floor

from fastcap.run.scanner import scan

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "all-scenarios.pcapng"
STARTTLS_EXAMPLE = EXAMPLE.with_name("exchange-online-no-client-cert.pcap")


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


def _pcap_from_frame(src: Path, first: int) -> bytes:
    """A little-endian pcap without its frames before ``first`` (1-based): a capture that
    began after the connection did."""
    data = src.read_bytes()
    assert data[:4] == b"\xd4\xc3\xb2\xa1"
    out, pos, number = [data[:24]], 24, 0
    while pos < len(data):
        end = pos + 16 + int.from_bytes(data[pos + 8 : pos + 12], "little")
        number += 1
        if number >= first:
            out.append(data[pos:end])
        pos = end
    return b"".join(out)


def test_the_replay_reads_again_every_ordinary_session_as_the_scan_did() -> None:
    sessions = list(scan(EXAMPLE))
    replay = session_floor.replay_of(str(EXAMPLE), sessions)
    assert len(replay.dialogues) == len(sessions)
    assert len(replay.handshakes) == sum(s.tls is not None for s in sessions) > 0
    by_stream = {id(s.c2s): s for s in replay.built}
    for c2s, s2c, c_at, s_at in replay.handshakes:
        s = by_stream[id(c2s)]
        assert s.s2c is s2c and (c_at, s_at) == (s.smtp.tls_c2s_offset, s.smtp.tls_s2c_offset)
    assert [s.verdicts for s in replay.judged] != [[] for _ in sessions]


def test_the_replay_leaves_out_a_session_read_from_a_cut_start(tmp_path: Path) -> None:
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(_pcap_from_frame(STARTTLS_EXAMPLE, 8))
    (s,) = scan(cut)
    assert s.mid_session is not None and s.tls is not None
    replay = session_floor.replay_of(str(cut), [s])
    assert replay.dialogues == [] and replay.handshakes == []
    assert len(replay.judged) == 1  # judged and linked all the same


def test_the_replay_refuses_a_scan_it_does_not_reproduce() -> None:
    sessions = list(scan(EXAMPLE))
    i, was = next((i, s) for i, s in enumerate(sessions) if s.verdicts)
    sessions[i] = changed = dataclasses.replace(was, verdicts=was.verdicts[1:])
    with pytest.raises(ValueError, match=f"session {changed.number} judged again differs"):
        session_floor.replay_of(str(EXAMPLE), sessions)
    with pytest.raises(ValueError, match="sessions built differ"):
        session_floor.replay_of(str(EXAMPLE), sessions[1:])


def test_fresh_streams_are_the_same_streams_without_their_lookup_table() -> None:
    (s,) = session_floor.replay_of(str(STARTTLS_EXAMPLE), list(scan(STARTTLS_EXAMPLE))).built
    offsets = list(range(0, len(s.c2s.data), 7))
    want = s.c2s.frames_at(offsets)  # builds the original's table
    copies = session_floor.fresh_streams([s])
    c2s, s2c = copies[id(s.c2s)], copies[id(s.s2c)]
    assert c2s is not s.c2s and c2s._seg_lists is None and s2c._seg_lists is None
    assert c2s.data == s.c2s.data and s2c.data == s.s2c.data
    assert c2s.frames_at(offsets) == want and any(f is not None for f in want)


def test_the_collector_clock_counts_each_runs_collections_and_lets_go() -> None:
    with session_floor.CollectorClock() as clock:
        clock.next_run()
        gc.collect()
        clock.next_run()
    gc.collect()  # after the context: counted nowhere
    assert clock.runs[0] > 0 and clock.runs[1] == 0
    assert clock._tick not in gc.callbacks


def test_the_collector_is_set_as_the_command_sets_it_and_then_as_it_was() -> None:
    gc.unfreeze()  # a command run in this process before may have frozen its imports
    was = gc.get_threshold()
    with session_floor.collector_as_the_command_sets_it():
        assert gc.get_threshold() == (session_floor._YOUNG, *was[1:])
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == was and gc.get_freeze_count() == 0


def test_main_reports_the_scan_with_the_collector_as_the_command_sets_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "floor.json"
    monkeypatch.setattr(sys, "argv", ["session_floor.py", str(EXAMPLE), "--repeat", "1",
                                      "--json", str(out)])
    was = gc.get_threshold()
    try:
        session_floor.main()
    finally:
        gc.unfreeze()  # main keeps the sessions it holds out of the collector's walks
    assert gc.get_threshold() == was
    got = json.loads(out.read_text())
    assert got["sessions"] == len(list(scan(EXAMPLE)))
    assert 0 <= got["scan_tuned_gc_us"] < got["scan_tuned_us"]
    assert "collector set as the command line sets it" in capsys.readouterr().out


def test_importing_the_benchmark_leaves_the_import_path_as_it_is():
    """Imported by a test, the benchmark does not put the source tree before the installed
    package: processes started later (a Dask cluster's workers) copy the path, and an
    install's workers would import a source tree whose C module was never built."""
    import importlib
    import sys

    before = list(sys.path)
    importlib.reload(session_floor)
    assert sys.path == before
