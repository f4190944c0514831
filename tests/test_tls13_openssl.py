"""Decrypted TLS 1.3 sessions, real `openssl` sessions recorded in tests/data/tls13 (README.md
there says how). An alert the client sends after its Finished, when the handshake had long
completed, is no handshake failure, as it is not without keys; a server alert after the
client's flight is the server's refusal and is named. Accepted 0-RTT early data does not stop
the client's direction from being decrypted."""

from __future__ import annotations

from pathlib import Path

from fastcap.proto.tls.inference import infer_client_cert
from fastcap.run.scanner import scan

DATA = Path(__file__).resolve().parent / "data" / "tls13"
CAPTURE, KEYS = DATA / "tls13_alerts.pcap", DATA / "tls13_alerts.keys"
PORTS = (21031, 21012)


def _sessions(keys: bool) -> dict[int, object]:
    found = scan(CAPTURE, ports=PORTS, implicit_tls_ports=PORTS,
                 keylog=(str(KEYS),) if keys else ())
    return {int(s.server.rsplit(":", 1)[1]): s for s in found}


def test_client_alert_after_its_finished_is_not_a_handshake_failure():
    for keys in (False, True):
        s = _sessions(keys)[21031]
        assert s.tls.outcome == "completed"
        assert not [v for v in s.verdicts if v.code == "tls_alert"], keys
    # with keys the alert itself is read and kept among the facts
    (alert,) = _sessions(True)[21031].tls.alerts
    assert (alert.from_client, alert.description_name, alert.encrypted) == (
        True, "decode_error", False)
    assert alert.at.offset > _sessions(True)[21031].tls.client_finished_at.offset


def test_server_refusal_after_the_clients_flight_is_still_named():
    s = _sessions(True)[21012]
    (v,) = [v for v in s.verdicts if v.code == "tls_alert"]
    assert v.severity == "error"
    assert "certificate_required (116)" in v.message
    # the client's Certificate was empty: the server requires one, it judged none
    assert "client's empty Certificate" in v.message and "sent none" in v.message
    assert "rejected the client certificate" not in v.message
    assert "smtp_tls_cert_file" in v.hint


def test_accepted_early_data_leaves_the_client_direction_readable():
    first, resumed = sorted(scan(DATA / "tls13_early_data.pcap", ports=(21109,),
                                 implicit_tls_ports=(21109,),
                                 keylog=(str(DATA / "tls13_early_data.keys"),)),
                            key=lambda s: s.number)
    assert resumed.tls.resumption == "psk" and resumed.tls.outcome == "completed"
    for s in (first, resumed):
        assert s.decryption.error is None
        assert s.tls.client_finished_at is not None
        assert "decryption_failed" not in {v.code for v in s.verdicts}
    assert first.tls.client_certificate_at is not None
    assert resumed.tls.client_certificate_at is None  # no certificate in a PSK handshake


def test_handshake_with_both_finished_decrypted_is_completed_without_client_data():
    """Without keys, TLS 1.3 completion rests on client records other than alerts after the
    hellos; here the client's only ones are its Finished and an alert after it."""
    kw = dict(ports=(22003,))
    (plain,) = scan(DATA / "tls13_starttls_no_data.pcap", **kw)
    (s,) = scan(DATA / "tls13_starttls_no_data.pcap",
                keylog=(str(DATA / "tls13_starttls_no_data.keys"),), **kw)
    assert s.smtp.starttls_accepted and s.decryption.error is None
    assert s.tls.client_finished_at is not None and s.tls.server_finished_at is not None
    assert (s.tls.outcome, s.tls.outcome_inferred) == ("completed", False)
    assert "tls_alert" not in {v.code for v in s.verdicts}
    # the server's refusal after the client's flight stays an alert outcome
    assert _sessions(True)[21012].tls.outcome == "alert"
    assert plain.tls.client_finished_at is None  # encrypted: only the keys show it


def test_psk_resumption_without_keys_is_known_to_carry_no_certificate():
    """The resumed connection's records (early data, then a Finished) are read as no
    certificate from RFC 8446 4.3.2 alone, as the keys show; its verdicts stay the
    resumption's, with no certificate finding of its own, as with keys."""
    kw = dict(ports=(21109,), implicit_tls_ports=(21109,))
    first, resumed = sorted(scan(DATA / "tls13_early_data.pcap", **kw), key=lambda s: s.number)
    got = infer_client_cert(resumed.tls)
    assert (got.verdict, got.requested) == ("absent", False)
    assert infer_client_cert(first.tls).verdict == "present"
    codes = {v.code for v in resumed.verdicts}
    assert "tls_session_resumed" in codes
    assert not codes & {"client_cert_inferred_absent", "client_cert_not_requested"}
    (enc,) = [v for v in resumed.verdicts if v.code == "tls13_encrypted"]
    assert "no client certificate in this handshake" in enc.message


def test_padded_client_records_too_small_for_a_chain_mean_none():
    """Every client record padded to 80 bytes: no size is telling, but the records before the
    server's NewSessionTicket can hold no certificate chain. The keys agree on each session."""
    kw = dict(ports=(30150, 30009, 30153), implicit_tls_ports=(30150,))
    keys = str(DATA / "tls13_padded.keys")
    truth = {s.server: s.tls.client_certificate for s in scan(DATA / "tls13_padded.pcap",
                                                              keylog=(keys,), **kw)}
    got = {s.server.rsplit(":", 1)[1]: (infer_client_cert(s.tls), s, truth[s.server])
           for s in scan(DATA / "tls13_padded.pcap", **kw)}
    asked, _, empty = got["30150"]
    assert empty == () and (asked.verdict, asked.requested) == ("absent", True)
    assert "padded records" in asked.evidence
    unasked, session, none = got["30009"]
    assert none is None and (unasked.verdict, unasked.requested) == ("absent", False)
    assert "client_cert_inferred_absent" in {v.code for v in session.verdicts}
    chain, _, sent = got["30153"]
    assert sent and chain.verdict == "present"


def test_a_padded_lone_finished_is_not_read_as_a_whole_chain_flight():
    """Every client record padded to 256 bytes: a lone Finished fills one 272-byte record, as
    large as a Certificate, CertificateVerify and Finished in one record could be. Only a
    later record shorter than it shows the sender does not pad to that size; a longer one
    (a post-handshake Certificate, a two-block line) or none at all leaves it open. Whatever
    is decided agrees with the keys (which agree with tshark's decrypted handshake types)."""
    capture, keys = DATA / "tls13_pha_padded.pcap", str(DATA / "tls13_pha_padded.keys")
    kw = dict(ports=range(31001, 31006), implicit_tls_ports=range(31001, 31006))
    truth = {s.server: s.tls.client_certificate for s in scan(capture, keylog=(keys,), **kw)}
    got = {int(s.server.rsplit(":", 1)[1]): (infer_client_cert(s.tls), truth[s.server])
           for s in scan(capture, **kw)}
    assert len(got) == 5
    for port, (inferred, sent) in got.items():
        if inferred.decided:
            assert (inferred.verdict == "present") == bool(sent), (port, inferred)
    # the chain came after the handshake, the handshake's flight was a lone Finished
    assert got[31001][1] and not got[31001][0].decided
    for port in (31002, 31003):  # no certificate anywhere: a 272-byte Finished, then a
        assert got[port][1] is None  # 528-byte line, or nothing
        assert not got[port][0].decided and "padd" in got[port][0].reason
    # a chain in the handshake: the 272-byte records after its 784 bytes show the padding
    assert got[31004][1] and got[31004][0].verdict == "present"


def test_a_post_handshake_request_past_the_decrypt_limit_is_still_read():
    """TLS 1.3 hides record types, so the handshake records after the application data limit
    are found only by opening every record: the server's post-handshake CertificateRequest
    and the client's Certificate come after its `220 hi`, as tshark decrypts them (frames of
    types 13 and 11, 15, 20), whatever the limit."""
    capture, keys = DATA / "tls13_pha_padded.pcap", str(DATA / "tls13_pha_padded.keys")
    kw = dict(ports=(31001, 31005), implicit_tls_ports=(31001, 31005), keylog=(keys,))
    for limit in (0, 4, 64 * 1024):
        got = {int(s.server.rsplit(":", 1)[1]): s
               for s in scan(capture, decrypt_limit=limit, **kw)}
        sent, empty = got[31001], got[31005]
        assert sent.tls.cert_request is not None and len(sent.tls.client_certificate) == 2
        assert "client_cert_not_requested" not in {v.code for v in sent.verdicts}, limit
        assert empty.tls.client_certificate == (), limit
        assert "client_cert_not_requested" not in {v.code for v in empty.verdicts}
        assert sent.decryption.c2s.limited == (limit < 17)  # EHLO client.test, QUIT
