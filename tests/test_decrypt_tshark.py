"""tshark decrypts the generated keyed captures: the data for key-log decryption is proven good.

The keyed catalogue (fastcap_synth.scenarios.KEYED_SCENARIOS) is written once as pcap + key log
and as pcapng with the keys in a Decryption Secrets Block. tshark, given the keys, must see every
session's decrypted handshake (the client's Certificate included) and its SMTP dialogue after
STARTTLS (the inner 550 5.7.64 included); without them it must see neither. tests/tlskeys.py is
the harness; fastcap's own decrypted view is compared to it where decryption is integrated.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from fastcap.read.capture import Capture
from fastcap_synth.keylogs import foreign_randoms, truncated, wrong_secrets
from fastcap_synth.scenarios import KEYED_SCENARIO_NAMES, KEYED_SCENARIOS, write_keyed_captures
from fastcap_synth.smtpgen import TENANT_ATTRIBUTION
from fastcap_synth.writers import SECRETS_TLS_KEYLOG, keylog_bytes

from .corpus import CORPUS
from .tlskeys import CORPUS_WITH_KEYS, TsharkStream, tshark_path, tshark_view

pytestmark = pytest.mark.skipif(tshark_path() is None, reason="tshark is not installed")

# Handshake message types: ClientHello, Certificate, ClientKeyExchange, CertificateVerify,
# Finished; EncryptedExtensions and CertificateRequest from the server.
CH, EE, CERT, CR, CKE, CV, FIN = 1, 8, 11, 13, 16, 15, 20


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    return write_keyed_captures(tmp_path_factory.mktemp("keyed"))


@pytest.fixture(scope="module")
def with_keys(keyed) -> dict[int, TsharkStream]:
    return _by_port(tshark_view(keyed.pcap, keyed.keylog))


def _by_port(view: dict[int, TsharkStream]) -> dict[int, TsharkStream]:
    return {st.client[1]: st for st in view.values() if st.client is not None}


def _split(text: str) -> list[str]:
    return text.replace("\r\n", "\n").rstrip("\n").split("\n")


@pytest.mark.parametrize("name", KEYED_SCENARIO_NAMES)
def test_tshark_decrypts_the_session(keyed, with_keys, name):
    session = next(s for s in keyed.sessions if s.name == name)
    spec = KEYED_SCENARIOS[name]
    st = with_keys[session.client_port]
    client_types = st.handshake_types(from_client=True)
    server_types = st.handshake_types(from_client=False)
    if spec.version == "1.3":
        want = [CH, CERT, CV, FIN] if spec.client_cert else [CH, CERT, FIN]
        assert EE in server_types  # only visible decrypted
    else:
        want = [CH, CERT, CKE, CV, FIN] if spec.client_cert else [CH, CERT, CKE, FIN]
    assert client_types == want
    assert CR in server_types
    assert server_types[-1] != CH and FIN in server_types
    if spec.client_cert:
        assert st.client_certs[:1] == [session.client_cert_der]
    else:
        assert st.client_certs == []  # an empty Certificate message
    assert st.server_certs  # the server's chain, decrypted in TLS 1.3

    commands = [cmd for cmd, _ in session.commands]
    replies = [reply for _, reply in session.commands]
    assert st.lines(from_client=True) == [
        line for cmd in ["EHLO mail.fabrikam.com", *commands] for line in _split(cmd)
    ]
    server_lines = st.lines(from_client=False)
    assert server_lines[0].startswith("250-")  # the EHLO reply after STARTTLS
    assert server_lines[-len(replies) :] == replies
    assert st.smtp_commands[:3] == ["EHLO", "MAIL", "RCPT"]
    assert st.smtp_replies[-1] == 221


@pytest.mark.parametrize("name", ["keys_tls12_relay_denied", "keys_tls13_relay_denied"])
def test_tshark_sees_the_relay_denial_inside_tls(keyed, with_keys, name):
    session = next(s for s in keyed.sessions if s.name == name)
    st = with_keys[session.client_port]
    assert 550 in st.smtp_replies
    assert TENANT_ATTRIBUTION in st.lines(from_client=False)
    assert st.smtp_frames  # frame numbers of SMTP inside TLS, for comparing verdict frames


def test_without_keys_tshark_sees_nothing_inside(keyed):
    view = _by_port(tshark_view(keyed.pcap))
    for session in keyed.sessions:
        st = view[session.client_port]
        assert st.client_data == st.server_data == b""
        assert st.smtp_commands == [] and st.smtp_replies == []
        if session.version == "TLSv1.3":
            assert st.handshake_types(from_client=True) == [CH]
            assert st.client_certs == [] and st.server_certs == []


def test_dsb_gives_tshark_the_same_view(keyed, with_keys):
    assert _by_port(tshark_view(keyed.pcapng)) == with_keys


def test_editcap_writes_the_same_secrets_block(keyed, tmp_path, with_keys):
    editcap = shutil.which("editcap")
    if editcap is None:
        pytest.skip("editcap is not installed")
    injected = tmp_path / "editcap.pcapng"
    subprocess.run(
        [editcap, "--inject-secrets", f"tls,{keyed.keylog}", str(keyed.pcap), str(injected)],
        check=True,
        capture_output=True,
        timeout=300,
    )

    def secrets(path):
        cap = Capture(path)
        try:
            for _ in cap.windows():
                pass
            data = path.read_bytes()
            return [
                (b.secrets_type, data[b.data_offset : b.data_offset + b.data_len])
                for b in cap.meta.secrets
            ]
        finally:
            cap.close()

    ours, theirs = secrets(keyed.pcapng), secrets(injected)
    assert ours == theirs == [(SECRETS_TLS_KEYLOG, keyed.keylog.read_bytes())]
    assert _by_port(tshark_view(injected)) == with_keys


def test_corpus_captures_with_keys_are_listed():
    if not CORPUS.is_dir():
        pytest.skip(f"corpus not found at {CORPUS}")
    found: dict[str, str | None] = {}
    keys_dir = CORPUS / "keys"
    key_files = {p.name for p in keys_dir.iterdir()} if keys_dir.is_dir() else set()
    for path in sorted(CORPUS.glob("*.pcap*")):
        for key in key_files:
            if key.rsplit(".", 1)[0] == path.name.rsplit(".", 1)[0]:
                found[path.name] = f"keys/{key}"
        if path.suffix == ".pcapng":
            cap = Capture(path)
            try:
                for _ in cap.windows():
                    pass
                if any(b.secrets_type == SECRETS_TLS_KEYLOG for b in cap.meta.secrets):
                    found.setdefault(path.name, None)
            finally:
                cap.close()
    assert found == CORPUS_WITH_KEYS


def test_tshark_decrypts_the_corpus_tls12_capture():
    capture = CORPUS / "zeek__tls12-decryption.pcap"
    if not capture.is_file():
        pytest.skip(f"corpus not found at {CORPUS}")
    keys = CORPUS / CORPUS_WITH_KEYS[capture.name]
    (st,) = tshark_view(capture, keys, smtp_ports=()).values()
    assert st.client_data.startswith(b"GET / HTTP/1.1\r\n")
    assert st.server_data.startswith(b"HTTP/1.1 301 ")
    assert st.handshake_types(from_client=True) == [CH, CKE, FIN]
    (plain,) = tshark_view(capture, smtp_ports=()).values()
    assert plain.client_data == b"" and FIN not in plain.handshake_types(from_client=True)


@pytest.mark.parametrize("damage", [wrong_secrets, foreign_randoms])
def test_bad_keys_decrypt_nothing(keyed, tmp_path, damage):
    lines = keyed.keylog.read_text().splitlines()
    bad = tmp_path / "bad.keys"
    bad.write_bytes(keylog_bytes(damage(lines)))
    view = _by_port(tshark_view(keyed.pcap, bad))
    for session in keyed.sessions:
        st = view[session.client_port]
        assert st.client_data == st.server_data == b"" and st.smtp_replies == []
        if session.version == "TLSv1.3":
            assert st.handshake_types(from_client=True) == [CH]


def test_truncated_key_log_loses_only_its_last_secret(keyed, tmp_path, with_keys):
    """The key log ends with the relay-denied session's CLIENT_TRAFFIC_SECRET_0: cut there,
    tshark still sees that session's handshake and the server's 550, not the client's lines."""
    last = keyed.sessions[-1]
    assert last.name == "keys_tls13_relay_denied"
    assert last.keylog[-1].startswith("CLIENT_TRAFFIC_SECRET_0 ")
    cut = tmp_path / "cut.keys"
    cut.write_bytes(truncated(keyed.keylog.read_bytes(), 60))
    view = _by_port(tshark_view(keyed.pcap, cut))
    st = view[last.client_port]
    assert st.client_data == b""
    assert TENANT_ATTRIBUTION in st.lines(from_client=False)
    assert st.handshake_types(from_client=True) == with_keys[last.client_port].handshake_types(
        from_client=True
    )
    for session in keyed.sessions[:-1]:
        assert view[session.client_port] == with_keys[session.client_port]
