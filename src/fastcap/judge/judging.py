"""Certificate checks and verdicts for one session: the step every way of scanning shares
(one process, worker processes, a cluster), kept apart from all of them so that none has to
import another to judge."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..options import JudgeOptions
from ..proto.tls.wirenames import wire_str
from ..session import Session, evolve
from ..verdict import ChainCheck, Verdict
from .diagnose import diagnose

if TYPE_CHECKING:  # X.509 code: imported when the first certificate is checked
    from .x509check import Analyzer


class Roots(Protocol):
    """What `trust_store` returns (an `x509check.TrustStore`), named here so that reading the
    type hints of this module's functions needs no X.509 code."""

    def plus(self, other: Roots) -> Roots: ...


class Checker(Protocol):
    """What judging needs of an analyzer (an `x509check.Analyzer`, or a `MozillaAnalyzer`
    that makes one at its first check), named here for the same reason as `Roots`."""

    today: dt.datetime

    def check(self, ders: Sequence[bytes], *, role: str, at: dt.datetime,
              expected_name: str | None = None) -> ChainCheck: ...


def trust_store(trust: str = "mozilla", ca_file: str | os.PathLike | None = None) -> Roots:
    """Mozilla's roots (certifi) or the system's, plus an optional PEM bundle."""
    from .x509check import TrustStore

    if trust not in ("mozilla", "system"):
        raise ValueError(f"unknown trust store {trust!r}: use mozilla or system")
    store = TrustStore.mozilla() if trust == "mozilla" else TrustStore.system()
    if ca_file is not None:
        store = store.plus(TrustStore.from_pem_file(ca_file))
    return store


def _as_utc(t: dt.datetime) -> dt.datetime:
    """Naive datetimes taken as UTC, as the Analyzer takes them: capture timestamps are."""
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


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


def judgement(session: Session, analyzer: Checker, *,
              expect_name: str | None = None) -> Judgement:
    """Check the certificates a session carried and diagnose it; the session is only read."""
    t = session.tls
    client = server = None
    if t is not None and (t.client_certificate or t.server_certs):
        # A capture without times (zeroed, or Simple Packet Blocks) dates nothing: its
        # certificates are judged today, as a server receiving them now would.
        at = _when(session.first_ts_ns) if session.first_ts_ns else analyzer.today
        if t.client_certificate:
            client = analyzer.check(t.client_certificate, role="client", at=at,
                                    expected_name=expect_name)
        if t.server_certs:
            hello = t.client_hello
            sni = wire_str(hello.sni) if hello is not None and hello.sni is not None else None
            server = analyzer.check(t.server_certs, role="server", at=at, expected_name=sni)
    verdicts = diagnose(session, client, server, expect_name=expect_name)
    return Judgement(client, server, tuple(verdicts))


def judge(session: Session, analyzer: Checker, *,
          expect_name: str | None = None) -> Session:
    """The session with its certificate checks and verdicts (a new one: sessions are frozen)."""
    j = judgement(session, analyzer, expect_name=expect_name)
    return evolve(session, client_check=j.client_check, server_check=j.server_check,
                  verdicts=j.verdicts)


def analyzer_for(options: JudgeOptions) -> Checker:
    """The Analyzer a worker judges with: same roots and same "today" as the caller's.
    Mozilla's roots alone make a `MozillaAnalyzer`, which loads them at the first check."""
    if options.trust == "mozilla" and options.ca_data is None:
        return MozillaAnalyzer(options.today)
    from .x509check import Analyzer, TrustStore

    store = trust_store(options.trust)
    if options.ca_data is not None:
        store = store.plus(TrustStore.from_bundle(options.ca_data, options.ca_file or "CA"))
    return Analyzer(store, today=options.today)


class MozillaAnalyzer:
    """An `Analyzer` of Mozilla's roots that is made when the first certificate is checked:
    a capture showing none (TLS 1.3, plain SMTP) never imports X.509 code nor reads the
    store.  The bundle is found and opened here, so that one which cannot be read still
    fails the scan before it starts; ``today`` is fixed here as the Analyzer's would be."""

    __slots__ = ("today", "_analyzer", "_kept")

    def __init__(self, today: dt.datetime | None = None) -> None:
        from .cabundle import certifi_bundle

        with open(certifi_bundle(), "rb"):
            pass
        self.today = _as_utc(dt.datetime.now(dt.UTC) if today is None else today)
        self._analyzer: Analyzer | None = None
        # check's results by the identity of the certificates (kept alive by the entry):
        # the parsed Certificate messages are memoised, so the same chain comes as the same
        # bytes objects in every session presenting it, and hashing it each time cost more
        # than the rest of judging the session.
        self._kept: dict[tuple, tuple[tuple[bytes, ...], ChainCheck]] = {}

    @property
    def analyzer(self) -> Analyzer:
        """The Analyzer itself (made on first use)."""
        if self._analyzer is None:
            from .x509check import Analyzer

            self._analyzer = Analyzer(trust_store("mozilla"), today=self.today)
        return self._analyzer

    def check(self, ders: Sequence[bytes], *, role: str, at: dt.datetime,
              expected_name: str | None = None) -> ChainCheck:
        """`Analyzer.check`."""
        analyzer = self.analyzer
        if not all(type(der) is bytes for der in ders):  # only immutable bytes are kept
            return analyzer.check(ders, role=role, at=at, expected_name=expected_name)
        # Analyzer.check shares its results by UTC day and validity phase: so does this
        at = _as_utc(at)
        key = (tuple(map(id, ders)), role, at.date(), analyzer.phase(ders, at), expected_name)
        kept = self._kept.get(key)
        if kept is not None:
            analyzer.cache_hits += 1  # the hit Analyzer.check would have counted (it forgets none)
            return kept[1]
        result = analyzer.check(ders, role=role, at=at, expected_name=expected_name)
        if len(self._kept) >= MAX_KEPT_CHECKS:
            self._kept.clear()
        self._kept[key] = (tuple(ders), result)
        return result


MAX_KEPT_CHECKS = 1024  # MozillaAnalyzer's identity-keyed results (the Analyzer keeps all)
