"""Entry points: one connection's two directions in, a frozen :class:`.facts.TlsHandshake` out.

:func:`parse_handshake` reads whole reassembled streams (the scanner's way, with the record
layer's shortcuts); :class:`TlsConnection` is fed incrementally; :func:`parse_flights` is the
convenience for tests and tools.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from .events import (
    Alert,
    ChangeCipherSpec,
    EncryptedRecord,
    HandshakeMessage,
    Stopped,
    TlsEvent,
    _Bare,
)
from .facts import TlsHandshake
from .fold import _Summary
from .outcome import handshake_of
from .records import TlsStream

FrameAt = Callable[[int], "int | None"]
FramesAt = Callable[[list["int | None"]], "list[int | None]"]


class ReassembledStream(Protocol):
    """What the TCP reassembler hands over for one direction."""

    data: bytes
    gaps: Sequence[tuple[int, int]]

    def frame_at(self, offset: int) -> int | None: ...


def _frames(events: Sequence[TlsEvent | _Bare], frame_at: FrameAt | None,
            frames_at: FramesAt | None = None, first_end: int | None = None,
            ) -> list[int | None]:
    """The frame of each event: the one completing its record (or, for a plaintext alert, its
    two bytes), as Wireshark names records split over segments; for a stop the last one
    before it, and for an anomaly the one carrying its first byte. ``frames_at`` (optional)
    looks up many offsets in one call, as ``frame_at`` would each. With ``first_end`` (the
    end of the direction's first whole record, 0 for none), the frame of that record's last
    byte (None for none) is appended, found in the same call: a call of its own cost as
    much as a dozen lookups."""
    if frame_at is None:
        return [None] * (len(events) + (first_end is not None))
    offsets: list[int | None] = []
    append = offsets.append
    for ev in events:
        cls = type(ev)
        if cls is tuple:
            if len(ev) == 3:  # an opaque record: its header, then ``length`` bytes
                append(ev[0] + 4 + ev[2])
            elif ev[4] is None or ev[4] <= ev[0]:
                append(ev[0])
            else:
                append(ev[4] - 1)
        elif cls is HandshakeMessage and ev.end is not None and ev.end > ev.offset:
            append(ev.end - 1)
        elif cls is EncryptedRecord:
            append(ev.offset + 4 + ev.length)
        elif cls is Alert:  # an encrypted one is its record; a plaintext one its two bytes
            append(ev.offset + (4 + ev.length if ev.encrypted else 1))
        elif cls is ChangeCipherSpec:
            append(ev.offset + 5)
        elif cls is Stopped:  # nothing at the stop offset: name the last frame before it
            append(ev.offset - 1 if ev.offset > 0 else None)
        else:
            append(ev.offset)
    if first_end is not None:
        append(first_end - 1 if first_end > 0 else None)
    if frames_at is not None:
        return frames_at(offsets)
    return [None if off is None else frame_at(off) for off in offsets]


class TlsConnection:
    """Incremental use: feed each direction as bytes arrive (in time order), then
    :meth:`result`. The server's negotiated version is passed to the client side as soon as
    its ServerHello is parsed."""

    def __init__(
        self, c2s_frame_at: FrameAt | None = None, s2c_frame_at: FrameAt | None = None
    ) -> None:
        self.c2s = TlsStream(True)
        self.s2c = TlsStream(False)
        self._frame_at = {True: c2s_frame_at, False: s2c_frame_at}
        self._summary = _Summary()

    def _absorb(self, from_client: bool, events: list[TlsEvent]) -> list[TlsEvent]:
        frames = _frames(events, self._frame_at[from_client])
        if from_client:
            self._summary.fold(events, frames, (), ())
        else:
            self._summary.fold((), (), events, frames)
        if not from_client:
            self.c2s.set_version(self.s2c.version)
        return events

    def _stream(self, from_client: bool) -> TlsStream:
        return self.c2s if from_client else self.s2c

    def feed(
        self, from_client: bool, data: bytes | bytearray | memoryview, stream_offset: int
    ) -> list[TlsEvent]:
        return self._absorb(from_client, self._stream(from_client).feed(data, stream_offset))

    def gap(self, from_client: bool, stream_offset: int, size: int) -> list[TlsEvent]:
        return self._absorb(from_client, self._stream(from_client).gap(stream_offset, size))

    def end(self, from_client: bool, stream_offset: int | None = None) -> list[TlsEvent]:
        return self._absorb(from_client, self._stream(from_client).end(stream_offset))

    def result(self) -> TlsHandshake:
        self._summary.first_record_frame = _first_record_frame(
            (self.c2s.first_end, self._frame_at[True]), (self.s2c.first_end, self._frame_at[False]))
        return handshake_of(self._summary)


def _first_record_frame(*sides: tuple[int | None, FrameAt | None]) -> int | None:
    """The earliest frame completing a direction's first record (its end offset and the
    direction's frame lookup, each)."""
    frames = [frame_at(end - 1) for end, frame_at in sides
              if end is not None and end > 0 and frame_at is not None]
    return min((f for f in frames if f is not None), default=None)


def _run(
    from_client: bool, src: ReassembledStream, start: int, version: int | None = None,
    encrypted: bool = False, piece: int = 0,
) -> tuple[TlsStream, list[TlsEvent | _Bare]]:
    """Parse one direction from ``start`` up to its first gap (or its end), with its
    commonest events in bare form; ``version`` is the server's, for the client side;
    ``encrypted``: ``start`` lies past the direction's ChangeCipherSpec. ``piece`` > 0 takes
    the general path instead: event objects, no shortcuts, fed ``piece`` bytes at a time."""
    stream = TlsStream(from_client)
    stream._bare = not piece
    stream._shortcuts = not piece
    stream.set_version(version)
    stream._ccs = encrypted
    data = src.data
    start = max(0, start)
    stop = len(data)
    gap_size = 0
    for off, size in sorted(src.gaps or ()):
        if size > 0 and off + size > start and off < stop:
            stop, gap_size = max(off, start), off + size - max(off, start)
            break
    if not piece:
        events = stream._feed_whole(data, start, stop) if stop > start else []
    else:
        events = []
        for at in range(start, stop, piece):
            events += stream.feed(data[at : min(stop, at + piece)], at)
    if gap_size:
        events += stream.gap(stop, gap_size)
    else:
        events += stream.end(max(stop, start))
    return stream, events


def parse_handshake(
    c2s: ReassembledStream, s2c: ReassembledStream, c2s_start: int = 0, s2c_start: int = 0,
    *, encrypted: tuple[bool, bool] = (False, False), _general: int = 0,
) -> TlsHandshake:
    """One connection's handshake from its two reassembled streams.

    ``*_start`` are the stream offsets where TLS begins (right after the STARTTLS 220; 0 for
    implicit TLS). Each direction stops at its first gap after its start. The server side is
    parsed first so the client side knows the negotiated version. ``encrypted`` (client,
    server) marks a direction read from a point past its ChangeCipherSpec (a capture that
    began mid-session), so its alerts and handshake records are opaque.

    The streams are parsed with TlsStream's shortcuts and _Bare events, for speed. Tests
    prove that changes nothing: ``_general`` > 0 takes the general path instead (event
    objects, every byte through the record and message buffering, fed through
    ``TlsStream.feed`` ``_general`` bytes at a time).
    """
    server, s_events = _run(False, s2c, s2c_start, encrypted=encrypted[1], piece=_general)
    client, c_events = _run(True, c2s, c2s_start, server.version, encrypted[0], piece=_general)
    summary = _Summary()
    # each direction's frames, and last the frame completing its first record (None: none)
    c_frames = _frames(c_events, c2s.frame_at, getattr(c2s, "frames_at", None),
                       client.first_end or 0)
    s_frames = _frames(s_events, s2c.frame_at, getattr(s2c, "frames_at", None),
                       server.first_end or 0)
    c_first, s_first = c_frames.pop(), s_frames.pop()
    summary.fold(c_events, c_frames, s_events, s_frames)
    # _first_record_frame's answer: the earlier of the two
    summary.first_record_frame = (s_first if c_first is None else c_first
                                  if s_first is None or c_first <= s_first else s_first)
    return handshake_of(summary)


def parse_flights(flights: Iterable[tuple[bool, bytes]]) -> TlsHandshake:
    """Convenience for tests and tools: (from_client, bytes) flights in wire order, each
    flight its own pseudo-frame (numbered from 1)."""
    conn_frames: dict[bool, list[tuple[int, int]]] = {True: [], False: []}
    offsets = {True: 0, False: 0}
    chunks: list[tuple[bool, bytes, int]] = []
    for n, (from_client, data) in enumerate(flights, 1):
        conn_frames[from_client].append((offsets[from_client], n))
        chunks.append((from_client, data, offsets[from_client]))
        offsets[from_client] += len(data)

    def frame_at(from_client: bool) -> FrameAt:
        table = conn_frames[from_client]

        def lookup(offset: int) -> int | None:
            found = None
            for start, frame in table:
                if start > offset:
                    break
                found = frame
            return found if offset < offsets[from_client] else None

        return lookup

    conn = TlsConnection(frame_at(True), frame_at(False))
    for from_client, data, off in chunks:
        conn.feed(from_client, data, off)
    conn.end(True)
    conn.end(False)
    return conn.result()
