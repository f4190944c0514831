"""fastcap.proto.tls as a package: its layers import one way, it reaches outside only for base
modules, and the names the single module had stay where they were, as the same objects."""

from __future__ import annotations

import importlib
import warnings

import pytest

from fastcap.proto import midstart, tls
from fastcap.proto.tls import events, records

from .test_layering import import_graph, package_sources, stage_of
from .test_tls import handshake, record

PKG = "fastcap.proto.tls"
# Each module may import only those before it.
LAYERS = ["const", "ja", "der", "dn", "wirenames", "messages", "events", "records", "facts", "fold",
          "outcome", "handshake",
          "inference"]
# Every public name of the former single module fastcap/proto/tls.py.
OLD_NAMES = (
    "Alert", "AlertInfo", "Anomaly", "Certificate", "CertificateRequest", "ChangeCipherSpec",
    "ClientHello", "EncryptedRecord", "EncryptedTraffic", "Extension", "FrameAt",
    "HandshakeMessage", "MAX_ANOMALIES", "MAX_CAS", "MAX_CERTS", "MAX_HANDSHAKE", "MAX_HISTORY",
    "MAX_RECORD", "MAX_SIZES", "MAX_TICKETS", "NewSessionTicket", "ParsedBody", "Problems",
    "ReassembledStream", "SERVER_ALERT_SUSPECTED", "ServerHello", "Stopped", "StreamStop",
    "TLS13", "TlsAnomaly", "TlsConnection", "TlsEvent", "TlsHandshake", "TlsStream", "Where",
    "dn_to_text", "parse_certificate", "parse_certificate_request", "parse_client_hello",
    "parse_flights", "parse_handshake", "parse_new_session_ticket", "parse_server_hello",
    "parse_sslv2_client_hello",
)

LAYERS += ["keylog", "keyschedule", "decrypt", "recordlist"]  # decryption with key logs


def _tls_edges() -> dict[str, set[str]]:
    edges = import_graph(package_sources())
    return {m: t for m, t in edges.items() if m.startswith(PKG + ".")}


def test_every_module_has_a_layer():
    assert sorted(m.rpartition(".")[2] for m in _tls_edges()) == sorted(LAYERS)


def test_layers_import_only_earlier_layers():
    bad = []
    for m, targets in _tls_edges().items():
        rank = LAYERS.index(m.rpartition(".")[2])
        for t in targets:
            if t.startswith(PKG + ".") and LAYERS.index(t.rpartition(".")[2]) >= rank:
                bad.append(f"{m} -> {t}")
    assert not bad, bad


def test_the_package_reaches_outside_only_for_base_modules():
    """The contract in the package docstring: bytes in, facts out, nothing of a later stage
    (nor of SMTP) needed to read TLS."""
    edges = import_graph(package_sources())
    outside = {t for m, ts in edges.items() if m == PKG or m.startswith(PKG + ".")
               for t in ts if t != PKG and not t.startswith(PKG + ".")}
    assert outside and all(stage_of(t) == "base" for t in outside), sorted(outside)


@pytest.mark.parametrize("name", OLD_NAMES)
def test_old_names_are_the_defining_modules_objects(name):
    """One object per name whichever path imports it, so isinstance checks hold everywhere."""
    assert name in tls.__all__
    obj = getattr(tls, name)
    owners = [m for m in LAYERS if getattr(importlib.import_module(f"{PKG}.{m}"), name, None)
              is obj]
    assert owners, name
    home = getattr(obj, "__module__", None)
    if isinstance(obj, type) or callable(obj) and home and home.startswith(PKG + "."):
        assert getattr(importlib.import_module(home), name) is obj
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = importlib.import_module("fastcap.tls")
    assert getattr(old, name) is obj


def test_all_lists_only_what_is_there():
    assert len(set(tls.__all__)) == len(tls.__all__)
    assert sorted(tls.__all__) == sorted(OLD_NAMES)


def test_midstart_checks_records_with_the_record_layers_own_limit():
    assert midstart.MAX_RECORD is records.MAX_RECORD
    longest = b"\x17\x03\x03" + records.MAX_RECORD.to_bytes(2, "big")
    assert midstart.tls_chain_at(longest + bytes(records.MAX_RECORD), 0, 5 + records.MAX_RECORD)
    too_long = b"\x17\x03\x03" + (records.MAX_RECORD + 1).to_bytes(2, "big")
    assert not midstart.tls_chain_at(too_long, 0, len(too_long))


def test_a_limit_is_patched_in_the_module_that_reads_it(monkeypatch):
    """records reads MAX_HANDSHAKE: lowering it there makes a 64-byte message, split over two
    records so that it has to be defragmented, too big."""
    msg = handshake(99, bytes(64))
    data = record(22, msg[:20]) + record(22, msg[20:])

    def codes() -> list[str]:
        stream = records.TlsStream(True)
        return [e.code for e in stream.feed(data, 0) if isinstance(e, events.Anomaly)]

    assert "tls.handshake.too_big" not in codes()
    monkeypatch.setattr(records, "MAX_HANDSHAKE", 32)
    assert "tls.handshake.too_big" in codes()
