"""benchmarks/biglog.py: a big Exchange send protocol log built from a small template.

The benchmark of the log readers is only as good as this file: it must be the size asked for,
keep every line in the template's shape, and still read as distinct conversations in time order
(fresh session-ids and local ports, increasing times), or the reader would be timed on
something no server writes.
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import io
import json
from collections import defaultdict
from pathlib import Path

import pytest
from benchmarks import biglog

CONNECTOR = "Outbound to Office 365 - 1b0c6b2e-5c1f-4d4e-9c1a-2f5c3e1d7a90"
HEADER = [
    "#Software: Microsoft Exchange Server",
    "#Version: 15.0.0.0",
    "#Log-type: SMTP Send Protocol Log",
    "#Date: 2026-03-10T09:15:02.118Z",
    "#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,"
    "remote-endpoint,event,data,context",
]
# (ms after 09:15:02.000, session, sequence, local endpoint, event, data, context); the two
# sessions interleave as a busy server's do.
ROWS = [
    (118, "A", 0, "", "*", "", "attempting to connect"),
    (151, "A", 1, "10.1.2.10:50123", "+", "", ""),
    (160, "B", 0, "", "*", "", "attempting to connect"),
    (190, "A", 2, "10.1.2.10:50123", "<",
     '"220 contoso-com.mail.protection.outlook.com Microsoft ESMTP MAIL Service ready at '
     'Tue, 10 Mar 2026 09:15:02 +0000"', ""),
    (201, "B", 1, "10.1.2.10:50124", "+", "", ""),
    (231, "A", 3, "10.1.2.10:50123", ">", "STARTTLS", ""),
    (271, "A", 4, "10.1.2.10:50123", "*", "", "Sending certificate {none}"),
    (340, "A", 5, "10.1.2.10:50123", "*", "",
     '"TLS protocol SP_PROT_TLS1_2_CLIENT negotiation succeeded using bulk encryption '
     'algorithm CALG_AES_256 with strength 256 bits, MAC hash algorithm CALG_SHA_384"'),
    (402, "A", 6, "10.1.2.10:50123", ">", "RCPT TO:<partner@fabrikam.com>", ""),
    (455, "A", 7, "10.1.2.10:50123", "<",
     "550 5.7.64 TenantAttribution; Relay Access Denied [AM4PEPF00027A5C.eurprd04.prod."
     "outlook.com 2026-03-10T09:15:02.201Z 08DE5B1F6A2C3D4E]", ""),
    (470, "B", 2, "10.1.2.10:50124", "-", "", "Remote"),
    (501, "A", 8, "10.1.2.10:50123", "-", "", "Local"),
]
SIDS = {"A": "08DE5B1F6A2C3D4E", "B": "08DE5B1F6A2C3D4F"}


def _line(ms: int, who: str, seq: int, local: str, event: str, data: str, ctx: str) -> str:
    return (f"2026-03-10T09:15:02.{ms:03d}Z,{CONNECTOR},{SIDS[who]},{seq},{local},"
            f"52.101.68.5:25,{event},{data},{ctx}")


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("biglog") / "SEND20260310-1.LOG"
    path.write_bytes(("\r\n".join([*HEADER, *(_line(*r) for r in ROWS)]) + "\r\n").encode())
    return path


def _fields(line: str) -> list[str]:
    (row,) = csv.reader(io.StringIO(line))
    return row


def _conversations(path: Path) -> tuple[list[str], dict[str, list[list[str]]], list[str]]:
    """Header lines, data rows by session-id (file order), and every data line's raw text."""
    text = path.read_bytes().decode()
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    lines = text[:-2].split("\r\n")
    header = [x for x in lines if x.startswith("#")]
    data = [x for x in lines if not x.startswith("#")]
    convs: dict[str, list[list[str]]] = defaultdict(list)
    for line in data:
        row = _fields(line)
        convs[row[2]].append(row)
    return header, convs, data


@pytest.mark.parametrize("size", [20_000, 123_457, 400_000])
def test_size_is_the_asked_one_less_at_most_one_line(template, tmp_path, size):
    out = tmp_path / "big.log"
    biglog.generate(template, out, size)
    longest = max(len(x) for x in template.read_bytes().split(b"\r\n")) + 2
    got = out.stat().st_size
    assert size - longest < got <= size


def test_lines_keep_the_templates_shape(template, tmp_path):
    out = tmp_path / "big.log"
    biglog.generate(template, out, 300_000)
    header, convs, data = _conversations(out)
    assert header == HEADER and out.read_bytes().startswith("\r\n".join(HEADER).encode())
    want = {who: [_fields(_line(*r)) for r in ROWS if r[1] == who] for who in SIDS}
    seen_shapes = set()
    for rows in list(convs.values())[:-2]:  # the last ones may be cut short
        tpl = want["A"] if len(rows) == len(want["A"]) else want["B"]
        assert len(rows) == len(tpl)
        for got, exp in zip(rows, tpl, strict=True):
            # Only date-time, session-id and the local port change; the rest is the template's.
            assert got[1] == exp[1] and got[3:4] == exp[3:4] and got[5:] == exp[5:]
            assert got[4].rpartition(":")[0] == exp[4].rpartition(":")[0]
        seen_shapes.add(len(tpl))
    assert seen_shapes == {len(want["A"]), len(want["B"])}
    # Quoted data (a comma inside) and braces came through byte for byte.
    assert any(line.endswith(',"TLS protocol SP_PROT_TLS1_2_CLIENT negotiation succeeded '
                             'using bulk encryption algorithm CALG_AES_256 with strength 256 '
                             'bits, MAC hash algorithm CALG_SHA_384"') for line in data)
    assert any(line.endswith(",Sending certificate {none}") for line in data)


def test_session_ids_and_ports_are_unique_per_conversation(template, tmp_path):
    out = tmp_path / "big.log"
    n = biglog.generate(template, out, 400_000)
    _, convs, _ = _conversations(out)
    assert len(convs) == n > 300
    ports = []
    for sid, rows in convs.items():
        assert len(sid) == 16 and int(sid, 16) >= 0 and sid.startswith("08DE5B")
        mine = {r[4].rpartition(":")[2] for r in rows if r[4]}
        assert len(mine) == 1, sid
        ports.append(mine.pop())
    assert len(set(ports)) == len(ports)
    assert all(1025 <= int(p) <= 65535 for p in ports)


def test_times_increase_and_keep_the_templates_offsets(template, tmp_path):
    out = tmp_path / "big.log"
    biglog.generate(template, out, 200_000, gap_ms=20, start="2026-03-11T23:59:59.000Z")
    _, convs, data = _conversations(out)
    times = [dt.datetime.fromisoformat(line.split(",", 1)[0]) for line in data]
    assert all(a <= b for a, b in zip(times, times[1:], strict=False))
    assert times[0] == dt.datetime(2026, 3, 11, 23, 59, 59, tzinfo=dt.UTC)
    assert times[-1].date() == dt.date(2026, 3, 12)  # crosses midnight
    offsets_a = [r[0] - ROWS[0][0] for r in ROWS if r[1] == "A"]
    for rows in list(convs.values())[:-2]:
        t = [dt.datetime.fromisoformat(r[0]) for r in rows]
        if len(rows) == len(offsets_a):
            assert [round((x - t[0]).total_seconds() * 1000) for x in t] == offsets_a


def test_one_session_only(template, tmp_path):
    out = tmp_path / "big.log"
    biglog.generate(template, out, 50_000, session=SIDS["B"])
    _, convs, _ = _conversations(out)
    assert {len(rows) for rows in convs.values()} <= {1, 2, 3}
    assert all(rows[0][-1] == "attempting to connect" for rows in convs.values())
    with pytest.raises(ValueError, match="no conversation"):
        biglog.generate(template, out, 50_000, session="0000000000000000")


def test_size_parsing():
    assert biglog.parse_size("1G") == 1 << 30
    assert biglog.parse_size("500M") == 500 << 20
    assert biglog.parse_size("1.5GiB") == 3 << 29
    assert biglog.parse_size("123") == 123
    with pytest.raises(Exception, match="not a size"):
        biglog.parse_size("lots")


def test_evidence_bench_reports_each_row(template, tmp_path):
    """The benchmark runs each reader in a child and writes its JSON even when a row fails."""
    from benchmarks import evidence_bench

    log = tmp_path / "made.log"
    out = tmp_path / "bench.json"
    assert evidence_bench.main([str(log), "--template", str(template), "--size", "30K",
                                "--repeat", "1", "--no-tracemalloc", "--json", str(out)]) == 0
    _, convs, data = _conversations(log)
    result = json.loads(out.read_text())
    assert result["size"] == log.stat().st_size
    rows = {r["key"]: r for r in result["rows"]}
    assert set(rows) == {"cat", "python-lines", "logtext-lines", "read-evidence"}
    lines = len(data) + len(HEADER)
    assert rows["python-lines"]["facts"] == {"lines": lines}
    assert rows["logtext-lines"]["facts"] == {"lines": lines}
    assert all(r["median_s"] > 0 for k, r in rows.items() if k != "read-evidence")
    ev = rows["read-evidence"]
    if importlib.util.find_spec("fastcap.evidence.read") is None:
        assert ev["note"].startswith("failed: ModuleNotFoundError")
    else:
        assert ev["note"] == "" and ev["facts"]["kind"] == "exchange-protocol", ev
        assert ev["facts"]["conversations"] == len(convs)
