"""fastcap_synth key logs, suite choice and keyed captures, checked without tshark.

tests/test_decrypt_tshark.py proves with tshark that the keys decrypt; here the generator's own
promises are checked: the suite asked for is the one negotiated, each session's key log lines
carry its ClientHello random and the labels its version needs, and the pcapng holds the key log
in a Decryption Secrets Block where editcap puts one.
"""

from __future__ import annotations

import struct

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from fastcap_synth.certs import make_ca, make_leaf
from fastcap_synth.keylogs import (
    TLS12_LABELS,
    TLS13_LABELS,
    foreign_randoms,
    truncated,
    write_big_keylog,
    wrong_secrets,
)
from fastcap_synth.scenarios import (
    KEYED_SCENARIO_NAMES,
    KEYED_SCENARIOS,
    keyed_scenario,
    make_pki,
    write_keyed_captures,
)
from fastcap_synth.smtpgen import TENANT_ATTRIBUTION, converse
from fastcap_synth.suites import TLS12_SUITES, TLS13_SUITES, openssl_conf, suite_handshake
from fastcap_synth.tlsgen import records
from fastcap_synth.writers import BT_DSB, BT_IDB, BT_SHB, SECRETS_TLS_KEYLOG

TLS13_NEEDED = {
    "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    "CLIENT_TRAFFIC_SECRET_0",
    "SERVER_TRAFFIC_SECRET_0",
}


def _labels(lines) -> set[str]:
    return {ln.split(" ")[0] for ln in lines}


def _server_hello_extensions(flights) -> set[int]:
    for from_client, data in flights:
        if from_client:
            continue
        for ctype, frag in records(data):
            if ctype == 22 and frag[0] == 2:
                body = frag[4:]
                off = 34 + 1 + body[34] + 3
                end = off + 2 + int.from_bytes(body[off : off + 2], "big")
                off += 2
                exts = set()
                while off + 4 <= end:
                    exts.add(int.from_bytes(body[off : off + 2], "big"))
                    off += 4 + int.from_bytes(body[off + 2 : off + 4], "big")
                return exts
    raise AssertionError("no ServerHello")


@pytest.mark.parametrize("suite", list(TLS13_SUITES))
@pytest.mark.parametrize("client_cert", [True, False])
def test_tls13_suite_is_negotiated_and_keyed(suite, client_cert):
    h = suite_handshake(suite, client_cert=client_cert)
    assert h.outcome.completed and h.outcome.version == "TLSv1.3"
    assert h.outcome.cipher == suite
    assert TLS13_NEEDED <= _labels(h.keylog)
    assert {ln.split(" ")[1] for ln in h.keylog} == {h.client_random.hex()}
    assert h.outcome.client_cert_requested
    assert (h.outcome.peer_cert_der is not None) == client_cert


@pytest.mark.parametrize(
    "suite",
    ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-ECDSA-AES128-SHA"],
)
def test_tls12_suite_is_negotiated_and_keyed(suite):
    h = suite_handshake(suite)
    assert h.outcome.completed and h.outcome.version == "TLSv1.2"
    assert h.outcome.cipher == suite
    assert len(h.keylog) == 1
    label, random, master = h.keylog[0].split(" ")
    assert label == "CLIENT_RANDOM" and random == h.client_random.hex() and len(master) == 96


def test_cbc_encrypt_then_mac_can_be_refused():
    on = suite_handshake("ECDHE-ECDSA-AES256-SHA384")
    off = suite_handshake("ECDHE-ECDSA-AES256-SHA384", etm=False)
    assert on.outcome.cipher == off.outcome.cipher == "ECDHE-ECDSA-AES256-SHA384"
    assert 22 in _server_hello_extensions(on.flights)  # encrypt_then_mac
    assert 22 not in _server_hello_extensions(off.flights)


def test_unknown_suites_are_refused():
    with pytest.raises(ValueError, match="TLS 1.3 suite"):
        openssl_conf("TLS_AES_128_CCM_8_SHA256")
    with pytest.raises(ValueError, match="TLS 1.2 suite"):
        suite_handshake("RC4-MD5")
    assert set(TLS12_SUITES).isdisjoint(TLS13_SUITES)


def _hkdf_expand_label(secret: bytes, label: str, length: int) -> bytes:
    full = b"tls13 " + label.encode()
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + b"\x00"
    return HKDFExpand(hashes.SHA256(), length, info).derive(secret)


def test_tls13_key_log_opens_the_servers_first_encrypted_record():
    """An independent check of the key log: RFC 8446 section 7.3 by hand, AES-128-GCM."""
    h = suite_handshake("TLS_AES_128_GCM_SHA256")
    secret = next(
        bytes.fromhex(ln.split(" ")[2])
        for ln in h.keylog
        if ln.startswith("SERVER_HANDSHAKE_TRAFFIC_SECRET ")
    )
    wire = b"".join(d for c, d in h.flights if not c)
    off = 0
    while wire[off] != 23:  # skip ServerHello and the compatibility ChangeCipherSpec
        off += 5 + int.from_bytes(wire[off + 3 : off + 5], "big")
    length = int.from_bytes(wire[off + 3 : off + 5], "big")
    header, body = wire[off : off + 5], wire[off + 5 : off + 5 + length]
    key = _hkdf_expand_label(secret, "key", 16)
    iv = _hkdf_expand_label(secret, "iv", 12)  # sequence number 0: the nonce is the IV
    plain = AESGCM(key).decrypt(iv, body, header).rstrip(b"\x00")
    assert plain[-1] == 22  # inner content type: handshake
    assert plain[0] == 8  # EncryptedExtensions


def test_conversation_key_log_belongs_to_its_session():
    pki = make_pki()
    conv = converse(keyed_scenario("keys_tls12_gcm_cert", pki))
    assert conv.client_random is not None and len(conv.client_random) == 32
    assert [ln.split(" ")[:2] for ln in conv.keylog] == [
        ["CLIENT_RANDOM", conv.client_random.hex()]
    ]
    plain = converse(keyed_scenario("keys_tls12_gcm_cert", pki, keylog=False))
    assert plain.keylog == [] and plain.client_random is not None


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    return write_keyed_captures(tmp_path_factory.mktemp("keyed"))


def test_keyed_catalogue_covers_every_suite_with_and_without_certificate(keyed):
    sessions = {s.name: s for s in keyed.sessions}
    assert tuple(sessions) == KEYED_SCENARIO_NAMES
    assert len({s.client_port for s in keyed.sessions}) == len(keyed.sessions)
    combos = {(KEYED_SCENARIOS[n].suite, KEYED_SCENARIOS[n].client_cert) for n in sessions}
    for suite in (*TLS13_SUITES, "ECDHE-ECDSA-AES128-GCM-SHA256",
                  "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-ECDSA-AES128-SHA"):
        assert {(suite, True), (suite, False)} <= combos
    for s in keyed.sessions:
        spec = KEYED_SCENARIOS[s.name]
        assert s.cipher == spec.suite
        assert s.version == ("TLSv1.3" if spec.version == "1.3" else "TLSv1.2")
        assert (s.client_cert_der is not None) == spec.client_cert
        want = TLS13_NEEDED if spec.version == "1.3" else {"CLIENT_RANDOM"}
        assert want <= _labels(s.keylog)
        assert {ln.split(" ")[1] for ln in s.keylog} == {s.client_random.hex()}
    assert keyed.ca_file.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    denied = sessions["keys_tls13_relay_denied"]
    assert denied.version == "TLSv1.3" and denied.client_cert_der is None
    assert ("RCPT TO:<it@contoso.com>", TENANT_ATTRIBUTION) in denied.commands


def _blocks(path) -> list[tuple[int, bytes]]:
    """(block type, body) of every block of a little-endian pcapng."""
    data = path.read_bytes()
    out, off = [], 0
    while off + 12 <= len(data):
        btype, blen = struct.unpack_from("<II", data, off)
        out.append((btype, data[off + 8 : off + blen - 4]))
        off += blen
    return out


def test_key_log_file_and_dsb_hold_the_same_bytes(keyed):
    keys = keyed.keylog.read_bytes()
    lines = keys.decode().splitlines()
    assert lines == [ln for s in keyed.sessions for ln in s.keylog]
    blocks = _blocks(keyed.pcapng)
    # As editcap --inject-secrets writes it: right after the section header, before any IDB.
    assert [t for t, _ in blocks[:3]] == [BT_SHB, BT_DSB, BT_IDB]
    stype, slen = struct.unpack_from("<II", blocks[1][1])
    assert stype == SECRETS_TLS_KEYLOG and slen == len(keys)
    assert blocks[1][1][8 : 8 + slen] == keys
    assert sum(t == BT_DSB for t, _ in blocks) == 1


def test_wrong_and_foreign_key_logs_keep_what_they_promise(keyed):
    lines = [ln for s in keyed.sessions for ln in s.keylog]
    wrong, foreign = wrong_secrets(lines), foreign_randoms(lines)
    assert len(wrong) == len(foreign) == len(lines)
    for orig, w, f in zip(lines, wrong, foreign, strict=True):
        (lo, ro, so), (lw, rw, sw), (lf, rf, sf) = (x.split(" ") for x in (orig, w, f))
        assert (lw, rw) == (lo, ro) and sw != so and len(sw) == len(so)
        assert (lf, sf) == (lo, so) and rf != ro and len(rf) == 64
    randoms = {s.client_random.hex() for s in keyed.sessions}
    assert randoms.isdisjoint(ln.split(" ")[1] for ln in foreign)


def test_wrong_secrets_do_not_open_the_record():
    h = suite_handshake("TLS_AES_128_GCM_SHA256")
    line = next(ln for ln in wrong_secrets(h.keylog) if ln.startswith("SERVER_HANDSHAKE"))
    secret = bytes.fromhex(line.split(" ")[2])
    wire = b"".join(d for c, d in h.flights if not c)
    off = 0
    while wire[off] != 23:
        off += 5 + int.from_bytes(wire[off + 3 : off + 5], "big")
    length = int.from_bytes(wire[off + 3 : off + 5], "big")
    key = _hkdf_expand_label(secret, "key", 16)
    iv = _hkdf_expand_label(secret, "iv", 12)
    with pytest.raises(InvalidTag):
        AESGCM(key).decrypt(iv, wire[off + 5 : off + 5 + length], wire[off : off + 5])


def test_truncated_key_log_cuts_only_the_last_line(keyed):
    data = keyed.keylog.read_bytes()
    cut = truncated(data, 40)
    whole = data.split(b"\n")[:-1]
    assert cut.split(b"\n")[:-1] == whole[:-1]
    assert cut.split(b"\n")[-1] == whole[-1][:40]
    with pytest.raises(ValueError):
        truncated(data, 10_000)


def test_big_key_log_streams_sessions_around_the_included_ones(tmp_path):
    include = ["CLIENT_RANDOM " + "ab" * 32 + " " + "cd" * 48]
    path = tmp_path / "big.keys"
    size = 6_000_000
    written = write_big_keylog(path, size, include=include, seed=1)
    data = path.read_bytes()
    assert written == len(data) and size - 400 < len(data) <= size + 200
    lines = data.decode("ascii").split("\n")
    assert lines[0].startswith("#") and lines[-1] == ""
    body = lines[1:-1]
    assert body[-1] == include[0]
    middle = body.index(include[0])
    assert 0.4 < middle / len(body) < 0.6
    for line in body[:: max(1, len(body) // 5000)]:
        label, random, secret = line.split(" ")
        assert label in TLS12_LABELS + TLS13_LABELS
        assert len(random) == 64 and len(secret) == (96 if label == "CLIENT_RANDOM" else 64)
        bytes.fromhex(random + secret)
    assert {ln.split(" ")[0] for ln in body} == set(TLS12_LABELS + TLS13_LABELS)


@pytest.mark.parametrize("suite", ["TLS_AES_256_GCM_SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305"])
def test_server_not_asking_and_server_refusing(suite):
    root, rogue = make_ca("Asking Root"), make_ca("Rogue Root")
    server = make_leaf(root, "contoso.com", sans=["contoso.com"])
    unasked = suite_handshake(
        suite,
        client_auth="none",
        server=server,
        client=make_leaf(root, "mail.fabrikam.com", sans=["mail.fabrikam.com"]),
        client_ca=root,
    )
    assert unasked.outcome.completed and not unasked.outcome.client_cert_requested
    assert unasked.outcome.peer_cert_der is None and unasked.app_data
    refused = suite_handshake(
        suite,
        client_auth="required",
        server=server,
        client=make_leaf(rogue, "mail.fabrikam.com", sans=["mail.fabrikam.com"]),
        client_ca=root,
    )
    assert not refused.outcome.completed and refused.outcome.alert_by == "server"
    assert refused.outcome.cipher == suite and refused.keylog and refused.app_data == ()
