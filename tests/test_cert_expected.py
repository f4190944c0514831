"""A server that asks for no client certificate is a problem only where one is expected:
Exchange Online, a name given with --expect-name, or the same server asking on an earlier
connection of the capture.  Elsewhere (mail to an ordinary MX) it is context, and neither the
"with problems" count nor the exit status counts it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fastcap.cli import main
from fastcap_synth.certs import make_leaf
from fastcap_synth.scenarios import make_pki
from fastcap_synth.smtpgen import ACCEPTED_COMMANDS, SmtpScenario, converse, render
from fastcap_synth.tlsgen import client_context, server_context
from fastcap_synth.writers import write_pcap

from .resumecap import NOW, PEER, T0

CORPUS = Path(__file__).resolve().parent / "data" / "corpus"
STARTTLS = ["zeek__smtp-starttls.pcap", "arkime__smtp-starttls.pcap",
            "ndpi__smtp-starttls.pcap", "sv__smtp-startssl.pcap"]


def _scan_json(capsys, *args: str) -> tuple[int, dict]:
    code = main(["scan", "-j", "1", "--format", "json", *args])
    return code, json.loads(capsys.readouterr().out)


def _problem(v: dict) -> bool:
    return v["severity"] in ("error", "warning")


@pytest.mark.parametrize("name", STARTTLS)
def test_corpus_starttls_to_ordinary_mx_is_info(capsys, name):
    code, doc = _scan_json(capsys, str(CORPUS / name))
    (f,) = doc["files"]
    sessions = f["sessions"]
    assert sessions
    not_requested = [v for s in sessions for v in s["verdicts"]
                     if v["code"] == "client_cert_not_requested"]
    for v in not_requested:
        assert v["severity"] == "info" and "no client certificate is expected" in v["message"]
    if name != "sv__smtp-startssl.pcap":  # TLS 1.3 there: the request would be encrypted
        assert not_requested
    # the count and the exit status go by severity: only the other findings count
    with_problems = sum(any(_problem(v) for v in s["verdicts"]) for s in sessions)
    assert f["summary"]["with_problems"] == with_problems
    assert code == (1 if with_problems else 0)


@pytest.fixture(scope="module")
def captures(tmp_path_factory):
    """name -> (path, CA file): captures of servers that do not ask for a certificate."""
    d = tmp_path_factory.mktemp("expected")
    pki = make_pki(NOW)
    ca = d / "root.pem"
    ca.write_bytes(pki.root.pem)
    peer_cert = make_leaf(pki.intermediate, PEER, sans=[PEER])
    postfix = {"banner": f"220 {PEER} ESMTP Postfix (Debian/GNU)", "server_name": PEER,
               "sni": PEER, "commands": ACCEPTED_COMMANDS}

    def conn(n: int, auth: str, server_ip: str = "198.51.100.40", **fields) -> list:
        fields = {**postfix, **fields}
        sctx = server_context(fields.pop("cert", peer_cert), client_auth=auth,
                              client_cas=[pki.root], max_version="1.2")
        cctx = client_context(cert=pki.client, max_version="1.2")
        sc = SmtpScenario(server_ip=server_ip, client_port=41000 + n, start_ns=T0 + n * 10**10,
                          server_ctx=sctx, client_ctx=cctx, client_cert=pki.client, **fields)
        return render(converse(sc), sc)

    out = {}
    for name, recs in {
        "ordinary": conn(1, "none"),
        # Exchange Online: its banner and its certificate (*.mail.protection.outlook.com)
        "exchange_online": conn(1, "none", banner=SmtpScenario.banner,
                                server_name=SmtpScenario.server_name,
                                sni=SmtpScenario.sni, cert=pki.server),
        # the same server asks on connection 2, not on 1 (before) nor 3 (after); another
        # server (4) never asks
        "asked_elsewhere": conn(1, "none") + conn(2, "optional") + conn(3, "none")
        + conn(4, "none", server_ip="198.51.100.41"),
        "asked": conn(1, "optional"),
    }.items():
        write_pcap(d / f"{name}.pcap", recs)
        out[name] = d / f"{name}.pcap"
    return out, ca


def _verdict(session: dict, code: str) -> dict:
    (v,) = [v for v in session["verdicts"] if v["code"] == code]
    return v


def test_ordinary_mx_exits_0(capsys, captures):
    paths, ca = captures
    code, doc = _scan_json(capsys, "--ca-file", str(ca), str(paths["ordinary"]))
    (s,) = doc["files"][0]["sessions"]
    assert [v["code"] for v in s["verdicts"]] == ["client_cert_not_requested"]
    assert s["verdicts"][0]["severity"] == "info" and s["verdicts"][0]["hint"] == ""
    assert doc["files"][0]["summary"]["with_problems"] == 0 and code == 0
    assert main(["scan", "-j", "1", "--only-problems", "--ca-file", str(ca),
                 str(paths["ordinary"])]) == 0
    assert "0 with problems" in capsys.readouterr().out


@pytest.mark.parametrize(("name", "args", "why"), [
    ("exchange_online", (), "Exchange Online attributes senders by certificate"),
    ("ordinary", ("--expect-name", "mail.fabrikam.com"), "(--expect-name)"),
])  # fmt: skip
def test_expected_certificate_makes_it_a_warning(capsys, captures, name, args, why):
    paths, ca = captures
    code, doc = _scan_json(capsys, "--ca-file", str(ca), *args, str(paths[name]))
    (s,) = doc["files"][0]["sessions"]
    v = _verdict(s, "client_cert_not_requested")
    assert v["severity"] == "warning" and why in v["message"] and "attribution" in v["hint"]
    assert doc["files"][0]["summary"]["with_problems"] == 1 and code == 1


def test_server_that_asked_on_an_earlier_connection(capsys, captures):
    paths, ca = captures
    code, doc = _scan_json(capsys, "--ca-file", str(ca), str(paths["asked_elsewhere"]))
    s1, s2, s3, s4 = doc["files"][0]["sessions"]
    assert [v["code"] for v in s2["verdicts"]] == ["ok"]
    request_frame = s2["tls"]["certificate_request"]["frame"]
    # earlier connections are judged before the request is seen: output streams unchanged
    assert _verdict(s1, "client_cert_not_requested")["severity"] == "info"
    later = _verdict(s3, "client_cert_not_requested")
    assert later["severity"] == "warning" and "attribution" in later["hint"]
    assert (f"this server ({s3['server']}) asked for one on session 2 (frame {request_frame})"
            in later["message"])
    assert _verdict(s4, "client_cert_not_requested")["severity"] == "info"  # another server
    assert doc["files"][0]["summary"]["with_problems"] == 1 and code == 1


@pytest.mark.parametrize("args", [(), ("--expect-name", "mail.fabrikam.com")])
def test_ok_says_whether_the_name_was_compared(capsys, captures, args):
    """`ok` with no name to compare says so, in the table's details and in JSON; the exit
    status is that of `ok` either way."""
    paths, ca = captures
    code, doc = _scan_json(capsys, "--ca-file", str(ca), *args, str(paths["asked"]))
    (s,) = doc["files"][0]["sessions"]
    v = _verdict(s, "ok")
    unchecked = "its name was not compared with any expected name"
    assert code == 0 and v["severity"] == "ok" and v["hint"] == ""
    assert (unchecked in v["message"]) is not bool(args)
    assert main(["scan", "-j", "1", "--details", "--ca-file", str(ca), *args,
                 str(paths["asked"])]) == 0
    text = capsys.readouterr().out
    note = ("1 session(s) ok, but the client certificate's name was not compared with any "
            "expected name: give --expect-name NAME")
    assert (note in text) is not bool(args)
