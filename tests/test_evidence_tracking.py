"""Exchange message tracking logs and Exchange Online message trace exports -> one
LogConversation per message (fastcap.evidence.tracking)."""

from __future__ import annotations

import csv
import io
import os
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastcap.evidence import tracking
from fastcap.evidence.csvline import split_line
from fastcap.evidence.text import LogText

DATA = Path(__file__).parent / "data" / "evidence"
MSGTRK = DATA / "MSGTRK2026031009-1.LOG"
TRACE = DATA / "message_trace.csv"
EXTENDED = DATA / "message_trace_extended.csv"

FIELDS = (
    "date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,connector-id,"
    "source,event-id,internal-message-id,message-id,network-message-id,recipient-address,"
    "recipient-status,total-bytes,recipient-count,related-recipient-address,reference,"
    "message-subject,sender-address,return-path,message-info,directionality,tenant-id,"
    "original-client-ip,original-server-ip,custom-data,transport-traffic-type,log-id,"
    "schema-version").split(",")
HEADER = ("#Software: Microsoft Exchange Server\n#Version: 15.02.1544.004\n"
          "#Log-type: Message Tracking Log\n#Date: 2026-03-10T09:00:00.021Z\n")
DENY = "550 5.7.64 TenantAttribution; Relay Access Denied [AM6PR02MB4567.eurprd02.prod.outlook.com]"


def ns(*args: int) -> int:
    """UTC nanoseconds of datetime(*args) (microseconds last)."""
    when = datetime(*args, tzinfo=UTC)
    return int(when.replace(microsecond=0).timestamp()) * 10**9 + when.microsecond * 1000


def read(path: Path, **kw) -> tuple[list, list[str]]:
    warnings: list[str] = []
    convs = list(tracking.conversations(LogText(path), warnings.append, **kw))
    return convs, warnings


def tracking_row(fields: list[str] = FIELDS, **values: str) -> str:
    out = io.StringIO()
    row = [values.get(f.replace("-", "_"), "") for f in fields]
    csv.writer(out, lineterminator="").writerow(row)
    return out.getvalue()


def tracking_log(tmp_path: Path, rows: list[str], fields: list[str] = FIELDS,
                 name: str = "MSGTRK.LOG") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "#Fields: " + ",".join(fields) + "\n" + "\n".join(rows) + "\n")
    return path


def fail(time: str, iid: str, status: str = DENY, **more: str) -> str:
    values = dict(date_time=time, client_ip="10.1.2.10", client_hostname="EX01.contoso.com",
                  server_ip="52.101.68.5",
                  server_hostname="contoso-com.mail.protection.outlook.com",
                  connector_id="Outbound to Office 365", source="SMTP", event_id="FAIL",
                  internal_message_id=iid, message_id=f"<{iid}@EX01.contoso.com>",
                  recipient_address="bob@fabrikam.com", recipient_status=status,
                  sender_address="alice@contoso.com")
    values.update(more)
    return tracking_row(**values)


def summary(conv) -> tuple:
    """What a conversation says, without byte offsets (which differ between encodings)."""
    return (conv.kind, conv.first.line, conv.last.line, conv.start_ns, conv.end_ns,
            conv.host_role, conv.local_ip, conv.remote_ip, conv.remote_name, conv.session_id,
            conv.connector, conv.sender, conv.recipients, conv.event,
            [(r.code, r.enhanced, r.text, r.where.line) for r in conv.replies])


# --- detection -------------------------------------------------------------------------

def test_kind_of_the_fixtures_and_other_logs() -> None:
    assert tracking.kind_of(LogText(MSGTRK).head()) == "message-tracking"
    assert tracking.kind_of(LogText(TRACE).head()) == "message-trace"
    assert tracking.kind_of(LogText(EXTENDED).head()) == "message-trace"
    typed = '#TYPE System.Management.Automation.PSCustomObject\n' + TRACE.read_text()
    assert tracking.looks_like_trace(typed)
    enhanced = '"origin_timestamp_utc","sender_address","recipient_status","message_subject"\n'
    assert tracking.kind_of(enhanced) == "message-trace"
    send_log = ("#Software: Microsoft Exchange Server\n#Version: 15.2.1544.4\n"
                "#Log-type: SMTP Send Protocol Log\n#Date: 2026-03-10T09:00:00.000Z\n"
                "#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,"
                "remote-endpoint,event,data,context\n")
    for other in (send_log, "Mar 10 09:31:17 relay1 postfix/smtp[4242]: connect to x\n",
                  '{"Name": "From on-prem contoso"}', '"Name","Fqdn"\n"EX01","ex01"\n', ""):
        assert tracking.kind_of(other) is None
        assert not tracking.looks_like(other)


# --- message tracking log ----------------------------------------------------------------

def test_tracking_fixture_one_conversation_per_message_with_an_smtp_peer() -> None:
    convs, warnings = read(MSGTRK)
    assert warnings == []
    assert [c.session_id for c in convs] == [
        "<5f2c8e1a0b4d4c3e9a7f6b5d4c3b2a10@EX01.contoso.com>",
        "<job-20260310-0917@app01.contoso.com>",
        "<9a8b7c6d5e4f4a3b8c2d1e0f9a8b7c6d@EX01.contoso.com>"]
    first, app, second = convs
    assert first.kind == "message-tracking" and first.file == str(MSGTRK)
    assert (first.host_role, first.local_ip, first.remote_ip, first.local_port,
            first.remote_port) == ("client", "10.1.2.10", "52.101.68.5", None, None)
    assert first.remote_name == "contoso-com.mail.protection.outlook.com"
    assert first.connector == "Outbound to Office 365 - 1b0c6a4e-2f7d-4c1e-9a51-3d8e0f6b7a21"
    assert first.sender == "alice@contoso.com" and first.recipients == ("bob@fabrikam.com",)
    assert first.event == "DSN"  # the last event: the NDR that followed the FAIL
    assert (first.first.line, first.last.line) == (6, 9)
    assert (first.start_ns, first.end_ns) == (ns(2026, 3, 10, 9, 15, 1, 874000),
                                               ns(2026, 3, 10, 9, 15, 2, 790000))
    (reply,) = first.replies  # FAIL and DSN give the same status: kept once
    assert (reply.code, reply.enhanced, reply.after_tls, reply.where.line) == (
        550, "5.7.64", False, 8)
    assert reply.text == DENY
    assert first.rejection() is reply
    assert second.replies[0].enhanced == "5.7.64"
    assert second.start_ns == ns(2026, 3, 10, 9, 20, 41, 215000)
    # a message relayed from an application server: RECEIVE gives the peer; the SEND to
    # the server's own mailbox delivery names no other host
    assert (app.host_role, app.local_ip, app.remote_ip, app.remote_name) == (
        "server", "10.1.2.10", "10.1.2.30", "app01.contoso.com")
    assert app.connector == "EX01\\Default EX01"
    assert [(r.code, r.enhanced) for r in app.replies] == [(250, "2.1.5")]
    assert app.rejection() is None


def test_tracking_where_points_at_the_line_bytes() -> None:
    raw = MSGTRK.read_bytes()
    for conv in read(MSGTRK)[0]:
        for where in (conv.first, conv.last):
            line = raw[where.offset:].split(b"\r\n", 1)[0].decode()
            assert line == raw.split(b"\r\n")[where.line - 1].decode()
            assert line.startswith("2026-03-10T09:")


def test_tracking_lines_of_gives_only_that_message_lines(tmp_path: Path) -> None:
    rows = [fail("2026-03-10T09:15:02.100Z", "1", event_id="RECEIVE", source="SMTP",
                 client_ip="192.0.2.7", server_ip="10.1.2.10", recipient_status="To"),
            fail("2026-03-10T09:15:02.200Z", "2"),
            fail("2026-03-10T09:15:02.300Z", "1", client_ip="10.1.2.10",
                 server_ip="10.1.2.10", event_id="SEND",
                 recipient_status="250 2.6.0 <1@EX01> [InternalId=1, Hostname=EX01] Queued"),
            fail("2026-03-10T09:15:02.400Z", "2", source="DSN", event_id="DSN")]
    path = tracking_log(tmp_path, rows)
    text = LogText(path)
    convs = {c.session_id: c for c in tracking.conversations(text, lambda w: None)}
    one, two = convs["<1@EX01.contoso.com>"], convs["<2@EX01.contoso.com>"]
    assert one.host_role == "server" and one.remote_ip == "192.0.2.7"
    assert [(r.code, r.enhanced) for r in one.replies] == [(250, "2.6.0")]
    assert [(t, line.number) for t, line in tracking.lines_of(text, one)] == [
        (ns(2026, 3, 10, 9, 15, 2, 100000), 6), (ns(2026, 3, 10, 9, 15, 2, 300000), 8)]
    assert [line.number for _, line in tracking.lines_of(text, two)] == [7, 9]


def test_tracking_replies_in_each_status_shape(tmp_path: Path) -> None:
    statuses = {
        "a": "550 4.4.7 QUEUE.Expired;Message expired",
        "b": "{LED=550 5.7.64 TenantAttribution; Relay Access Denied};{MSG=};"
             "{FQDN=mx.example};{IP=52.101.68.5};{LRT=}",
        "c": "250 2.1.5 Recipient OK;550 5.1.1 RESOLVER.ADR.ExRecipNotFound; not found",
        "d": "421 4.4.2 Connection dropped due to SocketError",
    }
    rows = [fail(f"2026-03-10T09:1{i}:00.000Z", key, status=status,
                 recipient_address="x@fabrikam.com;y@fabrikam.com")
            for i, (key, status) in enumerate(statuses.items())]
    convs = {c.session_id[1]: c for c in read(tracking_log(tmp_path, rows))[0]}
    assert [(r.code, r.enhanced, r.text) for r in convs["a"].replies] == [
        (550, "4.4.7", "550 4.4.7 QUEUE.Expired;Message expired")]
    assert [(r.code, r.enhanced, r.text) for r in convs["b"].replies] == [
        (550, "5.7.64", "550 5.7.64 TenantAttribution; Relay Access Denied")]
    assert [(r.code, r.enhanced, r.text) for r in convs["c"].replies] == [
        (550, "5.1.1", "550 5.1.1 RESOLVER.ADR.ExRecipNotFound; not found")]  # 4xx/5xx + last
    assert convs["c"].recipients == ("x@fabrikam.com", "y@fabrikam.com")
    assert [(r.code, r.enhanced) for r in convs["d"].replies] == [(421, "4.4.2")]


def test_tracking_message_ends_after_grace_or_idle(tmp_path: Path) -> None:
    rows = [fail("2026-03-10T09:00:00.000Z", "7"),
            # a DSN within GRACE_S of the FAIL belongs to the same message
            fail("2026-03-10T09:00:30.000Z", "7", source="DSN", event_id="DSN"),
            # the same id long after: a new message (a resubmission)
            fail("2026-03-10T09:05:00.000Z", "7"),
            # a received message with no final event ends after IDLE_S without a line
            fail("2026-03-10T09:06:00.000Z", "8", event_id="RECEIVE", client_ip="192.0.2.9",
                 server_ip="10.1.2.10", recipient_status="To"),
            fail("2026-03-10T09:40:00.000Z", "8", event_id="DEFER",
                 status="451 4.4.0 DNS query failed")]
    convs, _ = read(tracking_log(tmp_path, rows))
    got = sorted((c.session_id, c.first.line, c.last.line) for c in convs)
    assert got == [("<7@EX01.contoso.com>", 6, 7), ("<7@EX01.contoso.com>", 8, 8),
                   ("<8@EX01.contoso.com>", 9, 9), ("<8@EX01.contoso.com>", 10, 10)]


def test_tracking_conversations_are_streamed(tmp_path: Path) -> None:
    rows = [fail(f"2026-03-10T{9 + i // 60:02d}:{i % 60:02d}:00.000Z", str(i))
            for i in range(300)]
    path = tracking_log(tmp_path, rows)

    class Counting(LogText):
        read_lines = 0

        def lines(self, start=0, end=None):
            for line in super().lines(start, end):
                Counting.read_lines = line.number
                yield line

    text = Counting(path)
    seen_at = []
    for conv in tracking.conversations(text, lambda w: None):
        seen_at.append((conv.first.line, Counting.read_lines))
    assert len(seen_at) == 300
    # each message was handed on a minute or two after its line, not at the end of the file
    assert all(read_at - line <= 3 for line, read_at in seen_at[:-3])


def _peak_reading(tmp_path: Path, messages: int) -> tuple[int, int, int]:
    """(file size, messages read, peak bytes allocated while reading them)."""
    rows = [fail(f"2026-03-10T{9 + i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}.000Z",
                 str(i // 3), event_id=("RECEIVE", "AGENTINFO", "FAIL")[i % 3],
                 message_subject=f"report {i}, " + "x" * 150) for i in range(3 * messages)]
    path = tracking_log(tmp_path, rows, name=f"MSGTRK-{messages}.LOG")
    text = LogText(path)
    tracemalloc.start()
    try:
        count = sum(1 for _ in tracking.conversations(text, lambda w: None))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return path.stat().st_size, count, peak


def test_tracking_memory_holds_messages_in_flight_not_the_file(tmp_path: Path) -> None:
    small_size, small_count, small_peak = _peak_reading(tmp_path, 2000)
    big_size, big_count, big_peak = _peak_reading(tmp_path, 6000)
    assert (small_count, big_count) == (2000, 6000)
    assert big_size > 2.9 * small_size
    # the text reader's chunk and a minute of messages, whatever the length of the file
    assert big_peak < 1.3 * small_peak


def test_tracking_local_only_messages_and_idless_events_are_left_out(tmp_path: Path) -> None:
    rows = [tracking_row(date_time="2026-03-10T09:00:00.000Z", source="STOREDRIVER",
                         event_id="NOTIFYMAPI"),
            tracking_row(date_time="2026-03-10T09:00:01.000Z", source="STOREDRIVER",
                         event_id="DELIVER", internal_message_id="5",
                         recipient_status="250 2.0.0 Delivered"),
            tracking_row(date_time="2026-03-10T09:00:02.000Z", source="ROUTING",
                         event_id="FAIL", internal_message_id="6",
                         recipient_status="550 5.1.1 RESOLVER.ADR.ExRecipNotFound")]
    assert read(tracking_log(tmp_path, rows)) == ([], [])


def test_tracking_original_client_ip_names_the_proxied_peer(tmp_path: Path) -> None:
    rows = [fail("2026-03-10T09:00:00.000Z", "9", event_id="RECEIVE", client_ip="10.1.2.10",
                 server_ip="10.1.2.10", original_client_ip="198.51.100.4",
                 recipient_status="To")]
    (conv,), _ = read(tracking_log(tmp_path, rows))
    assert (conv.host_role, conv.remote_ip) == ("server", "198.51.100.4")


# --- message trace exports ---------------------------------------------------------------

def test_trace_cmdlet_export_one_conversation_per_message() -> None:
    convs, warnings = read(TRACE)
    assert warnings == []
    by_ip = {}
    for conv in convs:
        assert conv.kind == "message-trace" and conv.host_role == "server"
        assert conv.event == "Failed" and conv.replies == ()
        assert conv.local_ip is None and conv.remote_port is None
        by_ip.setdefault(conv.remote_ip, []).append(conv)
    assert sorted(by_ip) == ["192.0.2.25", "203.0.113.10"]
    (relay,) = by_ip["192.0.2.25"]
    assert relay.start_ns == ns(2026, 3, 10, 9, 31, 17)  # "3/10/2026 9:31:17 AM", UTC
    assert relay.sender == "monitor@contoso.com" and relay.recipients == ("ops@fabrikam.com",)
    first = next(c for c in by_ip["203.0.113.10"] if c.start_ns == ns(2026, 3, 10, 9, 15, 2))
    # two recipient rows of one message (same MessageTraceId) make one conversation
    assert first.recipients == ("bob@fabrikam.com", "carol@fabrikam.com")
    assert (first.first.line, first.last.line) == (4, 5)
    assert first.session_id == "<5f2c8e1a0b4d4c3e9a7f6b5d4c3b2a10@EX01.contoso.com>"
    # yielded at the end of the file, in order of their end
    assert [c.end_ns for c in convs] == sorted(c.end_ns for c in convs)


def test_trace_extended_report_gives_the_reply() -> None:
    convs, warnings = read(EXTENDED)
    assert warnings == []
    assert [(c.remote_ip, c.remote_name, c.event) for c in convs] == [
        ("203.0.113.10", "EX01.contoso.com", "FAIL"),
        ("203.0.113.10", "EX01.contoso.com", "FAIL"),
        ("192.0.2.25", "relay1.contoso.com", "FAIL")]
    assert convs[0].start_ns == ns(2026, 3, 10, 9, 15, 2, 693000)  # 7 fraction digits
    assert convs[0].recipients == ("bob@fabrikam.com", "carol@fabrikam.com")
    for conv in convs:
        (reply,) = conv.replies
        assert (reply.code, reply.enhanced, reply.text) == (550, "5.7.64", DENY)
        assert conv.rejection() is reply
    assert convs[2].to_dict()["remote"] == "192.0.2.25"


def test_trace_enhanced_summary_and_quoting(tmp_path: Path) -> None:
    path = tmp_path / "enhanced.csv"
    path.write_text(
        '"origin_timestamp_utc","sender_address","recipient_status","message_subject",'
        '"total_bytes","message_id","network_message_id","original_client_ip",'
        '"directionality","connector_id","delivery_priority"\n'
        '"2026-03-10T09:15:02.6930000Z","alice@contoso.com",'
        '"bob@fabrikam.com##Receive, Fail;carol@fabrikam.com##Receive, Fail",'
        '"Re: ""numbers"", again, and again","8412","<m1@EX01>","n-1","203.0.113.10",'
        '"Originating","From on-prem contoso","Normal"\n')
    (conv,), warnings = read(path)
    assert warnings == []
    assert (conv.remote_ip, conv.event, conv.connector, conv.replies) == (
        "203.0.113.10", "Fail", "From on-prem contoso", ())
    assert conv.session_id == "<m1@EX01>"


def test_trace_outbound_message_is_sent_by_exchange_online(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    path.write_text('"Received","SenderAddress","RecipientAddress","Subject","Status","ToIP",'
                    '"FromIP","Size","MessageId","MessageTraceId"\n'
                    '"3/10/2026 9:40:00 PM","a@contoso.com","z@fabrikam.com","x","Delivered",'
                    '"198.51.100.20","","100","<m2@x>","t-2"\n')
    (conv,), _ = read(path)
    assert (conv.host_role, conv.remote_ip, conv.event) == ("client", "198.51.100.20",
                                                             "Delivered")
    assert conv.start_ns == ns(2026, 3, 10, 21, 40)


@pytest.mark.parametrize(("stamp", "expected", "ambiguous"), [
    ("2026-03-10T09:15:02Z", ns(2026, 3, 10, 9, 15, 2), False),
    ("2026-03-10T09:15:02.1180000Z", ns(2026, 3, 10, 9, 15, 2, 118000), False),
    ("2026-03-10 09:15:02", ns(2026, 3, 10, 9, 15, 2), False),
    ("2026-03-10T10:15:02+01:00", ns(2026, 3, 10, 9, 15, 2), False),
    ("2026-03-10T04:15:02-0500", ns(2026, 3, 10, 9, 15, 2), False),
    ("3/10/2026 9:15:03 AM", ns(2026, 3, 10, 9, 15, 3), False),
    ("3/10/2026 9:15:03 PM", ns(2026, 3, 10, 21, 15, 3), False),
    ("3/10/2026 12:05:00 AM", ns(2026, 3, 10, 0, 5), False),
    ("3/10/2026 12:05:00 PM", ns(2026, 3, 10, 12, 5), False),
    ("13/03/2026 09:15:03", ns(2026, 3, 13, 9, 15, 3), False),
    ("10.03.2026 09:15:03", ns(2026, 3, 10, 9, 15, 3), False),
    ("3/10/2026 09:15:03", ns(2026, 3, 10, 9, 15, 3), True),
    ("3/3/2026 09:15:03", ns(2026, 3, 3, 9, 15, 3), False),
    ("2026/03/10 9:15:03", ns(2026, 3, 10, 9, 15, 3), False),  # Export-Csv in ja-JP
    ("2026/3/10 21:15:03", ns(2026, 3, 10, 21, 15, 3), False),  # zh-CN
    # the day period before the hour: ko-KR (yyyy-MM-dd tt h:mm:ss), zh-TW (yyyy/M/d tt
    # hh:mm:ss), ja-JP set to 12 hours (tt h:mm:ss); noon is 12 in the afternoon
    ("2026-03-10 \uc624\ud6c4 9:15:03", ns(2026, 3, 10, 21, 15, 3), False),
    ("2026-03-10 \uc624\uc804 12:15:03", ns(2026, 3, 10, 0, 15, 3), False),
    ("2026/3/10 \u4e0b\u5348 09:15:03", ns(2026, 3, 10, 21, 15, 3), False),
    ("2026/3/10 \u4e0a\u5348 12:15:03", ns(2026, 3, 10, 0, 15, 3), False),
    ("2026/03/10 \u5348\u5f8c 12:15:03", ns(2026, 3, 10, 12, 15, 3), False),
])
def test_trace_dates_in_each_format(tmp_path: Path, stamp: str, expected: int,
                                    ambiguous: bool) -> None:
    path = tmp_path / "dates.csv"
    path.write_text('"Received","SenderAddress","RecipientAddress","Subject","Status","FromIP",'
                    f'"MessageTraceId"\n"{stamp}","a@x","b@y","s","Failed","192.0.2.1","t"\n')
    (conv,), warnings = read(path)
    assert conv.start_ns == expected
    assert len(warnings) == ambiguous
    if ambiguous:
        assert warnings[0].startswith(f"{path} line 2: date ")
        assert "month/day" in warnings[0]


@pytest.mark.parametrize(("stamps", "days", "told"), [
    # en-GB: the second date shows day first, and the third is read so
    (["10/03/2026 09:15:02", "13/03/2026 09:15:02", "11/03/2026 09:15:02"],
     [(10, 3), (3, 13), (3, 11)], ["could be day/month", "is day/month"]),
    # the invariant culture: a day over 12 in second place shows month first
    (["03/10/2026 09:15:02", "03/13/2026 09:15:02", "03/11/2026 09:15:02"],
     [(3, 10), (3, 13), (3, 11)], ["could be day/month"]),
    (["13/03/2026 09:15:02", "10/03/2026 09:15:02"], [(3, 13), (3, 10)], []),
    (["03/13/2026 09:15:02", "10/03/2026 09:15:02"], [(3, 13), (10, 3)], []),
])
def test_an_export_reads_its_slashed_dates_in_one_order(tmp_path: Path, stamps: list[str],
                                                        days: list[tuple[int, int]],
                                                        told: list[str]) -> None:
    """One export is written in one culture: once a date shows whether the day comes first,
    the dates after it are read in that order, not each by its own numbers."""
    path = tmp_path / "gb.csv"
    rows = "".join(f'"{stamp}","a@x","b@y","s","Failed","192.0.2.1","t{i}"\n'
                   for i, stamp in enumerate(stamps))
    path.write_text('"Received","SenderAddress","RecipientAddress","Subject","Status","FromIP",'
                    f'"MessageTraceId"\n{rows}')
    convs, warnings = read(path)
    assert sorted(c.start_ns for c in convs) == sorted(ns(2026, m, d, 9, 15, 2)
                                                       for m, d in days)
    assert len(warnings) == len(told)
    for w, text in zip(warnings, told, strict=True):
        assert text in w


@pytest.mark.parametrize("stamp", ["2026-02-30T09:15:02Z", "13/13/2026 09:15:02",
                                   "2026/13/10 09:15:02", "2026/02/30 09:15:02",
                                   "3/10/2026 13:15:02 PM", "2026-03-10T25:00:00Z",
                                   "2026-03-10 \uc624\ud6c4 13:15:03",
                                   "yesterday", ""])
def test_dates_not_understood_are_warned_and_skipped(tmp_path: Path, stamp: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text('"Received","SenderAddress","RecipientAddress","Subject","Status","FromIP",'
                    f'"MessageTraceId"\n"{stamp}","a@x","b@y","s","Failed","192.0.2.1","t"\n'
                    '"3/10/2026 9:15:02 AM","a@x","b@y","s","Failed","192.0.2.1","u"\n')
    convs, warnings = read(path)
    (warning,) = warnings
    assert warning.startswith(f"{path} line 2: date {stamp!r} not understood (read: ISO 8601, ")
    assert warning.endswith("; line skipped")
    assert [c.first.line for c in convs] == [3]


def test_zone_less_dates_take_the_utc_offset_but_utc_ones_do_not(tmp_path: Path) -> None:
    path = tmp_path / "offset.csv"
    path.write_text('"Received","SenderAddress","RecipientAddress","Subject","Status","FromIP",'
                    '"MessageTraceId"\n'
                    '"3/10/2026 10:15:02 AM","a@x","b@y","s","Failed","192.0.2.1","t1"\n'
                    '"2026-03-10T09:15:02Z","a@x","b@y","s","Failed","192.0.2.1","t2"\n')
    convs, _ = read(path, utc_offset_s=3600)
    assert [c.start_ns for c in convs] == [ns(2026, 3, 10, 9, 15, 2)] * 2
    text = LogText(path)
    assert [t for t, _ in tracking.lines_of(text, convs[0], utc_offset_s=3600)] == [
        ns(2026, 3, 10, 9, 15, 2)]


# --- CSV quoting ------------------------------------------------------------------------

_FIELD = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
                 max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(_FIELD, min_size=1, max_size=8), st.booleans())
def test_fields_split_as_the_csv_module_writes_them(fields: list[str], quote_all: bool) -> None:
    out = io.StringIO()
    csv.writer(out, lineterminator="",
               quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL).writerow(fields)
    line = out.getvalue()
    assert split_line(line) == next(csv.reader([line]))


@pytest.mark.parametrize("line", ['"unclosed,x', 'a,"b""', '"a"b"'])
def test_broken_quoting_is_refused(line: str) -> None:
    assert split_line(line) is None


def test_open_messages_are_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracking, "MAX_OPEN", 3)
    receive = dict(event_id="RECEIVE", client_ip="192.0.2.9", server_ip="10.1.2.10",
                   recipient_status="To")
    rows = [fail(f"2026-03-10T09:00:0{i}.000Z", str(i), **receive) for i in range(5)]
    rows.append(fail("2026-03-10T09:00:06.000Z", "0"))  # message 0's FAIL, after 4 others
    convs, _ = read(tracking_log(tmp_path, rows))
    zero = sorted((c.first.line, c.last.line) for c in convs if c.session_id[1] == "0")
    assert zero == [(6, 6), (11, 11)]  # it had ended when the cap was passed
    assert len(convs) == 6


# --- bad input ---------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-8-sig"])
@pytest.mark.parametrize("fixture", [MSGTRK, TRACE, EXTENDED])
def test_utf16_copies_give_the_same_conversations(tmp_path: Path, encoding: str,
                                                  fixture: Path) -> None:
    copy = tmp_path / fixture.name
    copy.write_bytes(fixture.read_text(encoding="utf-8").encode(encoding))
    want, _ = read(fixture)
    got, warnings = read(copy)
    assert warnings == []
    assert [summary(c) for c in got] == [summary(c) for c in want]
    text = LogText(copy)
    for conv, orig in zip(got, want, strict=True):
        assert [(t, line.number) for t, line in tracking.lines_of(text, conv)] == [
            (t, line.number) for t, line in tracking.lines_of(LogText(fixture), orig)]


def test_garbled_lines_are_warned_with_file_and_line_and_the_rest_counts(
        tmp_path: Path) -> None:
    lines = MSGTRK.read_text().split("\n")
    lines.insert(6, "2026-03-10T09:15:01.880Z,10.1.2.10,only,four")        # line 7
    lines.insert(7, 'not-a-date' + lines[5][len("2026-03-10T09:15:01.874Z"):])  # line 8
    lines.insert(8, '2026-03-10T09:15:01.890Z,"unclosed,quote')             # line 9
    truncated = lines[-2][:60]  # the file ends mid-line, as a log being written does
    path = tmp_path / "garbled.LOG"
    path.write_text("\n".join(lines[:-2] + [lines[-2][:0] + truncated]))
    convs, warnings = read(path)
    assert [w.split(":")[0] for w in warnings] == [
        f"{path} line 7", f"{path} line 8", f"{path} line 9", f"{path} line 18"]
    assert "4 fields where the header names 30" in warnings[0]
    assert "'not-a-date'" in warnings[1]
    assert "quotes" in warnings[2]
    assert len(convs) == 3
    assert convs[0].replies[0].enhanced == "5.7.64"


def test_unknown_columns_are_tolerated(tmp_path: Path) -> None:
    fields = ["future-field", *reversed(FIELDS)]
    rows = [fail("2026-03-10T09:00:00.000Z", "1", fields=fields, future_field="x,y")]
    path = tracking_log(tmp_path, rows, fields)
    (conv,), warnings = read(path)
    assert warnings == []
    assert (conv.remote_ip, conv.replies[0].enhanced) == ("52.101.68.5", "5.7.64")

    rows = list(csv.reader(io.StringIO(TRACE.read_text())))
    path = tmp_path / "more.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([["Extra", *reversed(r)] for r in rows])
    got, warnings = read(path)
    assert warnings == []
    assert [summary(c)[3:] for c in got] == [summary(c)[3:] for c in read(TRACE)[0]]


def test_missing_columns_are_warned_once(tmp_path: Path) -> None:
    fields = [f for f in FIELDS if f != "recipient-status"]
    rows = [fail("2026-03-10T09:00:00.000Z", "1", fields=fields),
            fail("2026-03-10T10:00:00.000Z", "2", fields=fields)]
    path = tmp_path / "two.LOG"
    part = HEADER + "#Fields: " + ",".join(fields) + "\n"
    path.write_text(part + rows[0] + "\n" + part + rows[1] + "\n")  # two logs concatenated
    convs, warnings = read(path)
    assert warnings == [f"{path} line 5: no recipient-status column; replies are unknown"]
    assert [c.remote_ip for c in convs] == ["52.101.68.5"] * 2
    assert all(c.replies == () for c in convs)

    path = tmp_path / "noip.csv"
    path.write_text('"Received","SenderAddress","RecipientAddress","Status","MessageId"\n'
                    '"3/10/2026 9:15:02 AM","a@x","b@y","Failed","<m>"\n'
                    '"3/10/2026 9:16:02 AM","a@x","c@y","Failed","<n>"\n')
    convs, warnings = read(path)
    assert warnings == [f"{path} line 1: no FromIP or original_client_ip column; "
                        "messages cannot be joined by peer"]
    assert [c.remote_ip for c in convs] == [None, None]


def test_tracking_log_without_fields_header_uses_exchange_fields(tmp_path: Path) -> None:
    path = tmp_path / "headless.LOG"
    path.write_text("#Log-type: Message Tracking Log\n" + fail("2026-03-10T09:00:00Z", "1") + "\n")
    (conv,), warnings = read(path)
    assert warnings == [f"{path} line 2: no #Fields header before the first line; read with "
                        "Exchange 2016/2019's fields"]
    assert conv.remote_ip == "52.101.68.5"


def test_logs_are_read_only(tmp_path: Path) -> None:
    for fixture in (MSGTRK, TRACE):
        before = (fixture.read_bytes(), os.stat(fixture).st_mtime_ns)
        convs, _ = read(fixture)
        for conv in convs:
            list(tracking.lines_of(LogText(fixture), conv))
        assert (fixture.read_bytes(), os.stat(fixture).st_mtime_ns) == before


# --- Get-MessageTrackingLog | Export-Csv -------------------------------------------------

# The cmdlet's properties: the log's fields without dashes, date-time as Timestamp,
# recipient-address as Recipients, sender-address as Sender (Microsoft's Get-MessageTrackingLog
# reference); Windows PowerShell's Export-Csv quotes every field and writes "#TYPE" first.
EXPORT_COLUMNS = (
    "RunspaceId,Timestamp,ClientIp,ClientHostname,ServerIp,ServerHostname,SourceContext,"
    "ConnectorId,Source,EventId,InternalMessageId,MessageId,NetworkMessageId,Recipients,"
    "RecipientStatus,TotalBytes,RecipientCount,RelatedRecipientAddress,Reference,"
    "MessageSubject,Sender,ReturnPath,Directionality,TenantId,OriginalClientIp,MessageInfo,"
    "MessageLatency,MessageLatencyType,EventData,TransportTrafficType,SchemaVersion").split(",")
EXPORT_TYPE = "#TYPE Microsoft.Exchange.Management.TransportLogSearchTasks.MessageTrackingEvent"


def tracking_export(path: Path, rows: list[dict[str, str]], *, typed: bool = True,
                    sep: str = ",") -> Path:
    out = io.StringIO()
    if typed:
        out.write(EXPORT_TYPE + "\r\n")
    w = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n", delimiter=sep)
    w.writerow(EXPORT_COLUMNS)
    for r in rows:
        w.writerow([r.get(c, "") for c in EXPORT_COLUMNS])
    path.write_text(out.getvalue(), newline="")
    return path


def export_event(stamp: str, iid: str, event: str = "FAIL", status: str = DENY,
                 recipients: str = "bob@fabrikam.com") -> dict[str, str]:
    return dict(Timestamp=stamp, ClientIp="10.1.2.10", ClientHostname="EX01.contoso.com",
                ServerIp="52.101.68.5", ServerHostname="contoso-com.mail.protection.outlook.com",
                ConnectorId="Outbound to Office 365", Source="SMTP", EventId=event,
                InternalMessageId=iid, MessageId=f"<{iid}@EX01.contoso.com>",
                Recipients=recipients, RecipientStatus=status, Sender="alice@contoso.com",
                EventData="System.Collections.Generic.List`1[System.Collections.Generic."
                          "KeyValuePair`2[System.String,System.String]]")


@pytest.mark.parametrize("typed", [True, False])
def test_tracking_export_is_read_with_local_times_at_the_utc_offset(tmp_path: Path,
                                                                     typed: bool) -> None:
    # en-US (M/d/yyyy h:mm:ss AM) and the invariant culture (MM/dd/yyyy HH:mm:ss); the
    # Timestamp is the exporting machine's local time, here UTC+01:00
    path = tracking_export(tmp_path / "track.csv", [
        export_event("3/10/2026 10:15:02 AM", "1001"),
        export_event("03/13/2026 22:16:09", "1002", status="250 2.0.0 OK",
                     recipients="carol@fabrikam.com;dave@fabrikam.com")], typed=typed)
    assert tracking.kind_of(LogText(path).head()) == "message-tracking"
    (first, second), warnings = read(path, utc_offset_s=3600)
    assert warnings == []
    assert (first.start_ns, second.start_ns) == (ns(2026, 3, 10, 9, 15, 2),
                                                 ns(2026, 3, 13, 21, 16, 9))
    assert (first.host_role, first.local_ip, first.remote_ip, first.connector) == (
        "client", "10.1.2.10", "52.101.68.5", "Outbound to Office 365")
    assert (first.sender, first.recipients, first.event) == (
        "alice@contoso.com", ("bob@fabrikam.com",), "FAIL")
    assert [(r.code, r.enhanced) for r in first.replies] == [(550, "5.7.64")]
    assert second.recipients == ("carol@fabrikam.com", "dave@fabrikam.com")
    line = 3 if typed else 2
    assert (first.first.line, first.session_id) == (line, "<1001@EX01.contoso.com>")
    got = list(tracking.lines_of(LogText(path), first, utc_offset_s=3600))
    assert [(t, ln.number) for t, ln in got] == [(ns(2026, 3, 10, 9, 15, 2), line)]


def test_tracking_export_arrays_written_by_type_name_are_no_values(tmp_path: Path) -> None:
    path = tracking_export(tmp_path / "track.csv", [
        export_event("3/10/2026 9:15:02 AM", "1001", status="System.String[]",
                     recipients="System.String[]"),
        export_event("3/10/2026 9:15:03 AM", "1002", status="System.String[]",
                     recipients="System.String[]")])
    convs, warnings = read(path)
    assert [(c.recipients, c.replies) for c in convs] == [((), ())] * 2
    assert len(warnings) == 1
    assert warnings[0].startswith(f"{path} line 3: Recipients or RecipientStatus written as "
                                  "'System.String[]'")


def test_tracking_export_facts_are_read_again_by_region(tmp_path: Path) -> None:
    from fastcap.evidence.read import read_evidence
    path = tracking_export(tmp_path / "track.csv", [
        export_event(f"3/10/2026 9:{m:02}:02 AM", str(1000 + m)) for m in range(3)])
    ev = read_evidence([path], utc_offset_s=-3600)
    assert ev.warnings == () and [f.kind for f in ev.files] == ["message-tracking"]
    conv = ev.conversations[1]
    assert conv.slim and conv.start_ns == ns(2026, 3, 10, 10, 1, 2)
    full = ev.full(conv)
    assert not full.slim and [r.code for r in full.replies] == [550]


@pytest.mark.parametrize(("sep", "shown"), [(";", "';'"), ("\t", "tabs")])
def test_an_export_with_another_delimiter_is_named_in_one_warning(
        tmp_path: Path, sep: str, shown: str) -> None:
    from fastcap.evidence.read import read_evidence
    path = tracking_export(tmp_path / "track.csv", [
        export_event("10.03.2026 10:15:02", "1001")], sep=sep)
    ev = read_evidence([path])
    assert ev.conversations == ()
    (warning,) = ev.warnings
    assert warning.startswith(f"{path}: not a log fastcap reads")
    assert f"it is an export with {shown} between fields (Export-Csv -UseCulture" in warning


def test_tracking_export_local_times_follow_a_zone_name_across_dst(tmp_path: Path) -> None:
    # America/New_York, 2026-11-01: 02:00 EDT becomes 01:00 EST, so 01:00-01:59 happens twice;
    # an export in time order goes 01:50 (EDT), then 01:10 (EST) once the clocks went back
    from zoneinfo import ZoneInfo

    from fastcap.evidence.logzone import LogZone
    stamps = [("10/31/2026 11:00:00 PM", datetime(2026, 10, 31, 23, 0, 0), 0),
              ("11/1/2026 1:50:00 AM", datetime(2026, 11, 1, 1, 50, 0), 0),
              ("11/1/2026 1:10:00 AM", datetime(2026, 11, 1, 1, 10, 0), 1),
              ("11/1/2026 2:10:00 AM", datetime(2026, 11, 1, 2, 10, 0), 0)]
    path = tracking_export(tmp_path / "track.csv", [
        export_event(stamp, str(2000 + i)) for i, (stamp, _, _) in enumerate(stamps)])
    zone = LogZone.named("America/New_York")
    convs, warnings = read(path, utc_offset_s=zone)
    assert warnings == []
    want = [int(w.replace(tzinfo=ZoneInfo("America/New_York"), fold=f).timestamp()) * 10**9
            for _, w, f in stamps]
    assert [c.start_ns for c in convs] == want
    # read again alone, its repeated time is read as it was the first time
    assert [t for t, _ in tracking.lines_of(LogText(path), convs[2], utc_offset_s=zone)] == [
        want[2]]


def test_an_export_field_holding_a_line_break_keeps_its_record_whole(tmp_path: Path) -> None:
    # Export-Csv quotes a field holding a line break (always, or -UseQuotes AsNeeded for one
    # holding the delimiter, a quote or "\n") and writes the break as it is: one record on
    # three lines of the file, in Windows PowerShell's CRLF
    lines = TRACE.read_text(encoding="utf-8").splitlines()
    broken = lines[2].replace('"Contract draft v2"',
                              '"Contract draft v2\r\n\r\nsee ""notes"", p. 2"')
    assert broken != lines[2]
    path = tmp_path / "trace.csv"
    path.write_bytes("\r\n".join(lines[:2] + [broken] + lines[3:] + [""]).encode("utf-8"))
    convs, warnings = read(path)
    assert warnings == []
    want, _ = read(TRACE)
    assert [c.session_id for c in convs] == [c.session_id for c in want]
    draft = next(c for c in convs if c.start_ns == ns(2026, 3, 10, 9, 20, 42))
    assert draft.recipients == ("bob@fabrikam.com",) and draft.first.line == 3
    # the lines after it keep their own numbers, and `follow` finds the record again
    later = next(c for c in convs if c.start_ns == ns(2026, 3, 10, 9, 15, 2))
    assert (later.first.line, later.last.line) == (6, 7)
    assert [n.number for _, n in tracking.lines_of(LogText(path), draft)] == [3]
    # a quote never closed is still refused, and only its own lines are lost
    path.write_bytes("\r\n".join(lines[:2] + [lines[2].replace('2"', '2', 1)] + lines[3:]
                                 + [""]).encode("utf-8"))
    convs, warnings = read(path)
    assert len(convs) == len(want) - 1 and len(warnings) == 1 and "quote" in warnings[0]


def test_two_lines_with_a_quote_left_open_do_not_swallow_the_records_between(
        tmp_path: Path) -> None:
    # each damaged on its own: joined, they would balance their quotes as one record that
    # is none; only a join that makes a record of the header's width is taken
    lines = TRACE.read_text(encoding="utf-8").splitlines()
    damaged = [lines[0], lines[1].replace('"Failed"', '"Failed', 1), *lines[2:4],
               lines[4].replace('"Failed"', '"Failed', 1)]
    path = tmp_path / "trace.csv"
    path.write_text("\n".join(damaged) + "\n", encoding="utf-8")
    convs, warnings = read(path)
    assert [w.split(":")[0] for w in warnings] == [f"{path} line 2", f"{path} line 5"]
    assert sorted(c.first.line for c in convs) == [3, 4]
