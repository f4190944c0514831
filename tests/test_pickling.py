"""fastcap.pickling: judged sessions cross process boundaries (-j N) unchanged."""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from fastcap.judge import diagnose, x509check
from fastcap.pickling import compact, maker
from fastcap.proto import smtp, tls
from fastcap.run.scanner import scan

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _compact_classes():
    for mod in (tls, smtp, diagnose, x509check):
        for obj in vars(mod).values():
            if isinstance(obj, type) and "__compact_setters__" in vars(obj):
                yield obj


def test_the_session_records_pickle_compactly():
    names = {c.__name__ for c in _compact_classes()}
    assert {"Where", "ClientHello", "TlsHandshake", "ReplyRecord", "Verdict",
            "ChainCheck", "CertInfo"} <= names


@pytest.mark.parametrize("capture", ["all-scenarios.pcapng",
                                     "exchange-online-no-client-cert.pcap"])
def test_judged_sessions_survive_a_round_trip(capture):
    sessions = list(scan(EXAMPLES / capture, ca_file=EXAMPLES / "test-root.pem"))
    assert any(s.tls and s.tls.client_hello for s in sessions)
    back = pickle.loads(pickle.dumps(sessions, protocol=pickle.HIGHEST_PROTOCOL))
    for a, b in zip(sessions, back, strict=True):
        assert b == a
        assert b.to_dict() == a.to_dict()
        for f in ("tls", "smtp", "client_check", "server_check"):
            assert getattr(b, f) == getattr(a, f)
        assert [type(v) for v in b.verdicts] == [type(v) for v in a.verdicts]


def test_every_field_comes_back():
    for cls in _compact_classes():
        names = [f.name for f in dataclasses.fields(cls)]
        obj = object.__new__(cls)
        for n, store in zip(names, cls.__compact_setters__, strict=True):
            store(obj, f"value of {n}")
        back = pickle.loads(pickle.dumps(obj))
        assert type(back) is cls
        assert [getattr(back, n) for n in names] == [f"value of {n}" for n in names]


def test_compact_refuses_what_it_cannot_rebuild():
    @dataclasses.dataclass
    class Plain:
        x: int

    with pytest.raises(TypeError, match="slotted"):
        compact(Plain)

    @dataclasses.dataclass(frozen=True, slots=True)
    class Derived:
        x: int

        def __post_init__(self) -> None:
            pass

    with pytest.raises(TypeError, match="__post_init__"):
        compact(Derived)


@compact
@dataclasses.dataclass(frozen=True, slots=True)
class _One:
    only: object


@compact
@dataclasses.dataclass(frozen=True, slots=True)
class _Three:
    a: object
    b: object
    c: object


def test_a_pickle_names_the_class_builder_and_the_values_only():
    for obj, values in ((_One(("x", 1)), (("x", 1),)), (_Three(1, None, b"z"), (1, None, b"z"))):
        make, args = obj.__reduce__()
        assert make is maker(type(obj)) and args == values
        back = pickle.loads(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
        assert type(back) is type(obj) and back == obj and back is not obj


def test_the_builder_is_made_once_and_only_when_needed():
    @compact
    @dataclasses.dataclass(frozen=True, slots=True)
    class Fresh:
        x: int

    assert not isinstance(vars(Fresh)["__compact_make__"], staticmethod)  # not compiled yet
    first = Fresh.__compact_make__
    assert isinstance(vars(Fresh)["__compact_make__"], staticmethod)
    assert Fresh.__compact_make__ is first and maker(Fresh) is first
    assert first(7) == Fresh(7)


def test_a_process_that_never_built_a_record_unpickles_one():
    """Executors unpickle in a fresh process: its builders are made by the unpickling."""
    session = next(s for s in scan(EXAMPLES / "all-scenarios.pcapng") if s.tls is not None)
    blob = pickle.dumps(session, protocol=pickle.HIGHEST_PROTOCOL)
    code = ("import pickle, sys; s = pickle.loads(sys.stdin.buffer.read()); "
            "sys.stdout.buffer.write(pickle.dumps((s.to_dict(), repr(s))))")
    out = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True,
                         check=True).stdout
    assert pickle.loads(out) == (session.to_dict(), repr(session))


def test_threads_pickling_a_class_first_at_once_all_name_one_builder():
    """Pickle refuses a builder that is not the one the class holds; threads that make it at
    the same moment must agree.  A tiny switch interval lets them interleave inside the
    compilation."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(20):
            @compact
            @dataclasses.dataclass(frozen=True, slots=True)
            class Raced:
                a: int
                b: int
                c: int
                d: int

            got = []
            start = threading.Barrier(6)

            def first_use(cls=Raced, got=got, start=start):
                start.wait()
                got.append(cls.__compact_make__)

            threads = [threading.Thread(target=first_use) for _ in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert len(got) == 6 and all(f is maker(Raced) for f in got)
    finally:
        sys.setswitchinterval(interval)
