"""ScanOptions: checked once, with the messages users already know; its defaults written in
one place; one ScanOptions or its keywords give the same scan, and both at once is an error."""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import pickle
from pathlib import Path

import pytest

import fastcap
from fastcap import cli, options, session
from fastcap.options import ScanOptions, judge_options
from fastcap.read import stream
from fastcap.run import distributed, scanner
from fastcap.select import selection, stats
from fastcap.tcp import reassembly as reasm

SRC = Path(fastcap.__file__).resolve().parent
CA_MISSING = "/nonexistent/dir/ca.pem"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize(("kw", "error", "message"), [
    ({"ports": [70000]}, ValueError, "ports: port 70000 is outside 0..65535"),
    ({"ports": [-1]}, ValueError, "ports: port -1 is outside 0..65535"),
    ({"ports": "25"}, TypeError, "ports must be a collection of port numbers, not str"),
    ({"ports": [25.0]}, TypeError, "ports: a port is an int, not float (25.0)"),
    ({"implicit_tls_ports": [True]}, TypeError,
     "implicit_tls_ports: a port is an int, not bool (True)"),
    ({"implicit_tls_ports": [65536]}, ValueError,
     "implicit_tls_ports: port 65536 is outside 0..65535"),
    ({"trust": "windows"}, ValueError, "unknown trust store 'windows': use mozilla or system"),
    ({"backend": "rust"}, ValueError, "unknown backend 'rust'; use auto, native or python"),
    ({"stream_cap": -1}, ValueError, f"stream_cap must be within 0..{1 << 30}"),
    ({"stream_cap": (1 << 30) + 1}, ValueError, f"stream_cap must be within 0..{1 << 30}"),
    ({"stream_cap": 1.5}, TypeError, "stream_cap must be an int, not float"),
    ({"jobs": 0}, ValueError, "jobs must be at least 1"),
    ({"jobs": "2"}, TypeError, "jobs must be an int, not str"),
    ({"parts": 0}, ValueError, "parts must be at least 1"),
    ({"piece": 0}, ValueError, "piece must be at least 1"),
    ({"expect_name": b"mx"}, TypeError, "expect_name must be a str or None, not bytes"),
    ({"expect_name": ""}, ValueError,
     "expect_name '' names nothing: give a name, or None for no name check"),
    ({"expect_name": " . "}, ValueError,
     "expect_name ' . ' names nothing: give a name, or None for no name check"),
    ({"today": "2024-01-01"}, TypeError, "today must be a datetime, not str"),
    ({"ca_file": CA_MISSING}, ValueError,
     f"{CA_MISSING}: cannot read CA file: No such file or directory"),
    ({"colour": "red"}, TypeError, "ScanOptions.build() got an unexpected keyword argument "
     "'colour'"),
])
def test_each_bad_value_has_its_message(kw, error, message):
    with pytest.raises(error) as e:
        ScanOptions.build(**kw)
    assert str(e.value) == message


def test_validation_also_guards_direct_construction_and_replace():
    with pytest.raises(ValueError, match="unknown backend"):
        ScanOptions(backend="c")
    with pytest.raises(ValueError, match="jobs must be at least 1"):
        dataclasses.replace(ScanOptions(), jobs=0)


def test_messages_match_the_checks_they_replace():
    """The texts above are the ones the trust store and the reader already raise."""
    from fastcap._ffi import use_native
    from fastcap.judge.judging import trust_store
    from fastcap.judge.x509check import TrustStore

    for check, bad, opt in [(trust_store, "windows", {"trust": "windows"}),
                            (use_native, "rust", {"backend": "rust"})]:
        with pytest.raises(ValueError) as old:
            check(bad)
        with pytest.raises(ValueError) as new:
            ScanOptions.build(**opt)
        assert str(old.value) == str(new.value)
    with pytest.raises(ValueError) as old:
        TrustStore.from_pem_file(CA_MISSING)
    with pytest.raises(ValueError) as new:
        ScanOptions.build(ca_file=CA_MISSING)
    assert str(old.value) == str(new.value)


def test_build_normalises_and_is_frozen(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    when = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    o = ScanOptions.build(ports=range(25, 27), implicit_tls_ports={465}, ca_file=ca, today=when)
    assert o.ports == frozenset({25, 26}) and isinstance(o.ports, frozenset)
    assert o.ca_file == str(ca) and o.ca_data == ca.read_bytes() and o.today == when
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.jobs = 4  # type: ignore[misc]
    assert not hasattr(o, "__dict__")  # slotted
    assert pickle.loads(pickle.dumps(o)) == o  # travels to worker processes unchanged
    assert ScanOptions().today is not None  # "today" fixed once, for every worker


def test_former_names_are_the_same_thing():
    assert options.JudgeOptions is ScanOptions
    assert isinstance(judge_options(ports=[587]), ScanOptions)
    assert judge_options(ports=[587]).ports == frozenset({587})
    with pytest.raises(TypeError, match=r"judge_options\(\) got an unexpected keyword"):
        judge_options(port=25)


def test_defaults_are_the_ones_in_options():
    """Every module that names a default names the very object options.py holds."""
    assert selection.DEFAULT_PORTS is options.DEFAULT_PORTS == frozenset({25})
    assert session.DEFAULT_IMPLICIT_TLS_PORTS is options.DEFAULT_IMPLICIT_TLS_PORTS
    assert options.DEFAULT_IMPLICIT_TLS_PORTS == frozenset({465})
    assert reasm.DEFAULT_CAP is options.DEFAULT_CAP == 256 * 1024
    assert reasm.MAX_CAP is options.MAX_CAP
    assert stream.PIECE is options.PIECE
    o = ScanOptions()
    assert (o.ports, o.implicit_tls_ports, o.stream_cap, o.piece, o.trust, o.backend) == (
        options.DEFAULT_PORTS, options.DEFAULT_IMPLICIT_TLS_PORTS, options.DEFAULT_CAP,
        options.PIECE, options.DEFAULT_TRUST, options.DEFAULT_BACKEND)
    args = cli._parser().parse_args(["scan", "x.pcap"])
    assert (args.ports, args.implicit_tls_ports, args.stream_cap, args.trust, args.backend) == (
        o.ports, o.implicit_tls_ports, o.stream_cap, o.trust, o.backend)


def _spelled(name: str) -> str:
    """How options.py writes the default `name` (e.g. '256 * 1024')."""
    tree = ast.parse((SRC / "options.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.unparse(node.value)
    raise AssertionError(f"options.py does not define {name}")


SIZES = {_spelled("DEFAULT_CAP"), _spelled("PIECE")}


def _literal_defaults(tree: ast.AST) -> list[str]:
    """Spellings of the scan defaults in a module: a frozenset of the default ports, however
    written, and the stream cap and piece size as options.py writes them.  (Other constants
    may share those sizes by chance: a read size of 256 KiB is not the stream cap.)"""
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "frozenset" and node.args
                and isinstance(node.args[0], ast.Set | ast.List | ast.Tuple)
                and all(isinstance(e, ast.Constant) for e in node.args[0].elts)
                and {e.value for e in node.args[0].elts} in (
                    options.DEFAULT_PORTS, options.DEFAULT_IMPLICIT_TLS_PORTS)):
            found.append(ast.unparse(node))
        elif isinstance(node, ast.BinOp) and ast.unparse(node) in SIZES:
            found.append(ast.unparse(node))
    return found


def test_literal_defaults_live_only_in_options_py():
    seen = {}
    for path in sorted(SRC.rglob("*.py")):
        hits = _literal_defaults(ast.parse(path.read_text(encoding="utf-8")))
        if hits:
            seen[path.relative_to(SRC).as_posix()] = hits
    assert set(seen) == {"options.py"}, seen
    assert sorted(seen["options.py"]) == ["16 << 20", "256 * 1024", "frozenset({25})",
                                          "frozenset({465})"]


def test_the_literal_finder_finds_what_it_looks_for():
    tree = ast.parse("A = frozenset({25})\nB = 256 * 1024\nC = 16 << 20\nD = frozenset({1, 2})\n"
                     "E = frozenset([465])\nF = 256 << 10\n")
    assert _literal_defaults(tree) == ["frozenset({25})", "256 * 1024", "16 << 20",
                                       "frozenset([465])"]


@pytest.fixture(scope="module")
def capture():
    return EXAMPLES / "all-scenarios.pcapng", EXAMPLES / "test-root.pem"


def _dump(sessions) -> list[dict]:
    return [s.to_dict() for s in sessions]


def test_scan_with_options_equals_scan_with_keywords(capture):
    path, ca = capture
    when = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    kw = dict(ports=[25], implicit_tls_ports=[465], expect_name="mail.example.com",
              ca_file=ca, stream_cap=1 << 20, today=when)
    by_kw = _dump(scanner.scan(path, **kw))
    assert by_kw and any(s["verdicts"] for s in by_kw)
    assert _dump(scanner.scan(path, ScanOptions.build(**kw))) == by_kw
    assert _dump(scanner.scan(path, options=ScanOptions.build(**kw))) == by_kw
    [r] = scanner.scan_files([path], ScanOptions.build(**kw))
    assert _dump(r.sessions) == by_kw
    [r] = scanner.scan_files([path], **kw)
    assert _dump(r.sessions) == by_kw
    assert _dump(session.iter_sessions(path, ScanOptions.build(**kw))) == _dump(
        session.iter_sessions(path, ports=[25], stream_cap=1 << 20))
    assert stats.compute_stats(path, ScanOptions.build(ports=[25])).to_dict() == \
        stats.compute_stats(path, ports=[25]).to_dict()


def test_options_steer_the_scan(capture):
    path, _ca = capture
    assert len(list(scanner.scan(path, ScanOptions.build(ports=[25])))) >= 2
    assert list(scanner.scan(path, ScanOptions.build(ports=[587]))) == []
    assert list(session.iter_sessions(path, ports=[587])) == []
    assert stats.compute_stats(path, ScanOptions(ports=frozenset({587}))).selected_frames == 0


@pytest.mark.parametrize("call", [
    lambda p, o: scanner.scan(p, o, ports=[25]),
    lambda p, o: scanner.scan_files([p], o, trust="system"),
    lambda p, o: list(scanner.iter_file_streams([p], o, jobs=2)),
    lambda p, o: session.iter_sessions(p, o, cap=1024),
    lambda p, o: stats.compute_stats(p, o, backend="python"),
    lambda p, o: distributed.scan_files([p], None, o, stream_cap=1024),  # before any cluster
    lambda p, o: distributed.scan([p], None, o, jobs=2),
])
def test_options_and_keywords_together_is_a_type_error(capture, call):
    path, _ca = capture
    with pytest.raises(TypeError, match="either options or the keywords that build them, "
                                        "not both"):
        call(path, ScanOptions())


def test_bad_options_fail_before_reading(tmp_path):
    missing = tmp_path / "absent.pcap"
    with pytest.raises(ValueError, match="unknown trust store"):
        scanner.scan(missing, trust="windows")  # raised by the call, not on iteration
    with pytest.raises(TypeError, match=r"scan\(\) got an unexpected keyword argument 'port'"):
        scanner.scan(missing, port=25)
    with pytest.raises(TypeError, match="options must be a ScanOptions, not dict"):
        scanner.scan(missing, {"ports": [25]})


@pytest.mark.parametrize("call", [
    lambda p: scanner.scan(p, expect_name=""),
    lambda p: scanner.scan_files([p], expect_name=""),
    lambda p: scanner.iter_scan_files([p], expect_name=""),
    lambda p: scanner.iter_file_streams([p], expect_name=""),
    lambda p: session.iter_sessions(p, expect_name=""),
])
def test_each_readme_function_raises_when_called_not_when_iterated(tmp_path, call):
    """README: a bad value raises when the function is called, before any file is read, in
    each of the functions it names, those that return iterators too."""
    with pytest.raises(ValueError, match="names nothing"):
        call(tmp_path / "absent.pcap")


def test_cli_builds_one_scan_options_and_passes_only_it(monkeypatch, capsys):
    """The command line says "trust" once: in the ScanOptions, beside the analyzer built
    from that same value, with no second set of keywords."""
    calls = []

    def fake_scan(path, *args, **kw):
        calls.append(("scan", path, args, kw))
        return scanner.Scan(path, iter([]), scanner._Tally(path))  # no session, a summary

    def fake_streams(paths, *args, **kw):
        calls.append(("streams", paths, args, kw))
        return iter([])

    monkeypatch.setattr(scanner, "scan", fake_scan)
    monkeypatch.setattr(scanner, "iter_file_streams", fake_streams)
    one, ca = str(EXAMPLES / "all-scenarios.pcapng"), str(EXAMPLES / "test-root.pem")
    argv = ["scan", "--trust", "system", "--ca-file", ca, "--ports", "25,587", "-j", "1",
            "--expect-name", "mx.example.com"]
    assert cli.main([*argv, one]) == 0
    assert cli.main([*argv, one, str(EXAMPLES / "exchange-online-no-client-cert.pcap")]) == 0
    capsys.readouterr()
    assert [c[0] for c in calls] == ["scan", "streams"]
    for _what, _path, args, kw in calls:
        (o,) = args
        assert isinstance(o, ScanOptions)
        assert (o.trust, o.ca_file, o.ports, o.expect_name, o.jobs) == (
            "system", ca, frozenset({25, 587}), "mx.example.com", 1)
        assert o.ca_data == Path(ca).read_bytes()
        assert set(kw) <= {"analyzer", "progress"}, kw
        assert kw["analyzer"].today == o.today  # the one "today" of this run
