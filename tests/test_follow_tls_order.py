"""`fastcap follow` lists the TLS handshake in frame order, as Wireshark does: a TLS 1.2
server's NewSessionTicket after the client's ClientKeyExchange and ChangeCipherSpec, a TLS 1.3
server's compatibility ChangeCipherSpec beside its ServerHello, before the client's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fastcap.cli import main

ROOT = Path(__file__).resolve().parents[1]
STARTTLS12 = ROOT / "tests" / "data" / "corpus" / "zeek__smtp-starttls.pcap"  # session 1
SCENARIOS = ROOT / "examples" / "all-scenarios.pcapng"  # session 9: TLS 1.3


def _tls_lines(capsys, path: Path, session: int) -> list[str]:
    main(["follow", str(path), "--session", str(session), "--backend", "python"])
    out = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(out) if line.startswith("--- TLS"))
    end = next(i for i, line in enumerate(out) if line.startswith("--- handshake"))
    return [line for line in out[start:end] if line.startswith("[f")]


def _frames(lines: list[str]) -> list[int]:
    return [int(re.match(r"\[f(\d+)\]", line).group(1)) for line in lines]


@pytest.mark.parametrize(("path", "session", "expected"), [
    (STARTTLS12, 1, ["[f20] C: ClientKeyExchange", "[f20] C: ChangeCipherSpec",
                     "[f21] S: NewSessionTicket, 1 ticket(s)", "[f21] S: ChangeCipherSpec"]),
    (SCENARIOS, 9, ["[f184] S: ServerHello", "[f184] S: ChangeCipherSpec",
                    "[f186] C: ChangeCipherSpec"]),
])
def test_handshake_messages_come_in_frame_order(capsys, path, session, expected):
    lines = _tls_lines(capsys, path, session)
    assert _frames(lines) == sorted(_frames(lines))
    at = lines.index(expected[0])
    assert lines[at:at + len(expected)] == expected


def test_decrypted_tls13_handshake_in_the_order_it_was_sent(capsys, tmp_path):
    """With keys, a TLS 1.3 server's first frame holds ServerHello, ChangeCipherSpec and the
    encrypted EncryptedExtensions, CertificateRequest, Certificate, as tshark lists them; the
    client's holds ChangeCipherSpec, then its Certificate and CertificateVerify."""
    import dataclasses
    import time

    from fastcap_synth.scenarios import keyed_conversations, make_pki
    from fastcap_synth.smtpgen import render
    from fastcap_synth.writers import keylog_bytes, write_pcap

    ((sc, conv),) = keyed_conversations(make_pki(), ("keys_tls13_aes128_cert",))
    sc = dataclasses.replace(sc, start_ns=time.time_ns() - 3600 * 10**9)
    cap, keys = tmp_path / "k13.pcap", tmp_path / "k13.keys"
    write_pcap(cap, render(conv, sc))
    keys.write_bytes(keylog_bytes(list(conv.keylog)))
    main(["follow", str(cap), "--session", "1", "--keylog", str(keys)])
    out = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(out) if line.startswith("--- TLS"))
    end = next(i for i, line in enumerate(out) if line.startswith("--- handshake"))
    lines = [line for line in out[start:end] if line.startswith("[f")]
    names = [re.sub(r"^\[f\d+\] ([CS]): (\w+).*", r"\1 \2", line) for line in lines]
    assert names[:8] == ["C ClientHello", "S ServerHello", "S ChangeCipherSpec",
                         "S CertificateRequest", "S Certificate", "C ChangeCipherSpec",
                         "C Certificate", "C CertificateVerify"]
    assert _frames(lines) == sorted(_frames(lines))


def test_abbreviated_handshake_server_flight_first(capsys, tmp_path):
    """A resumed TLS 1.2 handshake: the server's ChangeCipherSpec (with its ServerHello)
    comes before the client's, as the frames do."""
    from .resumecap import build

    caps = build(tmp_path)
    for session in (5, 6):  # resumed by session ID, by ticket
        lines = _tls_lines(capsys, caps.whole, session)
        assert _frames(lines) == sorted(_frames(lines))
        ccs = [line.split(" ", 1)[1] for line in lines if "ChangeCipherSpec" in line]
        assert ccs == ["S: ChangeCipherSpec", "C: ChangeCipherSpec"]
