"""The run engine's shared pieces, each used by the one-process scan, `-j N` and executor
(Dask) runs: executors (`run.workers`), ring-buffer runs and their numbering (`run.rings`),
the feed loop (`tcp.feed`) and the in-order hand-on (`session.InOrder`)."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from fastcap.read.capture import Capture
from fastcap.read.guard import guarded_map
from fastcap.run import ranges, rings
from fastcap.run.rings import (
    RING_GAP_NS,
    FileStarts,
    NumberedOn,
    RunBreaks,
    follows,
    numbered_in_files,
    runs,
)
from fastcap.run.workers import READER_NICENESS, PoolExecutor, SerialExecutor, WorkerLost
from fastcap.select.flows import FlowKey, FlowTable
from fastcap.select.selection import FrameCounters
from fastcap.session import InOrder, Session
from fastcap.tcp import feed
from fastcap.tcp.reassembly import FrameCols, Reassembler

ROOT = Path(__file__).resolve().parents[1]
ALL = ROOT / "examples" / "all-scenarios.pcapng"


def _square_and_pid(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


# -- workers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("local_first", [True, False])
def test_pool_map_and_submit_give_what_the_serial_executor_gives(local_first):
    items = list(range(7))
    serial = SerialExecutor()
    want = [x * x for x in items]
    with PoolExecutor(2, local_first=local_first) as pool:
        got = pool.map(_square_and_pid, items)
        handles = [pool.submit(_square_and_pid, x) for x in items]
        submitted = [pool.get(h) for h in handles]
    assert [v for v, _ in got] == want == [v for v, _ in serial.map(_square_and_pid, items)]
    assert [v for v, _ in submitted] == want
    here = os.getpid()
    # local_first: the first task of a map runs in this process; without it, none does.
    assert (got[0][1] == here) is local_first
    assert all(pid != here for _, pid in got[1:])
    assert all(pid != here for _, pid in submitted)


def _niceness(_: int) -> int:
    return os.nice(0)


def test_workers_feeding_this_process_step_back_and_others_do_not():
    here = os.nice(0)
    with PoolExecutor(2, local_first=False) as readers:
        assert readers.get(readers.submit(_niceness, 0)) == min(here + READER_NICENESS, 19)
    with PoolExecutor(2, local_first=True) as pool:
        assert pool.map(_niceness, [0, 0, 0]) == [here] * 3


_HELD = threading.Lock()  # held by another thread while a test's pool starts
_MADE_HERE: list[int] = []  # what this process added after the import


def _what_the_worker_started_with(_: int) -> tuple[int, bool]:
    got = _HELD.acquire(blocking=False)  # a forked copy stays held: no thread here frees it
    if got:
        _HELD.release()
    return len(_MADE_HERE), got


@pytest.fixture
def start_method():
    """Sets the program's start method for one test (None: not chosen), then puts back the
    one the test process had."""
    had = multiprocessing.get_start_method(allow_none=True)

    def choose(method: str | None) -> None:
        multiprocessing.set_start_method(method, force=True)

    yield choose
    multiprocessing.set_start_method(had, force=True)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
@pytest.mark.filterwarnings("ignore:This process:DeprecationWarning")  # the fork it shows
@pytest.mark.parametrize("chosen", [None, "forkserver", "spawn"])
def test_workers_start_as_the_program_chose(start_method, chosen):
    """Unchosen, workers are forked: they have what this process made, and a copy of a lock
    another thread held then, locked for good (why a program that runs threads chooses
    otherwise).  Chosen, workers start clean and still do the work."""
    start_method(chosen)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with _HELD:
            holding.set()
            release.wait(30)

    other = threading.Thread(target=hold)
    _MADE_HERE.append(1)
    other.start()
    try:
        holding.wait(30)
        with PoolExecutor(2, local_first=False) as pool:
            got = pool.map(_what_the_worker_started_with, [0, 1])
            later = pool.get(pool.submit(_square_and_pid, 5))
    finally:
        release.set()
        other.join()
        _MADE_HERE.clear()
    assert got == ([(1, False)] * 2 if chosen is None else [(0, True)] * 2)
    assert later[0] == 25 and later[1] != os.getpid()


@pytest.mark.parametrize("chosen", ["forkserver", "spawn"])
def test_a_scan_on_workers_started_clean_gives_what_one_process_gives(start_method, chosen,
                                                                         monkeypatch):
    """Workers that do not inherit this process (a program's choice) are sent everything
    they need: the whole scan comes out the same, with the workers started as chosen."""
    if chosen not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {chosen} here")
    from fastcap import scan
    from fastcap.judge.judging import analyzer_for
    from fastcap.options import ScanOptions
    from fastcap.run import streamed, workers

    made = []
    real = workers._context
    monkeypatch.setattr(workers, "_context", lambda: made.append(real()) or made[-1])
    start_method(chosen)
    options = ScanOptions()
    on_workers = [repr(s) for s in streamed.iter_scan(ALL, options, analyzer_for(options),
                                                        jobs=2, parts=4)]
    assert [c.get_start_method() for c in made] == [chosen]
    assert on_workers == [repr(s) for s in scan(ALL, jobs=1)] and len(on_workers) == 9


def _dies_in_a_worker(parent: int) -> int:
    if os.getpid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer or a SIGBUS ends a worker
    return parent


@pytest.mark.filterwarnings("ignore:This process:DeprecationWarning")  # the test's thread
@pytest.mark.parametrize(("local_first", "how"), [(True, "map"), (False, "map"),
                                                  (False, "submit")])
def test_a_worker_that_dies_is_an_error_not_a_wait_for_ever(local_first, how):
    """A multiprocessing.Pool starts another worker and leaves the lost task's caller
    waiting: the run hung.  The wait runs on a thread here, so a regression fails."""
    got: list[object] = []

    def run() -> None:
        try:
            with PoolExecutor(2, local_first=local_first) as pool:
                here = os.getpid()
                if how == "map":
                    pool.map(_dies_in_a_worker, [here] * 3)
                else:
                    pool.get(pool.submit(_dies_in_a_worker, here))
        except WorkerLost as e:
            got.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), "the executor waited for the dead worker's result"
    (e,) = got
    assert str(e).startswith("a worker process ended without its result (killed, or a "
                             "signal such as SIGBUS")


def test_a_scan_whose_worker_dies_ends_in_one_line_and_exit_2(tmp_path):
    """The command, reading the example in 1 KiB ranges on two workers, one of which is
    killed on its second range: the sessions before it are printed, then one line."""
    script = tmp_path / "run.py"
    script.write_text(
        "import os, signal, sys\n"
        "from fastcap import cli\n"
        "from fastcap.run import ranges, scanner, streamed\n"
        "scanner.SPLIT_MIN_BYTES = streamed.MIN_RANGE = 1 << 10\n"
        "real = ranges.read_range\n"
        "def dying(task):\n"
        "    if task.index == 1:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return real(task)\n"
        "ranges.read_range = dying\n"
        "sys.exit(cli.main(['scan', '-j', '2', '--format', 'jsonl', sys.argv[1]]))\n")
    r = subprocess.run([sys.executable, str(script), str(ALL)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("fastcap: a worker process ended without its result")
    assert r.stderr.count("\n") == 1


# The main process notes in a file (argv[2]) that its Ctrl-C was taken; a worker that sent it
# waits for that note (not a sleep), so the test is the same however loaded the machine is.
_INTERRUPT_NOTED = (
    "import os, signal, sys, time\n"
    "main = os.getpid()\n"
    "def noted(signum, frame):\n"
    "    if os.getpid() == main:\n"
    "        open(sys.argv[2], 'w').close()\n"
    "    raise KeyboardInterrupt\n"
    "signal.signal(signal.SIGINT, noted)\n"
    "def wait_for_main():\n"
    "    end = time.monotonic() + 100\n"
    "    while not os.path.exists(sys.argv[2]) and time.monotonic() < end:\n"
    "        time.sleep(0.01)\n")


def test_ctrl_c_while_a_worker_starts_is_the_main_process_line_only(tmp_path):
    """Ctrl-C can come while a worker is still starting, before its first step makes it
    ignore the signal: the worker must not print multiprocessing's KeyboardInterrupt
    traceback then either.  The first worker sends SIGINT to the group from inside its
    start-up (where multiprocessing closes its stdin), before the pool's initializer."""
    script = tmp_path / "run.py"
    script.write_text(
        _INTERRUPT_NOTED +
        "import multiprocessing.util as mu\n"
        "from fastcap import cli\n"
        "from fastcap.run import ranges, scanner, streamed\n"
        "scanner.SPLIT_MIN_BYTES = streamed.MIN_RANGE = 1 << 10\n"
        "real = mu._close_stdin\n"
        "def starting():\n"
        "    if os.getpid() != main and not os.path.exists(sys.argv[3]):\n"
        "        open(sys.argv[3], 'w').close()\n"
        "        os.killpg(os.getpgid(0), signal.SIGINT)\n"
        "        wait_for_main()\n"
        "    real()\n"
        "mu._close_stdin = starting\n"
        "sys.exit(cli.main(['scan', '-j', '2', '--format', 'jsonl', sys.argv[1]]))\n")
    r = subprocess.run([sys.executable, str(script), str(ALL), str(tmp_path / "taken"),
                        str(tmp_path / "sent")],
                       capture_output=True, text=True, timeout=300, start_new_session=True)
    assert (tmp_path / "sent").exists() and (tmp_path / "taken").exists()
    assert (r.returncode, r.stderr) == (130, "fastcap: interrupted\n")


# Every range a worker begins waits, in the worker, until the main process has taken the
# Ctrl-C and waits for the pool (its first join after the note) or has returned from main();
# the worker then unblocks SIGINT (a signal held back, not ignored, comes in now), reads the
# range and notes it done.  Ranges are small and many are submitted ahead, so some are never
# begun.  What main() left behind is written before the workers are let go.
_GROUP_INTERRUPTED = (
    _INTERRUPT_NOTED +
    "import json, threading\n"
    "from pathlib import Path\n"
    "from fastcap import cli\n"
    "from fastcap.run import ranges, scanner, streamed, workers\n"
    "scanner.SPLIT_MIN_BYTES = streamed.MIN_RANGE = 1 << 10\n"
    "streamed.RANGES_PER_JOB, streamed._AHEAD = 12, 6\n"
    "notes, release = Path(sys.argv[3]), Path(sys.argv[4])\n"
    "real_read, real_submit, real_join = ranges.read_range, workers.PoolExecutor.submit, "
    "threading.Thread.join\n"
    "submitted = []\n"
    "def interrupting(task):\n"
    "    if os.getpid() == main:\n"
    "        return real_read(task)\n"
    "    (notes / f'begun-{task.index}').touch()\n"
    "    if task.index == 1:\n"
    "        os.killpg(os.getpgid(0), signal.SIGINT)\n"
    "    end = time.monotonic() + 100\n"
    "    while not release.exists() and time.monotonic() < end:\n"
    "        time.sleep(0.01)\n"
    "    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})\n"
    "    got = real_read(task)\n"
    "    (notes / f'done-{task.index}').touch()\n"
    "    return got\n"
    "def submit(self, fn, task):\n"
    "    submitted.append(task.index)\n"
    "    return real_submit(self, fn, task)\n"
    "def join(self, *a, **kw):\n"
    "    if os.getpid() == main and os.path.exists(sys.argv[2]):\n"
    "        release.touch()\n"
    "    return real_join(self, *a, **kw)\n"
    "ranges.read_range, workers.PoolExecutor.submit = interrupting, submit\n"
    "threading.Thread.join = join\n"
    "rc = cli.main(['scan', '-j', '2', '--format', 'jsonl', sys.argv[1]])\n"
    "left = {'notes': sorted(p.name for p in notes.iterdir()), 'submitted': submitted}\n"
    "Path(sys.argv[5]).write_text(json.dumps(left))\n"
    "release.touch()\n"
    "sys.exit(rc)\n")


def test_ctrl_c_to_the_process_group_is_the_main_process_line_only(tmp_path):
    """A terminal's Ctrl-C reaches the workers too: the command says `interrupted` and
    exits 130, and no worker prints its own KeyboardInterrupt traceback.  A worker sends
    the signal to the group (its own session, so not this test run) on its second range.
    The workers ignore it (the sender and the other worker read their ranges to the end),
    the ranges not begun are dropped, and the ones begun are done before main() returns."""
    script, notes = tmp_path / "run.py", tmp_path / "notes"
    script.write_text(_GROUP_INTERRUPTED)
    notes.mkdir()
    r = subprocess.run([sys.executable, str(script), str(ALL), str(tmp_path / "taken"),
                        str(notes), str(tmp_path / "release"), str(tmp_path / "left.json")],
                       capture_output=True, text=True, timeout=300, start_new_session=True)
    assert (tmp_path / "taken").exists()
    assert (r.returncode, r.stderr) == (130, "fastcap: interrupted\n")
    left = json.loads((tmp_path / "left.json").read_text())
    begun = {int(n.split("-")[1]) for n in left["notes"] if n.startswith("begun-")}
    done = {int(n.split("-")[1]) for n in left["notes"] if n.startswith("done-")}
    assert {0, 1} <= begun and done == begun, left
    assert len(begun) < len(left["submitted"]), left


def test_one_job_pool_runs_everything_here():
    with PoolExecutor(1) as pool:
        assert pool.map(_square_and_pid, [3]) == [(9, os.getpid())]
        assert pool.get(pool.submit(_square_and_pid, 4)) == (16, os.getpid())


def test_serial_submit_runs_the_task_only_when_asked_for():
    calls = []
    ex = SerialExecutor()
    handle = ex.submit(calls.append, 1)
    assert calls == []
    ex.get(handle)
    assert calls == [1]


# -- rings --------------------------------------------------------------------------------------


def _counters(first, last):
    c = FrameCounters()
    c.first_ts_ns, c.last_ts_ns = first, last
    c.first_dated_ns, c.last_dated_ns = first, last  # what the ring rule reads
    return c


def test_follows_needs_a_start_at_or_after_the_end_and_within_the_gap():
    assert follows(100, 100) and follows(100, 100 + RING_GAP_NS)
    assert not follows(100, 99)  # overlaps
    assert not follows(100, 101 + RING_GAP_NS)  # too far apart
    assert not follows(None, 100) and not follows(100, None)


def test_runs_group_files_that_go_on_and_an_unreadable_file_breaks_the_run():
    s = 10**9
    totals = [_counters(0, 5 * s), _counters(6 * s, 9 * s), None, _counters(10 * s, 11 * s),
              _counters(12 * s, 13 * s), _counters(0, 1), _counters(None, None)]
    assert runs(totals) == [[0, 1], [3, 4], [5], [6]]
    breaks = RunBreaks()  # the same rule, one file at a time
    assert [breaks.goes_on(t) for t in totals] == [False, True, False, False, True, False,
                                                   False]


def test_numbered_on_counts_frames_on_and_merges_flow_ids():
    a = FlowKey(b"\0" * 16, 1, b"\1" * 16, 25)
    b = FlowKey(b"\2" * 16, 2, b"\1" * 16, 25)

    def part(frames, flows):
        n = len(frames)
        z = np.zeros(n, np.int64)
        return FrameCols(np.asarray(frames, np.int64), z, np.asarray(flows, np.int64), z, z, z,
                         z, z, z, z, z)

    whole = NumberedOn()
    whole.add_file("one")
    p1 = whole.add(part([1, 3], [0, 1]), 4, [a, b])  # part 1 uses frames 1..4
    whole.add_file("two")
    p2 = whole.add(part([2], [0]), 2, [b])  # its flow 0 is the first part's flow 1
    assert p1.frame_no.tolist() == [1, 3] and p2.frame_no.tolist() == [6]
    assert p1.flow.tolist() == [0, 1] and p2.flow.tolist() == [1]
    assert whole.flows.keys == [a, b] and whole.offsets == [0, 4] and whole.base == 6
    assert whole.paths == ["one", "two"]
    ids = FlowTable()  # the renumbering the byte ranges of one file get
    assert rings.renumbered(part([5], [0]), 10, ids.ids_for([b])).frame_no.tolist() == [15]


def test_file_starts_restart_numbers_in_each_file():
    starts = FileStarts()
    starts.end_file(2)  # file 0: sessions 0, 1
    starts.end_file(2)  # file 1: none
    assert [starts.place(i) for i in range(5)] == [(0, 1), (0, 2), (2, 1), (2, 2), (2, 3)]


def test_numbered_in_files_orders_by_first_frame_within_each_file():
    def s(first):  # a frozen Session: numbering makes new ones
        return Session(number=0, client="c", server="s", first_frame=first, last_frame=first,
                       first_ts_ns=0, last_ts_ns=0, frames=1, tcp=None, smtp=None, tls=None)

    found = [(1, s(7)), (0, s(9)), (0, s(2)), (1, s(3)), (2, s(1))]
    per_file = numbered_in_files(found, 4)
    assert [[(x.first_frame, x.number) for x in f] for f in per_file] == [
        [(2, 1), (9, 2)], [(3, 1), (7, 2)], [(1, 1)], []]


# -- in-order hand-on ---------------------------------------------------------------------------


def _numbers(order, numbers):
    return [t.number for n in numbers for t in order.push(SimpleNamespace(number=n))]


def test_in_order_gives_way_past_the_hold_cap():
    order = InOrder(2)
    assert _numbers(order, [3, 4]) == []
    assert _numbers(order, [5]) == [3, 4, 5]  # three wait: number 1 and 2 are given up
    assert _numbers(order, [1, 6]) == [1, 6] and order.out_of_order == 1


def test_in_order_without_giving_way_reports_full_and_keeps_order():
    order = InOrder(2, give_way=False)
    assert _numbers(order, [3, 4, 5]) == []
    assert order.full and len(order) == 3 and order.awaited == 1
    assert _numbers(order, [1]) == [1]
    assert _numbers(order, [2]) == [2, 3, 4, 5]
    assert not order.full and order.awaited == 6 and order.out_of_order == 0


# -- feeding ------------------------------------------------------------------------------------


def _cols_of(path):
    with Capture(str(path)) as cap:
        (task,) = ranges.plan(cap, 1, {25, 465, 587}, min_bytes=1)
    return ranges.merge_results([ranges.read_range(task)], 0)


def _fed_sessions(path, stitched):
    out, cols = [], stitched.cols
    with Reassembler(guarded_map(str(path))[0], stitched.flows,
                     server_ports={25, 465, 587}) as r:
        for done in feed.fed(r, cols):
            out += [(c.index, c.first_frame, c.last_frame, c.frames, c.c2s.data, c.s2c.data)
                    for c in done]
        out += [(c.index, c.first_frame, c.last_frame, c.frames, c.c2s.data, c.s2c.data)
                for c in r.drain()]
    return sorted(out)


def test_feeding_in_batches_does_not_change_the_connections(monkeypatch):
    stitched = _cols_of(ALL)
    cols = stitched.cols
    assert len(cols) > 50
    whole = _fed_sessions(ALL, stitched)
    batches = []
    real = Reassembler.feed_cols_iter
    monkeypatch.setattr(Reassembler, "feed_cols_iter",
                        lambda self, c: (batches.append(len(c)), real(self, c))[1])
    monkeypatch.setattr(feed, "FEED_ROWS", 7)
    assert _fed_sessions(ALL, stitched) == whole
    assert max(batches) == 7 and sum(batches) == len(cols)


def test_rows_and_concat_round_trip():
    cols = _cols_of(ALL).cols
    parts = [feed.rows(cols, slice(0, 5)), feed.rows(cols, np.arange(5, len(cols)))]
    back = feed.concat(parts)
    for f in FrameCols.__dataclass_fields__:
        assert np.array_equal(getattr(back, f), getattr(cols, f)), f
    assert len(feed.concat([])) == 0
