"""The shortcuts that keep a session's Python cost down give what the plain ways give:
records built through their slot descriptors, frames looked up many at a time, the TLS 1.3
inference kept for the session asked about again, endpoint texts kept per address."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fastcap.pickling import maker
from fastcap.proto.smtp.dialogue import CommandRecord, ReplyRecord
from fastcap.proto.tls import parse_handshake
from fastcap.proto.tls.facts import AlertInfo, StreamStop, TlsAnomaly, Where
from fastcap.proto.tls.inference import ClientCertInference, _infer, infer_client_cert
from fastcap.session import addr_text, endpoint_text
from fastcap.tcp.reassembly import StreamDir

from .test_tls import SESSIONS, flights, streams


@pytest.mark.parametrize("cls, values", [
    (ReplyRecord, (250, "2.0.0", "ok", 12, 7, "EHLO")),
    (CommandRecord, ("EHLO", "mail.example", 0, None)),
    (AlertInfo, (True, 2, 42, False, Where(3, 4))),
    (TlsAnomaly, (False, "tls.x", "odd", Where(0, None))),
    (StreamStop, (True, "end", "stream ended at offset 9", Where(9, 2))),
])
def test_maker_builds_what_the_class_builds(cls, values):
    make = maker(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for built in (make(*values), make(**dict(zip(names, values, strict=True)))):
        assert type(built) is cls and built == cls(*values)
        assert hash(built) == hash(cls(*values))
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(built, names[0], values[0])
    with pytest.raises(TypeError):
        make(*values[:-1])  # no defaults: every field is given


def test_maker_wants_a_compact_class():
    with pytest.raises(TypeError, match="compact"):
        maker(ClientCertInference)  # frozen and slotted, but not compact


def _stream_dir(fake) -> StreamDir:
    ends = [*fake.starts[1:], len(fake.data)]
    return StreamDir(
        data=fake.data, gaps=list(fake.gaps),
        seg_offset=np.array(fake.starts, np.int64),
        seg_len=np.array([e - s for s, e in zip(fake.starts, ends, strict=True)], np.int32),
        seg_frame=np.array(fake.frames, np.int64), seen_bytes=len(fake.data), capped=False,
        isn=0, syn_frame=None, fin_frame=None, rst_frame=None)


def test_frames_at_is_frame_at_of_each_offset():
    s = StreamDir(data=bytes(40), gaps=[(10, 5)], seg_offset=np.array([0, 15, 30], np.int64),
                  seg_len=np.array([10, 10, 10], np.int32),
                  seg_frame=np.array([3, 8, 5], np.int64), seen_bytes=40, capped=False,
                  isn=0, syn_frame=None, fin_frame=None, rst_frame=None)
    offsets = [None, -1, 0, 9, 10, 14, 15, 24, 25, 30, 39, 40, 10**9]
    assert s.frames_at(offsets) == [None if o is None else s.frame_at(o) for o in offsets]
    assert s.frames_at(offsets) == [None, None, 3, 3, None, None, 8, 8, None, 5, 5, None, None]
    assert s.frames_at([]) == []


@pytest.mark.parametrize("args", SESSIONS, ids=lambda a: "-".join(map(str, a)))
def test_a_handshake_reads_the_same_with_frames_looked_up_at_once(args):
    c, s = streams(flights(*args), b"220 ready\r\n", b"220 ready\r\n")
    plain = parse_handshake(c, s, 11, 11)  # the test streams look frames up one by one
    cd, sd = _stream_dir(c), _stream_dir(s)
    assert parse_handshake(cd, sd, 11, 11) == plain
    assert plain.client_hello_at.frame is not None and plain.server_hello_at.frame is not None


def test_the_inference_kept_is_the_inference_made():
    hs = [parse_handshake(*streams(flights(*args))) for args in SESSIONS if args[0] == "1.3"]
    assert hs and all(h.tls13_encrypted for h in hs)
    for h in hs:
        first = infer_client_cert(h)
        assert first == _infer(h) and infer_client_cert(h) is first
    assert [infer_client_cert(h) for h in hs] == [_infer(h) for h in hs]
    tls12 = parse_handshake(*streams(flights("1.2", "optional", "client")))
    assert infer_client_cert(tls12) == _infer(tls12)
    assert not infer_client_cert(tls12).decided


def test_endpoint_text_is_the_same_for_any_bytes_like_address():
    v4 = b"\0" * 10 + b"\xff\xff" + bytes([192, 0, 2, 7])
    v6 = bytes.fromhex("20010db8000000000000000000000001")
    for addr, want in ((v4, "192.0.2.7:25"), (v6, "[2001:db8::1]:25")):
        assert endpoint_text(addr, 25) == want == endpoint_text(bytearray(addr), 25)
        assert endpoint_text(addr, 25) == want  # kept
    assert addr_text(v6) == "2001:db8::1"
