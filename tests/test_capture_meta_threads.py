"""`Capture.meta` asked from one thread while another walks the capture: the snapshot is
of the tally as a window left it, never of one half updated (a warning told but its
unreadable range and skip count not yet, or the reverse), and building it never meets a
count being added."""

from __future__ import annotations

import sys
import threading

from fastcap.read.capture import Capture

from .test_resync import _epb, _written, block_offsets

_BLOCKS = 2000
_EVERY = 10  # one damaged block in so many: a resync, its warning, range and count


def _damaged(path) -> int:
    """A pcapng of `_BLOCKS` packets, every `_EVERY`th with a trailing length that does not
    match its leading one; returns how many are damaged."""
    raw = bytearray(_written(*(_epb(b"x" * 40, i + 1) for i in range(_BLOCKS))))
    damaged = 0
    for k, (at, blen) in enumerate(block_offsets(bytes(raw))[2:]):
        if k % _EVERY == 0:
            raw[at + blen - 4 : at + blen] = (blen + 4).to_bytes(4, "little")
            damaged += 1
    path.write_bytes(bytes(raw))
    return damaged


def _torn(meta) -> bool:
    """Whether a snapshot mixes states: each damaged block tells one warning, one unreadable
    range and one count, together."""
    return not len(meta.warnings) == len(meta.unreadable) == meta.skipped.get("corrupt block", 0)


def test_meta_asked_while_another_thread_walks_is_never_torn(tmp_path, backend):
    path = tmp_path / "damaged.pcapng"
    damaged = _damaged(path)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # the threads switch often, mid-update if they can
    try:
        for _ in range(2):
            torn, failed = [], []
            with Capture(path, backend=backend, window=16) as cap:
                done = threading.Event()

                def walk(cap=cap, done=done, failed=failed):
                    try:
                        for _ in cap.windows():
                            pass
                    except BaseException as e:  # noqa: BLE001 - asserted below
                        failed.append(e)
                    finally:
                        done.set()

                walker = threading.Thread(target=walk)
                walker.start()
                asked = 0
                while not done.is_set():
                    meta = cap.meta
                    asked += 1
                    if _torn(meta):
                        torn.append((len(meta.warnings), len(meta.unreadable),
                                     meta.skipped.get("corrupt block", 0)))
                walker.join()
                last = cap.meta
            assert failed == [] and asked > 0
            assert torn == []
            assert len(last.unreadable) == damaged and not _torn(last)
    finally:
        sys.setswitchinterval(interval)
