"""Handshakes in a chosen cipher suite, TLS 1.2 and TLS 1.3, with their key logs.

Decryption has one code path per suite family (AES-GCM, ChaCha20-Poly1305, CBC-HMAC with or
without encrypt-then-MAC, and the three TLS 1.3 AEADs), so test data must come in each of them.
TLS 1.2 suites are chosen with ``set_ciphers``. Python's ``ssl`` has no call for TLS 1.3
ciphersuites, and OpenSSL reads its configuration once per process, so a TLS 1.3 suite is chosen
by running the generator in a child Python whose ``OPENSSL_CONF`` allows only that suite
(:func:`in_tls13_suite`). What crosses the process boundary is pickled; certificates travel as
DER/PEM because ``cryptography`` objects do not pickle.
"""

from __future__ import annotations

import os
import pickle
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .certs import Issued, make_ca, make_leaf
from .tlsgen import (
    Flight,
    Outcome,
    client_context,
    client_random,
    handshake,
    keylog_tap,
    server_context,
    session_keylog,
)

# IANA names and code points of the TLS 1.3 suites OpenSSL implements by default.
TLS13_SUITES: dict[str, int] = {
    "TLS_AES_128_GCM_SHA256": 0x1301,
    "TLS_AES_256_GCM_SHA384": 0x1302,
    "TLS_CHACHA20_POLY1305_SHA256": 0x1303,
}
# OpenSSL names and code points of TLS 1.2 suites: ECDSA ones for the EC certificates the
# generator uses by default, RSA ones for RSA server keys. CBC suites cover the three MAC hashes.
TLS12_SUITES: dict[str, int] = {
    "ECDHE-ECDSA-AES128-GCM-SHA256": 0xC02B,
    "ECDHE-ECDSA-AES256-GCM-SHA384": 0xC02C,
    "ECDHE-ECDSA-CHACHA20-POLY1305": 0xCCA9,
    "ECDHE-ECDSA-AES128-SHA": 0xC009,
    "ECDHE-ECDSA-AES256-SHA": 0xC00A,
    "ECDHE-ECDSA-AES128-SHA256": 0xC023,
    "ECDHE-ECDSA-AES256-SHA384": 0xC024,
    "ECDHE-RSA-AES128-GCM-SHA256": 0xC02F,
    "ECDHE-RSA-AES256-GCM-SHA384": 0xC030,
    "ECDHE-RSA-CHACHA20-POLY1305": 0xCCA8,
    "ECDHE-RSA-AES128-SHA": 0xC013,
    "ECDHE-RSA-AES256-SHA": 0xC014,
    "ECDHE-RSA-AES128-SHA256": 0xC027,
    "ECDHE-RSA-AES256-SHA384": 0xC028,
}
# SSL_OP_NO_ENCRYPT_THEN_MAC (OpenSSL 1.1.0+); the ssl module has no name for it.
OP_NO_ENCRYPT_THEN_MAC = 1 << 19

_REPO_ROOT = Path(__file__).resolve().parent.parent
_CHILD = "from fastcap_synth.suites import _child_main; _child_main()"


def openssl_conf(tls13_suite: str) -> str:
    """An OpenSSL configuration whose default TLS 1.3 ciphersuite list is ``tls13_suite``."""
    if tls13_suite not in TLS13_SUITES:
        raise ValueError(f"unknown TLS 1.3 suite {tls13_suite!r}; known: {', '.join(TLS13_SUITES)}")
    return (
        "openssl_conf = fastcap_synth_init\n"
        "[fastcap_synth_init]\nssl_conf = fastcap_synth_ssl\n"
        "[fastcap_synth_ssl]\nsystem_default = fastcap_synth_defaults\n"
        f"[fastcap_synth_defaults]\nCiphersuites = {tls13_suite}\n"
    )


def use_tls12_suite(ctx: ssl.SSLContext, suite: str, *, etm: bool = True) -> None:
    """Let ``ctx`` negotiate only ``suite`` in TLS 1.2; ``etm=False`` refuses encrypt-then-MAC
    (it only matters for CBC suites, where MAC-then-encrypt is the older record layout).

    Set it on both sides: Python's default server list excludes the SHA-1 CBC suites.
    """
    if suite not in TLS12_SUITES:
        raise ValueError(f"unknown TLS 1.2 suite {suite!r}; known: {', '.join(TLS12_SUITES)}")
    ctx.set_ciphers(suite)
    if not etm:
        ctx.options |= OP_NO_ENCRYPT_THEN_MAC


# --- running a call in a child process with a TLS 1.3 suite configured ---


def _child_main() -> None:
    """Child side: read a pickled (function, args) from stdin, write the pickled result."""
    func, args = pickle.load(sys.stdin.buffer)
    result = func(*args)
    sys.stdout.buffer.write(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()


def in_tls13_suites(calls: Sequence[tuple[str, Callable[..., Any], tuple]]) -> list[Any]:
    """Run each ``(suite, func, args)`` as ``func(*args)`` in its own child Python whose OpenSSL
    offers and accepts only ``suite`` in TLS 1.3; the children run in parallel.

    ``func`` must be a module-level function of ``fastcap_synth`` and ``args``/the result must
    pickle. A child that fails raises ``RuntimeError`` with its standard error.
    """
    with tempfile.TemporaryDirectory(prefix="fastcap-suite-") as tmp:
        procs = []
        for i, (suite, func, args) in enumerate(calls):
            conf = Path(tmp, f"openssl-{i}.cnf")
            conf.write_text(openssl_conf(suite))
            env = dict(os.environ)
            env["OPENSSL_CONF"] = str(conf)
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(_REPO_ROOT), env.get("PYTHONPATH", "")) if p
            )
            proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
            procs.append((suite, proc, pickle.dumps((func, args))))
        results = []
        for suite, proc, payload in procs:
            out, err = proc.communicate(payload, timeout=120)
            if proc.returncode != 0:
                raise RuntimeError(
                    f"generator child for {suite} failed ({proc.returncode}): "
                    f"{err.decode(errors='replace').strip()}"
                )
            results.append(pickle.loads(out))
        return results


def in_tls13_suite(suite: str, func: Callable[..., Any], *args: Any) -> Any:
    """``func(*args)`` in a child Python whose TLS 1.3 ciphersuite list is only ``suite``."""
    return in_tls13_suites([(suite, func, args)])[0]


# --- certificates across the process boundary ---

PortableIssued = tuple[bytes, bytes, tuple[bytes, ...]]  # cert DER, key PEM, chain DERs


def issued_to_portable(issued: Issued) -> PortableIssued:
    """A picklable form of ``issued``."""
    der = serialization.Encoding.DER
    return issued.der, issued.key_pem, tuple(c.public_bytes(der) for c in issued.chain)


def issued_from_portable(data: PortableIssued) -> Issued:
    """Inverse of :func:`issued_to_portable`."""
    cert_der, key_pem, chain = data
    key = serialization.load_pem_private_key(key_pem, password=None)
    return Issued(
        x509.load_der_x509_certificate(cert_der),
        key,  # type: ignore[arg-type]
        [x509.load_der_x509_certificate(c) for c in chain],
    )


# --- one handshake in one suite ---


@dataclass(frozen=True, slots=True)
class SuiteHandshake:
    """One client/server handshake plus a line of application data each way, with its keys.

    ``flights`` are the wire bytes in order (see :mod:`tlsgen`); ``keylog`` the client's NSS key
    log lines for this session; ``app_data`` the plaintext sent as (from_client, bytes).
    """

    suite: str
    flights: tuple[Flight, ...]
    keylog: tuple[str, ...]
    client_random: bytes
    outcome: Outcome
    app_data: tuple[tuple[bool, bytes], ...]


_APP_DATA = ((True, b"EHLO mail.fabrikam.com\r\n"), (False, b"250 contoso.com Hello\r\n"))


def _handshake_job(
    suite: str,
    version: str,
    server: PortableIssued,
    client: PortableIssued | None,
    client_ca: PortableIssued,
    etm: bool,
    client_auth: str = "optional",
) -> SuiteHandshake:
    srv = issued_from_portable(server)
    cli = issued_from_portable(client) if client is not None else None
    sctx = server_context(
        srv,
        client_auth=client_auth,
        client_cas=[issued_from_portable(client_ca)],
        min_version=version,
        max_version=version,
    )
    cctx = client_context(cert=cli, min_version=version, max_version=version)
    if version == "1.2":
        use_tls12_suite(sctx, suite, etm=etm)
        use_tls12_suite(cctx, suite, etm=etm)
    with keylog_tap(cctx) as lines:
        sess = handshake(sctx, cctx, server_hostname="contoso.com")
        assert sess.outcome is not None
        if sess.outcome.completed:
            for from_client, data in _APP_DATA:
                sess.send(from_client, data)
            sess.close(True)
    assert sess.outcome is not None
    if sess.outcome.cipher not in (suite, None):  # None: the handshake failed before a suite
        raise RuntimeError(f"asked for {suite}, OpenSSL negotiated {sess.outcome.cipher}")
    random = client_random(sess.flights) or b""
    return SuiteHandshake(
        suite,
        tuple(sess.flights),
        tuple(session_keylog(lines, random)),
        random,
        sess.outcome,
        _APP_DATA if sess.outcome.completed else (),
    )


def suite_handshake(
    suite: str,
    *,
    client_cert: bool = True,
    etm: bool = True,
    server: Issued | None = None,
    client: Issued | None = None,
    client_ca: Issued | None = None,
    client_auth: str = "optional",
) -> SuiteHandshake:
    """A real OpenSSL handshake in ``suite`` (a TLS 1.3 name from :data:`TLS13_SUITES` or a TLS
    1.2 one from :data:`TLS12_SUITES`), then a line of application data each way.

    ``client_auth`` is the server's request: "optional" (default: CertificateRequest, an empty
    answer accepted), "required" (a certificate not issued by ``client_ca`` is refused with an
    alert) or "none". ``client_cert=False`` makes the client send none (an empty Certificate
    when asked). ``client`` may carry a chain (``Issued.chain``); it is sent whole. Without
    certificates given, a fresh EC PKI is made (a few milliseconds). TLS 1.3 runs in a child
    process (see the module docstring), TLS 1.2 in this one.
    """
    if server is None or client_ca is None:
        root = make_ca("Suite Test Root CA")
        server = server or make_leaf(root, "contoso.com", sans=["contoso.com"])
        client = client or make_leaf(root, "mail.fabrikam.com", sans=["mail.fabrikam.com"])
        client_ca = root
    args = (
        suite,
        "1.3" if suite in TLS13_SUITES else "1.2",
        issued_to_portable(server),
        issued_to_portable(client) if client_cert and client is not None else None,
        issued_to_portable(client_ca),
        etm,
        client_auth,
    )
    if suite in TLS13_SUITES:
        return in_tls13_suite(suite, _handshake_job, *args)
    return _handshake_job(*args)
