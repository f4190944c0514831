"""Command line: argument parsing, output and exit codes only; the work happens elsewhere.

Exit codes (all commands): 0 = every file read completely; 1 = results produced but something
was wrong (damaged file read partially, or problems found); 2 = usage error or a file that
cannot be read at all.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import json
import os
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from .errors import FastcapError
from .options import (
    BACKEND_CHOICES,
    DEFAULT_BACKEND,
    DEFAULT_CAP,
    DEFAULT_DECRYPT_LIMIT,
    DEFAULT_IMPLICIT_TLS_PORTS,
    DEFAULT_JOIN_TOLERANCE_S,
    DEFAULT_JOIN_WINDOW_S,
    DEFAULT_PORTS,
    DEFAULT_TRUST,
    TRUST_STORES,
    ScanOptions,
)
from .out.textsafe import printable

if TYPE_CHECKING:
    from .evidence.logzone import LogZone

EXIT_OK, EXIT_PROBLEMS, EXIT_UNREADABLE = 0, 1, 2
EXIT_UNWRITTEN = 120  # Python's own code when its last flush of stdout fails (a full disk)
TABLE_ROWS = 50  # fastcap.out.report.TABLE_ROWS, without importing the output at start-up


def _ports(text: str) -> frozenset[int]:
    from .select.flows import parse_ports  # with numpy: not for --help or --version

    try:
        return parse_ports(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


class _Messages:
    """stderr for fastcap's one-line messages: control characters in the file names and data
    they quote are escaped, so a message stays one line and cannot drive the terminal (a
    log named with an escape sequence, a newline in a path).  The progress line, which
    moves the cursor on purpose, writes to sys.stderr itself.
    A message that cannot be written (stderr on a full disk, a reader gone) is lost, and
    only it: the command goes on and ends with the exit code it would have had, as that
    code is the one report a caller is sure to get."""

    def write(self, text: str) -> int:
        err = sys.stderr  # None without a console, where print() itself writes nothing
        if err is not None:
            with contextlib.suppress(OSError, ValueError):
                err.write(text if text == "\n" else printable(text, backslashes=False))
        return len(text)

    def flush(self) -> None:
        if sys.stderr is not None:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()


_ERR = _Messages()


def _size(text: str) -> int:
    """'262144', '256K', '2M' → bytes (1 KiB to 1 GiB)."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.strip().upper().removesuffix("B")
    try:
        n = int(t[:-1]) * units[t[-1]] if t and t[-1] in units else int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad size {text!r}") from None
    if not 1 << 10 <= n <= 1 << 30:
        raise argparse.ArgumentTypeError(f"size {text!r} is outside 1K..1G")
    return n


def _whole(text: str, what: str, low: int, high: int | None = None) -> int:
    """`text` as an integer from `low` (to `high`); argparse's error names `what` otherwise."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a {what}: {text!r}") from None
    if n < low or (high is not None and n > high):
        span = f"at least {low}" if high is None else f"{low} to {high}"
        raise argparse.ArgumentTypeError(f"{what} {text!r} is out of range ({span})")
    return n


def _address(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("give the scheduler's address, e.g. "
                                         "tcp://scheduler:8786")
    return text


def _jobs(text: str) -> int:
    return _whole(text, "number of jobs", 1)


def _session(text: str) -> int:
    """follow --session: sessions are numbered from 1, so 0 or -1 names none (a usage
    error, told before the capture is read through to find it missing)."""
    return _whole(text, "session number", 1)


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error told in one line, as fastcap's other errors are: the
    usage block (a dozen lines for scan) is what ``--help`` is for, and the line names it.
    `commands` holds the command parsers, for errors found after parsing."""

    commands: dict[str, argparse.ArgumentParser]

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message}; see {self.prog} --help", file=_ERR)
        self.exit(EXIT_UNREADABLE)


class _CommandParser(_Parser):
    """A command's parser, taking its options before, between and after its files
    (``fastcap scan a.pcap --format csv b.pcap``), as GNU tools and tshark's ``-r`` users
    expect; plain argparse ends the files at the first option and refuses the rest.  After
    ``--`` every word is a file (``-- -odd.pcap``), which argparse's intermixed parsing loses,
    so such a command line is parsed as plain argparse parses it."""

    _intermixing = False

    def parse_known_args(self, args=None, namespace=None):
        if self._intermixing or (args is not None and "--" in args):
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


class _Version(argparse.Action):
    """--version, looked up only when asked for (from the running tree, see _version)."""

    def __init__(self, option_strings, dest, **kw) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from . import __version__
        from ._ffi import native_available

        backend = "native C" if native_available() else "pure Python (native module not built)"
        print(f"fastcap {__version__} (reader: {backend})")
        parser.exit()


_BACKEND_HELP = "frame walker: C (native), pure Python, or auto (default)"


def _parser() -> _Parser:
    p = _Parser(prog="fastcap", description=__doc__.splitlines()[0])
    p.add_argument("--version", action=_Version)
    p.set_defaults(own_process=False)  # main() run as the program sets it
    sub = p.add_subparsers(dest="command", required=True, parser_class=_CommandParser)
    st = sub.add_parser("stats", help="summarise captures: formats, link types, frame counts")
    st.add_argument("files", nargs="+", metavar="FILE")
    st.add_argument("--json", action="store_true", help="print JSON instead of text")
    st.add_argument("--ports", type=_ports, default=DEFAULT_PORTS,
                    help="TCP ports to select, e.g. 25,587,2525 (default 25)")
    st.add_argument("--backend", choices=BACKEND_CHOICES, default=DEFAULT_BACKEND,
                    help=_BACKEND_HELP)
    sc = sub.add_parser("scan", help="diagnose every SMTP session: did the client present a "
                        "usable TLS certificate, and if not, why")
    _scan_arguments(sc, "captures (none: diagnose the --evidence logs alone)", formats=True)
    sc.add_argument("--html", metavar="FILE",
                    help="also write the self-contained HTML report (as `fastcap report`)")
    rp = sub.add_parser("report", help="write a self-contained HTML report: triage, timeline, "
                        "every session with its ladder diagram and certificates")
    _scan_arguments(rp, "captures (with --evidence, the logs are joined as in scan)",
                    formats=False)
    rp.add_argument("-o", "--output", metavar="FILE", required=True,
                    help="the HTML file to write (replaced atomically); - for standard output")
    fo = sub.add_parser("follow", help="show one SMTP session like Wireshark's Follow TCP Stream")
    fo.add_argument("file", metavar="FILE")
    fo.add_argument("more", metavar="NEXT", nargs="*",
                    help="more files, read as `scan FILE NEXT...` reads them (a ring "
                         "buffer's files joined): sessions numbered and followed as it does")
    fo.add_argument("--session", type=_session, required=True, metavar="N",
                    help="session number, as scan and follow number them (from 1)")
    fo.add_argument("--in", dest="in_file", metavar="FILE",
                    help="with several files, the one session N is numbered in (default "
                         "the first)")
    fo.add_argument("--ports", type=_ports, default=DEFAULT_PORTS,
                    help="TCP ports to select (default 25)")
    fo.add_argument("--implicit-tls-ports", type=_ports, default=DEFAULT_IMPLICIT_TLS_PORTS,
                    metavar="PORTS", help="ports where TLS starts at once (default 465)")
    fo.add_argument("--stream-cap", type=_size, default=DEFAULT_CAP, metavar="BYTES",
                    help="bytes kept per direction of a connection (default 256K)")
    fo.add_argument("--backend", choices=BACKEND_CHOICES, default=DEFAULT_BACKEND,
                    help=_BACKEND_HELP)
    _key_arguments(fo)
    _evidence_arguments(fo)
    p.commands = {"stats": st, "scan": sc, "report": rp, "follow": fo}
    return p


def _scan_arguments(sc: argparse.ArgumentParser, files_help: str, *, formats: bool) -> None:
    """The options of `scan`, shared by `report` (which takes every one but the output
    format and -v: its output is the page, and the page lists every session's findings)."""
    sc.add_argument("files", nargs="*", metavar="FILE", help=files_help)
    if formats:
        sc.add_argument("--format", choices=("table", "json", "jsonl", "csv", "zeek"),
                        default="table", help="zeek: smtp.log, ssl.log and x509.log in Zeek's "
                        "format, written into the -o directory")
        sc.add_argument("-o", "--output", metavar="DIR",
                        help="with --format zeek: the directory for the logs (default: the "
                        "current directory; created if missing)")
    sc.add_argument("--only-problems", action="store_true",
                    help="list only sessions with a problem verdict")
    sc.add_argument("-v", "--details", action="store_true",
                    help="table output: list every session (not only the first "
                    f"{TABLE_ROWS}) and each one's findings under the problems grouped by cause"
                    if formats else argparse.SUPPRESS)  # report: refused in main(), by name
    sc.add_argument("--ports", type=_ports, default=DEFAULT_PORTS,
                    help="TCP ports to select, e.g. 25,587,2525 (default 25)")
    sc.add_argument("--implicit-tls-ports", type=_ports, default=DEFAULT_IMPLICIT_TLS_PORTS,
                    metavar="PORTS", help="ports where TLS starts at once (default 465)")
    sc.add_argument("--expect-name", metavar="NAME", type=_name,
                    help="the name the client certificate must carry (the inbound connector's "
                    "TlsSenderCertificateName), e.g. mail.contoso.com or *.contoso.com")
    sc.add_argument("--trust", choices=TRUST_STORES, default=DEFAULT_TRUST,
                    help="root store: Mozilla's (certifi, default) or the system's")
    sc.add_argument("--ca-file", metavar="PEM", help="extra trusted roots (PEM bundle)")
    sc.add_argument("--export-certs", metavar="DIR",
                    help="write every certificate seen as DER and PEM, named by SHA-256")
    sc.add_argument("--stream-cap", type=_size, default=DEFAULT_CAP, metavar="BYTES",
                    help="bytes kept per direction of a connection (default 256K; e.g. 2M "
                    "for certificate chains larger than that)")
    sc.add_argument("--backend", choices=BACKEND_CHOICES, default=DEFAULT_BACKEND,
                    help=_BACKEND_HELP)
    _key_arguments(sc)
    _evidence_arguments(sc)
    sc.add_argument("-j", "--jobs", type=_jobs, default=os.cpu_count() or 1, metavar="N",
                    help="worker processes (default: the number of CPUs): files are split into "
                    "byte ranges read at once, with the same results as -j 1")
    sc.add_argument("--dask", metavar="ADDRESS", type=_address,
                    help="run the scan on a Dask cluster, e.g. tcp://scheduler:8786 (needs "
                    "fastcap[dask]; workers must see the files at the same paths)")


_MAX_SECONDS = 1e9  # ~31 years: any skew or window a log and a capture can have, in int64 ns


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not abs(value) <= _MAX_SECONDS:  # NaN too
        raise argparse.ArgumentTypeError(
            f"{text!r} seconds is out of range (at most {_MAX_SECONDS:g} either way)")
    return value


def _span(text: str) -> float:
    """A join tolerance or window: seconds, not negative (a negative one would join nothing,
    silently)."""
    value = _seconds(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} seconds is negative")
    return value


def _name(text: str) -> str:
    """--expect-name: a name is compared trimmed of spaces and a trailing dot, so one that
    trims to nothing names nothing (it would judge an empty name silently)."""
    if not text.strip().rstrip("."):
        raise argparse.ArgumentTypeError(f"no name in {text!r}")
    return text


def _year(text: str) -> int:
    """A year whose dates a capture can carry (int64 nanoseconds: 1677 to 2262)."""
    return _whole(text, "year", 1678, 2261)


def _utc_offset(text: str) -> int | LogZone:
    """'+01:00', '-0500', '+2' -> seconds east of UTC; 'Europe/Berlin' (an IANA zone name:
    each log time then takes the offset of its own date) -> a LogZone."""
    t = text.strip()
    sign = -1 if t.startswith("-") else 1
    digits = t.lstrip("+-").replace(":", "")
    if not digits.isdigit() or not digits.isascii():
        if t[:1] not in "+-0123456789":
            from .evidence.logzone import LogZone

            try:
                return LogZone.named(t)
            except ValueError as e:
                raise argparse.ArgumentTypeError(
                    f"{e} (give an offset such as +01:00, or a zone such as Europe/Berlin)"
                ) from None
        raise argparse.ArgumentTypeError(
            f"not a UTC offset or time zone: {text!r} (e.g. +01:00 or Europe/Berlin)")
    hours, minutes = (int(digits[:-2] or 0), int(digits[-2:])) if len(digits) > 2 else (
        int(digits), 0)
    if minutes >= 60 or hours * 60 + minutes > 14 * 60:  # UTC+14:00, Kiribati's, is the most
        raise argparse.ArgumentTypeError(f"UTC offset {text!r} is out of range")
    return sign * (hours * 3600 + minutes * 60)


def _evidence_arguments(sub: argparse.ArgumentParser) -> None:
    g = sub.add_argument_group("mail-server logs and connector settings")
    g.add_argument("--evidence", action="append", metavar="FILE",
                   help="an Exchange SMTP protocol or message tracking log, an Exchange Online "
                        "message trace CSV, a Postfix/syslog mail log, or Get-InboundConnector/"
                        "Get-SendConnector/Get-ExchangeCertificate JSON (kind told from the "
                        "content); repeatable")
    g.add_argument("--join-tolerance", type=_span, default=DEFAULT_JOIN_TOLERANCE_S,
                   metavar="S", help="seconds a log entry with both endpoints may differ from "
                   f"its session after the clock skew (default {DEFAULT_JOIN_TOLERANCE_S:g})")
    g.add_argument("--join-window", type=_span, default=DEFAULT_JOIN_WINDOW_S, metavar="S",
                   help="seconds around a session a log entry giving only the peer address "
                   f"(Postfix, message trace) may lie (default {DEFAULT_JOIN_WINDOW_S:g})")
    g.add_argument("--log-skew", type=_seconds, metavar="S",
                   help="the log clock minus the capture clock, in seconds (default: "
                        "estimated from unambiguous pairs)")
    g.add_argument("--log-year", type=_year, metavar="YEAR",
                   help="year of syslog lines that carry none (default: the log file's "
                        "modification year)")
    g.add_argument("--log-utc-offset", type=_utc_offset, default=0, metavar="+HH:MM|ZONE",
                   help="time zone of log times that carry none: syslog lines, a "
                        "Get-MessageTrackingLog export's Timestamp; a fixed offset, or an "
                        "IANA zone name (Europe/Berlin) whose daylight saving time each "
                        "time follows (default UTC)")


def _key_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--keylog", action="append", metavar="FILE",
                     help="NSS key log (as SSLKEYLOGFILE writes it) to decrypt TLS with; "
                          "repeatable; default: $SSLKEYLOGFILE")
    sub.add_argument("--decrypt-limit", type=_kib, default=DEFAULT_DECRYPT_LIMIT, metavar="KIB",
                     help="KiB of application data decrypted per direction (default "
                          f"{DEFAULT_DECRYPT_LIMIT >> 10})")


def _kib(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of KiB: {text!r}") from None
    if not 0 <= n <= 1 << 20:
        raise argparse.ArgumentTypeError(f"{n} KiB is outside 0..{1 << 20}")
    return n << 10


def _keylog(args) -> tuple[str, ...]:
    """--keylog as given, else $SSLKEYLOGFILE (when set and not empty), else none."""
    if args.keylog:
        return tuple(args.keylog)
    env = os.environ.get("SSLKEYLOGFILE")
    return (env,) if env else ()


def _with_keys(options: ScanOptions) -> ScanOptions:
    """The key log files read once, for every capture; their warnings (file and line)
    reported on stderr.  A capture's own secrets blocks are read with it and serve only its
    sessions (and those of the files that continue it), as tshark -r uses a file's blocks."""
    from .session import with_keys

    keyed = with_keys(options)
    for w in getattr(keyed.key_index, "warnings", ()):
        print(f"fastcap: warning: {w}", file=_ERR)
    return keyed


class _Progress:
    """'bytes done / total, GB/s' on stderr, only when stderr is a terminal."""

    def __init__(self, path: str) -> None:
        import time

        self.enabled = sys.stderr.isatty()
        self.path = printable(path)
        self.t0 = time.perf_counter()
        self._clock = time.perf_counter

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        rate = done / max(1e-9, self._clock() - self.t0) / 1e9
        print(f"\r{self.path}: {100 * done / total:5.1f}%  {done / 1e9:.2f}/{total / 1e9:.2f} GB"
              f"  {rate:.2f} GB/s", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.enabled:
            print("\r\033[K", end="", file=sys.stderr, flush=True)


def _scan_options(args) -> ScanOptions:
    """The one ScanOptions of `fastcap scan`: what every file is read and judged with."""
    return ScanOptions(ports=args.ports, implicit_tls_ports=args.implicit_tls_ports,
                       expect_name=args.expect_name, trust=args.trust, ca_file=args.ca_file,
                       backend=args.backend, stream_cap=args.stream_cap, jobs=args.jobs,
                       keylog=_keylog(args), decrypt_limit=args.decrypt_limit)


def _scan_streams(args, files: list[str], options: ScanOptions, analyzer):
    """(path, sessions, outcome) per file, in order, where `outcome()`, called once the
    sessions are read, gives (the file's summary, its errors).  One file: sessions stream
    from the scan as it runs.  Several files: read in turn (the workers reading ahead), files
    that continue one another joined, each file's sessions streamed as they are judged
    (scanner.iter_file_streams)."""
    from .run.scanner import iter_file_streams, scan

    if args.dask:
        yield from _scan_on_dask(args, files, options)
        return
    if len(files) == 1:  # streams from the scan as it runs; -j N splits the file
        path = files[0]
        progress = _Progress(path)
        holder: list = []
        run = scan(path, options, analyzer=analyzer, progress=progress)

        def sessions():
            try:
                yield from run
            except FastcapError as e:
                holder.append(str(e))
            finally:
                progress.done()

        yield path, sessions(), lambda: (run.summary, holder)
        return
    for fs in iter_file_streams(files, options, analyzer=analyzer):
        yield fs.path, fs.sessions, lambda fs=fs: (fs.summary, list(fs.errors))


def _scan_on_dask(args, files: list[str], options: ScanOptions):
    """Like _scan_streams, with the work done by the Dask cluster at args.dask."""
    from .run.scanner import ScanSummary

    if "-" in files:
        raise FastcapError("-: standard input cannot be scanned on a Dask cluster (its "
                           "workers read the files themselves): give a file they can see")
    try:
        from dask.distributed import Client

        from .run.distributed import scan_files
    except ImportError:
        raise FastcapError("--dask needs Dask: pip install 'fastcap[dask]'") from None
    import logging

    # Dask logs a lost connection in lines and tracebacks of its own, through loggers that
    # have their own levels and handlers; the one line below says it.
    for name in ["distributed", *logging.root.manager.loggerDict]:
        if name.startswith("distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        client = Client(args.dask)  # waits distributed.comm.timeouts.connect (Dask config)
    except MemoryError:  # Dask read what answered (a banner, say) as a frame length
        raise FastcapError(f"cannot reach the Dask scheduler at {args.dask}: what answered "
                           "there does not speak Dask's protocol") from None
    except Exception as e:
        raise FastcapError(f"cannot reach the Dask scheduler at {args.dask}: "
                           f"{_first_line(e)}") from None
    with client:
        try:
            for fs in scan_files(files, client, options):
                yield (fs.path, iter(fs.sessions),
                       lambda fs=fs: (fs.summary or ScanSummary(fs.path),
                                      [fs.error] if fs.error else []))
        except Exception as e:
            if not _lost_cluster(e):
                raise
            raise FastcapError(f"lost the Dask cluster at {args.dask}: {_first_line(e)}; "
                               "what was reported before this is complete") from None


def _first_line(e: BaseException) -> str:
    """`Type: message`, the message's first line only (Dask's run on with advice)."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _lost_cluster(e: BaseException) -> bool:
    """Whether `e` says the cluster went away (a scheduler or worker lost, a connection
    closed) rather than something fastcap's own tasks raised."""
    module = type(e).__module__
    return (isinstance(e, (OSError, TimeoutError))
            or module.startswith(("distributed", "tornado", "asyncio", "concurrent")))


@contextlib.contextmanager
def _long_lived(own_process: bool):
    """Around a command's imports, when fastcap is the program: what they make (modules,
    classes, functions, tables) lives as long as the process, so the cyclic GC does not run
    while they load and then leaves them, with all else made so far, out of every later
    collection, the one at exit included (gc.freeze): ~5% of a small scan's instructions.
    The youngest generation is then collected every `_YOUNG` allocations instead of 700: the
    sessions held for number order outlive many young collections, and the default had the
    collector promote and walk them again (on the 20,000-session file the collector took 0.45 s
    of a scan's 8.5 s, and 0.14 s after; its private memory did not change).
    A caller that runs `main` in its own process keeps its GC as it was."""
    if not own_process:
        yield
        return
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.set_threshold(_YOUNG, *gc.get_threshold()[1:])
        if enabled:
            gc.enable()


_YOUNG = 20_000  # allocations between collections of the youngest generation (default 700)


def _cmd_scan(args) -> int:
    import time

    with _long_lived(args.own_process):
        from .judge.judging import analyzer_for
        from .out import report
        from .run.scanner import has_problem

    started = time.perf_counter()
    if args.evidence:
        return _cmd_scan_evidence(args)
    if not args.files:
        print("fastcap: scan: give a capture, or mail-server logs with --evidence",
              file=_ERR)
        return EXIT_UNREADABLE
    _export_dir(args)
    try:
        options = _scan_options(args)
        analyzer = analyzer_for(options)
    except (OSError, ValueError) as e:
        print(f"fastcap: {e}", file=_ERR)
        return EXIT_UNREADABLE
    results, errors, summaries = [], [], []
    options, files, code = _inputs(args, options, errors)
    stream = args.format in ("jsonl", "csv", "zeek") and not args.html
    if args.format == "csv":
        sys.stdout.write(report.csv_header())
    zeek = _zeek_writer(args)
    spans: dict[str, tuple[int, int]] = {}  # each file's time span, shown sessions or not
    for path, sessions, outcome in _scan_streams(args, files, options, analyzer):
        kept = []
        for sess in sessions:
            if args.html and sess.first_ts_ns:  # 0: no frame of it has a time
                a, b = spans.get(path, (sess.first_ts_ns, sess.last_ts_ns))
                spans[path] = (min(a, sess.first_ts_ns), max(b, sess.last_ts_ns))
            if args.export_certs:
                for w in report.export_certs(sess, args.export_certs):
                    print(f"fastcap: warning: {w}", file=_ERR)
            if args.only_problems and not has_problem(sess):
                continue
            if args.format == "jsonl":
                print(report.to_jsonl_line(sess, path))
            elif args.format == "csv":
                sys.stdout.write(report.csv_line(sess, path))
            elif zeek is not None:
                zeek.add(sess, path)
            if not stream:
                kept.append(sess)
        summary, failure = outcome()
        if not _file_read(path, summary, failure, errors):
            code = EXIT_UNREADABLE
            continue
        if (summary.with_problems or summary.warnings) and code == EXIT_OK:
            code = EXIT_PROBLEMS
        summaries.append(summary)
        if not stream:
            results.append((path, kept, summary))
    if args.format == "json":
        print(report.to_json(results, errors, _problems_json(results)))
    elif args.format == "table":
        _print_tables(args, results, len(files) > 1)
        print(report.format_summary(summaries))
    _close_zeek(zeek, read_any=bool(summaries))
    if args.html and not _write_html(args, results, time.perf_counter() - started,
                                     read_any=bool(summaries), errors=errors, spans=spans):
        return EXIT_UNREADABLE
    return code


def _write_html(args, results, seconds: float, *, read_any: bool,
                errors: list[dict] = (), spans: dict | None = None) -> bool:
    """The HTML report of `results` written to args.html (frame times read again for the
    ladders, one walk per file), naming the inputs that could not be read (`errors`, as the
    JSON's) and each file's time span (`spans`, of all its sessions, as --only-problems
    leaves some out); False when it could not be written.  When no capture could be read at
    all, a report already there is left alone (True: nothing failed here)."""
    if not read_any:
        print(f"fastcap: no capture was read: {printable(args.html)} is left as it was",
              file=_ERR)
        return True
    from . import __version__
    from .out.html import ScanFacts, frames_wanted, page_data, render_report, write_report
    from .read.frametimes import frame_times
    from .run.frameruns import frame_runs

    times, runs = {}, {}
    icmp = {path: summary.icmp_about_selected if summary.frames else 1
            for path, _kept, summary in results}
    for i, (path, kept, _summary) in enumerate(results):
        later = list(dict.fromkeys(f for s in kept for f in s.continues_into))
        # past the last session an ICMP error quoting one is all there is to find: read on
        # only where the scan counted one (or did not read the file), in this file and the
        # later files of its run, as in the files joined (`mergecap -a`); one with none is
        # numbered on by its frame count, not read
        run = _later_in_run(results, i)
        upto = max((k + 1 for k, (f, _n) in enumerate(run) if f in later or icmp.get(f, 1)),
                   default=0)
        then = [f for f, _n in run[:upto]]
        skip = {f: n for f, n in run[:upto] if f not in later and not icmp.get(f, 1)}
        read_on = any(icmp.get(f, 1) for f in (path, *then))
        try:
            times[path] = frame_times(path, frames_wanted(kept), backend=args.backend,
                                      then=later)
            runs[path] = frame_runs(path, kept, args.ports, backend=args.backend, then=then,
                                    read_on=read_on, skip=skip)
        except (FastcapError, OSError) as e:
            print(f"fastcap: warning: {path}: no frame times for the ladders: {e}",
                  file=_ERR)
    page = page_data(results, problems=_problems(results), times=times,
                     scan=ScanFacts(seconds=seconds, version=__version__), errors=errors,
                     spans=spans, runs=runs)
    if args.html == "-":  # report -o -: the page on standard output, as UTF-8 whatever the locale
        size = _write_stdout_bytes(render_report(page).encode("utf-8"))
        where = "standard output"
    else:
        try:
            size = write_report(args.html, page)
        except OSError as e:
            print(f"fastcap: cannot write {args.html}: {e.strerror or e}", file=_ERR)
            return False
        where = args.html
    print(f"fastcap: wrote {where} ({len(page['sessions'])} session(s), "
          f"{size / 1e6:.2f} MB)", file=_ERR)
    return True


def _later_in_run(results, i: int) -> list[tuple[str, int]]:
    """(path, frames) of the files after `results[i]` that the scan read on into from it,
    as one run of a ring buffer's files, in order."""
    out = []
    for path, _kept, summary in results[i + 1:]:
        if not summary.joined:
            break
        out.append((path, summary.frames))
    return out


def _write_stdout_bytes(data: bytes) -> int:
    """`data` written to standard output's bytes (after its text); a failed write is the
    output's failure (exit 120), a reader gone early stays BrokenPipeError."""
    try:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        raise
    except OSError as e:
        raise _OutputFailed(e) from None
    return len(data)


def _problems(results) -> list[dict]:
    """The triage groups of `results` as dicts, for the report's problems table."""
    return _problems_json(results)["problems"]


def _export_dir(args) -> None:
    """With --export-certs DIR, DIR made before anything is scanned: one that cannot be is
    an error of the command (exit 2), as the Zeek logs' directory is, not a warning for
    every session."""
    if not args.export_certs:
        return
    try:
        os.makedirs(args.export_certs, exist_ok=True)
    except OSError as e:
        print(f"fastcap: cannot write certificates in {args.export_certs}: {e.strerror or e}",
              file=_ERR)
        raise SystemExit(EXIT_UNREADABLE) from None


def _zeek_writer(args):
    """With --format zeek, the writer of the logs into -o DIR (default: here); else None."""
    if args.format != "zeek":
        return None
    from .out.zeek import ZeekWriter

    try:
        return ZeekWriter(args.output or ".", backend=args.backend, trust=args.trust,
                          ca_file=args.ca_file)
    except OSError as e:
        why = ("it is a file, not a directory (-o names the directory the logs go in)"
               if isinstance(e, FileExistsError) else e.strerror or str(e))
        print(f"fastcap: cannot write Zeek logs in {args.output or '.'}: {why}", file=_ERR)
        raise SystemExit(EXIT_UNREADABLE) from None


def _close_zeek(zeek, *, read_any: bool) -> None:
    """Put the finished logs in place and say where they went (stdout stays empty); when no
    capture could be read at all (a mistyped name), leave the logs already there alone."""
    if zeek is None:
        return
    if not read_any:
        zeek.abort()
        print(f"fastcap: no capture was read: the Zeek logs in {zeek.directory} are left as "
              "they were", file=_ERR)
        return
    lines = zeek.lines
    for target in zeek.close():
        print(f"fastcap: wrote {target} ({lines[target.stem]} lines)", file=_ERR)


def _inputs(args, options: ScanOptions, errors: list[dict]) -> tuple[ScanOptions, list[str], int]:
    """The captures named (directories and globs expanded), the options with their keys read,
    and the exit code so far: a name that is no readable file is told on stderr and recorded
    in `errors`; a key log warning makes it 1."""
    from .read.inputs import expand_inputs

    files, notes, bad_args = expand_inputs(args.files) if args.files else ([], [], [])
    options = _with_keys(options)
    code = EXIT_PROBLEMS if getattr(options.key_index, "warnings", None) else EXIT_OK
    if _told_inputs(notes, bad_args, errors):
        code = EXIT_UNREADABLE
    return options, files, code


def _told_inputs(notes: list[str], bad_args: list[str], errors: list[dict]) -> bool:
    """Tell on stderr what expanding the names found (files skipped, names that gave no
    file), recording the latter in `errors`; whether there were any of those."""
    for w in notes:
        print(f"fastcap: warning: {w}", file=_ERR)
    for e in bad_args:
        print(f"fastcap: {e}", file=_ERR)
        errors.append({"path": e.split(":", 1)[0], "error": e})
    return bool(bad_args)


def _file_read(path: str, summary, failure: list[str], errors: list[dict]) -> bool:
    """Tell on stderr how one capture's reading ended: its error (recorded in `errors`, and
    False), else its warnings (True)."""
    if failure:
        print(f"fastcap: {failure[0]}", file=_ERR)
        errors.append({"path": path, "error": failure[0]})
        return False
    for w in summary.warnings:
        print(f"fastcap: warning: {w}", file=_ERR)
    return True


def _read_evidence(args, only: str | None = None):
    """The --evidence files read once (or `only` their logs or settings), their warnings
    (file and line) on stderr."""
    from .evidence.read import read_evidence

    evidence = read_evidence(args.evidence, year=args.log_year,
                             utc_offset_s=args.log_utc_offset, only=only)
    for w in evidence.warnings:
        print(f"fastcap: warning: {w}", file=_ERR)
    return evidence


def _cmd_scan_evidence(args) -> int:
    """`scan --evidence`: every session collected first (the join estimates the log clock's
    skew from all of them), then joined to the logs, then printed in the format asked for."""
    import time
    from dataclasses import replace

    from .judge.diagnose import is_problem
    from .judge.judging import analyzer_for
    from .out import report
    from .out.evidence_text import evidence_json, format_evidence
    from .run.evidence import MAX_LOGS_ALONE, JoinSettings, attach_evidence, log_only
    from .run.scanner import has_problem

    started = time.perf_counter()
    _export_dir(args)
    settings = _read_evidence(args, "settings")  # small, and they set the expected name
    code = EXIT_PROBLEMS if settings.warnings else EXIT_OK
    if args.expect_name is None and (name := settings.settings.expected_name()):
        args.expect_name = name
        print(f"fastcap: expecting client certificates for {name} (the inbound connector's "
              "TlsSenderCertificateName)", file=_ERR)
    try:
        options = _scan_options(args)
        analyzer = analyzer_for(options)
    except (OSError, ValueError) as e:
        print(f"fastcap: {e}", file=_ERR)
        return EXIT_UNREADABLE
    results, errors = [], []
    options, files, opened = _inputs(args, options, errors)
    code = max(code, opened)
    for path, sessions, outcome in (_scan_streams(args, files, options, analyzer)
                                    if files else ()):
        kept = list(sessions)
        summary, failure = outcome()
        if not _file_read(path, summary, failure, errors):
            code = EXIT_UNREADABLE
            continue
        results.append((path, kept, summary))
    logs = _read_evidence(args, "logs")  # after the scan: the two never take memory at once
    if logs.warnings and code == EXIT_OK:
        code = EXIT_PROBLEMS
    evidence = replace(logs, files=settings.files + logs.files, settings=settings.settings,
                       warnings=settings.warnings + logs.warnings)
    joined = None
    if files:
        how = JoinSettings(args.join_tolerance, args.join_window, args.log_skew)
        joined = attach_evidence(results, evidence, how, expect_name=options.expect_name)
    lonely = (log_only(joined.unmatched_conversations, evidence) if joined
              else log_only(evidence.conversations, evidence, MAX_LOGS_ALONE))
    problems = any(x.with_problems or x.warnings for _, _, x in results) or any(
        is_problem(v) for item in lonely for v in item.verdicts)
    if problems and code == EXIT_OK:
        code = EXIT_PROBLEMS
    for _path, kept, _summary in results:
        if args.export_certs:
            for s in kept:
                for w in report.export_certs(s, args.export_certs):
                    print(f"fastcap: warning: {w}", file=_ERR)
        if args.only_problems:
            kept[:] = [s for s in kept if has_problem(s)]
    if args.format == "json":
        print(report.to_json(results, errors, {**_problems_json(results),
                                               **evidence_json(evidence, joined, lonely)}))
    elif args.format == "jsonl":
        for path, kept, _summary in results:
            for s in kept:
                print(report.to_jsonl_line(s, path))
        for item in lonely:
            print(json.dumps({"unmatched_log_conversation": item.to_dict(),
                              "schema_version": report.SCHEMA_VERSION}, default=str))
    elif args.format == "csv":
        sys.stdout.write(report.csv_header())
        for path, kept, _summary in results:
            for s in kept:
                sys.stdout.write(report.csv_line(s, path))
    elif args.format == "zeek":
        zeek = _zeek_writer(args)
        for path, kept, _summary in results:
            for s in kept:
                zeek.add(s, path)
        _close_zeek(zeek, read_any=bool(results))
    elif args.format == "table":
        _print_tables(args, results, len(files) > 1)
        print(format_evidence(evidence, joined, lonely, captured=bool(files)))
        if results:
            print()
            print(report.format_summary([x for _, _, x in results]))
    if args.html and not _write_html(args, results, time.perf_counter() - started,
                                     read_any=bool(results), errors=errors):
        return EXIT_UNREADABLE
    return code


def _problems_json(results) -> dict[str, list[dict]]:
    """JSON's top-level `problems`: the groups the table's triage block prints."""
    from .out.triage import triage

    return {"problems": [p.to_dict() for p in triage(results)]}


def _print_tables(args, results, several: bool) -> None:
    """The triage block (problems grouped by cause) over all files, then each file's session
    table: its first rows only, unless --details asks for every row and the findings."""
    from .out import report
    from .out.triage import format_triage, format_unchecked_names, problem_sessions, triage
    from .run.scanner import has_problem

    total = sum(summary.sessions for _p, _k, summary in results)
    problems = triage(results)
    if total or problems:
        print(format_triage(problems, total_sessions=total,
                            with_problems=problem_sessions(results), several_files=several,
                            files=[str(path) for path, _k, _s in results]))
        if unchecked := format_unchecked_names(results):
            print(unchecked)
        print()
    for path, kept, _summary in results:
        if several:
            print(f"== {printable(path)}")
        if kept:
            print(report.format_table(kept, None if args.details else report.TABLE_ROWS))
            problems = [s for s in kept if has_problem(s) or any(
                v.severity != "ok" for v in s.verdicts)] if args.details else []
            if problems:
                print("\nFindings:")
                for s in problems:
                    print(f"  session {s.number} ({s.client} -> {s.server}):")
                    print(report.format_details(s))
        else:
            print("no SMTP sessions" + (" with problems" if args.only_problems else "")
                  + f" on ports {','.join(map(str, sorted(args.ports)))}")
        print()


def _cmd_follow(args) -> int:
    with _long_lived(args.own_process):
        from .out.follow import format_follow
        from .session import iter_sessions

    seen = 0
    meta: list = []
    if _follow_files(args):
        return EXIT_UNREADABLE
    options = _with_keys(ScanOptions(
        ports=args.ports, implicit_tls_ports=args.implicit_tls_ports, backend=args.backend,
        stream_cap=args.stream_cap, keylog=_keylog(args), decrypt_limit=args.decrypt_limit))
    if args.more:
        return _follow_in_run(args, options)
    if args.in_file is not None and args.in_file != args.file:
        print(f"fastcap: --in {args.in_file}: not a file given", file=_ERR)
        return EXIT_UNREADABLE
    sessions = iter_sessions(args.file, options, keep_streams=lambda n: n == args.session,
                             capture_out=meta)
    for s in sessions:
        seen = max(seen, s.number)
        if s.number == args.session:
            if args.evidence:
                print(format_follow(s, *_follow_logs(args, s)))
            else:
                print(format_follow(s))
            sessions.close()  # reading stops here; `meta` gets what it met, damage included
            return EXIT_PROBLEMS if _warn_all(meta) else EXIT_OK
    _warn_all(meta)
    print(f"fastcap: {args.file}: no session {args.session} (the capture has {seen} on ports "
          f"{','.join(map(str, sorted(args.ports)))})", file=_ERR)
    return EXIT_UNREADABLE


def _follow_files(args) -> bool:
    """FILE NEXT... expanded as scan expands them (a directory's captures, a pattern's
    matches, in first-packet order), so the sessions are numbered as scan numbered them;
    whether a name gave no file (told on stderr)."""
    from .read.inputs import expand_inputs

    names = [args.file, *args.more]
    if all(n == "-" or os.path.isfile(n) for n in names):
        return False  # plain files (or -): as given
    files, notes, bad_args = expand_inputs(names)
    if _told_inputs(notes, bad_args, []) or not files:
        return True
    args.file, args.more = files[0], files[1:]
    return False


def _follow_in_run(args, options: ScanOptions) -> int:
    """follow FILE NEXT...: the files read as a scan of them reads them (a ring buffer's
    files joined), and session N of FILE shown with what it reaches of the later files;
    the warnings of the files it was read from follow it."""
    from .judge.judging import analyzer_for
    from .out.follow import format_follow
    from .run import streamed
    from .run.split import SplitScan
    from .session import Session

    paths = [args.file, *args.more]
    for p in paths:
        if p != "-" and not os.path.exists(p):
            print(f"fastcap: {p}: no such file", file=_ERR)
            return EXIT_UNREADABLE
        if p == "-" or not os.path.isfile(p):
            print(f"fastcap: {p}: follow reads several files only as regular files",
                  file=_ERR)
            return EXIT_UNREADABLE
    name = args.file if args.in_file is None else args.in_file
    if name not in paths:
        print(f"fastcap: --in {name}: not a file given", file=_ERR)
        return EXIT_UNREADABLE
    target = paths.index(name)
    args.file = name  # what --evidence joins the session's logs by
    events = streamed.iter_file_events(
        paths, options, analyzer_for(options), jobs=1,
        keep_streams=lambda k, n: k == target and n == args.session)
    found: Session | None = None
    seen, told, waiting, code = 0, [], {target}, EXIT_OK
    try:
        for k, item in events:
            if isinstance(item, Session):
                if k == target:
                    seen = max(seen, item.number)
                if k == target and item.number == args.session:
                    found = item
                    print(format_follow(item, *_follow_logs(args, item)) if args.evidence
                          else format_follow(item))
                    waiting |= {paths.index(p, target + 1) for p in item.continues_into}
            elif isinstance(item, SplitScan) and k in waiting:
                if item.error is not None:
                    print(f"fastcap: warning: {item.error}", file=_ERR)
                    code = EXIT_PROBLEMS
                elif item.meta is not None:
                    told.append(item.meta)
                waiting.discard(k)
                if not waiting:
                    break
    except FastcapError as e:
        print(f"fastcap: {e}", file=_ERR)
        return EXIT_UNREADABLE
    finally:
        events.close()
    if _warn_all(told):
        code = EXIT_PROBLEMS
    if found is not None:
        return code
    print(f"fastcap: {name}: no session {args.session} (read with the files given, it has "
          f"{seen} on ports {','.join(map(str, sorted(args.ports)))})", file=_ERR)
    return EXIT_UNREADABLE


def _warn_all(meta: list) -> bool:
    """Print the warnings of the captures read (their `meta`); whether there were any."""
    warned = False
    for m in meta:
        for w in m.warnings:
            print(f"fastcap: warning: {w}", file=_ERR)
            warned = True
    return warned


def _follow_logs(args, s) -> tuple[list, dict[int, int]]:
    """The log lines of the conversations joined to session `s`, on the capture's clock, and
    the capture times of the session's frames to place them by."""
    from .evidence.join import SessionKey, join
    from .out.follow import LogLine
    from .read.frametimes import frame_times

    evidence = _read_evidence(args)
    key = SessionKey.of(s, args.file)
    joined = join([key], evidence.conversations, tolerance_s=args.join_tolerance,
                  window_s=args.join_window, skew_s=args.log_skew)
    skews = {k.file: k.ns for k in joined.skews}
    logs = []
    for m in joined.matches.get((args.file, s.number), ()):
        c = m.conversation
        skew = skews.get(c.file, 0)
        logs += [LogLine(ts - skew, f"{c.file} line {line.number}", line.text)
                 for ts, line in evidence.lines_of(c)]
    if not logs:
        print(f"fastcap: no log line matched session {s.number}", file=_ERR)
    times = frame_times(args.file, range(s.first_frame, s.last_frame + 1),
                        backend=args.backend, then=s.continues_into)
    return logs, times


def _cmd_stats(args) -> int:
    with _long_lived(args.own_process):
        from .out.stats_text import format_text
        from .read.inputs import expand_inputs
        from .select.stats import compute_stats

    code = EXIT_OK
    results, errors = [], []
    options = ScanOptions(ports=args.ports, backend=args.backend)
    files, notes, bad_args = expand_inputs(args.files)  # directories and patterns, as scan
    if _told_inputs(notes, bad_args, errors):
        code = EXIT_UNREADABLE
    for path in files:
        try:
            s = compute_stats(path, options)
        except FastcapError as e:
            print(f"fastcap: {e}", file=_ERR)
            errors.append({"path": path, "error": str(e)})
            code = EXIT_UNREADABLE
            continue
        except ImportError as e:
            print(f"fastcap: {e}", file=_ERR)
            return EXIT_UNREADABLE
        for w in s.warnings:
            print(f"fastcap: warning: {w}", file=_ERR)
        if s.warnings and code == EXIT_OK:
            code = EXIT_PROBLEMS
        results.append(s)
        if not args.json:
            if len(results) > 1:
                print()
            print(format_text(s))
    if args.json:
        json.dump({"files": [r.to_dict() for r in results], "errors": errors}, sys.stdout,
                  indent=2)
        print()
    return code


def tune_allocator() -> None:
    """Ask glibc to keep 64 MiB of slack at the top of the heap.

    By default glibc hands the heap top back to the kernel whenever more than 128 KiB of it is
    free, so every window's numpy temporaries are page-faulted in again: about 10,000 extra
    faults per GB scanned, ~10% of the CPU time of `stats`.  This changes the whole process,
    so only the command line does it; a program embedding fastcap can get the same effect
    with the environment variable MALLOC_TOP_PAD_=67108864.  A no-op off glibc, or when the
    user set MALLOC_TOP_PAD_ already.
    """
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        glibc = ""
    if not glibc.startswith("glibc") or "MALLOC_TOP_PAD_" in os.environ:
        return
    import ctypes

    try:
        ctypes.CDLL(None).mallopt(-2, 64 << 20)  # -2: M_TOP_PAD
    except (OSError, AttributeError):
        pass


def single_threaded_blas() -> None:
    """Keep numpy's OpenBLAS from starting its thread pool, unless the user sized it.

    fastcap calls no BLAS routine, yet on import OpenBLAS starts a thread for each core
    beyond the first, and they busy-wait as they start: on two cores, 60 ms of CPU time per
    `import numpy` (0.16 s against 0.10 s), about a third of a small scan's CPU time.  Read
    once, when numpy is first imported, so only the command line sets it, before its
    imports; a program embedding fastcap can set OPENBLAS_NUM_THREADS=1 in its own
    environment.
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "scan" and args.output is not None and args.format != "zeek":
        parser.commands["scan"].error(
            "-o/--output goes with --format zeek (the directory for its logs)")
    if args.command == "scan" and args.html == "-":
        parser.commands["scan"].error(
            "--html -: standard output carries the scan's own output; give a file name, "
            "or use fastcap report -o - for the page alone")
    if args.command == "report" and args.details:
        parser.commands["report"].error(
            "-v/--details is for scan's table: the report already lists every session with "
            "its findings")
    tune_allocator()
    args.own_process = argv is None  # the console script or python -m, not a caller's call
    if args.own_process and sys.stdout is not None:
        sys.stdout = _Output(sys.stdout)
    try:
        if args.command == "stats":
            return _cmd_stats(args)
        if args.command == "follow":
            return _cmd_follow(args)
        if args.command == "scan":
            return _cmd_scan(args)
        if args.command == "report":
            args.format, args.html = None, args.output
            return _cmd_scan(args)
    except FastcapError as e:
        print(f"fastcap: {e}", file=_ERR)
        return EXIT_UNREADABLE
    except KeyboardInterrupt:
        print("fastcap: interrupted", file=_ERR)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except _OutputFailed as e:
        print(f"fastcap: cannot write the output: {e}", file=_ERR)
        return EXIT_UNWRITTEN
    finally:
        if isinstance(sys.stdout, _Output):
            sys.stdout = sys.stdout.stream
    return EXIT_UNREADABLE


class _OutputFailed(Exception):
    """Standard output could not be written (a full disk): not an OSError, so no handler
    meant for reading a capture or writing a log takes it for its own."""


class _Output:
    """Standard output while the command runs: a failed write (an output longer than the
    buffer fails in a print, not at the last flush) ends the command with one line and
    exit 120, as a failed last flush does.  A reader gone (``| head``) stays BrokenPipeError."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise _OutputFailed(e) from None

    def flush(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError:
            raise
        except OSError as e:
            raise _OutputFailed(e) from None

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def _flushed(code: int) -> int:
    """Flush stdout and stderr as an exit does, and the exit code after it.  A reader gone
    (``| head``) counts as main() counts it; any other failure (a full disk) is told in one
    line and gives Python's own code for it.  A stream closed at start (``>&-``) is None."""
    if sys.stdout is not None:
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            code = EXIT_OK
        except (OSError, ValueError) as e:
            if sys.stderr is not None and code != EXIT_UNWRITTEN:  # main() told it already
                print(f"fastcap: cannot write the output: {e}", file=_ERR)
            code = EXIT_UNWRITTEN
    if sys.stderr is not None:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
    return code


def run() -> NoReturn:
    """The console script and ``python -m fastcap.cli``: ``main()``, then end the process
    without tearing the interpreter down.  By then the command has closed its outputs and
    its worker processes; the standard streams are flushed, other threads joined and the
    exit handlers run, as at any exit.  What is skipped is freeing every module, class and
    table one by one, numpy's and cryptography's included: about 9 ms of every run here
    (the 26-frame example took 256.5 ms instead of 265.2).  A usage error, ``--help`` and
    ``--version`` end the same way, with their own code (an ordinary exit would turn a
    message left unwritten in stderr's buffer into exit 120); any other exception leaves the
    ordinary way."""
    single_threaded_blas()
    try:
        code = main()
    except SystemExit as stop:
        if not isinstance(stop.code, int | None):
            raise
        code = stop.code or EXIT_OK
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_handlers is None:  # another Python: leave the ordinary way
        sys.exit(code)
    code = _flushed(code)
    for t in threading.enumerate():
        if t is not threading.current_thread() and not t.daemon:
            t.join()
    run_exit_handlers()
    os._exit(code)


if __name__ == "__main__":
    run()
