"""`Capture.meta` is a frozen snapshot of what the walk met: a caller cannot change it (nor
see it change under it), and it holds what the walk counted, as the `stats` command reports
it, on every corpus capture with both walkers."""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import io
import json
from collections import Counter
from pathlib import Path

import pytest

from fastcap import Capture, CaptureMeta, CaptureWarning
from fastcap.cli import main
from fastcap.read.stream import open_capture

from .corpus import corpus_files

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "all-scenarios.pcapng"


def _walked(cap) -> int:
    return sum(len(w) for w in cap.windows())


def _refused(meta: CaptureMeta) -> list[str]:
    """The changes to `meta` that went through (none should)."""
    warning = CaptureWarning(meta.path, 0, "x", "x")
    tries = {
        "assign warnings": lambda: setattr(meta, "warnings", []),
        "assign size": lambda: setattr(meta, "size", 0),
        "append warning": lambda: meta.warnings.append(warning),
        "extend unreadable": lambda: meta.unreadable.extend([(0, 1)]),
        "append byte order": lambda: meta.byte_orders.append("big"),
        "append interface": lambda: meta.interfaces.append(None),
        "append secrets": lambda: meta.secrets.append(None),
        "count skipped": lambda: meta.skipped.__setitem__("x", 1),
        "update block counts": lambda: meta.block_counts.update(x=1),
        "clear other records": lambda: meta.other_records.clear(),
    }
    went = []
    for name, change in tries.items():
        try:
            change()
        except (dataclasses.FrozenInstanceError, AttributeError, TypeError):
            continue
        went.append(name)
    return went


@pytest.mark.parametrize("backend", ["native", "python"])
def test_meta_of_a_mapped_capture_refuses_every_change(backend):
    with Capture(EXAMPLE, backend=backend) as cap:
        before = cap.meta
        assert _refused(before) == []
        assert _walked(cap) == 206
        after = cap.meta
    assert _refused(after) == []
    assert after.byte_orders == ("little",) and after.sections == 1
    assert len(after.interfaces) == 1 and after.warnings == ()


def test_meta_of_a_stream_refuses_every_change(tmp_path):
    path = tmp_path / "all.pcapng.gz"
    path.write_bytes(gzip.compress(EXAMPLE.read_bytes()))
    with open_capture(path) as cap:
        assert _walked(cap) == 206
        meta = cap.meta
    assert meta.compression == "gzip" and meta.size == EXAMPLE.stat().st_size
    assert _refused(meta) == []


def test_a_snapshot_is_kept_until_the_walk_goes_on_and_never_changes(tmp_path):
    """A capture whose last record is cut short: the warning comes at the end of the walk,
    after the snapshot taken at its start, which stays as it was."""
    data = EXAMPLE.read_bytes()
    path = tmp_path / "cut.pcapng"
    path.write_bytes(data[:-10])
    with Capture(path, window=16) as cap:
        start = cap.meta
        assert cap.meta is start  # built once, until the walk changes the tally
        seen = []
        for _ in cap.windows():
            seen.append(cap.meta)
        end = cap.meta
        assert cap.meta is end
    assert start.warnings == () and start.sections == 0 and start.interfaces == ()
    assert [w.kind for w in end.warnings] == ["truncated_block"]
    assert end.skipped == {"truncated block": 1}
    # the damage is met before the last window is handed over: the snapshots of the windows
    # before it hold no warning, still
    assert len(seen) > 2 and all(m.warnings == () for m in seen[:-1])
    assert seen[-1].warnings == end.warnings


def test_a_later_stage_tells_the_reader_and_the_snapshots_before_stay(tmp_path):
    with Capture(EXAMPLE) as cap:
        _walked(cap)
        before = cap.meta
        extra = CaptureWarning(cap.path, 5, "key_log_not_kept", "told by a later stage")
        cap.tell(extra, skipped="something not read")
        after = cap.meta
    assert before.warnings == () and "something not read" not in before.skipped
    assert after.warnings == (extra,) and after.skipped["something not read"] == 1
    assert before.told(extra).warnings == after.warnings  # a copy, the same way


def _plain(meta_or_tally) -> dict:
    """Fields as plain values: tuples and lists as lists, counts as dicts."""
    out = {}
    for f in dataclasses.fields(CaptureMeta):
        v = getattr(meta_or_tally, f.name)
        if isinstance(v, tuple | list):
            v = [list(x) if isinstance(x, tuple) else x for x in v]
        elif hasattr(v, "items"):
            v = dict(v.items())
        out[f.name] = v
    return out


@pytest.fixture(scope="module")
def stats_json() -> dict:
    """`fastcap stats --json` over the whole corpus, by path (the walkers agree: the C one)."""
    files = [str(p) for p in corpus_files()]
    if not files:
        pytest.skip("corpus not found")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        main(["stats", "--json", "--backend", "native", *files])
    return {f["path"]: f for f in json.loads(buf.getvalue())["files"]}


@pytest.mark.parametrize("backend", ["native", "python"])
def test_snapshot_holds_what_the_walk_counted_on_every_corpus_capture(backend, stats_json):
    """On every corpus capture: the snapshot after the walk is the walk's own tally, field by
    field (what `meta` itself was before it was frozen), and says what `stats` says."""
    checked = 0
    for path in corpus_files():
        with Capture(path, backend=backend) as cap:
            frames = _walked(cap)
            meta = cap.meta
            assert _plain(meta) == _plain(cap._tally), path.name
        assert isinstance(meta.skipped, type(meta.block_counts))
        assert Counter(meta.skipped) == cap._tally.skipped
        st = stats_json[str(path)]
        assert (st["format"], st["size"], st["sections"], st["byte_orders"]) == (
            meta.format, meta.size, meta.sections, list(meta.byte_orders)), path.name
        assert (st["interfaces"], st["nanosecond"], st["snaplen"]) == (
            len(meta.interfaces), meta.nanosecond, meta.snaplen), path.name
        assert st["warnings"] == [str(w) for w in meta.warnings], path.name
        assert st["warning_offsets"] == [w.offset for w in meta.warnings], path.name
        assert st["unreadable"] == [list(r) for r in meta.unreadable], path.name
        assert st["other_records"] == dict(meta.other_records), path.name
        assert st["frames"] == frames + sum(meta.other_records.values()), path.name
        checked += 1
    assert checked == len(corpus_files()) > 40
