"""Generated test captures: background traffic with SMTP sessions (benchmarks/gen_capture.py)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def generate(directory: Path, *, size: str, sessions: int, seed: int) -> dict[str, Path]:
    """The same traffic as pcap and as pcapng: {"pcap": path, "pcapng": path}.  Both are
    written as of one instant, so they start at the same time: a pcapng written after the
    pcap's last frame time would otherwise read, in one command, as the next file of a ring."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    out = {}
    for fmt in ("pcap", "pcapng"):
        p = directory / f"g.{fmt}"
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gen_capture.py"), str(p),
                        "--size", size, "--smtp-sessions", str(sessions), "--seed", str(seed),
                        "--format", fmt, "--now", now], check=True, capture_output=True)
        out[fmt] = p
    return out
