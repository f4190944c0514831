"""What start-up costs: modules a plain scan never needs stay unimported until the rare case
that needs them arises (a missing issuer, the system trust store)."""

from __future__ import annotations

import subprocess
import sys

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
