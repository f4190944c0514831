"""Exchange message tracking logs and Exchange Online message trace exports, as one
`LogConversation` per message.

Both record events of messages, not SMTP connections: which host a message came from or
went to, when, and the status the far end gave (`550 5.7.64 TenantAttribution; ...`).
They carry no ports and say nothing of TLS, so they join a capture by peer address and time.

* A message tracking log (`MSGTRK*.LOG`, kind "message-tracking") is the W3C-headed CSV
  an Exchange server writes: `#Log-type: Message Tracking Log`, then `#Fields:` naming the
  columns (date-time, client-ip, server-ip, source, event-id, internal-message-id,
  recipient-status, ...).  Lines are grouped by internal-message-id (else message-id).  The
  peer is the other host of the message's SMTP hop: an SMTP SEND, FAIL or DEFER to another
  host makes the server the client of that connection (remote = server-ip); else an SMTP
  RECEIVE from another host makes it the server (remote = original-client-ip, else
  client-ip).  Messages that never crossed SMTP to another host (local deliveries) are
  left out: they cannot meet a capture, and a busy server logs thousands of them.
  `Get-MessageTrackingLog | Export-Csv` is read by the same rules: its columns are the
  cmdlet's properties (Timestamp, ClientIp, EventId, Recipients, Sender, ...; a leading
  `#TYPE` line is skipped), its Timestamp the exporting machine's local time (read at
  `utc_offset_s`).  Export-Csv writes the array properties Recipients and RecipientStatus as
  `System.String[]`, which is read as no value (told once).
* A message trace export (kind "message-trace") is the CSV of `Get-MessageTrace` /
  `Get-MessageTraceV2 | Export-Csv` (Received, SenderAddress, RecipientAddress, Status,
  FromIP, ToIP, MessageTraceId, ...; a leading `#TYPE` line is skipped) or of the
  downloadable enhanced summary / extended reports (origin_timestamp_utc or date_time_utc,
  sender_address, recipient_status, original_client_ip, connector_id, ...).  Exchange Online
  wrote it, so a message with a FromIP / original_client_ip is one it received (host_role
  server, remote = that address); one with only a ToIP is one it sent (host_role client).
  Rows are grouped by MessageTraceId, network_message_id, internal_message_id or message_id.

When a message ends (memory stays bounded by the messages in flight, not the file): in a
tracking log, GRACE_S of log time after its last line once it has reached SEND, FAIL, DSN,
DELIVER or DROP (the DSN that follows a FAIL still joins it), or IDLE_S after its last line
otherwise; in either kind, when MAX_OPEN messages are open the one touched longest ago ends;
and every message ends at the end of the file.  A later line of an ended message starts a
new one.  The span of a conversation is that of its message's lines.

Columns are found by name (case, `-`, `_` and spaces ignored), so unknown columns are
tolerated and a missing one is warned about once.  Dates: ISO 8601 (tracking logs write
UTC `Z`), `M/D/YYYY h:mm:ss AM` (Export-Csv in en-US), `MM/DD/YYYY HH:mm:ss` (the invariant
culture), day-first and year-first forms; a date without a zone is local time at
`utc_offset_s` (default 0: UTC, as the message trace exports write them).  A date in another
form skips its line, and the first such warning names the forms read.  An export with `;` or
tabs between fields is not read (`read` names it so).
"""

from __future__ import annotations

import operator
import re
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import NamedTuple

from .csvline import records, split_line
from .logdates import ExportDates
from .logzone import LogZone
from .records import LogConversation, LogReply, Where
from .text import LogText, TextLine

__all__ = ["GRACE_S", "IDLE_S", "KIND_TRACE", "KIND_TRACKING", "MAX_OPEN", "conversations",
           "kind_of", "lines_of", "looks_like", "looks_like_trace", "looks_like_tracking"]

KIND_TRACKING = "message-tracking"
KIND_TRACE = "message-trace"
GRACE_S = 60.0  # log time a message that reached a final event waits for its last lines
IDLE_S = 1800.0  # log time without a line after which any other message has ended
MAX_OPEN = 100_000  # messages open at once; beyond this the one touched longest ago ends
MAX_RECIPIENTS = 20
MAX_REPLIES = 20
MAX_NOTES = 20
MAX_TEXT = 300

_FINAL_EVENTS = frozenset({"SEND", "FAIL", "DSN", "DELIVER", "DROP"})
_OUT_EVENTS = frozenset({"SEND", "FAIL", "DEFER"})
_TELLING_EVENTS = frozenset({"FAIL", "DEFER", "DROP", "DSN"})

# The Exchange Server 2016/2019 field list, for a tracking log whose #Fields line is missing.
_DEFAULT_FIELDS = (
    "date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,connector-id,"
    "source,event-id,internal-message-id,message-id,network-message-id,recipient-address,"
    "recipient-status,total-bytes,recipient-count,related-recipient-address,reference,"
    "message-subject,sender-address,return-path,message-info,directionality,tenant-id,"
    "original-client-ip,original-server-ip,custom-data,transport-traffic-type,log-id,"
    "schema-version")

# Column name (lower case, without "-", "_" and spaces) -> what it holds.  Tracking logs
# spell them date-time, client-ip, ...; the message trace reports client_ip, ...; the
# cmdlet export Received, SenderAddress, ...
_COLUMNS = {
    "datetime": "time", "datetimeutc": "time", "origintimestamputc": "time",
    "origintimestamp": "time", "received": "time", "timestamp": "time",
    "clientip": "client_ip", "clienthostname": "client_host",
    "serverip": "server_ip", "serverhostname": "server_host",
    "sourcecontext": "source_context", "connectorid": "connector", "source": "source",
    "eventid": "event", "status": "status",
    "internalmessageid": "internal_id", "messageid": "message_id",
    "networkmessageid": "network_id", "messagetraceid": "trace_id",
    "recipientaddress": "recipients", "recipients": "recipients",
    "recipientstatus": "recipient_status", "senderaddress": "sender", "sender": "sender",
    "returnpath": "return_path",
    "originalclientip": "original_client_ip", "fromip": "from_ip", "toip": "to_ip",
}
_TRACKING_NEEDS = (("time", "date-time", "its lines are skipped"),
                   ("event", "event-id", "events are unknown"),
                   ("source", "source", "SMTP hops are unknown"),
                   ("client_ip", "client-ip", "peers may be unknown"),
                   ("server_ip", "server-ip", "peers may be unknown"),
                   ("recipient_status", "recipient-status", "replies are unknown"))
_TRACE_NEEDS = (("time", "Received or date_time_utc", "its rows are skipped"),)

_TRACKING_HEAD = re.compile(r"^#Log-type:\s*Message Tracking Log\s*$", re.I | re.M)
# An SMTP reply in a status: code, optional enhanced code, standing as words of their own.
_REPLY = re.compile(r"(?<![^\s;{=\[])([2-5]\d\d)(?:[ -]([2-5]\.\d{1,3}\.\d{1,3}))?(?![^\s;}\]])")


def _name(header: str) -> str:
    return header.strip().strip('"').lstrip("\ufeff").lower().replace("-", "").replace(
        "_", "").replace(" ", "")


class _Row(NamedTuple):
    """The columns of one line this module reads ("" where the file has none)."""

    time: str
    client_ip: str
    client_host: str
    server_ip: str
    server_host: str
    source_context: str
    connector: str
    source: str
    event: str
    status: str
    internal_id: str
    message_id: str
    network_id: str
    trace_id: str
    recipients: str
    recipient_status: str
    sender: str
    return_path: str
    original_client_ip: str
    from_ip: str
    to_ip: str


class _Layout:
    """Where each known column is in a line's fields."""

    __slots__ = ("_pick", "count", "index")

    def __init__(self, names: list[str]) -> None:
        self.count = len(names)
        self.index: dict[str, int] = {}
        for i, header in enumerate(names):
            what = _COLUMNS.get(_name(header))
            if what is not None:
                self.index.setdefault(what, i)
        # a missing column reads the "" appended after the last field
        self._pick = operator.itemgetter(*(self.index.get(w, self.count) for w in _Row._fields))

    def row(self, fields: list[str]) -> _Row:
        fields.append("")
        return _Row._make(self._pick(fields))


def looks_like_tracking(head: str) -> bool:
    """An Exchange message tracking log: its W3C header names the log type, or it is a
    `Get-MessageTrackingLog | Export-Csv` export (the cmdlet's property names as columns)."""
    return _TRACKING_HEAD.search(head) is not None or _tracking_export(head)


def _tracking_export(head: str) -> bool:
    """`Get-MessageTrackingLog | Export-Csv`: Timestamp, EventId, Source and a message id
    among the column names (the log's fields without dashes, date-time as Timestamp)."""
    have = _csv_names(head)
    return bool(have and {"timestamp", "eventid", "source"} <= have
                and have & {"internalmessageid", "messageid"})


def _csv_names(head: str) -> set[str] | None:
    """The normalised column names of a CSV export's header line, if it has one."""
    names = _csv_header(head)
    return {_name(n) for n in names} if names else None


def _csv_header(head: str) -> list[str] | None:
    """The column names of a CSV export: its first line that is neither blank nor a "#"
    line (Export-Csv's "#TYPE ...")."""
    for line in head.lstrip("\ufeff").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        return split_line(line)
    return None


def _trace_header(head: str) -> list[str] | None:
    """The column names of a message trace export, if `head` starts like one."""
    names = _csv_header(head)
    if names:
        have = {_name(n) for n in names}
        cmdlet = {"received", "senderaddress", "recipientaddress", "status"} <= have
        report = (bool(have & {"datetimeutc", "origintimestamputc", "origintimestamp"})
                  and {"senderaddress", "recipientstatus"} <= have)
        return names if cmdlet or report else None
    return None


def other_delimiter(head: str) -> str | None:
    """The delimiter of an export this module would read were it comma-separated: `;` or a
    tab (`Export-Csv -UseCulture` in a culture whose list separator is not a comma, or
    `-Delimiter`); None if it is no such export."""
    for line in head.lstrip("\ufeff").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        for sep in (";", "\t"):
            if sep in line and kind_of(line.replace(",", " ").replace(sep, ",")) is not None:
                return sep
        return None
    return None


def looks_like_trace(head: str) -> bool:
    """An Exchange Online message trace export (cmdlet CSV or downloadable report)."""
    return _trace_header(head) is not None


def looks_like(head: str) -> bool:
    """Either of the message logs this module reads."""
    return kind_of(head) is not None


def kind_of(head: str) -> str | None:
    """"message-tracking", "message-trace" or None, from the file's first characters."""
    if looks_like_tracking(head):
        return KIND_TRACKING
    if looks_like_trace(head):
        return KIND_TRACE
    return None


class _Message:
    """One message being read: what its lines have told so far."""

    __slots__ = ("connector", "end_ns", "event", "final", "first", "last", "local_ip", "notes",
                 "peer_rank", "recipients", "recipients_text", "remote_ip", "remote_name",
                 "replies", "role", "sender", "session_id", "start_ns")

    def __init__(self, line: TextLine, ns: int) -> None:
        self.first = self.last = line
        self.start_ns = self.end_ns = ns
        self.peer_rank = 0
        self.role: str | None = None
        self.local_ip: str | None = None
        self.remote_ip: str | None = None
        self.remote_name: str | None = None
        self.connector: str | None = None
        self.sender: str | None = None
        self.recipients: list[str] = []
        self.recipients_text = ""
        self.event: str | None = None
        self.session_id: str | None = None
        self.replies: list[LogReply] = []
        self.notes: list[tuple[str, Where]] = []
        self.final = False

    def peer(self, rank: int, role: str, local: str, remote: str, name: str,
             connector: str) -> None:
        """Keep the best-ranked peer seen (the first of equal rank), and the connector of
        that hop."""
        if rank > self.peer_rank and remote:
            self.peer_rank, self.role = rank, role
            self.local_ip, self.remote_ip = _ip(local), _ip(remote)
            self.remote_name = sys.intern(name) if name else None
            if connector:
                self.connector = sys.intern(connector)


def _ip(text: str) -> str | None:
    """An address as logged, without brackets or a port if one was written with it."""
    text = text.strip()
    if not text:
        return None
    if text.startswith("["):
        return sys.intern(text[1:text.find("]")] if "]" in text else text[1:])
    if text.count(":") == 1:  # a.b.c.d:port
        text = text.split(":", 1)[0]
    return sys.intern(text)


def _replies(status: str, path: str, line: TextLine) -> list[LogReply]:
    """The SMTP replies in a recipient status (one per recipient, ';'-separated, though a
    reply's text may hold ';' too: each runs to the next reply code)."""
    found = list(_REPLY.finditer(status))
    if not found:
        return []
    where = Where(path, line.number, line.offset)
    out = []
    for i, m in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(status)
        text = status[m.start():end]
        cut = text.find("};")
        if cut >= 0:
            text = text[:cut]
        text = sys.intern(text.rstrip(" ;}").strip()[:MAX_TEXT])  # rejections repeat
        out.append(LogReply(int(m.group(1)), m.group(2), text, False, where))
    return out


class _Open:
    """The messages being read, ended by the rules in the module docstring."""

    def __init__(self, idle_ns: int | None, grace_ns: int | None) -> None:
        self.idle_ns, self.grace_ns = idle_ns, grace_ns
        self.active: OrderedDict[str, _Message] = OrderedDict()
        self.ending: OrderedDict[str, _Message] = OrderedDict()

    def __len__(self) -> int:
        return len(self.active) + len(self.ending)

    def get(self, key: str) -> _Message | None:
        return self.active.get(key) or self.ending.get(key)

    def touch(self, key: str, msg: _Message) -> None:
        self.active.pop(key, None)
        self.ending.pop(key, None)
        (self.ending if msg.final else self.active)[key] = msg

    def ended(self, now_ns: int) -> Iterator[_Message]:
        if self.grace_ns is not None:
            yield from _expire(self.ending, now_ns - self.grace_ns)
        if self.idle_ns is not None:
            yield from _expire(self.active, now_ns - self.idle_ns)
        while len(self) > MAX_OPEN:
            yield (self.active or self.ending).popitem(last=False)[1]

    def rest(self) -> list[_Message]:
        left = [*self.active.values(), *self.ending.values()]
        self.active.clear()
        self.ending.clear()
        left.sort(key=lambda m: (m.end_ns, m.first.number))
        return left


def _expire(open_: OrderedDict[str, _Message], before_ns: int) -> Iterator[_Message]:
    while open_:
        msg = next(iter(open_.values()))
        if msg.end_ns >= before_ns:
            return
        open_.popitem(last=False)
        yield msg


class _Reader:
    """Reads one file's rows into messages (both kinds; `trace` picks the rules)."""

    def __init__(self, text: LogText, warn: Callable[[str], None], trace: bool,
                 utc_offset_s: int | LogZone) -> None:
        self.path, self.warn, self.trace = text.path, warn, trace
        self.kind = KIND_TRACE if trace else KIND_TRACKING
        # column names in a CSV header line (an export), not in a W3C "#Fields:" line
        self.export = trace or _tracking_export(text.head())
        self.told_arrays = False
        self.told_dates = False  # the forms read are named with the first date not read
        self.dates = ExportDates(utc_offset_s)
        self.layout: _Layout | None = None
        self.told_missing: set[str] = set()
        self.told_ambiguous = False
        self.told_order = False
        self.next_check_ns = 0  # when to look for ended messages next (log time)
        if trace:
            self.open = _Open(None, None)
        else:
            self.open = _Open(int(IDLE_S * 1e9), int(GRACE_S * 1e9))

    def header(self, line: TextLine) -> bool:
        """Take a header line (the W3C '#' lines, or the export's column row); True if it was
        one."""
        text = line.text
        if text.startswith("#"):
            if not self.export and text[:8].lower() == "#fields:":
                self._set_layout(text[8:].strip().split(","), line)
            return True
        if self.export and self.layout is None:
            names = split_line(text)
            if names is None:
                self.warn(f"{self.path} line {line.number}: a column header that is not CSV")
                names = []
            self._set_layout(names, line)
            return True
        return False

    def _set_layout(self, names: list[str], line: TextLine) -> None:
        self.layout = _Layout(names)
        index = self.layout.index
        needs = list(_TRACE_NEEDS if self.trace else _TRACKING_NEEDS)
        if self.trace:
            if not index.keys() & {"from_ip", "original_client_ip", "client_ip", "to_ip"}:
                needs.append(("from_ip", "FromIP or original_client_ip",
                              "messages cannot be joined by peer"))
            if not index.keys() & {"status", "recipient_status", "event"}:
                needs.append(("status", "Status or recipient_status", "outcomes are unknown"))
        elif not index.keys() & {"internal_id", "message_id"}:
            needs.append(("internal_id", "internal-message-id or message-id",
                          "lines cannot be grouped into messages"))
        for what, shown, why in needs:
            if what not in index and what not in self.told_missing:
                self.told_missing.add(what)
                self.warn(f"{self.path} line {line.number}: no {shown} column; {why}")

    def whole(self, record: str) -> bool:
        """Whether lines joined for a field holding a line break make one record of the
        header's width (as far as a header has been read)."""
        if self.layout is None:
            return True
        fields = split_line(record)
        return fields is not None and len(fields) == self.layout.count

    def row(self, line: TextLine) -> tuple[_Row, int] | None:
        """The fields and time of a data line; None (told) if it is garbled."""
        if self.layout is None:  # a tracking log without its header: Exchange's own fields
            self.warn(f"{self.path} line {line.number}: no #Fields header before the first "
                      "line; read with Exchange 2016/2019's fields")
            self.layout = _Layout(_DEFAULT_FIELDS.split(","))
        fields = split_line(line.text)
        if fields is None:
            self.warn(f"{self.path} line {line.number}: unbalanced quotes; line skipped")
            return None
        if len(fields) != self.layout.count:
            self.warn(f"{self.path} line {line.number}: {len(fields)} fields where the header "
                      f"names {self.layout.count}; line skipped")
            return None
        row = self.layout.row(fields)
        if row.recipient_status.startswith("System.") or row.recipients.startswith("System."):
            row = self._no_type_names(row, line)
        stamp = row.time
        ns, ambiguous = self.dates.ns(stamp)
        if ns is None:
            if "time" in self.layout.index:
                forms = "" if self.told_dates else (
                    " (read: ISO 8601, M/d/yyyy h:mm:ss AM as en-US, MM/dd/yyyy HH:mm:ss as "
                    "the invariant culture, d.M.yyyy, d/M/yyyy with a day over 12, yyyy/M/d, "
                    "yyyy-MM-dd tt h:mm:ss as ko-KR)")
                self.told_dates = True
                self.warn(f"{self.path} line {line.number}: date {stamp[:40]!r} not "
                          f"understood{forms}; line skipped")
            return None
        if ambiguous and not self.told_ambiguous:
            self.told_ambiguous = True
            self.warn(f"{self.path} line {line.number}: date {stamp!r} could be day/month or "
                      "month/day; read as month/day (Export-Csv's en-US order) until a date "
                      "shows the order")
        elif self.dates.day_first and self.told_ambiguous and not self.told_order:
            self.told_order = True
            self.warn(f"{self.path} line {line.number}: date {stamp!r} is day/month: the "
                      "dates after it are read so, those before it that could be either were "
                      "read as month/day")
        return row, ns

    def _no_type_names(self, row: _Row, line: TextLine) -> _Row:
        """Export-Csv writes an array property (Get-MessageTrackingLog's Recipients and
        RecipientStatus) as its type name, `System.String[]`: no value at all."""
        arrays = {f: "" for f in ("recipients", "recipient_status")
                  if getattr(row, f).startswith("System.") and getattr(row, f).endswith("[]")}
        if arrays and not self.told_arrays:
            self.told_arrays = True
            self.warn(f"{self.path} line {line.number}: Recipients or RecipientStatus written "
                      "as 'System.String[]' (Export-Csv writes arrays by type name): recipients"
                      " and replies unknown; export them joined (Select-Object @{n='Recipient"
                      "Status';e={$_.RecipientStatus -join ';'}}, ...)")
        return row._replace(**arrays)

    def key(self, row: _Row) -> tuple[str, str]:
        """(grouping key, message id shown) of a row."""
        if self.trace:
            key = row.trace_id or row.network_id or row.internal_id or row.message_id
        else:
            key = row.internal_id or row.message_id
        return key, row.message_id or key

    def take(self, line: TextLine, row: _Row, ns: int) -> Iterator[LogConversation]:
        open_ = self.open
        if ns >= self.next_check_ns or len(open_) > MAX_OPEN:
            self.next_check_ns = ns + 1_000_000_000  # look at most once a second of log time
            for ended in open_.ended(ns):
                if (conv := self.finish(ended)) is not None:
                    yield conv
        key, shown = self.key(row)
        if not key:  # e.g. NOTIFYMAPI: an event of no message
            return
        msg = open_.get(key)
        if msg is None:
            msg = _Message(line, ns)
            msg.session_id = shown
        self.update(msg, line, row, ns)
        open_.touch(key, msg)

    def update(self, msg: _Message, line: TextLine, row: _Row, ns: int) -> None:
        msg.last = line
        if ns < msg.start_ns:
            msg.start_ns = ns
        elif ns > msg.end_ns:
            msg.end_ns = ns
        source = row.source.upper()
        status = row.recipient_status
        event = row.event.upper() or row.status
        if not event and "##" in status:  # enhanced summary: "addr##Receive, Fail"
            event = status.rsplit(",", 1)[-1].strip()
        if event and event != msg.event:
            msg.event = sys.intern(event)
        if self.trace:
            self._trace_peer(msg, row, event.upper(), source)
        else:
            self._tracking_peer(msg, row, event, source)
            msg.final = msg.final or event in _FINAL_EVENTS
        if msg.connector is None and row.connector:
            msg.connector = sys.intern(row.connector)  # until a hop with a peer names its own
        if msg.sender is None and (sender := row.return_path or row.sender):
            msg.sender = sys.intern(sender)  # MAIL FROM (return-path), else the Sender/From
        if row.recipients and row.recipients != msg.recipients_text:
            msg.recipients_text = row.recipients  # most lines of a message repeat the list
            for address in row.recipients.split(";"):
                address = address.strip()
                if address and address not in msg.recipients and len(
                        msg.recipients) < MAX_RECIPIENTS:
                    msg.recipients.append(sys.intern(address))
        # a status that can hold a reply starts with its code ("550 5.7.64 ...") or is a
        # list of fields ("{LED=550 ...};{MSG=}"); "To", "Cc" and "addr##Receive" cannot
        replies = (_replies(status, self.path, line)
                   if status[:1].isdigit() or "=" in status else [])
        for reply in replies:
            if not any((r.code, r.enhanced, r.text) == (reply.code, reply.enhanced, reply.text)
                       for r in msg.replies):
                msg.replies.append(reply)
        if not replies and event.upper() in _TELLING_EVENTS and len(msg.notes) < MAX_NOTES:
            said = status or row.source_context
            msg.notes.append((f"{event} {source}: {said}".strip(" :")[:MAX_TEXT],
                              Where(self.path, line.number, line.offset)))

    def _tracking_peer(self, msg: _Message, row: _Row, event: str, source: str) -> None:
        if source != "SMTP":
            return
        client, server = row.client_ip, row.server_ip
        if event in _OUT_EVENTS and server and server != client:
            msg.peer(2, "client", client, server, row.server_host, row.connector)
        elif event == "RECEIVE":
            remote = row.original_client_ip or client
            if remote and remote != server:
                msg.peer(1, "server", server, remote, row.client_host, row.connector)

    def _trace_peer(self, msg: _Message, row: _Row, event: str, source: str) -> None:
        came_from = row.from_ip or row.original_client_ip
        if not came_from and event in ("RECEIVE", "FAIL") and source == "SMTP":
            came_from = row.client_ip
        if came_from:
            msg.peer(2, "server", row.server_ip, came_from, row.client_host, row.connector)
        went_to = row.to_ip
        if not went_to and event == "SEND" and source == "SMTP":
            went_to = row.server_ip
        if went_to:
            msg.peer(1, "client", row.client_ip, went_to, row.server_host, row.connector)

    def finish(self, msg: _Message) -> LogConversation | None:
        if msg.role is None and not self.trace:
            return None  # never crossed SMTP to another host
        replies = _kept_replies(msg.replies)
        first, last = msg.first, msg.last
        last_where = (replies[-1].where if replies and replies[-1].where.line == last.number
                      else Where(self.path, last.number, last.offset))  # shared: kept small
        return LogConversation(
            kind=self.kind, file=self.path,
            first=Where(self.path, first.number, first.offset), last=last_where,
            start_ns=msg.start_ns, end_ns=msg.end_ns, host_role=msg.role or "server",
            local_ip=msg.local_ip, remote_ip=msg.remote_ip, remote_name=msg.remote_name,
            session_id=msg.session_id or None, connector=msg.connector,
            replies=replies, notes=tuple(msg.notes), sender=msg.sender,
            recipients=tuple(msg.recipients), event=msg.event)


def _kept_replies(replies: list[LogReply]) -> tuple[LogReply, ...]:
    """Every 4xx/5xx and the last reply, at most MAX_REPLIES, in log order."""
    if not replies:
        return ()
    kept = [r for r in replies if r.code >= 400][: MAX_REPLIES - 1]
    if replies[-1] not in kept:
        kept.append(replies[-1])
    return tuple(kept)


def conversations(text: LogText, warn: Callable[[str], None], *, year: int | None = None,
                  utc_offset_s: int | LogZone = 0) -> Iterator[LogConversation]:
    """The messages of a tracking log or a message trace export, streamed, each yielded when
    it ends (see the module docstring).  Garbled lines are told through `warn` ("FILE line N:
    why") and skipped.  `year` is unused: these logs write full dates."""
    del year
    reader = _Reader(text, warn, kind_of(text.head()) == KIND_TRACE, utc_offset_s)
    for line in records(text.lines(), reader.whole):
        if not line.text.strip() or reader.header(line):
            continue
        parsed = reader.row(line)
        if parsed is not None:
            yield from reader.take(line, *parsed)
    for msg in reader.open.rest():
        if (conv := reader.finish(msg)) is not None:
            yield conv


def lines_of(text: LogText, conv: LogConversation, *,
             utc_offset_s: int | LogZone = 0) -> Iterator[tuple[int, TextLine]]:
    """(log time ns, line) of this conversation's lines, re-read from its first line to its
    last (for `follow`).  The columns are those of the file's first header."""
    reader = _Reader(text, lambda _: None, conv.kind == KIND_TRACE, utc_offset_s)
    reader.dates.near_s = conv.start_ns // 1_000_000_000  # a repeated hour: as first read
    for line in text.lines():  # the header, from the start of the file
        if line.text.strip() and not reader.header(line):
            break
        if reader.layout is not None:
            break
    wanted = conv.session_id
    # past the last record's first line: a record may run over several lines
    for line in records(text.lines_from(conv.first.offset, conv.first.line), reader.whole):
        if line.offset > conv.last.offset:
            break
        if not line.text.strip() or line.text.startswith("#") and reader.header(line):
            continue
        parsed = reader.row(line)
        if parsed is None:
            continue
        row, ns = parsed
        if wanted in (row.internal_id, row.message_id, row.network_id, row.trace_id):
            yield ns, line
