"""Child process for compare.py: time fastcap stages in-process (after imports), print JSON.

Run as its own process so the parent can watch its private memory without counting its own.
"""

from __future__ import annotations

import json
import sys
import time


def main() -> None:
    path, stage, backend = sys.argv[1], sys.argv[2], sys.argv[3]
    from fastcap import Capture
    from fastcap.stats import compute_stats

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
    else:
        raise SystemExit(f"unknown stage {stage}")
    result["seconds"] = time.perf_counter() - t0
    print(json.dumps(result))


if __name__ == "__main__":
    main()
