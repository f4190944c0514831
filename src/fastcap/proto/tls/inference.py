"""Did the client send a certificate? TLS 1.3 without keys, from record sizes.

TLS 1.3 encrypts everything after the ServerHello, but not the record lengths. The client's
second flight is fixed by RFC 8446 4.4: a Certificate message only when the server sent a
CertificateRequest (8 bytes when empty: header, empty request context, empty list), a
CertificateVerify only when that Certificate carries a chain, then a Finished of exactly 4 + the
suite's hash length. Each record adds one inner content-type byte and the AEAD tag. So the
sizes alone say "no Certificate", "an empty Certificate" or "a chain", as long as the sender did
not pad its records: where the sizes fit no unpadded layout, or something else could explain
them (early data, post-handshake authentication, a client alert, missing data), the answer is
``undecided``, with the reason, unless even the room padded records offer is too small for
a certificate chain. A pre-shared-key handshake needs no sizes: RFC 8446 forbids a
CertificateRequest in it. The rule is checked against decrypted generated handshakes
(``tests/test_tls13_inference.py``, ``benchmarks/inference_accuracy.py``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ...identity import ByIdentity
from .const import is_tls13
from .facts import TlsHandshake, Where

# TLS 1.3 suite -> (AEAD tag length, hash length)
_SUITES = {
    0x1301: (16, 32),  # TLS_AES_128_GCM_SHA256
    0x1302: (16, 48),  # TLS_AES_256_GCM_SHA384
    0x1303: (16, 32),  # TLS_CHACHA20_POLY1305_SHA256
    0x1304: (16, 32),  # TLS_AES_128_CCM_SHA256
    0x1305: (8, 32),  # TLS_AES_128_CCM_8_SHA256
}
_EMPTY_CERTIFICATE = 8  # type, length(3), empty context(1), empty certificate_list(3)
# A Certificate message with one certificate: header 4, context 1, list length 3, entry
# length 3, extensions length 2, and a DER certificate of at least ~100 bytes.
MIN_CERTIFICATE = 4 + 1 + 3 + 3 + 100 + 2
# CertificateVerify: header 4, scheme 2, length 2, signature: 64 (Ed25519) to 1024 (RSA 8192).
MIN_VERIFY, MAX_VERIFY = 4 + 2 + 2 + 64, 4 + 2 + 2 + 1024
_POST_HANDSHAKE_AUTH = 49  # ClientHello extension: the server may ask for a certificate later


@dataclass(frozen=True, slots=True)
class ClientCertInference:
    """What the record sizes say about the client's certificate.

    ``verdict`` is ``absent``, ``present`` or ``undecided``; ``confidence`` ``high`` or
    ``medium`` for a decision, ``none`` when undecided. ``requested`` is whether the server
    sent a CertificateRequest, as the client's answer shows it (None when unknown).
    ``evidence`` names the sizes and the suite's tag and hash lengths; ``reason`` says why it
    is undecided (None when decided). ``at`` is where the client's flight starts.
    """

    verdict: str
    confidence: str
    evidence: str
    reason: str | None = None
    requested: bool | None = None
    at: Where | None = None

    @property
    def decided(self) -> bool:
        return self.verdict != "undecided"

    @property
    def reason_undecided(self) -> str | None:
        """The shared design's name for ``reason``."""
        return self.reason


def _undecided(reason: str, evidence: str = "", at: Where | None = None) -> ClientCertInference:
    return ClientCertInference("undecided", "none", evidence, reason, None, at)


def _sizes(sizes: tuple[int, ...]) -> str:
    return ", ".join(map(str, sizes)) or "none"


def _signature_kind(sig: int) -> str:
    """The key a signature of ``sig`` bytes most likely comes from."""
    if sig in (128, 256, 384, 512):
        return f"an RSA-{sig * 8} signature"
    for lo, hi, name in ((68, 72, "ECDSA P-256"), (100, 104, "ECDSA P-384"),
                         (135, 139, "ECDSA P-521")):
        if lo <= sig <= hi:
            return f"likely an {name} signature"
    if sig == 64:
        return "likely an Ed25519 signature"
    if sig == 114:
        return "likely an Ed448 signature"
    return f"a {sig}-byte signature"


def _server_flight(sizes: tuple[int, ...], finished: int) -> tuple[bool | None, str]:
    """(CertificateRequest seen, text) from the server's records before the client's flight:
    with one record per message they are EncryptedExtensions, [CertificateRequest],
    Certificate, CertificateVerify, Finished, so a fifth record is the CertificateRequest."""
    text = f"server flight {_sizes(sizes)} bytes"
    if len(sizes) >= 4 and sizes[-1] == finished:
        if len(sizes) == 5:
            return True, text + (f": a CertificateRequest-sized record ({sizes[1]} bytes) "
                                 "between EncryptedExtensions and Certificate")
        if len(sizes) == 4:
            return False, text + ": no separate CertificateRequest-sized record"
    if len(sizes) == 2 and sizes[-1] == finished:
        return False, text + ": EncryptedExtensions and Finished only (no certificates)"
    return None, text + ": messages share records, a CertificateRequest cannot be told apart"


def infer_client_cert(tls: TlsHandshake) -> ClientCertInference:
    """Decide from record sizes whether the client of a TLS 1.3 handshake sent a certificate.
    Never raises; anything it cannot vouch for is ``undecided``.

    The diagnosis, the linking of sessions and the report each ask about the same session
    in turn: the last few answers are kept (the facts are frozen, so is the answer)."""
    if not tls.tls13_encrypted:
        return _undecided("not a TLS 1.3 handshake")
    return _infer_kept(ByIdentity(tls))


@functools.lru_cache(maxsize=4)
def _infer_kept(key: ByIdentity[TlsHandshake]) -> ClientCertInference:
    return _infer(key.obj)


def _infer(tls: TlsHandshake) -> ClientCertInference:
    if not tls.tls13_encrypted or tls.server_hello is None or not is_tls13(tls.version):
        return _undecided("not a TLS 1.3 handshake")
    suite = _SUITES.get(tls.cipher or -1)
    if suite is None:
        return _undecided(f"unknown TLS 1.3 cipher suite {tls.cipher_name or tls.cipher}")
    tag, hash_len = suite
    over = 1 + tag  # inner content type + AEAD tag
    finished = 4 + hash_len + over
    alert = 2 + over
    suite_text = (f"{tls.cipher_name} ({tag}-byte tag, {hash_len}-byte hash: Finished "
                  f"records are {finished} bytes, an empty Certificate "
                  f"{_EMPTY_CERTIFICATE + over})")
    c2s, s2c = tls.c2s_encrypted, tls.s2c_encrypted
    if not c2s.sizes:
        return _undecided("missing data: no encrypted client record in the capture", suite_text)
    if not s2c.sizes:
        return _undecided("missing data: no encrypted server record in the capture", suite_text)
    order = c2s.peer_before
    if order:
        # the client's flight answers the server's: skip client records sent before any
        # server record (0-RTT early data the server did not accept)
        start = next((i for i, n in enumerate(order) if n > 0), None)
        if start is None:
            return _undecided("missing data: the capture shows no client record after the "
                              "server's flight", suite_text)
        server_n = order[start]
    else:  # no order kept (facts built by hand): the client's first record starts its flight
        start, server_n = 0, len(s2c.sizes)
    first_at = c2s.first_at if start == 0 else None
    pha = any(e.type == _POST_HANDSHAKE_AUTH for e in getattr(tls.client_hello, "extensions", ()))
    if tls.resumption == "psk":
        return _resumed(s2c.sizes[:server_n], suite_text, pha, first_at)
    requested_seen, server_text = _server_flight(s2c.sizes[:server_n], finished)
    early = f"; {start} client record(s) before the server's flight skipped (early data)" \
        if start else ""
    rest = c2s.sizes[start:]
    shown = rest[:4]
    evidence = f"{suite_text}; client records {_sizes(shown)} bytes; {server_text}{early}"
    if tls.hello_retry_request:
        evidence += "; after a HelloRetryRequest"
    ccs = tls.client_ccs_at
    if ccs is not None and c2s.first_at is not None and ccs.offset > c2s.first_at.offset:
        return _undecided("middlebox compatibility mode quirk: the client's ChangeCipherSpec "
                          "came after its encrypted records", evidence, first_at)
    if rest[0] == alert:
        return _undecided(f"the client's first encrypted record is alert-sized ({alert} "
                          "bytes): it aborted before its certificate flight", evidence, first_at)
    got = _layout(tls, rest, finished, hash_len, over, server_n, requested_seen, evidence, pha,
                  first_at)
    if got.decided or not order or not (got.reason or "").startswith("record padding"):
        return got
    window = sum(1 for n in order[start:] if n == server_n)
    return _bounded(rest[:window], s2c.sizes[server_n:server_n + 1], over, hash_len, alert,
                    requested_seen, pha, got) or got


def _layout(tls: TlsHandshake, rest: tuple[int, ...], finished: int, hash_len: int, over: int,
            server_n: int, requested_seen: bool | None, evidence: str, pha: bool,
            first_at: Where | None) -> ClientCertInference:
    """The client's flight read from its records' sizes, as an unpadded sender writes them."""
    alert = 2 + over
    fin = next((i for i in range(min(3, len(rest))) if rest[i] == finished), None)
    if fin is None:
        return _coalesced(rest, hash_len, over, evidence, pha, first_at)
    body = sum(n - over for n in rest[:fin])  # handshake bytes before the Finished
    if fin == 0:
        if pha:
            return _undecided("the client offered post-handshake authentication: a certificate "
                              "asked for later would look like application data", evidence,
                              first_at)
        confidence = "medium" if requested_seen else "high"
        why = ("; but the server's flight has a CertificateRequest-sized record"
               if requested_seen else "")
        return ClientCertInference(
            "absent", confidence,
            f"the client's flight is a lone Finished ({finished} bytes), no Certificate "
            f"message{why}; {evidence}",
            None, False, first_at)
    if body == _EMPTY_CERTIFICATE and fin == 1:
        return ClientCertInference(
            "absent", "medium" if requested_seen is False or pha else "high",
            f"an empty Certificate ({rest[0]} bytes = {_EMPTY_CERTIFICATE} + {over}) then "
            f"Finished ({finished} bytes): the server asked, the client sent no certificate"
            f"{'; the client offered post-handshake authentication' if pha else ''}; "
            f"{evidence}", None, True, first_at)
    if body >= MIN_CERTIFICATE + MIN_VERIFY:
        if fin == 2:
            verify = rest[1] - over
            if not MIN_VERIFY <= verify <= MAX_VERIFY:
                return _undecided(f"record padding? {rest[1]} bytes is no CertificateVerify",
                                  evidence, first_at)
            what = (f"Certificate ({rest[0] - over} bytes), CertificateVerify ({verify} "
                    f"bytes: {_signature_kind(verify - 8)}), Finished ({finished} bytes)")
        else:
            what = (f"Certificate and CertificateVerify in one record ({body} bytes), then "
                    f"Finished ({finished} bytes)")
        return ClientCertInference(
            "present", "medium" if requested_seen is False else "high",
            f"{what}: the client sent a certificate chain{_after(tls, server_n, alert)}"
            f"; {evidence}", None, True, first_at)
    return _undecided(f"record padding? {body} bytes before the Finished fit neither an empty "
                      f"Certificate ({_EMPTY_CERTIFICATE}) nor a certificate with its "
                      "CertificateVerify", evidence, first_at)


def _resumed(server: tuple[int, ...], suite_text: str, pha: bool,
             at: Where | None) -> ClientCertInference:
    """A handshake the server accepted a pre-shared key in: RFC 8446 4.3.2 forbids a
    CertificateRequest in it (only a post-handshake one, 4.6.2, when the client offered
    post_handshake_auth), so the client sent no Certificate whatever its records' sizes or
    padding. The server's flight is then EncryptedExtensions and Finished: more records than
    that would be a server breaking the rule, and nothing is vouched for."""
    evidence = f"{suite_text}; server flight {_sizes(server)} bytes"
    if pha:
        return _undecided("resumed with a pre-shared key, and the client offered post-handshake "
                          "authentication: a certificate asked for after the handshake would "
                          "look like application data", evidence, at)
    if len(server) > 2:
        return _undecided(f"resumed with a pre-shared key, but the server's flight has "
                          f"{len(server)} records, more than its EncryptedExtensions and "
                          "Finished", evidence, at)
    return ClientCertInference(
        "absent", "high",
        "resumed with a pre-shared key: the server may not ask for a certificate in such a "
        "handshake (RFC 8446 4.3.2) and the client did not offer post-handshake "
        f"authentication, so it sent none; the original handshake's certificate applies; "
        f"{evidence}", None, False, at)


def _bounded(window: tuple[int, ...], closing: tuple[int, ...], over: int, hash_len: int,
             alert: int, requested_seen: bool | None, pha: bool,
             padded: ClientCertInference) -> ClientCertInference | None:
    """Padded records hide their sizes but not how much they can hold: a record of n bytes
    carries at most n - tag - 1 bytes of messages. The client's whole flight came before the
    server's next record when that record is not an alert: a NewSessionTicket follows the
    client's Finished (RFC 8446 4.6.1; only a server that did not ask for a certificate may
    send it sooner, and then none was sent), and so does any reply (a mail server says
    nothing after STARTTLS until the client speaks; a server sending 0.5-RTT data while
    the client's flight is on its way would defeat this, as none on port 465 is known to).
    When the records before it cannot hold the smallest certificate chain flight, no chain
    was sent; an empty Certificate or none at all is all sizes cannot tell apart. Needs the
    server's flight unpadded (its Finished has its exact size, ``requested_seen`` is not
    None), so that its alert would be alert-sized."""
    if requested_seen is None or not closing or closing[0] == alert:
        return None
    if pha and not requested_seen:
        return None  # a certificate asked for after the handshake would look like data
    room = sum(n - over for n in window)
    smallest = MIN_CERTIFICATE + MIN_VERIFY + 4 + hash_len
    if room >= smallest:
        return None
    asked = ("the server's flight has a CertificateRequest-sized record: an empty Certificate"
             if requested_seen else "no CertificateRequest-sized record in the server's flight")
    return ClientCertInference(
        "absent", "medium",
        f"padded records: the client's {len(window)} record(s) before the server's next one "
        f"({closing[0]} bytes, not an alert) hold at most {room} bytes, less than the "
        f"{smallest} of the smallest certificate chain with its CertificateVerify and "
        f"Finished: no chain; {asked}; {padded.evidence}", None, requested_seen, padded.at)


def _after(tls: TlsHandshake, server_n: int, alert: int) -> str:
    """What the server sent right after the client's flight, when it tells something."""
    later = tls.s2c_encrypted.sizes[server_n:]
    if later and later[0] == alert and len(later) == 1:
        return (f"; the server's only record after it is alert-sized ({alert} bytes): it "
                "probably refused the certificate")
    return ""


def _coalesced(rest: tuple[int, ...], hash_len: int, over: int, evidence: str, pha: bool,
               at: Where | None) -> ClientCertInference:
    """No record of exactly a Finished's size: the flight shares one record, or was padded."""
    body = rest[0] - over
    if body == _EMPTY_CERTIFICATE + 4 + hash_len:
        return ClientCertInference(
            "absent", "medium",
            f"one record of {rest[0]} bytes = empty Certificate ({_EMPTY_CERTIFICATE}) + "
            f"Finished ({4 + hash_len}) + {over}: the server asked, the client sent no "
            f"certificate{'; the client offered post-handshake authentication' if pha else ''}"
            f"; {evidence}", None, True, at)
    if len(rest) > 1 and rest[1] == rest[0]:
        # A whole flight and the application data after it (the EHLO first) of one size:
        # every record was padded to it, an empty Certificate's flight as much as a chain's.
        return _undecided(f"record padding: the client's records after its flight are as long "
                          f"as the record holding it ({rest[0]} bytes)", evidence, at)
    if body >= MIN_CERTIFICATE + MIN_VERIFY + 4 + hash_len:
        # A sender padding to a block of this size makes a lone Finished (or an empty
        # Certificate and Finished) one block long, its shortest record: only a later record
        # shorter than this one shows it is no such block (an alert may go unpadded).
        later = [n for n in rest[1:] if n != 2 + over]
        if not later or min(later) >= rest[0]:
            more = (f"none of the client's later records ({_sizes(tuple(later[:4]))} bytes) is "
                    "shorter" if later else "no later client record shows it is not padded")
            return _undecided(f"record padding? the client's first record ({rest[0]} bytes) "
                              "could hold its whole flight or a lone Finished padded to a "
                              f"block: {more}", evidence, at)
        return ClientCertInference(
            "present", "medium",
            f"the client's first record ({rest[0]} bytes) holds its whole flight, too big for "
            "anything but a certificate chain (padding cannot be ruled out); "
            f"{evidence}", None, True, at)
    if len(rest) < 2:
        return _undecided(f"missing data: the capture ends the client's flight after one "
                          f"{rest[0]}-byte record", evidence, at)
    return _undecided("record padding or coalesced records: no Finished-sized record, and the "
                      "sizes fit no unpadded layout", evidence, at)
