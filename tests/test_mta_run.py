"""One relay run, as an OpenSSL-based MTA with a TLS session cache makes it: every way its
client certificate can be configured, against an Exchange Online-like receiver that asks for
one, in one capture, and the verdict each configuration implies.

The handshakes are real OpenSSL ones (Python ``ssl``); the receiver accepts whatever the client
presents (as Exchange Online does, which refuses only later, with ``550 5.7.64`` inside TLS), so
every handshake finishes and the verdict rests on the certificates alone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from fastcap.run.scanner import scan
from fastcap_synth.certs import Issued, make_ca, make_leaf
from fastcap_synth.scenarios import make_pki
from fastcap_synth.smtpgen import REJECTED_COMMANDS, SmtpScenario, converse, render
from fastcap_synth.tlsgen import client_context, server_context
from fastcap_synth.writers import write_pcap

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
T0 = int((NOW - dt.timedelta(hours=1)).timestamp()) * 10**9
EXO = "contoso-com.mail.protection.outlook.com"
SENDER = "mail.fabrikam.com"  # the inbound connector's TlsSenderCertificateName
X509_V_FLAG_NO_CHECK_TIME = 0x200000  # not exposed by ssl.VerifyFlags


@dataclass
class Step:
    name: str
    client: Issued | None  # what smtp_tls_cert_file holds (None: no certificate bound)
    expected: set[str]  # the session's problem codes, plus ok / tls_session_resumed
    version: str = "1.2"
    resumes: str | None = None  # the step whose TLS session this connection resumes


def _plan() -> tuple[list[Step], list[Issued], Issued]:
    pki = make_pki(NOW)
    inter, root = pki.intermediate, pki.root
    days = dt.timedelta(days=1)
    private_root = make_ca("Fabrikam Internal Root", org="Fabrikam Ltd")
    private_issuing = make_ca("Fabrikam Internal Issuing CA", parent=private_root,
                              org="Fabrikam Ltd")
    bare = make_leaf(inter, SENDER, sans=[SENDER])
    alone = make_leaf(private_issuing, SENDER, sans=[SENDER])

    def leaf(issuer: Issued | None = inter, **kw) -> Issued:
        return make_leaf(issuer, SENDER, sans=[SENDER], **kw)

    steps = [
        Step("no certificate bound", None, {"no_client_cert"}),
        Step("expired", leaf(not_before=NOW - 400 * days, not_after=NOW - 2 * days),
             {"client_cert_expired"}),
        Step("private CA (AD CS)", leaf(private_issuing), {"client_cert_untrusted_ca"}),
        Step("private CA, leaf alone", Issued(alone.cert, alone.key, []),
             {"client_cert_untrusted_ca"}),
        Step("intermediate left out of the chain file", Issued(bare.cert, bare.key, []),
             {"client_cert_incomplete_chain"}),
        Step("wrong name", make_leaf(inter, "smtp.fabrikam.local", sans=["smtp.fabrikam.local"]),
             {"client_cert_name_mismatch"}),
        Step("self-signed", leaf(None, self_signed=True), {"client_cert_self_signed"}),
        Step("good certificate", pki.client, {"ok"}),
        Step("good certificate, session resumed", pki.client, {"tls_session_resumed", "ok"},
             resumes="good certificate"),
        Step("no certificate, session resumed", None, {"tls_session_resumed", "no_client_cert"},
             resumes="no certificate bound"),
        Step("TLS 1.3", pki.client, set(), version="1.3"),
    ]
    self_signed = next(st.client for st in steps if st.name == "self-signed")
    accepted = [root, inter, private_root, private_issuing, self_signed]
    exo_cert = make_leaf(inter, EXO, sans=[EXO, "*.mail.protection.outlook.com"])
    return steps, accepted, exo_cert  # type: ignore[return-value]


@pytest.fixture(scope="module")
def relay_run(tmp_path_factory):
    steps, accepted, exo_cert = _plan()
    records, sessions = [], {}
    for n, step in enumerate(steps):
        sctx = server_context(exo_cert, client_auth="optional", client_cas=accepted,
                              min_version=step.version, max_version=step.version)
        sctx.verify_flags |= X509_V_FLAG_NO_CHECK_TIME  # the receiver judges later, not here
        if step.resumes is None:
            cctx = client_context(cert=step.client, min_version=step.version,
                                  max_version=step.version)
            cached = None
        else:
            cctx, sctx, cached = sessions[step.resumes]
        sc = SmtpScenario(
            banner=f"220 {EXO} Microsoft ESMTP MAIL Service ready", server_name=EXO, sni=EXO,
            server_ip="52.101.68.10", client_ip="203.0.113.10", client_port=41000 + n,
            commands=REJECTED_COMMANDS, start_ns=T0 + n * 10**10, server_ctx=sctx,
            client_ctx=cctx, client_cert=step.client, tls_session=cached)
        conv = converse(sc)
        assert conv.tls is not None and conv.tls.completed, step.name
        assert bool(conv.tls.resumed) == (step.resumes is not None), step.name
        sessions[step.name] = (cctx, sctx, conv.ssl_session)
        records += render(conv, sc)
    path = tmp_path_factory.mktemp("mta") / "relay.pcap"
    write_pcap(path, records)
    ca = path.parent / "root.pem"
    ca.write_bytes(accepted[0].pem)  # Exchange Online trusts the public root alone
    return path, ca, steps


def test_every_configuration_gets_the_verdict_it_implies(relay_run):
    path, ca, steps = relay_run
    run = scan(path, ca_file=ca, expect_name=SENDER)
    sessions = list(run)
    summary = run.summary
    assert [s.number for s in sessions] == list(range(1, len(steps) + 1))
    for s, step in zip(sessions, steps, strict=True):
        codes = {v.code for v in s.verdicts}
        kept = {c for c in codes if c in ("ok", "tls_session_resumed")} | {
            v.code for v in s.verdicts if v.severity in ("warning", "error")}
        assert kept == step.expected, (step.name, [(v.code, v.message) for v in s.verdicts])
        assert "exchange_online_peer" in codes, step.name
    assert summary.with_problems == sum(
        1 for st in steps if st.expected - {"ok", "tls_session_resumed"})


def test_resumed_connections_name_their_original(relay_run):
    path, ca, steps = relay_run
    by_name = {st.name: i + 1 for i, st in enumerate(steps)}
    sessions = list(scan(path, ca_file=ca, expect_name=SENDER))
    for step in steps:
        if step.resumes is None:
            continue
        s = sessions[by_name[step.name] - 1]
        resumed = next(v for v in s.verdicts if v.code == "tls_session_resumed")
        assert f"session {by_name[step.resumes]}" in resumed.message
        inherited = [v for v in s.verdicts if v.code in step.expected - {"tls_session_resumed"}]
        assert inherited and all("inherited from session" in v.message for v in inherited)


def test_the_private_ca_and_the_missing_intermediate_get_opposite_fixes(relay_run):
    path, ca, steps = relay_run
    by_name = {st.name: i for i, st in enumerate(steps)}
    sessions = list(scan(path, ca_file=ca, expect_name=SENDER))
    private = next(v for v in sessions[by_name["private CA (AD CS)"]].verdicts
                   if v.code == "client_cert_untrusted_ca")
    missing = next(v for v in sessions[by_name["intermediate left out of the chain file"]].verdicts
                   if v.code == "client_cert_incomplete_chain")
    assert "Fabrikam Internal Issuing CA" in private.message
    assert "public" in private.hint.lower()
    assert "intermediate" in missing.hint.lower()
    assert private.hint != missing.hint
