"""Exchange SMTP protocol logs: every line shape the reader takes facts from, the session
boundaries, format detection, the evidence entry point, damaged and UTF-16 files, and the
memory a long log costs."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from fastcap.evidence import exchange
from fastcap.evidence.detect import SETTINGS_READERS, kind_of
from fastcap.evidence.read import read_evidence
from fastcap.evidence.records import Where
from fastcap.evidence.settings import InboundConnector, Settings
from fastcap.evidence.text import MAX_WARNINGS, LogText

DATA = Path(__file__).parent / "data" / "evidence"
SEND = DATA / "SEND20260310-1.LOG"
RECV = DATA / "RECV20260310-1.LOG"
DAMAGED = DATA / "SEND20260310-2-damaged.LOG"
CONNECTOR = "Outbound to Office 365 - 1b0c6a4e-2f7d-4c1e-9a51-3d8e0f6b7a21"
HEADER = ["#Software: Microsoft Exchange Server", "#Version: 15.0.0.0",
          "#Log-type: SMTP Send Protocol Log", "#Date: 2026-03-10T09:00:00.000Z",
          "#Fields: " + ",".join(exchange.FIELDS)]


def ns(iso: str) -> int:
    dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return int(dt.astimezone(UTC).timestamp()) * 1_000_000_000 + dt.microsecond * 1000


def row(t: str, sid: str, seq: int, event: str, data: str = "", context: str = "",
        connector: str = "C", local: str = "10.0.0.1:40000",
        remote: str = "192.0.2.9:25") -> str:
    """One log line, quoted as Exchange quotes (only fields with a comma or a quote)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(
        [t, connector, sid, seq, local, remote, event, data, context])
    return out.getvalue()


def write(tmp_path: Path, lines: list[str], header: list[str] | None = None,
          name: str = "log.LOG") -> Path:
    path = tmp_path / name
    path.write_text("\r\n".join((HEADER if header is None else header) + lines) + "\r\n",
                    encoding="utf-8", newline="")
    return path


def read(path: Path) -> tuple[list, list[str]]:
    warnings: list[str] = []
    return list(exchange.conversations(LogText(path), warnings.append)), warnings


def session(sid: str, t: str = "2026-03-10T10:00:00.000Z", *, tls: list[tuple] = (),
            after: list[tuple] = (), local: str = "10.0.0.1:40000",
            connector: str = "C") -> list[str]:
    """A send-log session: connect, banner, EHLO, STARTTLS, `tls` lines, `after` lines."""
    events = [("*", "", "attempting to connect"), ("+", "", ""),
              ("<", "220 mx.example.net Microsoft ESMTP MAIL Service ready", ""),
              (">", "EHLO ex.example.org", ""), ("<", "250 mx.example.net Hello", ""),
              (">", "STARTTLS", ""), ("<", "220 2.0.0 SMTP server ready", ""), *tls,
              (">", "EHLO ex.example.org", ""), ("<", "250 mx.example.net Hello", ""),
              *after, (">", "QUIT", ""), ("<", "221 2.0.0 Bye", ""), ("-", "", "Local")]
    return [row(t, sid, i, e, d, c, connector=connector, local=local if i else "")
            for i, (e, d, c) in enumerate(events)]


# ---- the story fixtures ------------------------------------------------------------------

def test_send_log_sessions_one_and_two():
    convs, warnings = read(SEND)
    assert warnings == []
    s1, s2 = convs
    for c in convs:
        assert (c.kind, c.host_role, c.connector) == ("exchange-send", "client", CONNECTOR)
        assert (c.local_ip, c.remote_ip, c.remote_port) == ("10.1.2.10", "52.101.68.5", 25)
        assert c.remote_name == "AM4PEPF00027A5C.mail.protection.outlook.com"
        assert c.starttls and c.tls_protocol == "TLS1.2"
        assert c.tls_cipher == "CALG_AES_256, CALG_SHA_384, CALG_ECDH_EPHEM"
        assert c.cert_received.subject.startswith("CN=mail.protection.outlook.com, O=Microsoft")
        assert c.sender == "alerts@contoso.com" and c.recipients == ("ops@fabrikam.com",)
        rejected = c.rejection()
        assert (rejected.code, rejected.enhanced, rejected.after_tls) == (550, "5.7.64", True)
        assert rejected.text.startswith("550 5.7.64 TenantAttribution; Relay Access Denied")
        assert c.replies[-1].code == 221  # the last reply is kept too
    assert (s1.local_port, s1.session_id, s1.start_ns) == (
        50123, "08DE5F3A2B1C4D01", ns("2026-03-10T09:15:02.118Z"))
    assert (s2.local_port, s2.session_id, s2.start_ns) == (
        50177, "08DE5F3A2B1C4D0A", ns("2026-03-10T09:20:41.502Z"))
    assert s1.cert_sent is None  # session 1 presents no client certificate
    sent = s2.cert_sent
    assert (sent.subject, sent.issuer, sent.names) == (
        "CN=mail.contoso.com", "CN=Contoso Test Issuing CA, O=Contoso Test PKI",
        ("mail.contoso.com",))
    lines = SEND.read_text().splitlines()
    serial_line = next(i for i, t in enumerate(lines, 1)
                       if "08DE5F3A2B1C4D0A" in t and t.endswith(",Certificate serial number"))
    def logged(n: int) -> str:
        return lines[n - 1].split(",")[-2].replace(" ", "").replace(":", "").upper()

    assert sent.serial == logged(serial_line) and sent.thumbprint == logged(serial_line + 1)
    assert sent.where.line == serial_line - 3  # the "Sending certificate" line
    assert s1.first.line == 6 and s1.last.line == s2.first.line - 1 and s2.last.line == 61


def test_receive_log_one_line_certificates():
    (c,), warnings = read(RECV)
    assert warnings == []
    assert (c.kind, c.host_role) == ("exchange-receive", "server")
    assert (c.local_ip, c.local_port, c.remote_ip, c.remote_port) == (
        "10.1.2.10", 25, "40.107.22.95", 29012)
    assert c.remote_name == "EUR05-DB8-obe.outbound.protection.outlook.com"  # from EHLO
    own, peer = c.cert_sent, c.cert_received
    assert (own.subject, own.issuer) == ("CN=mail.contoso.com",
                                         "CN=Contoso Test Issuing CA, O=Contoso Test PKI")
    assert own.serial == "4E0D3C2B1A09F8E7D6C5B4A392817160"
    assert own.thumbprint == "0A1B2C3D4E5F60718293A4B5C6D7E8F901234567"
    assert own.names == ("mail.contoso.com", "autodiscover.contoso.com")
    assert own.not_after_ns == ns("2027-06-01T00:00:00Z")
    assert peer.subject == "CN=mail.protection.outlook.com, O=Microsoft Corporation, " \
                           "L=Redmond, S=WA, C=US"
    assert peer.issuer == "CN=DigiCert Cloud Services CA-1, O=DigiCert Inc, C=US"
    assert peer.not_after_ns == ns("2026-09-30T23:59:59Z")
    assert c.tls_protocol == "TLS1.2" and c.starttls
    assert [t for t, _ in c.notes] == ["Client certificate chain validation status: 'Valid'"]
    assert c.rejection() is None and c.replies[-1].text == "221 2.0.0 Closing connection."
    assert c.replies[-1].after_tls and c.sender == "notify@fabrikam.com"


# ---- line shapes -------------------------------------------------------------------------

@pytest.mark.parametrize(("logged", "name"), [
    ("SP_PROT_TLS1_0_CLIENT", "TLS1.0"), ("SP_PROT_TLS1_1_SERVER", "TLS1.1"),
    ("SP_PROT_TLS1_2_CLIENT", "TLS1.2"), ("SP_PROT_TLS1_3_CLIENT", "TLS1.3"),
    ("SP_PROT_TLS1_CLIENT", "TLS1.0"), ("SP_PROT_SSL3_SERVER", "SSLv3"),
    ("SP_PROT_FUTURE_CLIENT", "SP_PROT_FUTURE_CLIENT"),
])
def test_tls_protocol_names(tmp_path, logged, name):
    ok = (f"TLS protocol {logged} negotiation succeeded using bulk encryption algorithm "
          "CALG_AES_128 with strength 128 bits, MAC hash algorithm CALG_SHA_256 with strength "
          "0 bits and key exchange algorithm CALG_ECDH_EPHEM with strength 256 bits")
    (c,), _ = read(write(tmp_path, session("08D0000000000001", tls=[("*", "", ok)])))
    assert (c.starttls, c.tls_protocol) == (True, name)
    assert c.tls_cipher == "CALG_AES_128, CALG_SHA_256, CALG_ECDH_EPHEM"


def test_tls_failure_is_a_note_and_not_tls(tmp_path):
    lines = session("08D0000000000002", tls=[
        ("*", "", "Sending certificate"), ("*", "CN=ex.example.org", "Certificate subject"),
        ("*", "", "TLS negotiation failed with error NoCredentials")])
    (c,), _ = read(write(tmp_path, lines))
    assert c.starttls is False and c.tls_protocol is None
    assert c.notes[0][0] == "TLS negotiation failed with error NoCredentials"
    assert c.notes[0][1].line == 5 + 10  # header lines, then the 10th line of the session
    assert c.cert_sent.subject == "CN=ex.example.org" and c.cert_sent.issuer is None


def test_multi_line_certificate_fields(tmp_path):
    lines = session("08D0000000000003", tls=[
        ("*", "", "Remote certificate"),
        ("*", "CN=mx.example.net, O=Example, C=US", "Certificate subject"),
        ("*", "CN=Example CA, O=Example", "Certificate issuer name"),
        ("*", "0a 1b 2c", "Certificate serial number"),
        ("*", "ab:cd:ef:01", "Certificate thumbprint"),
        ("*", "mx.example.net;*.example.net", "Certificate alternate names"),
        ("*", "", "Received certificate"),
        ("*", "99AA", "Certificate thumbprint")])
    (c,), _ = read(write(tmp_path, lines))
    # the older builds' "Received certificate" names the peer's too; the later one wins
    assert c.cert_received.thumbprint == "99AA" and c.cert_received.subject is None
    lines = lines[:13] + lines[15:]  # without the "Received certificate" lines
    (c,), _ = read(write(tmp_path, lines))
    r = c.cert_received
    assert (r.subject, r.issuer) == ("CN=mx.example.net, O=Example, C=US",
                                     "CN=Example CA, O=Example")
    assert (r.serial, r.thumbprint, r.names) == ("0A1B2C", "ABCDEF01",
                                                 ("mx.example.net", "*.example.net"))
    assert c.cert_sent is None


def test_one_line_certificate_with_many_rdns(tmp_path):
    data = (" E=pki@example.org, CN=mail.example.org, OU=Mail, O=Example Org, C=DE "
            "CN=Example Org Issuing CA 2, O=Example Org, C=DE 00FF 1234ABCD "
            "2026-01-01T00:00:00.000Z 2026-03-01T12:00:00.000Z mail.example.org")
    ctx = ("Remote certificate Subject Issuer name Serial number Thumbprint Not before "
           "Not after Subject alternate names")
    (c,), warnings = read(write(tmp_path, session("08D0000000000004",
                                                  tls=[("*", data, ctx)])))
    r = c.cert_received
    assert r.subject == "E=pki@example.org, CN=mail.example.org, OU=Mail, O=Example Org, C=DE"
    assert r.issuer == "CN=Example Org Issuing CA 2, O=Example Org, C=DE"
    assert (r.serial, r.thumbprint, r.names) == ("00FF", "1234ABCD", ("mail.example.org",))
    assert r.not_after_ns == ns("2026-03-01T12:00:00Z") and warnings == []


def test_replies_before_and_after_starttls(tmp_path):
    lines = [row("2026-03-10T10:00:00.000Z", "08D0000000000005", i, e, d)
             for i, (e, d) in enumerate([
                 ("+", ""), ("<", "220 mx ready"), (">", "EHLO a"), ("<", "250 mx"),
                 (">", "MAIL FROM:<a@example.org>"),
                 ("<", "451 5.7.3 Must issue a STARTTLS command first"),
                 (">", "STARTTLS"), ("<", "220 2.0.0 SMTP server ready"),
                 (">", "EHLO a"), ("<", "250 mx"), (">", "MAIL FROM:<a@example.org>"),
                 ("<", "250 2.1.0 Sender OK"), (">", "RCPT TO:<b@example.net>"),
                 ("<", '550 5.7.64 TenantAttribution; Relay Access Denied "x, y"'),
                 ("-", "")])]
    (c,), _ = read(write(tmp_path, lines))
    assert [(r.code, r.enhanced, r.after_tls) for r in c.replies] == [
        (451, "5.7.3", False), (550, "5.7.64", True)]  # the 550 is also the last reply
    assert c.replies[1].text == '550 5.7.64 TenantAttribution; Relay Access Denied "x, y"'
    assert c.rejection().code == 451 and c.replies[1].where.line == 5 + 14
    assert c.starttls and c.tls_protocol is None  # accepted, no negotiation line logged


def test_x_anonymoustls_starts_tls_as_starttls_does(tmp_path):
    """Exchange's STARTTLS between its own servers: the 220 to it starts TLS, and a 550
    after it was said over TLS."""
    lines = [row("2026-03-10T10:00:00.000Z", "08D000000000000B", i, e, d)
             for i, (e, d) in enumerate([
                 ("+", ""), ("<", "220 mx ready"), (">", "EHLO a"), ("<", "250 mx"),
                 (">", "X-ANONYMOUSTLS"), ("<", "220 2.0.0 SMTP server ready"),
                 (">", "EHLO a"), ("<", "250 mx"), (">", "MAIL FROM:<a@example.org>"),
                 ("<", "550 5.7.64 TenantAttribution; Relay Access Denied"), ("-", "")])]
    (c,), _ = read(write(tmp_path, lines))
    assert c.starttls and c.rejection().after_tls


def test_a_line_cut_inside_quotes_does_not_take_the_next(tmp_path):
    lines = session("08D0000000000009")
    lines.insert(3, lines[2][:-12].replace(",<,", ',<,"', 1))  # the banner, cut in quotes
    (c,), warnings = read(write(tmp_path, lines))
    assert c.last.line == 5 + len(lines) and c.replies[-1].text == "221 2.0.0 Bye"
    assert warnings == [f"{tmp_path / 'log.LOG'} line 9: 8 fields where an SMTP protocol "
                        "log line has 9; line skipped"]


@pytest.mark.parametrize("bad", ["2300-03-10T10:00:00.000Z", "2026-02-30T10:00:00.000Z",
                                 "10/03/2026 10:00:00"])
def test_a_date_no_capture_can_carry_is_a_skipped_line_not_a_dateless_one(tmp_path, bad):
    """Year 2300 fits the pattern but not the int64 nanoseconds a capture's times are kept
    in, and 30 February is no day; read as absent, the line's session would start in 1970."""
    lines = session("08D000000000000A")
    lines[0] = lines[0].replace("2026-03-10T10:00:00.000Z", bad, 1)
    (c,), warnings = read(write(tmp_path, lines))
    assert warnings == [f"{tmp_path / 'log.LOG'} line 6: date-time {bad!r} is not "
                        "yyyy-mm-ddThh:mm:ss.fffZ, a date from 1677 to 2262; line skipped"]
    assert c.first.line == 7 and c.start_ns == ns("2026-03-10T10:00:00.000Z")


def test_replies_are_capped(tmp_path):
    after = [(">", f"RCPT TO:<u{i}@example.net>", "") for i in range(1)]
    after += [("<", f"550 5.1.1 User unknown {i}", "") for i in range(30)]
    (c,), _ = read(write(tmp_path, session("08D0000000000006", after=after)))
    assert len(c.replies) == exchange.MAX_REPLIES
    assert c.replies[-1].text == "221 2.0.0 Bye"
    assert c.replies[-2].text == f"550 5.1.1 User unknown {exchange.MAX_REPLIES - 2}"


def test_fields_in_another_order(tmp_path):
    order = ["session-id", "date-time", "connector-id", "sequence-number", "local-endpoint",
             "remote-endpoint", "event", "data", "context"]
    header = HEADER[:4] + ["#Fields: " + ",".join(order)]
    lines = []
    for line in session("08D0000000000007"):
        f = next(csv.reader([line]))
        f = [f[2], f[0], f[1], *f[3:]]
        out = io.StringIO()
        csv.writer(out, lineterminator="").writerow(f)
        lines.append(out.getvalue())
    (c,), warnings = read(write(tmp_path, lines, header))
    assert warnings == [] and c.session_id == "08D0000000000007" and c.local_port == 40000


def test_ipv6_endpoints(tmp_path):
    lines = [row("2026-03-10T10:00:00.000Z", "08D000000000000B", i, e, d,
                 local="[2001:db8::10]:41000", remote="[2001:db8::25]:25")
             for i, (e, d) in enumerate([("+", ""), ("<", "220 mx"), ("-", "")])]
    (c,), _ = read(write(tmp_path, lines))
    assert (c.local_ip, c.local_port, c.remote_ip, c.remote_port) == (
        "2001:db8::10", 41000, "2001:db8::25", 25)
    assert c.to_dict()["remote"] == "[2001:db8::25]:25"


def test_receive_kind_from_the_replies_when_no_header(tmp_path):
    lines = [row("2026-03-10T10:00:00.000Z", "08D0000000000008", i, e, d,
                 local="10.0.0.1:25", remote="198.51.100.4:5000")
             for i, (e, d) in enumerate([("+", ""), (">", "220 me ready"),
                                         ("<", "EHLO peer.example"), (">", "250 me"),
                                         ("-", "")])]
    (c,), _ = read(write(tmp_path, lines, header=[]))
    assert (c.kind, c.host_role, c.remote_name) == ("exchange-receive", "server",
                                                    "peer.example")


# ---- boundaries and lines_of -------------------------------------------------------------

def test_interleaved_sessions(tmp_path):
    a = session("08D00000000000A1", "2026-03-10T10:00:00.000Z", local="10.0.0.1:41000")
    b = session("08D00000000000B2", "2026-03-10T10:00:00.500Z", local="10.0.0.1:42000",
                after=[("<", "452 4.3.1 Insufficient system resources", "")])
    c = session("08D00000000000A1", "2026-03-10T10:00:01.000Z", local="10.0.0.1:43000",
                connector="Other")  # the same session-id under another connector
    mixed = []
    for i in range(max(len(a), len(b), len(c))):
        for s in (a, b, c)[(i % 3):] + (a, b, c)[:(i % 3)]:
            if i < len(s):
                mixed.append(s[i])
    mixed.append(row("2026-03-10T10:00:02.000Z", "08D00000000000C3", 0, "+"))  # never ends
    path = write(tmp_path, mixed)
    convs, warnings = read(path)
    assert warnings == []
    assert sorted((x.connector, x.local_port) for x in convs) == [
        ("C", 40000), ("C", 41000), ("C", 42000), ("Other", 43000)]
    ends = [x.last.line for x in convs]
    assert ends == sorted(ends) and convs[-1].session_id == "08D00000000000C3"  # by their end
    convs = sorted(convs[:3], key=lambda x: x.local_port)
    text = LogText(path)
    for conv, src in zip(convs, (a, b, c), strict=True):
        got = list(exchange.lines_of(text, conv))
        assert [line.text for _, line in got] == src
        assert got[0][1].number == conv.first.line and got[-1][1].number == conv.last.line
        assert all(t == conv.start_ns for t, _ in got)
    assert convs[1].rejection().code == 452 and convs[0].rejection() is None
    assert ends[-1] == 5 + len(mixed)


def test_silent_sessions_are_ended_and_not_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(exchange, "_SWEEP", 4)
    cut_short = [row("2026-03-10T08:00:00.000Z", "08D0000000000010", 0, "+")]
    later = session("08D0000000000011", "2026-03-10T10:00:00.000Z")
    convs = []
    gen = exchange.conversations(LogText(write(tmp_path, cut_short + later)), print)
    convs.append(next(gen))  # yielded before the file ends: silent for two hours
    assert convs[0].session_id == "08D0000000000010"
    assert convs[0].end_ns == ns("2026-03-10T08:00:00Z")
    assert [c.session_id for c in gen] == ["08D0000000000011"]


# ---- detection ---------------------------------------------------------------------------

def test_detects_send_receive_and_headerless_pieces():
    for path in (SEND, RECV, DAMAGED):
        assert kind_of(LogText(path).head()) == "exchange-protocol"
    body = "\n".join(SEND.read_text().splitlines()[5:])  # a piece without the header
    assert exchange.looks_like(body) and kind_of(body) == "exchange-protocol"


@pytest.mark.parametrize("head", [
    "",
    "# fastcap\nScan huge captures for SMTP conversations.\n",
    "Mar 10 09:31:17 relay1 postfix/smtp[4711]: 3F2A1C: to=<ops@fabrikam.com>, "
    "relay=contoso-com.mail.protection.outlook.com[52.101.68.5]:25, status=bounced\n",
    "#Software: Microsoft Exchange Server\n#Version: 15.02.1544.004\n"
    "#Log-type: Message Tracking Log\n#Date: 2026-03-10T09:00:00.000Z\n"
    "#Fields: date-time,client-ip,client-hostname,server-ip,server-hostname,"
    "source-context,connector-id,source,event-id,internal-message-id,message-id\n"
    "2026-03-10T09:15:02.463Z,10.1.2.10,EX01,52.101.68.5,,,Outbound to Office 365,SMTP,"
    "FAIL,2748779069441,<a@contoso.com>\n",
    '"Received","SenderAddress","RecipientAddress","Subject","Status","ToIP","FromIP"\n'
    '"3/10/2026 9:15:02 AM","alerts@contoso.com","ops@fabrikam.com","x","Failed",,'
    '"203.0.113.10"\n',
    '[{"Name": "From on-prem contoso", "ConnectorType": "OnPremises"}]',
])
def test_other_formats_are_not_protocol_logs(head):
    assert not exchange.looks_like(head)
    assert kind_of(head) != "exchange-protocol"


# ---- the entry point ---------------------------------------------------------------------

def test_read_evidence_files_and_order(tmp_path):
    unknown = tmp_path / "notes.txt"
    unknown.write_text("nothing to see\n")
    ev = read_evidence([RECV, SEND, unknown, tmp_path / "missing.LOG"])
    assert [(f.path, f.kind, f.encoding, f.lines, f.conversations) for f in ev.files] == [
        (str(RECV), "exchange-protocol", "utf-8", 27, 1),
        (str(SEND), "exchange-protocol", "utf-8", 61, 2)]
    assert [c.start_ns for c in ev.conversations] == sorted(c.start_ns for c in ev.conversations)
    assert [c.kind for c in ev.conversations] == [
        "exchange-send", "exchange-send", "exchange-receive"]
    assert ev.warnings[0].startswith(f"{unknown}: not a log fastcap reads (")
    assert ev.warnings[1].startswith(f"{tmp_path / 'missing.LOG'}: cannot read")
    assert len(ev.warnings) == 2 and not ev.settings
    got = ev.lines_of(ev.conversations[2])
    assert len(got) == 22 and got[0][1].number == 6 and got[-1][1].text.endswith(",-,,Remote")


def test_settings_exports_are_read_whole_and_merged(tmp_path, monkeypatch):
    """The table's settings side: a reader registered for a kind gets the whole decoded
    text of each file of that kind, and their Settings are merged."""
    seen = []

    def read_settings(text, path, warn):
        seen.append((path, text))
        return Settings(inbound=(InboundConnector(
            json.loads(text)["Name"], "OnPremises", (), (), None, None, None, None, True,
            Where(path, 1, 0)),))

    fake = SimpleNamespace(looks_like=lambda head: head.lstrip().startswith("{"),
                           read_settings=read_settings)
    monkeypatch.setitem(SETTINGS_READERS, "powershell-json", fake)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_bytes('{"Name": "From on-prem contoso"}'.encode("utf-16"))  # PowerShell 5.1 `>`
    b.write_text('{"Name": "Partner"}', encoding="utf-8-sig")
    ev = read_evidence([a, SEND, b])
    assert seen == [(str(a), '{"Name": "From on-prem contoso"}'), (str(b), '{"Name": "Partner"}')]
    assert [c.name for c in ev.settings.inbound] == ["From on-prem contoso", "Partner"]
    assert [(f.kind, f.encoding, f.conversations) for f in ev.files] == [
        ("powershell-json", "utf-16-le", 0), ("exchange-protocol", "utf-8", 2),
        ("powershell-json", "utf-8", 0)]
    assert ev.warnings == () and len(ev.conversations) == 2


def test_damaged_log_warns_by_line_and_keeps_the_rest():
    ev = read_evidence([DAMAGED])
    name = str(DAMAGED)
    assert all(w.startswith(f"{name} line ") for w in ev.warnings)
    numbers = sorted({int(w.split(" line ")[1].split(":")[0]) for w in ev.warnings})
    assert numbers == [11, 15, 18, 27, 51]
    assert any("bytes that are not UTF-8" in w for w in ev.warnings)
    s1, s2 = ev.materialize(ev.conversations)
    assert s1.rejection().enhanced == "5.7.64" and s1.last.line == 31
    # the file ends in the middle of session 2: what was read of it still counts
    assert s2.session_id == "08DE5F3A2B1C4D0A" and s2.cert_sent.subject == "CN=mail.contoso.com"
    assert s2.rejection() is None and s2.last.line == 50


def test_warnings_are_capped_per_file(tmp_path):
    lines = session("08D0000000000020") + [f"garbled line {i}" for i in range(40)]
    ev = read_evidence([write(tmp_path, lines)])
    assert len(ev.conversations) == 1
    assert len(ev.warnings) == MAX_WARNINGS + 1
    assert ev.warnings[-1].endswith(f"{40 - MAX_WARNINGS} more warnings not shown "
                                    f"(at most {MAX_WARNINGS} a file)")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-8-sig"])
def test_utf16_copy_gives_the_same_conversations(tmp_path, encoding):
    copy = tmp_path / "SEND-copy.LOG"
    copy.write_bytes(SEND.read_text(encoding="utf-8").encode(encoding))
    plain, copied = read_evidence([SEND]), read_evidence([copy])
    assert copied.warnings == () and copied.files[0].lines == plain.files[0].lines
    assert [c.to_dict() for c in copied.materialize(copied.conversations)] == [
        c.to_dict() for c in plain.materialize(plain.conversations)]
    assert [c.start_ns for c in copied.conversations] == [
        c.start_ns for c in plain.conversations]
    for a, b in zip(plain.conversations, copied.conversations, strict=True):
        assert [line.text for _, line in copied.lines_of(b)] == [
            line.text for _, line in plain.lines_of(a)]


def test_logs_are_not_modified(tmp_path):
    paths = [Path(shutil.copy2(p, tmp_path / p.name)) for p in (SEND, RECV, DAMAGED)]
    before = [(p.read_bytes(), os.stat(p).st_mtime_ns) for p in paths]
    for p in paths:
        p.chmod(0o444)  # readable is all it takes
    ev = read_evidence(paths)
    for conv in ev.conversations:
        assert ev.lines_of(conv)
    assert [(p.read_bytes(), os.stat(p).st_mtime_ns) for p in paths] == before


def test_memory_is_bounded_by_open_sessions(tmp_path):
    """A 20 MB log of interleaved TLS sessions: what is kept is the conversations (a couple
    of KB each), never the lines."""
    src = [t for t in SEND.read_text().splitlines()[5:] if ",08DE5F3A2B1C4D0A," in t]
    path = tmp_path / "big.LOG"
    n = 0
    with open(path, "w", newline="") as out:
        out.write("\r\n".join(HEADER) + "\r\n")
        while out.tell() < 20_000_000:
            group = [f"{0x08DE000000000000 + n + k:016X}" for k in range(8)]
            n += 8
            for t in src:
                for sid in group:
                    out.write(t.replace("08DE5F3A2B1C4D0A", sid) + "\r\n")
    tracemalloc.start()
    try:
        kept = list(exchange.conversations(LogText(path), print))
        kept_now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(kept) == n and len({c.session_id for c in kept}) == n
    assert peak < 40 << 20
    assert kept_now / n < 4096  # bytes a conversation costs, all its TLS facts included


def test_lines_of_skips_a_line_the_csv_reader_refuses(tmp_path):
    # a bare CR inside an unquoted field of a line that also holds quotes: the csv module
    # refuses the line; reading the session again skips it, as the first reading did
    lines = session("08D00000000000D4")
    bad = row("2026-03-10T10:00:00.000Z", "08D00000000000D4", 4, ">", "EHLO a\rb",
              'say "hi"')
    lines.insert(4, bad)
    path = write(tmp_path, lines)
    (conv,), warnings = read(path)
    assert len(warnings) == 1 and "line 10" in warnings[0]
    got = [line.text for _, line in exchange.lines_of(LogText(path), conv)]
    assert got == lines[:4] + lines[5:]


@pytest.mark.parametrize(("encoding", "subject"), [
    ("utf-8", "CN=mx.example.net"), ("utf-8", "CN=mx.exämple.net"),
    ("utf-16-le", "CN=mx.exämple.net")])
def test_cr_cr_lf_line_endings_leave_no_cr_in_fields(tmp_path, encoding, subject):
    # a CRLF log converted to CRLF once more (an FTP ASCII transfer, unix2dos) ends its lines
    # in CR CR LF; the last field (context) must not keep a CR, or "Certificate thumbprint"
    # is not recognised (a non-ASCII subject takes UTF-8 reading's byte-wise path)
    lines = session("08D0000000000005", tls=[
        ("*", "", "Remote certificate"),
        ("*", subject, "Certificate subject"),
        ("*", "ab:cd:ef:01", "Certificate thumbprint")])
    path = tmp_path / "crcrlf.LOG"
    path.write_bytes(("\r\r\n".join(HEADER + lines) + "\r\r\n").encode(encoding))
    (c,), warnings = read(path)
    assert warnings == []
    assert (c.cert_received.subject, c.cert_received.thumbprint) == (subject, "ABCDEF01")
    got = [line.text for _, line in exchange.lines_of(LogText(path), c)]
    assert got == lines
