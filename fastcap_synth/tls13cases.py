"""A matrix of real TLS 1.3 handshakes with their keys, to check inference from record sizes.

Each case is a genuine OpenSSL handshake (through :mod:`.tlsgen`'s memory BIOs) with the
client's key log; :func:`client_certificates` decrypts the client's flight with those keys and
counts the certificates it carried, so the ground truth comes from the wire, not from how the
case was set up. The dimensions: the TLS 1.3 suite (Python ``ssl`` cannot choose one, so each
suite runs in a child process whose ``OPENSSL_CONF`` sets ``Ciphersuites``), the client key
(RSA 2048/4096, ECDSA P-256/P-384), chains of 1 to 3 certificates, the server asking or not, and
the client sending none, a chain that is accepted, or one that is refused; plus a
HelloRetryRequest and a client offering post-handshake authentication.

Run ``python -m fastcap_synth.tls13cases SUITE DIR`` only through :func:`generate`.
"""

from __future__ import annotations

import json
import os
import pickle
import ssl
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from .certs import make_ca, make_leaf
from .tlsgen import Flight, handshake, records

SUITES = (
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_CCM_SHA256",
    "TLS_AES_128_CCM_8_SHA256",
)
KEYS = ("rsa2048", "rsa4096", "ec", "ec384")  # ec = ECDSA P-256
KEY_NAMES = {"rsa2048": "RSA 2048", "rsa4096": "RSA 4096", "ec": "ECDSA P-256",
             "ec384": "ECDSA P-384"}
CHAINS = (1, 2, 3)
_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Case:
    """One handshake. ``client`` is what the client was set up to do: ``none`` (no
    certificate), ``chain`` (accepted) or ``refused`` (the server does not trust it);
    ``server_auth`` is ``none``, ``optional`` or ``required``; ``extra`` is ``hrr``, ``pha`` or
    empty. ``truth`` is what decryption found: None for no Certificate message, else the number
    of certificates in it (0: empty)."""

    suite: str
    key: str
    chain: int
    server_auth: str
    client: str
    extra: str
    flights: tuple[Flight, ...]
    keylog: str
    completed: bool
    truth: int | None

    @property
    def label(self) -> str:
        cert = "no cert" if self.client == "none" else (
            f"{KEY_NAMES[self.key]} x{self.chain} {self.client}")
        return f"{self.suite} server={self.server_auth} {cert} {self.extra}".strip()


# --- ground truth: the client's handshake flight, decrypted (RFC 8446 5.2, 5.3, 7.1, 7.3)

_AEADS = {  # suite -> (AEAD factory, key length, hash)
    0x1301: (AESGCM, 16, hashes.SHA256),
    0x1302: (AESGCM, 32, hashes.SHA384),
    0x1303: (ChaCha20Poly1305, 32, hashes.SHA256),
    0x1304: (lambda k: AESCCM(k, 16), 16, hashes.SHA256),
    0x1305: (lambda k: AESCCM(k, 8), 16, hashes.SHA256),
}


_SUITE_CODES = dict(zip(SUITES, (0x1301, 0x1302, 0x1303, 0x1304, 0x1305), strict=True))


def _expand_label(secret: bytes, label: str, length: int, algo: type) -> bytes:
    full = b"tls13 " + label.encode()
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + b"\x00"
    return HKDFExpand(algo(), length, info).derive(secret)


def _hello_fields(flights: tuple[Flight, ...]) -> tuple[bytes, int]:
    """(client random of the last ClientHello, suite of the ServerHello that is not an HRR)."""
    random, suite = b"", 0
    hrr = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
    for from_client, data in flights:
        for ctype, frag in records(data):
            if ctype != 22 or not frag:
                continue
            if from_client and frag[0] == 1:
                random = frag[6:38]
            elif not from_client and frag[0] == 2 and frag[6:38] != hrr:
                sid = frag[38]
                suite = int.from_bytes(frag[39 + sid : 41 + sid], "big")
    return random, suite


def client_certificates(flights: tuple[Flight, ...], keylog: str) -> int | None:
    """Certificates in the client's Certificate message (None: it sent none), read by
    decrypting its handshake records with CLIENT_HANDSHAKE_TRAFFIC_SECRET."""
    random, suite = _hello_fields(flights)
    secret = None
    for line in keylog.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "CLIENT_HANDSHAKE_TRAFFIC_SECRET" \
                and bytes.fromhex(parts[1]) == random:
            secret = bytes.fromhex(parts[2])
    if secret is None:
        raise ValueError("no CLIENT_HANDSHAKE_TRAFFIC_SECRET for this handshake")
    make, key_len, algo = _AEADS[suite]
    aead = make(_expand_label(secret, "key", key_len, algo))
    iv = _expand_label(secret, "iv", 12, algo)
    seq, plain = 0, b""
    wire = b"".join(d for c, d in flights if c)
    off = 0
    while off + 5 <= len(wire):
        header, length = wire[off : off + 5], int.from_bytes(wire[off + 3 : off + 5], "big")
        body = wire[off + 5 : off + 5 + length]
        off += 5 + length
        if header[0] != 23:
            continue
        nonce = bytes(a ^ b for a, b in zip(iv, seq.to_bytes(12, "big"), strict=True))
        inner = aead.decrypt(nonce, body, header).rstrip(b"\x00")
        seq += 1
        if inner[-1] != 22:
            continue
        plain += inner[:-1]
        pos = 0
        while pos + 4 <= len(plain):
            mtype, mlen = plain[pos], int.from_bytes(plain[pos + 1 : pos + 4], "big")
            msg = plain[pos + 4 : pos + 4 + mlen]
            if len(msg) < mlen:
                break
            if mtype == 20:  # Finished: no Certificate before it
                return None
            if mtype == 11:
                ctx = msg[0]
                p, end, n = 1 + ctx + 3, len(msg), 0
                while p + 3 <= end:
                    p += 3 + int.from_bytes(msg[p : p + 3], "big")
                    p += 2 + int.from_bytes(msg[p : p + 2], "big")
                    n += 1
                return n
            pos += 4 + mlen
    raise ValueError("the client's flight ended without a Finished")


# --- the matrix


def _write_pki(directory: Path) -> None:
    """Certificates for every client key and chain length, a trusted root and a rogue one."""
    root = make_ca("Inference Test Root")
    rogue = make_ca("Rogue Root", org="Elsewhere")
    inter1 = make_ca("Inference Issuing CA 1", parent=root)
    inter2 = make_ca("Inference Issuing CA 2", parent=inter1)
    rogue_inter1 = make_ca("Rogue Issuing CA 1", parent=rogue)
    rogue_inter2 = make_ca("Rogue Issuing CA 2", parent=rogue_inter1)
    issuers = {True: (root, inter1, inter2), False: (rogue, rogue_inter1, rogue_inter2)}
    server = make_leaf(inter1, "mx.example.net")
    manifest: dict[str, list[str]] = {"server": list(map(str, server.write_pem(directory)))}
    (directory / "root.pem").write_bytes(root.pem)
    for key in KEYS:
        for chain in CHAINS:
            for trusted in (True, False):
                leaf = make_leaf(issuers[trusted][chain - 1], f"mail-{key}-{chain}.example.org",
                                 key=key, eku=("clientAuth",))
                paths = leaf.write_pem(directory)
                manifest[f"{key}-{chain}-{int(trusted)}"] = list(map(str, paths))
    (directory / "manifest.json").write_text(json.dumps(manifest))


def _server_ctx(d: Path, man: dict, auth: str, hrr: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(*man["server"])
    ctx.verify_mode = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL,
                       "required": ssl.CERT_REQUIRED}[auth]
    ctx.load_verify_locations(d / "root.pem")
    if hrr:  # the client's key share (X25519) is not acceptable: a HelloRetryRequest
        ctx.set_ecdh_curve("secp384r1")
    return ctx


def _client_ctx(man: dict, cert: str | None, keylog: Path, pha: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.keylog_filename = str(keylog)
    ctx.post_handshake_auth = pha
    if cert is not None:
        ctx.load_cert_chain(*man[cert])
    return ctx


def _plan() -> list[tuple[str, str, int, str, str]]:
    """(server_auth, key, chain, client, extra) for one suite."""
    plan = [("none", "ec", 2, "none", ""), ("none", "ec", 2, "chain", ""),
            ("none", "ec", 2, "none", "pha"), ("optional", "ec", 2, "none", "hrr"),
            ("optional", "ec", 2, "chain", "hrr")]
    for auth in ("optional", "required"):
        plan.append((auth, "ec", 1, "none", ""))
        for key in KEYS:
            for chain in CHAINS:
                for client in ("chain", "refused"):
                    plan.append((auth, key, chain, client, ""))
    return plan


def _run_suite(suite: str, d: Path) -> list[Case]:
    man = json.loads((d / "manifest.json").read_text())
    out = []
    for n, (auth, key, chain, client, extra) in enumerate(_plan()):
        keylog = d / f"{suite}-{n}.keys"
        cert = None if client == "none" else f"{key}-{chain}-{int(client == 'chain')}"
        s = handshake(_server_ctx(d, man, auth, extra == "hrr"),
                      _client_ctx(man, cert, keylog, extra == "pha"))
        if s.outcome.completed:
            # the SMTP dialogue resumes at once: EHLO in the same segment as the Finished
            start = len(s.flights)
            s.client.write(b"EHLO mail.example.org\r\n")
            ehlo = s.c_out.read()
            s.s_in.write(ehlo)
            last = max(i for i, (c, _) in enumerate(s.flights) if c)
            s.flights[last] = (True, s.flights[last][1] + ehlo)
            assert len(s.flights) == start
            s._pump_reads(to_client=False)
            s.send(False, b"250-mx.example.net\r\n250 STARTTLS\r\n")
        text = keylog.read_text()
        flights = tuple(s.flights)
        got = _hello_fields(flights)[1]
        if _SUITE_CODES[suite] != got:
            raise RuntimeError(f"{suite} asked for, {got:#06x} negotiated: OPENSSL_CONF ignored?")
        out.append(Case(suite, key, chain, auth, client, extra, flights, text,
                        s.outcome.completed, client_certificates(flights, text)))
    return out


def generate(suites: tuple[str, ...] = SUITES) -> list[Case]:
    """Every case for every suite (one child process per suite, run in parallel)."""
    with tempfile.TemporaryDirectory(prefix="fastcap-tls13-") as tmp:
        d = Path(tmp)
        _write_pki(d)

        def one(suite: str) -> list[Case]:
            conf = d / f"{suite}.cnf"
            conf.write_text(
                "openssl_conf = default_conf\n[default_conf]\nssl_conf = ssl_sect\n"
                "[ssl_sect]\nsystem_default = system_default_sect\n"
                f"[system_default_sect]\nCiphersuites = {suite}\n")
            env = {**os.environ, "OPENSSL_CONF": str(conf),
                   "PYTHONPATH": os.pathsep.join([str(_ROOT), os.environ.get("PYTHONPATH", "")])}
            done = subprocess.run([sys.executable, "-m", "fastcap_synth.tls13cases", suite, tmp],
                                  env=env, capture_output=True, check=True)
            return pickle.loads(done.stdout)

        with ThreadPoolExecutor(len(suites)) as pool:
            return [c for cases in pool.map(one, suites) for c in cases]


if __name__ == "__main__":
    # through the package, so that the cases pickle as fastcap_synth.tls13cases.Case
    from fastcap_synth.tls13cases import _run_suite as run

    sys.stdout.buffer.write(pickle.dumps(run(sys.argv[1], Path(sys.argv[2]))))
