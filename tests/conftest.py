"""Shared fixtures: the two reader backends, and the public corpus beside the project."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fastcap.native import native_available

PROJECT = Path(__file__).resolve().parents[1]
CORPUS = PROJECT.parent / "shared" / "corpus"


def corpus_files() -> list[Path]:
    """Every capture of the shared corpus ([] when the folder is absent: tests then skip)."""
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.iterdir() if p.suffix in (".pcap", ".pcapng"))


def corpus_expected() -> dict:
    path = CORPUS / "expected.json"
    return json.loads(path.read_text())["files"] if path.is_file() else {}


def corpus_params():
    files = corpus_files()
    if not files:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"corpus not found at {CORPUS}"))]
    return [pytest.param(p, id=p.name) for p in files]


@pytest.fixture(params=["native", "python"])
def backend(request) -> str:
    if request.param == "native" and not native_available():
        pytest.skip("fastcap._native is not built (pip install . with a C compiler)")
    return request.param


@pytest.fixture
def require_native() -> None:
    if not native_available():
        pytest.skip("fastcap._native is not built (pip install . with a C compiler)")


@pytest.fixture
def tshark() -> str:
    exe = shutil.which("tshark")
    if exe is None:
        pytest.skip("tshark is not installed (apt-get install -y tshark)")
    return exe
