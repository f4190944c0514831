"""Side-by-side throughput and private memory of fastcap and the usual tools, in one run.

    python benchmarks/compare.py FILE [--repeat 5] [--slow-repeat 1] [--jobs N]
                                 [--small FILE | --small-size 50M] [--tshark-small]
                                 [--skip KEY,...] [--json OUT] [--keep-cache|--cold]
                                 [--before DIR]

One table, every row measured in the same run:

- fastcap: the in-process stage rows (walk, select, reassembly, sessions, scan; timed after
  imports), `fastcap stats`, and `fastcap scan` as a whole command with `-j 1` (the baseline
  of the "x fastcap" column) and `-j N` (N = CPU count unless --jobs), on FILE, on the other
  container format of the same capture (FILE's sibling X.pcapng / X.pcap, made with
  `editcap -F` when missing) and on FILE.gz (made with `gzip -1 -k`, or Python's gzip, when
  missing or older than FILE);
- the usual tools: `cat F > /dev/null`, tcpdump's BPF prefilter alone, the expert pipeline
  `tcpdump -r F -w - 'tcp port 25' | tshark -r - -Y 'tls.handshake.type==11'`, tshark alone
  (slow: --slow-repeat runs on FILE, or with --tshark-small on the small cut, scaled), and
  dpkt and scapy loops (pure Python: measured on the small cut -- FILE's first --small-size
  bytes, cut at a record boundary and cached next to FILE, or --small -- and scaled to FILE's
  size; scapy runs --slow-repeat times).

Rows on FILE.fresh.pcap (a copy of FILE written anew before the runs) measure the page cache
as the write path lays it out, which makes an mmap walk's page faults dearer than after a read
back; skip them with --skip fresh.  Two "two files" rows scan FILE and that copy in one
command, with `-j 1` and `-j N` (several captures at once; the copy's frames overlap FILE's
in time, so each file is a run of its own); skip them with --skip files.  A final table
holds the speed goals, each a ratio of two rows' medians of this run.

Every file a row reads is dropped from the page cache and read back once with `cat` (pass
--keep-cache to measure the cache as it is, --cold to drop it before every run); then the
contenders run round-robin, `--repeat` times each unless the note says otherwise.  The table
gives the median, GB/s, "x fastcap" (the median of `fastcap scan -j 1` on FILE divided by the
row's: same traffic, so a ratio of speeds), peak private memory (RssAnon summed over the
command's processes -- pipeline stages, worker processes -- sampled every 2 ms: RSS would count
the file's mapped page cache) and a note.  A contender whose tool is missing says "not
installed"; one that exits with an error says "failed: <first line of its stderr>" and the run
goes on.  fastcap rows check frame, selection and session counts against each other; a
disagreement is marked WRONG in the note and makes the exit status 1, so a fast wrong answer
fails loudly.

A "start-up" row times the same whole command on the 26-frame example capture
(examples/exchange-online-no-client-cert.pcap): interpreter start, imports and the fixed cost
of judging (the trust store), nearly nothing else.  A "floor" row times the interpreter
importing only numpy and cryptography's X.509 module, which any scan of a capture holding a
certificate needs: the start-up target's ratio for that row alone is printed beside it.

--before DIR measures an older source tree of fastcap in the same run, e.g. a
`git worktree add --detach DIR <commit>` with its C module built (`python
csrc/build_native.py` there, then copy the .so into DIR/src/fastcap/).  Every fastcap row that
has a counterpart there (the in-process stage rows, through DIR's own
benchmarks/_fastcap_stage.py; `fastcap stats`; `fastcap scan -j 1`; start-up) gets a twin row
"[before]" run with PYTHONPATH=DIR/src, right after its own row and in alternating order
(now, before; then before, now), while the rows of this tree run with PYTHONPATH=<this
tree>/src.  A second table gives each pair's medians and now / before: before and after, on the
same file, in one run.  A before row whose answers differ from its twin's says so in its note
(without failing: the old tree may count differently on purpose).
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from gen_capture import parse_size  # this folder is on sys.path when run as a script

HERE = Path(__file__).resolve().parent
PY = sys.executable
STAGES = (
    ("walk", "fastcap walk (C), in-process"),
    ("select", "fastcap walk+decode+select (C), in-process"),
    ("reassemble", "fastcap + TCP reassembly (C), in-process"),
    ("sessions", "fastcap + reassembly, SMTP, TLS (C), in-process"),
    ("scan", "fastcap scan: + certificates, verdicts, in-proc."),
)
PCAP_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4",  # microseconds, LE / BE
               b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")  # nanoseconds
CHECKED = {"frames": "frames", "selected_frames": "selected_frames",
           "selected_flows": "selected_flows", "sessions": "sessions",
           "scanned_sessions": "sessions"}
SKIP_KEYS = ("cat", "tcpdump", "pipeline", "tshark", "dpkt", "scapy", "stages", "stats",
             "scan-jN", "other-format", "gz", "startup", "floor", "fresh", "files")
STARTUP_CAPTURE = HERE.parent / "examples" / "exchange-online-no-client-cert.pcap"
# Start-up's floor: the imports any scan needs, with numpy's BLAS threads left unstarted as
# the command line leaves them (fastcap.cli.single_threaded_blas).
FLOOR = [PY, "-c", "import os; os.environ.setdefault('OPENBLAS_NUM_THREADS', '1'); "
                   "import numpy, cryptography.x509"]
BEFORE = " [before]"


# --- running a command and watching its private memory -------------------------------------

def _rss_anon_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(roots: list[int]) -> set[int]:
    """The roots and every process below them (worker processes of `fastcap scan -j N`)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                ppid = int(fh.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(roots), list(roots)
    while todo:
        for kid in children.get(todo.pop(), ()):
            if kid not in found:
                found.add(kid)
                todo.append(kid)
    return found


@dataclass
class Result:
    wall: float
    peak_kb: int
    out: str
    error: str | None  # None, or the first line of the failing command's stderr
    cpu: float = 0.0  # user + system seconds of all its processes (threads and workers too)


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_pipeline(cmds: list[list[str]], capture: bool = False,
                 env: dict[str, str] | None = None) -> Result:
    """Run `cmds` as a pipeline (cmd1 | cmd2 | ...), the last one's stdout to /dev/null or,
    when `capture`, returned.  Wall seconds until the last process ends, the peak of the
    RssAnon summed over all its processes and their children, and an error when a process
    exits with a status other than 0 or 1 (fastcap's "problems found") -- a SIGPIPE of a
    stage whose reader had finished does not count.  `env`: the processes' environment
    (default: this one's)."""
    with tempfile.TemporaryDirectory(prefix="fastcap-bench-") as tmp:
        errs = [open(os.path.join(tmp, f"err{i}"), "w+b") for i in range(len(cmds))]
        out = open(os.path.join(tmp, "out"), "w+b") if capture else subprocess.DEVNULL
        procs: list[subprocess.Popen] = []
        try:
            cpu0 = _children_cpu()
            t0 = time.perf_counter()
            try:
                for i, cmd in enumerate(cmds):
                    last = i == len(cmds) - 1
                    procs.append(subprocess.Popen(
                        cmd, stdin=procs[-1].stdout if procs else subprocess.DEVNULL,
                        stdout=out if last else subprocess.PIPE, stderr=errs[i], env=env))
                    if i:
                        procs[-2].stdout.close()  # the next stage owns the pipe now
            except OSError as e:
                for p in procs:
                    p.kill()
                    p.wait()
                return Result(0.0, 0, "", f"{cmd[0]}: {e.strerror or e}")
            roots = [p.pid for p in procs]
            pids, peak, n = set(roots), 0, 0
            while any(p.poll() is None for p in procs):
                if n % 10 == 0:  # children come and go rarely: look for them every ~25 ms
                    pids = _descendants(roots)
                peak = max(peak, sum(_rss_anon_kb(pid) for pid in pids))
                n += 1
                time.sleep(0.002)
            wall = time.perf_counter() - t0
            for p in procs:
                p.wait()  # reaped: their CPU (and that of the children they reaped) counts
            cpu = _children_cpu() - cpu0
            error = None
            for i, p in enumerate(procs):
                rc = p.returncode
                if rc in (0, 1) or (rc == -signal.SIGPIPE and i < len(procs) - 1):
                    continue
                errs[i].seek(0)
                lines = [ln.strip() for ln in errs[i].read().decode(errors="replace")
                         .splitlines() if ln.strip() and not ln.startswith("Running as user")]
                error = lines[0] if lines else f"{cmds[i][0]} exited with status {rc}"
                break
            text = ""
            if capture:
                out.seek(0)
                text = out.read().decode(errors="replace")
            return Result(wall, peak, text, error, cpu)
        finally:
            for fh in errs:
                fh.close()
            if capture:
                out.close()


def run(cmd: list[str], capture: bool) -> tuple[float, int, str]:
    """Wall seconds, peak RssAnon (KiB) and (when `capture`) stdout of one command; exits on
    failure (adversarial.py relies on this)."""
    r = run_pipeline([cmd], capture)
    if r.error:
        raise SystemExit(f"{cmd[0]} failed: {r.error}")
    return r.wall, r.peak_kb, r.out


# --- files: page cache, the other format, .gz, the small cut --------------------------------

def drop_from_cache(path: str) -> None:
    """Evict the file's pages (POSIX_FADV_DONTNEED), so the warm-up read that follows leaves
    it in a known state: freshly read.  Pages that have aged in the cache can end up split
    into small folios (e.g. after the kernel's DAMON reclaim), which makes every page fault
    of an mmap walk several times dearer while read()-based tools barely notice; without
    this step results depend on the file's history."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def warm(path: str, keep_cache: bool) -> None:
    if not keep_cache:
        drop_from_cache(path)
    subprocess.run(["cat", path], stdout=subprocess.DEVNULL, check=True)


def write_fresh(source: str, dest: str) -> None:
    """`dest` written anew from `source`: its page cache is then laid out as the write path
    left it (a capture just recorded or copied in), not as a read after eviction leaves it,
    and an mmap walk sees other folio sizes, so other page-fault costs."""
    tmp = dest + ".tmp"
    with open(source, "rb") as src, open(tmp, "wb") as out:
        shutil.copyfileobj(src, out, 8 << 20)
    os.replace(tmp, dest)


def fresh_name(path: str) -> str:
    p = Path(path)
    return str(p.with_name(f"{p.stem}.fresh{p.suffix}"))


def machine() -> str:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, {platform.system()} {platform.release()}"


def capture_format(path: str) -> str:
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic == b"\x0a\x0d\x0d\x0a":
        return "pcapng"
    if magic in PCAP_MAGICS:
        return "pcap"
    raise SystemExit(f"{path}: neither pcap nor pcapng (magic {magic.hex()})")


def _fresh(derived: Path, source: str) -> bool:
    return derived.exists() and derived.stat().st_mtime >= os.path.getmtime(source)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def other_format(path: str, fmt: str) -> tuple[str | None, str]:
    """The same capture in the other container format: the sibling X.pcapng (X.pcap) when
    there is one -- gen_capture.py writes the same traffic with the same seed -- else a copy
    converted with `editcap -F`, kept next to FILE.  Returns (path or None, how)."""
    want = "pcapng" if fmt == "pcap" else "pcap"
    p = Path(path)
    sibling = p.with_suffix("." + want)
    if sibling == p:
        sibling = p.with_name(p.name + "." + want)
    if sibling.exists() and capture_format(str(sibling)) == want:
        return str(sibling), "sibling file"
    if not shutil.which("editcap"):
        return None, f"not installed: editcap (to make {sibling.name})"
    _say(f"converting {path} to {sibling} with editcap -F {want} ...")
    tmp = sibling.with_name(sibling.name + ".part")
    subprocess.run(["editcap", "-F", want, path, str(tmp)], check=True,
                   stdout=subprocess.DEVNULL)
    tmp.rename(sibling)
    return str(sibling), "converted with editcap"


def gzip_copy(path: str) -> tuple[str, str]:
    """FILE.gz next to FILE (gzip -1 -k, or Python's gzip at level 1), made when missing or
    older than FILE."""
    gz = Path(path + ".gz")
    if _fresh(gz, path):
        return str(gz), "existing"
    _say(f"compressing {path} to {gz} (gzip -1) ...")
    tmp = Path(path + ".gz.part")
    if shutil.which("gzip"):
        with open(tmp, "wb") as out:
            subprocess.run(["gzip", "-1", "-c", path], stdout=out, check=True)
    else:
        with open(path, "rb") as src, gzip.open(tmp, "wb", compresslevel=1) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    tmp.rename(gz)
    return str(gz), "made"


def cut_prefix(path: str, nbytes: int, fmt: str) -> str:
    """The first ~nbytes of FILE as a valid capture (cut at a record or block boundary),
    cached next to FILE as X.firstNMB.ext."""
    p = Path(path)
    dst = p.with_name(f"{p.stem}.first{nbytes >> 20}MB{p.suffix}")
    if _fresh(dst, path):
        return str(dst)
    with open(path, "rb") as fh:
        buf = fh.read(nbytes)
    end = 0
    if fmt == "pcap":
        endian = "<" if buf[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        pos = 24
        while pos + 16 <= len(buf):
            incl = struct.unpack_from(endian + "I", buf, pos + 8)[0]
            if pos + 16 + incl > len(buf):
                break
            pos += 16 + incl
            end = pos
    else:
        pos, endian = 0, "<"
        while pos + 12 <= len(buf):
            btype = struct.unpack_from(endian + "I", buf, pos)[0]
            if btype == 0x0A0D0D0A:  # section header: its byte-order magic sets the order
                endian = "<" if buf[pos + 8:pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            blen = struct.unpack_from(endian + "I", buf, pos + 4)[0]
            if blen < 12 or pos + blen > len(buf):
                break
            pos += blen
            end = pos
    tmp = dst.with_name(dst.name + ".part")
    tmp.write_bytes(buf[:end])
    tmp.rename(dst)
    return str(dst)


# --- the contenders ------------------------------------------------------------------------

@dataclass
class Contender:
    key: str                    # for --skip
    what: str                   # the table's first column
    cmds: list[list[str]]       # a pipeline; one command mostly
    timing: str = "wall"        # "wall": the whole command; "inner": the JSON's "seconds"
    file: str = ""              # what it reads (dropped with --cold)
    data_bytes: int = 0         # capture bytes behind GB/s
    scale: float = 1.0          # seconds on `file` -> seconds on the big file
    max_runs: int | None = None  # None: --repeat
    note: str = ""
    count: str | None = None    # "stage", "sessions" (jsonl lines), "lines", "reader"
    same_frames: bool = True    # FILE's very frames (not the other format's)
    unavailable: str | None = None
    env: dict[str, str] | None = None  # None: this process's environment
    twin_of: str | None = None  # a --before row: the key of this tree's row it pairs with
    secs: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)  # user + system seconds, same runs
    peaks: list[int] = field(default_factory=list)
    error: str | None = None
    facts: dict = field(default_factory=dict)
    wrong: list[str] = field(default_factory=list)


def fastcap_scan(path: str, jobs: int) -> list[str]:
    return [PY, "-m", "fastcap.cli", "scan", "-j", str(jobs), "--format", "jsonl", path]


def build(args: argparse.Namespace, path: str, size: int, fmt: str) -> list[Contender]:
    skip = set(args.skip)
    jobs = args.jobs or os.cpu_count() or 1
    stage = str(HERE / "_fastcap_stage.py")
    readers = str(HERE / "_pyreaders.py")
    cs: list[Contender] = []

    def add(c: Contender, tool: str | None = None, module: str | None = None) -> None:
        if c.key in skip:
            return
        if tool and not shutil.which(tool):
            c.unavailable = f"not installed: {tool}"
        if module and importlib.util.find_spec(module) is None:
            c.unavailable = f"not installed: {module} (pip install -e '.[bench]')"
        c.file = c.file or path
        c.data_bytes = c.data_bytes or size
        cs.append(c)

    small = small_size = None
    if not {"dpkt", "scapy"} <= skip or args.tshark_small:
        small = args.small or (cut_prefix(path, args.small_size, fmt)
                               if size > args.small_size else path)
        small_size = os.path.getsize(small)
    slow = args.slow_repeat

    def scaled(note: str) -> str:
        if small == path:
            return note
        return f"{note}; on first {small_size / 1e6:.0f} MB, time x{size / small_size:.1f}"

    add(Contender("cat", "cat F > /dev/null", [["cat", path]]))
    add(Contender("tcpdump", "tcpdump -r F -w /dev/null 'tcp port 25'",
                  [["tcpdump", "-r", path, "-w", "/dev/null", "tcp port 25"]]), tool="tcpdump")
    pipe = Contender(
        "pipeline", "tcpdump -r F -w - 'tcp port 25' | tshark -r - -n -Y "
        "'tls.handshake.type==11'",
        [["tcpdump", "-r", path, "-w", "-", "tcp port 25"],
         ["tshark", "-r", "-", "-n", "-Y", "tls.handshake.type==11"]],
        note="the expert pipeline", count="lines")
    add(pipe, tool=next((t for t in ("tcpdump", "tshark") if not shutil.which(t)), None))
    tshark_f = small if args.tshark_small else path
    add(Contender(
        "tshark", "tshark -r F -n -Y 'tcp.port==25 && tls.handshake.type==11'",
        [["tshark", "-r", tshark_f, "-n", "-Y", "tcp.port==25 && tls.handshake.type==11"]],
        file=tshark_f, data_bytes=os.path.getsize(tshark_f),
        scale=size / os.path.getsize(tshark_f), max_runs=slow,
        note=scaled("whole command") if args.tshark_small else "", count="lines",
        same_frames=tshark_f == path), tool="tshark")
    for key, runs in (("dpkt", None), ("scapy", slow)):
        add(Contender(
            key, f"{key} loop: walk, decode, pick TCP port 25", [[PY, readers, small, key]]
            if small else [], timing="inner", file=small or path,
            data_bytes=small_size or size, scale=size / (small_size or size), max_runs=runs,
            note=scaled("pure Python, in-process") if small else "", count="reader",
            same_frames=small == path), module=key)
    if "stages" not in skip:
        for st, what in (*STAGES, (f"scan-j{jobs}", f"fastcap scan -j {jobs}: split, in-proc.")):
            add(Contender(f"stage-{st}", what, [[PY, stage, path, st, "native"]],
                          timing="inner", count="stage"))
    add(Contender("stats", "fastcap stats (C), whole command",
                  [[PY, "-m", "fastcap.cli", "stats", "--json", path]]))
    add(Contender("scan-j1", f"fastcap scan -j 1 F ({fmt}), whole command",
                  [fastcap_scan(path, 1)], note="baseline of x fastcap", count="sessions"))
    add(Contender("startup", "start-up: fastcap scan -j 1 on a 26-frame capture",
                  [fastcap_scan(str(STARTUP_CAPTURE), 1)], file=str(STARTUP_CAPTURE),
                  data_bytes=STARTUP_CAPTURE.stat().st_size,
                  note="interpreter, imports, trust store"))
    add(Contender("floor", "floor: import numpy, cryptography.x509 (no BLAS threads)",
                  [FLOOR], file=str(STARTUP_CAPTURE),
                  data_bytes=STARTUP_CAPTURE.stat().st_size,
                  note="imports any scan needs: start-up's floor"))
    add(Contender("scan-jN", f"fastcap scan -j {jobs} F, whole command",
                  [fastcap_scan(path, jobs)],
                  note=f"-j {jobs}: " + ("the CPU count" if not args.jobs else "--jobs"),
                  count="sessions"))
    if "fresh" not in skip:
        fresh = fresh_name(path)
        for st in ("walk", "select", "scan"):
            add(Contender(f"fresh-{st}", f"{dict(STAGES)[st]}, freshly written copy",
                          [[PY, stage, fresh, st, "native"]], timing="inner", count="stage",
                          file=fresh, note="page cache as written, not as read back"))
        add(Contender("fresh-scan-j1", "fastcap scan -j 1, freshly written copy, whole cmd",
                      [fastcap_scan(fresh, 1)], file=fresh, count="sessions",
                      note="page cache as written, not as read back"))
    if "files" not in skip:
        fresh = fresh_name(path)
        for n in dict.fromkeys((1, jobs)):
            add(Contender(f"files-j{n}", f"fastcap scan -j {n} F F.fresh: two files, whole cmd",
                          [fastcap_scan(path, n) + [fresh]], file=fresh,
                          data_bytes=2 * size, count="sessions",
                          note="2 x FILE's bytes and sessions"))
    if "other-format" not in skip:
        other, how = other_format(path, fmt)
        ofmt = "pcapng" if fmt == "pcap" else "pcap"
        c = Contender("other-format", f"fastcap scan -j 1, same capture as {ofmt}",
                      [fastcap_scan(other, 1)] if other else [], count="sessions",
                      same_frames=how == "converted with editcap")
        if other:
            c.file, c.data_bytes = other, os.path.getsize(other)
            c.note = f"{Path(other).name} ({how}), {c.data_bytes / 1e9:.2f} GB"
        else:
            c.unavailable = how
        add(c)
    if "gz" not in skip:
        gz, _how = gzip_copy(path)
        gzb = os.path.getsize(gz)
        add(Contender("gz", "fastcap scan -j 1 F.gz, whole command", [fastcap_scan(gz, 1)],
                      file=gz, count="sessions",
                      note=f"gzip -1: {gzb / 1e9:.2f} GB file; GB/s of the capture inside"))
    return with_before(cs, args.before) if args.before else cs


def _tree_env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree / "src")}


def with_before(cs: list[Contender], before: str) -> list[Contender]:
    """`cs` with a twin of each fastcap row that `before` (an older source tree) can run,
    placed right after it; this tree's rows then run from this tree's src/ too."""
    old = Path(before).resolve()
    old_stage = old / "benchmarks" / "_fastcap_stage.py"
    here = _tree_env(HERE.parent)
    out: list[Contender] = []
    for c in cs:
        out.append(c)
        if not (c.key.startswith(("stage-", "files-"))
                or c.key in ("stats", "scan-j1", "startup")):
            continue
        c.env = here
        cmds = [[str(old_stage) if a == str(HERE / "_fastcap_stage.py") else a for a in cmd]
                for cmd in c.cmds]
        twin = Contender(c.key + "@before", c.what + BEFORE, cmds, timing=c.timing,
                         file=c.file, data_bytes=c.data_bytes, scale=c.scale,
                         max_runs=c.max_runs, count=c.count, unavailable=c.unavailable,
                         env=_tree_env(old), twin_of=c.key)
        if not (old / "src" / "fastcap").is_dir():
            twin.unavailable = f"not a fastcap source tree: {old}"
        elif c.key.startswith("stage-") and not old_stage.is_file():
            twin.unavailable = f"not in {old}: benchmarks/_fastcap_stage.py"
        out.append(twin)
    return out


def _alternate(live: list[Contender], rep: int) -> list[Contender]:
    """Every other repeat, each (row, before twin) pair runs twin first: neither side always
    runs right after the other's warm-up."""
    if rep % 2 == 0:
        return live
    order = list(live)
    for i in range(len(order) - 1):
        if order[i + 1].twin_of is not None and order[i + 1].twin_of == order[i].key:
            order[i], order[i + 1] = order[i + 1], order[i]
    return order


# --- checking answers ----------------------------------------------------------------------

def record(c: Contender, r: Result, refs: dict) -> None:
    """Time and memory of one run, and the counts it reports, checked against the others."""
    facts: dict = {}
    if c.timing == "inner":
        try:
            res = json.loads(r.out)
            c.secs.append(res.pop("seconds"))
            if (cpu := res.pop("cpu_seconds", None)) is not None:  # an older tree has none
                c.cpus.append(cpu)
        except (ValueError, KeyError, AttributeError):
            c.error = "failed: no JSON result: " + (r.out.strip().splitlines() or ["(empty)"])[0]
            return
        facts = res
    else:
        c.secs.append(r.wall)
        c.cpus.append(r.cpu)
        if c.count == "sessions":
            facts = {"scanned_sessions": sum(1 for ln in r.out.splitlines()
                                             if ln.startswith("{"))}
        elif c.count == "lines":
            facts = {"matched_frames": sum(1 for ln in r.out.splitlines() if ln.strip())}
    c.peaks.append(r.peak_kb)
    if c.facts and facts != c.facts:
        c.wrong.append(f"run to run: {facts} != {c.facts}")
    c.facts = c.facts or facts
    if c.twin_of is not None:  # compared with its twin's answers once all have run
        return
    if c.key.startswith(("stage-", "scan-", "other-format", "gz")):
        # The same capture: the same sessions.  The same file (or editcap's copy of it): the
        # same frames and selection too.
        for k, v in facts.items():
            ref = CHECKED.get(k)
            if ref is None or (ref != "sessions" and not c.same_frames):
                continue
            want, by = refs.setdefault(ref, (v, c.what))
            if v != want:
                c.wrong.append(f"{k} {v}, but {want} from {by}")
    if c.key.startswith("files-") and "sessions" in refs:  # FILE twice: twice its sessions
        want, by = refs["sessions"]
        if facts.get("scanned_sessions") != 2 * want:
            c.wrong.append(f"sessions {facts.get('scanned_sessions')}, but 2 x {want} from {by}")


def run_all(cs: list[Contender], args: argparse.Namespace) -> dict:
    refs: dict = {}
    live = [c for c in cs if not c.unavailable]
    # Round-robin: every repeat runs each contender once, so drift in the machine's state
    # (other tenants, page cache, frequency) hits all of them alike instead of one block.
    for rep in range(args.repeat):
        for c in _alternate(live, rep):
            if c.error or (c.max_runs is not None and rep >= c.max_runs):
                continue
            if args.cold:
                drop_from_cache(c.file)
            _say(f"[{rep + 1}/{args.repeat}] {c.what}")
            r = run_pipeline(c.cmds, capture=c.timing == "inner" or c.count is not None,
                             env=c.env)
            if r.error:
                c.error = f"failed: {r.error}"
                continue
            record(c, r, refs)
    return refs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--slow-repeat", type=int, default=1,
                    help="runs of the slow contenders, tshark alone and scapy (default 1)")
    ap.add_argument("--jobs", type=int, help="N of the `fastcap scan -j N` row (default: CPUs)")
    ap.add_argument("--small", help="the small capture for the pure-Python rows (default: "
                                    "FILE's first --small-size bytes, cut and cached)")
    ap.add_argument("--small-size", type=parse_size, default=parse_size("50M"))
    ap.add_argument("--tshark-small", action="store_true",
                    help="time tshark alone on the small cut and scale, not once on FILE")
    ap.add_argument("--skip", type=lambda s: [k for k in s.split(",") if k], default=[],
                    help="comma-separated rows to leave out: " + ",".join(SKIP_KEYS))
    ap.add_argument("--tshark", action="store_true", help=argparse.SUPPRESS)  # now always on
    ap.add_argument("--json", help="write the table as JSON here")
    ap.add_argument("--cold", action="store_true",
                    help="drop the file from the page cache before every run: disk-bound "
                         "throughput instead of page-cache throughput")
    ap.add_argument("--before", metavar="DIR",
                    help="also run the fastcap rows from the older source tree DIR, "
                         "interleaved, and print now / before per row")
    ap.add_argument("--keep-cache", action="store_true",
                    help="measure the file's page cache as it is instead of dropping it and "
                         "reading it back once with cat first")
    args = ap.parse_args()
    if bad := set(args.skip) - set(SKIP_KEYS):
        ap.error(f"--skip: unknown {', '.join(sorted(bad))} (known: {', '.join(SKIP_KEYS)})")
    path = args.file
    size = os.path.getsize(path)
    fmt = capture_format(path)
    cs = build(args, path, size, fmt)
    files = [f for f in dict.fromkeys(c.file for c in cs if not c.unavailable) if f != path]
    fresh = fresh_name(path)
    for f in [*files, path]:  # FILE last: the most recently read if the cache runs short
        if f == fresh:
            write_fresh(path, fresh)
        else:
            warm(f, args.keep_cache)
    refs = run_all(cs, args)

    rows = []
    for c in cs:
        row = {"what": c.what, "key": c.key, "file": c.file, "data_bytes": c.data_bytes,
               "scale": c.scale, "runs": len(c.secs), "seconds": c.secs, "facts": c.facts}
        status = c.unavailable or c.error
        if status is None and not c.secs:
            status = "not run"
        if status:
            row["status"] = status
        else:
            med = statistics.median(c.secs)
            row.update(median_s=med * c.scale, gb_per_s=c.data_bytes / med / 1e9,
                       peak_private_mb=max(c.peaks) / 1024)
            if c.cpus:
                row.update(cpu_seconds=c.cpus, median_cpu_s=statistics.median(c.cpus) * c.scale)
        notes = [n for n in (c.note,) if n]
        if c.secs and len(c.secs) != args.repeat:
            notes.append(f"{len(c.secs)} run{'s' if len(c.secs) != 1 else ''}")
        if "matched_frames" in c.facts:
            notes.append(f"{c.facts['matched_frames']} frames shown")
        if c.count == "reader" and c.facts:
            notes.append(f"{c.facts['selected_frames']} of {c.facts['frames']} frames picked")
        if c.wrong:
            notes.insert(0, "WRONG: " + "; ".join(dict.fromkeys(c.wrong)))
        twin = next((o for o in cs if o.key == c.twin_of), None)
        if twin is not None and c.facts and twin.facts and c.facts != twin.facts:
            notes.append(f"answers differ from now's: {c.facts} != {twin.facts}")
        row["note"] = "; ".join(notes)
        rows.append(row)

    base = next((r for r in rows if r["key"] == "scan-j1" and "median_s" in r), None)
    tcpd = next((r for r in rows if r["key"] == "tcpdump" and "median_s" in r), None)
    state = "cold (dropped before every run)" if args.cold else (
        "as found" if args.keep_cache else "freshly read with cat")
    print(f"file: {path} ({size / 1e9:.2f} GB {fmt}, page cache {state})   "
          f"machine: {machine()}")
    for k, (v, by) in refs.items():
        print(f"fastcap found: {k} = {v} ({by})")
    print(f"median of {args.repeat} round-robin runs unless noted; x fastcap = median of "
          f"`fastcap scan -j 1 F` / the row's (same traffic); scaled rows: time x (FILE size / "
          f"measured file size); private MB = peak RssAnon of all the row's processes")
    width = max(len(r["what"]) for r in rows)
    print(f"{'what':{width}} {'median s':>9} {'CPU s':>6} {'GB/s':>7} {'x fastcap':>9} "
          f"{'private MB':>10}  note")
    for r in rows:
        if "median_s" not in r:
            print(f"{r['what']:{width}} {'-':>9} {'-':>6} {'-':>7} {'-':>9} {'-':>10}  "
                  f"{r['status']}" + (f"; {r['note']}" if r["note"] else ""))
            continue
        r["x_fastcap"] = base["median_s"] / r["median_s"] if base else None
        r["x_tcpdump"] = tcpd["median_s"] / r["median_s"] if tcpd else None
        ratio = f"{r['x_fastcap']:9.2f}" if base else f"{'-':>9}"
        gbs = r["gb_per_s"]
        gbs_text = f"{gbs:7.{2 if gbs >= 1 else 3}f}" if gbs >= 0.001 else f"{'-':>7}"
        cpu = f"{r['median_cpu_s']:6.2f}" if "median_cpu_s" in r else f"{'-':>6}"
        print(f"{r['what']:{width}} {r['median_s']:9.3f} {cpu} {gbs_text} {ratio} "
              f"{r['peak_private_mb']:10.1f}  {r['note']}")
    pairs = before_table(rows) if args.before else []
    goals = targets(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"file": path, "size": size, "format": fmt, "machine": machine(),
             "page_cache": state, "repeat": args.repeat, "rows": rows, "targets": goals,
             **({"before": {"dir": args.before, "pairs": pairs}} if args.before else {})},
            indent=2))
    return 1 if any(c.wrong for c in cs) else 0


# (what, numerator row, denominator row, goal): each target holds when
# median(numerator row) / median(denominator row) >= goal, i.e. a speed ratio; rows named
# "1" stand for a fixed time in seconds.
TARGETS = (
    ("whole command `scan -j 1` vs tcpdump 'tcp port 25'", "tcpdump", "scan-j1", 1.2),
    ("whole command `scan` (default -j) vs tcpdump", "tcpdump", "scan-jN", 1.6),
    ("walk + decode + select in-process vs cat F", "cat", "stage-select", 1.0),
    ("full scan in-process vs tcpdump", "tcpdump", "stage-scan", 2.0),
    ("start-up (26-frame capture) within 0.10 s", "0.10", "startup", 1.0),
    ("`-j N` in-process vs `-j 1` in-process", "stage-scan", "stage-scan-jN", 1.7),
    ("whole command `scan -j 1` vs tshark -Y", "tshark", "scan-j1", 60.0),
)
PRIVATE_MB_GOAL = 256


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def targets(rows: list[dict]) -> list[dict]:
    """Print and return the speed goals, each as a ratio of two rows of this same run."""
    by_key = {r["key"]: r for r in rows}
    jn = next((k for k in by_key if k.startswith("stage-scan-j")), None)
    out = []
    for what, num, den, goal in TARGETS:
        den = jn if den == "stage-scan-jN" else den
        a = float(num) if num[0].isdigit() else by_key.get(num, {}).get("median_s")
        b = by_key.get(den or "", {}).get("median_s")
        t = {"what": what, "goal": goal}
        if a and b:
            t.update(ratio=a / b, holds=a / b >= goal)
        if den == "startup" and by_key.get("floor", {}).get("median_s"):
            t["floor_ratio"] = a / by_key["floor"]["median_s"]  # the best start-up could do
        one = by_key.get("stage-scan", {})
        if den == jn and a and one.get("median_cpu_s"):
            # -j N does at least -j 1's work: on this many cores its wall time is at least
            # that CPU time / cores, whatever the split.
            t["cpu_bound"] = a * _cores() / one["median_cpu_s"]
        out.append(t)
    peaks = [r["peak_private_mb"] for r in rows if r["key"].startswith(("scan", "stage-scan"))
             and "peak_private_mb" in r and not r["key"].endswith("@before")]
    if peaks:
        out.append({"what": f"private memory of the scan rows within {PRIVATE_MB_GOAL} MB",
                    "goal": PRIVATE_MB_GOAL, "ratio": max(peaks),
                    "holds": max(peaks) <= PRIVATE_MB_GOAL})
    width = max(len(t["what"]) for t in out)
    print("\ntargets (ratios of the medians above; start-up: 0.10 s / its median; memory: MB)\n"
          f"{'target':{width}} {'goal':>6} {'measured':>9}  holds")
    for t in out:
        got = f"{t['ratio']:9.2f}" if "ratio" in t else f"{'-':>9}"
        holds = {True: "yes", False: "NO"}.get(t.get("holds"), "not measured")
        if "floor_ratio" in t:
            holds += f" (the floor row alone: {t['floor_ratio']:.2f})"
        if "cpu_bound" in t:
            holds += (f" (at most {t['cpu_bound']:.2f} on {_cores()} cores: "
                      f"-j 1's CPU time / cores)")
        print(f"{t['what']:{width}} {t['goal']:>6} {got}  {holds}")
    return out


def before_table(rows: list[dict]) -> list[dict]:
    """Print and return each (row, before twin) pair's medians and their ratio."""
    by_key = {r["key"]: r for r in rows}
    pairs = []
    for r in rows:
        now = by_key.get(r["key"].removesuffix("@before"))
        if not r["key"].endswith("@before") or now is None:
            continue
        p = {"what": now["what"], "now_s": now.get("median_s"), "before_s": r.get("median_s")}
        if p["now_s"] and p["before_s"]:
            p["now_over_before"] = p["now_s"] / p["before_s"]
        pairs.append(p)
    if pairs:
        width = max(len(p["what"]) for p in pairs)
        print(f"\nnow and before (--before), medians of the same runs\n"
              f"{'what':{width}} {'now s':>8} {'before s':>8} {'now/before':>10}")
        for p in pairs:
            cells = [f"{p[k]:8.3f}" if p[k] else f"{'-':>8}" for k in ("now_s", "before_s")]
            ratio = p.get("now_over_before")
            print(f"{p['what']:{width}} {' '.join(cells)} "
                  + (f"{ratio:10.3f}" if ratio else f"{'-':>10}"))
    return pairs


if __name__ == "__main__":
    sys.exit(main())
