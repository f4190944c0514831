"""TLS key schedules: from the secrets a key log holds to record keys and IVs.

A key log gives the TLS 1.2 master secret or the TLS 1.3 traffic secrets, so only the last
steps of each schedule are needed here: HKDF-Expand-Label (RFC 8446 7.1, 7.3) for TLS 1.3 and
the PRF key block (RFC 5246 5, 6.3; RFC 2246 5 for TLS 1.0/1.1) for the older versions. Every
primitive comes from ``cryptography``; this module only arranges the inputs.

The suite table is derived from the IANA names in :mod:`.const`, so a suite is decryptable
exactly when its name says AES-GCM, AES-CCM(_8), ChaCha20-Poly1305 or AES-CBC with an HMAC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from .const import CipherSuite

_HASHES = {"SHA": hashes.SHA1, "SHA256": hashes.SHA256, "SHA384": hashes.SHA384}


@dataclass(frozen=True, slots=True)
class Suite:
    """What record protection a cipher suite needs.

    ``cipher``: "gcm", "ccm", "chacha20" (AEADs) or "cbc". ``fixed_iv_len`` is the implicit
    IV from the key schedule (TLS 1.2 GCM/CCM: 4, ChaCha20 and TLS 1.3: 12, CBC: 16, which
    only TLS 1.0 uses). ``mac``/``mac_len``: the HMAC hash of a CBC suite (None for AEADs).
    ``prf``: the hash of the TLS 1.2 PRF, or of HKDF for TLS 1.3.
    """

    code: int
    name: str
    tls13: bool
    cipher: str
    key_len: int
    fixed_iv_len: int
    tag_len: int
    mac: str | None
    mac_len: int
    prf: str

    @property
    def explicit_nonce_len(self) -> int:
        """TLS 1.2 GCM and CCM carry 8 bytes of nonce in each record (RFC 5288, RFC 6655)."""
        return 8 if not self.tls13 and self.cipher in ("gcm", "ccm") else 0


_TLS13 = re.compile(r"TLS_(AES_(128|256)_(GCM|CCM|CCM_8)|CHACHA20_POLY1305)_(SHA256|SHA384)$")
_TLS12 = re.compile(
    r"TLS_\w+_WITH_(?:AES_(128|256)_(GCM|CCM_8|CCM|CBC)|(CHACHA20)_POLY1305)(?:_(SHA|SHA256|SHA384))?$"
)


def _suite_from_name(code: int, name: str) -> Suite | None:
    if m := _TLS13.match(name):
        chacha = m.group(1).startswith("CHACHA")
        mode = "chacha20" if chacha else ("gcm" if m.group(3) == "GCM" else "ccm")
        return Suite(code, name, True, mode, 32 if chacha or m.group(2) == "256" else 16, 12,
                     8 if m.group(3) == "CCM_8" else 16, None, 0, m.group(4))
    m = _TLS12.match(name)
    if m is None:
        return None
    bits, mode, chacha, mac = m.groups()
    if chacha:
        return Suite(code, name, False, "chacha20", 32, 12, 16, None, 0, mac or "SHA256")
    key_len = int(bits) // 8
    if mode == "CBC":
        if mac is None:
            return None
        # CBC suites named ..._SHA use HMAC-SHA1 and the SHA-256 PRF (RFC 5246 5).
        return Suite(code, name, False, "cbc", key_len, 16, 0, mac,
                     _HASHES[mac].digest_size, "SHA384" if mac == "SHA384" else "SHA256")
    return Suite(code, name, False, "gcm" if mode == "GCM" else "ccm", key_len, 4,
                 8 if mode == "CCM_8" else 16, None, 0, mac or "SHA256")


SUITES: dict[int, Suite] = {
    s.code: s for s in (_suite_from_name(int(c), c.name) for c in CipherSuite) if s is not None
}


def suite(code: int) -> Suite | None:
    """The record protection of a suite, or None if fastcap cannot decrypt it."""
    return SUITES.get(code)


def hash_of(name: str) -> hashes.HashAlgorithm:
    """A fresh ``cryptography`` hash object for "SHA", "SHA256" or "SHA384"."""
    return _HASHES[name]()


# ---- TLS 1.3 (RFC 8446 7.1, 7.2, 7.3) ----

def hkdf_expand_label(secret: bytes, label: str, context: bytes, length: int,
                      hash_name: str = "SHA256") -> bytes:
    """HKDF-Expand(secret, HkdfLabel(length, "tls13 " + label, context), length)."""
    full = b"tls13 " + label.encode("ascii")
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + bytes([len(context)]) + context
    return HKDFExpand(hash_of(hash_name), length, info).derive(secret)


def traffic_key_iv(secret: bytes, s: Suite) -> tuple[bytes, bytes]:
    """The write key and IV of a traffic secret (RFC 8446 7.3)."""
    return (hkdf_expand_label(secret, "key", b"", s.key_len, s.prf),
            hkdf_expand_label(secret, "iv", b"", s.fixed_iv_len, s.prf))


def next_traffic_secret(secret: bytes, s: Suite) -> bytes:
    """application_traffic_secret_N+1 after a KeyUpdate (RFC 8446 7.2)."""
    return hkdf_expand_label(secret, "traffic upd", b"", hash_of(s.prf).digest_size, s.prf)


# ---- TLS 1.0 - 1.2 (RFC 2246 5, RFC 5246 5, 6.3) ----

def _p_hash(hash_name: str, secret: bytes, seed: bytes, length: int) -> bytes:
    out = bytearray()
    a = seed
    while len(out) < length:
        h = hmac.HMAC(secret, hash_of(hash_name) if hash_name != "MD5" else hashes.MD5())
        h.update(a)
        a = h.finalize()
        h = hmac.HMAC(secret, hash_of(hash_name) if hash_name != "MD5" else hashes.MD5())
        h.update(a + seed)
        out += h.finalize()
    return bytes(out[:length])


def prf(secret: bytes, label: bytes, seed: bytes, length: int, hash_name: str = "SHA256",
        legacy: bool = False) -> bytes:
    """The TLS PRF: P_<hash> (TLS 1.2), or P_MD5 XOR P_SHA1 over the split secret when
    ``legacy`` (TLS 1.0 and 1.1)."""
    if not legacy:
        return _p_hash(hash_name, secret, label + seed, length)
    half = (len(secret) + 1) // 2
    md5 = _p_hash("MD5", secret[:half], label + seed, length)
    sha = _p_hash("SHA", secret[len(secret) - half:], label + seed, length)
    return bytes(x ^ y for x, y in zip(md5, sha, strict=True))


@dataclass(frozen=True, slots=True)
class KeyBlock:
    """One side's share of the TLS 1.2 key block."""

    mac_key: bytes
    key: bytes
    iv: bytes


@lru_cache(maxsize=64)  # both directions of a session derive the same block
def _key_block(master: bytes, client_random: bytes, server_random: bytes, code: int,
               legacy: bool) -> bytes:
    s = SUITES[code]
    mac_len = s.mac_len
    total = 2 * (mac_len + s.key_len + s.fixed_iv_len)
    return prf(master, b"key expansion", server_random + client_random, total, s.prf, legacy)


def key_block(master: bytes, client_random: bytes, server_random: bytes, s: Suite,
              from_client: bool, legacy: bool = False) -> KeyBlock:
    """The MAC key, cipher key and fixed IV one side writes with (RFC 5246 6.3): the block is
    client MAC, server MAC, client key, server key, client IV, server IV."""
    block = _key_block(master, client_random, server_random, s.code, legacy)
    m, k, i = s.mac_len, s.key_len, s.fixed_iv_len
    side = 0 if from_client else 1
    mac_key = block[side * m:(side + 1) * m]
    key = block[2 * m + side * k:2 * m + (side + 1) * k]
    iv = block[2 * (m + k) + side * i:2 * (m + k) + (side + 1) * i]
    return KeyBlock(mac_key, key, iv)
