"""A certificate `cryptography` warns about goes through every writer that shows certificates
(PEM export, Zeek's x509.log, `follow`) with its own values, and nothing on stderr.

The case is a client certificate with a negative serial: RFC 5280 forbids it, OpenSSL accepts it
(so a mail server may too), and `cryptography` warns when it loads one. What is odd about it is
a note of the judgement; the warning is about the library's future, and on stderr it would be a
two-line Python message in the middle of a scan's output."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import warnings

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from fastcap.judge.x509check import TrustStore
from fastcap_synth.certs import Issued, with_serial
from fastcap_synth.scenarios import make_pki, scenario
from fastcap_synth.smtpgen import converse, render
from fastcap_synth.tlsgen import client_context
from fastcap_synth.writers import write_pcap

from .test_zeek import read_strict

SERIAL = b"\xfa\x12\x34"  # the INTEGER's content octets: -0x05EDCC


def fastcap(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fastcap.cli", *args],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    """One session whose client presents the negative-serial certificate; its trust file."""
    pki = make_pki()
    der = with_serial(pki.client.cert, pki.intermediate.key, SERIAL)
    start = int(pki.client.cert.not_valid_before_utc.timestamp() + 7200) * 10**9
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the test's own use of it
        odd = Issued(x509.load_der_x509_certificate(der), pki.client.key, pki.client.chain)
        sc = scenario("ok_client_cert", pki, client_ctx=client_context(cert=odd),
                      client_cert=odd, start_ns=start)
    d = tmp_path_factory.mktemp("odd")
    path, ca = d / "odd.pcap", d / "root.pem"
    write_pcap(path, render(converse(sc), sc))
    ca.write_bytes(pki.root.pem)
    return path, ca, der


def test_the_export_writes_its_der_and_pem_without_a_warning(capture, tmp_path):
    path, ca, der = capture
    out = tmp_path / "certs"
    r = fastcap("scan", "--format", "jsonl", "--ca-file", str(ca), "--export-certs", str(out),
                str(path))
    assert (r.returncode, r.stderr) == (0, "")
    stem = out / hashlib.sha256(der).hexdigest()
    assert stem.with_suffix(".der").read_bytes() == der
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pem = x509.load_pem_x509_certificate(stem.with_suffix(".pem").read_bytes())
    assert pem.public_bytes(Encoding.DER) == der


def test_zeeks_x509_log_shows_the_serial_as_openssl_prints_it_without_a_warning(capture,
                                                                                tmp_path):
    path, ca, der = capture
    out = tmp_path / "logs"
    r = fastcap("scan", "--format", "zeek", "-o", str(out), "--ca-file", str(ca), str(path))
    assert r.returncode == 0
    assert [line.split(" (")[0] for line in r.stderr.splitlines()] == [
        f"fastcap: wrote {out / name}" for name in ("smtp.log", "ssl.log", "x509.log")]
    _, _, rows = read_strict(out / "x509.log")
    (row,) = [x for x in rows if x["fingerprint"] == hashlib.sha256(der).hexdigest()]
    assert row["certificate.serial"] == "-05EDCC"
    assert row["certificate.subject"] == "CN=mail.fabrikam.com"
    assert row["client_cert"] is True


def test_follow_names_the_certificate_without_a_warning(capture):
    path, _, _ = capture
    r = fastcap("follow", str(path), "--session", "1")
    assert (r.returncode, r.stderr) == (0, "")
    assert "0: CN=mail.fabrikam.com\n" in r.stdout
    assert "unparseable certificate" not in r.stdout


def test_a_ca_file_of_one_such_der_certificate_loads_without_a_warning(capture):
    """``--ca-file`` takes a lone DER certificate too; the user's own odd root is no warning."""
    _, _, der = capture
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store = TrustStore.from_bundle(der, "odd.der")
        assert [c.public_bytes(Encoding.DER) for c in store.roots] == [der]
