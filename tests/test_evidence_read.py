"""The evidence entry point keeps only what the join needs of each log conversation and
reads the rest again from the file: the facts it reads back must be exactly those the
readers give, by region or by a whole second pass, and what it keeps must stay small."""

from __future__ import annotations

import codecs
import gzip
import tracemalloc
from pathlib import Path

import pytest
from benchmarks import biglog

import fastcap.evidence.read as read_module
from fastcap.evidence.detect import LOG_READERS, kind_of
from fastcap.evidence.read import read_evidence
from fastcap.evidence.text import LogText

DATA = Path(__file__).parent / "data" / "evidence"
LOGS = sorted(p for p in DATA.iterdir() if p.suffix.lower() in (".log", ".csv"))


def _direct(path: Path) -> list:
    text = LogText(path)
    module = LOG_READERS[kind_of(text.head())]
    got = list(module.conversations(text, lambda _w: None))
    return sorted(got, key=lambda c: (c.start_ns, c.file, c.first.line))


@pytest.mark.parametrize("path", LOGS, ids=lambda p: p.name)
def test_facts_read_again_are_the_readers_own(path, monkeypatch):
    ev = read_evidence([path])
    assert ev.conversations and all(c.slim for c in ev.conversations)
    assert all(c.replies == () and c.cert_sent is None for c in ev.conversations)
    want = _direct(path)
    by_region = ev.materialize(ev.conversations)
    assert by_region == want
    assert not any(c.slim for c in by_region)
    monkeypatch.setattr(read_module, "_WHOLE_FILE_FROM", 1)
    assert ev.materialize(ev.conversations) == want


def test_a_log_gone_leaves_the_slim_conversations(tmp_path):
    path = tmp_path / "SEND.LOG"
    path.write_bytes((DATA / "SEND20260310-1.LOG").read_bytes())
    ev = read_evidence([path])
    path.unlink()
    assert ev.materialize(ev.conversations) == list(ev.conversations)


def _kept(path: Path) -> tuple[int, int, int]:
    tracemalloc.start()
    try:
        ev = read_evidence([path])
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return len(ev.conversations), kept, peak


def test_what_is_kept_is_small_and_the_lines_are_not(tmp_path):
    """Two logs, one four times the other: the peak above what is kept does not grow with the
    file (lines are streamed), and each conversation keeps well under a kilobyte."""
    small, big = tmp_path / "small.log", tmp_path / "big.log"
    template = str(DATA / "SEND20260310-1.LOG")
    biglog.main([template, str(small), "--size", "2M"])
    biglog.main([template, str(big), "--size", "8M"])
    n_small, kept_small, peak_small = _kept(small)
    n_big, kept_big, peak_big = _kept(big)
    assert n_big > 3 * n_small > 0
    assert kept_big / n_big < 400
    assert (peak_big - kept_big) < (peak_small - kept_small) + (2 << 20)


def test_a_syslog_region_past_new_year_keeps_its_facts_with_a_given_year(tmp_path):
    # RFC 3164 lines carry no year: with --log-year the year moves on at New Year through the
    # whole file, so a conversation after it, read again on its own, is still in the next year
    path = tmp_path / "mail.log"
    path.write_text(
        "Jun 30 10:00:00 relay1 postfix/smtpd[100]: connect from unknown[198.51.100.1]\n"
        "Jun 30 10:00:01 relay1 postfix/smtpd[100]: disconnect from unknown[198.51.100.1]"
        " ehlo=1 quit=1 commands=2\n"
        "Sep 15 10:00:00 relay1 postfix/smtpd[101]: connect from unknown[198.51.100.2]\n"
        "Dec 31 23:59:59 relay1 postfix/smtpd[101]: disconnect from unknown[198.51.100.2]"
        " ehlo=1 quit=1 commands=2\n"
        "Jan  1 00:00:05 relay1 postfix/smtp[2214]: Trusted TLS connection established to"
        " mx1.example.net[192.0.2.25]:25: TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384"
        " (256/256 bits)\n"
        "Jan  1 00:00:06 relay1 postfix/smtp[2214]: 4Qx2Ty0b3Vz9sKp: to=<bob@example.net>,"
        " relay=mx1.example.net[192.0.2.25]:25, delay=1.2, delays=0.1/0/0.6/0.5, dsn=5.7.64,"
        " status=bounced (host mx1.example.net[192.0.2.25] said: 550 5.7.64 TenantAttribution;"
        " Relay Access Denied (in reply to RCPT TO command))\n", encoding="utf-8")
    from fastcap.evidence.logzone import LogZone
    for offset, zone in ((0, 0), (3600, 3600), (-3600, -3600),
                         (3600, LogZone.named("Europe/Berlin")),
                         (-18000, LogZone.named("America/New_York"))):
        ev = read_evidence([path], year=2026, utc_offset_s=zone)
        conv = ev.conversations[-1]
        assert conv.first.line == 5 and conv.start_ns == (1798761605 - offset) * 10**9
        full = ev.full(conv)
        assert not full.slim and full.tls_protocol == "TLS1.2"
        assert [r.code for r in full.replies] == [550]
        assert ev.full(ev.conversations[0]).remote_ip == "198.51.100.1"


_TRACKING_FIELDS = (
    "date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,"
    "connector-id,source,event-id,internal-message-id,message-id,network-message-id,"
    "recipient-address,recipient-status,total-bytes,recipient-count,related-recipient-address,"
    "reference,message-subject,sender-address,return-path,message-info,directionality,"
    "tenant-id,original-client-ip,original-server-ip,custom-data,transport-traffic-type,"
    "log-id,schema-version")


def _tracking_row(t: str, client: str, server: str, host: str, event: str, status: str) -> str:
    return (f"{t},{client},EX01,{server},{host},08DE5F3A2B1C4D01,Outbound to Office 365,SMTP,"
            f"{event},12345678901234,<abc@contoso.com>,7f3c1b2a-0000-4000-8000-000000000001,"
            f"bob@fabrikam.com,\"{status}\",6234,1,,,Hello,alice@contoso.com,alice@contoso.com,,"
            "Originating,,203.0.113.5,10.1.2.10,,Email,7f3c1b2a-0000-4000-8000-000000000003,"
            "15.02.1544.004")


def test_a_region_is_not_joined_to_the_w3c_logs_first_data_line(tmp_path):
    # the file's first message is delivered to one host, and a minute after its grace its
    # FAIL to another host starts a second conversation of the same message; read again on
    # its own, the second must not take in the first data line of the file as its start
    path = tmp_path / "MSGTRK2026031009-1.LOG"
    lines = ["#Software: Microsoft Exchange Server", "#Version: 15.02.1544.004",
             "#Log-type: Message Tracking Log", "#Date: 2026-03-10T09:00:00.000Z",
             "#Fields: " + _TRACKING_FIELDS,
             _tracking_row("2026-03-10T09:00:00.000Z", "203.0.113.5", "10.1.2.10", "EX01",
                           "RECEIVE", "250 2.0.0 OK"),
             _tracking_row("2026-03-10T09:00:01.000Z", "10.1.2.10", "192.0.2.25",
                           "mx1.fabrikam.com", "SEND", "250 2.0.0 OK"),
             _tracking_row("2026-03-10T09:05:00.000Z", "10.1.2.10", "192.0.2.26",
                           "mx2.fabrikam.com", "FAIL",
                           "550 5.7.64 TenantAttribution; Relay Access Denied")]
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    ev = read_evidence([path])
    assert [c.first.line for c in ev.conversations] == [6, 8]
    assert ev.materialize(ev.conversations) == _direct(path)
    late = ev.full(ev.conversations[1])
    assert late.remote_ip == "192.0.2.26" and [r.code for r in late.replies] == [550]


def test_a_region_of_an_export_after_blank_lines_keeps_its_columns(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text(
        "\r\n#TYPE Deserialized.Microsoft.Exchange.Management.FfoReporting.MessageTrace\r\n"
        '"Received","SenderAddress","RecipientAddress","Subject","Status","ToIP","FromIP",'
        '"Size","MessageId","MessageTraceId"\r\n'
        '"3/10/2026 9:15:02 AM","alice@contoso.com","bob@fabrikam.com","Hi, ""you""",'
        '"Failed","","203.0.113.10","6234","<abc@contoso.com>",'
        '"7f3c1b2a-0000-4000-8000-000000000009"\r\n', encoding="utf-8", newline="")
    ev = read_evidence([path])
    (conv,) = ev.conversations
    full = ev.full(conv)
    assert not full.slim and full.remote_ip == "203.0.113.10"
    assert full.sender == "alice@contoso.com" and full.recipients == ("bob@fabrikam.com",)


def test_an_unread_file_says_when_it_is_compressed_or_printed_output(tmp_path):
    log = ("Mar 10 09:31:17 relay1 postfix/smtpd[3001]: connect from unknown[198.51.100.7]\n"
           * 5).encode()
    gz = tmp_path / "mail.log.2.gz"
    gz.write_bytes(gzip.compress(log))
    listed = tmp_path / "services.txt"  # Get-Service | Format-List > services.txt (5.1)
    listed.write_bytes(codecs.BOM_UTF16_LE + (
        "\r\n\r\nName                : MSExchangeTransport\r\n"
        "DisplayName         : Microsoft Exchange Transport\r\n"
        "Status              : Running\r\n"
        "DependentServices   : {}\r\n"
        "ServicesDependedOn  : {MSExchangeADTopology, KeyIso, NetTcpPortSharing,\r\n"
        "                      MSExchangeDiagnostics}\r\n\r\n").encode("utf-16-le"))
    plain = tmp_path / "notes.txt"
    plain.write_text("nothing here a reader knows\nnor here\n", encoding="utf-8")
    ev = read_evidence([gz, listed, plain])
    assert ev.files == () and ev.conversations == ()
    got = dict(w.split(": ", 1) for w in ev.warnings)
    assert got[str(gz)].endswith("; it is gzip-compressed: decompress it first")
    assert got[str(listed)].endswith("(Format-List): export the objects with ConvertTo-Json "
                                     "-Depth 4")
    assert got[str(plain)].endswith("connector settings from ConvertTo-Json, Format-List or "
                                    "Export-Clixml)")
    assert all("\n" not in w for w in ev.warnings)


def test_connector_settings_in_forms_that_lose_values_are_named(tmp_path):
    """Format-Table cuts a long name to "...", Export-Csv writes SenderIPAddresses as a
    .NET type name and dates in the local format: such a file is named as what it is, never
    read as settings, and the warning says how to export instead (Format-List, which keeps
    the values, is read: test_evidence_fmtlist)."""
    forms = {
        "ft.txt": (  # Get-InboundConnector | ft Name,ConnectorType,TlsSenderCertificateName
            "\r\nName                           ConnectorType TlsSenderCertificateName\r\n"
            "----                           ------------- ------------------------\r\n"
            "Inbound from 1b0c6a4e-2f7d-... OnPremises    mail.relay.contoso.co...\r\n\r\n",
            "(Format-Table, whose columns are cut short)"),
        "certs-ft.txt": (  # Get-ExchangeCertificate, as printed by default
            "\nThumbprint                                Services   Subject\n"
            "----------                                --------   -------\n"
            "DCBFE993F26AA4EF1F0D18B03E560A88302F8297  IP.WS..    CN=mail.contoso.com\n",
            "(Format-Table, whose columns are cut short)"),
        "inbound.csv": (
            "#TYPE Deserialized.Microsoft.Exchange.Data.Directory.SystemConfiguration."
            "TenantInboundConnector\r\n"
            '"Enabled","ConnectorType","SenderIPAddresses","TlsSenderCertificateName"\r\n'
            '"True","OnPremises","System.Collections.ArrayList","mail.contoso.com"\r\n',
            "from Export-Csv"),
        "certs-de.csv": (  # -NoTypeInformation -Delimiter ';', as in German locales
            '"Thumbprint";"Services";"NotAfter";"CertificateDomains"\r\n'
            '"DCBFE993F26AA4EF1F0D18B03E560A88302F8297";"IMAP, POP, IIS, SMTP";'
            '"01.02.2026 00:00:00";"System.Collections.ObjectModel.ReadOnlyCollection`1"\r\n',
            "from Export-Csv"),
    }
    for name, (text, _) in forms.items():
        (tmp_path / name).write_text(text, encoding="utf-8", newline="")
    ev = read_evidence([tmp_path / n for n in forms])
    assert ev.files == () and not ev.settings
    got = dict(w.split(": ", 1) for w in ev.warnings)
    for name, (_, says) in forms.items():
        assert says in got[str(tmp_path / name)], name
        assert got[str(tmp_path / name)].endswith("export the objects with ConvertTo-Json "
                                                  "-Depth 4"), name
    prose = tmp_path / "notes.txt"  # a dashed line under prose is no table
    prose.write_text("Notes\n  -----\nsee the ticket, ConnectorType too\n", encoding="utf-8")
    (warning,) = read_evidence([prose]).warnings
    assert warning.endswith("connector settings from ConvertTo-Json, Format-List or "
                                    "Export-Clixml)")


def test_one_log_under_several_names_is_read_once(tmp_path):
    src = DATA / "postfix-relay1.log"
    path = tmp_path / "mail.log"
    path.write_bytes(src.read_bytes())
    (tmp_path / "link.log").symlink_to(path)
    once = read_evidence([path], year=2026)
    ev = read_evidence([path, tmp_path / "." / "mail.log", tmp_path / "link.log",
                        str(path)], year=2026)
    assert [f.path for f in ev.files] == [str(path)]
    def where(e):
        return [(c.file, c.first.line, c.start_ns) for c in e.conversations]

    assert where(ev) == where(once) and len(where(once)) == 2 and ev.warnings == ()


def test_a_conversation_in_the_repeated_hour_keeps_its_facts_when_read_again(tmp_path):
    # Europe/Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET.  The second conversation starts
    # at 02:10 the second time round; read again on its own, it must be read so again
    from fastcap.evidence.logzone import LogZone
    path = tmp_path / "mail.log"
    path.write_text(
        "Oct 25 02:50:00 relay1 postfix/smtpd[100]: connect from unknown[198.51.100.1]\n"
        "Oct 25 02:50:01 relay1 postfix/smtpd[100]: disconnect from unknown[198.51.100.1]"
        " ehlo=1 quit=1 commands=2\n"
        "Oct 25 02:10:00 relay1 postfix/smtp[2214]: Trusted TLS connection established to"
        " mx1.example.net[192.0.2.25]:25: TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384"
        " (256/256 bits)\n", encoding="utf-8")
    ev = read_evidence([path], year=2026, utc_offset_s=LogZone.named("Europe/Berlin"))
    first, second = ev.conversations
    assert first.start_ns == 1792889400 * 10**9  # 00:50 UTC
    assert second.start_ns == 1792890600 * 10**9  # 01:10 UTC
    full = ev.full(second)
    assert not full.slim and full.tls_protocol == "TLS1.2"
