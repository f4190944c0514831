"""Short names for capture files: several files of one name (a ring buffer copied from two
hosts, `a/mail.pcap` and `b/mail.pcap`) must not read alike wherever a file is named by less
than its path, so each is named by its shortest trailing part no other file ends with."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable

__all__ = ["file_labels"]

_SEPARATORS = re.compile("|".join(re.escape(s) for s in {"/", os.sep, os.altsep or "/"}))


def file_labels(paths: Iterable[str]) -> dict[str, str]:
    """Each path's label: its file name when no other path has that name, else the fewest
    trailing folders with it that tell it apart (`one/mail.pcap`), else the whole path."""
    paths = list(dict.fromkeys(paths))
    starts = {p: [0] + [m.end() for m in _SEPARATORS.finditer(p)] for p in paths}

    def tail(p: str, depth: int) -> str:
        return p[starts[p][-depth]:] if depth <= len(starts[p]) else p

    out: dict[str, str] = {}
    left = [p for p in paths if tail(p, 1)]     # a path ending in a separator: in full
    depth = 1
    while left:
        taken = Counter(tail(p, depth) for p in paths)
        for p in left:
            if taken[tail(p, depth)] == 1 or depth >= len(starts[p]):
                out[p] = tail(p, depth)
        left = [p for p in left if p not in out]
        depth += 1
    return {p: out.get(p, p) for p in paths}
