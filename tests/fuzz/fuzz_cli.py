"""Mutation fuzzing of the command line, end to end (by hand; not part of the test run).

Each round damages a seed capture the ways the field does and an attacker would: flipped bits,
overwritten bytes, 2- and 4-byte fields set to extremes, cuts, chunks repeated or lost, two
captures spliced, bytes changed next to TLS record and DER headers. Then it runs fastcap on the
result as a user would (`scan` on both backends and with `-j 2`, with certificates exported;
`stats`; `follow`; now and then `report`), and flags what README promises never happens:

- a traceback, or a warning that is not fastcap's own one-line `fastcap: ...`;
- death by a signal, an exit code other than 0, 1 or 2, a run past the time limit;
- the input file changed;
- the two backends, or `-j 1` and `-j 2`, writing different results.

Each kind of failure is kept once under build/fuzz/cli-found/KIND/: the input, the command
and its stderr. Run with the C module built:

    python tests/fuzz/fuzz_cli.py --minutes 15 --workers 2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "build" / "fuzz" / "cli-found"
TIMEOUT_S = 120
MEMORY = 4 << 30  # address space per run: far above a capture this size, far below the VM
EXTREMES = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)
HOT = re.compile(rb"\x16\x03[\x00-\x04]|\x30\x82|\x0b\x00")  # TLS record, DER SEQUENCE, Cert.
OWN_LINE = re.compile(r"fastcap: ")


def seeds() -> list[Path]:
    found = [*ROOT.glob("tests/data/corpus/*.pcap*"), *ROOT.glob("examples/*.pcap*")]
    return sorted(p for p in found if p.stat().st_size < (1 << 20))


def mutate(data: bytes, other: bytes, rng: random.Random) -> bytes:
    """One to four damages of `data`; `other` is a second seed for splicing."""
    d = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not d:
            return bytes(rng.randbytes(rng.randint(1, 64)))
        n, pos = len(d), rng.randrange(len(d))
        hot = [m.start() for m in HOT.finditer(d)]
        op = rng.choice(("flip", "byte", "field", "field", "cut", "repeat", "lose", "splice",
                         "hot", "hot", "hot"))
        if op == "flip":
            d[pos] ^= 1 << rng.randrange(8)
        elif op == "byte":
            d[pos] = rng.choice((0, 0xFF, 0x80, rng.randrange(256)))
        elif op == "field" or (op == "hot" and hot):
            if op == "hot":
                pos = min(rng.choice(hot) + rng.randrange(12), n - 1)
            width = rng.choice((2, 4))
            value = rng.choice(EXTREMES) & ((1 << (8 * width)) - 1)
            d[pos : pos + width] = value.to_bytes(width, rng.choice(("little", "big")))
        elif op == "cut":
            del d[pos:]
        elif op == "repeat":
            chunk = d[pos : pos + rng.randint(1, 4096)]
            at = rng.randrange(n)
            d[at:at] = chunk
        elif op == "lose":
            del d[pos : pos + rng.randint(1, 4096)]
        elif op == "splice" and other:
            d[pos:] = other[rng.randrange(len(other)) :]
    return bytes(d)


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def fastcap(args: list[str], cwd: Path) -> tuple[int | str, str, str]:
    try:
        r = subprocess.run([sys.executable, "-m", "fastcap.cli", *args], cwd=cwd,
                           capture_output=True, text=True, errors="replace",
                           timeout=TIMEOUT_S, preexec_fn=_limits)
    except subprocess.TimeoutExpired as e:  # its output comes as bytes, if at all
        err = e.stderr.decode("utf-8", "replace") if isinstance(e.stderr, bytes) else ""
        return "timeout", "", err
    return r.returncode, r.stdout, r.stderr


def problems(code: int | str, err: str) -> list[str]:
    """What is wrong with one run's exit code and stderr, as failure kinds."""
    out = []
    if code == "timeout":
        out.append("timeout")
    elif code not in (0, 1, 2):
        out.append(f"exit-{code}")
    if "Traceback" in err:
        last = [x for x in err.splitlines() if x and not x.startswith(" ")][-1]
        out.append("traceback-" + re.sub(r"\W+", "-", last.split(":")[0])[:40])
    elif any(x and not OWN_LINE.match(x) for x in err.splitlines()):
        out.append("stray-stderr")
    return out


class Fuzzer:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.seeds = [p.read_bytes() for p in seeds()]
        self.runs: Counter[str] = Counter()
        self.found: Counter[str] = Counter()
        self.lock = threading.Lock()

    def keep(self, kind: str, data: bytes, args: list[str], err: str) -> None:
        with self.lock:
            self.found[kind] += 1
            where = OUT / kind
            if where.exists():
                return
            where.mkdir(parents=True)
        (where / "input.bin").write_bytes(data)
        (where / "run.json").write_text(json.dumps({"args": args, "stderr": err}, indent=1))

    def round(self, work: Path) -> None:
        rng = self.rng
        data = mutate(rng.choice(self.seeds), rng.choice(self.seeds), rng)
        path = work / rng.choice(("in.pcap", "in.pcapng"))
        path.write_bytes(data)
        digest = hashlib.sha256(data).digest()
        ports = rng.choice((["--ports", "25,587,465,110,143,5222,5432,443"], []))
        certs = work / "certs"
        scans = {}
        for name, extra in (("native", ["--backend", "native", "-j", "1"]),
                            ("python", ["--backend", "python", "-j", "1"]),
                            ("jobs2", ["--backend", "native", "-j", "2"])):
            args = ["scan", "--format", "jsonl", *ports, *extra, "--export-certs", str(certs),
                    path.name]
            scans[name] = self.check(args, work, data)
        if len({out for _, out in scans.values()}) > 1 or len(
                {code for code, _ in scans.values()}) > 1:
            self.keep("disagree", data, ["scan", *ports, path.name], json.dumps(
                {k: [c, o[:2000]] for k, (c, o) in scans.items()}))
        self.check(["stats", "--json", *ports, path.name], work, data)
        self.check(["follow", path.name, *ports, "--session", str(rng.randint(1, 3))], work,
                   data)
        if rng.random() < 0.25:
            self.check(["report", *ports, path.name, "-o", "r.html"], work, data)
        if hashlib.sha256(path.read_bytes()).digest() != digest:
            self.keep("input-changed", data, [path.name], "")

    def check(self, args: list[str], work: Path, data: bytes) -> tuple[int | str, str]:
        code, out, err = fastcap(args, work)
        with self.lock:
            self.runs[args[0]] += 1
        for kind in problems(code, err):
            self.keep(f"{args[0]}-{kind}", data, args, err)
        return code, out

    def loop(self, until: float) -> None:
        with tempfile.TemporaryDirectory(prefix="fastcap-fuzz-") as tmp:
            while time.monotonic() < until:
                self.round(Path(tmp))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=15)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.randrange(1 << 32)
    until = time.monotonic() + 60 * a.minutes
    fuzzers = [Fuzzer(seed + i) for i in range(a.workers)]
    threads = [threading.Thread(target=f.loop, args=(until,)) for f in fuzzers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    runs = sum((f.runs for f in fuzzers), Counter())
    found = sum((f.found for f in fuzzers), Counter())
    print(json.dumps({"seed": seed, "runs": runs, "found": found}, indent=1))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
