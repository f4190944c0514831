"""fastcap.proto.tls.keyschedule and .decrypt: RFC 8448 vectors, real OpenSSL sessions in both
directions (TLS 1.3 with its three AEADs, TLS 1.2 GCM, ChaCha20 and CBC), hand-built records for
what OpenSSL will not send (MAC-then-encrypt, KeyUpdate, TLS 1.0), and hostile input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from functools import lru_cache

import pytest
from cryptography.hazmat.primitives import hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from fastcap.proto.tls.decrypt import CipherRecord, Decrypted, decrypt_direction
from fastcap.proto.tls.keylog import KeyLog, SessionSecrets
from fastcap.proto.tls.keyschedule import (
    SUITES,
    hash_of,
    hkdf_expand_label,
    key_block,
    next_traffic_secret,
    prf,
    suite,
    traffic_key_iv,
)
from fastcap_synth import certs, tlsgen

H = bytes.fromhex

# ---- RFC 8448 section 3 ("Simple 1-RTT Handshake"), TLS_AES_128_GCM_SHA256 ----
CLIENT_HS = H("b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21")
SERVER_HS = H("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")
CLIENT_AP = H("9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5")
SERVER_AP = H("a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643")
# "{server} send handshake record": EncryptedExtensions..Finished, 679 octets on the wire.
SERVER_FLIGHT = H(
    "17030302a2d1ff334a56f5bff6594a07cc87b580233f500f45e489e7f33af35edf7869fcf40aa40aa2b8ea73f8"
    "48a7ca07612ef9f945cb960b4068905123ea78b111b429ba9191cd05d2a389280f526134aadc7fc78c4b729df8"
    "28b5ecf7b13bd9aefb0e57f271585b8ea9bb355c7c79020716cfb9b1183ef3ab20e37d57a6b9d7477609aee6e1"
    "22a4cf51427325250c7d0e509289444c9b3a648f1d71035d2ed65b0e3cdd0cbae8bf2d0b227812cbb360987255"
    "cc744110c453baa4fcd610928d809810e4b7ed1a8fd991f06aa6248204797e36a6a73b70a2559c09ead686945b"
    "a246ab66e5edd8044b4c6de3fcf2a89441ac66272fd8fb330ef8190579b3684596c960bd596eea520a56a8d650"
    "f563aad27409960dca63d3e688611ea5e22f4415cf9538d51a200c27034272968a264ed6540c84838d89f72c24"
    "461aad6d26f59ecaba9acbbb317b66d902f4f292a36ac1b639c637ce343117b659622245317b49eeda0c6258f1"
    "00d7d961ffb138647e92ea330faeea6dfa31c7a84dc3bd7e1b7a6c7178af36879018e3f252107f243d243dc733"
    "9d5684c8b0378bf30244da8c87c843f5e56eb4c5e8280a2b48052cf93b16499a66db7cca71e4599426f7d461e6"
    "6f99882bd89fc50800becca62d6c74116dbd2972fda1fa80f85df881edbe5a37668936b335583b599186dc5c69"
    "18a396fa48a181d6b6fa4f9d62d513afbb992f2b992f67f8afe67f76913fa388cb5630c8ca01e0c65d11c66a1e"
    "2ac4c85977b7c7a6999bbf10dc35ae69f5515614636c0b9b68c19ed2e31c0b3b66763038ebba42f3b38edc0399"
    "f3a9f23faa63978c317fc9fa66a73f60f0504de93b5b845e275592c12335ee340bbc4fddd502784016e4b3be7e"
    "f04dda49f4b440a30cb5d2af939828fd4ae3794e44f94df5a631ede42c1719bfdabf0253fe5175be898e750edc"
    "53370d2b"
)
SERVER_FINISHED_VERIFY = H("9b9b141d906337fbd2cbdce71df4deda4ab42c309572cb7fffee5454b78f0718")
# "{client} send handshake record": the client Finished, 58 octets.
CLIENT_FINISHED_RECORD = H(
    "170303003575ec4dc238cce60b298044a71e219c56cc77b0517fe9b93c7a4bfc44d87f38f80338ac98fc46de"
    "b384bd1caeacab6867d726c40546"
)
CLIENT_FINISHED = H("14000020a8ec436d677634ae525ac1fcebe11a039ec17694fac6e98527b642f2edd5ce61")
# "{client} send application_data record": the 50 octets 00..31 under the client traffic keys.
CLIENT_APP_RECORD = H(
    "1703030043a23f7054b62c94d0affafe8228ba55cbefacea42f914aa66bcab3f2b9819a8a5b46b395bd54a9a"
    "20441e2b62974e1f5a6292a2977014bd1e3deae63aeebb21694915e4"
)


def split_records(stream: bytes) -> list[CipherRecord]:
    out, off = [], 0
    while off + 5 <= len(stream):
        n = int.from_bytes(stream[off + 3:off + 5], "big")
        out.append(CipherRecord(stream[off], int.from_bytes(stream[off + 1:off + 3], "big"),
                                stream[off + 5:off + 5 + n], off))
        off += 5 + n
    return out


def handshake_messages(dec: Decrypted) -> list[tuple[int, bytes]]:
    buf = b"".join(r.data for r in dec.records if r.content_type == 22)
    out, off = [], 0
    while off + 4 <= len(buf):
        n = int.from_bytes(buf[off + 1:off + 4], "big")
        out.append((buf[off], buf[off + 4:off + 4 + n]))
        off += 4 + n
    return out


def app_data(dec: Decrypted) -> bytes:
    return b"".join(r.data for r in dec.records if r.content_type == 23)


def test_rfc8448_traffic_keys_and_ivs():
    """RFC 8448 section 3: "derive write traffic keys" for the four traffic secrets."""
    s = SUITES[0x1301]
    assert traffic_key_iv(SERVER_HS, s) == (H("3fce516009c21727d0f2e4e86ee403bc"),
                                            H("5d313eb2671276ee13000b30"))
    assert traffic_key_iv(CLIENT_HS, s) == (H("dbfaa693d1762c5b666af5d950258d01"),
                                            H("5bd3c71b836e0b76bb73265f"))
    assert traffic_key_iv(SERVER_AP, s) == (H("9f02283b6c9c07efc26bb9f2ac92e356"),
                                            H("cf782b88dd83549aadf1e984"))
    assert traffic_key_iv(CLIENT_AP, s) == (H("17422dda596ed5d9acd890e3c63f5051"),
                                            H("5b78923dee08579033e523d9"))


def test_rfc8448_hkdf_expand_label_with_context():
    """RFC 8448 section 3: "derive secret tls13 s hs traffic" is HKDF-Expand-Label of the
    handshake secret over the ClientHello..ServerHello transcript hash."""
    handshake_secret = H("1dc826e93606aa6fdc0aadc12f741b01046aa6b99f691ed221a9f0ca043fbeac")
    transcript = H("860c06edc07858ee8e78f0e7428c58edd6b43f2ca3e6e95f02ed063cf0e1cad8")
    assert hkdf_expand_label(handshake_secret, "s hs traffic", transcript, 32) == SERVER_HS
    assert hkdf_expand_label(handshake_secret, "c hs traffic", transcript, 32) == CLIENT_HS
    # "{server} calculate finished": the finished key from the server handshake secret.
    assert hkdf_expand_label(SERVER_HS, "finished", b"", 32) == H(
        "008d3b66f816ea559f96b537e885c31fc068bf492c652f01f288a1d8cdc19fc8")


RFC_SECRETS = SessionSecrets(bytes(32), client_handshake=CLIENT_HS, server_handshake=SERVER_HS,
                             client_traffic0=CLIENT_AP, server_traffic0=SERVER_AP)


def _rfc(records: bytes, from_client: bool, secrets: SessionSecrets = RFC_SECRETS) -> Decrypted:
    clear = bytes.fromhex("16030300040e000000")  # a stand-in hello record in the clear
    return decrypt_direction(split_records(clear + records), from_client=from_client,
                             version="TLS1.3", cipher_suite=0x1301, client_random=bytes(32),
                             server_random=bytes(32), secrets=secrets)


def test_rfc8448_server_flight_decrypts_to_its_four_messages():
    """RFC 8448 section 3: the server's protected record holds EncryptedExtensions,
    Certificate, CertificateVerify and the Finished whose verify_data the RFC prints."""
    dec = _rfc(SERVER_FLIGHT, from_client=False)
    assert dec.error is None
    assert [(r.content_type, r.offset) for r in dec.records] == [(22, 9)]
    msgs = handshake_messages(dec)
    assert [t for t, _ in msgs] == [8, 11, 15, 20]
    assert msgs[-1][1] == SERVER_FINISHED_VERIFY


def test_rfc8448_client_switches_to_traffic_keys_after_its_finished():
    """Both records of the client have sequence number 0: the Finished under the handshake
    keys, the application data under the traffic keys (RFC 8448 section 3)."""
    dec = _rfc(CLIENT_FINISHED_RECORD + CLIENT_APP_RECORD, from_client=True)
    assert dec.error is None
    assert [r.content_type for r in dec.records] == [22, 23]
    assert dec.records[0].data == CLIENT_FINISHED
    assert dec.records[1].data == bytes(range(50)) and dec.app_bytes == 50
    assert dec.records[1].offset == 9 + len(CLIENT_FINISHED_RECORD)


def test_rfc8448_missing_traffic_secret_is_named():
    partial = SessionSecrets(bytes(32), client_handshake=CLIENT_HS)
    dec = _rfc(CLIENT_FINISHED_RECORD + CLIENT_APP_RECORD, from_client=True, secrets=partial)
    assert [r.data for r in dec.records] == [CLIENT_FINISHED]
    assert dec.error == "record at stream offset 9: no CLIENT_TRAFFIC_SECRET_0 for this session"
    dec = _rfc(SERVER_FLIGHT, from_client=False, secrets=partial)
    assert dec.records == ()
    assert dec.error == ("record at stream offset 9: no SERVER_HANDSHAKE_TRAFFIC_SECRET "
                         "for this session")


def test_rfc8448_flipped_tag_byte_and_wrong_keys_fail_at_that_record():
    flipped = bytearray(CLIENT_FINISHED_RECORD + CLIENT_APP_RECORD)
    flipped[-1] ^= 1
    dec = _rfc(bytes(flipped), from_client=True)
    assert [r.data for r in dec.records] == [CLIENT_FINISHED]
    offset = 9 + len(CLIENT_FINISHED_RECORD)
    assert dec.error == f"record at stream offset {offset}: authentication failed"
    swapped = SessionSecrets(bytes(32), client_handshake=SERVER_HS, server_handshake=CLIENT_HS)
    dec = _rfc(SERVER_FLIGHT, from_client=False, secrets=swapped)
    assert dec.records == () and dec.error == "record at stream offset 9: authentication failed"


def test_rfc8448_truncated_record_is_an_error_not_an_exception():
    short = CLIENT_FINISHED_RECORD[:5] + CLIENT_FINISHED_RECORD[5:20]  # header says 53 bytes
    dec = _rfc(short, from_client=True)
    assert dec.records == () and "stream offset 9" in dec.error
    tiny = bytes.fromhex("1703030004") + b"abcd"
    dec = _rfc(tiny, from_client=True)
    assert dec.error == "record at stream offset 9: record too short for its tag"


# ---- hand-built TLS 1.3 records: KeyUpdate, Finished split over two records, padding ----

def _seal13(secret: bytes, seq: int, inner_type: int, data: bytes, pad: int = 0) -> bytes:
    s = SUITES[0x1301]
    key, iv = traffic_key_iv(secret, s)
    inner = data + bytes([inner_type]) + bytes(pad)
    header = bytes([23, 3, 3]) + (len(inner) + 16).to_bytes(2, "big")
    nonce = (int.from_bytes(iv, "big") ^ seq).to_bytes(12, "big")
    return header + AESGCM(key).encrypt(nonce, inner, header)


def test_finished_split_over_records_then_key_update_then_padded_data():
    hs, ap = b"h" * 32, b"a" * 32
    finished = b"\x14\x00\x00\x20" + b"F" * 32
    key_update = b"\x18\x00\x00\x01\x00"
    updated = next_traffic_secret(ap, SUITES[0x1301])
    wire = (_seal13(hs, 0, 22, b"\x08\x00\x00\x00" + finished[:10])
            + _seal13(hs, 1, 22, finished[10:])
            + _seal13(ap, 0, 23, b"before update")
            + _seal13(ap, 1, 22, key_update)
            + _seal13(updated, 0, 23, b"after update", pad=40))
    secrets = SessionSecrets(bytes(32), server_handshake=hs, server_traffic0=ap)
    dec = decrypt_direction(split_records(wire), from_client=False, version="TLS1.3",
                            cipher_suite=0x1301, client_random=bytes(32),
                            server_random=bytes(32), secrets=secrets)
    assert dec.error is None
    assert [t for t, _ in handshake_messages(dec)] == [8, 20, 24]
    assert app_data(dec) == b"before updateafter update"
    assert updated == hkdf_expand_label(ap, "traffic upd", b"", 32)


def test_client_early_data_before_the_handshake_keys_is_skipped():
    """0-RTT: early data and EndOfEarlyData go under the early traffic key, then the client's
    Finished under its handshake key; the first are skipped, the rest is read."""
    early, hs, ap = b"e" * 32, b"h" * 32, b"a" * 32
    wire = (_seal13(early, 0, 23, b"EHLO early\r\n")
            + _seal13(early, 1, 22, b"\x05\x00\x00\x00")  # EndOfEarlyData
            + _seal13(hs, 0, 22, b"\x14\x00\x00\x20" + b"F" * 32)
            + _seal13(ap, 0, 23, b"EHLO x\r\n"))
    kw = dict(from_client=True, version="TLS1.3", cipher_suite=0x1301,
              client_random=bytes(32), server_random=bytes(32))
    secrets = SessionSecrets(bytes(32), client_handshake=hs, client_traffic0=ap)
    dec = decrypt_direction(split_records(wire), secrets=secrets, **kw)
    assert dec.error is None
    assert [t for t, _ in handshake_messages(dec)] == [20]
    assert app_data(dec) == b"EHLO x\r\n"
    # the server's records are never early data: a failure there stands
    dec = decrypt_direction(split_records(wire), secrets=SessionSecrets(
        bytes(32), server_handshake=hs, server_traffic0=ap), **{**kw, "from_client": False})
    assert dec.error == "record at stream offset 0: authentication failed"
    # nothing authenticates under the handshake key (wrong keys): the first failure stands
    wrong = SessionSecrets(bytes(32), client_handshake=b"w" * 32, client_traffic0=ap)
    dec = decrypt_direction(split_records(wire), secrets=wrong, **kw)
    assert dec.error == "record at stream offset 0: authentication failed"
    assert dec.records == ()


def test_all_padding_record_is_an_error():
    wire = _seal13(b"h" * 32, 0, 0, b"", pad=5)
    dec = decrypt_direction(split_records(wire), from_client=False, version="TLS1.3",
                            cipher_suite=0x1301, client_random=bytes(32),
                            server_random=bytes(32),
                            secrets=SessionSecrets(bytes(32), server_handshake=b"h" * 32))
    assert dec.error == "record at stream offset 0: no inner content type (all padding)"


def test_application_data_stops_at_the_limit():
    hs, ap = b"h" * 32, b"a" * 32
    wire = _seal13(hs, 0, 22, b"\x14\x00\x00\x02ok") + b"".join(
        _seal13(ap, i, 23, bytes([65 + i]) * 100) for i in range(3))
    secrets = SessionSecrets(bytes(32), server_handshake=hs, server_traffic0=ap)
    kw = dict(from_client=False, version="TLS1.3", cipher_suite=0x1301,
              client_random=bytes(32), server_random=bytes(32), secrets=secrets)
    dec = decrypt_direction(split_records(wire), app_limit=150, **kw)
    assert dec.limited and dec.error is None and dec.app_bytes == 150
    assert app_data(dec) == b"A" * 100 + b"B" * 50
    dec = decrypt_direction(split_records(wire), app_limit=300, **kw)
    assert not dec.limited and dec.app_bytes == 300


# ---- the suite table and the TLS 1.2 PRF ----

def test_suite_table_covers_the_suites_mail_servers_use():
    assert {c for c in (0x1301, 0x1302, 0x1303, 0x1304, 0x1305) if SUITES[c].tls13} == {
        0x1301, 0x1302, 0x1303, 0x1304, 0x1305}
    assert (SUITES[0x1302].key_len, SUITES[0x1302].prf) == (32, "SHA384")
    assert (SUITES[0x1305].cipher, SUITES[0x1305].tag_len) == ("ccm", 8)
    gcm = SUITES[0xC030]  # ECDHE-RSA-AES256-GCM-SHA384
    assert (gcm.cipher, gcm.key_len, gcm.fixed_iv_len, gcm.explicit_nonce_len, gcm.prf) == (
        "gcm", 32, 4, 8, "SHA384")
    cha = SUITES[0xCCA8]
    assert (cha.cipher, cha.fixed_iv_len, cha.explicit_nonce_len) == ("chacha20", 12, 0)
    cbc = SUITES[0x0035]  # AES256-SHA: HMAC-SHA1, SHA-256 PRF
    assert (cbc.cipher, cbc.mac, cbc.mac_len, cbc.prf) == ("cbc", "SHA", 20, "SHA256")
    assert (SUITES[0xC028].mac, SUITES[0xC028].prf) == ("SHA384", "SHA384")
    assert SUITES[0xC09C].cipher == "ccm" and SUITES[0xC0A0].tag_len == 8
    assert suite(0x0005) is None and suite(0xC012) is None  # RC4, 3DES: not decrypted
    assert suite(0xBEEF) is None


def test_prf_is_p_hash_as_defined():
    """P_SHA256 (RFC 5246 5) computed by hand with the stdlib for one block and a half."""
    import hashlib
    import hmac as std

    secret, seed = b"s" * 48, b"label" + b"r" * 64
    a1 = std.new(secret, seed, hashlib.sha256).digest()
    a2 = std.new(secret, a1, hashlib.sha256).digest()
    want = (std.new(secret, a1 + seed, hashlib.sha256).digest()
            + std.new(secret, a2 + seed, hashlib.sha256).digest())[:48]
    assert prf(secret, b"label", b"r" * 64, 48) == want
    legacy = prf(secret, b"label", b"r" * 64, 48, legacy=True)
    assert len(legacy) == 48 and legacy != want


# ---- real OpenSSL sessions ----

TLS13_SUITES = {
    0x1301: "TLS_AES_128_GCM_SHA256",
    0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
    0x1304: "TLS_AES_128_CCM_SHA256",
    0x1305: "TLS_AES_128_CCM_8_SHA256",
}
CLIENT_SENDS = [b"EHLO mail.fabrikam.com\r\n", b"MAIL FROM:<a@fabrikam.com>\r\n",
                b"RCPT TO:<b@contoso.com>\r\n"]
SERVER_SENDS = [b"250-mx.contoso.com\r\n250 STARTTLS\r\n", b"250 2.1.0 Sender OK\r\n",
                b"550 5.7.64 TenantAttribution; Relay Access Denied\r\n"]


@lru_cache(maxsize=1)
def _pki():
    root = certs.make_ca("Decrypt Test Root")
    return (root, certs.make_leaf(root, "mx.contoso.com", key="rsa2048"),
            certs.make_leaf(root, "mail.fabrikam.com"), certs.make_leaf(root, "mx.contoso.com"))


def generate(version: str, ciphers: str | None, client_cert: bool, ec: bool = False) -> dict:
    """One session: the wire bytes of each direction, the key log text, what was sent.
    The server's certificate is RSA, or EC with ``ec`` (for the ECDSA suites)."""
    root, rsa_cert, client_cert_obj, ec_cert = _pki()
    server_cert = ec_cert if ec else rsa_cert
    s = tlsgen.server_context(server_cert, client_auth="optional", client_cas=[root],
                              min_version=version, max_version=version)
    c = tlsgen.client_context(cert=client_cert_obj if client_cert else None,
                              min_version=version, max_version=version)
    if ciphers:
        s.set_ciphers(ciphers)
        c.set_ciphers(ciphers)
    with tempfile.TemporaryDirectory() as tmp:
        c.keylog_filename = os.path.join(tmp, "keys.log")
        sess = tlsgen.handshake(s, c)
        assert sess.outcome.completed, sess.outcome
        for a, b in zip(CLIENT_SENDS, SERVER_SENDS, strict=True):
            sess.send(True, a)
            sess.send(False, b)
        with open(c.keylog_filename) as f:
            keylog = f.read()
    streams = {True: b"", False: b""}
    for from_client, data in sess.flights:
        streams[from_client] += data
    return {"client": streams[True].hex(), "server": streams[False].hex(), "keylog": keylog,
            "cipher": sess.client.cipher()[0],
            "client_der": client_cert_obj.der.hex(), "server_der": server_cert.der.hex()}


def _dump(version: str, ciphers: str | None, client_cert: bool) -> None:
    print(json.dumps(generate(version, ciphers, client_cert)))


def _generate_with_tls13_suite(name: str, client_cert: bool) -> dict:
    """Python cannot choose TLS 1.3 suites; an OpenSSL config in a child process can."""
    with tempfile.TemporaryDirectory() as tmp:
        conf = os.path.join(tmp, "openssl.cnf")
        with open(conf, "w") as f:
            f.write("openssl_conf = init\n[init]\nssl_conf = ssl\n[ssl]\n"
                    "system_default = sys\n[sys]\nCiphersuites = " + name + "\n")
        code = f"import tests.test_tls_decrypt as t; t._dump('1.3', None, {client_cert})"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env={**os.environ, "OPENSSL_CONF": conf}, check=True,
                              cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return json.loads(proc.stdout)


def _hello_random_and_suite(stream: bytes) -> tuple[bytes, int]:
    random = stream[11:43]  # record header 5, handshake header 4, version 2
    sid = stream[43]
    return random, int.from_bytes(stream[44 + sid:46 + sid], "big")


def _decrypt_both(gen: dict, version: str, etm: bool = False,
                  keylog: KeyLog | None = None) -> tuple[Decrypted, Decrypted, int]:
    client, server = H(gen["client"]), H(gen["server"])
    client_random, _ = _hello_random_and_suite(client)
    server_random, code = _hello_random_and_suite(server)
    if keylog is None:
        keylog = KeyLog()
        keylog.add_bytes(gen["keylog"].encode(), "keys.log")
    secrets = keylog.lookup(client_random)
    assert secrets is not None
    out = [decrypt_direction(split_records(stream), from_client=fc, version=version,
                             cipher_suite=code, client_random=client_random,
                             server_random=server_random, secrets=secrets,
                             encrypt_then_mac=etm)
           for fc, stream in ((True, client), (False, server))]
    return out[0], out[1], code


@pytest.mark.parametrize("code", sorted(TLS13_SUITES))
@pytest.mark.parametrize("client_cert", [True, False])
def test_tls13_openssl_session_both_directions(code, client_cert):
    gen = (_generate_with_tls13_suite(TLS13_SUITES[code], client_cert) if code != 0x1302
           else generate("1.3", None, client_cert))
    cdec, sdec, negotiated = _decrypt_both(gen, "TLS1.3")
    assert negotiated == code
    assert cdec.error is None and sdec.error is None
    assert app_data(cdec) == b"".join(CLIENT_SENDS)
    assert app_data(sdec) == b"".join(SERVER_SENDS)
    server_msgs = handshake_messages(sdec)
    assert [t for t, _ in server_msgs][:6] == [8, 13, 11, 15, 20, 4]  # EE CR Cert CV Fin NST
    assert H(gen["server_der"]) in server_msgs[2][1]
    client_msgs = handshake_messages(cdec)
    if client_cert:
        assert [t for t, _ in client_msgs] == [11, 15, 20]
        assert H(gen["client_der"]) in client_msgs[0][1]
    else:  # the empty Certificate a TLS 1.3 client sends when asked and it has none
        assert client_msgs[0] == (11, b"\x00\x00\x00\x00")
        assert [t for t, _ in client_msgs] == [11, 20]


TLS12_CASES = {
    "ECDHE-RSA-AES128-GCM-SHA256": 0xC02F,
    "ECDHE-RSA-AES256-GCM-SHA384": 0xC030,
    "ECDHE-RSA-CHACHA20-POLY1305": 0xCCA8,
    "ECDHE-RSA-AES128-SHA": 0xC013,
    "AES256-SHA256": 0x003D,
    "ECDHE-RSA-AES256-SHA384": 0xC028,
    "ECDHE-ECDSA-AES128-CCM": 0xC0AC,
    "ECDHE-ECDSA-AES256-CCM8": 0xC0AF,
}


@pytest.mark.parametrize("ciphers", sorted(TLS12_CASES))
def test_tls12_openssl_session_both_directions(ciphers):
    gen = generate("1.2", ciphers, client_cert=True, ec="ECDSA" in ciphers)
    etm = SUITES[TLS12_CASES[ciphers]].cipher == "cbc"  # OpenSSL negotiates RFC 7366 for CBC
    cdec, sdec, code = _decrypt_both(gen, "TLS1.2", etm=etm)
    assert code == TLS12_CASES[ciphers]
    assert cdec.error is None and sdec.error is None
    assert app_data(cdec) == b"".join(CLIENT_SENDS)
    assert app_data(sdec) == b"".join(SERVER_SENDS)
    # Both Finished messages are the first encrypted records: 12 bytes of verify_data.
    assert [(t, len(b)) for t, b in handshake_messages(cdec)] == [(20, 12)]
    assert [(t, len(b)) for t, b in handshake_messages(sdec)][-1] == (20, 12)
    if etm:  # the same records read as MAC-then-encrypt cannot pass
        cdec, _, _ = _decrypt_both(gen, "TLS1.2", etm=False)
        assert cdec.records == () and cdec.error is not None


@pytest.mark.parametrize("version,ciphers", [("1.3", None), ("1.2", "ECDHE-RSA-AES128-SHA"),
                                             ("1.2", "ECDHE-RSA-CHACHA20-POLY1305")])
def test_a_flipped_byte_in_a_real_session_stops_at_that_record(version, ciphers):
    gen = generate(version, ciphers, client_cert=True)
    etm = ciphers == "ECDHE-RSA-AES128-SHA"
    good, _, _ = _decrypt_both(gen, "TLS" + version, etm=etm)
    assert good.error is None and len(good.records) >= 3
    stream = bytearray(H(gen["client"]))
    for victim in good.records[1:]:
        body = len(split_records(bytes(stream[victim.offset:]))[0].body)
        for pos in (5, 5 + body // 2, 4 + body):  # first, middle and last byte of the body
            mutated = bytearray(stream)
            mutated[victim.offset + pos] ^= 0x40
            bad, _, _ = _decrypt_both({**gen, "client": mutated.hex()}, "TLS" + version,
                                      etm=etm)
            assert bad.error is not None
            assert bad.error.startswith(f"record at stream offset {victim.offset}: ")
            kept = [r for r in good.records if r.offset < victim.offset]
            assert list(bad.records) == kept


def test_tls12_keys_of_another_session_fail_cleanly():
    one = generate("1.2", "ECDHE-RSA-AES128-GCM-SHA256", client_cert=False)
    other = generate("1.2", "ECDHE-RSA-AES128-GCM-SHA256", client_cert=False)
    wrong = KeyLog()
    cr_other, _ = _hello_random_and_suite(H(other["client"]))
    cr_one, _ = _hello_random_and_suite(H(one["client"]))
    # The other session's master secret, filed under this session's random.
    wrong.add_bytes(other["keylog"].replace(cr_other.hex(), cr_one.hex()).encode(), "wrong.log")
    cdec, sdec, _ = _decrypt_both(one, "TLS1.2", keylog=wrong)
    for dec in (cdec, sdec):
        assert dec.records == ()
        assert dec.error.endswith(": authentication failed")


def test_tls12_without_master_secret_names_the_label():
    gen = generate("1.2", "ECDHE-RSA-AES128-GCM-SHA256", client_cert=False)
    client, server = H(gen["client"]), H(gen["server"])
    recs = split_records(client)
    ccs = next(r for r in recs if r.content_type == 20)
    dec = decrypt_direction(recs, from_client=True, version="TLS1.2", cipher_suite=0xC02F,
                            client_random=client[11:43], server_random=server[11:43],
                            secrets=SessionSecrets(client[11:43], client_handshake=b"x" * 32))
    assert dec.error == f"record at stream offset {ccs.offset}: no CLIENT_RANDOM for this session"


# ---- hand-built TLS 1.2/1.0 CBC records: MAC-then-encrypt, bad padding, bad MAC ----

MASTER, CR, SR = b"m" * 48, b"c" * 32, b"s" * 32
CBC = SUITES[0x002F]  # AES128-SHA


def _cbc_record(seq: int, data: bytes, *, version: int = 0x0303, iv: bytes | None = None,
                pad_byte: int | None = None, break_mac: bool = False) -> bytes:
    kb = key_block(MASTER, CR, SR, CBC, True, legacy=version != 0x0303)
    h = hmac.HMAC(kb.mac_key, hash_of("SHA"))
    h.update(seq.to_bytes(8, "big") + bytes([23]) + version.to_bytes(2, "big")
             + len(data).to_bytes(2, "big") + data)
    mac = h.finalize()
    if break_mac:
        mac = bytes([mac[0] ^ 1]) + mac[1:]
    body = data + mac
    pad = 15 - len(body) % 16
    body += bytes([pad if pad_byte is None else pad_byte]) * pad + bytes([pad])
    explicit = iv is None
    iv = iv if iv is not None else os.urandom(16)
    enc = Cipher(algorithms.AES(kb.key), modes.CBC(iv)).encryptor()
    ct = enc.update(body) + enc.finalize()
    frag = (iv + ct) if explicit else ct
    return bytes([23]) + version.to_bytes(2, "big") + len(frag).to_bytes(2, "big") + frag


def _cbc_decrypt(wire: bytes, version: str = "TLS1.2") -> Decrypted:
    ccs = b"\x14\x03\x03\x00\x01\x01"
    return decrypt_direction(split_records(ccs + wire), from_client=True, version=version,
                             cipher_suite=0x002F, client_random=CR, server_random=SR,
                             secrets=SessionSecrets(CR, master_secret=MASTER))


def test_mac_then_encrypt_cbc_records():
    wire = _cbc_record(0, b"EHLO a\r\n") + _cbc_record(1, b"x" * 32)
    dec = _cbc_decrypt(wire)
    assert dec.error is None and app_data(dec) == b"EHLO a\r\n" + b"x" * 32


def test_mac_then_encrypt_bad_padding_and_bad_mac():
    first = _cbc_record(0, b"fine")
    dec = _cbc_decrypt(first + _cbc_record(1, b"abc", pad_byte=7))
    assert app_data(dec) == b"fine"
    assert dec.error == f"record at stream offset {6 + len(first)}: bad CBC padding"
    dec = _cbc_decrypt(_cbc_record(0, b"abc", break_mac=True))
    assert dec.error == "record at stream offset 6: MAC check failed"
    dec = _cbc_decrypt(b"\x17\x03\x03\x00\x11" + b"q" * 17)
    assert dec.error == ("record at stream offset 6: record length is not a whole number of "
                         "CBC blocks")
    dec = _cbc_decrypt(b"\x17\x03\x03\x00\x10" + b"q" * 16)
    assert dec.error == "record at stream offset 6: record too short for an IV and a CBC block"


def test_tls10_cbc_chains_the_iv_across_records():
    kb = key_block(MASTER, CR, SR, CBC, True, legacy=True)
    first = _cbc_record(0, b"one", version=0x0301, iv=kb.iv)
    second = _cbc_record(1, b"two", version=0x0301, iv=first[-16:])
    ccs = b"\x14\x03\x01\x00\x01\x01"
    dec = decrypt_direction(split_records(ccs + first + second), from_client=True,
                            version="TLS1.0", cipher_suite=0x002F, client_random=CR,
                            server_random=SR, secrets=SessionSecrets(CR, master_secret=MASTER))
    assert dec.error is None and app_data(dec) == b"onetwo"


def test_unsupported_suite_and_version_are_errors():
    kw = dict(from_client=True, client_random=CR, server_random=SR,
              secrets=SessionSecrets(CR, master_secret=MASTER))
    assert decrypt_direction([], version="TLS1.2", cipher_suite=0x0005, **kw).error == (
        "cipher suite 0x0005 is not supported for decryption")
    assert "not a TLS 1.3 suite" in decrypt_direction(
        [], version="TLS1.3", cipher_suite=0xC02F, **kw).error
    assert "not supported" in decrypt_direction(
        [], version="SSLv3", cipher_suite=0x002F, **kw).error
    # Nothing encrypted, nothing needed: no error even without secrets.
    dec = decrypt_direction([CipherRecord(22, 0x0303, b"\x01\x00\x00\x00", 0)],
                            version="TLS1.2", cipher_suite=0xC02F, **kw)
    assert dec == Decrypted((), None, False, 0)


# ---- hostile input ----

SECRET_CHOICES = st.sampled_from([b"", b"k" * 31, b"k" * 32, b"k" * 48])


@settings(max_examples=200, deadline=None)
@given(
    recs=st.lists(st.tuples(st.sampled_from([20, 21, 22, 23, 99]), st.binary(max_size=80)),
                  max_size=8),
    code=st.sampled_from([0x1301, 0x1302, 0x1303, 0x1304, 0x1305, 0xC02F, 0xCCA8, 0x002F,
                          0xC028, 0xC09C, 0x0005]),
    version=st.sampled_from(["TLS1.3", "TLS1.2", "TLS1.1", "TLS1.0", "SSLv3", ""]),
    etm=st.booleans(), hs=SECRET_CHOICES, ms=SECRET_CHOICES, limit=st.integers(-5, 100),
)
def test_random_records_never_raise(recs, code, version, etm, hs, ms, limit):
    records, off = [], 0
    for ctype, body in recs:
        records.append(CipherRecord(ctype, 0x0303, body, off))
        off += 5 + len(body)
    secrets = SessionSecrets(CR, master_secret=ms or None, client_handshake=hs or None,
                             server_handshake=hs or None, client_traffic0=hs or None)
    dec = decrypt_direction(records, from_client=True, version=version, cipher_suite=code,
                            client_random=CR, server_random=SR, secrets=secrets,
                            encrypt_then_mac=etm, app_limit=limit)
    assert isinstance(dec, Decrypted)
    assert dec.app_bytes == len(app_data(dec)) <= max(0, limit)
    # Random bytes never authenticate, so nothing comes out of an encrypted record.
    assert dec.records == ()


def test_results_pickle_compactly_and_unchanged():
    import pickle

    dec = _rfc(CLIENT_FINISHED_RECORD + CLIENT_APP_RECORD, from_client=True)
    back = pickle.loads(pickle.dumps(dec, protocol=pickle.HIGHEST_PROTOCOL))
    assert back == dec and back.records[1].data == bytes(range(50))
    for cls in (CipherRecord, Decrypted, SessionSecrets):
        assert "__compact_setters__" in vars(cls)
    assert pickle.loads(pickle.dumps(RFC_SECRETS)) == RFC_SECRETS
