"""Generated captures in which real OpenSSL clients resume TLS sessions, as MTAs with a TLS
session cache do: for each of four servers a full handshake, then (after the others' full
handshakes) a connection resuming it.

  server          resumes by        client certificate of the full handshake
  198.51.100.31   session ID        valid (-> ok)
  198.51.100.32   session ticket    none (empty Certificate -> no_client_cert)
  198.51.100.33   session ticket    expired, accepted by a server that ignores dates
  198.51.100.34   TLS 1.3 PSK       valid (encrypted: not visible)

Sessions 1-4 are the full handshakes, 5-8 the resumptions, in the order above.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ssl
from dataclasses import dataclass
from pathlib import Path

from fastcap_synth.certs import make_leaf
from fastcap_synth.scenarios import make_pki
from fastcap_synth.smtpgen import ACCEPTED_COMMANDS, SmtpScenario, converse, render
from fastcap_synth.tlsgen import client_context, server_context
from fastcap_synth.writers import Record, keylog_bytes, write_pcap

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
T0 = int((NOW - dt.timedelta(hours=1)).timestamp()) * 10**9
PEER = "mx1.contoso.com"
X509_V_FLAG_NO_CHECK_TIME = 0x200000  # not exposed by ssl.VerifyFlags


@dataclass
class Pair:
    how: str  # session_id | ticket | psk
    server_ip: str
    originals: list[Record]
    resumed: list[Record]


@dataclass
class ResumeCaptures:
    ca: Path  # the synth root, for ca_file
    whole: Path  # sessions 1-8
    originals: Path  # sessions 1-4 only
    resumptions: Path  # sessions 5-8 only (the originals cut out)
    pairs: list[Pair]
    keys: Path  # the clients' key log of every session


def _scenario(ip: str, n: int, **fields) -> SmtpScenario:
    return SmtpScenario(
        banner=f"220 {PEER} ESMTP Postfix (Debian/GNU)", server_name=PEER, sni=PEER,
        commands=ACCEPTED_COMMANDS, server_ip=ip, client_port=40000 + n,
        start_ns=T0 + n * 5 * 10**9, keylog=True, **fields,
    )  # fmt: skip


def build(directory: Path) -> ResumeCaptures:
    pki = make_pki(NOW)
    peer_cert = make_leaf(pki.intermediate, PEER, sans=[PEER])
    expired = make_leaf(
        pki.intermediate, "mail.fabrikam.com", sans=["mail.fabrikam.com"],
        not_before=NOW - dt.timedelta(days=400), not_after=NOW - dt.timedelta(days=3),
    )  # fmt: skip
    plan = [  # how, server, version, tickets, client certificate, server ignores dates
        ("session_id", "198.51.100.31", "1.2", False, pki.client, False),
        ("ticket", "198.51.100.32", "1.2", True, None, False),
        ("ticket", "198.51.100.33", "1.2", True, expired, True),
        ("psk", "198.51.100.34", "1.3", True, pki.client, False),
    ]
    pairs, keys = [], []
    for i, (how, ip, version, tickets, client, lenient) in enumerate(plan):
        sctx = server_context(peer_cert, client_auth="optional", client_cas=[pki.root],
                              min_version=version, max_version=version)
        if not tickets:
            sctx.options |= ssl.OP_NO_TICKET
        if lenient:
            sctx.verify_flags |= X509_V_FLAG_NO_CHECK_TIME
        cctx = client_context(cert=client, min_version=version, max_version=version)
        first = _scenario(ip, i + 1, server_ctx=sctx, client_ctx=cctx, client_cert=client)
        conv = converse(first)
        assert conv.tls is not None and conv.tls.completed and not conv.tls.resumed
        again = dataclasses.replace(first, client_port=first.client_port + 100,
                                    start_ns=first.start_ns + 30 * 10**9,
                                    tls_session=conv.ssl_session)
        conv2 = converse(again)
        assert conv2.tls is not None and conv2.tls.completed and conv2.tls.resumed, how
        pairs.append(Pair(how, ip, render(conv, first), render(conv2, again)))
        keys += conv.keylog + conv2.keylog
    ca = directory / "synth-root.pem"
    ca.write_bytes(pki.root.pem)
    out = ResumeCaptures(ca, directory / "resume.pcap", directory / "originals.pcap",
                         directory / "resumptions.pcap", pairs, directory / "resume.keys")
    out.keys.write_bytes(keylog_bytes(keys))
    originals = [r for p in pairs for r in p.originals]
    resumed = [r for p in pairs for r in p.resumed]
    write_pcap(out.whole, originals + resumed)
    write_pcap(out.originals, originals)
    write_pcap(out.resumptions, resumed)
    return out
