"""Time `fastcap.evidence.join.join` on a generated day of mail: S capture sessions and C log
conversations (half Exchange send-log connections with both endpoints, half Postfix lines
naming only the peer), one in ten captured, the logs' clock 7 s ahead with 0.1 s jitter.

    PYTHONPATH=src python benchmarks/evidence_join.py [SESSIONS] [CONVERSATIONS]

Asserts how many conversations join, so a fast wrong answer fails.  A plain dict loop over
the same conversations is timed too: on a loaded machine compare the ratio, not seconds."""

from __future__ import annotations

import random
import sys
import time

from fastcap.evidence.join import SessionKey, join
from fastcap.evidence.records import LogConversation, Where

S = 1_000_000_000
T0 = 1_773_134_102_118_000_000
EXO = "52.101.68.5"


def world(sessions: int, conversations: int) -> tuple[list[SessionKey], list[LogConversation]]:
    rng = random.Random(1)
    step = max(1, conversations // sessions)  # one conversation in `step` is captured
    gap = 86400 * S // conversations
    keys, convs = [], []
    for i in range(conversations):
        start = T0 + i * gap
        exchange = i % 2 == 1
        ip = "10.1.2.10" if exchange else "192.0.2.25"
        port = rng.randrange(49152, 65536)  # Windows' ephemeral range: reused within hours
        if i % step in (0, 1) and len(keys) < sessions:
            keys.append(SessionKey("day.pcap", len(keys) + 1, ip, port, EXO, 25, start,
                                   start + 3 * S, len(keys) * 30 + 1))
        at = start + 7 * S + rng.randrange(S // 10)
        name = f"SEND{i % 4}.LOG" if exchange else f"mail{i % 4}.log"
        where, last = Where(name, i, i * 120), Where(name, i + 9, i * 120 + 1100)
        if exchange:
            convs.append(LogConversation("exchange-send", name, where, last, at, at + 3 * S,
                                         "client", ip, port, EXO, 25))
        else:
            convs.append(LogConversation("postfix", name, where, last, at, at + 3 * S,
                                         "client", remote_ip=EXO, remote_port=25))
    return keys, convs


def main(argv: list[str]) -> None:
    sessions = int(argv[0]) if argv else 20_000
    conversations = int(argv[1]) if len(argv) > 1 else 200_000
    keys, convs = world(sessions, conversations)
    t = time.perf_counter()
    seen = {}
    for c in convs:
        seen[(c.file, c.first.line)] = c
    plain = time.perf_counter() - t
    t = time.perf_counter()
    result = join(keys, convs)
    took = time.perf_counter() - t
    joined = sum(len(ms) for ms in result.matches.values())
    assert joined + len(result.unmatched_conversations) == len(convs)
    assert joined >= len(keys) // 2, joined  # at least every captured send-log connection
    print(f"{len(keys)} sessions x {len(convs)} conversations: join {took:.3f} s "
          f"({took / plain:.0f}x a plain dict loop over them, {plain:.3f} s); "
          f"{joined} joined, {len(result.unmatched_sessions)} sessions unmatched; skews "
          + ", ".join(f"{s.file} {s.ns / S:+.2f} s ({s.pairs} pairs)" for s in result.skews))


if __name__ == "__main__":
    main(sys.argv[1:])
