"""Certificate checks and verdicts for one session: the step every way of scanning shares
(one process, worker processes, a cluster), kept apart from all of them so that none has to
import another to judge."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

from ..options import JudgeOptions
from ..session import Session
from ..verdict import Verdict
from .diagnose import diagnose
from .x509check import Analyzer, ChainCheck, TrustStore


def trust_store(trust: str = "mozilla", ca_file: str | os.PathLike | None = None) -> TrustStore:
    """Mozilla's roots (certifi) or the system's, plus an optional PEM bundle."""
    if trust not in ("mozilla", "system"):
        raise ValueError(f"unknown trust store {trust!r}: use mozilla or system")
    store = TrustStore.mozilla() if trust == "mozilla" else TrustStore.system()
    if ca_file is not None:
        store = store.plus(TrustStore.from_pem_file(ca_file))
    return store


def _when(ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ns // 1_000_000_000, dt.UTC)


@dataclass(frozen=True, slots=True)
class Judgement:
    """What judging one session found: the checks of the chains it carried and its verdicts
    (most severe first).  A value apart from the Session, so judging reads facts and writes
    nothing; `judge` is the step that stores it on the Session."""

    client_check: ChainCheck | None
    server_check: ChainCheck | None
    verdicts: tuple[Verdict, ...]


def judgement(session: Session, analyzer: Analyzer, *,
              expect_name: str | None = None) -> Judgement:
    """Check the certificates a session carried and diagnose it; the session is only read."""
    t = session.tls
    at = _when(session.first_ts_ns)
    client = server = None
    if t is not None:
        if t.client_certificate:
            client = analyzer.check(t.client_certificate, role="client", at=at,
                                    expected_name=expect_name)
        if t.server_certs:
            sni = t.client_hello.sni if t.client_hello is not None else None
            server = analyzer.check(t.server_certs, role="server", at=at, expected_name=sni)
    verdicts = diagnose(session, client, server, expect_name=expect_name)
    return Judgement(client, server, tuple(verdicts))


def judge(session: Session, analyzer: Analyzer, *, expect_name: str | None = None) -> Session:
    """Attach certificate checks and verdicts to a session (in place; returned for chaining)."""
    j = judgement(session, analyzer, expect_name=expect_name)
    session.client_check, session.server_check = j.client_check, j.server_check
    session.verdicts = list(j.verdicts)
    return session


def analyzer_for(options: JudgeOptions) -> Analyzer:
    """The Analyzer a worker judges with: same roots and same "today" as the caller's."""
    store = trust_store(options.trust)
    if options.ca_data is not None:
        store = store.plus(TrustStore.from_bundle(options.ca_data, options.ca_file or "CA"))
    return Analyzer(store, today=options.today)
