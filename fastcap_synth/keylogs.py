"""Key logs that go wrong on purpose, and key logs too big to read into memory.

A decryptor must turn bad keys into per-session findings: secrets that do not decrypt (wrong
keys), secrets indexed under other sessions' randoms (keys for other sessions), a file cut in the
middle of a line. And it must index a busy server's key log (hundreds of MB or more) with bounded
memory. These helpers derive such files from a real session's lines, so the expected outcome is
known: the same sessions, the same labels, only what is named changed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np

TLS12_LABELS = ("CLIENT_RANDOM",)
TLS13_LABELS = (
    "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    "CLIENT_TRAFFIC_SECRET_0",
    "SERVER_TRAFFIC_SECRET_0",
    "EXPORTER_SECRET",
)


def _fields(line: str) -> tuple[str, str, str]:
    label, random, secret = line.split(" ")
    return label, random, secret


def wrong_secrets(lines: Iterable[str]) -> list[str]:
    """The same labels and client randoms with every secret's bits inverted: the key log
    matches each session, but nothing it yields authenticates."""
    out = []
    for line in lines:
        label, random, secret = _fields(line)
        flipped = bytes(b ^ 0xFF for b in bytes.fromhex(secret)).hex()
        out.append(f"{label} {random} {flipped}")
    return out


def foreign_randoms(lines: Iterable[str]) -> list[str]:
    """The same secrets filed under other client randoms (each random with its bits inverted):
    keys for other sessions, so no session of the capture finds its own."""
    out = []
    for line in lines:
        label, random, secret = _fields(line)
        other = bytes(b ^ 0xFF for b in bytes.fromhex(random)).hex()
        out.append(f"{label} {other} {secret}")
    return out


def truncated(data: bytes, keep_of_last_line: int = 40) -> bytes:
    """``data`` cut inside its last line, ``keep_of_last_line`` bytes into it, as a key log
    being written when it was copied would be."""
    body = data.rstrip(b"\n")
    start = body.rfind(b"\n") + 1
    if keep_of_last_line >= len(body) - start:
        raise ValueError("the cut must fall inside the last line")
    return body[: start + keep_of_last_line]


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _hex_rows(raw: np.ndarray) -> np.ndarray:
    """(n, k) bytes -> (n, 2k) ASCII lower-case hex."""
    out = np.empty((raw.shape[0], raw.shape[1] * 2), dtype=np.uint8)
    out[:, 0::2] = _HEX[raw >> 4]
    out[:, 1::2] = _HEX[raw & 0x0F]
    return out


def _filler_chunk(rng: np.random.Generator, sessions: int) -> bytes:
    """``sessions`` random sessions' lines: half TLS 1.2 (one CLIENT_RANDOM line with a 48-byte
    master secret), then half TLS 1.3 (five lines sharing one random, 32-byte secrets)."""
    half = sessions // 2
    n12, n13 = sessions - half, half
    pieces12 = [
        np.broadcast_to(np.frombuffer(b"CLIENT_RANDOM ", np.uint8), (n12, 14)),
        _hex_rows(rng.integers(0, 256, (n12, 32), dtype=np.uint8)),
        np.full((n12, 1), ord(" "), np.uint8),
        _hex_rows(rng.integers(0, 256, (n12, 48), dtype=np.uint8)),
        np.full((n12, 1), ord("\n"), np.uint8),
    ]
    rows12 = np.concatenate(pieces12, axis=1)
    randoms = _hex_rows(rng.integers(0, 256, (n13, 32), dtype=np.uint8))
    pieces13 = []
    for label in TLS13_LABELS:
        head = (label + " ").encode()
        pieces13 += [
            np.broadcast_to(np.frombuffer(head, np.uint8), (n13, len(head))),
            randoms,
            np.full((n13, 1), ord(" "), np.uint8),
            _hex_rows(rng.integers(0, 256, (n13, 32), dtype=np.uint8)),
            np.full((n13, 1), ord("\n"), np.uint8),
        ]
    rows13 = np.concatenate(pieces13, axis=1)
    return rows12.tobytes() + rows13.tobytes()


def write_big_keylog(
    path: str | os.PathLike,
    size: int,
    *,
    include: Sequence[str] = (),
    seed: int = 0,
) -> int:
    """Write a key log of about ``size`` bytes of random sessions, streaming (memory stays at a
    few MB whatever ``size``), with ``include``'s lines in the middle and again at the very end.

    A decryptor that finds the included sessions' keys read the whole file; one whose memory
    grows with ``size`` does not bound its index. Returns the bytes written.
    """
    rng = np.random.default_rng(seed)
    tail = "".join(f"{line}\n" for line in include).encode("ascii")
    chunk_sessions = 8192  # about 4.5 MB of lines per chunk
    header = b"# generated key log: random sessions around the ones a test looks for\n"
    written = len(header)
    middle_done = not include
    with open(path, "wb") as fh:
        fh.write(header)
        while written + len(tail) < size:
            chunk = _filler_chunk(rng, chunk_sessions)
            chunk = chunk[: max(0, size - len(tail) - written)]
            chunk = chunk[: chunk.rfind(b"\n") + 1]  # whole lines only
            if not chunk:
                break
            if not middle_done and written + len(chunk) >= size // 2:
                cut = chunk.rfind(b"\n", 0, max(0, size // 2 - written)) + 1
                fh.write(chunk[:cut])
                fh.write(tail)
                chunk = chunk[cut:]
                written += cut + len(tail)
                middle_done = True
            fh.write(chunk)
            written += len(chunk)
        if not middle_done:
            fh.write(tail)
            written += len(tail)
        fh.write(tail)
        written += len(tail)
    return written
