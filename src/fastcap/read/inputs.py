"""Turn command-line arguments into capture files: plain paths, directories of ring-buffer
files (`dumpcap -b filesize:...`) and glob patterns, the latter two ordered by first packet time
so a capture split over many files reads in the order it was taken."""

from __future__ import annotations

import os
from collections.abc import Iterable

from ..errors import FastcapError
from .capture import sniff_format
from .stream import StreamCapture, compression_of, open_capture

_GLOB_CHARS = frozenset("*?[")


def first_timestamp(path: str) -> int | None:
    """ns of the first packet, or None when there is none or the file is not a capture."""
    try:
        with open_capture(path, window=1) as cap:
            for w in cap.windows():
                return int(w.ts_ns[0]) if len(w) else None
    except FastcapError:
        return None
    return None


def _why_not_a_capture(path: str) -> str | None:
    """None for a pcap or pcapng file, also when compressed (dumpcap ring buffers are often
    gzipped after rotation); else why it is skipped."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
        if compression_of(head) is None:
            sniff_format(path, head)
            return None
        with StreamCapture(path):
            return None
    except OSError as e:
        return f"cannot read: {e.strerror or e}"
    except FastcapError:
        return "not a pcap or pcapng file"


def _in_time_order(paths: Iterable[str]) -> list[str]:
    """By first packet time, then name; files without packets go last, by name."""
    keyed = [(first_timestamp(p), p) for p in paths]
    return [p for _t, p in sorted(keyed, key=lambda k: (k[0] is None, k[0] or 0, k[1]))]


def expand_inputs(args: Iterable[str]) -> tuple[list[str], list[str], list[str]]:
    """(files to read, warnings, errors).

    A directory contributes its regular files that are captures, by magic (other files are
    a warning); a pattern that is not itself a file name contributes its matches.  Both come
    in first-packet order.  Anything else is passed through untouched, so a missing or
    unreadable path gets its own error from the reader.  A directory without captures or a
    pattern without matches is an error."""
    files: list[str] = []
    warnings: list[str] = []
    errors: list[str] = []
    for arg in args:
        if os.path.isdir(arg):
            try:
                names = os.listdir(arg)
            except OSError as e:
                errors.append(f"{arg}: cannot list the directory: {e.strerror or e}")
                continue
            regular = [p for p in sorted(os.path.join(arg, n) for n in names)
                       if os.path.isfile(p)]
            why = {p: _why_not_a_capture(p) for p in regular}
            found = [p for p in regular if why[p] is None]
            warnings += [f"{p}: {why[p]}; skipped" for p in regular if why[p] is not None]
            if not found:
                errors.append(f"{arg}: directory holds no pcap or pcapng files")
            files += _in_time_order(found)
        elif not os.path.exists(arg) and _GLOB_CHARS & set(arg):
            import glob  # patterns are rare: not loaded for plain paths

            matches = sorted(p for p in glob.glob(arg) if os.path.isfile(p))
            if not matches:
                errors.append(f"{arg}: no file matches this pattern")
            files += _in_time_order(matches)
        else:
            files.append(arg)
    return files, warnings, errors
