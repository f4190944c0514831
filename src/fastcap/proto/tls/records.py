"""The record layer of one direction: bytes in stream order -> records -> handshake messages
-> :mod:`.events`.

Each record header is checked before any body is read, and its length capped; handshake
messages are defragmented across records under a 1 MiB cap. Once a direction is encrypted
(after its ChangeCipherSpec in TLS <= 1.2, all type-23 records, everything after a TLS 1.3
ServerHello) only record types and sizes are kept. This is the hot loop of TLS parsing.
"""

from __future__ import annotations

import struct

from .const import ContentType, HandshakeType, is_tls13, name_of
from .events import (
    Alert,
    Anomaly,
    ChangeCipherSpec,
    EncryptedRecord,
    HandshakeMessage,
    Stopped,
    TlsEvent,
)
from .messages import (
    _CERTIFICATE,
    _CLIENT_HELLO,
    _NEW_SESSION_TICKET,
    _PARSED_TYPES,
    _SERVER_HELLO,
    _SERVER_KEY_EXCHANGE,
    ParsedBody,
    Problems,
    parse_certificate,
    parse_certificate_request,
    parse_client_hello,
    parse_new_session_ticket,
    parse_server_hello,
    parse_server_key_exchange,
    parse_sslv2_client_hello,
)

# TLSCiphertext.length may not exceed 2^14 + 2048 (RFC 5246 6.2.3); anything longer is not TLS.
MAX_RECORD = 2**14 + 2048
# Largest handshake message we defragment; real certificate chains are a few KiB.
MAX_HANDSHAKE = 1 << 20
MAX_ANOMALIES = 100  # per direction
_SSL2_RECORD = -2  # pseudo content type of an SSL 2.0 record
_record_header = struct.Struct(">BHH").unpack_from  # content type, version, length


class TlsStream:
    """One direction of a TLS connection: feed bytes in stream order, get events back.

    Records and handshake messages are emitted when their last byte arrives, so any chunking
    of the same bytes yields the same events. Record bodies are buffered only for plaintext
    handshake/alert/ChangeCipherSpec records (<= 18 KiB each); encrypted bodies are skipped.
    """

    def __init__(self, from_client: bool) -> None:
        self.from_client = from_client
        self.version: int | None = None  # negotiated (own ServerHello or set_version)
        self.stopped: Stopped | None = None
        self._expect: int | None = None  # stream offset of the next byte
        self._records = 0
        self._hdr = bytearray()
        self._in_body = False
        self._rec_off = 0
        self._rec_type = 0
        self._rec_len = 0
        self._need = 0
        self._keep = False
        self._body = bytearray()
        self._ccs = False
        self._hs = bytearray()
        self._hs_marks: list[tuple[int, int]] = []  # (position in _hs, stream offset)
        self._hs_skip = 0
        self._anomalies = 0
        # The stream offset after the first whole record: Zeek's SSL analyzer reads records
        # whole, so its ssl.log record begins with the packet that completes this one.
        self.first_end: int | None = None
        # Report opaque records and handshake messages as _Bare tuples, not events: for
        # parse_handshake, whose _Summary takes both (feed's callers always get events).
        self._bare = False
        # The whole-record and whole-message shortcuts (_whole_records, the header in view in
        # _consume, the unbuffered loop in _hs_append); off, every byte goes through the
        # general record and message buffering. Tests prove both give the same events.
        self._shortcuts = True

    # -- public API

    def set_version(self, version: int | None) -> None:
        """Tell the client side what the server negotiated: in TLS 1.3 a ChangeCipherSpec is a
        compatibility no-op, so records after it are still plaintext (RFC 8446 D.4)."""
        if version is not None:
            self.version = version

    def feed(self, data: bytes | bytearray | memoryview, stream_offset: int) -> list[TlsEvent]:
        """Consume ``data`` whose first byte sits at ``stream_offset``."""
        out: list[TlsEvent] = []
        if self.stopped is not None:
            return out
        mv = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
        if self._expect is None:
            self._expect = stream_offset
        if stream_offset > self._expect:
            return self.gap(self._expect, stream_offset - self._expect)
        if stream_offset < self._expect:
            skip = self._expect - stream_offset
            self._anomaly(
                out,
                stream_offset,
                "tls.stream.overlap",
                f"{min(skip, len(mv))} bytes fed twice were ignored",
            )
            if skip >= len(mv):
                return out
            mv = mv[skip:]
            stream_offset = self._expect
        self._expect = stream_offset + len(mv)
        self._consume(mv, 0, len(mv), stream_offset, out)
        return out

    def _feed_whole(self, data: bytes, start: int, stop: int) -> list[TlsEvent]:
        """``feed(data[start:stop], start)`` for a fresh stream whose offsets are those of
        ``data``, without copying the bytes or going through a memoryview (whose item and
        struct reads cost more): parse_handshake's way in."""
        out: list[TlsEvent] = []
        self._expect = stop
        self._consume(data, start, stop, 0, out)
        return out

    def gap(self, stream_offset: int, size: int) -> list[TlsEvent]:
        """Bytes are missing from ``stream_offset``: nothing after can be trusted."""
        out: list[TlsEvent] = []
        if self.stopped is None:
            self._anomaly(out, stream_offset, "tls.stream.gap", f"{size} bytes missing")
            self._truncated(out, stream_offset)
            self._stop(out, stream_offset, "gap", f"{size} bytes missing at offset {stream_offset}")
        return out

    def end(self, stream_offset: int | None = None) -> list[TlsEvent]:
        """The stream is over (FIN, RST or end of capture)."""
        out: list[TlsEvent] = []
        if self.stopped is None:
            at = stream_offset if stream_offset is not None else (self._expect or 0)
            self._truncated(out, at)
            self._stop(out, at, "end", f"stream ended at offset {at}")
        return out

    # -- internals

    def _anomaly(self, out: list[TlsEvent], offset: int, code: str, message: str) -> None:
        self._anomalies += 1
        if self._anomalies <= MAX_ANOMALIES:
            out.append(Anomaly(offset, code, message))
        elif self._anomalies == MAX_ANOMALIES + 1:
            out.append(Anomaly(offset, "tls.anomaly.limit", f"more than {MAX_ANOMALIES}"))

    def _stop(self, out: list[TlsEvent], offset: int, reason: str, detail: str) -> None:
        self.stopped = Stopped(offset, reason, detail)
        out.append(self.stopped)

    def _truncated(self, out: list[TlsEvent], offset: int) -> None:
        if self._hdr or self._in_body:
            got = len(self._hdr) if not self._in_body else self._rec_len - self._need
            want = "header" if not self._in_body else f"{self._rec_len}-byte body"
            self._anomaly(
                out, self._rec_off, "tls.stream.truncated", f"record {want} cut at {got} bytes"
            )
        if self._hs:
            self._anomaly(
                out,
                self._hs_offset(0),
                "tls.handshake.truncated",
                f"{len(self._hs)} bytes of an unfinished handshake message",
            )

    def _encrypted(self) -> bool:
        return self._ccs and not is_tls13(self.version)

    def _consume(
        self, mv: bytes | memoryview, pos: int, n: int, base: int, out: list[TlsEvent]
    ) -> None:
        """Consume ``mv[pos:n]``; ``base + i`` is the stream offset of ``mv[i]``."""
        shortcuts = self._shortcuts
        while pos < n and self.stopped is None:
            if shortcuts and not self._in_body and not self._hdr:
                pos = self._whole_records(mv, pos, n, base, out)
                if pos == n:
                    break
                if n - pos >= 5 and (self._records or mv[pos] < 0x80):  # not SSL 2.0
                    # a header in view that the fast loop leaves to the general checks
                    self._rec_off = base + pos
                    self._start_record(out, False, bytes(mv[pos : pos + 5]))
                    pos += 5
                    if self._in_body and self._need <= n - pos:
                        end = pos + self._need
                        self._need = 0
                        self._finish_record(out, bytes(mv[pos:end]) if self._keep else b"")
                        pos = end
                    continue
            if self._in_body:
                take = min(self._need, n - pos)
                if self._keep:
                    self._body += mv[pos : pos + take]
                pos += take
                self._need -= take
                if self._need == 0:
                    self._finish_record(out, bytes(self._body))
                continue
            if not self._hdr:
                self._rec_off = base + pos
                self._hdr.append(mv[pos])
                pos += 1
            sslv2 = self._records == 0 and bool(self._hdr[0] & 0x80)
            size = 2 if sslv2 else 5
            take = min(size - len(self._hdr), n - pos)
            self._hdr += mv[pos : pos + take]
            pos += take
            if len(self._hdr) == size:
                h = bytes(self._hdr)
                self._hdr.clear()
                self._start_record(out, sslv2, h)

    def _whole_records(
        self, mv: bytes | memoryview, pos: int, n: int, base: int, out: list[TlsEvent]
    ) -> int:
        """Handle the records lying wholly in ``mv[pos:n]``, with no header or body
        buffered; return where the general path must take over (end of data, a cut record, or
        one needing its checks: bad header, plaintext alert, odd ChangeCipherSpec, a record
        interleaved in a fragmented handshake message, a possible SSL 2.0 header).

        This is the common case when whole streams are fed, and the per-record cost of the
        general path (header buffering, two calls per record) was most of the parsing time.
        Events and state are exactly those of the general path.
        """
        append = out.append
        records = self._records
        bare = self._bare
        while n - pos >= 5:
            ctype, version, length = _record_header(mv, pos)
            end = pos + 5 + length
            if version >> 8 != 3 or length > MAX_RECORD or end > n:
                break
            if ctype == 23 or ctype == 24:
                if self._hs:
                    break
                off = base + pos
                append((off, ctype, length) if bare else EncryptedRecord(off, ctype, length))
            elif ctype == 22:  # never "interleaved", so a buffered fragment does not matter
                if self._ccs and not is_tls13(self.version):
                    off = base + pos
                    append((off, 22, length) if bare else EncryptedRecord(off, 22, length))
                elif (
                    length >= 4
                    and ((mv[pos + 6] << 16) | (mv[pos + 7] << 8) | mv[pos + 8]) == length - 4
                    and not self._hs
                    and not self._hs_skip
                ):  # exactly one message (the usual case): what _hs_append would do
                    mtype = mv[pos + 5]
                    if bare and mtype not in _PARSED_TYPES:  # what _message would do
                        append((base + pos + 5, mtype, length - 4, None, base + end))
                    else:
                        self._message(base + pos + 5, mtype, length - 4, mv[pos + 9 : end], out,
                                      base + end)
                elif length:
                    self._hs_append(mv[pos + 5 : end], base + pos + 5, out)
                else:
                    self._anomaly(
                        out, base + pos, "tls.record.empty", "zero-length handshake record"
                    )
            elif self._hs:
                break
            elif ctype == 21 and self._ccs and not is_tls13(self.version):
                append(Alert(base + pos, None, None, True, length))
            elif ctype == 20 and length == 1 and mv[pos + 5] == 1:
                append(ChangeCipherSpec(base + pos))
                self._ccs = True
            else:
                break
            records += 1
            if records == 1:
                self.first_end = base + end
            pos = end
        self._records = records
        return pos

    def _start_record(self, out: list[TlsEvent], sslv2: bool, h: bytes) -> None:
        off = self._rec_off
        if sslv2:
            ctype, length = _SSL2_RECORD, ((h[0] & 0x7F) << 8) | h[1]
            keep = True
        else:
            ctype, length = h[0], (h[3] << 8) | h[4]
            if ctype not in (20, 21, 22, 23, 24) or h[1] != 3:
                first = self._records == 0
                code = "tls.stream.not_tls" if first else "tls.record.bad_header"
                self._anomaly(out, off, code, f"record header {h.hex()} is not TLS")
                self._stop(out, off, "not_tls" if first else "corrupt", f"bad header {h.hex()}")
                return
            if length > MAX_RECORD:
                self._anomaly(out, off, "tls.record.too_long", f"{length} > {MAX_RECORD} bytes")
                self._stop(out, off, "corrupt", f"record length {length}")
                return
            keep = ctype == 20 or (ctype in (21, 22) and not self._encrypted())
        self._rec_type, self._rec_len, self._need, self._keep = ctype, length, length, keep
        self._body.clear()
        self._in_body = True
        if length == 0:
            self._finish_record(out, b"")

    def _finish_record(self, out: list[TlsEvent], body: bytes) -> None:
        """The current record is complete; ``body`` is its bytes when kept (else empty)."""
        self._in_body = False
        self._records += 1
        ctype, off, length = self._rec_type, self._rec_off, self._rec_len
        if self._records == 1:
            self.first_end = off + (2 if ctype == _SSL2_RECORD else 5) + length
        self._body.clear()
        if ctype == _SSL2_RECORD:
            self._sslv2_record(body, off, out)
            return
        if self._hs and ctype != 22:
            self._anomaly(
                out,
                off,
                "tls.record.interleaved",
                f"{name_of(ContentType, ctype, 2)} record inside a fragmented handshake message",
            )
        enc = self._encrypted()
        if ctype == 22:
            if enc:
                out.append(EncryptedRecord(off, 22, length))
            elif not length:
                self._anomaly(out, off, "tls.record.empty", "zero-length handshake record")
            else:
                self._hs_append(body, off + 5, out)
        elif ctype == 20:
            if self._hs:
                self._anomaly(
                    out,
                    off,
                    "tls.handshake.truncated",
                    "ChangeCipherSpec inside a fragmented handshake message",
                )
                self._hs.clear()
                self._hs_marks.clear()
            if body == b"\x01":
                out.append(ChangeCipherSpec(off))
                self._ccs = True
            elif enc:
                out.append(EncryptedRecord(off, 20, length))
            else:
                self._anomaly(out, off, "tls.ccs.malformed", f"body {body[:8].hex()!r}")
                out.append(ChangeCipherSpec(off))
                self._ccs = True
        elif ctype == 21:
            if enc:
                out.append(Alert(off, None, None, encrypted=True, length=length))
                return
            if length == 0 or length % 2:
                self._anomaly(out, off, "tls.alert.bad_length", f"{length}-byte alert record")
            for i in range(0, length - 1, 2):
                out.append(Alert(off + 5 + i, body[i], body[i + 1]))
        else:  # 23 application data, 24 heartbeat
            out.append(EncryptedRecord(off, ctype, length))

    def _sslv2_record(self, body: bytes, off: int, out: list[TlsEvent]) -> None:
        if not self.from_client or not body or body[0] != 1:
            kind = body[0] if body else None
            self._anomaly(
                out,
                off,
                "tls.sslv2.unsupported",
                f"SSL 2.0 message type {kind} (only an SSLv2-compatible ClientHello is understood)",
            )
            self._stop(out, off, "sslv2", "SSL 2.0 record")
            return
        problems: Problems = []
        hello = parse_sslv2_client_hello(body, problems)
        out.append(HandshakeMessage(off, HandshakeType.client_hello, len(body), hello,
                                    end=off + len(body)))
        for code, msg in problems:
            self._anomaly(out, off, code, msg)

    def _hs_append(self, fragment: bytes | memoryview, frag_off: int, out: list[TlsEvent]
                   ) -> None:
        if self._hs_skip:
            k = min(self._hs_skip, len(fragment))
            fragment, frag_off = fragment[k:], frag_off + k
            self._hs_skip -= k
            if not fragment:
                return
        if not self._hs and self._shortcuts:
            # Nothing buffered: read the messages that are whole in this record straight from
            # it (the usual case), then buffer only a remainder, exactly as the general loop
            # below would leave it.
            p, n = 0, len(fragment)
            rec_end = frag_off + n
            while n - p >= 4:
                mlen = (fragment[p + 1] << 16) | (fragment[p + 2] << 8) | fragment[p + 3]
                if mlen > MAX_HANDSHAKE or n - p - 4 < mlen:
                    break
                self._message(
                    frag_off + p, fragment[p], mlen, fragment[p + 4 : p + 4 + mlen], out, rec_end
                )
                p += 4 + mlen
            if p == n:
                return
            fragment, frag_off = fragment[p:], frag_off + p
        self._hs_marks.append((len(self._hs), frag_off))
        self._hs += fragment
        rec_end = frag_off + len(fragment)
        buf, p = self._hs, 0
        while len(buf) - p >= 4:
            mtype = buf[p]
            mlen = (buf[p + 1] << 16) | (buf[p + 2] << 8) | buf[p + 3]
            moff = self._hs_offset(p)
            if mlen > MAX_HANDSHAKE:
                avail = len(buf) - p - 4
                self._anomaly(
                    out,
                    moff,
                    "tls.handshake.too_big",
                    f"{name_of(HandshakeType, mtype, 2)} of {mlen} bytes skipped "
                    f"(limit {MAX_HANDSHAKE})",
                )
                self._hs_skip = max(0, mlen - avail)
                p = len(buf)
                break
            if len(buf) - p - 4 < mlen:
                break
            self._message(moff, mtype, mlen, bytes(buf[p + 4 : p + 4 + mlen]), out, rec_end)
            p += 4 + mlen
        self._hs_consumed(p)

    def _hs_offset(self, pos: int) -> int:
        base_pos, base_off = self._hs_marks[0] if self._hs_marks else (0, 0)
        for bp, so in self._hs_marks:
            if bp > pos:
                break
            base_pos, base_off = bp, so
        return base_off + (pos - base_pos)

    def _hs_consumed(self, p: int) -> None:
        if p == 0:
            return
        del self._hs[:p]
        if not self._hs:
            self._hs_marks.clear()
            return
        marks: list[tuple[int, int]] = []
        for bp, so in self._hs_marks:
            if bp <= p:
                marks = [(0, so + (p - bp))]
            else:
                marks.append((bp - p, so))
        self._hs_marks = marks

    def _message(self, off: int, mtype: int, mlen: int, body: bytes | memoryview,
                 out: list[TlsEvent], end: int | None = None) -> None:
        if mtype not in _PARSED_TYPES:
            if self._bare:
                out.append((off, mtype, mlen, None, end))
            else:
                out.append(HandshakeMessage(off, mtype, mlen, None, end))
            return
        body = bytes(body)
        problems: Problems = []
        parsed: ParsedBody | None
        if mtype == _CLIENT_HELLO:
            parsed = parse_client_hello(body, problems)
        elif mtype == _SERVER_HELLO:
            parsed = parse_server_hello(body, problems)
            if parsed is not None and not self.from_client:
                self.version = parsed.version
        elif mtype == _CERTIFICATE:
            parsed = parse_certificate(body, self.version, problems)
        elif mtype == _NEW_SESSION_TICKET:
            parsed = None if self.from_client else parse_new_session_ticket(
                body, self.version, problems)
        elif mtype == _SERVER_KEY_EXCHANGE:
            parsed = None if self.from_client else parse_server_key_exchange(body)
        else:
            parsed = parse_certificate_request(body, self.version, problems)
        if self._bare:
            out.append((off, mtype, mlen, parsed, end))
        else:
            out.append(HandshakeMessage(off, mtype, mlen, parsed, end))
        for code, msg in problems:
            self._anomaly(out, off, code, msg)
