"""What start-up costs: modules a plain scan never needs stay unimported until the rare case
that needs them arises (a missing issuer, the system trust store)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastcap.judge.x509check import TrustStore

RARE = ("ssl", "fastcap.judge.issuer_evidence")


def _imported_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {RARE!r} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    return set(proc.stdout.split())


def test_the_command_line_and_an_analyzer_leave_rare_modules_unimported():
    code = ("import fastcap.cli\nfrom fastcap.judge.judging import analyzer_for\n"
            "from fastcap.options import ScanOptions\nanalyzer_for(ScanOptions())")
    assert _imported_after(code) == set()


def test_the_rare_cases_import_what_they_need():
    code = ("from fastcap.judge.judging import trust_store\n"
            "trust_store('mozilla').issuer_evidence(trust_store('mozilla').roots[0])")
    assert _imported_after(code) == {"fastcap.judge.issuer_evidence"}
    try:
        TrustStore.system()
    except ValueError:
        pytest.skip("no system CA bundle on this machine")
    assert "ssl" in _imported_after("from fastcap.judge.x509check import TrustStore\n"
                                    "TrustStore.system()")


# What the command line imports: the module itself only argparse and the options; a table
# scan of a capture with certificates no log reader, report template or cluster client.
# Nor, without keys, the decryption: key log, key schedule, record decryption.
FOR_KEYS_ONLY = ("fastcap.proto.decrypted", "fastcap.proto.tls.decrypt",
                 "fastcap.proto.tls.keylog", "fastcap.proto.tls.keyschedule")
NEVER_FOR_A_SCAN = ("jinja2", "fastcap.evidence", "fastcap.judge.evidence", "fastcap.out.html",
                    "fastcap.out.zeek", "fastcap.run.distributed", "dask", "selenium", "ssl",
                    *FOR_KEYS_ONLY)
EXAMPLE = Path(__file__).resolve().parents[1] / "examples/exchange-online-no-client-cert.pcap"


def _modules_after(code: str, env: dict[str, str] | None = None) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)), file=sys.stderr)"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stderr.split())


def _loaded(modules: set[str], name: str) -> bool:
    return any(m == name or m.startswith(name + ".") for m in modules)


def test_importing_the_command_line_imports_no_heavy_module():
    modules = _modules_after("import fastcap.cli")
    assert "fastcap.cli" in modules
    for heavy in ("numpy", "cryptography", "fastcap.read", "fastcap.judge", "fastcap._ffi",
                  *NEVER_FOR_A_SCAN):
        assert not _loaded(modules, heavy), heavy


def test_a_scan_imports_only_what_it_needs(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    code = ("import contextlib, io\nfrom fastcap.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            f"    code = main(['scan', {str(EXAMPLE)!r}])\n"
            "assert code == 1 and 'no_client_cert' in out.getvalue(), (code, out.getvalue())")
    for _ in range(2):  # trust store parsed, then read from the cache
        modules = _modules_after(code, env)
        assert {"fastcap.cli", "fastcap.judge.x509check", "fastcap.out.triage"} <= modules
        for unneeded in NEVER_FOR_A_SCAN:
            assert not _loaded(modules, unneeded), unneeded
    assert list((tmp_path / "fastcap").glob("anchors-*.json"))


def test_a_scan_without_certificates_imports_no_x509_code(tmp_path):
    """Plain SMTP: no certificate to check, so neither X.509 code nor the trust store."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    plain = Path(__file__).resolve().parent / "data/corpus/zeek__smtp.pcap"
    code = ("import contextlib, io\nfrom fastcap.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            f"    code = main(['scan', '--format', 'jsonl', {str(plain)!r}])\n"
            "assert code == 1 and out.getvalue().count('\"tls\": null') == 2, code")
    modules = _modules_after(code, env)
    assert {"fastcap.cli", "fastcap.judge.judging", "fastcap.session"} <= modules
    for unneeded in ("cryptography.x509", "fastcap.judge.x509check", "fastcap.judge.x509path",
                     *NEVER_FOR_A_SCAN):
        assert not _loaded(modules, unneeded), unneeded
    assert not (tmp_path / "fastcap").exists()  # the store was never read


def test_a_scan_with_keys_imports_the_decryption_and_decrypts(tmp_path):
    """The decryption a plain scan leaves out is there, and works, once a key log is given."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    corpus = Path(__file__).resolve().parent / "data/corpus"
    pcap = corpus / "zeek__tls12-decryption.pcap"
    keys = corpus / "keys/zeek__tls12-decryption.keylog"
    code = ("import contextlib, io, json\nfrom fastcap.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            f"    main(['scan', '--format', 'jsonl', '--ports', '443', '--keylog', {str(keys)!r},"
            f" {str(pcap)!r}])\n"
            "rows = [json.loads(x) for x in out.getvalue().splitlines()]\n"
            "assert rows and all(r['decryption']['keys_found'] for r in rows), rows")
    modules = _modules_after(code, env)
    for needed in FOR_KEYS_ONLY:
        assert _loaded(modules, needed), needed


def test_the_deferred_analyzer_judges_as_the_analyzer_does(monkeypatch, tmp_path):
    from fastcap.judge.judging import MozillaAnalyzer, analyzer_for
    from fastcap.judge.x509check import Analyzer
    from fastcap.options import ScanOptions

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    options = ScanOptions()
    deferred = analyzer_for(options)
    assert isinstance(deferred, MozillaAnalyzer) and deferred.today == options.today
    assert deferred._analyzer is None
    eager = Analyzer(TrustStore.mozilla(), today=options.today)
    root = TrustStore.mozilla().roots[0]
    from cryptography.hazmat.primitives.serialization import Encoding

    der = root.public_bytes(Encoding.DER)
    for role in ("client", "server"):
        got = deferred.check([der], role=role, at=options.today, expected_name="x.example")
        assert got == eager.check([der], role=role, at=options.today, expected_name="x.example")
    assert deferred.analyzer.today == options.today


def test_the_deferred_analyzer_keeps_a_chain_it_has_checked_by_identity(monkeypatch, tmp_path):
    """The same certificate bytes objects on the same UTC day give the result checked before,
    counted as the hit the Analyzer would have had; new bytes objects (equal or not), another
    day, role or name, and bytes-likes that could change go to the Analyzer."""
    import datetime as dt

    from cryptography.hazmat.primitives.serialization import Encoding

    from fastcap.judge import judging
    from fastcap.judge.x509check import Analyzer
    from fastcap.options import ScanOptions

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    options = ScanOptions()
    deferred = judging.analyzer_for(options)
    eager = Analyzer(TrustStore.mozilla(), today=options.today)
    roots = TrustStore.mozilla().roots
    ders = [roots[0].public_bytes(Encoding.DER), roots[1].public_bytes(Encoding.DER)]
    at = dt.datetime(2026, 3, 1, 23, 30, tzinfo=dt.UTC)
    first = deferred.check(ders, role="server", at=at, expected_name="x.example")
    assert first == eager.check(ders, role="server", at=at, expected_name="x.example")
    calls = []
    monkeypatch.setattr(Analyzer, "check", lambda self, *a, **k: calls.append(k) or first)
    hits = deferred.analyzer.cache_hits
    same_day = at.replace(tzinfo=None, hour=1)  # naive: taken as UTC, as the Analyzer does
    assert deferred.check(list(ders), role="server", at=same_day, expected_name="x.example") \
        is first
    cet = dt.timezone(dt.timedelta(hours=1))  # 00:30 on 2 March here is still 1 March in UTC
    assert deferred.check(ders, role="server", at=at.astimezone(cet),
                          expected_name="x.example") is first
    assert calls == [] and deferred.analyzer.cache_hits == hits + 2
    deferred.check([bytes(bytearray(d)) for d in ders], role="server", at=at,
                   expected_name="x.example")  # equal bytes, other objects
    deferred.check(ders, role="server", at=at + dt.timedelta(hours=1), expected_name="x.example")
    deferred.check(ders, role="client", at=at, expected_name="x.example")
    deferred.check(ders, role="server", at=at, expected_name=None)
    deferred.check([bytearray(d) for d in ders], role="server", at=at, expected_name="x.example")
    assert len(calls) == 5
    assert len(deferred._kept) <= judging.MAX_KEPT_CHECKS


def test_an_unreadable_mozilla_bundle_still_stops_the_scan_before_it_starts(monkeypatch, capsys,
                                                                           tmp_path):
    from fastcap import cli
    from fastcap.judge import cabundle

    missing = str(tmp_path / "cacert.pem")
    monkeypatch.setattr(cabundle, "certifi_bundle", lambda: missing)
    assert cli.main(["scan", str(EXAMPLE)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and missing in err and err.startswith("fastcap: ")


def test_only_the_program_itself_freezes_what_its_imports_made(monkeypatch, capsys, tmp_path):
    """`fastcap` run as the program leaves its start-up objects out of the cyclic GC
    (gc.freeze, GC enabled again after) and collects young objects less often; a caller
    running main() in-process keeps its GC."""
    import gc

    from fastcap.cli import main

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    frozen, threshold = gc.get_freeze_count(), gc.get_threshold()
    assert main(["scan", str(EXAMPLE)]) == 1 and "no_client_cert" in capsys.readouterr().out
    assert gc.get_freeze_count() == frozen and gc.isenabled()
    assert gc.get_threshold() == threshold
    code = ("import contextlib, gc, io, sys\nfrom fastcap.cli import main\n"
            f"sys.argv = ['fastcap', 'scan', {str(EXAMPLE)!r}]\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    code = main()\n"
            "print(code, gc.get_freeze_count(), gc.isenabled(), *gc.get_threshold())")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)})
    code, count, enabled, *threshold = proc.stdout.split()
    assert code == "1" and int(count) > 10_000 and enabled == "True", proc.stderr
    # and collects its youngest objects less often, the older generations as before
    assert [int(t) for t in threshold] == [20_000, *gc.get_threshold()[1:]]
