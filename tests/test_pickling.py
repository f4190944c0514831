"""fastcap.pickling: judged sessions cross process boundaries (-j N) unchanged."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest

from fastcap.judge import diagnose, x509check
from fastcap.pickling import compact
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
