"""The committed test certificates and the captures paired with the mail-server log fixtures.

The log fixtures quote certificates by the facts in ``tests/data/evidence/certs/README.md``;
these tests hold the README to the PEM files, and the paired captures to the endpoints, times
and certificates asked for, read back both by a small independent pcap parser and by
``fastcap.scan``, whose verdicts must be the ones each story session stands for.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
import struct
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from fastcap.run.scanner import scan
from fastcap_synth.evidence_certs import facts, write_readme
from fastcap_synth.evidence_pairs import (
    CERTS_DIR,
    PairedSession,
    load_issued,
    story_sessions,
    write_paired_capture,
)

ROOTS = CERTS_DIR / "roots.pem"
EXPECT = "mail.contoso.com"
SKEW = dt.timedelta(seconds=7, milliseconds=250)  # log clock minus capture clock
CLIENT_CODES = {"no_client_cert", "client_cert_expired", "client_cert_untrusted_ca",
                "client_cert_name_mismatch", "client_cert_not_yet_valid"}


def _readme() -> dict[str, dict[str, str]]:
    text = (CERTS_DIR / "README.md").read_text(encoding="utf-8")
    out: dict[str, dict[str, str]] = {}
    for block in re.split(r"^## ", text, flags=re.M)[1:]:
        name, _, body = block.partition("\n")
        out[name.strip()] = dict(re.findall(r"^- ([\w-]+): `([^`]*)`$", body, flags=re.M))
    return out


README = _readme()


def _sessions() -> list[PairedSession]:
    base = dt.datetime(2026, 3, 10, 10, 0, 0, 250_000, tzinfo=dt.UTC)
    extra = [
        PairedSession("10.1.2.10", 50311, "52.101.68.5", 25, base, "good",
                      reply="250 2.1.5 Recipient OK"),
        PairedSession("10.1.2.10", 50312, "52.101.68.5", 25, base + dt.timedelta(seconds=30),
                      "wrongname", reply_to="MAIL"),
    ]
    return [*story_sessions(SKEW), *extra]


@pytest.fixture(scope="module")
def captures(tmp_path_factory):
    """TLS 1.2 as a classic pcap without keys; TLS 1.3 as pcapng with the keys in a DSB."""
    d = tmp_path_factory.mktemp("pairs")
    out = {}
    for version, name in (("1.2", "pairs12.pcap"), ("1.3", "pairs13.pcapng")):
        sessions = [dataclasses.replace(s, tls_version=version, keylog=version == "1.3")
                    for s in _sessions()]
        out[version] = (d / name, write_paired_capture(d / name, sessions))
    return out


# --- the committed certificates ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["root", "issuing", "relay1-ca", "good", "expired",
                                  "wrongname", "untrusted"])
def test_readme_states_each_certificates_facts(name):
    assert README[name] == facts(load_issued(name).cert)
    assert set(README[name]) >= {"Subject", "Issuer", "SerialNumber", "Thumbprint", "SHA-256",
                                 "NotBefore", "NotAfter"}


def test_readme_is_what_the_script_writes_from_the_files(tmp_path):
    for f in CERTS_DIR.glob("*.*"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "README.md").unlink()
    write_readme(tmp_path)
    assert (tmp_path / "README.md").read_text() == (CERTS_DIR / "README.md").read_text()


def test_certificates_are_what_the_story_needs():
    want = {
        "good": ("CN=mail.contoso.com", "CN=Contoso Test Issuing CA, O=Contoso Test PKI",
                 "2026-01-15T00:00:00Z", "2028-01-15T00:00:00Z"),
        "expired": ("CN=mail.contoso.com", "CN=Contoso Test Issuing CA, O=Contoso Test PKI",
                    "2025-02-01T00:00:00Z", "2026-02-01T00:00:00Z"),
        "wrongname": ("CN=smtp.contoso.local", "CN=Contoso Test Issuing CA, O=Contoso Test PKI",
                      "2026-01-15T00:00:00Z", "2028-01-15T00:00:00Z"),
        "untrusted": ("CN=mail.contoso.com", "CN=Relay1 Self-Signed CA",
                      "2026-01-15T00:00:00Z", "2028-01-15T00:00:00Z"),
    }
    for name, (subject, issuer, nb, na) in want.items():
        f = README[name]
        assert (f["Subject"], f["Issuer"], f["NotBefore"], f["NotAfter"]) == (subject, issuer,
                                                                            nb, na), name
        cert = load_issued(name)
        eku = cert.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(eku)
        # Each leaf is signed by the issuer its chain names, and its key belongs to it.
        cert.cert.verify_directly_issued_by(cert.chain[0])
        assert cert.key.public_key().public_numbers() == cert.cert.public_key().public_numbers()
    issuing = load_issued("issuing")
    issuing.cert.verify_directly_issued_by(load_issued("root").cert)


def test_roots_bundle_trusts_only_the_contoso_root():
    roots = x509.load_pem_x509_certificates(ROOTS.read_bytes())
    assert [hashlib.sha1(r.public_bytes(Encoding.DER)).hexdigest().upper() for r in roots] == [
        README["root"]["Thumbprint"]]


def test_unknown_certificate_name_is_refused():
    with pytest.raises(ValueError, match="unknown certificate"):
        load_issued("bogus")


# --- the paired captures ----------------------------------------------------------------------


def _syns(path: Path) -> list[tuple[int, str, int, str, int]]:
    """(time ns, client ip, client port, server ip, server port) of every bare SYN, read
    straight from a little-endian microsecond pcap of Ethernet/IPv4/TCP frames."""
    data = path.read_bytes()
    assert struct.unpack_from("<I", data)[0] == 0xA1B2C3D4
    out, pos = [], 24
    while pos < len(data):
        sec, usec, incl, _ = struct.unpack_from("<IIII", data, pos)
        frame = data[pos + 16: pos + 16 + incl]
        pos += 16 + incl
        ip = frame[14:]
        tcp = ip[(ip[0] & 0x0F) * 4:]
        if tcp[13] & 0x12 == 0x02:  # SYN without ACK
            sport, dport = struct.unpack_from(">HH", tcp)
            out.append((sec * 10**9 + usec * 1000, ".".join(map(str, ip[12:16])), sport,
                        ".".join(map(str, ip[16:20])), dport))
    return out


def test_sessions_start_at_the_asked_endpoints_and_times(captures):
    path, results = captures["1.2"]
    want = [(r.session.start_ns, r.session.client_ip, r.session.client_port,
             r.session.server_ip, r.session.server_port) for r in results]
    assert _syns(path) == sorted(want)
    # The story's first session: the log's 2026-03-10T09:15:02.118Z on the capture's clock.
    log_ns = int(dt.datetime(2026, 3, 10, 9, 15, 2, tzinfo=dt.UTC).timestamp()) * 10**9
    assert results[0].start_ns == log_ns + 118_000_000 - 7_250_000_000


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_scan_sees_each_session_where_and_when_it_was_asked(captures, version):
    path, results = captures[version]
    sessions = list(scan(path, ca_file=str(ROOTS), expect_name=EXPECT))
    got = [(s.client, s.server, s.first_ts_ns) for s in sessions]
    want = [(f"{r.session.client_ip}:{r.session.client_port}",
             f"{r.session.server_ip}:{r.session.server_port}", r.start_ns) for r in results]
    assert got == want
    assert all(r.completed and r.tls_version == f"TLSv{version}" for r in results)
    if version == "1.2":  # the suite the story's Postfix log names
        assert {r.cipher for r in results} == {"ECDHE-RSA-AES256-GCM-SHA384"}
    # Exchange Online's front end names itself in the banner, as the send log records it.
    assert {s.smtp.banner_host for s in sessions} == {
        "AM4PEPF00027A5C.mail.protection.outlook.com"}


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_thumbprint_on_the_wire_is_the_readmes(captures, version):
    path, results = captures[version]
    for s, r in zip(scan(path, ca_file=str(ROOTS), expect_name=EXPECT), results, strict=True):
        name = r.session.client_cert
        assert s.tls is not None
        if name is None:
            assert s.tls.client_certificate == () and r.thumbprint is None
            continue
        wire = hashlib.sha1(s.tls.client_certificate[0]).hexdigest().upper()
        assert wire == r.thumbprint == README[name]["Thumbprint"], name


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_verdicts_are_those_the_story_stands_for(captures, version):
    path, results = captures[version]
    want = {None: {"no_client_cert"}, "expired": {"client_cert_expired"},
            "untrusted": {"client_cert_untrusted_ca"}, "good": set(),
            "wrongname": {"client_cert_name_mismatch"}}
    for s, r in zip(scan(path, ca_file=str(ROOTS), expect_name=EXPECT), results, strict=True):
        codes = {v.code for v in s.verdicts}
        assert codes & CLIENT_CODES == want[r.session.client_cert], (r.session, codes)
        assert not any(c.startswith("server_cert") for c in codes), codes
        # The 550 comes inside TLS: seen only with the keys (the TLS 1.3 capture has them).
        denied = version == "1.3" and r.session.reply.startswith("550 5.7.64")
        assert ("relay_denied" in codes) == denied, codes


def test_keys_go_to_a_dsb_and_a_key_log_file(tmp_path):
    (one, *_) = story_sessions(keylog=True)
    plain = dataclasses.replace(one, client_port=50999, keylog=False,
                                start=one.start + dt.timedelta(seconds=1))
    keys = tmp_path / "s.keys"
    results = write_paired_capture(tmp_path / "s.pcapng", [one, plain], keylog_path=keys)
    assert results[0].keylog and not results[1].keylog
    assert keys.read_text().splitlines() == list(results[0].keylog)
    assert all(line.split()[1] == results[0].client_random.hex() for line in results[0].keylog)
    blob = (tmp_path / "s.pcapng").read_bytes()
    assert keys.read_bytes() in blob


def test_bad_requests_are_refused(tmp_path):
    (one, *_) = story_sessions()
    with pytest.raises(ValueError, match="no sessions"):
        write_paired_capture(tmp_path / "x.pcap", [])
    with pytest.raises(ValueError, match="tls_version"):
        write_paired_capture(tmp_path / "x.pcap", [dataclasses.replace(one, tls_version="1.1")])
    with pytest.raises(ValueError, match="aware"):
        write_paired_capture(tmp_path / "x.pcap",
                             [dataclasses.replace(one, start=one.start.replace(tzinfo=None))])
    with pytest.raises(ValueError, match="reply_to"):
        write_paired_capture(tmp_path / "x.pcap", [dataclasses.replace(one, reply_to="DATA")])
    assert not (tmp_path / "x.pcap").exists()
