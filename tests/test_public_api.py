"""Names that must stay importable from the paths they have today, whatever module ends up
holding them: the documented API, and the internal names tests and benchmarks reach for."""

from __future__ import annotations

import importlib
import os

import pytest

import fastcap

# The old flat names are what this file checks, so their deprecation warnings are expected.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# module -> names imported from it by users (README "Python API") or by tests/benchmarks.
NAMES: dict[str, tuple[str, ...]] = {
    "fastcap": ("Capture", "CaptureMeta", "CaptureError", "CaptureWarning", "FastcapError",
                "scan", "__version__", "diagnose", "ja", "parallel", "ranges", "resync",
                "scanner", "smtp", "streamed", "tls", "x509check"),
    "fastcap.capture": ("Capture", "CaptureMeta"),
    "fastcap.cli": ("main", "tune_allocator"),
    "fastcap.crosssession": ("CrossSession",),
    "fastcap.decode": ("Headers", "Status", "TcpFields", "decode_headers", "decode_tcp"),
    "fastcap.diagnose": ("CODES", "PROBLEM_CODES", "SEVERITIES", "Verdict",
                         "client_cert_expected", "diagnose", "is_problem"),
    "fastcap.errors": ("CaptureError", "FastcapError"),
    "fastcap.flows": ("FlowKey", "FlowTable", "parse_ports"),
    "fastcap.follow": ("format_follow",),
    "fastcap.frames": ("F_NO_TS", "F_OVER_SNAPLEN", "F_SNAPPED"),
    "fastcap.inputs": ("expand_inputs", "first_timestamp"),
    "fastcap.issuer_evidence": ("org_key", "registrable_domain"),
    "fastcap.ja": ("ja4",),
    "fastcap.midstart": ("encrypted_at", "find_start", "tls_chain_at", "unit_at"),
    "fastcap.native": ("NativeReassemblerCore", "get_reassembler_core", "native_available",
                       "get_walker"),
    "fastcap.parallel": ("JudgeOptions", "PoolExecutor", "SerialExecutor", "_chain",
                         "_flow_tasks", "analyzer_for", "reassemble_flows", "split_scan"),
    "fastcap.pickling": ("compact", "maker"),
    "fastcap.ranges": ("plan", "read_range", "stitch"),
    "fastcap.reassembly": ("CONN_OVERHEAD", "Connection", "FrameCols", "RawConn", "RawDir",
                           "Reassembler", "SEG_BYTES", "StreamDir", "PyReassemblerCore",
                           "DEFAULT_CAP", "DEFAULT_BUDGET", "DEFAULT_MAX_OPEN", "_stream_dir"),
    "fastcap.resync": ("CHUNK", "FIRST_CHUNK", "next_pcap_record", "next_pcapng_block",
                       "pcapng_block_len"),
    "fastcap.scanner": ("Scan", "ScanSummary", "SummaryPending", "SPLIT_MIN_BYTES", "_count",
                        "_totals", "has_problem",
                        "iter_file_streams", "iter_scan_files", "judge", "judge_options",
                        "scan", "scan_files", "trust_store"),
    "fastcap.selection": ("DEFAULT_PORTS", "FrameCounters", "iter_selected"),
    "fastcap.session": ("MAX_HELD", "Session", "TcpFacts", "addr_text", "endpoint_text",
                        "find_tls_hello", "iter_sessions"),
    "fastcap.smtp": ("ANOMALY_KINDS", "Anomaly", "AuthResponse", "Banner", "Closed", "Command",
                     "CommandRecord", "CutStart", "DataBody", "Gap", "MAX_ANOMALIES",
                     "MAX_BAD_LINES", "MAX_BUFFER", "MAX_LINE", "MAX_REPLY_LINES", "NEED_DATA",
                     "Reply", "ReplyRecord", "SmtpConversation", "SmtpDialogue", "StartTls",
                     "_parse_plain", "parse_dialogue"),
    "fastcap.stats": ("compute_stats", "format_text"),
    "fastcap.stream": ("PIECE", "StreamCapture", "compression_of", "needs_stream"),
    "fastcap.streamed": ("iter_scan", "iter_file_events"),
    "fastcap.tls": ("Alert", "AlertInfo", "Anomaly", "Certificate", "CertificateRequest",
                    "ChangeCipherSpec", "ClientHello", "EncryptedRecord", "EncryptedTraffic",
                    "HandshakeMessage", "MAX_HANDSHAKE", "Stopped", "StreamStop", "TlsAnomaly",
                    "TlsConnection", "TlsHandshake", "TlsStream", "Where", "dn_to_text",
                    "parse_flights", "parse_handshake", "parse_new_session_ticket"),
    "fastcap.tlsconst": ("AlertDescription", "CipherSuite", "is_grease", "name_of",
                         "version_name"),
    "fastcap.walkstatus": ("ts_to_ns",),
    "fastcap.x509check": ("Analyzer", "CertInfo", "ChainCheck", "TrustStore", "cert_info",
                          "name_matches"),
}


def _importable(mod, name: str) -> bool:
    """What `from mod import name` accepts: an attribute, or else a submodule."""
    if hasattr(mod, name):
        return True
    try:
        importlib.import_module(f"{mod.__name__}.{name}")
    except ModuleNotFoundError:
        return False
    return True


@pytest.mark.parametrize("module", sorted(NAMES))
def test_names_importable_from_their_old_path(module):
    mod = importlib.import_module(module)
    missing = [n for n in NAMES[module] if not _importable(mod, n)]
    assert not missing, f"{module} lost {missing}"


def test_package_all_unchanged():
    assert fastcap.__all__ == ["Capture", "CaptureMeta", "CaptureError", "CaptureWarning",
                               "FastcapError", "scan", "__version__"]
    for name in fastcap.__all__:
        assert hasattr(fastcap, name), name


def test_reexports_are_the_same_objects():
    """A name reachable from two paths is one object, so isinstance checks and monkeypatching
    the defining module keep working for code that imports the old path."""
    from fastcap import (
        capture,
        errors,
        judging,
        native,
        options,
        parallel,
        rawconn,
        reasm_native,
        reassembly,
        scanner,
    )

    assert fastcap.Capture is capture.Capture
    assert fastcap.CaptureError is errors.CaptureError
    assert fastcap.scan is scanner.scan
    assert scanner.judge is parallel.judge is judging.judge
    assert scanner.trust_store is judging.trust_store
    assert scanner.judge_options is options.judge_options
    assert parallel.JudgeOptions is options.JudgeOptions
    assert parallel.analyzer_for is judging.analyzer_for
    assert reassembly.RawConn is rawconn.RawConn and reassembly.RawDir is rawconn.RawDir
    assert native.get_reassembler_core is reassembly.get_reassembler_core
    assert native.NativeReassemblerCore is reasm_native.NativeReassemblerCore


@pytest.mark.parametrize(("old", "warns"), [("tls", True), ("native", True), ("ranges", True),
                                            ("scanner", False), ("stats", False),
                                            ("distributed", False), ("session", False)])
def test_old_names_warn_unless_documented(old, warns):
    """The names README documents stay for good; the others say where the module went."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c",
                           f"import fastcap.{old}"], capture_output=True, text=True)
    assert (proc.returncode != 0) == warns, proc.stderr
    if warns:
        assert f"fastcap.{old} is now fastcap." in proc.stderr


def test_type_hints_of_the_public_functions_resolve():
    """Tools that read annotations (typing.get_type_hints) must not need the X.509 code that
    a scan now loads only at its first certificate."""
    import inspect
    import typing

    from fastcap.judge import judging
    from fastcap.run import scanner

    for mod in (scanner, judging):
        for name, obj in vars(mod).items():
            if name.startswith("_") or not inspect.isfunction(obj):
                continue
            typing.get_type_hints(obj)  # raises NameError if a name is unknown at run time
    hints = typing.get_type_hints(scanner.scan)
    assert hints["analyzer"] == judging.Checker | None


@pytest.mark.parametrize("module", ["scanner", "session", "stats", "options", "distributed",
                                    "run", "evidence", "out"])
def test_documented_submodules_are_attributes_after_import_fastcap(module):
    """README's example calls `fastcap.scanner.scan_files(...)` after a bare `import fastcap`,
    as a program does: the module must be reachable as an attribute, not only by import."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c",
                           f"import fastcap; import types; "
                           f"assert isinstance(fastcap.{module}, types.ModuleType)"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_unknown_attribute_is_still_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'no_such_thing'"):
        fastcap.no_such_thing  # noqa: B018


@pytest.mark.parametrize("head", [b"\x1f\x8b\x08\x00" + bytes(60), b"\x28\xb5\x2f\xfd" + bytes(60)],
                         ids=["gzip", "zstd"])
def test_compressed_capture_error_names_a_current_function(tmp_path, head):
    """Capture() on a compressed file points to the reader that can open it: that pointer
    must import without the deprecation warning of an old module path."""
    import re
    import subprocess
    import sys

    path = tmp_path / "c.pcap.gz"
    path.write_bytes(head)
    with pytest.raises(fastcap.CaptureError) as err:
        fastcap.Capture(str(path))
    named = re.search(r"open it with (fastcap(?:\.\w+)+)\.(\w+)", str(err.value))
    assert named, str(err.value)
    proc = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c",
                           f"import {named.group(1)} as m; assert callable(m.{named.group(2)})"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_bytes_paths_give_the_results_of_str_paths(tmp_path):
    """A path given as bytes (as os functions take it) is read as its str: the sessions are
    the same, and names in errors, warnings and summaries are text, not `b'...'` reprs, so a
    summary's to_dict() stays JSON."""
    import json
    from pathlib import Path

    from fastcap.scanner import scan_files
    from fastcap.session import iter_sessions
    from fastcap.stats import compute_stats

    whole = Path(__file__).resolve().parents[1] / "examples" / "all-scenarios.pcapng"
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(whole.read_bytes()[:20000])  # a truncated block: a warning naming it
    keys = tmp_path / "keys.log"
    keys.write_text("CLIENT_RANDOM not-hex\n")  # a garbled line: a warning naming the file
    ca = whole.with_name("test-root.pem")
    text, raw = str(cut), os.fsencode(cut)
    run_str = fastcap.scan(text, ca_file=str(ca), keylog=[str(keys)])
    want = [s.to_dict() for s in run_str]
    run_bytes = fastcap.scan(raw, ca_file=os.fsencode(ca), keylog=os.fsencode(keys))
    got = [s.to_dict() for s in run_bytes]
    assert got == want and want
    by_str, by_bytes = run_str.summary, run_bytes.summary
    assert by_bytes.to_dict() == by_str.to_dict() and by_str.warnings
    files = scan_files([raw, os.fsencode(tmp_path / "missing.pcap")])
    assert [f.path for f in files] == [text, str(tmp_path / "missing.pcap")]
    assert files[1].error == f"{tmp_path / 'missing.pcap'}: no such file"
    json.dumps([f.summary.to_dict() for f in files])
    assert compute_stats(raw).warnings == compute_stats(text).warnings
    assert [s.number for s in iter_sessions(raw)] == [s.number for s in iter_sessions(text)]
    assert "b'" not in " ".join([*by_bytes.warnings, *compute_stats(raw).warnings])
    assert fastcap.Capture(raw).path == text


def test_bytes_path_reads_the_secrets_blocks_of_a_str_path(tmp_path):
    """A capture's Decryption Secrets Blocks are read whichever form its path is given in: a
    garbled key log line in one is told, naming the file, for bytes as for str."""
    from fastcap_synth.writers import write_pcapng

    path = tmp_path / "keys.pcapng"
    write_pcapng(path, [], tls_keylog=b"CLIENT_RANDOM not-hex\n")
    told = []
    for given in (str(path), os.fsencode(path)):
        run = fastcap.scan(given)
        assert list(run) == []
        told.append(run.summary.warnings)
    assert told[0] and told[1] == told[0]
    assert told[0][0].startswith(f"{path}: TLS key log in secrets block, line 1: ")


def test_a_secrets_block_warning_reads_the_same_from_every_entry_point(tmp_path):
    """A garbled key log line in a capture's secrets block is one warning, worded as the
    capture's other warnings are (the file, then the block's offset), whether the file is
    scanned alone (`scan`) or among files (`scan_files`, `iter_file_streams`)."""
    from fastcap.scanner import iter_file_streams, scan_files
    from fastcap_synth.writers import write_pcapng

    path = tmp_path / "keys.pcapng"
    write_pcapng(path, [], tls_keylog=b"CLIENT_RANDOM not-hex\n")
    run = fastcap.scan(path)
    assert list(run) == []
    summary = run.summary
    [listed] = scan_files([path])
    streams = []
    for f in iter_file_streams([path]):
        list(f.sessions)
        streams.append(f.summary.warnings)
    assert len(summary.warnings) == 1
    assert summary.warnings[0].startswith(f"{path}: TLS key log in secrets block, line 1: ")
    assert listed.summary.warnings == streams[0] == summary.warnings


def test_to_dict_is_what_json_gives_back(tmp_path):
    """`to_dict()` is plain JSON data: read back from JSON it is equal to itself (no tuples
    that come back as lists), for a file with unreadable bytes as for any other."""
    import json
    from pathlib import Path

    from fastcap.stats import compute_stats

    data = bytearray((Path(__file__).resolve().parents[1] / "examples"
                      / "all-scenarios.pcapng").read_bytes())
    at = 0
    for _ in range(8):  # the eighth block's length made nonsense: an unreadable byte range
        at += int.from_bytes(data[at + 4:at + 8], "little")
    data[at + 4:at + 8] = b"\xff\xff\xff\x7f"
    path = tmp_path / "damaged.pcapng"
    path.write_bytes(bytes(data))
    run = fastcap.scan(path)
    sessions = list(run)
    summary = run.summary
    stats = compute_stats(path)
    assert stats.unreadable and summary.unreadable
    for d in [stats.to_dict(), summary.to_dict()] + [s.to_dict() for s in sessions]:
        assert json.loads(json.dumps(d)) == d


def test_version_from_a_source_tree_is_the_declared_one():
    """Run from a source tree without an install (no package metadata: here `-S` leaves
    site-packages out), `fastcap.__version__` is the version pyproject.toml declares, not a
    placeholder."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    declared = _declared_in_tree(root)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import fastcap; "
            "print(fastcap.__version__)")
    proc = subprocess.run([sys.executable, "-S", "-c", code, str(root / "src")],
                          capture_output=True, text=True, env={})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == declared


def test_a_session_and_its_facts_are_frozen():
    """README: verdicts and a session's facts are frozen records.  A Session, its TcpFacts
    and its SmtpDialogue refuse assignment; a stage that adds to a session (judging) makes a
    new one and leaves the one it read as it was; and a session pickles to its equal."""
    import dataclasses
    import pickle
    from pathlib import Path

    from fastcap.judge.judging import analyzer_for, judge
    from fastcap.options import ScanOptions
    from fastcap.session import iter_sessions

    example = Path(__file__).resolve().parents[1] / "examples" / "all-scenarios.pcapng"
    sessions = list(fastcap.scan(example))
    s = next(s for s in sessions if s.smtp is not None and s.verdicts)
    for record, name in ((s, "verdicts"), (s, "number"), (s.tcp, "retransmissions"),
                         (s.smtp, "starttls_accepted"), (s.smtp, "anomalies")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(record, name, None)
    bare = next(iter(iter_sessions(example)))
    judged = judge(bare, analyzer_for(ScanOptions()))
    assert judged is not bare and bare.verdicts == () and judged.verdicts
    assert pickle.loads(pickle.dumps(sessions)) == sessions


# The functions and methods README's "Python API" names, by the module it names them in.
README_CALLS = {
    "fastcap.run.scanner": ("scan", "ScanSummary.to_dict"),
    "fastcap.scanner": ("scan_files", "iter_scan_files", "iter_file_streams"),
    "fastcap.session": ("iter_sessions", "Session.to_dict"),
    "fastcap.stats": ("compute_stats",),
    "fastcap.distributed": ("scan_files", "scan"),
    "fastcap.options": ("judge_options", "ScanOptions.build"),
    "fastcap.evidence.read": ("read_evidence",),
    "fastcap.out.triage": ("triage",),
    "fastcap.run.evidence": ("attach_evidence", "log_only"),
    "fastcap.read.capture": ("Capture.__init__", "Capture.windows", "Capture.tell",
                             "CaptureMeta.told"),
}


@pytest.mark.parametrize(("module", "name"), [
    (m, n) for m, names in README_CALLS.items() for n in names])
def test_readme_functions_have_type_hints(module, name):
    """Type hints on public functions (the design's rule): every parameter and the result
    of each function README shows is annotated."""
    import inspect

    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    sig = inspect.signature(obj)
    bare = [p for p, v in sig.parameters.items()
            if p not in ("self", "cls") and v.annotation is inspect.Parameter.empty]
    assert bare == [], f"{name}: {bare} without a type"
    assert name.endswith("__init__") or sig.return_annotation is not inspect.Signature.empty


# The values README's "Python API" hands a program, by where they are defined.  Not here, as
# it fills while a file is walked: Capture (its `meta` is a frozen snapshot, CaptureMeta).
README_VALUES = """
    fastcap.session.Session fastcap.session.TcpFacts fastcap.proto.smtp.SmtpDialogue
    fastcap.proto.tls.TlsHandshake fastcap.verdict.Verdict fastcap.verdict.ChainCheck
    fastcap.options.ScanOptions fastcap.select.stats.FileStats fastcap.run.scanner.FileResult
    fastcap.run.distributed.FileScan fastcap.judge.judging.Judgement fastcap.out.triage.Problem
    fastcap.run.evidence.LogOnly fastcap.evidence.join.Match fastcap.evidence.join.JoinResult
    fastcap.evidence.read.Evidence fastcap.errors.CaptureWarning
    fastcap.proto.midstart.MidSession fastcap.proto.decryption.Decryption
    fastcap.run.scanner.ScanSummary fastcap.run.scanner.FileStream
    fastcap.read.capture.CaptureMeta
""".split()


@pytest.mark.parametrize("where", README_VALUES)
def test_readme_values_are_frozen_dataclasses(where):
    """Frozen dataclasses at the API boundary: what a scan returns cannot be changed under
    the code that made it (or another thread reading it)."""
    import dataclasses

    module, _, name = where.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen, where


def test_scan_files_and_stats_results_refuse_assignment(tmp_path):
    import dataclasses
    from pathlib import Path

    from fastcap.scanner import scan_files
    from fastcap.stats import compute_stats

    example = Path(__file__).resolve().parents[1] / "examples" / "all-scenarios.pcapng"
    (result,) = scan_files([example])
    stats = compute_stats(example)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.error = "x"
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.frames = 0
    assert result.sessions and stats.frames


def test_version_is_the_running_tree_s_not_an_installed_one(tmp_path):
    """An install of another tree (an older wheel, a `pip install -e` of another checkout)
    leaves package metadata with its own version; code run from this tree still reports
    this tree's version, on `fastcap.__version__` and `fastcap --version` alike.  The
    metadata is faked here: a dist-info for fastcap 9.9.9 on the path ahead of the tree."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    declared = _declared_in_tree(root)
    other = tmp_path / "fastcap-9.9.9.dist-info"
    other.mkdir()
    (other / "METADATA").write_text("Metadata-Version: 2.1\nName: fastcap\nVersion: 9.9.9\n")
    code = ("import fastcap; from importlib.metadata import version; "
            "print(version('fastcap')); print(fastcap.__version__); "
            "from fastcap.cli import main; main(['--version'])")
    path = os.pathsep.join([str(tmp_path), str(root / "src")])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": path})
    lines = proc.stdout.split("\n")
    assert lines[0] == "9.9.9", proc.stderr  # the fake install is what metadata finds
    assert lines[1] == declared
    assert lines[2].startswith(f"fastcap {declared} ")


def _declared_in_tree(root) -> str:
    """The version this tree's pyproject.toml gives fastcap: written there, or (dynamic)
    the attribute it names, read from that module's source."""
    import ast
    import tomllib

    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    project = pyproject["project"]
    if "version" in project:
        return project["version"]
    assert project.get("dynamic") == ["version"]
    attr = pyproject["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    module, _, name = attr.rpartition(".")
    source = root / "src" / (module.replace(".", "/") + ".py")
    for node in ast.parse(source.read_text()).body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets] == [name]:
            return ast.literal_eval(node.value)
    raise AssertionError(f"{attr} not assigned in {source}")


_MUTABLE = (list, dict, set, bytearray)
# Records a scan fills as it goes, so mutable by design: none handed back any more (a scan's
# summary is counted in a private tally and handed back frozen).
_FILLED_AS_SCANNED: set[str] = set()


# What a record between stages must not hold yet: counts by reason stay dicts for now.
_LISTS = (list, set, bytearray)


def _mutable_in(tp, kinds: tuple[type, ...] = _MUTABLE) -> bool:
    """An annotation that names a mutable container (of `kinds`) anywhere in it
    (list[...] | None, tuple[list[int], ...], a bare dict)."""
    import typing

    origin = typing.get_origin(tp) or tp
    if isinstance(origin, type) and issubclass(origin, kinds):
        return True
    return any(_mutable_in(a, kinds) for a in typing.get_args(tp))


def _record_types(roots) -> list[type]:
    """The dataclasses the API hands back, and every dataclass their field annotations
    name, transitively.  Not through a field left out of comparison: the reassembled
    streams `follow` keeps on a session are working buffers, not facts."""
    import dataclasses
    import typing

    seen: list[type] = []
    todo = list(roots)
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.append(cls)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if not f.compare:
                continue
            stack = [hints[f.name]]
            while stack:
                tp = stack.pop()
                if dataclasses.is_dataclass(tp) and isinstance(tp, type):
                    todo.append(tp)
                stack.extend(typing.get_args(tp))
    return seen


def _values_mutable(value, where: str, out: list[str]) -> None:
    """Names (as paths) of mutable containers found inside ``value``."""
    import dataclasses

    if isinstance(value, _MUTABLE):
        out.append(where)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        if type(value).__qualname__ in _FILLED_AS_SCANNED:
            return
        for f in dataclasses.fields(value):
            if f.compare:
                _values_mutable(getattr(value, f.name), f"{where}.{f.name}", out)
    elif isinstance(value, tuple | frozenset):
        for i, item in enumerate(value):
            _values_mutable(item, f"{where}[{i}]", out)


def test_the_records_the_api_hands_back_hold_no_mutable_container():
    """Frozen records that hold a list can still change (`s.verdicts.append(...)`), so a
    record handed between stages or back to a caller holds tuples: no field of a session,
    its facts, its verdicts and checks, a file's result or its stats is annotated as, or
    holds, a list, dict, set or bytearray."""
    import dataclasses
    from pathlib import Path

    from fastcap.run.distributed import FileScan
    from fastcap.run.scanner import FileResult, scan_files
    from fastcap.session import Session

    types = [t for t in _record_types([Session, FileResult, FileScan])
             if t.__qualname__ not in _FILLED_AS_SCANNED]
    import typing

    annotated = [f"{c.__qualname__}.{f.name}" for c in types
                 for f in dataclasses.fields(c)
                 if f.compare and _mutable_in(typing.get_type_hints(c)[f.name])]
    assert annotated == []
    assert all(c.__dataclass_params__.frozen for c in types)

    example = Path(__file__).resolve().parents[1] / "examples" / "all-scenarios.pcapng"
    results = scan_files([example])
    assert results and results[0].sessions
    found: list[str] = []
    for r in results:
        _values_mutable(r, "result", found)
    assert found == []


# Records one stage hands the next inside a scan (or a worker hands back), by where they are
# defined: frozen and holding tuples, as the records handed to a caller are, so no stage
# (nor a later walk that starts from one) changes what another is still reading.
STAGE_RECORDS = """
    fastcap.read.pcapng.Section fastcap.read.pcapng.Interface fastcap.select.stats.FileStats
    fastcap.run.ranges.PlanTask fastcap.run.ranges.RangeTask fastcap.run.ranges.Stitched
    fastcap.run.split.FlowTask fastcap.run.split.FlowResult fastcap.run.split.SplitScan
    fastcap.read.capture.WalkState
""".split()


@pytest.mark.parametrize("where", STAGE_RECORDS)
def test_records_between_stages_are_frozen_and_hold_no_list(where):
    import dataclasses
    import typing

    module, _, name = where.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen, where
    hints = typing.get_type_hints(cls)
    assert [f.name for f in dataclasses.fields(cls)
            if f.compare and _mutable_in(hints[f.name], _LISTS)] == []
