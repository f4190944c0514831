"""Syslog headers and Postfix conversations: each time stamp format, each Postfix line shape,
conversations split by pid, and the relay1 story told by the fixtures in every format."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path

import pytest

from fastcap.evidence import postfix
from fastcap.evidence.syslog import SyslogParser, parse_header
from fastcap.evidence.text import MAX_WARNINGS, LogText

DATA = Path(__file__).parent / "data" / "evidence"
STORY_FILES = ["postfix-relay1.log", "postfix-relay1-rfc5424.log",
               "postfix-relay1-journal-short-iso.log",
               "postfix-relay1-journal-short-iso-precise.log"]
EXO = "contoso-com.mail.protection.outlook.com[52.101.68.5]:25"


def ns(*args: int, us: int = 0) -> int:
    """UTC nanoseconds of a calendar time."""
    t = dt.datetime(*args, tzinfo=dt.UTC)
    return int(t.timestamp()) * 1_000_000_000 + us * 1000


def read(path: Path, **kw) -> tuple[list, list[str]]:
    warnings: list[str] = []
    convs = list(postfix.conversations(LogText(path), warnings.append, **kw))
    return convs, warnings


def write(tmp_path: Path, lines: list[str], name: str = "mail.log") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- time stamps ---------------------------------------------------------------------------

def test_rfc3164_with_a_year_is_utc_by_default_and_shifted_by_the_offset():
    h = parse_header("Mar 10 09:31:17 relay1 postfix/smtp[2214]: hello", year=2026)
    assert h == (ns(2026, 3, 10, 9, 31, 17), "relay1", "postfix/smtp", 2214, "hello")
    local = parse_header("Mar 10 10:31:17 relay1 postfix/smtp[2214]: x", year=2026,
                         utc_offset_s=3600)
    assert local.time_ns == ns(2026, 3, 10, 9, 31, 17)
    west = parse_header("Mar 10 04:31:17 relay1 postfix/smtp[2214]: x", year=2026,
                        utc_offset_s=-5 * 3600)
    assert west.time_ns == ns(2026, 3, 10, 9, 31, 17)


@pytest.mark.parametrize("day", ["Mar  9", "Mar 09", "Mar 9"])
def test_rfc3164_day_padding_of_syslog_journalctl_and_postlog(day):
    h = parse_header(f"{day} 23:59:59 relay1 postfix/smtpd[1]: x", year=2026)
    assert h.time_ns == ns(2026, 3, 9, 23, 59, 59)


def test_rfc3164_leap_day_exists_only_in_leap_years():
    assert parse_header("Feb 29 12:00:00 h postfix/smtp[1]: x", year=2028).time_ns == ns(
        2028, 2, 29, 12, 0, 0)
    with pytest.raises(ValueError, match="2026-02-29"):
        parse_header("Feb 29 12:00:00 h postfix/smtp[1]: x", year=2026)


def test_rfc3164_year_from_mtime_rolls_back_for_dates_after_it():
    mtime = ns(2026, 1, 2, 12, 0, 0)
    p = SyslogParser(mtime_ns=mtime)
    assert p.parse("Dec 31 23:59:00 h prog[1]: x").time_ns == ns(2025, 12, 31, 23, 59, 0)
    assert p.parse("Jan  2 08:00:00 h prog[1]: x").time_ns == ns(2026, 1, 2, 8, 0, 0)
    # up to a day after the mtime still counts as this year (clocks, late writes)
    assert p.parse("Jan  3 11:00:00 h prog[1]: x").time_ns == ns(2026, 1, 3, 11, 0, 0)
    assert p.parse("Jan  4 11:00:00 h prog[1]: x").time_ns == ns(2025, 1, 4, 11, 0, 0)
    # the year is the mtime's in the log's zone: written at 00:30 on New Year's Day at
    # +01:00, which is still the old year in UTC
    east = SyslogParser(mtime_ns=ns(2026, 12, 31, 23, 30, 0), utc_offset_s=3600)
    assert east.parse("Jan  1 00:20:00 h prog[1]: x").time_ns == ns(2026, 12, 31, 23, 20, 0)
    assert east.parse("Dec 31 23:50:00 h prog[1]: x").time_ns == ns(2026, 12, 31, 22, 50, 0)
    west = SyslogParser(mtime_ns=ns(2027, 1, 1, 2, 0, 0), utc_offset_s=-5 * 3600)
    assert west.parse("Dec 31 20:50:00 h prog[1]: x").time_ns == ns(2027, 1, 1, 1, 50, 0)
    # Feb 29 seen in a common year's file: the leap year before
    leap = SyslogParser(mtime_ns=ns(2029, 1, 10, 0, 0, 0))
    assert leap.parse("Feb 29 01:02:03 h prog[1]: x").time_ns == ns(2028, 2, 29, 1, 2, 3)


def test_rfc3164_given_year_moves_on_at_new_year_and_keeps_late_december_lines():
    p = SyslogParser(year=2025)
    assert p.parse("Dec 31 23:59:58 h prog[1]: x").time_ns == ns(2025, 12, 31, 23, 59, 58)
    assert p.parse("Jan  1 00:00:01 h prog[1]: x").time_ns == ns(2026, 1, 1, 0, 0, 1)
    assert p.parse("Dec 31 23:59:59 h prog[1]: late").time_ns == ns(2025, 12, 31, 23, 59, 59)
    assert p.parse("Jan  1 00:00:02 h prog[1]: x").time_ns == ns(2026, 1, 1, 0, 0, 2)


def test_rfc5424_with_fraction_zone_structured_data_and_nil_values():
    h = parse_header("<22>1 2026-03-10T09:31:17.412345+00:00 relay1 postfix/smtp 2214 - - hi")
    assert h == (ns(2026, 3, 10, 9, 31, 17, us=412345), "relay1", "postfix/smtp", 2214, "hi")
    h = parse_header("<22>1 2026-03-10T10:31:17.5+01:00 relay1 postfix/smtp - ID7 "
                     '[origin ip="192.0.2.25" x="a \\"]\\" b"][meta seq="1"] \ufeffhello')
    assert h.time_ns == ns(2026, 3, 10, 9, 31, 17, us=500000)
    assert (h.pid, h.message) == (None, "hello")
    h = parse_header("<13>1 2026-03-10T04:01:17Z relay1 - - - -")
    assert (h.time_ns, h.program, h.message) == (ns(2026, 3, 10, 4, 1, 17), "", "")
    h = parse_header("<13>1 2026-03-10T04:01:17.000000001-05:30 h app 9 - - x")
    assert h.time_ns == ns(2026, 3, 10, 9, 31, 17) + 1


@pytest.mark.parametrize("stamp", [
    "2026-03-10T10:31:17.412345+01:00",  # rsyslog RSYSLOG_FileFormat
    "2026-03-10T10:31:17.412345+0100",  # journalctl -o short-iso-precise (older systemd)
    "2026-03-10T09:31:17.412345Z",
    "2026-03-10T09:31:17.412345+00:00",
])
def test_rfc3339_stamps_with_a_3164_tag(stamp):
    h = parse_header(f"{stamp} relay1 postfix/smtp[2214]: Untrusted TLS ...")
    assert h == (ns(2026, 3, 10, 9, 31, 17, us=412345), "relay1", "postfix/smtp", 2214,
                 "Untrusted TLS ...")


def test_journald_short_iso_without_fraction_in_both_offset_spellings():
    for stamp in ("2026-12-05T06:02:09+0100", "2026-12-05T06:02:09+01:00"):
        h = parse_header(f"{stamp} mx postfix/smtpd[77]: connect from a[192.0.2.1]")
        assert h.time_ns == ns(2026, 12, 5, 5, 2, 9)
        assert (h.host, h.program, h.pid) == ("mx", "postfix/smtpd", 77)


def test_minute_cache_gives_each_line_its_own_second():
    p = SyslogParser(year=2026)
    times = [p.parse(f"Mar 10 09:{m:02}:{s:02} h prog[1]: x").time_ns
             for m, s in ((31, 17), (31, 59), (32, 0), (31, 17))]
    assert times == [ns(2026, 3, 10, 9, 31, 17), ns(2026, 3, 10, 9, 31, 59),
                     ns(2026, 3, 10, 9, 32, 0), ns(2026, 3, 10, 9, 31, 17)]


@pytest.mark.parametrize("line", [
    "hello world",
    "2026-03-10T09:15:02.118Z,Outbound to Office 365,08DE0001,0,10.1.2.10:50123,52.101.68.5:25,+,,",
    '"Received","SenderAddress","RecipientAddress"',
    "#Software: Microsoft Exchange Server",
    "",
])
def test_lines_that_are_not_syslog(line):
    assert parse_header(line, year=2026) is None


@pytest.mark.parametrize("line,why", [
    ("Mar 10 25:00:00 h prog[1]: x", "no such time"),
    ("Foo 10 09:00:00 h prog[1]: x", "no such month"),
    ("Apr 31 09:00:00 h prog[1]: x", "no such date"),
    ("2026-13-01T00:00:00Z h prog[1]: x", "no such date"),
    ("2026-03-10T09:31:61Z h prog[1]: x", "no such time"),
])
def test_impossible_stamps_raise_naming_the_flaw(line, why):
    with pytest.raises(ValueError, match=why):
        parse_header(line, year=2026)


# -- the relay1 story in every format --------------------------------------------------------

@pytest.mark.parametrize("name", STORY_FILES)
def test_story_untrusted_tls_then_5_7_64_bounce(name):
    convs, warnings = read(DATA / name, year=2026)
    assert warnings == []
    server, client = convs
    assert client.kind == "postfix" and client.host_role == "client"
    assert (client.remote_ip, client.remote_port) == ("52.101.68.5", 25)
    assert client.remote_name == "contoso-com.mail.protection.outlook.com"
    assert client.session_id == "pid 2214"
    assert client.starttls is True
    assert (client.tls_protocol, client.tls_cipher, client.tls_trust) == (
        "TLS1.2", "ECDHE-RSA-AES256-GCM-SHA384", "Untrusted")
    assert client.cert_received is None and client.cert_sent is None
    (reply,) = client.replies
    assert (reply.code, reply.enhanced, reply.after_tls) == (550, "5.7.64", True)
    assert reply.text.startswith("550 5.7.64 TenantAttribution; Relay Access Denied")
    assert reply.text.endswith("(in reply to RCPT TO command)")
    assert client.rejection() is reply
    assert client.recipients == ("j.doe@fabrikam.example",)
    assert dt.datetime.fromtimestamp(client.start_ns / 1e9, dt.UTC).replace(
        microsecond=0) == dt.datetime(2026, 3, 10, 9, 31, 17, tzinfo=dt.UTC)
    assert client.end_ns - client.start_ns < 2_000_000_000
    assert server.host_role == "server" and server.session_id == "pid 2210"
    assert (server.remote_ip, server.remote_port, server.remote_name) == (
        "10.1.2.30", None, "app1.contoso.local")
    assert server.starttls is False and server.replies == ()
    lines = (DATA / name).read_bytes().split(b"\n")
    for conv, first, last in ((server, b"connect from", b"disconnect from"),
                              (client, b"Untrusted TLS", b"status=bounced")):
        assert first in lines[conv.first.line - 1] and last in lines[conv.last.line - 1]
        offset = sum(len(x) + 1 for x in lines[: conv.first.line - 1])
        assert conv.first.offset == offset and conv.file == str(DATA / name)


def test_story_formats_agree_on_every_fact_but_the_sub_second_time():
    facts = []
    for name in STORY_FILES:
        convs, _ = read(DATA / name, year=2026)
        facts.append([(c.to_dict() | {"end_ns": c.end_ns // 10**9, "last_line": None,
                                      "replies": [r.to_dict() | {"line": None}
                                                  for r in c.replies]},
                       c.start_ns // 10**9) for c in convs])
    assert all(f == facts[0] for f in facts[1:])


def test_rsyslog_rfc5424_template_with_two_spaces_before_the_message(tmp_path):
    # RSYSLOG_SyslogProtocol23Format writes "%STRUCTURED-DATA% %msg%" and rsyslog's msg
    # starts with a space: "- -  connect from ..."
    h = parse_header("<22>1 2026-03-10T10:31:17.412345+01:00 relay1 postfix/smtp 2214 - -  "
                     "Untrusted TLS ...")
    assert h == (ns(2026, 3, 10, 9, 31, 17, us=412345), "relay1", "postfix/smtp", 2214,
                 "Untrusted TLS ...")
    plain = DATA / "postfix-relay1-rfc5424.log"
    lines = plain.read_text(encoding="utf-8").splitlines()
    assert all(" - - " in line for line in lines)
    spaced = write(tmp_path, [line.replace(" - - ", " - -  ", 1) for line in lines])
    want, _ = read(plain, year=2026)
    got, warnings = read(spaced, year=2026)
    assert warnings == [] and len(got) == len(want) == 2
    assert [c.to_dict() | {"last_line": None} for c in got] == [
        c.to_dict() | {"last_line": None} for c in want]
    assert got[1].rejection().enhanced == "5.7.64"


def test_loglevel_2_names_the_peer_certificate_and_its_sha256_fingerprint():
    convs, warnings = read(DATA / "postfix-relay1-loglevel2.log", year=2026)
    assert warnings == []
    (conv,) = convs
    assert (conv.first.line, conv.last.line) == (2, 23)  # "setting up" .. the bounce
    cert = conv.cert_received
    assert cert.subject == ("CN=mail.protection.outlook.com, O=Microsoft Corporation, "
                            "L=Redmond, ST=WA, C=US")
    assert cert.issuer == "CN=Microsoft Azure RSA TLS Issuing CA 07, O=Microsoft Corporation, C=US"
    assert cert.thumbprint is None  # a SHA-256 digest is not Exchange's (SHA-1) thumbprint
    assert cert.where.line == 21
    notes = [t for t, _ in conv.notes]
    assert notes[0] == ("peer certificate SHA-256 fingerprint 3A9C510E7BD2448F16A0C35E927DB80"
                        "14CE629F38A05D16B77C4E02F935BA81D")
    assert notes[1].startswith("peer public key SHA-256 fingerprint C7128E4B")
    assert conv.rejection().enhanced == "5.7.64"


def test_lines_of_gives_this_conversations_lines_with_their_times(tmp_path):
    path = DATA / "postfix-relay1-loglevel2.log"
    text = LogText(path)
    (conv,) = postfix.conversations(text, [].append, year=2026)
    got = list(postfix.lines_of(text, conv))
    assert [line.number for _, line in got] == list(range(2, 24))
    assert got[0][0] == conv.start_ns and got[-1][0] == conv.end_ns
    assert all("postfix/smtp[2214]" in line.text for _, line in got)


def test_lines_of_recovers_the_3164_year_and_zone_of_the_conversation(tmp_path):
    path = write(tmp_path, [
        f"Dec 31 23:59:59 relay1 postfix/smtp[5]: Trusted TLS connection established to "
        f"{EXO}: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)",
        "Jan  1 00:00:00 relay1 postfix/qmgr[2]: 1234ABCDEF: removed",
        f"Jan  1 00:00:01 relay1 postfix/smtp[5]: 1234ABCDEF: to=<a@b.example>, relay={EXO},"
        " delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.6.0 <id@x> Queued mail)",
    ])
    text = LogText(path)
    (conv,) = postfix.conversations(text, [].append, year=2025, utc_offset_s=3600)
    assert conv.start_ns == ns(2025, 12, 31, 22, 59, 59)
    assert conv.end_ns == ns(2025, 12, 31, 23, 0, 1)
    times = [(t, line.number) for t, line in postfix.lines_of(text, conv)]
    assert times == [(conv.start_ns, 1), (conv.end_ns, 3)]


# -- line shapes -----------------------------------------------------------------------------

def test_tls13_summary_with_client_signature_and_a_sha1_fingerprint_of_postfix_3_9(tmp_path):
    fp = "0A:1B:2C:3D:4E:5F:60:71:82:93:A4:B5:C6:D7:E8:F9:0A:1B:2C:3D"
    path = write(tmp_path, [
        f"Mar 10 09:31:17 relay1 postfix/smtp[9]: {EXO}: subject_CN=mail.protection.outlook.com,"
        f" issuer=DigiCert Cloud Services CA-1, cert fingerprint={fp}",
        f"Mar 10 09:31:17 relay1 postfix/smtp[9]: Verified TLS connection established to {EXO}:"
        " TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519"
        " server-signature RSA-PSS (2048 bits) server-digest SHA256 client-signature"
        " RSA-PSS (2048 bits) client-digest SHA256",
    ])
    (conv,) = read(path, year=2026)[0]
    assert (conv.tls_protocol, conv.tls_trust) == ("TLS1.3", "Verified")
    assert conv.tls_cipher == "TLS_AES_256_GCM_SHA384"
    assert conv.cert_received.subject == "CN=mail.protection.outlook.com"
    assert conv.cert_received.issuer == "CN=DigiCert Cloud Services CA-1"
    assert conv.cert_received.thumbprint == fp.replace(":", "")
    (note,) = conv.notes
    assert note[0] == ("sent a client certificate (client-signature RSA-PSS (2048 bits) "
                       "client-digest SHA256)")
    assert (conv.first.line, conv.last.line) == (1, 2)


def test_tls_failures_and_failed_connects_are_notes_and_their_own_conversations(tmp_path):
    path = write(tmp_path, [
        "Mar 10 09:00:00 relay1 postfix/smtp[3]: connect to mx1.fabrikam.example[198.51.100.7]"
        ":25: Connection timed out",
        "Mar 10 09:00:30 relay1 postfix/smtp[3]: certificate verification failed for "
        "mx2.fabrikam.example[198.51.100.8]:25: untrusted issuer /CN=Relay1 Self-Signed CA",
        "Mar 10 09:00:30 relay1 postfix/smtp[3]: SSL_connect error to "
        "mx2.fabrikam.example[198.51.100.8]:25: lost connection",
        "Mar 10 09:00:31 relay1 postfix/smtp[3]: 1234ABCDEF: lost connection with "
        "mx2.fabrikam.example[198.51.100.8] while performing the TLS handshake",
        "Mar 10 09:00:31 relay1 postfix/smtp[3]: 1234ABCDEF: to=<a@fabrikam.example>, "
        "relay=none, delay=31, delays=0/0/31/0, dsn=4.4.1, status=deferred (connect to "
        "mx1.fabrikam.example[198.51.100.7]:25: Connection timed out)",
    ])
    convs, warnings = read(path, year=2026)
    assert warnings == []
    refused, failed, deferred = sorted(convs, key=lambda c: c.first.line)
    assert (refused.remote_ip, refused.remote_port, refused.starttls) == (
        "198.51.100.7", 25, False)
    assert refused.notes[0][0].endswith("Connection timed out")
    assert (failed.remote_ip, failed.first.line, failed.last.line) == ("198.51.100.8", 2, 4)
    assert [t.split(":")[0] for t, _ in failed.notes] == [
        "certificate verification failed for mx2.fabrikam.example[198.51.100.8]",
        "SSL_connect error to mx2.fabrikam.example[198.51.100.8]",
        "lost connection with mx2.fabrikam.example[198.51.100.8] while performing the TLS "
        "handshake"]
    assert failed.starttls is False and failed.tls_trust is None
    (reply,) = deferred.replies  # relay=none: the peer comes from the reason
    assert (deferred.remote_ip, reply.code, reply.enhanced, reply.after_tls) == (
        "198.51.100.7", 0, "4.4.1", False)


def test_queue_lines_join_the_open_conversation_only_for_its_peer_and_soon(tmp_path):
    est = ("Trusted TLS connection established to {}: TLSv1.2 with cipher "
           "ECDHE-RSA-AES128-GCM-SHA256 (128/128 bits)")
    to = ("{q}: to=<{r}@fabrikam.example>, relay={na}, delay=1, delays=0/0/0.5/0.5, "
          "dsn={d}, status={s} ({t})")
    other = "mx.other.example[203.0.113.9]:25"
    path = write(tmp_path, [
        f"Mar 10 09:00:00 relay1 postfix/smtp[4]: {est.format(EXO)}",
        "Mar 10 09:00:01 relay1 postfix/smtp[4]: " + to.format(
            q="AAAA1", r="x", na=EXO, d="2.0.0", s="sent", t="250 2.6.0 <m@x> Queued mail"),
        "Mar 10 09:00:01 relay1 postfix/smtp[4]: " + to.format(
            q="AAAA1", r="y", na=EXO, d="5.1.10", s="bounced",
            t=f"host {EXO[:-3]} said: 550 5.1.10 RESOLVER.ADR.RecipientNotFound "
              "(in reply to RCPT TO command)"),
        "Mar 10 09:00:02 relay1 postfix/smtp[4]: " + to.format(
            q="AAAA1", r="z", na=EXO, d="2.0.0", s="sent", t="250 2.6.0 <m@x> Queued mail"),
        "Mar 10 09:00:03 relay1 postfix/smtp[4]: " + to.format(
            q="BBBB2", r="w", na=other, d="2.0.0", s="sent", t="250 ok"),
        "Mar 10 09:30:00 relay1 postfix/smtp[4]: " + to.format(
            q="CCCC3", r="v", na=other, d="2.0.0", s="sent", t="250 ok"),
        f"Mar 10 09:30:05 relay1 postfix/smtp[4]: {est.format(other)}",
    ])
    convs = sorted(read(path, year=2026)[0], key=lambda c: c.first.line)
    assert [(c.first.line, c.last.line) for c in convs] == [(1, 4), (5, 5), (6, 6), (7, 7)]
    first = convs[0]
    assert first.recipients == ("x@fabrikam.example", "y@fabrikam.example",
                                "z@fabrikam.example")
    # every 4xx/5xx and the last reply: the first 250 gave way, the 550 stays
    assert [(r.code, r.enhanced, r.where.line) for r in first.replies] == [
        (550, "5.1.10", 3), (250, "2.6.0", 4)]
    assert all(r.after_tls for r in first.replies)
    assert convs[1].remote_ip == "203.0.113.9" and convs[1].starttls is False
    assert convs[1].replies[0].after_tls is False


def test_interleaved_pids_are_separate_conversations(tmp_path):
    a = "mx-a.example[192.0.2.101]:25"
    b = "mx-b.example[192.0.2.102]:25"
    est = ("Anonymous TLS connection established to {}: TLSv1.2 with cipher "
           "ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)")
    path = write(tmp_path, [
        f"Mar 10 09:00:00 relay1 postfix/smtp[10]: {est.format(a)}",
        f"Mar 10 09:00:00 relay1 postfix/smtp[11]: {est.format(b)}",
        "Mar 10 09:00:01 relay1 postfix/qmgr[2]: AAAA1: removed",
        f"Mar 10 09:00:02 relay1 postfix/smtp[11]: BBBB2: to=<b@b.example>, relay={b}, "
        "delay=2, delays=0/0/1/1, dsn=2.0.0, status=sent (250 ok)",
        f"Mar 10 09:00:03 relay1 postfix/smtp[10]: AAAA1: to=<a@a.example>, relay={a}, "
        "delay=3, delays=0/0/1/2, dsn=4.7.0, status=deferred (host mx-a.example[192.0.2.101]"
        " said: 421 4.7.0 Try again later (in reply to end of DATA command))",
        f"Mar 10 09:00:04 relay2 postfix/smtp[10]: {est.format(b)}",
    ])
    text = LogText(path)
    convs = list(postfix.conversations(text, [].append, year=2026))
    by_ip = {(c.remote_ip, c.first.line): c for c in convs}
    ca, cb = by_ip[("192.0.2.101", 1)], by_ip[("192.0.2.102", 2)]
    assert (ca.first.line, ca.last.line, ca.tls_trust) == (1, 5, "Anonymous")
    assert (cb.first.line, cb.last.line) == (2, 4)
    assert ca.replies[0].code == 421 and cb.replies[0].code == 250
    assert [line.number for _, line in postfix.lines_of(text, ca)] == [1, 5]
    assert [line.number for _, line in postfix.lines_of(text, cb)] == [2, 4]
    # the same pid on another host is another process
    assert by_ip[("192.0.2.102", 6)].session_id == "pid 10"
    assert [c.end_ns for c in convs] == sorted(c.end_ns for c in convs)


def test_same_pid_new_connection_after_the_handshake_starts_a_new_conversation(tmp_path):
    est = ("Untrusted TLS connection {} to {}: TLSv1.2 with cipher "
           "ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)")
    path = write(tmp_path, [
        f"Mar 10 09:00:00 relay1 postfix/smtp[4]: setting up TLS connection to {EXO}",
        f"Mar 10 09:00:00 relay1 postfix/smtp[4]: {EXO}: TLS cipher list \"aNULL:-aNULL\"",
        f"Mar 10 09:00:01 relay1 postfix/smtp[4]: {est.format('established', EXO)}",
        f"Mar 10 09:00:09 relay1 postfix/smtp[4]: {est.format('established', EXO)}",
        f"Mar 10 09:00:20 relay1 postfix/smtp[6]: {est.format('reused', EXO)}",
    ])
    convs = sorted(read(path, year=2026)[0], key=lambda c: c.first.line)
    assert [(c.first.line, c.last.line) for c in convs] == [(1, 3), (4, 4), (5, 5)]
    assert convs[2].notes[0][0].startswith("TLS connection reused")


@pytest.mark.parametrize("check_every", [1, 4096])
def test_a_pid_silent_for_long_ends_its_conversation(tmp_path, monkeypatch, check_every):
    monkeypatch.setattr(postfix, "_CHECK_EVERY", check_every)
    path = write(tmp_path, [
        f"Mar 10 09:00:00 relay1 postfix/smtp[4]: setting up TLS connection to {EXO}",
        "Mar 10 09:20:00 relay1 postfix/qmgr[2]: AAAA1: removed",
        f"Mar 10 09:20:01 relay1 postfix/smtp[4]: {EXO}: TLS cipher list \"aNULL:-aNULL\"",
        f"Mar 10 09:20:02 relay1 postfix/smtp[5]: setting up TLS connection to {EXO}",
        f"Mar 10 09:34:02 relay1 postfix/smtp[5]: {EXO}: TLS cipher list \"aNULL:-aNULL\"",
    ])
    convs = read(path, year=2026)[0]
    assert [(c.first.line, c.last.line) for c in convs] == [(1, 1), (3, 3), (4, 5)]


def test_smtpd_side_tls_reject_and_lost_connection(tmp_path):
    path = write(tmp_path, [
        "Mar 10 09:31:20 relay1 postfix/smtpd[2300]: connect from unknown[198.51.100.23]",
        "Mar 10 09:31:20 relay1 postfix/smtpd[2300]: setting up TLS connection from "
        "unknown[198.51.100.23]",
        "Mar 10 09:31:20 relay1 postfix/smtpd[2300]: unknown[198.51.100.23]: subject_CN=app2, "
        "issuer_CN=Relay1 Self-Signed CA, fingerprint=AB:CD, pkey_fingerprint=EF:01",
        "Mar 10 09:31:20 relay1 postfix/smtpd[2300]: Anonymous TLS connection established from"
        " unknown[198.51.100.23] to relay1.contoso.com: TLSv1.3 with cipher "
        "TLS_AES_128_GCM_SHA256 (128/128 bits) key-exchange X25519",
        "Mar 10 09:31:21 relay1 postfix/smtpd[2300]: NOQUEUE: reject: RCPT from "
        "unknown[198.51.100.23]: 554 5.7.1 <x@fabrikam.example>: Relay access denied; "
        "from=<a@contoso.com> to=<x@fabrikam.example> proto=ESMTP helo=<app2>",
        "Mar 10 09:31:21 relay1 postfix/smtpd[2300]: lost connection after RCPT from "
        "unknown[198.51.100.23]",
        "Mar 10 09:31:21 relay1 postfix/smtpd[2300]: disconnect from unknown[198.51.100.23] "
        "ehlo=2 starttls=1 mail=1 rcpt=0/1 commands=4/5",
        "Mar 10 09:31:30 relay1 postfix/smtpd[2300]: connect from app1.contoso.local[10.1.2.30]"
        ":40001",
    ])
    (conv, nxt), warnings = read(path, year=2026)
    assert warnings == []
    assert (conv.host_role, conv.remote_ip, conv.remote_port, conv.remote_name) == (
        "server", "198.51.100.23", None, None)
    assert (conv.first.line, conv.last.line) == (1, 7)
    assert (conv.starttls, conv.tls_protocol, conv.tls_trust) == (True, "TLS1.3", "Anonymous")
    (reply,) = conv.replies
    assert (reply.code, reply.enhanced, reply.after_tls) == (554, "5.7.1", True)
    assert reply.text == "554 5.7.1 <x@fabrikam.example>: Relay access denied"
    assert conv.cert_received.subject == "CN=app2"  # the client's certificate
    assert conv.notes[0][0] == "lost connection after RCPT from unknown[198.51.100.23]"
    assert (nxt.remote_ip, nxt.remote_port, nxt.first.line) == ("10.1.2.30", 40001, 8)


def test_smtpd_failed_handshake_stays_in_its_connection(tmp_path):
    na = "unknown[198.51.100.23]"
    path = write(tmp_path, [
        f"Mar 10 09:31:20 relay1 postfix/smtpd[2301]: connect from {na}",
        f"Mar 10 09:31:20 relay1 postfix/smtpd[2301]: SSL_accept error from {na}: -1",
        "Mar 10 09:31:20 relay1 postfix/smtpd[2301]: warning: TLS library problem: "
        "error:0A000418:SSL routines::tlsv1 alert unknown ca",
        f"Mar 10 09:31:20 relay1 postfix/smtpd[2301]: lost connection after STARTTLS from {na}",
        f"Mar 10 09:31:20 relay1 postfix/smtpd[2301]: disconnect from {na} ehlo=1 starttls=0/1"
        " commands=1/2",
    ])
    (conv,), _ = read(path, year=2026)
    assert (conv.first.line, conv.last.line, conv.starttls) == (1, 5, False)
    assert [t.split(" ")[0] for t, _ in conv.notes] == ["SSL_accept", "warning:", "lost"]


def test_other_programs_skip_silently_and_garbled_lines_warn_by_file_and_line(tmp_path):
    path = write(tmp_path, [
        "-- Logs begin at Tue 2026-03-10 00:00:01 UTC. --",
        "Mar 10 09:00:00 relay1 postfix/qmgr[2]: AAAA1: from=<a@b>, size=1, nrcpt=1",
        "Mar 10 09:00:00 relay1 dovecot: imap-login: Login: user=<a>",
        "Mar 10 09:00:00 relay1 postfix-out/smtp[7]: connect to mx[192.0.2.9]:25: refused",
        "Mar 10 09:00:00 relay1 postfix/submission/smtpd[8]: connect from a[192.0.2.10]",
        "\x00\x01garbage that is not syslog",
        "Mar 10 99:00:00 relay1 postfix/smtp[7]: x",
        "Mar 10 09:00:01 relay1 postfix/smtp[7]: 1234ABCDEF: to=<broken",
        "",
    ])
    convs, warnings = read(path, year=2026)
    assert sorted(c.remote_ip for c in convs) == ["192.0.2.10", "192.0.2.9"]
    assert warnings == [
        f"{path} line 6: not a syslog line",
        f"{path} line 7: a syslog line with a bad time stamp (no such time 99:00)",
        f"{path} line 8: a postfix/smtp delivery line fastcap could not read",
    ]


def test_loopback_reinjection_is_not_a_conversation(tmp_path):
    path = write(tmp_path, [
        "Mar 10 09:00:00 relay1 postfix/smtp[7]: 1234ABCDEF: to=<a@b.example>, "
        "relay=127.0.0.1[127.0.0.1]:10024, delay=0.2, delays=0/0/0/0.2, dsn=2.0.0, "
        "status=sent (250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok)",
        "Mar 10 09:00:00 relay1 postfix/smtpd[8]: connect from localhost[127.0.0.1]",
        "Mar 10 09:00:00 relay1 postfix/smtpd[8]: disconnect from localhost[127.0.0.1] quit=1",
        "Mar 10 09:00:01 relay1 postfix/smtpd[8]: connect from localhost[::1]",
        "Mar 10 09:00:02 relay1 postfix/smtpd[9]: connect from app1[10.1.2.30]",
    ])
    (conv,), _ = read(path, year=2026)
    assert (conv.remote_ip, conv.first.line) == ("10.1.2.30", 5)


def test_warnings_are_capped_and_counted(tmp_path):
    path = write(tmp_path, [f"junk {i}" for i in range(MAX_WARNINGS + 5)])
    convs, warnings = read(path, year=2026)
    assert convs == []
    assert len(warnings) == MAX_WARNINGS + 1
    assert warnings[-1] == f"{path}: 5 more lines not read (not syslog, or a bad time stamp)"


def test_log_files_are_left_unchanged(tmp_path):
    path = tmp_path / "copy.log"
    path.write_bytes((DATA / "postfix-relay1-loglevel2.log").read_bytes())
    os.chmod(path, 0o444)
    before = (hashlib.sha256(path.read_bytes()).hexdigest(), os.stat(path).st_mtime_ns)
    text = LogText(path)
    for conv in postfix.conversations(text, [].append):
        list(postfix.lines_of(text, conv))
    assert (hashlib.sha256(path.read_bytes()).hexdigest(), os.stat(path).st_mtime_ns) == before


def test_year_from_the_files_mtime_when_none_is_given(tmp_path):
    path = write(tmp_path, [
        f"Dec 31 23:59:59 relay1 postfix/smtp[5]: Trusted TLS connection established to {EXO}:"
        " TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)",
        f"Jan  1 00:00:02 relay1 postfix/smtp[5]: 1A2B3C4D5E: to=<a@b.example>, relay={EXO}, "
        "delay=3, delays=0/0/1/2, dsn=2.0.0, status=sent (250 ok)",
    ])
    stamp = ns(2027, 1, 1, 0, 5, 0) / 1e9
    os.utime(path, (stamp, stamp))
    (conv,) = read(path)[0]
    assert (conv.start_ns, conv.end_ns) == (ns(2026, 12, 31, 23, 59, 59), ns(2027, 1, 1, 0, 0, 2))


@pytest.mark.parametrize("name", STORY_FILES + ["postfix-relay1-loglevel2.log"])
def test_looks_like_the_fixtures(name):
    assert postfix.looks_like(LogText(DATA / name).head())


@pytest.mark.parametrize("head", [
    "#Software: Microsoft Exchange Server\r\n#Version: 15.0.0.0\r\n#Log-type: SMTP Send "
    "Protocol Log\r\n#Date: 2026-03-10T09:15:02.118Z\r\n#Fields: date-time,connector-id\r\n",
    '"Received","SenderAddress","RecipientAddress","Subject","Status"\n"2026-03-10T09:31:19Z",',
    '[\n  {\n    "Name": "From on-prem contoso",\n    "ConnectorType": "OnPremises"\n  }\n]\n',
    "",
])
def test_looks_like_refuses_other_formats(head):
    assert not postfix.looks_like(head)


def test_a_syslog_file_giving_no_conversation_says_why_once(tmp_path):
    # Postfix smtp/smtpd lines in no form read here: one warning naming the file
    unknown = write(tmp_path, [
        "Mar 10 09:31:17 relay1 postfix/smtp[2214]: some line no Postfix version writes",
        "Mar 10 09:31:18 relay1 postfix/smtpd[2215]: another such line",
        "Mar 10 09:31:19 relay1 postfix/qmgr[99]: 4F3A2B: removed"], name="unknown.log")
    convs, warnings = read(unknown, year=2026)
    assert convs == []
    assert warnings == [f"{unknown}: 2 postfix/smtp or postfix/smtpd line(s), none in a form "
                        "fastcap reads; no SMTP connections from this file"]
    # a syslog of other programs (another MTA, or Postfix under another syslog_name)
    other = write(tmp_path, [
        "Mar 10 09:31:17 relay1 exim[2214]: 1abc-000 <= a@example.org",
        "Mar 10 09:31:18 relay1 mta/smtp[2215]: 4F3A2B: to=<b@example.net>"], name="other.log")
    convs, warnings = read(other, year=2026)
    assert convs == [] and len(warnings) == 1
    assert warnings[0].startswith(f"{other}: a syslog file with no postfix/smtp or "
                                  "postfix/smtpd lines (programs: exim, mta/smtp)")
    # a file whose only conversation was over loopback read its lines: nothing to say
    loop = write(tmp_path, [
        "Mar 10 09:31:17 relay1 postfix/smtpd[2215]: connect from localhost[127.0.0.1]",
        "Mar 10 09:31:18 relay1 postfix/smtpd[2215]: disconnect from localhost[127.0.0.1]"],
        name="loop.log")
    assert read(loop, year=2026) == ([], [])


def test_smtpd_notes_a_received_client_signature_and_a_queue_id_lost_connection(tmp_path):
    # Postfix's tls_log_summary writes client-signature on both ends (TLS 1.3); from 3.10
    # smtpd puts "NOQUEUE: " (or the queue id) before "lost connection after ..."
    na = "unknown[198.51.100.23]"
    path = write(tmp_path, [
        f"Mar 10 09:31:20 relay1 postfix/smtpd[2301]: connect from {na}",
        f"Mar 10 09:31:20 relay1 postfix/smtpd[2301]: NOQUEUE: lost connection after STARTTLS"
        f" from {na}",
        f"Mar 10 09:31:20 relay1 postfix/smtpd[2301]: disconnect from {na} ehlo=1 "
        "starttls=0/1 commands=1/2",
        f"Mar 10 09:32:20 relay1 postfix/smtpd[2302]: connect from {na}",
        f"Mar 10 09:32:20 relay1 postfix/smtpd[2302]: Trusted TLS connection established from "
        f"{na}: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519"
        " server-signature RSA-PSS (2048 bits) server-digest SHA256 client-signature ECDSA "
        "(prime256v1) client-digest SHA256",
        f"Mar 10 09:32:21 relay1 postfix/smtpd[2302]: 4F3A2B1C9D: timeout after DATA (812 "
        f"bytes) from {na}",
        f"Mar 10 09:32:21 relay1 postfix/smtpd[2302]: disconnect from {na} ehlo=2 starttls=1 "
        "quit=1 commands=4",
    ])
    (lost, signed), warnings = read(path, year=2026)
    assert warnings == []
    assert [(t, w.line) for t, w in lost.notes] == [
        (f"NOQUEUE: lost connection after STARTTLS from {na}", 2)]
    assert signed.host_role == "server" and signed.tls_trust == "Trusted"
    assert [(t, w.line) for t, w in signed.notes] == [
        ("received a client certificate (client-signature ECDSA (prime256v1) client-digest "
         "SHA256)", 5),
        (f"4F3A2B1C9D: timeout after DATA (812 bytes) from {na}", 6)]


def _zone_oracle(zone: str, *wall: int, fold: int = 0) -> int:
    """UTC nanoseconds of a wall-clock time in an IANA zone, as Python's zoneinfo reads it."""
    from zoneinfo import ZoneInfo
    t = dt.datetime(*wall, tzinfo=ZoneInfo(zone), fold=fold)
    return int(t.timestamp()) * 1_000_000_000


def test_a_zone_name_gives_each_syslog_time_its_own_offset_across_dst():
    from fastcap.evidence.logzone import LogZone
    berlin = LogZone.named("Europe/Berlin")
    # spring 2026-03-29: 02:00 CET becomes 03:00 CEST; autumn 2026-10-25: 03:00 CEST
    # becomes 02:00 CET, so 02:00-02:59 happens twice
    lines = [("Mar 29 01:59:30", (2026, 3, 29, 1, 59, 30), 0),
             ("Mar 29 03:00:30", (2026, 3, 29, 3, 0, 30), 0),
             ("Oct 25 02:30:00", (2026, 10, 25, 2, 30, 0), 0),
             ("Oct 25 02:59:59", (2026, 10, 25, 2, 59, 59), 0),
             ("Oct 25 02:00:05", (2026, 10, 25, 2, 0, 5), 1),  # the clocks went back
             ("Oct 25 02:40:00", (2026, 10, 25, 2, 40, 0), 1),  # 40 minutes on, not 20 back
             ("Oct 25 02:38:00", (2026, 10, 25, 2, 38, 0), 1),  # a line a little late
             ("Oct 25 03:10:00", (2026, 10, 25, 3, 10, 0), 0)]
    spring = SyslogParser(year=2026, utc_offset_s=berlin)  # (a file with March and October
    autumn = SyslogParser(year=2026, utc_offset_s=berlin)  # reads October as the year before)
    got = [(spring if stamp < "N" else autumn).parse(f"{stamp} relay1 postfix/smtp[1]: x").time_ns
           for stamp, _, _ in lines]
    assert got == [_zone_oracle("Europe/Berlin", *wall, fold=f) for _, wall, f in lines]
    assert got[6] - got[5] == -120 * 10**9  # the late line stays in the second pass
    # a fixed offset reads the summer half an hour off ... an hour off
    fixed = SyslogParser(year=2026, utc_offset_s=3600)
    assert fixed.parse("Mar 29 03:00:30 h p[1]: x").time_ns - got[1] == 3600 * 10**9
    # the first line of a file in the repeated hour is its first reading; a time the
    # clocks skipped takes the offset before the change (zoneinfo's fold=0)
    first = SyslogParser(year=2026, utc_offset_s=berlin)
    assert first.parse("Oct 25 02:40:00 h p[1]: x").time_ns == _zone_oracle(
        "Europe/Berlin", 2026, 10, 25, 2, 40, 0, fold=0)
    gap = SyslogParser(year=2026, utc_offset_s=berlin)
    assert gap.parse("Mar 29 02:30:00 h p[1]: x").time_ns == ns(2026, 3, 29, 1, 30, 0)
    # ISO stamps without a zone follow it too; those with one keep their own
    iso = SyslogParser(year=2026, utc_offset_s=berlin)
    assert iso.parse("2026-07-01T12:00:00 h p[1]: x").time_ns == ns(2026, 7, 1, 10, 0, 0)
    assert iso.parse("2026-07-01T12:00:00Z h p[1]: x").time_ns == ns(2026, 7, 1, 12, 0, 0)


def test_a_zone_name_reads_conversations_and_the_year_of_the_mtime(tmp_path):
    from fastcap.evidence.logzone import LogZone
    na = "mx.example.net[192.0.2.9]:25"
    path = write(tmp_path, [
        f"Oct 25 02:59:58 relay1 postfix/smtp[7]: setting up TLS connection to {na}",
        f"Oct 25 02:00:01 relay1 postfix/smtp[7]: Untrusted TLS connection established to "
        f"{na}: TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)"])
    (conv,), warnings = read(path, year=2026, utc_offset_s=LogZone.named("Europe/Berlin"))
    assert warnings == []
    assert (conv.start_ns, conv.end_ns) == (ns(2026, 10, 25, 0, 59, 58),
                                            ns(2026, 10, 25, 1, 0, 1))
    # New Year's Eve 23:30 UTC is already January in Tokyo: the year of the mtime is local
    tokyo = SyslogParser(mtime_ns=ns(2026, 12, 31, 23, 30, 0),
                         utc_offset_s=LogZone.named("Asia/Tokyo"))
    assert tokyo.parse("Jan  1 08:20:00 h p[1]: x").time_ns == ns(2026, 12, 31, 23, 20, 0)


def test_lines_of_a_conversation_across_the_repeated_hour_follow_the_zone(tmp_path):
    from fastcap.evidence.logzone import LogZone
    berlin = LogZone.named("Europe/Berlin")
    na = "mx.example.net[192.0.2.9]:25"
    path = write(tmp_path, [  # 02:59:50 CEST, then 02:00:10 CET: 20 seconds later
        f"Oct 25 02:59:50 relay1 postfix/smtp[7]: setting up TLS connection to {na}",
        f"Oct 25 02:00:10 relay1 postfix/smtp[7]: Untrusted TLS connection established to "
        f"{na}: TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)"])
    (conv,), _ = read(path, year=2026, utc_offset_s=berlin)
    got = [t for t, _ in postfix.lines_of(LogText(path), conv, utc_offset_s=berlin)]
    assert got == [conv.start_ns, conv.start_ns + 20 * 10**9] == [
        ns(2026, 10, 25, 0, 59, 50), ns(2026, 10, 25, 1, 0, 10)]


def test_smtpd_unprefixed_subject_and_issuer_lines_name_the_client_certificate(tmp_path):
    # tls_server.c at smtpd_tls_loglevel 2 logs the peer's subject and issuer in lines of
    # their own, "subject=/C=../CN=.." and "issuer=/..", before the prefixed subject_CN line
    na = "mail.contoso.com[203.0.113.10]"
    path = write(tmp_path, [
        f"Mar 10 09:31:20 relay1 postfix/smtpd[2400]: connect from {na}",
        f"Mar 10 09:31:20 relay1 postfix/smtpd[2400]: setting up TLS connection from {na}",
        "Mar 10 09:31:20 relay1 postfix/smtpd[2400]: subject=/C=US/O=Contoso/CN=mail.contoso.com",
        "Mar 10 09:31:20 relay1 postfix/smtpd[2400]: issuer=/C=US/O=Let's Encrypt/CN=R3",
        f"Mar 10 09:31:20 relay1 postfix/smtpd[2400]: {na}: subject_CN=mail.contoso.com, "
        "issuer=R3, cert fingerprint=DC:BF:E9:93:F2:6A:A4:EF:1F:0D:18:B0:3E:56:0A:88:30:2F:82:97",
        f"Mar 10 09:31:20 relay1 postfix/smtpd[2400]: Trusted TLS connection established from"
        f" {na}: TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)",
        f"Mar 10 09:31:21 relay1 postfix/smtpd[2400]: disconnect from {na} ehlo=2 starttls=1",
        f"Mar 10 09:40:00 relay1 postfix/smtpd[2400]: connect from {na}",
        "Mar 10 09:40:00 relay1 postfix/smtpd[2400]: subject=/CN=other.contoso.com",
        f"Mar 10 09:40:01 relay1 postfix/smtpd[2400]: disconnect from {na} ehlo=1",
    ])
    (conv, nxt), warnings = read(path, year=2026)
    assert warnings == []
    cert = conv.cert_received
    assert cert.subject == "CN=mail.contoso.com, O=Contoso, C=US"
    assert cert.issuer == "CN=R3, O=Let's Encrypt, C=US"
    assert cert.thumbprint == "DCBFE993F26AA4EF1F0D18B03E560A88302F8297"
    assert cert.where.line == 5 and (conv.first.line, conv.last.line) == (1, 7)
    assert nxt.cert_received.subject == "CN=other.contoso.com"  # the next connection's own
    assert nxt.cert_received.issuer is None and nxt.last.line == 10


def test_a_raw_public_key_is_not_called_a_client_certificate(tmp_path):
    # Postfix 3.9 with OpenSSL 3.2 (smtp_tls_enable_rpk): the client may send a bare public
    # key (RFC 7250); smtpd logs its fingerprint and says "raw public key" in the signature,
    # and calls the connection Untrusted all the same (a credential, not a certificate)
    na = "mail.contoso.com[203.0.113.10]"
    fp = ":".join(["AB"] * 32)
    path = write(tmp_path, [
        f"Mar 10 09:31:20 relay1 postfix/smtpd[2500]: connect from {na}",
        f"Mar 10 09:31:20 relay1 postfix/smtpd[2500]: {na}: raw public key fingerprint={fp}",
        f"Mar 10 09:31:20 relay1 postfix/smtpd[2500]: Untrusted TLS connection established "
        f"from {na}: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange "
        "X25519 server-signature ECDSA (prime256v1) server-digest SHA256 client-signature "
        "ECDSA (prime256v1 raw public key) client-digest SHA256",
        f"Mar 10 09:31:21 relay1 postfix/smtpd[2500]: disconnect from {na} ehlo=2 starttls=1",
    ])
    (conv,), warnings = read(path, year=2026)
    assert warnings == [] and conv.tls_trust == "Untrusted"
    notes = [t for t, _ in conv.notes]
    assert not any("a client certificate" in t for t in notes), notes
    assert any("raw public key" in t and fp.replace(":", "") in t for t in notes), notes
    assert any(t.startswith("received a raw public key") for t in notes), notes
    assert conv.cert_received is None
