"""TLS 1.2 renegotiation with a key log: real `openssl s_server`/`s_client` sessions (recorded in
tests/data/renegotiation, README.md there says how) where the server asks for the client
certificate only by renegotiating, as IIS does. The renegotiated handshake travels encrypted
under the first keys and switches to its own keys at each side's ChangeCipherSpec; fastcap
must read it as tshark does, and judge the client certificate sent there."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fastcap.out import report
from fastcap.proto.tls.decrypt import CipherRecord, decrypt_direction
from fastcap.proto.tls.keylog import SessionSecrets
from fastcap.proto.tls.keyschedule import key_block, suite
from fastcap.run.scanner import scan

from .tlskeys import tshark_path

DATA = Path(__file__).resolve().parent / "data" / "renegotiation"
PORTS = {"gcm": 3735, "cbc": 3736, "cbc_noetm": 3737, "nocert": 3738, "norequest": 3739,
         "twice": 3740, "tls10": 3742, "expired": 3743, "refused": 3744}
# the server renegotiated with `R`, asking for a certificate
ASKED = ("gcm", "cbc", "cbc_noetm", "nocert", "twice", "tls10", "expired")
CERTIFICATE, CERTIFICATE_REQUEST = 11, 13


def _session(name: str, keys: Path | None = None, **kw):
    keylog = (str(keys or DATA / f"{name}.keys"),)
    (s,) = scan(DATA / f"{name}.pcap", ports=(PORTS[name],), keylog=keylog, **kw)
    return s


def _codes(s) -> set[str]:
    return {v.code for v in s.verdicts}


def _tshark_frames(name: str, keys: Path) -> dict[int, list[int]]:
    """Handshake type -> the frames tshark shows it in, decrypted with ``keys``."""
    out = subprocess.run(
        [tshark_path() or "tshark", "-n", "-r", str(DATA / f"{name}.pcap"), "-o",
         f"tls.keylog_file:{keys}", "-Y", "tls.handshake", "-T", "fields",
         "-e", "frame.number", "-e", "tls.handshake.type"],
        capture_output=True, text=True, check=True, timeout=300).stdout
    frames: dict[int, list[int]] = {}
    for line in out.splitlines():
        frame, types = line.split("\t")
        for t in dict.fromkeys(int(x) for x in types.split(",") if x):
            frames.setdefault(t, []).append(int(frame))
    return frames


@pytest.mark.parametrize("name", ASKED)
def test_the_renegotiated_certificate_exchange_is_read(name):
    s = _session(name)
    tls = s.tls
    last = 32 if name == "twice" else 22  # the renegotiation that asked (README.md)
    assert tls.renegotiation_at.frame == 18 and tls.renegotiation_decrypted
    assert tls.cert_request_at.frame == last and tls.client_certificate_at.frame == last + 1
    assert s.decryption.error is None
    assert len(s.decryption.sources) == (3 if name == "twice" else 2)
    codes = _codes(s)
    assert "client_cert_not_captured" not in codes and "decryption_failed" not in codes
    if name == "nocert":
        assert tls.client_certificate == () and tls.certificate_verify_at is None
        assert "no_client_cert" in codes
    else:
        assert tls.certificate_verify_at.frame == last + 1
        (der,) = tls.client_certificate
        assert "mail.fabrikam.com" in s.client_check.certs[0].subject
        assert s.client_check.certs[0].sha256 == hashlib.sha256(der).hexdigest()
        assert "client_cert_not_requested" not in codes
        # judged as the server judged it (its log: "certificate has expired")
        assert ("client_cert_expired" in codes) == (name == "expired")
    # the SMTP dialogue after the new keys is decrypted too
    commands = [(c.verb, c.frame) for c in s.smtp_tls.commands]
    after = [36, 38] if name == "twice" else [28, 30]
    assert commands == [("EHLO", 16), ("MAIL", 26), ("RCPT", after[0]), ("QUIT", after[1])]


def test_a_renegotiation_without_a_request_is_not_requested():
    s = _session("norequest")
    assert s.tls.renegotiation_decrypted and not s.tls.cert_requested
    (v,) = [v for v in s.verdicts if v.code.startswith("client_cert")]
    assert v.code == "client_cert_not_requested"
    assert "renegotiation at frame 18, decrypted" in v.message


def test_a_refused_renegotiation_is_read_as_one_without_a_request():
    """The client's new ClientHello is answered by the server's no_renegotiation alert: with
    everything decrypted, no certificate was asked for anywhere."""
    s = _session("refused")
    assert s.tls.renegotiation_at.frame == 18 and s.tls.renegotiation_decrypted
    assert [(a.description_name, a.at.frame) for a in s.tls.alerts] == [
        ("no_renegotiation", 20), ("handshake_failure", 22)]
    codes = _codes(s)
    assert "client_cert_not_requested" in codes and "client_cert_not_captured" not in codes


def test_the_servers_refusal_after_the_clients_finished_is_still_named():
    """The server's no_renegotiation is decrypted after the client's Finished of a completed
    handshake, as a refusal of a certificate asked for by renegotiating would be: it stays a
    tls_alert, though the alerts a client sends after its Finished are closing noise."""
    s = _session("refused")
    fin = s.tls.client_finished_at
    assert s.tls.outcome == "completed" and fin is not None and fin.frame < 20
    (v,) = [v for v in s.verdicts if v.code == "tls_alert"]
    assert "no_renegotiation (100) (frame 20)" in v.message
    assert "handshake_failure" not in v.message


def test_without_the_renegotiations_key_line_its_handshake_is_still_read(tmp_path):
    """The renegotiation's hellos, request and certificate travel under the first keys: only
    its Finished and what follows need the key log's second line."""
    keys = tmp_path / "first.keys"
    keys.write_text("".join((DATA / "gcm.keys").read_text().splitlines(True)[:2]))
    s = _session("gcm", keys)
    assert s.tls.cert_request_at.frame == 22 and s.tls.client_certificate_at.frame == 23
    assert "renegotiated keys are not known" in s.decryption.error
    assert s.decryption.error_frame == 23
    # the key log's missing line named, as no_key_for_session names the first handshake's
    missing = (DATA / "gcm.keys").read_text().splitlines()[2].split()[1]
    assert (f"the key log has no line for the renegotiation's client random {missing[:16]}..."
            in s.decryption.error)
    assert not s.tls.anomalies  # the encrypted ChangeCipherSpec is not read as plaintext
    assert [c.verb for c in s.smtp_tls.commands] == ["EHLO"]


def test_without_keys_the_request_stays_hidden():
    (s,) = scan(DATA / "gcm.pcap", ports=(PORTS["gcm"],))
    assert not s.tls.renegotiation_decrypted and s.tls.cert_request_at is None
    assert "client_cert_not_captured" in _codes(s)


@pytest.mark.parametrize("name", sorted(PORTS))
def test_json_line_writes_the_renegotiation_as_the_record_does(name):
    s = _session(name)
    line = report.to_jsonl_line(s, name)
    assert line == json.dumps(report.session_record(s, name), default=str)
    assert json.loads(line)["tls"]["renegotiation_decrypted"] is True


@pytest.mark.skipif(tshark_path() is None, reason="tshark is not installed")
@pytest.mark.parametrize("name", sorted(PORTS))
def test_frames_are_tsharks(name):
    keys = DATA / f"{name}.keys"
    frames = _tshark_frames(name, keys)
    tls = _session(name).tls
    if name in ASKED:
        assert tls.cert_request_at.frame == frames[CERTIFICATE_REQUEST][-1]
        assert tls.client_certificate_at.frame == frames[CERTIFICATE][-1]
    else:
        assert CERTIFICATE_REQUEST not in frames and tls.cert_request_at is None


def test_a_renegotiation_ccs_without_its_keys_stops_the_direction():
    """decrypt_direction alone: an encrypted ChangeCipherSpec with no keys passed for it ends
    the direction there, naming the record; what came before is kept."""
    cr, sr, master = b"c" * 32, b"s" * 32, b"m" * 48
    kb = key_block(master, cr, sr, suite(0xC02B), True, False)
    aead = AESGCM(kb.key)

    def sealed(seq: int, ctype: int, data: bytes, offset: int) -> CipherRecord:
        explicit = seq.to_bytes(8, "big")
        aad = seq.to_bytes(8, "big") + bytes([ctype, 3, 3]) + len(data).to_bytes(2, "big")
        return CipherRecord(ctype, 0x0303, explicit + aead.encrypt(kb.iv + explicit, data, aad),
                            offset)

    records = [CipherRecord(20, 0x0303, b"\x01", 0),
               sealed(0, 22, b"\x14\x00\x00\x0c" + b"f" * 12, 6),
               sealed(1, 22, b"\x01\x00\x00\x00", 100),
               sealed(2, 20, b"\x01", 200)]
    d = decrypt_direction(records, from_client=True, version="TLS1.2", cipher_suite=0xC02B,
                          client_random=cr, server_random=sr,
                          secrets=SessionSecrets(cr, master_secret=master))
    assert [p.offset for p in d.records] == [6, 100]
    assert d.error.startswith("record at stream offset 200: renegotiated keys are not known")


def _first_line_only(name: str, tmp_path: Path) -> Path:
    keys = tmp_path / f"{name}.first.keys"
    keys.write_text("".join((DATA / f"{name}.keys").read_text().splitlines(True)[:2]))
    return keys


def test_without_its_key_line_a_renegotiation_read_under_the_first_keys_counts(tmp_path):
    """The renegotiation's server flight (ServerHello to ServerHelloDone, where a
    CertificateRequest would be) travels under the first keys, and tshark reads it with the
    first key line alone; past its Finished only application data and alerts follow, so
    nothing was asked anywhere though the rest stays encrypted."""
    keys = _first_line_only("norequest", tmp_path)
    frames = _tshark_frames("norequest", keys)
    assert frames[14] == [12, 22] and CERTIFICATE_REQUEST not in frames  # ServerHelloDone
    s = _session("norequest", keys)
    assert "renegotiated keys are not known" in s.decryption.error
    assert s.tls.renegotiation_decrypted and s.tls.renegotiation_unread_at is None
    (v,) = [v for v in s.verdicts if v.code.startswith("client_cert")]
    assert v.code == "client_cert_not_requested"
    assert "renegotiation at frame 18, decrypted" in v.message


def test_a_renegotiation_past_the_missing_keys_is_named(tmp_path):
    """``twice`` with the first key line only: its first renegotiation (frame 18, no request)
    is read, the second (frames 28-34, the one that asked) is under the first
    renegotiation's keys, which the key log lacks: not captured, and that one named."""
    s = _session("twice", _first_line_only("twice", tmp_path))
    assert not s.tls.renegotiation_decrypted and s.tls.renegotiation_unread_at.frame == 28
    (v,) = [v for v in s.verdicts if v.code.startswith("client_cert")]
    assert v.code == "client_cert_not_captured" and v.frame == 28
    assert "renegotiation at frame 18 (decrypted)" in v.message
    assert "renegotiated again (frame 28) under keys the key log does not have" in v.message
    assert v.severity == "warning" and "the key log lacks the line" in v.hint


@pytest.mark.parametrize("name", ["gcm", "tls10", "twice"])
def test_a_renegotiation_past_the_decrypt_limit_is_followed(name):
    """--decrypt-limit bounds the application data decrypted: past it the TLS 1.2 record
    types are in the clear, and the renegotiation's handshake (not application data) is
    still decrypted and read; only the SMTP dialogue stops at the limit."""
    s = _session(name, decrypt_limit=0)
    last = 32 if name == "twice" else 22
    assert s.decryption.c2s.limited and s.decryption.c2s.app_bytes == 0
    assert s.decryption.error is None and s.tls.renegotiation_decrypted
    assert s.tls.cert_request_at.frame == last and s.tls.client_certificate_at.frame == last + 1
    assert "client_cert_not_captured" not in _codes(s)
    assert s.smtp_tls is None


def test_a_read_request_then_a_renegotiation_past_the_keys_says_it_is_unknown(tmp_path):
    """``asked_then_hidden``: the first renegotiation (frames 18-24) asks and gets the
    client's certificate (frame 23); two more follow (28-34, 38-44). Without the key line of
    the second, the third travels under keys the log lacks: the certificate read stays the
    verdict's, and the verdict says a later renegotiation could have changed it."""
    pcap, port = DATA / "asked_then_hidden.pcap", 3745
    lines = (DATA / "asked_then_hidden.keys").read_text().splitlines(True)
    partial = tmp_path / "partial.keys"
    partial.write_text("".join(lines[:3]))  # the first handshake's and the first renegotiation's
    (whole,) = scan(pcap, ports=(port,), keylog=(str(DATA / "asked_then_hidden.keys"),))
    (cut,) = scan(pcap, ports=(port,), keylog=(str(partial),))
    assert whole.tls.renegotiation_unread_at is None
    assert cut.tls.renegotiation_unread_at.frame == 38
    for s in (whole, cut):
        assert (s.tls.cert_request_at.frame, s.tls.client_certificate_at.frame) == (22, 23)
    (read,) = [v for v in whole.verdicts if v.code.startswith("client_cert")]
    (v,) = [v for v in cut.verdicts if v.code.startswith("client_cert")]
    assert (v.code, v.severity, v.frame) == (read.code, read.severity, 23)
    assert "renegotiated again (frame 38) under keys the key log does not have" in v.message
    assert "renegotiated again" not in read.message
