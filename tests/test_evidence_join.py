"""Joining log conversations to capture sessions: exact endpoints, peer and time, clock skew,
and what stays unmatched, whatever the order the conversations come in."""

from __future__ import annotations

import pickle
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastcap.evidence.join import (
    DEFAULT_TOLERANCE_S,
    DEFAULT_WINDOW_S,
    SessionKey,
    join,
    normal_ip,
)
from fastcap.evidence.records import LogConversation, LogReply, Where

S = 1_000_000_000
T0 = 1_773_134_102_118_000_000  # 2026-03-10T09:15:02.118Z
EXO = "52.101.68.5"


def key(number: int, start_s: float, *, client: str = "10.1.2.10", cport: int = 50123,
        server: str = EXO, sport: int = 25, dur_s: float = 2.0, file: str = "cap.pcap"
        ) -> SessionKey:
    start = T0 + round(start_s * S)
    return SessionKey(file, number, client, cport, server, sport, start,
                      start + round(dur_s * S), number * 100)


def send_log(line: int, start_s: float, *, local: str = "10.1.2.10", lport: int | None = 50123,
             remote: str = EXO, rport: int | None = 25, file: str = "SEND20260310-1.LOG",
             dur_s: float = 2.0, kind: str = "exchange-send", role: str = "client",
             replies: tuple[LogReply, ...] = ()) -> LogConversation:
    start = T0 + round(start_s * S)
    return LogConversation(kind, file, Where(file, line, line * 80), Where(file, line + 9,
                           line * 80 + 700), start, start + round(dur_s * S), role,
                           local_ip=local, local_port=lport, remote_ip=remote,
                           remote_port=rport, replies=replies)


def postfix(line: int, start_s: float, *, remote: str = EXO, rport: int | None = 25,
            file: str = "mail.log", dur_s: float = 2.0) -> LogConversation:
    return send_log(line, start_s, local=None, lport=None, remote=remote, rport=rport,  # type: ignore[arg-type]
                    file=file, dur_s=dur_s, kind="postfix")


def pairs(result) -> set[tuple[str, int, str, int, str]]:
    return {(k[0], k[1], m.conversation.file, m.conversation.first.line, m.basis)
            for k, ms in result.matches.items() for m in ms}


def test_exact_endpoints_with_estimated_skew():
    sessions = [key(1, 0), key(2, 60, cport=50177), key(3, 120, cport=50190)]
    skew = 3600.25  # the log host writes local time an hour ahead, and a quarter second off
    convs = [send_log(10, 0 + skew), send_log(40, 60 + skew + 0.5, lport=50177)]
    r = join(sessions, convs)
    assert pairs(r) == {("cap.pcap", 1, "SEND20260310-1.LOG", 10, "endpoints"),
                        ("cap.pcap", 2, "SEND20260310-1.LOG", 40, "endpoints")}
    (sk,) = r.skews
    assert sk.file == "SEND20260310-1.LOG" and not sk.given and sk.pairs == 2
    assert sk.spread_ns == S // 2 and sk.ns == round((skew + 0.25) * S)
    (m1,) = r.matches[("cap.pcap", 1)]
    assert m1.delta_ns == -S // 4 and m1.key == sessions[0]
    assert r.unmatched_sessions == (sessions[2],) and r.unmatched_conversations == ()
    d = m1.to_dict()
    assert d["source"] == "exchange-send" and d["kind"] == "connection"
    assert d["line"] == 10 and d["basis"] == "endpoints" and d["delta_s"] == -0.25
    assert d["time"] == "2026-03-10T10:15:02.368000Z"
    assert d["facts"]["local"] == "10.1.2.10:50123"


def test_given_skew_overrides_the_estimate():
    sessions = [key(1, 0)]
    convs = [send_log(10, 100)]
    r = join(sessions, convs, skew_s=0)
    (sk,) = r.skews
    assert sk.given and sk.ns == 0 and sk.pairs == 0
    (m,) = r.matches[("cap.pcap", 1)]
    assert m.delta_ns == 100 * S
    # a given skew that puts it past the tolerance leaves both unmatched
    r = join(sessions, convs, skew_s=-250)
    assert r.matches == {} and r.unmatched_sessions == (sessions[0],)
    assert r.unmatched_conversations == (convs[0],)


@pytest.mark.parametrize(("offset_s", "tolerance_s", "hit"), [
    (DEFAULT_TOLERANCE_S, DEFAULT_TOLERANCE_S, True),
    (DEFAULT_TOLERANCE_S + 0.001, DEFAULT_TOLERANCE_S, False),
    (-DEFAULT_TOLERANCE_S, DEFAULT_TOLERANCE_S, True),
    (-DEFAULT_TOLERANCE_S - 0.001, DEFAULT_TOLERANCE_S, False),
    (20, 10, False),
    (20, 20, True),
])  # fmt: skip
def test_exact_endpoint_tolerance_edges(offset_s, tolerance_s, hit):
    r = join([key(1, 0)], [send_log(10, offset_s)], skew_s=0, tolerance_s=tolerance_s)
    assert bool(r.matches) is hit
    assert len(r.unmatched_conversations) == (0 if hit else 1)


@pytest.mark.parametrize(("start_s", "dur_s", "hit"), [
    (2 + DEFAULT_WINDOW_S, 1, True),  # starts window_s after the session ended (2 s long)
    (2 + DEFAULT_WINDOW_S + 0.001, 1, False),
    (-DEFAULT_WINDOW_S - 1, 1, True),  # ends window_s before the session starts
    (-DEFAULT_WINDOW_S - 1.001, 1, False),
    (-100, 200, True),  # spans it
])  # fmt: skip
def test_time_and_peer_window_edges(start_s, dur_s, hit):
    r = join([key(1, 0)], [postfix(7, start_s, dur_s=dur_s)], skew_s=0)
    assert bool(r.matches) is hit
    if hit:
        (m,) = r.matches[("cap.pcap", 1)]
        assert m.basis == "time-and-peer" and m.delta_ns == round(start_s * S)


def test_time_and_peer_needs_the_peer_on_the_right_side_and_port():
    sessions = [key(1, 0)]
    # a receive-side log (written by the server) names the client as its peer
    recv = send_log(3, 0.1, local=EXO, lport=None, remote="10.1.2.10", rport=None,
                    kind="exchange-receive", role="server", file="RECV.LOG")
    wrong_side = send_log(4, 0.1, local=None, lport=None, remote="10.1.2.10", rport=None,
                          kind="postfix", file="other.log")  # postfix/smtp: peer = server
    wrong_port = postfix(5, 0.1, rport=587)
    r = join(sessions, [recv, wrong_side, wrong_port], skew_s=0)
    assert pairs(r) == {("cap.pcap", 1, "RECV.LOG", 3, "time-and-peer")}
    assert {c.first.line for c in r.unmatched_conversations} == {4, 5}


def test_a_log_host_the_capture_sees_is_held_to_its_own_endpoints():
    """The sender's address is on the wire, so its port must be too: a send-log connection
    the capture missed does not slide onto a neighbour by time and peer."""
    sessions = [key(1, 0, cport=50123)]
    missed = send_log(9, 0.5, lport=50999)
    r = join(sessions, [missed], skew_s=0)
    assert r.matches == {} and r.unmatched_conversations == (missed,)
    # behind NAT (the log's own address is nowhere in the capture) time and peer apply
    natted = send_log(9, 0.5, local="192.168.7.7", lport=50999)
    r = join(sessions, [natted], skew_s=0)
    assert pairs(r) == {("cap.pcap", 1, "SEND20260310-1.LOG", 9, "time-and-peer")}


@pytest.mark.parametrize(("wire", "log"), [
    ("2001:db8::25", "2001:DB8:0:0:0:0:0:25"),
    ("2001:db8::25", "[2001:db8::25]"),
    ("10.1.2.10", "::ffff:10.1.2.10"),
    ("10.1.2.10", "[::FFFF:10.1.2.10]"),
])  # fmt: skip
def test_ipv6_and_v4_mapped_forms(wire, log):
    assert normal_ip(log) == wire
    sessions = [key(1, 0, client=wire)]
    r = join(sessions, [send_log(10, 0.2, local=log)], skew_s=0)
    assert pairs(r) == {("cap.pcap", 1, "SEND20260310-1.LOG", 10, "endpoints")}


def test_session_key_of_a_session_parses_v6_endpoints():
    from fastcap.session import Session, TcpFacts

    tcp = TcpFacts("syn", True, [], [], 0, 0, False, False, 0, 0, 0, None)
    s = Session(4, "[2001:db8::10]:50123", "52.101.68.5:25", 7, 20, T0, T0 + S, 14, tcp,
                None, None)
    k = SessionKey.of(s, "x.pcap")
    assert (k.client_ip, k.client_port, k.server_ip, k.server_port) == (
        "2001:db8::10", 50123, EXO, 25)
    assert (k.file, k.number, k.start_ns, k.end_ns, k.first_frame) == ("x.pcap", 4, T0,
                                                                        T0 + S, 7)


def test_a_session_matched_by_two_logs():
    sessions = [key(1, 0)]
    trace = send_log(2, 0.3, local=None, lport=None, remote="10.1.2.10", rport=None,
                     kind="message-trace", role="server", file="trace.csv")
    convs = [send_log(10, 0.1), trace]
    r = join(sessions, convs, skew_s=0)
    ms = r.matches[("cap.pcap", 1)]
    assert [(m.conversation.file, m.basis) for m in ms] == [
        ("SEND20260310-1.LOG", "endpoints"), ("trace.csv", "time-and-peer")]
    assert ms[1].to_dict()["kind"] == "message"
    assert r.unmatched_sessions == ()
    # matches travel with sessions from worker processes
    assert pickle.loads(pickle.dumps(ms)) == ms


def test_ambiguity_resolved_to_the_closest_session():
    # two connections to the same peer, 6 s apart: a postfix line at 4.5 s belongs to the
    # second (1.5 s away) rather than the first (4.5 s), though both are within the window
    sessions = [key(1, 0, cport=40001), key(2, 6, cport=40002)]
    r = join(sessions, [postfix(1, 4.5)], skew_s=0)
    (m,) = r.matches[("cap.pcap", 2)]
    assert m.delta_ns == -1.5 * S
    assert r.unmatched_sessions == (sessions[0],)
    # the same four-tuple reused: the endpoints rule picks the closest in time too
    reused = [key(1, 0), key(2, 200)]
    r = join(reused, [send_log(5, 150)], skew_s=0)
    assert list(r.matches) == [("cap.pcap", 2)]


def test_duplicates_count_once_and_order_does_not_matter():
    sessions = [key(i, i * 30, cport=50000 + i) for i in range(1, 6)]
    convs = [send_log(i * 10, i * 30 + 5, lport=50000 + i) for i in range(1, 6)]
    convs.append(send_log(500, 2000, lport=51000))  # nothing on the wire
    base = join(sessions, convs)
    twice = convs + convs[::-1]
    random.Random(4).shuffle(twice)
    again = join(reversed(sessions), twice)
    assert again == base
    assert [c.first.line for c in base.unmatched_conversations] == [500]
    assert base.skews[0].pairs == 5 and base.skews[0].ns == 5 * S


def test_skew_when_busy_servers_reuse_ports():
    """No pair is unambiguous within MAX_SKEW_S when ports recur every few hours; the offsets
    of the true pairs still agree, and a clear cluster gives the skew."""
    rng = random.Random(7)
    sessions, convs = [], []
    starts = sorted(rng.uniform(0, 4 * 3600) for _ in range(40))
    for i, start in enumerate(starts):
        port = 50000 + i % 10  # each four-tuple recurs 4 times in 4 hours
        sessions.append(key(i + 1, start, cport=port, dur_s=1))
        convs.append(send_log(i + 1, start + 3600 + rng.random(), lport=port))
    r = join(sessions, convs)
    (sk,) = r.skews
    assert sk.pairs >= 30 and abs(sk.ns - 3600.5 * S) < S and sk.spread_ns <= 2 * S
    assert all(m.basis == "endpoints" and m.key.number == m.conversation.first.line
               for ms in r.matches.values() for m in ms)
    assert len(r.matches) == 40
    # offsets with no cluster standing out give no skew
    scattered = [send_log(i + 1, rng.uniform(-40000, 40000), lport=50000 + i % 10)
                 for i in range(40)]
    assert join(sessions, scattered).skews[0].pairs == 0


def test_skew_from_peer_pairs_when_no_endpoints():
    sessions = [key(1, 0, server="198.51.100.7"), key(2, 100, cport=50200),
                key(3, 101, cport=50201)]
    convs = [postfix(1, 0 + 7200.5, remote="198.51.100.7"), postfix(2, 100 + 7200.5)]
    r = join(sessions, convs)
    (sk,) = r.skews
    # only the first peer has one session and one conversation; EXO has two sessions
    assert sk.pairs == 1 and sk.ns == round(7200.5 * S)
    assert pairs(r) == {("cap.pcap", 1, "mail.log", 1, "time-and-peer"),
                        ("cap.pcap", 2, "mail.log", 2, "time-and-peer")}


def test_no_pairs_no_skew_and_every_file_reported():
    r = join([], [postfix(1, 0), send_log(2, 0)])
    assert [(s.file, s.ns, s.pairs) for s in r.skews] == [
        ("SEND20260310-1.LOG", 0, 0), ("mail.log", 0, 0)]
    assert len(r.unmatched_conversations) == 2


# ----------------------------------------------------------------------------- property

_SPREAD = 2 * S  # the jitter between log and capture clocks below


@st.composite
def _world(draw):
    n = draw(st.integers(1, 12))
    sessions, convs = [], []
    for i in range(n):
        start = i * 40 + draw(st.integers(0, 10))
        sessions.append(key(i + 1, start, cport=41000 + i))
        jitter = draw(st.integers(0, _SPREAD)) / S
        if draw(st.booleans()):
            convs.append(send_log(10 * i + 1, start + jitter, lport=41000 + i))
        else:
            convs.append(postfix(10 * i + 1, start + jitter, remote=f"198.51.100.{i + 1}",
                                 file="mail.log"))
            sessions[-1] = key(i + 1, start, cport=41000 + i, server=f"198.51.100.{i + 1}")
    if draw(st.booleans()):
        convs.append(send_log(999, 5000, lport=60000))  # a connection the capture missed
    return sessions, convs


@settings(max_examples=60, deadline=None)
@given(world=_world(), seed=st.integers(0, 2**16),
       skew=st.integers(-int(DEFAULT_TOLERANCE_S * S) + _SPREAD,
                        int(DEFAULT_TOLERANCE_S * S) - _SPREAD))
def test_property_shuffled_duplicated_and_skewed_logs_join_alike(world, seed, skew):
    sessions, convs = world
    base = pairs(join(sessions, convs))
    shifted = [_shift(c, skew) for c in convs]
    rng = random.Random(seed)
    noisy = shifted + rng.sample(shifted, k=min(3, len(shifted)))
    rng.shuffle(noisy)
    got = join(sessions, noisy)
    assert pairs(got) == base
    est = {s.file: s for s in got.skews}
    for s in est.values():
        assert s.pairs == 0 or abs(s.ns - skew) <= _SPREAD
    # endpoints need no estimate at all within the tolerance
    exact = {p for p in base if p[4] == "endpoints"}
    assert {p for p in pairs(join(sessions, noisy, skew_s=0)) if p[4] == "endpoints"} == exact


def _shift(c: LogConversation, ns: int) -> LogConversation:
    from dataclasses import replace

    return replace(c, start_ns=c.start_ns + ns, end_ns=c.end_ns + ns)
