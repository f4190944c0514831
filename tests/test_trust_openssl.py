"""Differential test: fastcap's path validation against `openssl verify`, the verifier behind
Postfix and Exim.

Hypothesis builds chains whose every certificate may lack or mangle its key identifiers, SAN,
EKU, basicConstraints or keyUsage (critical flags and pathLen too), carry name constraints
(DNS, directory name, IP, email), be out of date at the
capture time, be signed by a look-alike key, or be sent missing, twice, out of order or next
to an impostor; keys are RSA, ECDSA and Ed25519, signatures SHA-256 or SHA-1.  For each,
``Analyzer.check(...).path_valid`` must equal the exit status of
``openssl verify -attime T -purpose sslclient|sslserver -CAfile ROOTS [-untrusted SENT] LEAF``.

FASTCAP_FUZZ_SCALE=N runs N times as many examples (default 2000, about half a minute).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import math
import os
import random
import re
import shutil
import subprocess
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastcap.judge.x509check import Analyzer, TrustStore
from fastcap_synth.certs import _sign

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="openssl command not installed")

SCALE = max(1, int(os.environ.get("FASTCAP_FUZZ_SCALE", "1")))
BASE = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
WINDOWS = {
    "ok": (BASE - 400 * DAY, BASE + 400 * DAY),
    "expired": (BASE - 400 * DAY, BASE - 5 * DAY),
    "future": (BASE + 5 * DAY, BASE + 400 * DAY),
    "ends_at_t": (BASE - 400 * DAY, BASE),  # OpenSSL: expired at its notAfter second
    "starts_at_t": (BASE, BASE + 400 * DAY),
    "old": (BASE - 2000 * DAY, BASE - 1000 * DAY),
}
TIMES = (BASE, BASE, BASE + 10 * DAY, BASE - 10 * DAY)
EKUS = {
    "none": None,
    "client": [ExtendedKeyUsageOID.CLIENT_AUTH],
    "server": [ExtendedKeyUsageOID.SERVER_AUTH],
    "both": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
    "any": [ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE],
    "server_any": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE],
    "email": [ExtendedKeyUsageOID.EMAIL_PROTECTION],
}
KU_FIELDS = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
             "key_agreement", "key_cert_sign", "crl_sign")
KUS = {
    "none": None,
    "ca": {"key_cert_sign", "crl_sign", "digital_signature"},
    "nocertsign": {"crl_sign", "digital_signature"},
    "certsign_only": {"key_cert_sign"},
    "ds": {"digital_signature"},
    "ke": {"key_encipherment"},
    "ka": {"key_agreement"},
    "ds_ke": {"digital_signature", "key_encipherment"},
    "nr": {"content_commitment"},
}
NAME_CONSTRAINTS = {
    "dns": ([x509.DNSName("example")], None),
    "dns_dot": ([x509.DNSName(".example")], None),
    "dns_other": ([x509.DNSName("other.test")], None),
    "dns_excluded": (None, [x509.DNSName("mail.example")]),
    "dir_leaf": ([x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                                  "mail.example")]))], None),
    "ip": ([x509.IPAddress(ipaddress.ip_network("10.0.0.0/8"))], None),
    "email": ([x509.RFC822Name("mail.example")], None),
}
SAN_EXTRA = {
    "": [],
    "ip_in": [x509.IPAddress(ipaddress.ip_address("10.1.2.3"))],
    "ip_out": [x509.IPAddress(ipaddress.ip_address("192.0.2.1"))],
    "email": [x509.RFC822Name("postmaster@mail.example")],
}
UNKNOWN_CRITICAL = x509.ObjectIdentifier("1.3.6.1.4.1.55555.1.1")
NS_CERT_TYPE = x509.ObjectIdentifier("2.16.840.1.113730.1.1")


def weighted(normal, *others, weight=4):
    return st.sampled_from([normal] * weight + list(others))


@dataclass(frozen=True)
class Spec:
    key: int
    hash: str
    window: str
    bc: str
    bc_crit: bool
    ku: str
    ku_crit: bool
    eku: str
    eku_crit: bool
    ski: str
    aki: str
    san: bool
    ns: int | None
    odd_crit: str  # "", "unknown", "ski", "aki"
    nc: str = ""  # name constraints on a CA, see NAME_CONSTRAINTS
    san_extra: str = ""  # more SAN entries on a leaf: "", "ip_in", "ip_out", "email"


def mangled(ca: bool):
    return st.builds(
        Spec,
        key=st.integers(0, 9),
        hash=weighted("sha256", "sha1", weight=5),
        window=weighted("ok", *[w for w in WINDOWS if w not in ("ok", "old")], weight=6),
        bc=weighted("ca", "ca_pl0", "ca_pl1", "none", "notca") if ca
        else weighted("none", "notca", "ca", weight=2),
        bc_crit=weighted(True, False),
        ku=weighted("ca", "none", "nocertsign", "certsign_only") if ca
        else weighted("ds", "none", "ke", "ka", "certsign_only", "ds_ke", "nr", weight=3),
        ku_crit=weighted(True, False, weight=2),
        eku=weighted("none", "client", "server", "both", "any", "email", weight=6) if ca
        else weighted("both", "none", "client", "server", "any", "server_any", "email",
                      weight=3),
        eku_crit=weighted(False, True, weight=6),
        ski=weighted("ok", "none", "wrong"),
        aki=weighted("ok", "none", "wrong", "full", "full_wrong", weight=5),
        san=weighted(True, False, weight=2),
        ns=weighted(None, 0x07, 0x04, 0x80, 0x40, weight=10),
        odd_crit=weighted("", "unknown", "ski", "aki", weight=20),
        nc=weighted("", *NAME_CONSTRAINTS, weight=10) if ca else st.just(""),
        san_extra=st.just("") if ca else weighted("", "ip_in", "ip_out", "email", weight=4),
    )


def clean(ca: bool):
    """A usual certificate, but for the profile details mail servers do not care about."""
    return st.builds(
        Spec,
        key=st.integers(0, 9),
        hash=weighted("sha256", "sha1", weight=12),
        window=weighted("ok", "expired", "future", "ends_at_t", "starts_at_t", weight=20),
        bc=st.just("ca" if ca else "none"),
        bc_crit=weighted(True, False),
        ku=st.just("ca" if ca else "ds_ke"),
        ku_crit=st.booleans(),
        eku=st.just("none" if ca else "both"),
        eku_crit=st.just(False),
        ski=weighted("ok", "none"),
        aki=weighted("ok", "none", "full"),
        san=weighted(True, False, weight=2),
        ns=st.just(None),
        odd_crit=st.just(""),
        nc=weighted("", *NAME_CONSTRAINTS, weight=14) if ca else st.just(""),
        san_extra=st.just("") if ca else weighted("", "ip_in", "ip_out", "email", weight=6),
    )


def specs(ca: bool):
    """Two certificates in three are usual ones, so that most chains fail for one reason."""
    return st.one_of(clean(ca), clean(ca), mangled(ca))


# Built once: making strategies costs more than drawing from them.
CA_SPECS, LEAF_SPECS = specs(True), specs(False)
MAYBE = weighted(False, True, weight=6)  # an unusual twist, now and then
RARELY = weighted(False, True, weight=12)
USUALLY = weighted(True, False)

_SMALL_PRIMES = [p for p in range(3, 2000) if all(p % d for d in range(2, int(p**0.5) + 1))]


def _prime(rng: random.Random, bits: int) -> int:
    while True:
        n = rng.getrandbits(bits) | (3 << (bits - 2)) | 1
        if all(n % p for p in _SMALL_PRIMES) and all(pow(a, n - 1, n) == 1 for a in (2, 3, 5, 7)):
            return n


def _rsa(seed: int, bits: int) -> rsa.RSAPrivateKey:
    """A reproducible RSA key: the same certificates on every run, so the test is
    deterministic (cryptography checks the key when loading it)."""
    rng, e = random.Random(seed), 65537
    while True:
        p, q = _prime(rng, bits // 2), _prime(rng, bits // 2)
        phi = (p - 1) * (q - 1)
        if p != q and math.gcd(e, phi) == 1:
            break
    d = pow(e, -1, phi)
    return rsa.RSAPrivateNumbers(
        p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q),
        rsa.RSAPublicNumbers(e, p * q),
    ).private_key()


@pytest.fixture(scope="module")
def keys():
    """A small pool of fixed keys, shared by the certificates (RSA key generation is slow)."""
    return [
        _rsa(1, 2048),
        _rsa(2, 1024),
        ec.derive_private_key(3 << 200, ec.SECP256R1()),
        ec.derive_private_key(4 << 200, ec.SECP256R1()),
        ec.derive_private_key(5 << 300, ec.SECP384R1()),
        ec.derive_private_key(6 << 200, ec.SECP256R1()),
        ed25519.Ed25519PrivateKey.from_private_bytes(bytes([7]) * 32),
        ed25519.Ed25519PrivateKey.from_private_bytes(bytes([8]) * 32),
        _rsa(9, 2048),
        ec.derive_private_key(10 << 200, ec.SECP256R1()),
    ]


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def build(spec: Spec, subject: str, issuer: str, key, signer, signer_serial: int,
          signer_issuer: str, serial: int, *, ca: bool) -> x509.Certificate:
    nb, na = WINDOWS[spec.window]
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
         .public_key(key.public_key()).serial_number(serial)
         .not_valid_before(nb).not_valid_after(na))
    if spec.bc != "none":
        is_ca = spec.bc.startswith("ca")
        pl = {"ca_pl0": 0, "ca_pl1": 1}.get(spec.bc)
        b = b.add_extension(x509.BasicConstraints(ca=is_ca, path_length=pl), spec.bc_crit)
    if KUS[spec.ku] is not None:
        on = KUS[spec.ku]
        b = b.add_extension(
            x509.KeyUsage(**{f: f in on for f in KU_FIELDS}, encipher_only=False,
                          decipher_only=False), spec.ku_crit)
    if EKUS[spec.eku] is not None:
        b = b.add_extension(x509.ExtendedKeyUsage(EKUS[spec.eku]), spec.eku_crit)
    if spec.ski != "none":
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        if spec.ski == "wrong":
            ski = x509.SubjectKeyIdentifier(b"\x01" * 20)
        b = b.add_extension(ski, spec.odd_crit == "ski")
    if spec.aki != "none":
        kid = x509.SubjectKeyIdentifier.from_public_key(signer.public_key()).digest
        if spec.aki == "wrong":
            kid = b"\x02" * 20
        if spec.aki.startswith("full"):
            aki = x509.AuthorityKeyIdentifier(
                kid, [x509.DirectoryName(_name(signer_issuer))],
                signer_serial + (1 if spec.aki == "full_wrong" else 0))
        else:
            aki = x509.AuthorityKeyIdentifier(kid, None, None)
        b = b.add_extension(aki, spec.odd_crit == "aki")
    if spec.san and not ca:
        names = [x509.DNSName(subject), *SAN_EXTRA[spec.san_extra]]
        b = b.add_extension(x509.SubjectAlternativeName(names), False)
    if spec.nc:
        b = b.add_extension(x509.NameConstraints(*NAME_CONSTRAINTS[spec.nc]), True)
    if spec.ns is not None:
        der = bytes([0x03, 0x02, 0x00, spec.ns])
        b = b.add_extension(x509.UnrecognizedExtension(NS_CERT_TYPE, der), False)
    if spec.odd_crit == "unknown":
        b = b.add_extension(x509.UnrecognizedExtension(UNKNOWN_CRITICAL, b"\x05\x00"), True)
    if isinstance(signer, ed25519.Ed25519PrivateKey):
        return b.sign(signer, None)
    return _sign(b, signer, spec.hash)


@dataclass
class Case:
    role: str
    at: dt.datetime
    leaf: x509.Certificate
    sent: list[x509.Certificate]
    store: list[x509.Certificate]
    about: str


@st.composite
def cases(draw, keys):
    serials = iter(range(1000, 2000))
    n_inter = draw(st.sampled_from([0, 1, 1, 1, 2, 2]))
    root_spec = draw(CA_SPECS)
    root_key = keys[root_spec.key]
    root_serial = next(serials)
    root = build(root_spec, "Root A", "Root A", root_key, root_key, root_serial, "Root A",
                 root_serial, ca=True)
    levels = [("Root A", root_key, root_serial, "Root A", root)]
    about = [f"root {root_spec}"]
    for i in range(n_inter):
        spec = draw(CA_SPECS)
        name, pkey, pserial, pissuer, _ = levels[-1]
        serial = next(serials)
        cert = build(spec, f"Inter {i + 1}", name, keys[spec.key], pkey, pserial, pissuer,
                     serial, ca=True)
        levels.append((f"Inter {i + 1}", keys[spec.key], serial, name, cert))
        about.append(f"inter{i + 1} {spec}")
    leaf_spec = draw(LEAF_SPECS)
    self_signed_leaf = draw(RARELY)
    wrong_signer = draw(RARELY)
    name, pkey, pserial, pissuer, _ = levels[-1]
    leaf_key = keys[leaf_spec.key]
    if self_signed_leaf:
        name, pkey, pserial, pissuer = "mail.example", leaf_key, 999, "mail.example"
    elif wrong_signer:
        pkey = keys[(keys.index(pkey) + 1) % len(keys)]
    spelling = draw(weighted(str, str.upper, lambda n: f" {n.replace(' ', '  ')} ", weight=10))
    leaf = build(leaf_spec, "mail.example", spelling(name), leaf_key, pkey, pserial, pissuer,
                 999, ca=False)
    about.append(f"leaf {leaf_spec} self_signed={self_signed_leaf} wrong={wrong_signer}")

    sent = [lv[4] for lv in levels[1:] if draw(USUALLY)]
    if draw(MAYBE):
        sent.append(root)
    if sent and draw(MAYBE):
        sent.append(draw(st.sampled_from(sent)))
    if draw(weighted(False, True, weight=5)):  # an impostor: the leaf's issuer name, other key
        spec = draw(CA_SPECS)
        name, _, _, _, _ = levels[-1]
        pname, pk, ps, pi, _ = levels[-2] if len(levels) > 1 else levels[-1]
        ikey = keys[spec.key]
        if len(levels) == 1:  # a look-alike root, self-signed
            pk, ps, pi = ikey, 1, name
        sent.append(build(spec, name, pname if len(levels) > 1 else name, ikey, pk, ps, pi,
                          next(serials), ca=True))
        about.append(f"impostor {spec}")
    sent = draw(st.permutations(sent))

    other_key = keys[draw(st.integers(0, 9))]
    other = build(Spec(0, "sha256", "ok", "ca", True, "ca", True, "none", False, "ok", "none",
                       False, None, ""), "Other Root", "Other Root", other_key, other_key,
                  1, "Other Root", 1, ca=True)
    store = [other]
    if draw(weighted(True, False, weight=8)):
        store.append(root)
    if draw(MAYBE):  # same name, other key, long expired
        spec = draw(CA_SPECS)
        k = keys[spec.key]
        store.append(build(Spec(**{**spec.__dict__, "window": "old"}), "Root A", "Root A",
                           k, k, 5, "Root A", 5, ca=True))
    if n_inter and draw(MAYBE):
        store.append(levels[1][4])
    if self_signed_leaf and draw(weighted(False, True, weight=1)):
        store.append(leaf)
    return Case(draw(st.sampled_from(["client", "server"])), draw(st.sampled_from(TIMES)),
                leaf, sent, store, "\n".join(about))


def pem(certs) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def der(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def openssl_verify(tmp, case: Case) -> tuple[bool, str]:
    (tmp / "roots.pem").write_bytes(pem(case.store))
    (tmp / "leaf.pem").write_bytes(pem([case.leaf]))
    cmd = [OPENSSL, "verify", "-no-CApath", "-no-CAstore", "-attime",
           str(int(case.at.timestamp())), "-purpose", f"ssl{case.role}",
           "-CAfile", str(tmp / "roots.pem")]
    if case.sent:
        (tmp / "sent.pem").write_bytes(pem(case.sent))
        cmd += ["-untrusted", str(tmp / "sent.pem")]
    cmd.append(str(tmp / "leaf.pem"))
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    return done.returncode == 0, (done.stdout + done.stderr).strip()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("trust")


@settings(max_examples=2000 * SCALE, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_path_validation_matches_openssl(keys, workdir, data):
    case = data.draw(cases(keys))
    ok, said = openssl_verify(workdir, case)
    analyzer = Analyzer(TrustStore(case.store), today=BASE)
    r = analyzer.check([der(case.leaf), *map(der, case.sent)], role=case.role, at=case.at)
    assert r.path_valid is ok, (
        f"openssl says {said!r}\nfastcap: path_valid={r.path_valid} error={r.path_error} "
        f"depth={r.path_error_depth} problem={r.problem} detail={r.detail}\n{case.about}\n"
        f"role={case.role} at={case.at} sent={len(case.sent)} store={len(case.store)}"
    )
    first = re.search(r"error \d+ at (\d+) depth lookup: (.*)", said)
    if first:  # the first error OpenSSL met, and the certificate it met it on
        assert (r.path_error, r.path_error_depth) == (first[2].strip(), int(first[1])), (
            said, r.detail, case.about)
    pinned = any(der(c) == der(case.leaf) for c in case.store)
    if not pinned and r.problem != "weak_signature":
        # fastcap's verdict is OpenSSL's, but for its two deliberate additions
        assert r.trusted is ok, (r.problem, r.detail, said)
    if r.problem == "weak_signature":
        assert ok and r.trusted is False
