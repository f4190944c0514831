"""One capture per verdict, generated from real OpenSSL handshakes, asserting the exact set of
verdict codes `fastcap scan` gives its single session; and a tshark differential of the
certificate chains fastcap reads from the public corpus.

Unless a case is about the Exchange Online peer, the receiving server is a generic Postfix
(`mx1.contoso.com`), so no session carries `exchange_online_peer` by accident. Every capture is
stamped an hour before the test run, inside the synth certificates' validity, and scanned with
the synth root in `ca_file`, so trust verdicts only appear where a case asks for them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from fastcap.judge.diagnose import CODES
from fastcap.judge.evidence import EVIDENCE_TABLE
from fastcap.run.scanner import scan
from fastcap_synth.certs import Issued, make_ca, make_leaf
from fastcap_synth.scenarios import Pki, make_pki
from fastcap_synth.smtpgen import (
    ACCEPTED_COMMANDS,
    REJECTED_COMMANDS,
    SmtpScenario,
    converse,
    render,
)
from fastcap_synth.tlsgen import client_context, server_context
from fastcap_synth.writers import write_pcap

from .corpus import corpus_expected, corpus_params

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
CAPTURE_NS = int((NOW - dt.timedelta(hours=1)).timestamp()) * 10**9
PEER = "mx1.contoso.com"  # a receiving server that is not Exchange Online
PEER_BANNER = f"220 {PEER} ESMTP Postfix (Debian/GNU)"
SENDER = "mail.fabrikam.com"  # the name the (Exchange Online) inbound connector expects
X509_V_FLAG_NO_CHECK_TIME = 0x200000  # not exposed by ssl.VerifyFlags


@dataclass
class _SendsRoot(Issued):
    """A certificate whose owner also sends the self-signed root, as misconfigured servers do
    (``Issued.chain_pem`` leaves the root out by default)."""

    def chain_pem(self, *, include_root: bool = False) -> bytes:
        return super().chain_pem(include_root=True)


@dataclass
class Case:
    codes: set[str]  # the exact verdict codes of the session
    scenario: SmtpScenario
    tls_completed: bool | None  # how the real OpenSSL handshake ended; None: no TLS at all
    cut_handshake: bool = False  # drop every frame from the client's second TLS flight on
    note: str = ""


def _tls(
    pki: Pki,
    *,
    server: Issued,
    client: Issued | None,
    auth: str = "optional",
    client_cas: list[Issued] | None = None,
    version: str = "1.2",
    seclevel: int | None = None,
    lenient_time: bool = False,
    client_trust: tuple[Issued, ...] = (),
) -> dict:
    """SmtpScenario fields for one real handshake. ``lenient_time`` makes the server accept a
    client certificate outside its validity window (a server that does not check dates)."""
    sctx = server_context(
        server,
        client_auth=auth,
        client_cas=client_cas if client_cas is not None else [pki.root],
        min_version=version,
        max_version=version,
        seclevel=seclevel,
    )
    if lenient_time:
        sctx.verify_flags |= X509_V_FLAG_NO_CHECK_TIME
    cctx = client_context(
        cert=client,
        trust=client_trust,
        min_version=version,
        max_version=version,
        seclevel=seclevel,
    )
    return {"server_ctx": sctx, "client_ctx": cctx, "client_cert": client}


def _peer(**fields) -> SmtpScenario:
    """A session to the generic Postfix peer that delivers its mail (no 5.7.64)."""
    base = {
        "banner": PEER_BANNER,
        "server_name": PEER,
        "sni": PEER,
        "commands": ACCEPTED_COMMANDS,
        "start_ns": CAPTURE_NS,
    }
    return SmtpScenario(**{**base, **fields})


def _offers_post_handshake_auth(scenario: SmtpScenario) -> SmtpScenario:
    scenario.client_ctx.post_handshake_auth = True
    return scenario


def build_cases(pki: Pki) -> dict[str, Case]:
    inter, root = pki.intermediate, pki.root
    days = dt.timedelta(days=1)
    peer_cert = make_leaf(inter, PEER, sans=[PEER])
    client = pki.client  # mail.fabrikam.com, issued by the intermediate
    rogue = make_ca("Fabrikam Private Root CA")

    def client_leaf(issuer: Issued | None = inter, **kw) -> Issued:
        return make_leaf(issuer, SENDER, sans=[SENDER], **kw)

    def peer_with(cli: Issued | None, **kw) -> SmtpScenario:
        return _peer(**_tls(pki, server=peer_cert, client=cli, **kw))

    def server_with(srv: Issued, **fields) -> SmtpScenario:
        return _peer(**_tls(pki, server=srv, client=client), **fields)

    self_signed_client = client_leaf(None, self_signed=True)
    untrusted_client = client_leaf(rogue)
    untrusted_client = _SendsRoot(
        untrusted_client.cert, untrusted_client.key, untrusted_client.chain
    )
    bare_client = client_leaf()
    bare_client = Issued(bare_client.cert, bare_client.key, [])  # intermediate not sent
    bare_server = make_leaf(inter, PEER, sans=[PEER])
    rogue_server = make_leaf(rogue, PEER, sans=[PEER])

    cases = {
        "ok": Case({"ok"}, peer_with(client), True),
        # CN only, no SAN: every MTA accepts it; the web-PKI profile would not.
        "cert_profile_note": Case(
            {"ok", "cert_profile_note"}, peer_with(make_leaf(inter, SENDER)), True
        ),
        "no_client_cert": Case({"no_client_cert"}, peer_with(None), True),
        "client_cert_not_requested": Case(
            {"client_cert_not_requested"}, peer_with(client, auth="none"), True
        ),
        "client_cert_expired": Case(
            {"client_cert_expired"},
            peer_with(
                client_leaf(not_before=NOW - 400 * days, not_after=NOW - 3 * days),
                lenient_time=True,
            ),
            True,
        ),
        "client_cert_expired_rejected": Case(
            {"client_cert_expired", "tls_alert"},
            peer_with(client_leaf(not_before=NOW - 400 * days, not_after=NOW - 3 * days)),
            False,
            note="a server that checks dates answers certificate_expired",
        ),
        "client_cert_not_yet_valid": Case(
            {"client_cert_not_yet_valid"},
            peer_with(
                client_leaf(not_before=NOW + 10 * days, not_after=NOW + 400 * days),
                lenient_time=True,
            ),
            True,
        ),
        "client_cert_untrusted_ca": Case(
            {"client_cert_untrusted_ca"},
            peer_with(untrusted_client, client_cas=[root, rogue]),
            True,
        ),
        "client_cert_self_signed": Case(
            {"client_cert_self_signed"},
            peer_with(self_signed_client, client_cas=[root, self_signed_client]),
            True,
        ),
        "client_cert_incomplete_chain": Case(
            {"client_cert_incomplete_chain"},
            peer_with(bare_client, client_cas=[root, inter]),
            True,
        ),
        "client_cert_name_mismatch": Case(
            {"client_cert_name_mismatch"}, peer_with(pki.client_wrong_name), True
        ),
        "client_cert_no_client_auth_eku": Case(
            {"client_cert_no_client_auth_eku", "tls_alert"},
            peer_with(client_leaf(eku=("serverAuth",))),
            False,
            note="OpenSSL checks the sslclient purpose and cannot be told not to: it rejects",
        ),
        "weak_signature": Case(
            # cryptography's verifier refuses SHA-1 signatures; the CA is trusted all the same,
            # so the digest is the finding (as an error), not an untrusted CA.
            {"weak_signature"},
            peer_with(client_leaf(hash="sha1", key="rsa2048"), seclevel=0),
            True,
        ),
        "weak_key": Case({"weak_key"}, peer_with(client_leaf(key="rsa1024"), seclevel=0), True),
        "server_cert_expired": Case(
            {"server_cert_expired"},
            server_with(
                make_leaf(
                    inter, PEER, sans=[PEER], not_before=NOW - 400 * days, not_after=NOW - 3 * days
                )
            ),
            True,
        ),
        "server_cert_not_yet_valid": Case(
            {"server_cert_not_yet_valid"},
            server_with(
                make_leaf(
                    inter, PEER, sans=[PEER], not_before=NOW + 10 * days, not_after=NOW + 400 * days
                )
            ),
            True,
        ),
        "server_cert_self_signed": Case(
            {"server_cert_self_signed"},
            server_with(make_leaf(None, PEER, sans=[PEER], self_signed=True)),
            True,
        ),
        "server_cert_untrusted_ca": Case(
            {"server_cert_untrusted_ca"},
            server_with(_SendsRoot(rogue_server.cert, rogue_server.key, rogue_server.chain)),
            True,
        ),
        "server_cert_incomplete_chain": Case(
            {"server_cert_incomplete_chain"},
            server_with(Issued(bare_server.cert, bare_server.key, [])),
            True,
        ),
        "server_cert_name_mismatch": Case(
            {"server_cert_name_mismatch"},
            server_with(make_leaf(inter, "mx9.contoso.com", sans=["mx9.contoso.com"])),
            True,
        ),
        "server_cert_no_server_auth_eku": Case(
            {"server_cert_no_server_auth_eku"},
            server_with(make_leaf(inter, PEER, sans=[PEER], eku=("clientAuth",))),
            True,
        ),
        "starttls_not_offered": Case({"starttls_not_offered"}, _peer(starttls_offered=False), None),
        "starttls_refused": Case(
            {"starttls_refused"},
            _peer(
                **_tls(pki, server=peer_cert, client=client),
                starttls_reply="454 4.7.0 TLS not available due to local problem",
            ),
            None,
        ),
        "tls_alert": Case(
            {"tls_alert"},
            peer_with(client, client_trust=(rogue,)),
            False,
            note="the sending server distrusts the receiver's chain and aborts (unknown_ca)",
        ),
        "handshake_incomplete": Case(
            {"handshake_incomplete"}, peer_with(client), True, cut_handshake=True
        ),
        "tls13_encrypted": Case(
            {"tls13_encrypted"},
            _offers_post_handshake_auth(peer_with(client, version="1.3", auth="none")),
            True,
            note="no CertificateRequest, but one could come after the handshake: undecided",
        ),
        "client_cert_inferred_present": Case(
            {"tls13_encrypted", "client_cert_inferred_present"},
            peer_with(client, version="1.3"),
            True,
        ),
        "client_cert_inferred_absent": Case(
            {"tls13_encrypted", "client_cert_inferred_absent"},
            peer_with(None, version="1.3"),
            True,
        ),
        "relay_denied": Case(
            # Exchange Online offers STARTTLS; the sender ignores it and is refused in plaintext.
            {"relay_denied", "plaintext_only", "exchange_online_peer"},
            SmtpScenario(commands=REJECTED_COMMANDS, start_ns=CAPTURE_NS),
            None,
        ),
        "exchange_online_peer": Case(
            {"ok", "exchange_online_peer"},
            SmtpScenario(
                **_tls(pki, server=pki.server, client=client),
                commands=ACCEPTED_COMMANDS,
                start_ns=CAPTURE_NS,
            ),
            True,
        ),
        "exchange_online_peer_by_certificate": Case(
            # A generic banner, but the server certificate names *.mail.protection.outlook.com.
            {"ok", "exchange_online_peer"},
            _peer(
                **_tls(pki, server=pki.server, client=client),
                sni="contoso-com.mail.protection.outlook.com",
            ),
            True,
        ),
    }
    return cases


def _tcp_payload(frame: bytes) -> tuple[int, bytes]:
    """(source port, payload) of an untagged Ethernet/IPv4/TCP frame."""
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    total = struct.unpack_from(">H", ip, 2)[0]
    tcp = ip[ihl:total]
    return struct.unpack_from(">H", tcp, 0)[0], tcp[(tcp[12] >> 4) * 4 :]


def _cut_before_second_client_flight(recs: list, client_port: int) -> list:
    """The capture ends after the server's first flight: the client's Certificate /
    ClientKeyExchange flight and everything after it were never captured."""
    client_tls = [
        i
        for i, r in enumerate(recs)
        if (pl := _tcp_payload(r.data))[0] == client_port and pl[1][:1] == b"\x16"
    ]
    assert len(client_tls) >= 2, "expected ClientHello and a second client flight"
    return recs[: client_tls[1]]


@pytest.fixture(scope="module")
def verdict_captures(tmp_path_factory):
    """Every case's capture (one session each), its conversation and the trust file."""
    d = tmp_path_factory.mktemp("verdicts")
    pki = make_pki(NOW)
    ca = d / "synth-root.pem"
    ca.write_bytes(pki.root.pem)
    out = {}
    for name, case in build_cases(pki).items():
        conv = converse(case.scenario)
        recs = render(conv, case.scenario)
        if case.cut_handshake:
            recs = _cut_before_second_client_flight(recs, case.scenario.client_port)
        path = d / f"{name}.pcap"
        write_pcap(path, recs)
        out[name] = (case, conv, path)
    return out, ca


CASE_NAMES = (
    "ok",
    "cert_profile_note",
    "no_client_cert",
    "client_cert_not_requested",
    "client_cert_expired",
    "client_cert_expired_rejected",
    "client_cert_not_yet_valid",
    "client_cert_untrusted_ca",
    "client_cert_self_signed",
    "client_cert_incomplete_chain",
    "client_cert_name_mismatch",
    "client_cert_no_client_auth_eku",
    "weak_signature",
    "weak_key",
    "server_cert_expired",
    "server_cert_not_yet_valid",
    "server_cert_self_signed",
    "server_cert_untrusted_ca",
    "server_cert_incomplete_chain",
    "server_cert_name_mismatch",
    "server_cert_no_server_auth_eku",
    "starttls_not_offered",
    "starttls_refused",
    "tls_alert",
    "handshake_incomplete",
    "tls13_encrypted",
    "client_cert_inferred_present",
    "client_cert_inferred_absent",
    "relay_denied",
    "exchange_online_peer",
    "exchange_online_peer_by_certificate",
)
# Verdicts no case here produces from a real handshake, and why.
NOT_COVERED = {
    "cert_unparseable": "OpenSSL will not load or send a certificate it cannot parse",
    "no_smtp": "not a TLS/SMTP verdict; covered by tests/test_diagnose.py",
    "tls_not_reached": "not a TLS verdict; the session ends before STARTTLS",
    "tls_session_resumed": "needs an earlier connection to resume; tests/test_resumption.py",
    "capture_started_mid_session": "needs a capture cut at its start: tests/test_midsession.py",
    "client_cert_not_captured": "needs a capture cut at its start: tests/test_midsession.py",
    "decryption_failed": "needs a key log: tests/test_decrypt_scan.py",
    "no_key_for_session": "needs a key log: tests/test_decrypt_scan.py",
    "plaintext_on_tls_port": "needs a plaintext server on an implicit-TLS port: "
                             "tests/test_session.py",
    **{code: "needs a mail-server log or connector settings: tests/test_evidence_findings.py"
       for code in EVIDENCE_TABLE},
}


def test_every_verdict_code_has_a_capture(verdict_captures):
    cases, _ca = verdict_captures
    assert tuple(cases) == CASE_NAMES
    produced = set().union(*(case.codes for case, _conv, _path in cases.values()))
    assert produced <= set(CODES)
    assert set(CODES) - produced == set(NOT_COVERED)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_capture_gets_exactly_its_verdicts(verdict_captures, name):
    cases, ca = verdict_captures
    case, conv, path = cases[name]
    # The handshake really happened (or really failed) in OpenSSL, as the case claims.
    if case.tls_completed is None:
        assert conv.tls is None, conv.tls
    else:
        assert conv.tls is not None
        if name == "weak_signature" and not conv.tls.completed:
            pytest.skip(
                f"this OpenSSL refuses a SHA-1 client certificate at seclevel 0: {conv.tls.error}"
            )
        assert conv.tls.completed is case.tls_completed, (conv.tls, case.note)
    (session,) = list(scan(path, ca_file=ca, expect_name=SENDER))
    codes = {v.code for v in session.verdicts}
    assert codes == case.codes, [(v.code, v.message) for v in session.verdicts]
    if name == "weak_signature":  # rejected for its digest alone: an error, said plainly
        (v,) = session.verdicts
        assert v.severity == "error" and "trusted CA" in v.message


def test_incomplete_capture_really_stops_mid_handshake(verdict_captures):
    cases, ca = verdict_captures
    _case, _conv, path = cases["handshake_incomplete"]
    (session,) = list(scan(path, ca_file=ca, expect_name=SENDER))
    t = session.tls
    assert t.outcome == "incomplete" and t.server_certs and t.cert_requested
    assert t.client_certificate is None


@pytest.mark.parametrize(
    ("name", "role", "sent"),
    [
        ("client_cert_untrusted_ca", "client", ["leaf", "root"]),
        ("client_cert_incomplete_chain", "client", ["leaf"]),
        ("client_cert_self_signed", "client", ["root"]),
        ("ok", "client", ["leaf", "intermediate"]),
        ("server_cert_untrusted_ca", "server", ["leaf", "root"]),
        ("server_cert_incomplete_chain", "server", ["leaf"]),
    ],
)
def test_chains_went_on_the_wire_as_intended(verdict_captures, name, role, sent):
    """The trust verdicts rest on what was sent: leaf+private root, a bare leaf, and so on."""
    cases, ca = verdict_captures
    (session,) = list(scan(cases[name][2], ca_file=ca, expect_name=SENDER))
    check = session.client_check if role == "client" else session.server_check
    kinds = [
        "root" if c.self_signed else "intermediate" if i else "leaf"
        for i, c in enumerate(check.certs)
    ]
    assert kinds == sent


# --- tshark differential: the certificates of every corpus chain, by SHA-1 thumbprint --------

CORPUS_EXPECTED = corpus_expected()
# Files where tshark and fastcap are known to show different certificate bytes, and why.
CERT_DEVIATIONS = {
    "zeek__tls-fragmented-handshake.pcap": (
        "tshark 4.0 cannot reassemble the 339,629-byte server Certificate (it shows "
        "'Encrypted Handshake Message'); fastcap stops that direction at its 256 KiB "
        "per-direction byte cap, so neither shows the chain"
    ),
    "sv__tls-der-incomplete-header.pcap": (
        "the 9-byte 'certificate' starts 30 05 ...: tshark's tls.handshake.certificate field "
        "spans only the outer DER TLV (7 bytes), fastcap keeps the 9 bytes as sent"
    ),
}


def _has_certs(name: str) -> bool:
    hs = CORPUS_EXPECTED.get(name, {}).get("tls_handshakes") or []
    return any(h.get("server_certs") or h.get("client_certs") for h in hs)


def _cert_corpus_params():
    """Corpus files whose handshakes carry certificates in expected.json (plus deviations)."""
    keep = []
    for p in corpus_params():
        path = p.values[0]
        if path is None or _has_certs(path.name) or path.name in CERT_DEVIATIONS:
            keep.append(p)
    return keep or [pytest.param(None, marks=pytest.mark.skip(reason="no corpus chains"))]


def _chains_in(node, out: list[list[str]]) -> None:
    """Every Certificate message in a tshark JSON tree, as SHA-1 thumbprints in order."""
    if isinstance(node, list):
        for x in node:
            _chains_in(x, out)
    elif isinstance(node, dict):
        if node.get("tls.handshake.type") == "11" and "tls.handshake.certificates" in node:
            certs = node["tls.handshake.certificates"].get("tls.handshake.certificate", [])
            certs = [certs] if isinstance(certs, str) else certs
            out.append(
                [hashlib.sha1(bytes.fromhex(c.replace(":", ""))).hexdigest().upper() for c in certs]
            )
        else:
            for v in node.values():
                _chains_in(v, out)


def _last(layer):
    return layer[-1] if isinstance(layer, list) else layer


def _endpoints(layers: dict) -> tuple[str, str]:
    """(source, destination) of a frame, spelled as fastcap spells Session.client/server."""
    tcp = _last(layers["tcp"])
    sport, dport = tcp["tcp.srcport"], tcp["tcp.dstport"]
    if "ip" in layers:
        ip = _last(layers["ip"])
        return f"{ip['ip.src']}:{sport}", f"{ip['ip.dst']}:{dport}"
    ip6 = _last(layers["ipv6"])
    return f"[{ip6['ipv6.src']}]:{sport}", f"[{ip6['ipv6.dst']}]:{dport}"


def tshark_chains(tshark: str, path: Path) -> dict[tuple[str, str], list[list[str]]]:
    """(sender, receiver) -> the chains of every Certificate message tshark shows, in order.
    ``ip``/``ipv6``/``tcp`` are added to the JSON layers only to tell the direction."""
    r = subprocess.run(
        [
            tshark,
            "-r",
            str(path),
            "-n",
            "-Y",
            "tls.handshake.type==11",
            "-T",
            "json",
            "--no-duplicate-keys",
            "-J",
            "frame ip ipv6 tcp tls",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 or r.stdout.strip(), r.stderr
    out: dict[tuple[str, str], list[list[str]]] = {}
    for pkt in json.loads(r.stdout or "[]"):
        layers = pkt["_source"]["layers"]
        chains: list[list[str]] = []
        _chains_in(layers.get("tls"), chains)
        for chain in chains:
            out.setdefault(_endpoints(layers), []).append(chain)
    return out


@pytest.mark.parametrize("path", _cert_corpus_params())
def test_corpus_certificates_match_tshark(tshark, path):
    exp = CORPUS_EXPECTED[path.name]
    ports = {25} | {int(h["server"].rsplit(":", 1)[1]) for h in exp["tls_handshakes"]}
    ours: dict[tuple[str, str], list[str]] = {}
    for s in scan(path, ports=ports):
        if s.server_check is not None:
            ours[(s.server, s.client)] = [c.sha1 for c in s.server_check.certs]
        if s.client_check is not None:
            ours[(s.client, s.server)] = [c.sha1 for c in s.client_check.certs]
    # fastcap reports one chain per direction: the first Certificate message.
    theirs = {k: v[0] for k, v in tshark_chains(tshark, path).items()}
    if ours != theirs and path.name in CERT_DEVIATIONS:
        pytest.xfail(CERT_DEVIATIONS[path.name])
    assert ours == theirs
    assert ours or path.name in CERT_DEVIATIONS, "expected.json lists certificates"
