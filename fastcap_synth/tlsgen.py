"""Real OpenSSL handshakes driven through memory BIOs.

Hand-written TLS bytes would only test our assumptions; these flights come from the same library
mail servers use, so a CertificateRequest, an empty client Certificate or a fatal alert looks
exactly as it would on the wire. No sockets are involved: each side's output BIO is drained into
the other side's input BIO, and every drain becomes one flight.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from .certs import Issued

Flight = tuple[bool, bytes]  # (from_client, wire bytes)

_VERSIONS = {
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}


def _version(v: str | ssl.TLSVersion | None) -> ssl.TLSVersion | None:
    if v is None or isinstance(v, ssl.TLSVersion):
        return v
    return _VERSIONS[v]


def server_context(
    cert: Issued,
    *,
    client_auth: str = "none",
    client_cas: Sequence[Issued] = (),
    min_version: str | ssl.TLSVersion | None = "1.2",
    max_version: str | ssl.TLSVersion | None = None,
    seclevel: int | None = None,
) -> ssl.SSLContext:
    """Server context; ``client_auth`` is "none", "optional" (CertificateRequest, empty answer
    allowed) or "required". ``client_cas`` are trusted for verifying client certificates."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _set_versions(ctx, min_version, max_version, seclevel)
    cert.load_into(ctx)
    ctx.verify_mode = {
        "none": ssl.CERT_NONE,
        "optional": ssl.CERT_OPTIONAL,
        "required": ssl.CERT_REQUIRED,
    }[client_auth]
    for ca in client_cas:
        ctx.load_verify_locations(cadata=ca.pem.decode())
    return ctx


def client_context(
    *,
    cert: Issued | None = None,
    trust: Sequence[Issued] = (),
    check_hostname: bool = False,
    min_version: str | ssl.TLSVersion | None = "1.2",
    max_version: str | ssl.TLSVersion | None = None,
    seclevel: int | None = None,
) -> ssl.SSLContext:
    """Client context. Like most MTAs it does not verify the server unless ``trust`` is given."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _set_versions(ctx, min_version, max_version, seclevel)
    ctx.check_hostname = check_hostname and bool(trust)
    if trust:
        for ca in trust:
            ctx.load_verify_locations(cadata=ca.pem.decode())
    else:
        ctx.verify_mode = ssl.CERT_NONE
    if cert is not None:
        cert.load_into(ctx)
    return ctx


def _set_versions(
    ctx: ssl.SSLContext,
    lo: str | ssl.TLSVersion | None,
    hi: str | ssl.TLSVersion | None,
    seclevel: int | None,
) -> None:
    if (v := _version(lo)) is not None:
        ctx.minimum_version = v
    if (v := _version(hi)) is not None:
        ctx.maximum_version = v
    if seclevel is not None:
        ctx.set_ciphers(f"DEFAULT:@SECLEVEL={seclevel}")


@dataclass
class Outcome:
    """How a handshake ended. ``alert_by`` is the side that raised a fatal error."""

    completed: bool
    alert_by: str | None = None  # "client" | "server" | None
    error: str | None = None  # the raising side's OpenSSL reason
    peer_error: str | None = None  # what the other side saw after the alert
    version: str | None = None  # e.g. "TLSv1.3"
    cipher: str | None = None
    client_cert_requested: bool = False
    peer_cert_der: bytes | None = None  # client certificate as verified by the server
    resumed: bool = False  # the client resumed the session it offered (abbreviated handshake)


@dataclass
class TlsSession:
    """A client/server pair of ``SSLObject``s connected through memory BIOs.

    Every byte either side emits is appended to ``flights`` in wire order, so the list can be
    replayed into TCP segments. Use :func:`handshake` to create one.
    """

    client: ssl.SSLObject
    server: ssl.SSLObject
    c_in: ssl.MemoryBIO
    c_out: ssl.MemoryBIO
    s_in: ssl.MemoryBIO
    s_out: ssl.MemoryBIO
    flights: list[Flight] = field(default_factory=list)
    outcome: Outcome | None = None
    received: dict[bool, bytearray] = field(
        default_factory=lambda: {True: bytearray(), False: bytearray()}
    )  # plaintext received, keyed by "sent by client"

    def _drain(self, from_client: bool) -> bytes:
        out = (self.c_out if from_client else self.s_out).read()
        if out:
            self.flights.append((from_client, out))
            (self.s_in if from_client else self.c_in).write(out)
        return out

    def _pump_reads(self, to_client: bool) -> None:
        """Let the receiver consume whatever arrived (tickets, data, alerts)."""
        obj = self.client if to_client else self.server
        while True:
            try:
                data = obj.read(65536)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                break
            if not data:
                break
            self.received[not to_client].extend(data)
        self._drain(from_client=to_client)  # e.g. a TLS 1.3 KeyUpdate response

    def send(self, from_client: bool, data: bytes) -> list[Flight]:
        """Encrypt ``data`` on one side, deliver it to the other; returns the new flights.

        Raises ``ssl.SSLError`` if the receiver rejects it (e.g. after a TLS 1.3 late alert).
        """
        start = len(self.flights)
        (self.client if from_client else self.server).write(data)
        self._drain(from_client)
        self._pump_reads(to_client=not from_client)
        return self.flights[start:]

    def close(self, from_client: bool) -> list[Flight]:
        """Send close_notify from one side and let the peer read it."""
        start = len(self.flights)
        try:
            (self.client if from_client else self.server).unwrap()
        except ssl.SSLError:
            pass
        self._drain(from_client)
        try:
            (self.server if from_client else self.client).read(1)
        except ssl.SSLError:
            pass
        return self.flights[start:]


def handshake(
    server_ctx: ssl.SSLContext,
    client_ctx: ssl.SSLContext,
    *,
    server_hostname: str | None = None,
    max_rounds: int = 20,
    session: ssl.SSLSession | None = None,
) -> TlsSession:
    """Run a handshake to completion or to a fatal alert; inspect ``.flights``/``.outcome``.

    ``session`` (from an earlier connection's ``client.session``, same contexts) makes the
    client offer to resume it, as an MTA with a TLS session cache does: by session ID, or by
    ticket unless the server context has ``ssl.OP_NO_TICKET`` (TLS 1.2), by PSK in TLS 1.3.

    In TLS 1.3 the client finishes before the server has judged its certificate, so a server
    rejection arrives as an alert *after* the client's Finished, exactly as on the wire.
    """
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(
        c_in, c_out, server_side=False, server_hostname=server_hostname, session=session
    )
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    sess = TlsSession(client, server, c_in, c_out, s_in, s_out)
    done = {True: False, False: False}
    failure: tuple[bool, str] | None = None
    for _ in range(max_rounds):
        progressed = False
        for is_client in (True, False):
            obj = client if is_client else server
            if not done[is_client]:
                try:
                    obj.do_handshake()
                    done[is_client] = True
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLError as exc:
                    failure = (is_client, exc.reason or str(exc))
            progressed |= bool(sess._drain(is_client))
            if failure:
                break
        if failure or (done[True] and done[False] and not progressed):
            break
        if not progressed and not failure:
            break
    peer_error = None
    if failure:
        # Deliver the alert and let the victim notice it, as its next read would.
        victim = server if failure[0] else client
        try:
            if done[not failure[0]]:
                victim.read(1)
            else:
                victim.do_handshake()
        except ssl.SSLError as exc:
            peer_error = exc.reason or str(exc)
    elif done[True] and done[False]:
        sess._pump_reads(to_client=True)  # absorb TLS 1.3 session tickets
    sess.outcome = Outcome(
        completed=failure is None and done[True] and done[False],
        alert_by=None if failure is None else ("client" if failure[0] else "server"),
        error=None if failure is None else failure[1],
        peer_error=peer_error,
        version=client.version() or server.version() or negotiated_version(sess.flights),
        cipher=(client.cipher() or (None,))[0],
        client_cert_requested=server_ctx.verify_mode != ssl.CERT_NONE,
        peer_cert_der=_peer_der(server),
        resumed=bool(client.session_reused),
    )
    return sess


def _peer_der(server: ssl.SSLObject) -> bytes | None:
    try:
        return server.getpeercert(binary_form=True)
    except (ValueError, ssl.SSLError):
        return None


def records(data: bytes) -> list[tuple[int, bytes]]:
    """Split wire bytes into (content_type, fragment) TLS records; handy in tests."""
    out, off = [], 0
    while off + 5 <= len(data):
        ctype, length = data[off], int.from_bytes(data[off + 3 : off + 5], "big")
        out.append((ctype, data[off + 5 : off + 5 + length]))
        off += 5 + length
    return out


_VERSION_NAMES = {0x0301: "TLSv1", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2", 0x0304: "TLSv1.3"}


def negotiated_version(flights: Sequence[Flight]) -> str | None:
    """Version chosen in the ServerHello (``ssl`` reports none once a handshake has failed)."""
    for from_client, data in flights:
        if from_client:
            continue
        for ctype, frag in records(data):
            if ctype != 22 or not frag or frag[0] != 2:
                continue
            body = frag[4:]
            version = int.from_bytes(body[0:2], "big")
            off = 34 + 1 + body[34]  # legacy_version, random, session_id
            off += 3  # cipher suite, compression method
            end = off + 2 + int.from_bytes(body[off : off + 2], "big")
            off += 2
            while off + 4 <= end:
                etype = int.from_bytes(body[off : off + 2], "big")
                elen = int.from_bytes(body[off + 2 : off + 4], "big")
                if etype == 43 and elen == 2:  # supported_versions: the real TLS 1.3 marker
                    version = int.from_bytes(body[off + 4 : off + 6], "big")
                off += 4 + elen
            return _VERSION_NAMES.get(version, hex(version))
    return None


def client_random(flights: Sequence[Flight]) -> bytes | None:
    """The 32-byte random of the first ClientHello: the key a key log is indexed by."""
    for from_client, data in flights:
        if not from_client:
            continue
        for ctype, frag in records(data):
            if ctype == 22 and len(frag) >= 38 and frag[0] == 1:
                return bytes(frag[6:38])  # handshake header (4), legacy_version (2)
        return None
    return None


@contextmanager
def keylog_tap(ctx: ssl.SSLContext) -> Iterator[list[str]]:
    """Collect the NSS key log lines OpenSSL writes for ``ctx`` while the block runs.

    ``ssl`` only logs to a file, so a private temporary one is used and read back on exit; the
    yielded list is filled then, in the order OpenSSL wrote the lines (comments dropped). Any
    key log file the context had before is restored afterwards.
    """
    before = ctx.keylog_filename
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="fastcap-keylog-") as tmp:
        path = os.path.join(tmp, "keys.log")
        ctx.keylog_filename = path
        try:
            yield lines
        finally:
            ctx.keylog_filename = before  # closes (and so flushes) the temporary file
            with open(path, encoding="ascii") as fh:
                lines.extend(ln.rstrip("\n") for ln in fh if ln.strip() and ln[0] != "#")


def session_keylog(lines: Sequence[str], random: bytes | None) -> list[str]:
    """The lines of ``lines`` that belong to the session with ClientHello random ``random``."""
    if random is None:
        return []
    want = random.hex()
    return [ln for ln in lines if ln.split(" ")[1:2] == [want]]
