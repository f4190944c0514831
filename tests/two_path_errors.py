"""A capture whose client chain fails two of `openssl verify`'s checks: the trusted root
permits only contoso.com (NameConstraints) and the leaf, mail.fabrikam.com, has serverAuth as
its only extended key usage (a real OpenSSL handshake, fastcap_synth).  The expected errors
come from `openssl verify` on the same certificates, never from fastcap."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from fastcap_synth.certs import make_ca, make_leaf
from fastcap_synth.scenarios import make_pki, scenario
from fastcap_synth.smtpgen import smtp_records
from fastcap_synth.tlsgen import client_context
from fastcap_synth.writers import write_pcap

from .openssl_oracle import openssl_errors


@dataclass(frozen=True)
class TwoErrors:
    capture: Path
    ca_file: Path               # the constrained root (trusted)
    root: x509.Certificate
    said: list[tuple[str, int]]  # what `openssl verify -purpose sslclient` printed


def two_path_errors(where: Path) -> TwoErrors:
    now = dt.datetime.now(dt.UTC)
    root = make_ca("Mail Root", extensions=[x509.NameConstraints(
        permitted_subtrees=[x509.DNSName("contoso.com")], excluded_subtrees=None)])
    leaf = make_leaf(root, "mail.fabrikam.com", sans=["mail.fabrikam.com"], eku=("serverAuth",))
    capture = where / "two-errors.pcap"
    write_pcap(capture, smtp_records(scenario(
        "untrusted_ca", make_pki(now), client_cert=leaf,
        client_ctx=client_context(cert=leaf, min_version="1.2", max_version="1.2"),
        start_ns=time.time_ns() - 3600 * 10**9)))
    (where / "ca.pem").write_bytes(root.pem)
    oracle = where / "oracle"
    oracle.mkdir()
    said = openssl_errors(oracle, root.pem, leaf.pem, at=now)
    return TwoErrors(capture, where / "ca.pem", root.cert, said)
