"""Alerts in decrypted TLS 1.3 sessions (real `openssl` sessions recorded in tests/data/tls13,
README.md there says how): an alert the client sends after its Finished, when the handshake had
long completed, is no handshake failure, as it is not without keys; a server alert after the
client's flight is the server's refusal and is named."""

from __future__ import annotations

from pathlib import Path

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
    assert "certificate_required" in v.message and "right after the client's Certificate" \
        in v.message
