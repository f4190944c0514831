"""Replay every input in tests/data/regressions/ (fuzzer finds and hand-made nasty captures).

Each file must read without an undocumented exception on both backends, and the C and Python
backends must agree on every frame column, every warning and every scanned session: the two are
twins, so any difference is a bug in one of them.  Add files as described in tests/fuzz/README.md.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fastcap._ffi import native_available
from fastcap.errors import FastcapError
from fastcap.judge.x509check import Analyzer
from fastcap.read.capture import Capture
from fastcap.run.scanner import scan, trust_store

REGRESSIONS = Path(__file__).parent / "data" / "regressions"
FILES = sorted(REGRESSIONS.glob("*.bin"))
NATIVE_INPUTS = sorted((REGRESSIONS / "fuzz_native").glob("*.bin"))
ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ("offset", "caplen", "orig_len", "ts_ns", "iface", "frame_no", "flags", "slab")

pytestmark = pytest.mark.skipif(not FILES, reason="tests/data/regressions/ has no *.bin files")


def _suffix(data: bytes) -> str:
    return ".pcapng" if data[:4] == b"\x0a\x0d\x0d\x0a" else ".pcap"


def _staged(src: Path, tmp_path: Path) -> Path:
    """The input under the suffix its magic calls for, as a user would name it."""
    data = src.read_bytes()
    dst = tmp_path / (src.stem + _suffix(data))
    dst.write_bytes(data)
    return dst


def _walk(path: Path, backend: str) -> dict[str, Any]:
    """All frame columns (small windows, so window boundaries are crossed) and warnings."""
    try:
        with Capture(path, backend=backend, window=3, slab_width=24) as cap:
            parts = [{k: getattr(w, k).copy() for k in COLUMNS} for w in cap.windows()]
            meta = cap.meta
    except FastcapError as e:
        return {"error": (type(e).__name__, str(e))}
    cols = {k: np.concatenate([p[k] for p in parts]) if parts else np.empty(0) for k in COLUMNS}
    return {"cols": cols, "warnings": [str(w) for w in meta.warnings],
            "interfaces": [i.params() for i in meta.interfaces]}


def _scan(path: Path, backend: str, analyzer: Analyzer) -> dict[str, Any]:
    run = scan(path, backend=backend, analyzer=analyzer, stream_cap=4096)
    try:
        sessions = [s.to_dict() for s in run]
    except FastcapError as e:
        return {"error": (type(e).__name__, str(e))}
    return {"sessions": sessions, "summary": run.summary.to_dict()}


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    """One Analyzer for all files: loading the trust store is the slow part of a scan."""
    return Analyzer(trust_store())


@pytest.mark.parametrize("src", FILES, ids=[f.name for f in FILES])
def test_reads_without_undocumented_errors(src: Path, tmp_path: Path, backend: str,
                                           analyzer: Analyzer) -> None:
    path = _staged(src, tmp_path)
    _walk(path, backend)  # anything but FastcapError propagates and fails the test
    _scan(path, backend, analyzer)


@pytest.mark.parametrize("src", FILES, ids=[f.name for f in FILES])
def test_backends_agree(src: Path, tmp_path: Path, analyzer: Analyzer) -> None:
    if not native_available():
        pytest.skip("fastcap._native is not built (pip install . with a C compiler)")
    path = _staged(src, tmp_path)
    native, python = _walk(path, "native"), _walk(path, "python")
    assert native.keys() == python.keys()
    if "cols" in native:
        for k in COLUMNS:
            assert np.array_equal(native["cols"][k], python["cols"][k]), k
        assert native["warnings"] == python["warnings"]
        assert native["interfaces"] == python["interfaces"]
    else:
        assert native == python
    assert _scan(path, "native", analyzer) == _scan(path, "python", analyzer)


_REPLAY_MAIN = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f)
            return 2;
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        uint8_t *b = malloc((size_t)n + 1);
        if (!b || fread(b, 1, (size_t)n, f) != (size_t)n)
            return 3;
        fclose(f);
        LLVMFuzzerTestOneInput(b, (size_t)n);
        free(b);
    }
    return 0;
}
"""


def test_fuzz_native_inputs_keep_their_invariants(tmp_path: Path) -> None:
    """The raw fuzz_native inputs kept as regressions pass the harness's invariant checks
    (built with a plain C compiler, without libFuzzer): a stale check or a core that breaks
    one traps here rather than only in a long fuzzing run."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None or not NATIVE_INPUTS:
        pytest.skip("no C compiler or no tests/data/regressions/fuzz_native/*.bin")
    main, exe = tmp_path / "replay.c", tmp_path / "replay"
    main.write_text(_REPLAY_MAIN)
    subprocess.run([cc, "-O0", "-std=gnu11", "-I", str(ROOT / "csrc"),
                    str(ROOT / "tests" / "fuzz" / "fuzz_native.c"), str(ROOT / "csrc" / "walk.c"),
                    str(ROOT / "csrc" / "reassembly.c"), str(main), "-o", str(exe)],
                   check=True, capture_output=True)
    for src in NATIVE_INPUTS:
        res = subprocess.run([str(exe), str(src)], capture_output=True, text=True)
        assert res.returncode == 0, f"{src.name}: {res.stderr.strip()}"
