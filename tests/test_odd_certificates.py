"""A certificate `cryptography` warns about goes through every writer that shows certificates
(PEM export, Zeek's x509.log, `follow`) with its own values, and nothing on stderr.

The first case is a client certificate with a negative serial: RFC 5280 forbids it, OpenSSL
accepts it (so a mail server may too), and `cryptography` warns when it loads one. The second
is a name `cryptography` would not build, which it warns of each time it decodes it: a common
name over 64 characters and a three-letter country (`C=USA`), both met in real certificates,
in the client's certificate, a CA's and a CertificateRequest's list. What is odd about either
is a note of the judgement; the warning is about the library, and on stderr it would be a
two-line Python message in the middle of a scan's output."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import warnings

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from fastcap.judge.x509check import TrustStore
from fastcap.proto.tls.dn import dn_to_text
from fastcap_synth.certs import Issued, make_leaf, with_serial
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


def _odd_name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "USA", _validate=False),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn, _validate=False)])


LONG_CN = "relay-" + "x" * 60 + ".contoso.com"


@pytest.fixture(scope="module")
def odd_names(tmp_path_factory):
    """One session whose client presents a certificate named `_odd_name(LONG_CN)`; a CA file
    of its root and a self-signed root of such a name; that root's DER name."""
    pki = make_pki()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the test's own use of such names
        odd = make_leaf(pki.intermediate, "mail.contoso.com", sans=["mail.contoso.com"],
                        subject=_odd_name(LONG_CN))
        start = int(odd.cert.not_valid_before_utc.timestamp() + 7200) * 10**9
        sc = scenario("ok_client_cert", pki, client_ctx=client_context(cert=odd),
                      client_cert=odd, start_ns=start)
        root = make_leaf(None, "r", self_signed=True, subject=_odd_name("r" * 70))
        root_name = root.cert.subject.public_bytes()
        d = tmp_path_factory.mktemp("names")
        path, ca = d / "names.pcap", d / "roots.pem"
        write_pcap(path, render(converse(sc), sc))
    ca.write_bytes(root.pem + pki.root.pem)
    return path, ca, root_name


@pytest.mark.parametrize("args", [
    ["scan", "--format", "table", "-v"], ["scan", "--format", "csv"],
    ["scan", "--format", "jsonl"], ["scan", "--format", "zeek", "-o", "{tmp}/zeek"],
    ["scan", "--format", "jsonl", "--export-certs", "{tmp}/certs"],
    ["report", "-o", "{tmp}/r.html"], ["follow", "--session", "1"],
])
def test_a_name_cryptography_would_not_build_is_shown_without_a_warning(odd_names, tmp_path,
                                                                        args):
    path, ca, _ = odd_names
    argv = [a.format(tmp=tmp_path) for a in args]
    trust = [] if argv[0] == "follow" else ["--ca-file", str(ca)]
    r = fastcap(*argv, *trust, str(path))
    assert r.returncode == 0, r.stderr
    assert all(line.startswith("fastcap: ") for line in r.stderr.splitlines()), r.stderr
    if not {"zeek", "table", "report"} & set(argv):  # the table clips the name
        assert LONG_CN in r.stdout and "C=USA" in r.stdout


def test_a_certificate_request_naming_such_a_ca_is_read_without_a_warning(odd_names):
    _, _, root_name = odd_names
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dn_to_text(root_name) == "CN=" + "r" * 70 + ",C=USA"
