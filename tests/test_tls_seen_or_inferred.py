"""What decryption and TLS 1.3 inference change where the user looks: the table's and CSV's
client-certificate column, a server's CertificateRequest remembered for its later
connections (seen with keys, or inferred from record sizes), and the key log's warnings in
the Python API's summary as on the CLI's stderr.

One generated capture: four connections to a Postfix-like server that is no Exchange Online
(so nothing else makes a certificate expected), over real OpenSSL handshakes with their keys.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fastcap.judge.crosssession import CrossSession
from fastcap.out.report import CSV_FIELDS, client_cert_text, csv_row, format_table
from fastcap.run.scanner import scan, scan_files
from fastcap_synth.certs import make_leaf
from fastcap_synth.scenarios import make_pki
from fastcap_synth.smtpgen import ACCEPTED_COMMANDS, SmtpScenario, converse, render
from fastcap_synth.tlsgen import client_context, server_context
from fastcap_synth.writers import keylog_bytes, write_pcap, write_pcapng

from .resumecap import NOW, PEER, T0

# (server asks for a certificate, client has one, TLS version)
CONNECTIONS = (
    ("optional", True, "1.3"),  # 1: asked, sent a chain
    ("optional", False, "1.3"),  # 2: asked, empty Certificate
    ("none", True, "1.3"),  # 3: not asked
    ("none", True, "1.2"),  # 4: not asked, TLS 1.2
)
CSV_COLUMN = 11  # client_certificate


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("seen")
    pki = make_pki(NOW)
    peer_cert = make_leaf(pki.intermediate, PEER, sans=[PEER])  # no Exchange Online name
    records, lines = [], []
    for n, (auth, has_cert, version) in enumerate(CONNECTIONS, 1):
        cert = pki.client if has_cert else None
        sc = SmtpScenario(
            banner=f"220 {PEER} ESMTP Postfix (Debian/GNU)", server_name=PEER, sni=PEER,
            commands=ACCEPTED_COMMANDS, client_port=42000 + n, start_ns=T0 + n * 10**10,
            server_ctx=server_context(peer_cert, client_auth=auth, client_cas=[pki.root],
                                      min_version=version, max_version=version),
            client_ctx=client_context(cert=cert, min_version=version, max_version=version),
            client_cert=cert, keylog=True)
        conv = converse(sc)
        records += render(conv, sc)
        lines += conv.keylog
    keys = keylog_bytes(lines)
    out = {"pcap": d / "seen.pcap", "keys": d / "seen.keys", "ca": d / "root.pem",
           "pcapng": d / "seen.pcapng", "garbled": d / "garbled.pcapng"}
    out["keys"].write_bytes(keys)
    out["ca"].write_bytes(pki.root.pem)
    write_pcap(out["pcap"], records)
    write_pcapng(out["pcapng"], records, tls_keylog=keys)
    bad = keys.split(b"\n")  # the last line (connection 4's, TLS 1.2) garbled, same length:
    bad[-2] = b"X" * len(bad[-2])  # the block stays valid
    write_pcapng(out["garbled"], records, tls_keylog=b"\n".join(bad))
    return out


def _scan(capture, **kw) -> list:
    sessions = list(scan(capture["pcap"], ca_file=str(capture["ca"]), **kw))
    assert len(sessions) == len(CONNECTIONS)
    return sessions


@pytest.fixture(scope="module")
def with_keys(capture) -> list:
    return _scan(capture, keylog=(str(capture["keys"]),))


@pytest.fixture(scope="module")
def without_keys(capture) -> list:
    return _scan(capture)


def _codes(s) -> list[str]:
    return [v.code for v in s.verdicts]


def test_decrypted_client_certificate_shows_as_over_tls12(with_keys):
    assert all(s.tls.version_name == "TLS1.3" for s in with_keys[:3])
    assert all(s.decryption.handshake for s in with_keys)
    sent, empty, not_asked, tls12 = with_keys
    assert client_cert_text(sent) == "CN=mail.fabrikam.com"
    assert client_cert_text(empty) == "none (empty Certificate)"
    assert client_cert_text(not_asked) == client_cert_text(tls12) == "not requested"
    for s in with_keys:
        assert csv_row(s, "seen.pcap")[CSV_COLUMN] == client_cert_text(s)
    asked = CSV_FIELDS.index("cert_requested")
    assert [csv_row(s, "seen.pcap")[asked] for s in with_keys] == [
        "True", "True", "False", "False"]
    assert "encrypted (TLS 1.3)" not in format_table(with_keys)


def test_inferred_client_certificate_says_so(without_keys):
    sent, empty, not_asked, tls12 = without_keys
    assert "client_cert_inferred_present" in _codes(sent)
    assert client_cert_text(sent) == "sent (inferred)"
    assert "client_cert_inferred_absent" in _codes(empty)
    assert client_cert_text(empty) == "none (inferred)"
    assert "client_cert_inferred_absent" in _codes(not_asked)
    assert client_cert_text(not_asked) == "not requested (inferred)"
    assert client_cert_text(tls12) == "not requested"
    for s in without_keys:
        assert csv_row(s, "seen.pcap")[CSV_COLUMN] == client_cert_text(s)
    # the CSV's cert_requested tells what the client certificate cell tells
    asked = CSV_FIELDS.index("cert_requested")
    assert [csv_row(s, "seen.pcap")[asked] for s in without_keys] == [
        "True", "True", "False", "False"]


def test_undecided_or_unjudged_tls13_stays_encrypted(without_keys):
    unjudged = dataclasses.replace(without_keys[0], verdicts=[])
    assert client_cert_text(unjudged) == "encrypted (TLS 1.3)"


def _not_requested(s):
    (v,) = [v for v in s.verdicts if v.code in ("client_cert_not_requested",
                                                "client_cert_inferred_absent")]
    return v


def test_a_decrypted_certificate_request_counts_for_later_connections(with_keys):
    first = with_keys[0]
    assert first.tls.cert_requested and not first.tls.tls13_encrypted
    request_frame = first.tls.cert_request_at.frame
    assert request_frame is not None
    for later in with_keys[2:]:  # the server did not ask there
        v = _not_requested(later)
        assert v.code == "client_cert_not_requested" and v.severity == "warning", v
        assert (f"this server ({later.server}) asked for one on session 1 "
                f"(frame {request_frame})") in v.message
        assert "inferred" not in v.message


def test_an_inferred_certificate_request_counts_labelled_inferred(without_keys):
    first = without_keys[0]
    assert not first.tls.cert_requested and first.tls.tls13_encrypted
    for later in without_keys[2:]:
        v = _not_requested(later)
        assert v.severity == "warning", v
        assert (f"asked for one on session 1 (frame {first.tls.server_hello_at.frame}), "
                "inferred from its TLS 1.3 record sizes") in v.message


def test_without_a_request_before_them_later_connections_stay_info(capture):
    judged = list(scan(capture["pcap"], ca_file=str(capture["ca"]),
                       cross=CrossSession(enabled=False)))
    cross = CrossSession()
    for s in judged[2:]:  # the connections the server asked on are not linked first
        assert cross.link(s) is None
        assert _not_requested(s).severity == "info"


def test_a_seen_request_replaces_an_inferred_one(capture):
    def judged(**kw) -> list:
        return _scan(capture, cross=CrossSession(enabled=False), **kw)

    plain, keyed = judged(), judged(keylog=(str(capture["keys"]),))
    cross = CrossSession()
    assert cross.link(plain[0]) is None  # asked, as inferred
    assert cross.link(keyed[1]) is None  # asked, seen decrypted
    linked = cross.link(keyed[2])
    assert linked is not None
    (v,) = [v for v in linked if v.code == "client_cert_not_requested"]
    assert f"session 2 (frame {keyed[1].tls.cert_request_at.frame})" in v.message
    assert "inferred" not in v.message


def test_secrets_block_warnings_reach_the_api_summary_once(capture):
    garbled = capture["garbled"]
    run = scan(garbled, ca_file=str(capture["ca"]))
    sessions = list(run)
    summary = run.summary
    assert len(sessions) == len(CONNECTIONS)
    lines = len(capture["keys"].read_bytes().splitlines())
    one = [w for w in summary.warnings if "secrets block" in w]
    assert len(one) == 1 and one[0].startswith(
        f"{garbled}: TLS key log in secrets block, line {lines}: not a key log line "
        "at offset "), one
    # the connection whose key was garbled is the only one without keys
    assert [s.decryption.keys_found for s in sessions] == [True, True, True, False]
    # Several files: each file's blocks are read with it and serve only it, so each reading
    # of the garbled file tells its line, at the block's offset, as a scan of it alone does,
    # and the other file nothing.
    results = scan_files([garbled, capture["pcapng"], garbled], ca_file=str(capture["ca"]))
    told = [[w for w in r.summary.warnings if "secrets block" in w] for r in results]
    assert told == [one, [], one]


def test_key_file_warnings_reach_the_api_summary(capture, tmp_path):
    keys = tmp_path / "bad.keys"
    keys.write_bytes(capture["keys"].read_bytes() + b"CLIENT_RANDOM not-hex 00\n")
    run = scan(capture["pcap"], ca_file=str(capture["ca"]), keylog=(str(keys),))
    list(run)
    line = len(capture["keys"].read_bytes().splitlines()) + 1
    assert run.summary.warnings == (f"{keys} line {line}: CLIENT_RANDOM: not hex",)
    clean = scan(capture["pcap"], ca_file=str(capture["ca"]), keylog=(str(capture["keys"]),))
    list(clean)
    assert clean.summary.warnings == ()


def test_a_server_seen_asking_again_is_remembered_as_recent(capture):
    # a server's request seen after an inferred one makes it the most recently used: with
    # room for two servers, two others after it must not forget it
    def judged(**kw) -> list:
        return _scan(capture, cross=CrossSession(enabled=False), **kw)

    plain, keyed = judged(), judged(keylog=(str(capture["keys"]),))
    x = plain[0].server
    others = [dataclasses.replace(keyed[1], server=f"192.0.2.{n}:25") for n in (1, 2)]
    assert x not in {s.server for s in others}
    cross = CrossSession(limit=2)
    assert cross.link(plain[0]) is None  # x asked, as inferred
    assert cross.link(others[0]) is None  # another server asked
    assert cross.link(keyed[1]) is None  # x asked, seen decrypted
    assert cross.link(others[1]) is None  # a third server asked: the least recent goes
    assert cross.dropped == 1
    linked = cross.link(keyed[2])
    assert linked is not None
    (v,) = [v for v in linked if v.code == "client_cert_not_requested"]
    assert v.severity == "warning", v
    assert f"session 2 (frame {keyed[1].tls.cert_request_at.frame})" in v.message
