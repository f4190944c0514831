"""What a scan was asked to do, as one validated value: the defaults are written here and
nowhere else, every entry point (`scan`, `iter_sessions`, `compute_stats`, the CLI, ...) reads
them from here, and the same value travels to worker processes and cluster workers so they
build and judge sessions exactly as the caller's own scan would."""

from __future__ import annotations

import datetime as dt
import operator
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields

DEFAULT_PORTS = frozenset({25})  # SMTP relay
DEFAULT_IMPLICIT_TLS_PORTS = frozenset({465})  # SMTPS: TLS from the first byte
DEFAULT_CAP = 256 * 1024  # bytes kept per direction of a connection
MAX_CAP = 1 << 30
PIECE = 16 << 20  # bytes read at a time from a compressed file or a pipe
DEFAULT_TRUST = "mozilla"
TRUST_STORES = ("mozilla", "system")
DEFAULT_BACKEND = "auto"
BACKEND_CHOICES = ("auto", "native", "python")
DEFAULT_DECRYPT_LIMIT = 64 * 1024  # application-data bytes decrypted per direction
# Joining mail-server logs to sessions (fastcap.evidence.join): seconds a log entry that gives
# both endpoints may lie from its session once the clock skew is taken off, and seconds around
# a session an entry that gives only the peer's address may lie.
DEFAULT_JOIN_TOLERANCE_S = 300.0
DEFAULT_JOIN_WINDOW_S = 10.0
# A file name as the API takes it: bytes too, as os functions do (read as os.fsdecode gives it).
AnyPath = str | bytes | os.PathLike


def _ports(value: Iterable[int], name: str) -> frozenset[int]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a collection of port numbers, not "
                        f"{type(value).__name__}")
    out = set()
    for p in value:
        if isinstance(p, bool) or not hasattr(type(p), "__index__"):
            raise TypeError(f"{name}: a port is an int, not {type(p).__name__} ({p!r})")
        n = operator.index(p)
        if not 0 <= n <= 65535:
            raise ValueError(f"{name}: port {n} is outside 0..65535")
        out.add(n)
    return frozenset(out)


def _count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1")
    return value


def _paths(value: object, name: str) -> tuple[str, ...]:
    """One path or several, each as text (`os.fsdecode`: a bytes path names the file the
    os functions would open, and messages then name it as text, not as a bytes repr)."""
    if isinstance(value, str | bytes | os.PathLike):
        return (os.fsdecode(value),)
    if not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a path or a collection of paths, not "
                        f"{type(value).__name__}")
    out = []
    for p in value:
        if not isinstance(p, str | bytes | os.PathLike):
            raise TypeError(f"{name}: a path is a str, bytes or os.PathLike, not "
                            f"{type(p).__name__}")
        out.append(os.fsdecode(p))
    return tuple(out)


def _read_ca(ca_file: str) -> bytes:
    """The bundle's bytes: workers get them, so their machines need not see the file."""
    try:
        with open(ca_file, "rb") as f:
            return f.read()
    except OSError as e:
        raise ValueError(f"{ca_file}: cannot read CA file: {e.strerror or e}"
                         ) from None


@dataclass(frozen=True, slots=True)
class ScanOptions:
    """Everything a scan is asked to do that changes its results, checked once when built.

    `ports` are the server ports to select, `implicit_tls_ports` those where TLS starts at
    once; `expect_name` the name the client certificate must carry; `trust` the root store
    (mozilla or system) plus the optional `ca_file` bundle, read once into `ca_data`;
    `backend` the reader (auto, native, python); `stream_cap` the bytes kept per direction;
    `jobs`/`parts` how many worker processes and byte ranges; `piece` the bytes read at a
    time from a stream; `today` the instant every worker judges validity at (now, unless
    given); `keylog` the NSS key log files to decrypt TLS with, `decrypt_limit` the bytes of
    application data decrypted per direction, and `key_index` the key log built from them
    once per scan (`fastcap.session.with_keys`), with the secrets blocks of the captures in
    `secrets_read`; it travels to the workers with the rest."""

    ports: frozenset[int] = DEFAULT_PORTS
    implicit_tls_ports: frozenset[int] = DEFAULT_IMPLICIT_TLS_PORTS
    expect_name: str | None = None
    trust: str = DEFAULT_TRUST
    ca_file: str | None = None  # its name, for messages; workers use ca_data
    ca_data: bytes | None = None
    backend: str = DEFAULT_BACKEND
    stream_cap: int = DEFAULT_CAP
    jobs: int = 1
    parts: int | None = None
    piece: int = PIECE
    today: dt.datetime | None = None
    keylog: tuple[str, ...] = ()
    decrypt_limit: int = DEFAULT_DECRYPT_LIMIT
    key_index: object | None = field(default=None, compare=False, repr=False)
    secrets_read: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "ports", _ports(self.ports, "ports"))
        put(self, "implicit_tls_ports", _ports(self.implicit_tls_ports, "implicit_tls_ports"))
        if self.expect_name is not None and not isinstance(self.expect_name, str):
            raise TypeError(f"expect_name must be a str or None, not "
                            f"{type(self.expect_name).__name__}")
        if self.expect_name is not None and not self.expect_name.strip().rstrip("."):
            # compared trimmed of spaces and a trailing dot: it would name nothing, and
            # judge as no name given without a word (the command line refuses it too)
            raise ValueError(f"expect_name {self.expect_name!r} names nothing: give a name, "
                             "or None for no name check")
        if self.trust not in TRUST_STORES:
            raise ValueError(f"unknown trust store {self.trust!r}: use mozilla or system")
        if self.backend not in BACKEND_CHOICES:
            raise ValueError(f"unknown backend {self.backend!r}; use auto, native or python")
        if isinstance(self.stream_cap, bool) or not isinstance(self.stream_cap, int):
            raise TypeError(f"stream_cap must be an int, not {type(self.stream_cap).__name__}")
        if not 0 <= self.stream_cap <= MAX_CAP:
            raise ValueError(f"stream_cap must be within 0..{MAX_CAP}")
        _count(self.jobs, "jobs")
        if self.parts is not None:
            _count(self.parts, "parts")
        _count(self.piece, "piece")
        put(self, "keylog", _paths(self.keylog, "keylog"))
        if isinstance(self.decrypt_limit, bool) or not isinstance(self.decrypt_limit, int):
            raise TypeError(f"decrypt_limit must be an int, not "
                            f"{type(self.decrypt_limit).__name__}")
        if not 0 <= self.decrypt_limit <= MAX_CAP:
            raise ValueError(f"decrypt_limit must be within 0..{MAX_CAP}")
        if self.ca_file is not None:
            put(self, "ca_file", os.fsdecode(self.ca_file))
            if self.ca_data is None:
                put(self, "ca_data", _read_ca(self.ca_file))
        if self.today is None:
            put(self, "today", dt.datetime.now(dt.UTC))
        elif not isinstance(self.today, dt.datetime):
            raise TypeError(f"today must be a datetime, not {type(self.today).__name__}")

    @classmethod
    def build(cls, caller: str = "ScanOptions.build", **kw: object) -> ScanOptions:
        """The options from keywords (the names of the fields), validated; an unknown
        keyword is a TypeError naming `caller`."""
        for k in kw:
            if k not in _FIELDS:
                raise TypeError(f"{caller}() got an unexpected keyword argument {k!r}")
        return cls(**kw)  # type: ignore[arg-type]


_FIELDS = frozenset(f.name for f in fields(ScanOptions))


def resolve(options: ScanOptions | None, kw: Mapping[str, object], caller: str
            ) -> ScanOptions:
    """`options` as given, or built from `kw`: one way of saying it, not both."""
    if options is None:
        return ScanOptions.build(caller, **kw)
    if not isinstance(options, ScanOptions):
        raise TypeError(f"{caller}(): options must be a ScanOptions, not "
                        f"{type(options).__name__}")
    if kw:
        raise TypeError(f"{caller}() takes either options or the keywords that build them, "
                        f"not both (got options and {', '.join(sorted(kw))})")
    return options


JudgeOptions = ScanOptions  # its former name: what workers need to judge as `scan` does


def judge_options(**kw: object) -> ScanOptions:
    """ScanOptions.build under its former name."""
    return ScanOptions.build("judge_options", **kw)
