"""Record decryption of one direction of a TLS connection, given the session's key log secrets.

A pure function of the records as they were on the wire: it skips what was sent in the clear,
follows the key changes (TLS 1.2: ChangeCipherSpec; TLS 1.3: this direction's Finished, then
KeyUpdate) and returns the plaintext records. Failures are values: the first record that does
not authenticate, a missing secret or an unsupported suite ends the direction with ``error``
naming the record's stream offset, and what was decrypted before it is kept. Nothing here
raises on data. Work is bounded: application data stops after ``app_limit`` bytes, which is
enough for an SMTP dialogue up to DATA; TLS <= 1.2 goes on past it with the records that are
not application data (their type is in the clear), so a renegotiation after the limit is
still followed, and TLS 1.3, whose record types are encrypted, opens every record to find
them (a post-handshake CertificateRequest and its answer, a KeyUpdate, an alert), keeping
no application data past the limit.
"""

from __future__ import annotations

import hmac as std_hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

from ...pickling import compact
from .keylog import SessionSecrets
from .keyschedule import Suite, hash_of, key_block, next_traffic_secret, suite, traffic_key_iv

CCS, ALERT, HANDSHAKE, APPLICATION_DATA = 20, 21, 22, 23
FINISHED, KEY_UPDATE = 20, 24


@compact  # may travel back from worker processes inside a session
@dataclass(frozen=True, slots=True)
class CipherRecord:
    """One record as on the wire."""

    content_type: int
    version: int
    body: bytes
    offset: int  # stream offset of its 5-byte header


@compact  # may travel back from worker processes inside a session
@dataclass(frozen=True, slots=True)
class PlainRecord:
    """One decrypted record; TLS 1.3 records carry their inner type, padding stripped."""

    content_type: int
    data: bytes
    offset: int  # stream offset of the ciphertext record it came from


@compact  # may travel back from worker processes inside a session
@dataclass(frozen=True, slots=True)
class Decrypted:
    """One direction's plaintext. Records sent in the clear (hellos, CCS) are not included."""

    records: tuple[PlainRecord, ...]
    error: str | None  # first failure: "record at stream offset 1234: authentication failed"
    limited: bool  # stopped at app_limit bytes of application data
    app_bytes: int  # application-data plaintext bytes returned
    # TLS <= 1.2: ``error`` is a renegotiation's ChangeCipherSpec whose keys were not given;
    # the records before it (the renegotiation's own handshake among them) were all read
    unkeyed: bool = False


@dataclass(frozen=True, slots=True)
class Rekey:
    """A TLS <= 1.2 renegotiation's keys, as its own hellos (read decrypted under the keys
    before them) and the key log's line for its ClientHello random give them."""

    cipher_suite: int
    client_random: bytes
    server_random: bytes
    secrets: SessionSecrets
    encrypt_then_mac: bool = False
    version: str = ""  # its ServerHello's, as TlsHandshake spells it; "" for the first's


# why a renegotiation's keys may be unknown, which the caller (who reads both directions'
# hellos) can say more precisely
UNKEYED_WHY = (" (the key log has no line for the renegotiation's ClientHello random, or its "
               "hellos were not decrypted)")


class _Fail(Exception):
    """Internal: one record failed; becomes ``Decrypted.error``, never escapes."""


Opener = Callable[[CipherRecord, int], tuple[int, bytes]]  # (record, seq) -> (type, plaintext)


def _aead(s: Suite, key: bytes):
    if s.cipher == "gcm":
        return AESGCM(key)
    if s.cipher == "ccm":
        return AESCCM(key, tag_length=s.tag_len)
    return ChaCha20Poly1305(key)


def _xor_nonce(iv: bytes, seq: int) -> bytes:
    """RFC 8446 5.3 / RFC 7905 2: the IV XOR the 64-bit sequence number, left-padded."""
    return (int.from_bytes(iv, "big") ^ seq).to_bytes(len(iv), "big")


def _open13(s: Suite, secret: bytes) -> Opener:
    key, iv = traffic_key_iv(secret, s)
    aead = _aead(s, key)

    def open_(rec: CipherRecord, seq: int) -> tuple[int, bytes]:
        if len(rec.body) < s.tag_len + 1:
            raise _Fail("record too short for its tag")
        header = bytes([rec.content_type]) + rec.version.to_bytes(2, "big")
        header += len(rec.body).to_bytes(2, "big")
        try:
            inner = aead.decrypt(_xor_nonce(iv, seq), rec.body, header)
        except InvalidTag:
            raise _Fail("authentication failed") from None
        plain = inner.rstrip(b"\x00")  # RFC 8446 5.4: zero padding after the inner type
        if not plain:
            raise _Fail("no inner content type (all padding)")
        return plain[-1], plain[:-1]

    return open_


def _aad12(seq: int, rec: CipherRecord, length: int) -> bytes:
    return (seq.to_bytes(8, "big") + bytes([rec.content_type]) + rec.version.to_bytes(2, "big")
            + length.to_bytes(2, "big"))


def _open12_aead(s: Suite, kb) -> Opener:
    aead = _aead(s, kb.key)
    explicit = s.explicit_nonce_len

    def open_(rec: CipherRecord, seq: int) -> tuple[int, bytes]:
        body = rec.body
        if len(body) < explicit + s.tag_len:
            raise _Fail("record too short for its nonce and tag")
        if explicit:  # GCM (RFC 5288 3), CCM (RFC 6655 3): salt | explicit nonce
            nonce, ct = kb.iv + body[:explicit], body[explicit:]
        else:  # ChaCha20-Poly1305 (RFC 7905 2)
            nonce, ct = _xor_nonce(kb.iv, seq), body
        try:
            plain = aead.decrypt(nonce, ct, _aad12(seq, rec, len(ct) - s.tag_len))
        except InvalidTag:
            raise _Fail("authentication failed") from None
        return rec.content_type, plain

    return open_


def _open12_cbc(s: Suite, kb, encrypt_then_mac: bool, explicit_iv: bool) -> Opener:
    cipher_key, mac_key, mac_hash, mac_len = kb.key, kb.mac_key, s.mac, s.mac_len
    chained = [kb.iv]  # TLS 1.0: each record's IV is the last ciphertext block before it

    def mac_of(seq: int, rec: CipherRecord, data: bytes) -> bytes:
        h = hmac.HMAC(mac_key, hash_of(mac_hash))
        h.update(_aad12(seq, rec, len(data)) + data)
        return h.finalize()

    def decrypt(iv: bytes, ct: bytes) -> bytes:
        d = Cipher(algorithms.AES(cipher_key), modes.CBC(iv)).decryptor()
        return d.update(ct) + d.finalize()

    def unpad(plain: bytes) -> bytes:
        pad = plain[-1]
        if pad + 1 > len(plain) or plain[-pad - 1:] != bytes([pad]) * (pad + 1):
            raise _Fail("bad CBC padding")
        return plain[:-pad - 1]

    def open_(rec: CipherRecord, seq: int) -> tuple[int, bytes]:
        body = rec.body
        if encrypt_then_mac:  # RFC 7366: MAC over IV + ciphertext, then decrypt
            if len(body) < mac_len + 16 or (len(body) - mac_len) % 16:
                raise _Fail("record length does not fit CBC with encrypt-then-MAC")
            enc, tag = body[:-mac_len], body[-mac_len:]
            if not std_hmac.compare_digest(mac_of(seq, rec, enc), tag):
                raise _Fail("MAC check failed (encrypt-then-MAC)")
            iv, ct = (enc[:16], enc[16:]) if explicit_iv else (chained[0], enc)
            if not ct:
                raise _Fail("record length does not fit CBC with encrypt-then-MAC")
            chained[0] = ct[-16:]
            return rec.content_type, unpad(decrypt(iv, ct))
        if len(body) % 16:
            raise _Fail("record length is not a whole number of CBC blocks")
        if len(body) < (32 if explicit_iv else 16):
            raise _Fail("record too short for an IV and a CBC block")
        iv, ct = (body[:16], body[16:]) if explicit_iv else (chained[0], body)
        chained[0] = ct[-16:]
        plain = unpad(decrypt(iv, ct))
        if len(plain) < mac_len:
            raise _Fail("record too short for its MAC")
        data, tag = plain[:len(plain) - mac_len], plain[len(plain) - mac_len:]
        if not std_hmac.compare_digest(mac_of(seq, rec, data), tag):
            raise _Fail("MAC check failed")
        return rec.content_type, data

    return open_


def _need(secrets: SessionSecrets, field: str, label: str) -> bytes:
    value = getattr(secrets, field)
    if not value:
        raise _Fail(f"no {label} for this session")
    return value


class _Out:
    """Collects plaintext records and enforces the application-data limit."""

    def __init__(self, app_limit: int) -> None:
        self.records: list[PlainRecord] = []
        self.app_limit = app_limit
        self.app_bytes = 0
        self.limited = False
        self.unkeyed = False

    def add(self, ctype: int, data: bytes, offset: int) -> bool:
        """Keep one record; False once the application-data limit is reached."""
        if ctype == APPLICATION_DATA:
            room = self.app_limit - self.app_bytes
            if len(data) > room:
                if room > 0:
                    self.records.append(PlainRecord(ctype, data[:room], offset))
                    self.app_bytes += room
                self.limited = True
                return False
            self.app_bytes += len(data)
        self.records.append(PlainRecord(ctype, data, offset))
        return True

    def result(self, error: str | None) -> Decrypted:
        return Decrypted(tuple(self.records), error, self.limited, self.app_bytes,
                         self.unkeyed and error is not None)


class _Messages:
    """Handshake message framing across records (type, 3-byte length), to see a whole
    Finished or KeyUpdate however the messages were split into records."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buf += data
        out = []
        while len(self.buf) >= 4:
            n = int.from_bytes(self.buf[1:4], "big")
            if len(self.buf) < 4 + n:
                break
            out.append((self.buf[0], self.buf[4:4 + n]))
            self.buf = self.buf[4 + n:]
        if len(self.buf) > 1 << 24:  # cannot happen with a 3-byte length; keeps memory honest
            self.buf = b""
        return out


def _tls13(records: Sequence[CipherRecord], s: Suite, secrets: SessionSecrets,
           from_client: bool, out: _Out) -> str | None:
    side = "CLIENT" if from_client else "SERVER"
    field = "client" if from_client else "server"
    opener: Opener | None = None
    traffic: bytes | None = None  # current application traffic secret, once in that phase
    seq = 0
    messages = _Messages()
    # 0-RTT: the client's early data and its EndOfEarlyData go under the early traffic key,
    # before its first record under the handshake key. They do not authenticate under that
    # key and are skipped (not decrypted); if no record ever does, the first failure stands.
    early: str | None = None
    for rec in records:
        if rec.content_type != APPLICATION_DATA:
            continue  # hellos, CCS (middlebox compatibility) and clear alerts are plaintext
        try:
            if opener is None:
                opener = _open13(s, _need(secrets, f"{field}_handshake",
                                          f"{side}_HANDSHAKE_TRAFFIC_SECRET"))
            ctype, data = opener(rec, seq)
        except _Fail as exc:
            if from_client and seq == 0 and traffic is None and opener is not None:
                early = early or f"record at stream offset {rec.offset}: {exc}"
                continue
            return f"record at stream offset {rec.offset}: {exc}"
        early = None
        seq += 1
        # Past the limit application data is dropped, but every record is still opened: its
        # type is inside it, and a post-handshake CertificateRequest (RFC 8446 4.6.2), the
        # client's answer, a KeyUpdate or an alert may come after any amount of data.
        out.add(ctype, data, rec.offset)
        if ctype != HANDSHAKE:
            continue
        for mtype, _body in messages.feed(data):
            try:
                if mtype == FINISHED and traffic is None:
                    traffic = _need(secrets, f"{field}_traffic0", f"{side}_TRAFFIC_SECRET_0")
                elif mtype == KEY_UPDATE and traffic is not None:
                    traffic = next_traffic_secret(traffic, s)
                else:
                    continue
            except _Fail as exc:
                return f"record at stream offset {rec.offset}: {exc}"
            opener, seq = _open13(s, traffic), 0
    return early


def _opener12(s: Suite, secrets: SessionSecrets, from_client: bool, client_random: bytes,
              server_random: bytes, encrypt_then_mac: bool, version: str) -> Opener:
    master = _need(secrets, "master_secret", "CLIENT_RANDOM")
    kb = key_block(master, client_random, server_random, s, from_client,
                   version in ("TLS1.0", "TLS1.1"))
    if s.cipher == "cbc":
        return _open12_cbc(s, kb, encrypt_then_mac, version != "TLS1.0")
    return _open12_aead(s, kb)


def _rekey_suite(rekey: Rekey, version: str) -> Suite:
    if version not in ("TLS1.2", "TLS1.1", "TLS1.0"):
        raise _Fail(f"the renegotiated version {version} is not supported for decryption")
    s = suite(rekey.cipher_suite)
    if s is None or s.tls13 or (version != "TLS1.2" and s.cipher != "cbc"):
        raise _Fail(f"the renegotiated cipher suite 0x{rekey.cipher_suite:04x} is not "
                    "supported for decryption")
    return s


def _tls12(records: Sequence[CipherRecord], s: Suite, secrets: SessionSecrets,
           from_client: bool, client_random: bytes, server_random: bytes,
           encrypt_then_mac: bool, version: str, out: _Out,
           rekeys: Sequence[Rekey] = ()) -> str | None:
    opener: Opener | None = None
    seq = 0
    changes = 0  # encrypted ChangeCipherSpecs: renegotiations this direction has entered
    for rec in records:
        if out.limited and rec.content_type == APPLICATION_DATA and version != "TLS1.0":
            seq += 1  # past the limit: counted, not decrypted (TLS 1.0 chains its CBC IVs)
            continue
        if opener is None:
            if rec.content_type != CCS:
                continue  # the handshake before ChangeCipherSpec is in the clear
            try:
                opener = _opener12(s, secrets, from_client, client_random, server_random,
                                   encrypt_then_mac, version)
            except _Fail as exc:
                return f"record at stream offset {rec.offset}: {exc}"
            seq = 0
            continue
        try:
            ctype, data = opener(rec, seq)
        except _Fail as exc:
            return f"record at stream offset {rec.offset}: {exc}"
        seq += 1
        if ctype == CCS:
            # Renegotiation: its keys come from its own hellos' randoms, which travel
            # encrypted in both directions (a key log names its master secret by the new
            # ClientHello's random), so one direction alone cannot follow them: the caller
            # reads them from both and passes them in ``rekeys``.
            if changes >= len(rekeys):
                out.unkeyed = True
                return (f"record at stream offset {rec.offset}: renegotiated keys are not "
                        f"known{UNKEYED_WHY}")
            r = rekeys[changes]
            changes += 1
            version = r.version or version  # a renegotiation may choose another version
            try:
                opener = _opener12(_rekey_suite(r, version), r.secrets, from_client,
                                   r.client_random, r.server_random, r.encrypt_then_mac,
                                   version)
            except _Fail as exc:
                return f"record at stream offset {rec.offset}: {exc}"
            seq = 0
        out.add(ctype, data, rec.offset)  # past the limit, still the handshake and alerts
    return None


def handshake_messages(plain: Sequence[PlainRecord]) -> list[tuple[int, int, bytes]]:
    """The handshake messages in one direction's decrypted records, however they were split
    into records: (stream offset of the record where the message begins, type, body)."""
    framing = _Messages()
    out: list[tuple[int, int, bytes]] = []
    began: int | None = None
    for p in plain:
        if p.content_type != HANDSHAKE:
            continue
        if not framing.buf:
            began = p.offset
        for mtype, body in framing.feed(p.data):
            out.append((began if began is not None else p.offset, mtype, body))
            began = p.offset
        if not framing.buf:
            began = None
    return out


def decrypt_direction(records: Sequence[CipherRecord], *, from_client: bool, version: str,
                      cipher_suite: int, client_random: bytes, server_random: bytes,
                      secrets: SessionSecrets, encrypt_then_mac: bool = False,
                      app_limit: int = 64 * 1024, rekeys: Sequence[Rekey] = ()) -> Decrypted:
    """Decrypt one direction from where TLS starts (hellos included); never raises on data.

    ``version`` is the negotiated version as :class:`TlsHandshake` spells it ("TLS1.3",
    "TLS1.2", ...). ``encrypt_then_mac`` says whether RFC 7366 was negotiated (CBC only).
    ``rekeys``: TLS <= 1.2, the keys of each renegotiation in turn, taken at this direction's
    encrypted ChangeCipherSpecs (kept as plaintext records); past them decryption stops there.
    """
    out = _Out(max(0, app_limit))
    s = suite(cipher_suite)
    if s is None:
        return out.result(f"cipher suite 0x{cipher_suite:04x} is not supported for decryption")
    try:
        if version.startswith("TLS1.3"):
            if not s.tls13:
                return out.result(f"cipher suite {s.name} is not a TLS 1.3 suite")
            error = _tls13(records, s, secrets, from_client, out)
        elif version in ("TLS1.2", "TLS1.1", "TLS1.0"):
            if s.tls13:
                return out.result(f"cipher suite {s.name} is not a {version} suite")
            if version != "TLS1.2" and s.cipher != "cbc":
                return out.result(f"cipher suite {s.name} cannot be used with {version}")
            error = _tls12(records, s, secrets, from_client, client_random, server_random,
                           encrypt_then_mac, version, out, rekeys)
        else:
            return out.result(f"version {version} is not supported for decryption")
    except (ValueError, TypeError) as exc:  # a key of the wrong size from a garbled key log
        return out.result(f"keys do not fit cipher suite {s.name}: {exc}")
    return out.result(error)
