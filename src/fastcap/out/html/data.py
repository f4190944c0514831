"""The page data of the HTML report: every session, its ladder and its certificates as
compact JSON that the page's script renders on demand.

Strings are interned in one table (`strings`) and a session is one array (`columns` names
its slots), so 100,000 sessions whose servers, names and certificates repeat stay small:
certificates are kept once by SHA-1, chain verdicts once per distinct verdict."""

from __future__ import annotations

import datetime as dt
import itertools
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...run.frameruns import FrameRuns
from ...session import Session
from ...verdict import CertInfo, ChainCheck
from ..filelabels import file_labels
from ..report import client_cert_text
from ..textsafe import printable
from .ladder import ladder

__all__ = ["COLUMNS", "KINDS", "ScanFacts", "decode_sessions", "frames_wanted", "page_data",
           "plain_rows", "unnamed_texts"]

COLUMNS = ("file", "number", "client", "server", "ehlo", "tls", "cert", "verdicts",
           "start_us", "first_frame", "last_frame", "ladder", "client_chain", "server_chain",
           "logs", "frames", "beyond")
# `frames`: the frames of a session's connection that neither its ladder nor its first and
# last frame name (ACKs, data segments), so that "frame N" finds their session too; null
# where they were not read.  Each is written as its distance from the one before it (the
# first from the first frame): d - 1 in digits of DIGITS, high ones first, the last one from
# its first half; a string of two characters or so a frame where numbers cost five.
# `beyond`: the ICMP errors quoting its connection before its first or after its last frame
# (in tshark's stream too), as frame numbers; null where there are none or were not read.
DIGITS = "".join(c for c in map(chr, range(0x20, 0x7F)) if c not in '"\\<>&')
_HALF = len(DIGITS) // 2
_FIRST, _LAST, _LADDER, _FRAMES = (COLUMNS.index(c) for c in (
    "first_frame", "last_frame", "ladder", "frames"))
# A ladder is flat: per arrow, its frame minus the session's first frame, microseconds since
# the session's first frame (null: unknown), a code (dir | kind << 1 | bad << 3), the label.
KINDS = ("smtp", "tls", "alert", "log")
TIMELINE_BINS = 48
TIMELINE_CODES = 6  # the most frequent verdicts get a colour each; the rest are "other"
_PROBLEM = frozenset({"error", "warning"})


@dataclass(frozen=True, slots=True)
class ScanFacts:
    """What the header says about the scan itself (the CLI measures it)."""

    seconds: float | None = None
    version: str = ""


class _Strings:
    """Interning table: each distinct string once, referred to by index."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.items: list[str] = []

    def __call__(self, text: str | None) -> int | None:
        if text is None:
            return None
        i = self.index.get(text)
        if i is None:
            i = self.index[text] = len(self.items)
            self.items.append(text)
        return i


def frames_wanted(sessions: Iterable[Session]) -> set[int]:
    """The frames whose times the ladders of `sessions` need."""
    return {a.frame for s in sessions for a in ladder(s)}


def _cert(c: CertInfo) -> dict[str, Any]:
    def text(x: str | None) -> str | None:
        return None if x is None else printable(x)

    return {
        "sha1": c.sha1, "sha256": c.sha256, "subject": text(c.subject),
        "issuer": text(c.issuer),
        "san": [printable(n) for n in (*c.san_dns, *c.san_ip, *c.san_other)],
        "not_before": c.not_before.isoformat() if c.not_before else None,
        "not_after": c.not_after.isoformat() if c.not_after else None,
        "serial": c.serial, "key": f"{c.key_type or '?'} {c.key_bits or ''}".strip(),
        "signature": c.signature_algorithm,
        "eku": None if c.ext_key_usage is None else list(c.ext_key_usage),
        "self_signed": c.self_signed, "parse_error": text(c.parse_error),
    }


def _chain(check: ChainCheck) -> dict[str, Any]:
    return {
        "role": check.role, "certs": [c.sha1 for c in check.certs],
        "trusted": check.trusted, "problem": check.problem, "detail": printable(check.detail),
        "valid_at_capture": check.leaf_valid_at_capture, "valid_today": check.leaf_valid_today,
        "path_valid": check.path_valid,
        "path_error": None if check.path_error is None else printable(check.path_error),
        # every [error, depth] OpenSSL printed, in its order; only where there are several
        # (one is path_error), so a page of many chains stays small
        **({"path_errors": [[printable(e), d] for e, d in check.path_errors]}
           if len(check.path_errors) > 1 else {}),
        "expected_name": None if check.expected_name is None else printable(check.expected_name),
        "name_matches": check.name_matches, "eku_ok": check.eku_ok,
        "profile_notes": [printable(n) for n in check.profile_notes],
    }


def _logs(matches: list, strings: _Strings) -> list[int | float | None]:
    """The log conversations joined to a session (with --evidence), flat: kind, log file,
    first line, and how far its start lay from the session's, in seconds."""
    flat: list[int | float | None] = []
    for m in matches:
        c = m.conversation
        flat += [strings(printable(c.kind)), strings(printable(str(c.file))), c.first.line,
                 round(m.delta_ns / 1e9, 6)]
    return flat


def _tls_text(s: Session) -> str:
    t, smtp = s.tls, s.smtp
    if t is not None:
        return t.version_name or "?"
    return "no TLS" if smtp and smtp.banner_code else "-"


def _primary(s: Session) -> str:
    """The code a session is counted under in the timeline: its most severe problem."""
    for v in s.verdicts:
        if v.severity in _PROBLEM:
            return v.code
    return "ok"


def _timeline(starts: Sequence[tuple[int, str]], undated: int = 0) -> dict[str, Any]:
    """Sessions per verdict in equal time bins, the few commonest verdicts named; `undated`
    counts the sessions without a time, which no bin can hold."""
    if not starts:
        return {"t0_ns": None, "bin_ns": 0, "codes": [], "bins": [], "undated": undated}
    totals: dict[str, int] = {}
    for _, code in starts:
        totals[code] = totals.get(code, 0) + 1
    ranked = sorted(totals, key=lambda c: (-totals[c], c))
    named = ranked[:TIMELINE_CODES]
    codes = named + (["other"] if len(ranked) > len(named) else [])
    slot = {c: i for i, c in enumerate(named)}
    other = len(named)
    t0 = min(t for t, _ in starts)
    span = max(t for t, _ in starts) - t0
    width = max(1, -(-(span + 1) // TIMELINE_BINS))
    bins = [[0] * len(codes) for _ in range(TIMELINE_BINS)]
    for t, code in starts:
        bins[(t - t0) // width][slot.get(code, other)] += 1
    return {"t0_ns": t0, "bin_ns": width, "codes": codes, "bins": bins, "undated": undated}


def _problem(p: Mapping[str, Any], several: bool = False,
             labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A triage group as the page shows it: its packet strings made safe, its samples as
    [file, session number, label, accessible name] naming files as the session table does
    (by `labels`, enough of each path to tell files of one name apart);
    with several files each file numbers its sessions from 1, so a label names its file (as
    the triage text does) where the file changes.  A label alone ("#8") tells a screen
    reader nothing: the accessible name says what the button does, names the file whenever
    there are several, and holds the label (WCAG 2.5.3)."""
    out = {k: printable(v) if isinstance(v, str) else v for k, v in p.items()}
    for k in ("first_ts_ns", "last_ts_ns"):  # 0: none of the group's sessions has a time
        out[k] = p.get(k) or None
    out["samples"], before = [], None
    for x in p.get("samples", ()):
        path = printable(str(x["file"]))
        label = f"#{x['session']}"
        short = (labels or {}).get(str(x["file"])) or os.path.basename(str(x["file"]))
        named = f"{printable(short)} {label}" if several else label
        if several and path != before:
            label = named
        out["samples"].append([path, x["session"], label, f"open session {named}"])
        before = path
    return out


def page_data(results: Iterable[tuple[str, Sequence[Session], object]], *,
              problems: Sequence[Mapping[str, Any]] = (),
              times: Mapping[str, Mapping[int, int]] | None = None,
              scan: ScanFacts = ScanFacts(),
              errors: Sequence[Mapping[str, Any]] = (),
              spans: Mapping[str, tuple[int, int]] | None = None,
              runs: Mapping[str, Sequence[list[int] | None]] | None = None
              ) -> dict[str, Any]:
    """Everything the page shows, as JSON-ready data.

    `results` is the scan's (path, sessions, summary) per file; `times` maps a file to the
    capture times of the frames its ladders name (`frames_wanted`; a missing time shows as
    unknown); `problems` are the triage groups as dicts; `errors` the inputs that could not
    be read ({"path", "error"}, as the JSON's), so that the page never passes over them;
    `spans` a file's (first, last) session time over all the sessions the scan counted, for
    a file of which only some are shown (--only-problems); by default those of `results`;
    `runs` a file's sessions' frames as `run.frameruns.frame_runs` gives them, in order
    (a session's None, or a file's none: not read, "frame N" finds only the frames its
    ladder names)."""
    strings = _Strings()
    certs: dict[str, dict[str, Any]] = {}
    chains: list[dict[str, Any]] = []
    chain_index: dict[ChainCheck, int] = {}
    verdicts: dict[str, dict[str, str]] = {}  # code -> its severity
    files: list[dict[str, Any]] = []
    rows: list[list[Any]] = []
    starts: list[tuple[int, str]] = []
    undated = 0
    results = [(p, list(ss), summ) for p, ss, summ in results]
    labels = file_labels([str(p) for p, _, _ in results])
    # a first_ts_ns of 0: no frame of the session has a time (Simple Packet Blocks, zeroed
    # timestamps); such a session dates nothing, neither its file nor the chart
    t_all = [s.first_ts_ns for _, ss, _ in results for s in ss if s.first_ts_ns]
    t0 = min(t_all) if t_all else 0

    def chain_of(check: ChainCheck | None) -> int | None:
        if check is None:
            return None
        i = chain_index.get(check)
        if i is None:
            i = chain_index[check] = len(chains)
            chains.append(_chain(check))
            for c in check.certs:
                if c.sha1 not in certs:
                    certs[c.sha1] = _cert(c)
        return i

    for fi, (path, sessions, summary) in enumerate(results):
        file_times = (times or {}).get(path, {})
        file_runs = (runs or {}).get(path)
        try:
            size = os.path.getsize(path)
        except OSError:
            size = None
        # the file's sessions as the scan counted them; "shown" fewer with --only-problems
        counted = getattr(summary, "sessions", None)
        span = (spans or {}).get(path) or (
            min((s.first_ts_ns for s in sessions if s.first_ts_ns), default=None),
            max((s.last_ts_ns for s in sessions if s.first_ts_ns), default=None))
        files.append({"path": printable(str(path)), "label": printable(labels[str(path)]),
                      "size": size,
                      "frames": getattr(summary, "frames", None),
                      "sessions": counted if isinstance(counted, int) else len(sessions),
                      "shown": len(sessions), "first_ts_ns": span[0], "last_ts_ns": span[1]})
        base = len(rows)
        for si, s in enumerate(sessions):
            flat: list[int | None] = []
            for a in ladder(s):
                t = file_times.get(a.frame)
                flat += [a.frame - s.first_frame,
                         None if t is None else (t - s.first_ts_ns) // 1000,
                         (a.direction == "s2c") | KINDS.index(a.kind) << 1 | a.bad << 3,
                         strings(a.label)]
            vs = []
            for v in s.verdicts:
                verdicts.setdefault(v.code, {"severity": v.severity})
                vs += [strings(v.code), strings(printable(v.message)), v.frame,
                       strings(printable(v.hint))]
            smtp = s.smtp
            rows.append([fi, s.number, strings(s.client), strings(s.server),
                         strings(printable(smtp.ehlo_name)) if smtp and smtp.ehlo_name else None,
                         strings(_tls_text(s)), strings(client_cert_text(s)), vs,
                         (s.first_ts_ns - t0) // 1000 if s.first_ts_ns else None,
                         s.first_frame, s.last_frame, flat,
                         chain_of(s.client_check), chain_of(s.server_check),
                         None if s.evidence is None else _logs(s.evidence, strings),
                         None,  # `frames`: below, the file's at once
                         (file_runs.beyond(si) or None) if isinstance(file_runs, FrameRuns)
                         else None])
            if s.first_ts_ns:
                starts.append((s.first_ts_ns, _primary(s)))
            else:
                undated += 1
        if file_runs is not None:
            texts = unnamed_texts([r[_FIRST] for r in rows[base:]],
                                  [r[_LAST] for r in rows[base:]],
                                  [r[_LADDER] for r in rows[base:]], file_runs)
            for row, text in zip(rows[base:], texts, strict=True):
                row[_FRAMES] = text
    return {
        "fastcap_version": scan.version,
        "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "scan_seconds": scan.seconds,
        "t0_ns": t0,
        "files": files,
        "errors": [{"path": printable(str(e.get("path", ""))),
                    "error": printable(str(e.get("error", "")))} for e in errors],
        "problems": [_problem(p, len(results) > 1, labels) for p in problems],
        "with_problems": sum(_primary(s) != "ok" for _, ss, _ in results for s in ss),
        "timeline": _timeline(starts, undated),
        "verdicts": verdicts,
        "columns": list(COLUMNS),
        "kinds": list(KINDS),
        "frame_digits": DIGITS,
        "strings": strings.items,
        "certs": certs,
        "chains": chains,
        "sessions": rows,
    }


def decode_sessions(page: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The page's sessions as plain dicts (what the page's script reads from each array):
    for tests and for anyone reading the embedded data without a browser."""
    S = page["strings"]

    def s(i: int | None) -> str | None:
        return None if i is None else S[i]

    out = []
    for row in page["sessions"]:
        r = dict(zip(page["columns"], row, strict=True))
        flat = r["ladder"]
        arrows = [{"frame": r["first_frame"] + flat[i], "t_us": flat[i + 1],
                   "dir": "s2c" if flat[i + 2] & 1 else "c2s",
                   "kind": page["kinds"][flat[i + 2] >> 1 & 3], "bad": bool(flat[i + 2] & 8),
                   "label": S[flat[i + 3]]} for i in range(0, len(flat), 4)]
        vs = r["verdicts"]
        out.append({
            "file": page["files"][r["file"]]["path"], "number": r["number"],
            "client": s(r["client"]), "server": s(r["server"]), "ehlo": s(r["ehlo"]),
            "tls": s(r["tls"]), "cert": s(r["cert"]),
            "verdicts": [{"code": S[vs[i]], "message": S[vs[i + 1]], "frame": vs[i + 2],
                          "hint": S[vs[i + 3]]} for i in range(0, len(vs), 4)],
            "start_us": r["start_us"], "first_frame": r["first_frame"],
            "last_frame": r["last_frame"], "ladder": arrows,
            "client_chain": r["client_chain"], "server_chain": r["server_chain"],
            "frames": _frames(r["first_frame"], r["last_frame"], flat, r["frames"],
                              r["beyond"]),
            "logs": None if r["logs"] is None else [
                {"kind": S[r["logs"][i]], "file": S[r["logs"][i + 1]],
                 "line": r["logs"][i + 2], "delta_s": r["logs"][i + 3]}
                for i in range(0, len(r["logs"]), 4)]})
    return out


def _named(first: int, last: int, flat: Sequence[int | None]) -> list[int]:
    """The frames of a session the page names anyway: its arrows', its first and last."""
    return sorted({first, last, *(first + flat[k] for k in range(0, len(flat), 4))})


def _as_flat(runs: Sequence[list[int] | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(known, start, items) of `runs`, as `FrameRuns` holds them, from any sequence."""
    if isinstance(runs, FrameRuns):
        return runs.known, runs.start, np.asarray(runs.items, np.int64)
    known = np.array([r is not None for r in runs], bool)
    size = np.array([len(r or ()) for r in runs], np.int64)
    start = np.zeros(len(runs) + 1, np.int64)
    np.cumsum(size, out=start[1:])
    items = np.fromiter(itertools.chain.from_iterable(r or () for r in runs), np.int64,
                        int(start[-1]))
    return known, start, items


def unnamed_texts(first: Sequence[int], last: Sequence[int],
                  ladders: Sequence[Sequence[int | None]],
                  runs: Sequence[list[int] | None], chunk: int = 4096) -> list[str | None]:
    """`frames` of each session of a file (first frame, last frame, flat ladder) whose
    connection's frames in its span are `runs` (as `run.frameruns.frame_runs` gives them:
    [] all of it, None not read).  Whole-array steps over every frame of the file's
    sessions, a Python step only per session: a relay's millions of frames would cost
    seconds one by one; `chunk` sessions at a time, so that the arrays stay a few
    megabytes whatever the file's size."""
    known, start, items = _as_flat(runs)
    out: list[str | None] = []
    for a in range(0, len(first), chunk):
        b = min(a + chunk, len(first))
        out += _texts(np.array(first[a:b], np.int64), np.array(last[a:b], np.int64),
                      ladders[a:b], known[a:b], start[a:b + 1] - start[a],
                      items[start[a]:start[b]])
    return out


def _texts(first_a: np.ndarray, last_a: np.ndarray, ladders: Sequence[Sequence[int | None]],
           known: np.ndarray, start: np.ndarray, items: np.ndarray) -> list[str | None]:
    """`unnamed_texts` of some sessions, their runs as `FrameRuns` holds them."""
    n = len(first_a)
    # a session known without items is one run, its whole span: given it as its item, all
    # runs are in order of session and, within one, of frame
    whole = known & (np.diff(start) == 0)
    size = np.where(whole, 1, np.diff(start))
    at = np.zeros(n + 1, np.int64)
    np.cumsum(size, out=at[1:])
    seg = np.repeat(np.arange(n), size)
    spans = np.zeros(int(at[-1]), np.int64)
    spans[at[:-1][whole]] = (last_a - first_a + 1)[whole]
    spans[np.flatnonzero(~whole[seg])] = items
    done = np.cumsum(spans) - spans  # the items before each, over all sessions
    place = done - done[at[seg]]  # ... and within its session: its place in the span
    even = (np.arange(len(spans)) - at[:-1][seg]) % 2 == 0
    run_s, run_n = seg[even], spans[even]
    run_at = first_a[run_s] + place[even]
    total = int(run_n.sum())
    sess = np.repeat(run_s, run_n)
    frame = np.arange(total, dtype=np.int64) + np.repeat(run_at - (np.cumsum(run_n) - run_n),
                                                         run_n)
    # drop the frames the page names anyway: first, last, every arrow's
    arrows = np.fromiter(map(len, ladders), np.int64, n) // 4
    offset = np.fromiter(itertools.chain.from_iterable(fl[0::4] for fl in ladders), np.int64,
                         int(arrows.sum()))
    every = np.arange(n, dtype=np.int64)
    nkey = np.sort(np.concatenate([every << 40 | first_a, every << 40 | last_a,
                                   np.repeat(every << 40 | first_a, arrows) + offset]))
    key = sess << 40 | frame
    hit = nkey[np.minimum(np.searchsorted(nkey, key), len(nkey) - 1)] == key
    sess, frame = sess[~hit], frame[~hit]
    # each as its distance from the one before (the first from the session's first frame)
    before = np.empty_like(frame)
    before[1:] = frame[:-1]
    lead = np.r_[True, sess[1:] != sess[:-1]] if len(sess) else np.zeros(0, bool)
    before[lead] = first_a[sess[lead]]
    value = frame - before - 1
    ndig = np.ones(len(value), np.int64)
    v = value // _HALF
    while v.any():
        ndig += v > 0
        v //= _HALF
    end = np.cumsum(ndig) - 1  # where each value's last digit goes
    lut = np.frombuffer(DIGITS.encode("ascii"), np.uint8)
    chars = np.empty(int(ndig.sum()), np.uint8)
    chars[end] = lut[value % _HALF]
    v, j = value // _HALF, 1
    while v.any():
        m = v > 0
        chars[end[m] - j] = lut[_HALF + v[m] % _HALF]
        v //= _HALF
        j += 1
    text = chars.tobytes().decode("ascii")
    cut = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(sess, weights=ndig, minlength=n).astype(np.int64), out=cut[1:])
    return [text[cut[i]:cut[i + 1]] if known[i] else None for i in range(n)]


def _frames(first: int, last: int, flat: Sequence[int | None],
            text: str | None, beyond: Sequence[int] | None = None) -> list[int] | None:
    """All of a session's frames from its `frames` text and its `beyond` frames (as the
    page's script reads them)."""
    if text is None:
        return None
    out, before, v = _named(first, last, flat) + list(beyond or ()), first, 0
    for ch in text:
        k = DIGITS.index(ch)
        v = v * _HALF + k % _HALF
        if k < _HALF:
            before, v = before + v + 1, 0
            out.append(before)
    return sorted(out)


def plain_rows(page: Mapping[str, Any], limit: int) -> list[dict[str, Any]]:
    """The first `limit` sessions as the table's cells, for the page without its script
    (which would draw them from the data): text only, no ladder."""
    S, C = page["strings"], {name: i for i, name in enumerate(page["columns"])}

    def s(i: int | None) -> str:
        return "" if i is None else S[i]

    out = []
    for row in page["sessions"][:limit]:
        codes = [S[i] for i in row[C["verdicts"]][::4]]
        out.append({"file": page["files"][row[C["file"]]]["path"], "number": row[C["number"]],
                    "client": s(row[C["client"]]), "server": s(row[C["server"]]),
                    "ehlo": s(row[C["ehlo"]]) or "-", "tls": s(row[C["tls"]]),
                    "cert": s(row[C["cert"]]), "verdicts": ", ".join(codes),
                    "problem": any(page["verdicts"][c]["severity"] in _PROBLEM
                                   for c in codes)})
    return out
