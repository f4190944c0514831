"""After a 250 to TURN (RFC 821 §4.1.1) the connection's responder sends the mail: it is the
client of the STARTTLS that follows and the host whose certificate is judged, so every output
names it as the client and the originator as the receiving server.  The capture: the
responder greets as Exchange Online, refuses the originator's relay with 550 5.7.64, the
originator turns the roles, greets, and the responder then sends its mail over STARTTLS with
an empty Certificate (no SNI, so no name but the banner's could stand for the receiver)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import replace

import pytest

from fastcap.session import iter_sessions
from fastcap_synth.scenarios import make_pki, scenario
from fastcap_synth.smtpgen import TENANT_ATTRIBUTION, Message, converse, render
from fastcap_synth.writers import write_pcap

ORIGINATOR, RESPONDER = "203.0.113.10:49152", "198.51.100.25:25"
BEFORE_TURN = (
    (True, "EHLO relay.contoso.com"), (False, "250 hi"),
    (True, "MAIL FROM:<a@contoso.com>"), (False, "250 2.1.0 Sender OK"),
    (True, "RCPT TO:<b@fabrikam.com>"), (False, TENANT_ATTRIBUTION),
    (True, "TURN"), (False, "250 OK"), (True, "220 relay.contoso.com ready"))


def write_turned(path, verb: str = "TURN", port: int = 25):
    """The capture above at ``path``, its roles turned by a 250 to ``verb`` on ``port``."""
    sc = scenario("no_client_cert", make_pki(), sni=None, server_port=port)
    conv = converse(sc)
    banner, *rest = conv.messages
    before = tuple((c, verb if t == "TURN" else t) for c, t in BEFORE_TURN)
    conv = replace(conv, closer_is_client=not conv.closer_is_client, messages=[
        banner, *(Message(c, (t + "\r\n").encode(), "turn") for c, t in before),
        *(replace(m, from_client=not m.from_client) for m in rest)])
    write_pcap(path, render(conv, sc))
    return path


@pytest.fixture(scope="module")
def turned_capture(tmp_path_factory):
    return write_turned(tmp_path_factory.mktemp("turn") / "turned.pcap")


def run_cli(capsys, command: str, *args: str, code: int = 1) -> str:
    """``fastcap COMMAND ARGS`` in this process (one worker): its standard output."""
    from fastcap.cli import main

    got = main([command, "-j", "1", *args] if command == "scan" else [command, *args])
    out, err = capsys.readouterr()
    assert got == code, err  # scan: the empty Certificate is a problem
    return out


def test_the_session_names_the_responder_as_the_client_after_turn(turned_capture, backend):
    (s,) = list(iter_sessions(turned_capture, backend=backend))
    assert s.roles_turned and (s.client, s.server) == (RESPONDER, ORIGINATOR)
    assert s.tcp.syn_seen and s.tcp.client_by == "syn"  # the connection's own facts stay
    assert s.smtp.ehlo_name == "mail.fabrikam.com"  # the responder's EHLO, not relay.contoso
    assert s.smtp.starttls_offered and s.smtp.starttls_accepted
    assert s.tls.client_certificate == () and s.tls.cert_requested
    d = s.to_dict()
    assert d["roles_turned"] is True and (d["client"], d["server"]) == (RESPONDER, ORIGINATOR)
    (other,) = list(iter_sessions(turned_capture, backend="python"))
    assert other.to_dict() == d  # whichever backend walked the capture


def test_a_250_to_atrn_turns_the_roles_as_turn_does(tmp_path, backend):
    """ATRN (RFC 2645 §4, On-Demand Mail Relay on port 366) reverses the connection as TURN
    does: after its 250 the provider, the connection's responder, sends EHLO and the mail."""
    path = write_turned(tmp_path / "atrn.pcap", "ATRN", 366)
    (s,) = list(iter_sessions(path, ports={366}, backend=backend))
    assert s.roles_turned and (s.client, s.server) == ("198.51.100.25:366", ORIGINATOR)
    assert [a.kind for a in s.smtp.anomalies] == ["roles_turned"]
    assert s.smtp.ehlo_name == "mail.fabrikam.com" and s.smtp.starttls_accepted
    assert s.tls.client_certificate == () and s.tls.cert_requested


def test_what_fastcap_says_names_atrn_when_it_turned_the_roles(tmp_path, capsys):
    """The verdicts and `follow` name the command whose 250 turned the roles: ATRN here."""
    from fastcap.run.scanner import scan

    path = write_turned(tmp_path / "atrn.pcap", "ATRN", 366)
    (s,) = list(scan(path, ports={366}))
    said = " ".join(v.message for v in s.verdicts)
    assert "after ATRN (frame 12)" in said and "(ATRN (frame 12))" in said
    assert "TURN" not in said.replace("ATRN", "")
    out = run_cli(capsys, "follow", str(path), "--session", "1", "--ports", "366", code=0)
    assert out.splitlines()[2].startswith("roles turned by ATRN: the responder ")


def test_plaintext_on_a_tls_port_names_the_listening_port_after_turn(tmp_path, backend):
    """The implicit-TLS port is the one the connection was made to, the responder's: after
    TURN that is the session's client, the server being the originator's ephemeral port."""
    from fastcap.judge.diagnose import diagnose

    path = write_turned(tmp_path / "plain465.pcap", "TURN", 465)
    (s,) = list(iter_sessions(path, ports={465}, implicit_tls_ports={465}, backend=backend))
    assert s.roles_turned and s.client == "198.51.100.25:465"
    (v,) = [v for v in diagnose(s, None, None) if v.code == "plaintext_on_tls_port"]
    assert "on 198.51.100.25:465," in v.message and ORIGINATOR not in v.message


def test_plaintext_on_a_tls_port_does_not_say_the_server_greeted_after_turn(tmp_path, backend):
    """The plaintext greeting is the listening host's: after TURN that host is the session's
    client, so neither the anomaly nor the verdict may say "the server" greeted; both name
    the host listening on the port, which is true with TURN or without."""
    from fastcap.judge.diagnose import diagnose

    path = write_turned(tmp_path / "plain465.pcap", "TURN", 465)
    (s,) = list(iter_sessions(path, ports={465}, implicit_tls_ports={465}, backend=backend))
    (a,) = [a for a in s.smtp.anomalies if a.kind == "plaintext_on_tls_port"]
    (v,) = [v for v in diagnose(s, None, None) if v.code == "plaintext_on_tls_port"]
    for text in (a.detail, v.message):
        assert "server greeted" not in text and "host listening on" in text
    assert "host listening on 198.51.100.25:465, " in v.message


def test_the_banner_host_is_not_taken_for_the_receiver_after_turn(turned_capture):
    from fastcap.run.scanner import scan

    (s,) = list(scan(turned_capture))
    by_code = {v.code: v for v in s.verdicts}
    assert by_code["no_client_cert"].message.endswith(
        f"(after TURN (frame 12) the client is the connection's responder {RESPONDER}, the "
        f"server its originator {ORIGINATOR})")
    assert not any("banner" in v.message for v in s.verdicts)
    relay = by_code["relay_denied"]
    assert ORIGINATOR in relay.message and "TURN" in relay.message
    assert "the client sent no certificate" not in relay.message


def test_every_format_names_the_sender_and_receiver_after_turn(turned_capture, capsys):
    doc = json.loads(run_cli(capsys, "scan", "--format", "json", str(turned_capture)))
    (s,) = doc["files"][0]["sessions"]
    assert (s["client"], s["server"], s["roles_turned"]) == (RESPONDER, ORIGINATOR, True)
    servers = {p["code"]: p["server"] for p in doc["problems"]}
    assert servers["no_client_cert"] == ORIGINATOR.rpartition(":")[0]
    (line,) = run_cli(capsys, "scan", "--format", "jsonl", str(turned_capture)).splitlines()
    assert json.loads(line) == s
    (row,) = csv.DictReader(io.StringIO(run_cli(capsys, "scan", "--format", "csv",
                                                str(turned_capture))))
    assert (row["client"], row["server"], row["ehlo"]) == (RESPONDER, ORIGINATOR,
                                                          "mail.fabrikam.com")
    table = run_cli(capsys, "scan", "-v", str(turned_capture))
    assert f"{RESPONDER} -> {ORIGINATOR}" in table
    assert f"session 1 ({RESPONDER} -> {ORIGINATOR})" in table
    (group,) = [x for x in table.splitlines() if x.startswith("!") and "no_client_cert" in x]
    assert " 203.0.113.10 " in group and "outlook.com" not in group


def test_csv_carries_roles_turned_and_the_responder_greeting_as_json_does(turned_capture,
                                                                         capsys):
    """CSV says TURN swapped the roles as JSON does, in a column after the older ones, and its
    banner is the greeting JSON's smtp.banner_text holds: the responder's, the first one."""
    from fastcap.out.report import CSV_FIELDS

    assert CSV_FIELDS[-1] == "roles_turned"
    (s,) = json.loads(run_cli(capsys, "scan", "--format", "json", str(turned_capture)))[
        "files"][0]["sessions"]
    (row,) = csv.DictReader(io.StringIO(run_cli(capsys, "scan", "--format", "csv",
                                                str(turned_capture))))
    assert row["roles_turned"] == "True" and s["roles_turned"] is True
    assert row["banner"] == s["smtp"]["banner_text"] and row["banner"].startswith("contoso-com.")
    assert "relay.contoso.com" not in row["banner"]


def test_csv_roles_turned_is_false_without_turn(tmp_path, capsys):
    sc = scenario("no_client_cert", make_pki(), sni=None)
    path = tmp_path / "plain.pcap"
    write_pcap(path, render(converse(sc), sc))
    (row,) = csv.DictReader(io.StringIO(run_cli(capsys, "scan", "--format", "csv", str(path))))
    assert row["roles_turned"] == "False" and row["client"] == ORIGINATOR


def test_zeek_logs_keep_the_connection_originator_after_turn(turned_capture, tmp_path, capsys):
    """Zeek's conn ids are the connection's: orig is who sent the SYN, whatever TURN did."""
    out = tmp_path / "logs"
    run_cli(capsys, "scan", "--format", "zeek", "-o", str(out), str(turned_capture))
    for log in ("smtp.log", "ssl.log"):
        text = (out / log).read_text().splitlines()
        names = next(x for x in text if x.startswith("#fields")).split("\t")[1:]
        rows = [dict(zip(names, x.split("\t"), strict=True)) for x in text
                if not x.startswith("#")]
        assert rows and all((r["id.orig_h"], r["id.orig_p"], r["id.resp_h"], r["id.resp_p"])
                            == ("203.0.113.10", "49152", "198.51.100.25", "25") for r in rows)


def _zeek_rows(directory, log: str) -> list[dict[str, str]]:
    text = (directory / log).read_text().splitlines()
    names = next(x for x in text if x.startswith("#fields")).split("\t")[1:]
    return [dict(zip(names, x.split("\t"), strict=True)) for x in text if not x.startswith("#")]


def test_zeek_logs_read_past_atrn_as_zeek_does(tmp_path, capsys):
    """Zeek's SMTP analyzer knows no ATRN (SMTP_cmd.def): its 250 swaps nothing there, so the
    provider's EHLO and STARTTLS after it are bad reply lines and the originator's 220 no
    command.  smtp.log keeps the originator's transaction, its last reply the 250 to ATRN,
    with no TLS, and there is no ssl.log line; after TURN, which Zeek follows, both are."""
    path = write_turned(tmp_path / "atrn.pcap", "ATRN", 366)
    out = tmp_path / "logs"
    run_cli(capsys, "scan", "--format", "zeek", "-o", str(out), "--ports", "366", str(path))
    (row,) = _zeek_rows(out, "smtp.log")
    assert (row["helo"], row["mailfrom"], row["rcptto"], row["last_reply"], row["tls"]) == (
        "relay.contoso.com", "a@contoso.com", "b@fabrikam.com", "250 OK", "F")
    assert _zeek_rows(out, "ssl.log") == [] and _zeek_rows(out, "x509.log") == []
    path = write_turned(tmp_path / "turn.pcap", "TURN", 366)
    run_cli(capsys, "scan", "--format", "zeek", "-o", str(out), "--ports", "366", str(path))
    (row,) = _zeek_rows(out, "smtp.log")
    assert (row["helo"], row["tls"]) == ("mail.fabrikam.com", "T")
    assert len(_zeek_rows(out, "ssl.log")) == 1


def test_the_report_ladder_draws_each_line_from_its_sender_after_turn(turned_capture):
    """The ladder's columns are the session's client and server: the responder's banner and
    its 250 to TURN go from the client, the originator's commands before the turn and its
    greeting after it from the server, the responder's EHLO and ClientHello from the client."""
    from fastcap.out.html import ladder
    from fastcap.run.scanner import scan

    (s,) = list(scan(turned_capture))
    ways = {a.label.split(" ")[0] + f"@{a.frame}": a.direction for a in ladder(s)}
    assert {k: ways[k] for k in ("220@4", "EHLO@5", "TURN@11", "250@12", "220@13", "EHLO@14",
                                 "ClientHello@18")} == {
        "220@4": "c2s", "EHLO@5": "s2c", "TURN@11": "s2c", "250@12": "c2s", "220@13": "s2c",
        "EHLO@14": "c2s", "ClientHello@18": "c2s"}


def test_follow_names_whose_lines_are_whose_after_turn(turned_capture, capsys):
    """`follow` shows the wire's C:/S: lines under the session's client -> server head: after
    TURN it says the C: lines are the originator's, the host it names as the server."""
    out = run_cli(capsys, "follow", str(turned_capture), "--session", "1", code=0)
    head, _, note, first, *_ = out.splitlines()
    assert head.startswith(f"Session 1: {RESPONDER} -> {ORIGINATOR},")
    assert note == (f"roles turned by TURN: the responder {RESPONDER} sends the mail, C: lines "
                    f"are the originator {ORIGINATOR}'s")
    assert first.startswith("[f4] S: 220 contoso-com")


def test_mail_server_logs_are_joined_by_the_connection_ends_after_turn(turned_capture):
    """A mail server logs the connection it opened or took: its ends, not TURN's roles."""
    from fastcap.evidence.join import SessionKey

    (s,) = list(iter_sessions(turned_capture))
    k = SessionKey.of(s, "turned.pcap")
    assert (k.client_ip, k.client_port, k.server_ip, k.server_port) == (
        "203.0.113.10", 49152, "198.51.100.25", 25)


def test_follow_hides_the_credentials_the_responder_sends_after_turn(tmp_path, capsys):
    """After TURN the responder sends AUTH and answers the 334 challenges: its lines are the
    S: ones, and its credentials are as hidden as a client's."""
    pki = make_pki()
    sc = scenario("starttls_not_offered", pki, commands=(("TURN", "250 OK"),))
    conv = converse(sc)
    conv.messages += [Message(not by_responder, (t + "\r\n").encode(), "turned") for
                      by_responder, t in (
        (False, "220 relay.contoso.com ready"), (True, "EHLO mx.contoso.com"),
        (False, "250 hi"), (True, "AUTH PLAIN dXNlcgBwYXNzd29yZDEyMw=="), (False, "235 ok"),
        (True, "AUTH LOGIN"), (False, "334 VXNlcm5hbWU6"), (True, "c2VjcmV0dXNlcg=="),
        (False, "334 UGFzc3dvcmQ6"), (True, "c2VjcmV0cGFzcw=="), (False, "235 ok"),
        (True, "QUIT"), (False, "221 bye"))]
    path = tmp_path / "auth-after-turn.pcap"
    write_pcap(path, render(conv, sc))
    out = run_cli(capsys, "follow", str(path), "--session", "1", code=0)
    for secret in ("dXNlcgBwYXNzd29yZDEyMw==", "c2VjcmV0dXNlcg==", "c2VjcmV0cGFzcw=="):
        assert secret not in out
    assert "S: AUTH PLAIN [credentials hidden]" in out and "S: AUTH LOGIN" in out
    assert "C: 334 VXNlcm5hbWU6" in out


def test_follow_hides_only_what_answers_an_auth_challenge_after_turn(tmp_path, capsys):
    """A message line that starts with "334" (the last of a BDAT chunk here) is content, not
    an AUTH challenge: the lines the other side sends after it (the 250 to the message's
    end) are shown, while a real 334 challenge still hides the response to it."""
    sc = scenario("starttls_not_offered", make_pki(), commands=(("TURN", "250 OK"),))
    conv = converse(sc)
    conv.messages += [Message(not by_responder, (t + "\r\n").encode(), "turned") for
                      by_responder, t in (
        (False, "220 relay.contoso.com ready"), (True, "EHLO mx.contoso.com"),
        (False, "250 hi"), (True, "MAIL FROM:<a@fabrikam.com>"), (False, "250 ok"),
        (True, "RCPT TO:<b@contoso.com>"), (False, "250 ok"),
        (True, "BDAT 20 LAST\r\n334 crates arrived"), (False, "250 2.0.0 queued"),
        (True, "AUTH LOGIN"), (False, "334 VXNlcm5hbWU6"), (True, "c2VjcmV0dXNlcg=="),
        (False, "535 no"), (True, "QUIT"), (False, "221 bye"))]
    path = tmp_path / "data-after-turn.pcap"
    write_pcap(path, render(conv, sc))
    out = run_cli(capsys, "follow", str(path), "--session", "1", code=0)
    assert "S: 334 crates arrived" in out and "C: 250 2.0.0 queued" in out
    assert "c2VjcmV0dXNlcg==" not in out and "S: [credentials hidden]" in out
    assert "C: 535 no" in out


def test_connector_settings_do_not_take_the_sender_for_exchange_online_after_turn(
        turned_capture):
    """The connector checks (--evidence) hold a certificate against Exchange Online's inbound
    connectors only for a session to Exchange Online: after TURN the banner that names it is
    the sender's, not the receiver's (here nothing else names the receiver so)."""
    from fastcap.judge.evidence import _to_exchange_online

    (s,) = list(iter_sessions(turned_capture))
    assert s.smtp.banner_names_exchange_online and s.server_check is None
    assert not _to_exchange_online(s)
    assert _to_exchange_online(replace(s, roles_turned=False))


def test_a_second_turn_gives_the_roles_back(tmp_path, backend):
    """Each 250 to TURN reverses the roles (RFC 821 §4.1.1): after a second one the
    originator sends the mail again, and stays the client of its STARTTLS."""
    sc = scenario("no_client_cert", make_pki(), sni=None)
    conv = converse(sc)
    banner, *rest = conv.messages
    back = ((False, "TURN"), (True, "250 OK"), (False, "220 mx.contoso.com ready"))
    conv = replace(conv, messages=[
        banner, *(Message(c, (t + "\r\n").encode(), "turn") for c, t in BEFORE_TURN + back),
        *rest])
    path = tmp_path / "turned-twice.pcap"
    write_pcap(path, render(conv, sc))
    (s,) = list(iter_sessions(path, backend=backend))
    assert [a.kind for a in s.smtp.anomalies] == ["roles_turned", "roles_turned"]
    assert not s.roles_turned and (s.client, s.server) == (ORIGINATOR, RESPONDER)
    assert s.smtp.starttls_accepted and s.tls.client_certificate == ()


def test_ssl_history_marks_the_flip_after_turn_as_zeek_does(turned_capture, tmp_path, capsys):
    """After TURN the responder sends the ClientHello: Zeek's SSL analyzer (DirectionCheck in
    tls-handshake-protocol.pac) then flips its sides and raises ssl_connection_flipped, so
    ssl_history begins with "^" and its letters, like cert_chain and client_cert_chain, go
    by the TLS roles: the TLS server's certificate is cert_chain's, the client's empty
    Certificate leaves client_cert_chain_fps (empty)."""
    out = tmp_path / "logs"
    run_cli(capsys, "scan", "--format", "zeek", "-o", str(out), str(turned_capture))
    (row,) = _zeek_rows(out, "ssl.log")
    assert row["ssl_history"].startswith("^C") and row["ssl_history"].count("^") == 1
    assert row["client_cert_chain_fps"] == "(empty)" and row["cert_chain_fps"] != "(empty)"
    (s,) = list(iter_sessions(turned_capture))
    leaf = hashlib.sha256(bytes(s.tls.server_certs[0])).hexdigest()
    assert row["cert_chain_fps"].split(",")[0] == leaf
