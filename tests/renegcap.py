"""Hand-made TLS 1.2 SMTP sessions with renegotiations, and their key logs.

OpenSSL's `s_client` ends the connection when a renegotiation is refused and never changes
the server's certificate or the version in a renegotiation, so the captures recorded from it
(tests/data/renegotiation) cannot show those; this builds them record by record instead.
ECDHE-RSA-AES128-GCM-SHA256 (0xC02F; ECDHE-RSA-AES128-SHA, 0xC013, where a handshake
chooses TLS 1.1) with the master secrets chosen here: the handshake
messages have the right framing and fields but sign and prove nothing, which neither tshark
nor fastcap checks. The key schedule (RFC 5246 5 and 6.3, RFC 5288 3) is written out here so
that the capture does not rest on fastcap's own; tests hold it to what tshark decrypts.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fastcap_synth import writers
from fastcap_synth.smtpgen import Conversation, Message, SmtpScenario, render

SUITE = 0xC02F
SUITE_CBC = 0xC013  # ECDHE-RSA-AES128-SHA: what a TLS 1.1 handshake here chooses
CCS, ALERT, HANDSHAKE, APPLICATION_DATA = 20, 21, 22, 23
HELLO_REQUEST, CLIENT_HELLO, SERVER_HELLO, CERTIFICATE = 0, 1, 2, 11
CERTIFICATE_REQUEST, SERVER_HELLO_DONE, CERTIFICATE_VERIFY = 13, 14, 15
CLIENT_KEY_EXCHANGE, FINISHED = 16, 20


def _prf(secret: bytes, label: bytes, seed: bytes, size: int) -> bytes:
    """TLS 1.2 PRF with SHA-256 (RFC 5246 5)."""
    out, a = b"", label + seed
    while len(out) < size:
        a = hmac.new(secret, a, hashlib.sha256).digest()
        out += hmac.new(secret, a + label + seed, hashlib.sha256).digest()
    return out[:size]


def _p_hash(name: str, secret: bytes, seed: bytes, size: int) -> bytes:
    out, a = b"", seed
    while len(out) < size:
        a = hmac.new(secret, a, name).digest()
        out += hmac.new(secret, a + seed, name).digest()
    return out[:size]


def _prf10(secret: bytes, label: bytes, seed: bytes, size: int) -> bytes:
    """TLS 1.0 and 1.1 PRF: P_MD5 over the secret's first half XOR P_SHA1 over its second
    (RFC 4346 5)."""
    half = (len(secret) + 1) // 2
    md5 = _p_hash("md5", secret[:half], label + seed, size)
    sha1 = _p_hash("sha1", secret[-half:], label + seed, size)
    return bytes(x ^ y for x, y in zip(md5, sha1, strict=True))


def _u16(n: int) -> bytes:
    return n.to_bytes(2, "big")


def _u24(n: int) -> bytes:
    return n.to_bytes(3, "big")


def message(mtype: int, body: bytes = b"") -> bytes:
    """One handshake message: type, 3-byte length, body."""
    return bytes([mtype]) + _u24(len(body)) + body


def client_hello(random: bytes, version: int = 0x0303) -> bytes:
    ext = b"\xff\x01" + _u16(1) + b"\x00"  # renegotiation_info, as every hello here
    body = (_u16(version) + random + b"\x00" + _u16(4) + _u16(SUITE) + _u16(SUITE_CBC)
            + b"\x01\x00" + _u16(len(ext)) + ext)
    return message(CLIENT_HELLO, body)


def server_hello(random: bytes, version: int = 0x0303) -> bytes:
    ext = b"\xff\x01" + _u16(1) + b"\x00"
    suite = SUITE if version == 0x0303 else SUITE_CBC
    return message(SERVER_HELLO, _u16(version) + random + b"\x00" + _u16(suite) + b"\x00"
                   + _u16(len(ext)) + ext)


def certificate(ders: list[bytes]) -> bytes:
    chain = b"".join(_u24(len(d)) + d for d in ders)
    return message(CERTIFICATE, _u24(len(chain)) + chain)


def certificate_request(version: int = 0x0303) -> bytes:
    """rsa_sign, no CA names; TLS 1.2 adds its signature algorithms (rsa_pkcs1_sha256)."""
    algs = _u16(2) + b"\x04\x01" if version == 0x0303 else b""
    return message(CERTIFICATE_REQUEST, b"\x01\x01" + algs + _u16(0))


def server_flight(random: bytes, server_der: bytes, *, request: bool,
                  version: int = 0x0303) -> bytes:
    """ServerHello, Certificate, [CertificateRequest], ServerHelloDone (no ServerKeyExchange:
    nothing here reads one)."""
    return (server_hello(random, version) + certificate([server_der])
            + (certificate_request(version) if request else b"")
            + message(SERVER_HELLO_DONE))


def client_flight(client_der: bytes | None, version: int = 0x0303) -> bytes:
    """[Certificate], ClientKeyExchange (an uncompressed P-256 point), [CertificateVerify]."""
    cke = message(CLIENT_KEY_EXCHANGE, b"\x41\x04" + bytes(range(64)))
    if client_der is None:
        return cke
    alg = b"\x04\x01" if version == 0x0303 else b""
    verify = message(CERTIFICATE_VERIFY, alg + _u16(64) + b"\x5a" * 64)
    return certificate([client_der]) + cke + verify


@dataclass
class _Direction:
    key: bytes | None = None
    salt: bytes = b""  # AES-GCM's fixed nonce part; for CBC (TLS 1.1) the MAC key
    seq: int = 0
    version: int = 0x0303  # of the records it writes, and of its keys
    pending: tuple[bytes, bytes, int] | None = None


@dataclass
class Renegotiating:
    """A TLS 1.2 session being written: ``send`` seals under the direction's current keys,
    ``change_cipher_spec`` switches to those ``keys`` last made pending."""

    messages: list[Message] = field(default_factory=list)
    sides: dict[bool, _Direction] = field(
        default_factory=lambda: {True: _Direction(), False: _Direction()})
    keylog: list[str] = field(default_factory=list)

    def keys(self, client_random: bytes, server_random: bytes, master: bytes,
             logged: bool = True, version: int = 0x0303) -> None:
        """The keys of a handshake (to take effect at each side's ChangeCipherSpec), and
        its key log line."""
        seed = server_random + client_random
        if version == 0x0303:
            block = _prf(master, b"key expansion", seed, 40)
            self.sides[True].pending = (block[0:16], block[32:36], version)
            self.sides[False].pending = (block[16:32], block[36:40], version)
        else:  # AES-128-CBC with HMAC-SHA1: MAC keys, then cipher keys (IVs are explicit)
            block = _prf10(master, b"key expansion", seed, 72)
            self.sides[True].pending = (block[40:56], block[0:20], version)
            self.sides[False].pending = (block[56:72], block[20:40], version)
        if logged:
            self.keylog.append(f"CLIENT_RANDOM {client_random.hex()} {master.hex()}\n")

    def record(self, from_client: bool, ctype: int, data: bytes) -> bytes:
        side = self.sides[from_client]
        head = bytes([ctype]) + _u16(side.version)
        if side.key is None:
            return head + _u16(len(data)) + data
        explicit = side.seq.to_bytes(8, "big")
        aad = explicit + head + _u16(len(data))
        if side.version == 0x0303:
            body = explicit + AESGCM(side.key).encrypt(side.salt + explicit, data, aad)
        else:  # RFC 4346 6.2.3.2: MAC, pad, explicit IV, CBC
            plain = data + hmac.new(side.salt, aad + data, hashlib.sha1).digest()
            pad = 15 - len(plain) % 16
            plain += bytes([pad]) * (pad + 1)
            iv = hashlib.sha256(explicit + side.key).digest()[:16]
            enc = Cipher(algorithms.AES(side.key), modes.CBC(iv)).encryptor()
            body = iv + enc.update(plain) + enc.finalize()
        side.seq += 1
        return head + _u16(len(body)) + body

    def change_cipher_spec(self, from_client: bool) -> bytes:
        out = self.record(from_client, CCS, b"\x01")
        side = self.sides[from_client]
        assert side.pending is not None
        (side.key, side.salt, side.version), side.seq, side.pending = side.pending, 0, None
        return out

    def send(self, from_client: bool, *records: bytes, label: str = "") -> None:
        self.messages.append(Message(from_client, b"".join(records), label))

    def smtp_to_starttls(self) -> None:
        for from_client, line in ((False, b"220 mx.contoso.com ESMTP\r\n"),
                                  (True, b"EHLO mail.fabrikam.com\r\n"),
                                  (False, b"250-mx.contoso.com\r\n250 STARTTLS\r\n"),
                                  (True, b"STARTTLS\r\n"),
                                  (False, b"220 2.0.0 Ready to start TLS\r\n")):
            self.send(from_client, line)

    def handshake(self, n: int, server_der: bytes, *, request: bool = False,
                  client_der: bytes | None = None, logged: bool = True,
                  version: int = 0x0303) -> None:
        """A whole full handshake, the first (in the clear) or a renegotiation (under the
        keys before it); ``n`` makes its randoms and master secret."""
        cr, sr = bytes([0xC0 + n]) * 32, bytes([0x50 + n]) * 32
        self.keys(cr, sr, bytes([0x30 + n]) * 48, logged, version)
        self.send(True, self.record(True, HANDSHAKE, client_hello(cr)))
        self.send(False, self.record(False, HANDSHAKE,
                                     server_flight(sr, server_der, request=request,
                                                   version=version)))
        self.send(True, self.record(True, HANDSHAKE, client_flight(client_der, version)),
                  self.change_cipher_spec(True),
                  self.record(True, HANDSHAKE, message(FINISHED, b"\x11" * 12)))
        self.send(False, self.change_cipher_spec(False),
                  self.record(False, HANDSHAKE, message(FINISHED, b"\x22" * 12)))

    def app(self, from_client: bool, line: bytes) -> None:
        self.send(from_client, self.record(from_client, APPLICATION_DATA, line))

    def write(self, directory: Path, name: str, start_ns: int, port: int = 25
              ) -> tuple[Path, Path]:
        """The capture (its first frame at ``start_ns``) and its key log."""
        sc = SmtpScenario(server_port=port, start_ns=start_ns)
        capture, keys = directory / f"{name}.pcap", directory / f"{name}.keys"
        writers.write_pcap(capture, render(Conversation(messages=self.messages), sc))
        keys.write_text("".join(self.keylog))
        return capture, keys
