"""Walking the next window on a thread (`read.ahead`) reads exactly what walking in turn reads.

The walk ahead only moves the C call for the next window to another thread; these tests hold
the two ways to the same windows, warnings and end state on real captures, on damaged ones and
on walks split into ranges, and check that the walk ahead really happens and never outlives
its buffers.
"""

from __future__ import annotations

import os
import random
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastcap import Capture
from fastcap.read.capture import WalkState

from .corpus import corpus_files
from .mutate import mutate_capture

COLS = ("offset", "caplen", "orig_len", "ts_ns", "iface", "frame_no", "flags", "slab")


def walk(path: Path, ahead: bool, window: int, start: WalkState | None = None,
         stop: int | None = None, threads: list[str] | None = None) -> dict:
    """Every window's columns (copied: windows are reused), the warnings and where the walk
    ended, with the walk ahead on or off.  With `threads`, the walk is begun ahead
    (walk_first_ahead) before the windows are asked for, and `threads` gets the thread
    each C walk call ran on."""
    cols: dict[str, list[np.ndarray]] = {k: [] for k in COLS}
    sizes = []
    with Capture(path, backend="native", window=window, slab_width=80) as cap:
        cap.read_ahead = ahead
        if threads is not None:
            for name in ("walk_pcap", "walk_pcapng"):
                real = getattr(cap.walker, name)

                def watched(*a, _real=real, **kw):
                    threads.append(threading.current_thread().name)
                    return _real(*a, **kw)

                setattr(cap.walker, name, watched)
            cap.walk_first_ahead(start, stop)
        for w in cap.windows(start, stop):
            sizes.append(len(w))
            for k in COLS:
                cols[k].append(getattr(w, k).copy())
        meta = cap.meta
        end = cap.end_state
        assert threads is None or not cap._walks
    return {"cols": {k: np.concatenate(v) if v else np.empty(0) for k, v in cols.items()},
            "sizes": sizes, "warnings": meta.warnings, "skipped": dict(meta.skipped),
            "unreadable": meta.unreadable, "blocks": dict(meta.block_counts),
            "end": (end.offset, end.frame, end.ref_s)}


def assert_same(a: dict, b: dict) -> None:
    for k in COLS:
        assert np.array_equal(a["cols"][k], b["cols"][k]), k
    for k in ("sizes", "warnings", "skipped", "unreadable", "blocks", "end"):
        assert a[k] == b[k], k


CAPTURES = [p for p in corpus_files() if p.stat().st_size > 2000]


@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_walk_ahead_reads_what_the_walk_in_turn_reads(require_native, path):
    for window in (1, 7, 64):
        ahead, in_turn = walk(path, True, window), walk(path, False, window)
        assert_same(ahead, in_turn)
        assert len(ahead["sizes"]) > 1 or len(ahead["cols"]["offset"]) < window


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), which=st.integers(0, len(CAPTURES) - 1),
       window=st.integers(1, 9))
def test_damaged_captures_read_alike_ahead_and_in_turn(tmp_path, require_native, seed, which,
                                                        window):
    rng = random.Random(seed)
    data = CAPTURES[which].read_bytes()
    for _ in range(rng.randint(1, 3)):
        data = mutate_capture(data, rng)
    path = tmp_path / ("d.pcapng" if data[:4] == b"\x0a\x0d\x0d\x0a" else "d.pcap")
    path.write_bytes(data)
    try:
        in_turn = walk(path, False, window)
    except Exception as e:  # noqa: BLE001 - not a capture any more: both must say the same
        with pytest.raises(type(e)):
            walk(path, True, window)
        return
    assert_same(walk(path, True, window), in_turn)


def test_split_ranges_read_alike(require_native):
    path = max(CAPTURES, key=lambda p: p.stat().st_size)
    size = path.stat().st_size
    whole = walk(path, False, 5)
    with Capture(path, backend="native") as cap:
        list(cap.windows(stop=size // 2))
        mid = cap.end_state
    first = walk(path, True, 5, stop=size // 2)
    second = walk(path, True, 5, start=mid)
    assert first["end"][:2] == (mid.offset, mid.frame)
    for k in COLS:
        joined = np.concatenate([first["cols"][k], second["cols"][k]])
        if k == "frame_no":  # a walk from mid-file numbers from its start state
            continue
        assert np.array_equal(joined, whole["cols"][k]), k


def _many_windows() -> Path:
    return max(CAPTURES, key=lambda p: p.stat().st_size)


def test_the_next_window_is_walked_while_this_one_is_worked_on(require_native):
    """A regression to walking in turn leaves no walk pending and reuses one buffer."""
    with Capture(_many_windows(), backend="native", window=4) as cap:
        assert cap.read_ahead == (len(os.sched_getaffinity(0)) > 1)  # a core to spare
        cap.read_ahead = True
        it = cap.windows()
        first = next(it)
        assert cap.walking_ahead  # the second window is being walked already
        first_slab = first.slab
        second = next(it)
        assert not np.shares_memory(first_slab, second.slab)  # two buffers take turns
        third = next(it)
        assert np.shares_memory(first_slab, third.slab)
        it.close()
        assert not cap.walking_ahead and not cap._walks  # closing waited for the walk ahead


def test_closing_the_capture_mid_walk_waits_for_the_walk_ahead(require_native):
    cap = Capture(_many_windows(), backend="native", window=2)
    cap.read_ahead = True
    it = cap.windows()
    next(it)
    (slot,) = cap._walks
    thread = slot._thread
    assert thread is not None and cap.walking_ahead
    cap.close()  # must not unmap the file under the thread
    assert not cap.walking_ahead and not thread.is_alive()
    del it


def _begun_walk(path: Path, window: int, start: WalkState | None = None,
                stop: int | None = None) -> tuple[dict, list[str]]:
    """`walk` with the walk begun ahead, and the thread each C walk call ran on."""
    threads: list[str] = []
    return walk(path, True, window, start, stop, threads), threads


@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_a_walk_begun_before_its_turn_reads_what_the_walk_in_turn_reads(require_native, path):
    """walk_first_ahead walks the first window on a thread before the windows are asked
    for (the next file's walk while this one is judged); the windows, warnings and end state
    are those of a walk in turn, for the whole file and for a range of it."""
    got, threads = _begun_walk(path, 64)
    assert_same(got, walk(path, False, 64))
    assert threads and threads[0] == "fastcap-walk-ahead"
    size = path.stat().st_size
    with Capture(path, backend="native") as cap:
        from fastcap.run.ranges import guess_state

        guess = guess_state(cap)
    got, _ = _begun_walk(path, 64, guess, size // 2)
    assert_same(got, walk(path, False, 64, guess, size // 2))


def test_a_walk_begun_with_other_bounds_is_not_taken(require_native):
    """windows() asked with bounds other than those begun walks afresh, and the begun walk
    is ended first."""
    path = _many_windows()
    want = walk(path, False, 16, None, 4000)
    with Capture(path, backend="native", window=16) as cap:
        cap.read_ahead = True
        cap.walk_first_ahead()
        slot = cap._begun[2]
        got_windows = [len(w) for w in cap.windows(None, 4000)]
        assert slot._thread is None and not cap._walks
    assert got_windows == want["sizes"]


def test_closing_a_capture_with_a_walk_begun_waits_for_it(require_native):
    cap = Capture(_many_windows(), backend="native", window=4)
    cap.read_ahead = True
    cap.walk_first_ahead()
    threads = [cap._begun[2]._thread]
    assert threads[0] is not None
    cap.close()  # must not unmap the file under the thread
    assert not any(t.is_alive() for t in threads)
    assert not [t for t in threading.enumerate() if t.name == "fastcap-walk-ahead"]


def test_closing_waits_for_the_walk_ahead_a_begun_walk_starts(require_native, monkeypatch):
    """The thread of a begun walk starts the walk of the second window before it is done;
    closing the capture while the first is still under way waits for both, before the map
    goes.  Each walk-ahead thread is held before it does anything until a join names it, so
    close() always comes while the first is under way, and a thread close() does not wait
    for goes on only after close() let go of the map (or not at all), however loaded the
    machine."""
    from fastcap.read import ahead

    cond, joined, let_go, ran_on = threading.Condition(), set(), [False], []
    real_start, real_join = ahead.Slot.start, threading.Thread.join

    def held(fn, *args):
        me = threading.current_thread()
        if me is not threading.main_thread():
            with cond:
                assert cond.wait_for(lambda: me in joined or let_go[0], timeout=300)
        ran_on.append((me.name, cap._bound is not None))  # the map still there?
        if me is threading.main_thread() or ran_on[-1][1]:
            return fn(*args)
        raise RuntimeError("went on after close() let go of the map")

    def join(self, *a, **kw):
        with cond:
            joined.add(self)
            cond.notify_all()
        return real_join(self, *a, **kw)

    monkeypatch.setattr(ahead.Slot, "start", lambda slot, fn, *a: real_start(slot, held, fn, *a))
    monkeypatch.setattr(threading.Thread, "join", join)
    cap = Capture(_many_windows(), backend="native", window=4)
    cap.read_ahead = True
    cap.walk_first_ahead()
    assert cap.walking_ahead  # held: not a step further until close() waits for it
    cap.close()
    left = [t for t in threading.enumerate() if t.name == "fastcap-walk-ahead"]
    with cond:  # a thread close() left would wait for ever: let it go before failing
        let_go[0] = True
        cond.notify_all()
    for t in left:
        real_join(t)
    assert not left
    # the begun walk and the one it started, each on its thread and done before the map went
    assert ran_on == [("fastcap-walk-ahead", True)] * 2


def test_leaving_a_begun_walk_after_its_first_window_ends_the_walk_ahead(require_native):
    with Capture(_many_windows(), backend="native", window=4) as cap:
        cap.read_ahead = True
        cap.walk_first_ahead()
        it = cap.windows()
        next(it)
        assert cap.walking_ahead  # the second window is being walked already
        it.close()
        assert not cap.walking_ahead and not cap._walks


def test_no_walk_is_begun_where_the_walk_goes_in_turn(require_native):
    with Capture(_many_windows(), backend="native", window=4) as cap:
        cap.read_ahead = False  # one core, or a reading worker
        cap.walk_first_ahead()
        assert not cap._walks and cap._begun is None


def test_python_walker_and_turned_off_walk_in_turn():
    path = _many_windows()
    with Capture(path, backend="python", window=4) as cap:
        it = cap.windows()
        next(it)
        assert not cap.walking_ahead
        it.close()
    with Capture(path, backend="auto", window=4) as cap:
        cap.read_ahead = False
        it = cap.windows()
        a = next(it).slab
        b = next(it).slab
        assert np.shares_memory(a, b) and not cap.walking_ahead
        it.close()


def test_reading_workers_walk_in_turn(require_native, monkeypatch):
    """-j N's reading workers leave the other cores to each other and the main process."""
    from fastcap.read import capture
    from fastcap.run.ranges import RangeTask, read_range

    seen = []
    reads_ahead = capture.Capture._reads_ahead

    def watch(self):
        seen.append(reads_ahead(self))
        return seen[-1]

    monkeypatch.setattr(capture.Capture, "_reads_ahead", watch)
    path = _many_windows()
    task = RangeTask(str(path), 0, 0, path.stat().st_size, None, True, frozenset({25}),
                     "native")
    read_range(task)
    assert seen == [False]
    read_range(replace(task, ahead=True))  # read alone, as -j 1 reads a file's ranges
    assert seen == [False, len(os.sched_getaffinity(0)) > 1]


@pytest.mark.parametrize("workers", [False, True])
def test_ranges_read_without_workers_walk_ahead(monkeypatch, workers):
    """Without workers (-j 1 over several files) this process reads the ranges and has
    the other cores to itself then, so their walks run ahead; with workers, they read the
    ranges and walk in turn."""
    from fastcap.judge.judging import analyzer_for
    from fastcap.run import streamed
    from fastcap.run.scanner import judge_options

    seen: list[bool] = []

    class Recording:  # stands for the reader `streamed` would start
        def __init__(self, jobs: int, with_workers: bool) -> None:
            assert with_workers == workers

        def submit(self, fn, task):
            seen.append(task.ahead)
            return fn, task

        def get(self, handle):
            fn, task = handle
            return fn(task)

        def close(self) -> None:
            pass

    monkeypatch.setattr(streamed, "_reader", Recording)
    options = judge_options()
    paths = [str(p) for p in CAPTURES[:2]]
    list(streamed.iter_file_events(paths, options, analyzer_for(options), jobs=2, parts=2,
                                   workers=workers))
    list(streamed.iter_scan(paths[0], options, analyzer_for(options), jobs=2, parts=2,
                            workers=workers))
    assert len(seen) >= 3 and seen == [not workers] * len(seen)


def _big_pcap(tmp_path: Path, frames: int = 24_000) -> Path:
    """A capture of ~30 MB: several release steps (4 MiB) long."""
    from fastcap_synth import packets as p
    from fastcap_synth.writers import Record, write_pcap

    frame = p.tcp_frame("10.0.0.1", "10.0.0.2", 1025, 80, 1, 1, 0x10, b"x" * 1200)
    path = tmp_path / "big.pcap"
    write_pcap(path, (Record(frame, 10**9 + i) for i in range(frames)))
    return path


def _smaps(path: Path, field: str) -> list[str]:
    """The words after `field` (e.g. "Rss:") of this process's mapping of `path`, from
    /proc/self/smaps."""
    lines = Path("/proc/self/smaps").read_text().splitlines()
    for i, line in enumerate(lines):
        if line.endswith(" " + str(path)):
            for more in lines[i + 1:]:
                if more.startswith(field):
                    return more.split()[1:]
    raise AssertionError("mapping not found")


def _mapped_kb(path: Path) -> int:
    """Resident kB of this process's mapping of `path`."""
    return int(_smaps(path, "Rss:")[0])


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs /proc/self/smaps")
@pytest.mark.parametrize("ahead", [True, False])
def test_the_walk_lets_go_of_the_pages_it_left_behind(tmp_path, backend, monkeypatch, ahead):
    """Resident pages of the mapping stay a few windows deep instead of the whole file, and the
    bytes left behind read back unchanged."""
    from fastcap.read import capture

    path = _big_pcap(tmp_path)
    data = path.read_bytes()
    got = {}
    for release in (True, False):
        if not release:
            monkeypatch.setattr(capture, "_RELEASE_MIN", 1 << 62)
        with Capture(path, backend=backend, window=1000) as cap:
            cap.read_ahead = ahead
            frames = 0
            for w in cap.windows():
                frames += len(w)
                assert bytes(w.slab[0, :14]) == data[int(w.offset[0]):int(w.offset[0]) + 14]
            got[release] = _mapped_kb(path)
            assert bytes(cap.buffer[: 1 << 20]) == data[: 1 << 20]  # faulted back in as it was
        assert frames == 24_000
    size_kb = len(data) >> 10
    assert got[False] > size_kb * 0.9, got  # the measure sees a walk that keeps every page
    assert got[True] < 12 << 10, got  # ~two windows and the last step's 4 MiB


def test_a_piece_in_memory_is_never_let_go(tmp_path, require_native, monkeypatch):
    """Dropping pages of a buffer of this process's own memory would zero them: only the file's
    own mapping is let go of."""
    from fastcap.read import capture, walker

    calls = []
    monkeypatch.setattr(walker.NativeWalker, "release",
                        lambda self, bound, lo, hi: calls.append((lo, hi)))
    monkeypatch.setattr(capture, "_RELEASE_MIN", 1)
    data = _big_pcap(tmp_path, 4000).read_bytes()
    buf = bytearray(data)
    cap = Capture.over(buf, name="piece", fmt="pcap", backend="native", window=100)
    assert sum(len(w) for w in cap.windows()) == 4000
    assert calls == [] and bytes(buf) == data
    with Capture(tmp_path / "big.pcap", backend="native", window=100) as cap:
        assert sum(len(w) for w in cap.windows()) == 4000
    assert calls and all(lo < hi for lo, hi in calls)


def test_two_walks_of_one_capture_keep_their_own_windows(require_native):
    """Each walk has its own walk ahead: interleaving two never hands one the other's rows."""
    path = _many_windows()
    whole = walk(path, False, 3)["cols"]["frame_no"]
    with Capture(path, backend="native", window=3) as cap:
        cap.read_ahead = True
        a, b = cap.windows(), cap.windows()
        got_a, got_b = [], []
        for wa, wb in zip(a, b, strict=False):
            got_a.append(wa.frame_no.copy())
            got_b.append(wb.frame_no.copy())
        a.close()
        b.close()
    n = sum(map(len, got_a))
    assert n > 6
    assert np.array_equal(np.concatenate(got_a), whole[:n])
    assert np.array_equal(np.concatenate(got_b), whole[:n])


def test_a_window_given_by_the_caller_is_filled_in_turn_with_a_spare(require_native):
    """`Capture.frames` (a window the caller provides) is the first buffer; the walk ahead
    fills a spare like it, and the frames read are the same."""
    from fastcap.read.frames import FrameWindow

    path = _many_windows()
    whole = walk(path, False, 5)["cols"]["frame_no"]
    with Capture(path, backend="native") as cap:
        cap.read_ahead = True
        cap.frames = given = FrameWindow.allocate(5, 80)
        seen, used_given = [], 0
        for w in cap.windows():
            seen.append(w.frame_no.copy())
            used_given += np.shares_memory(w.slab, given.slab)
    assert np.array_equal(np.concatenate(seen), whole)
    assert 0 < used_given < len(seen)  # the given window and the spare took turns
