"""SMTP/STARTTLS conversations rendered to TCP, checked with tshark's SMTP, TLS and TCP analysis."""

from __future__ import annotations

import dataclasses

import pytest

from fastcap_synth import packets as p
from fastcap_synth.scenarios import SCENARIO_NAMES, make_pki, scenario
from fastcap_synth.smtpgen import SmtpScenario, converse, render, smtp_records
from fastcap_synth.writers import write_pcap


@pytest.fixture(scope="module")
def pki():
    return make_pki()


def _tshark_rows(run_tshark, tmp_path, records, *fields, linktype=1, filt=None, name="s.pcap"):
    path = tmp_path / name
    write_pcap(path, records, linktype=linktype)
    args = ["-r", str(path), "-d", "tcp.port==25,smtp", "-T", "fields", "-E", "separator=|"]
    if filt:
        args += ["-Y", filt]
    for f in fields:
        args += ["-e", f]
    return [r.split("|") for r in run_tshark(*args)]


def _handshake_types(run_tshark, tmp_path, records):
    """Handshake types and certificate-list lengths per flight (consecutive frames, same src)."""
    rows = _tshark_rows(
        run_tshark, tmp_path, records, "ip.src", "tls.handshake.type",
        "tls.handshake.certificates_length", filt="tls.handshake",
    )  # fmt: skip
    flights: list[tuple[str, list[str], list[str]]] = []
    for src, types, lens in rows:
        if not flights or flights[-1][0] != src:
            flights.append((src, [], []))
        flights[-1][1].extend(types.split(","))
        flights[-1][2].extend(lens.split(",") if lens else [])
    return flights


def test_all_catalogue_scenarios_converse(pki):
    for name in SCENARIO_NAMES:
        conv = converse(scenario(name, pki))
        assert conv.messages[0].data.startswith(b"220 contoso-com.mail.protection.outlook.com")
        if name in ("expired_client_cert", "untrusted_ca"):
            assert conv.tls.alert_by == "server" and conv.client_cert_cn == "mail.fabrikam.com"
        elif name == "tls13_client_cert":
            assert conv.tls_version == "TLSv1.3" and conv.tls.completed
        elif name.startswith("starttls"):
            assert conv.tls is None and b"5.7.64 TenantAttribution" in conv.messages[-3].data


def test_empty_client_certificate_after_request(run_tshark, tmp_path, pki):
    sc = scenario("no_client_cert", pki, mss=64)  # tiny segments force reassembly
    hs = _handshake_types(run_tshark, tmp_path, smtp_records(sc))
    client, server = sc.client_ip, sc.server_ip
    assert hs[0][:2] == (client, ["1"])
    assert hs[1][0] == server and hs[1][1][:5] == ["2", "11", "12", "13", "14"]  # 13: CertReq
    assert hs[2][0] == client and hs[2][1][:2] == ["11", "16"] and hs[2][2] == ["0"]


def test_client_chain_and_no_request(run_tshark, tmp_path, pki):
    hs = _handshake_types(run_tshark, tmp_path, smtp_records(scenario("ok_client_cert", pki)))
    assert "13" in hs[1][1] and hs[2][1][0] == "11" and int(hs[2][2][0]) > 500
    hs = _handshake_types(run_tshark, tmp_path, smtp_records(scenario("cert_not_requested", pki)))
    assert "13" not in hs[1][1] and "11" not in hs[2][1]


def test_alert_and_tcp_consistency(run_tshark, tmp_path, pki):
    sc = scenario("expired_client_cert", pki, mss=100)
    recs = smtp_records(sc)
    rows = _tshark_rows(
        run_tshark, tmp_path, recs, "ip.src", "tls.alert_message.desc", "tcp.flags.str",
        "tcp.seq_raw", "tcp.analysis.flags", "tcp.checksum.status",
    )  # fmt: skip
    rows_alert = [r for r in rows if r[1]]
    assert rows_alert == [[sc.server_ip, "45", rows_alert[0][2], rows_alert[0][3], "", "2"]]
    assert all(r[4] == "" for r in rows), "tshark found retransmissions/gaps/bad acks"
    flags = [r[2].replace("\u00b7", "") for r in rows]
    assert flags[:3] == ["S", "AS", "A"] and flags[-3:] == ["AF", "AF", "A"]
    assert int(rows[0][3]) == sc.client_isn and int(rows[1][3]) == sc.server_isn
    # The server alerted, so the server closes first.
    assert rows[-3][0] == sc.server_ip
    ts = [r.ts_ns for r in recs]
    assert ts == sorted(ts) and ts[0] == sc.start_ns


@pytest.mark.parametrize("name", ["starttls_refused", "starttls_not_offered"])
def test_plaintext_tenant_attribution(run_tshark, tmp_path, pki, name):
    rows = _tshark_rows(
        run_tshark, tmp_path, smtp_records(scenario(name, pki)),
        "smtp.req.command", "smtp.response.code", "smtp.rsp.parameter", filt="smtp",
    )  # fmt: skip
    cmds = [r[0] for r in rows if r[0]]
    codes = [r[1].split(",")[0] for r in rows if r[1]]  # multi-line replies: one row
    if name == "starttls_refused":
        assert cmds == ["EHLO", "STAR", "MAIL", "RCPT", "QUIT"]
        assert codes == ["220", "250", "454", "250", "550", "221"]
    else:
        assert cmds == ["EHLO", "MAIL", "RCPT", "QUIT"]
        assert codes == ["220", "250", "250", "550", "221"]
    assert any(r[2].startswith("5.7.64 TenantAttribution; Relay Access Denied") for r in rows)


@pytest.mark.parametrize(
    ("linktype", "vlans", "v6", "first_proto"),
    [
        (p.LINKTYPE_ETHERNET, ((p.ETH_P_8021Q, 5),), True, "eth:ethertype:vlan:ethertype:ipv6"),
        (p.LINKTYPE_LINUX_SLL, (), False, "sll:ethertype:ip"),
        (p.LINKTYPE_LINUX_SLL2, (), True, "sll:ethertype:ipv6"),
        (p.LINKTYPE_RAW, (), False, "raw:ip"),
    ],
)
def test_replay_across_link_types(run_tshark, tmp_path, pki, linktype, vlans, v6, first_proto):
    base = scenario("tls13_client_cert", pki)
    conv = converse(base)
    sc = dataclasses.replace(
        base,
        client_ip="2001:db8::10" if v6 else "10.20.30.40",
        server_ip="2001:db8::25" if v6 else "10.20.30.25",
        client_port=61000,
        client_isn=0xFFFFFF00,  # wraps around 2**32 during the session
        vlans=vlans,
        mss=200,
    )
    recs = render(conv, sc, linktype=linktype)
    rows = _tshark_rows(
        run_tshark, tmp_path, recs, "frame.protocols", "tcp.srcport", "tcp.analysis.flags",
        "tls.record.content_type", "tcp.len", linktype=linktype,
    )  # fmt: skip
    assert rows[0][0].startswith(first_proto) and rows[0][1] == "61000"
    assert all(r[2] == "" for r in rows)
    sent = sum(int(r[4]) for r in rows)
    assert sent == sum(len(m.data) for m in conv.messages)
    assert "22" in {t for r in rows for t in r[3].split(",")}


def test_default_scenario_without_tls():
    conv = converse(SmtpScenario())
    assert conv.starttls == "not_attempted" and conv.tls is None
    assert [m.label for m in conv.messages[:3]] == ["banner", "ehlo", "ehlo-reply"]
    assert b"250-STARTTLS\r\n" in conv.messages[2].data
