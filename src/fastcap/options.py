"""What a scan was asked to do, as one value that travels to worker processes and cluster
workers: they build and judge sessions exactly as the caller's own scan would."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .reassembly import DEFAULT_CAP
from .selection import DEFAULT_PORTS
from .session import DEFAULT_IMPLICIT_TLS_PORTS


@dataclass
class JudgeOptions:
    """What a worker needs to build and judge sessions the way `scanner.scan` does."""

    ports: frozenset[int]
    implicit_tls_ports: frozenset[int]
    expect_name: str | None = None
    trust: str = "mozilla"
    ca_file: str | None = None  # its name, for messages; workers use ca_data
    ca_data: bytes | None = None
    backend: str = "auto"
    stream_cap: int = DEFAULT_CAP
    today: Any = None  # datetime fixed by the caller: every worker judges "today" alike


def judge_options(*, ports: Iterable[int] = DEFAULT_PORTS,
                  implicit_tls_ports: Iterable[int] = DEFAULT_IMPLICIT_TLS_PORTS,
                  expect_name: str | None = None, trust: str = "mozilla",
                  ca_file: str | os.PathLike | None = None, backend: str = "auto",
                  stream_cap: int = DEFAULT_CAP, today: dt.datetime | None = None
                  ) -> JudgeOptions:
    """What worker processes (or cluster workers) need to judge sessions as `scan` does.
    The CA bundle travels as bytes: workers need not see the file."""
    data = None
    if ca_file is not None:
        try:
            with open(ca_file, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ValueError(f"{ca_file}: cannot read CA file: {e.strerror or e}") from None
    return JudgeOptions(frozenset(int(p) for p in ports),
                        frozenset(int(p) for p in implicit_tls_ports), expect_name, trust,
                        None if ca_file is None else os.fspath(ca_file), data, backend,
                        stream_cap, today or dt.datetime.now(dt.UTC))
