"""Child process for compare.py: time fastcap stages in-process (after imports), print JSON.

Run as its own process so the parent can watch its private memory without counting its own.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from importlib import import_module


def _cpu() -> float:
    """User + system seconds of this process (all its threads) and of the worker processes
    it has reaped (-j N)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ru.ru_utime + ru.ru_stime


def reassemble(path: str, backend: str) -> dict[str, int]:
    """Walk, select and reassemble as a scan of a mapped file does, each batch's payloads
    copied out of the mapping before they are fed: every connection handed over by the
    reassembler, none of them read as SMTP."""
    from fastcap import Capture
    from fastcap.select.flows import FlowTable
    from fastcap.select.selection import FrameCounters, iter_selected
    from fastcap.tcp.reassembly import FrameCols, Reassembler

    try:
        from fastcap.tcp.feed import copied
    except ImportError:  # an older tree (compare.py --before), which fed from the mapping
        copied = None
    counters, flows, conns = FrameCounters(), FlowTable(), 0
    with Capture(path, backend=backend) as cap:
        with Reassembler(cap.buffer, flows, backend=backend) as reasm:
            for sel in iter_selected(cap, counters=counters, flows=flows):
                if copied is None:
                    conns += len(reasm.feed(sel))
                    continue
                for batch in copied(reasm, FrameCols.of(sel), cap.buffer,
                                    lambda _need: cap.cut_at()):
                    conns += sum(1 for _ in batch.done)
            conns += len(reasm.finish())
    return {"frames": counters.packets, "connections": conns}


def main() -> None:
    path, stage, backend = sys.argv[1], sys.argv[2], sys.argv[3]
    # Every import happens before the clock starts: these rows time the work, and the
    # "whole command" rows of compare.py time interpreter start and imports too.
    from fastcap import Capture
    from fastcap.cli import tune_allocator
    from fastcap.run.scanner import scan
    from fastcap.select.selection import FrameCounters
    from fastcap.select.stats import compute_stats
    from fastcap.session import iter_sessions  # with the modules `reassemble` imports

    # What a scan loads when its first certificate is checked (cryptography's X.509 code with
    # it), or when it is split among processes: imports too, once per process, so before the
    # clock with the others. The trust store's first load stays inside.
    for name in ("fastcap.judge.x509check", "fastcap.judge.anchorcache",
                 "fastcap.judge.cabundle", "fastcap.judge.issuer_evidence",
                 "cryptography.hazmat.backends.openssl"):
        try:
            import_module(name)
        except ModuleNotFoundError:  # an older tree (compare.py --before) without this one
            pass
    if stage.startswith("scan-j"):
        import_module("fastcap.run.streamed")

    tune_allocator()  # as the command line does (see its docstring)
    cpu0 = _cpu()
    t0 = time.perf_counter()
    if stage == "walk":
        frames = 0
        with Capture(path, backend=backend) as cap:
            for w in cap.windows():
                frames += len(w)
        result = {"frames": frames}
    elif stage == "select":
        s = compute_stats(path, backend=backend)
        result = {
            "frames": s.frames,
            "selected_frames": s.selected_frames,
            "selected_flows": s.selected_flows,
        }
    elif stage == "reassemble":
        result = reassemble(path, backend)
    elif stage == "scan":
        run = scan(path, backend=backend)
        sessions = sum(1 for _ in run)
        summary = run.summary
        result = {"frames": summary.frames, "scanned_sessions": sessions,
                  "with_problems": summary.with_problems}
    elif stage.startswith("scan-j"):  # the file split among N processes (-j N)
        run = scan(path, backend=backend, jobs=int(stage[6:]))
        sessions = sum(1 for _ in run)
        summary = run.summary
        result = {"frames": summary.frames, "scanned_sessions": sessions,
                  "with_problems": summary.with_problems}
    elif stage == "sessions":
        counters = FrameCounters()
        sessions = tls = 0
        for sess in iter_sessions(path, backend=backend, counters=counters):
            sessions += 1
            tls += sess.tls is not None
        result = {"frames": counters.packets, "sessions": sessions, "tls_sessions": tls}
    else:
        raise SystemExit(f"unknown stage {stage}")
    result["seconds"] = time.perf_counter() - t0
    result["cpu_seconds"] = _cpu() - cpu0
    print(json.dumps(result))


if __name__ == "__main__":
    main()
