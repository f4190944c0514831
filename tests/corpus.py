"""The public capture corpus the tests read (tests/data/corpus, sources and licences in its
MANIFEST.md), and what tshark said about each capture (expected.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
CORPUS = PROJECT / "tests" / "data" / "corpus"


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
