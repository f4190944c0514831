"""`fastcap scan --format zeek`: smtp.log, ssl.log and x509.log read back by a Zeek-log reader
from PyPI and by a strict reader written here from Zeek's documented ASCII format, their values
compared with the JSON of the same scan."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from fastcap.out.zeek import SSL_FIELDS, zeek_version
from fastcap.out.zeek_ascii import escape, row_bytes, zeek_time
from fastcap.session import iter_sessions
from fastcap_synth.packets import tcp_frame
from fastcap_synth.scenarios import make_pki, scenario
from fastcap_synth.smtpgen import Message, converse, render
from fastcap_synth.writers import Record, keylog_bytes, write_pcap

parsezeeklogs = pytest.importorskip("parsezeeklogs")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
HOSTILE_EHLO = "evil\x1b[2J\u00e9\\x41,b"  # EHLO's argument ends at white space
HOSTILE_REPLY = "221 2.0.0 bye\tcaf\u00e9\u200f ok"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fastcap.cli", "scan", *args],
                          capture_output=True, text=True, timeout=300)


# --- a strict reader of Zeek's ASCII logs, from its documented format -----------------------

_STAMP = re.compile(rb"\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d")
_ESCAPE = re.compile(rb"\\(?:x([0-9a-f]{2})|(\\))")


class Unset:
    """A field written as the unset marker."""


UNSET = Unset()


def _string(cell: bytes) -> str:
    if cell == b"(empty)":
        return ""
    assert not any(b < 0x20 or b == 0x7F for b in cell), cell
    assert cell not in (b"-",), cell
    pos, out = 0, bytearray()
    for m in _ESCAPE.finditer(cell):
        assert b"\\" not in cell[pos:m.start()], cell  # a backslash only starts an escape
        out += cell[pos:m.start()] + (bytes([int(m[1], 16)]) if m[1] else b"\\")
        pos = m.end()
    assert b"\\" not in cell[pos:], cell
    out += cell[pos:]
    cell.decode("utf-8")  # what Zeek writes unescaped is valid UTF-8
    return out.decode("utf-8", "surrogateescape")


def _scalar(cell: bytes, ztype: str):
    if ztype == "time":
        assert re.fullmatch(rb"\d+\.\d{6}", cell), cell
        sec, usec = cell.split(b".")
        return int(sec) * 1_000_000 + int(usec)  # microseconds
    if ztype in ("count", "port"):
        assert re.fullmatch(rb"\d+", cell), cell
        n = int(cell)
        assert ztype == "count" or n <= 65535
        return n
    if ztype == "bool":
        assert cell in (b"T", b"F"), cell
        return cell == b"T"
    if ztype == "addr":
        return str(ipaddress.ip_address(cell.decode("ascii")))
    assert ztype == "string", ztype
    return _string(cell)


def _value(cell: bytes, ztype: str):
    if cell == b"-":
        return UNSET
    m = re.fullmatch(r"(set|vector)\[(\w+)\]", ztype)
    if m is None:
        return _scalar(cell, ztype)
    if cell == b"(empty)":
        return []
    items = [_scalar(item, m[2]) for item in cell.split(b",")]
    return set(items) if m[1] == "set" else items


def read_strict(path: Path) -> tuple[list[str], list[str], list[dict]]:
    """Header lines in Zeek's order, every data line with exactly #fields cells, every cell
    of its #types type; returns fields, types and the records."""
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    lines = raw[:-1].split(b"\n")
    assert lines[0] == b"#separator \\x09"
    heads = [line.split(b"\t", 1) for line in lines[1:8]]
    assert [h[0] for h in heads] == [b"#set_separator", b"#empty_field", b"#unset_field",
                                     b"#path", b"#open", b"#fields", b"#types"]
    assert heads[0][1] == b"," and heads[1][1] == b"(empty)" and heads[2][1] == b"-"
    assert heads[3][1] == path.stem.encode()
    assert _STAMP.fullmatch(heads[4][1])
    fields = heads[5][1].decode().split("\t")
    types = heads[6][1].decode().split("\t")
    assert len(fields) == len(types) == len(set(fields))
    close = lines[-1].split(b"\t")
    assert close[0] == b"#close" and _STAMP.fullmatch(close[1])
    records = []
    for line in lines[8:-1]:
        assert not line.startswith(b"#")
        cells = line.split(b"\t")
        assert len(cells) == len(fields), line
        records.append({f: _value(c, t) for f, t, c in zip(fields, types, cells, strict=True)})
    return fields, types, records


def read_pypi(path: Path) -> list[dict]:
    errors: list = []
    records = list(parsezeeklogs.read_zeek(path, on_error=lambda *e: errors.append(e)))
    assert errors == []
    return records


# --- the format, value by value, as Zeek's writer does it -------------------------------------

def test_escaping_follows_zeeks_ascii_writer():
    assert escape(b"") == b"(empty)"
    assert escape(b"-") == b"\\x2d" and escape(b"(empty)") == b"\\x28empty)"
    assert escape(b"a\tb\nc") == b"a\\x09b\\x0ac"
    assert escape(b"back\\slash") == b"back\\\\slash"
    assert escape("caf\u00e9 \u200f".encode()) == "caf\u00e9 \u200f".encode()  # valid UTF-8
    assert escape(b"bad \xff") == b"bad \\xff"
    # a control character makes Zeek escape every non-ASCII byte of its stretch
    assert escape("\x07\u00e9".encode()) == b"\\x07\\xc3\\xa9"
    assert escape(b"a,b") == b"a,b" and escape(b"a,b", in_container=True) == b"a\\x2cb"
    # cut to microseconds, not rounded: libpcap reads a nanosecond capture so for Zeek
    assert zeek_time(1_700_000_000_123_456_789) == b"1700000000.123456"
    assert zeek_time(5) == b"0.000000"
    for ns in (-750_000_000, -1_250_000_499, -86_400_000_000_001, -3_000):
        assert zeek_time(ns) == b"%.6f" % (ns / 1e9)  # as Zeek prints a time before 1970
    line = row_bytes(["#x", None, [], ["a", "-"], True, 25], ["string", "string",
                     "vector[string]", "set[string]", "bool", "port"])
    assert line == b"\\x23x\t-\t(empty)\ta,\\x2d\tT\t25\n"
    assert zeek_version(0x0303) == "TLSv12" and zeek_version(0x0304) == "TLSv13"


# --- captures ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def synth_capture(tmp_path_factory):
    """A client certificate over TLS 1.2 and 1.3 (its key log given, so the certificate is
    seen), none, and a hostile EHLO name."""
    pki = make_pki()
    d = tmp_path_factory.mktemp("zeek")
    base = int(pki.client.cert.not_valid_before_utc.timestamp()) * 10**9 + 7200 * 10**9
    recs = []
    keylog: list[str] = []
    cases = [("ok_client_cert", {}), ("tls13_client_cert", {"keylog": True}),
             ("no_client_cert", {}),
             ("starttls_not_offered", {"ehlo_name": HOSTILE_EHLO, "commands": (
                 ("MAIL FROM:<a@fabrikam.com>", "250 ok"), ("RCPT TO:<b@contoso.com>", "250 ok"),
                 ("QUIT", HOSTILE_REPLY))})]
    for i, (name, extra) in enumerate(cases):
        sc = scenario(name, pki, client_port=42000 + i, start_ns=base + i * 10**9 + 123_456,
                      **extra)
        conv = converse(sc)
        keylog += conv.keylog
        recs += render(conv, sc)
    path = d / "synth.pcap"
    write_pcap(path, recs, nanosecond=True)
    ca = d / "root.pem"
    ca.write_bytes(pki.root.pem)
    keys = d / "keys.log"
    keys.write_bytes(keylog_bytes(keylog))
    return path, ca, keys


def _scan(tmp: Path, ca: Path, *files: Path, keys: Path | None = None
          ) -> tuple[Path, list[dict], str]:
    out = tmp / "new" / "logs"  # does not exist yet
    opts = ["--ca-file", str(ca), *(["--keylog", str(keys)] if keys else []), *map(str, files)]
    r = run_cli("--format", "zeek", "-o", str(out), *opts)
    assert r.returncode in (0, 1), r.stderr
    assert r.stdout == "" and "Traceback" not in r.stderr
    j = run_cli("--format", "jsonl", *opts)
    sessions = [json.loads(x) for x in j.stdout.splitlines()]
    assert sessions
    return out, sessions, r.stderr


def _key(rec: dict) -> tuple:
    return rec["id.orig_h"], rec["id.orig_p"], rec["id.resp_h"], rec["id.resp_p"]


def _session_key(s: dict) -> tuple:
    host, _, port = s["client"].rpartition(":")
    shost, _, sport = s["server"].rpartition(":")
    return (str(ipaddress.ip_address(host.strip("[]"))), int(port),
            str(ipaddress.ip_address(shost.strip("[]"))), int(sport))


def _fps(msg: dict | None):
    return UNSET if msg is None else [c["sha256"] for c in msg["certificates"]]


def check_against_json(out: Path, sessions: list[dict]) -> dict[str, list[dict]]:
    """Every log read strictly and by parsezeeklogs; values agree with the JSON."""
    logs = {}
    for name in ("smtp", "ssl", "x509"):
        fields, types, records = read_strict(out / f"{name}.log")
        pypi = read_pypi(out / f"{name}.log")
        assert len(pypi) == len(records)
        for a, b in zip(records, pypi, strict=True):
            assert set(b) == set(fields)
            for f, t in zip(fields, types, strict=True):
                if t == "string" and a[f] is not UNSET:
                    assert b[f] == a[f], f
        logs[name] = records
    assert [f for f, _ in SSL_FIELDS] == read_strict(out / "ssl.log")[0]
    by_key = {_session_key(s): s for s in sessions}
    assert len(by_key) == len(sessions)
    uids: dict[tuple, str] = {}
    for name in ("smtp", "ssl"):
        for rec in logs[name]:
            s = by_key[_key(rec)]
            assert re.fullmatch(r"C[0-9A-Za-z]{17}", rec["uid"])
            assert uids.setdefault(_key(rec), rec["uid"]) == rec["uid"]  # shared across logs
            # a frame of the session's (its time to the nearest microsecond)
            assert (s["first_ts_ns"] + 500) // 1000 <= rec["ts"] <= (s["last_ts_ns"] + 500) // 1000
            assert rec["fastcap_verdicts"] == {v["code"] for v in s["verdicts"]}
    assert len(set(uids.values())) == len(uids)
    for rec in logs["smtp"]:
        s = by_key[_key(rec)]
        helos = [c["arg"] for c in s["smtp"]["commands"] if c["verb"] in ("HELO", "EHLO")]
        assert rec["helo"] == (helos[-1] if helos else UNSET)
        assert rec["tls"] == bool(s["smtp"]["starttls_accepted"])
        assert rec["path"] == [rec["id.resp_h"], rec["id.orig_h"]]
    certs: dict[str, dict] = {}
    for rec in logs["ssl"]:
        s = by_key[_key(rec)]
        t = s["tls"]
        assert rec["version"] == zeek_version(t["version_code"])
        assert rec["cipher"] == t["cipher"]
        assert rec["server_name"] == t["client_hello"]["sni"]
        server, client = _fps(t["server_certificate"]), _fps(t["client_certificate"])
        if server is UNSET and client is UNSET:  # no certificate at all: both unset
            assert rec["cert_chain_fps"] is UNSET and rec["client_cert_chain_fps"] is UNSET
        else:  # one side sent one: Zeek makes both vectors, the other side's empty
            assert rec["cert_chain_fps"] == ([] if server is UNSET else server)
            assert rec["client_cert_chain_fps"] == ([] if client is UNSET else client)
        check = s["client_cert_check"]
        if check and check["certs"]:
            assert rec["client_subject"] == check["certs"][0]["subject"]
            assert rec["client_issuer"] == check["certs"][0]["issuer"]
        else:
            assert rec["client_subject"] is UNSET
        if s["server_cert_check"]:
            assert rec["subject"] == s["server_cert_check"]["certs"][0]["subject"]
        for client, msg in ((False, t["server_certificate"]), (True, t["client_certificate"])):
            for i, c in enumerate((msg or {}).get("certificates", [])):
                certs[c["sha256"], i == 0, client] = c
    assert len(uids) == len({_key(r) for r in logs["smtp"] + logs["ssl"]})
    # as Zeek: host_cert is the end entity (first of its message), client_cert sent by the
    # client, one line per certificate and role
    x509 = {(r["fingerprint"], r["host_cert"], r["client_cert"]): r for r in logs["x509"]}
    assert len(x509) == len(logs["x509"]) and set(x509) == set(certs)
    assert all(r["certificate.version"] == 3 for r in logs["x509"])
    return logs


def test_example_captures(tmp_path):
    files = [EXAMPLES / "all-scenarios.pcapng", EXAMPLES / "exchange-online-no-client-cert.pcap"]
    out, sessions, stderr = _scan(tmp_path, EXAMPLES / "test-root.pem", *files)
    logs = check_against_json(out, sessions)
    assert f"wrote {out / 'ssl.log'} ({len(logs['ssl'])} lines)" in stderr
    assert {r["client_cert_chain_fps"] == [] for r in logs["ssl"]} == {True, False}
    assert not list(out.glob(".*"))  # no temporary file left behind
    again, _, _ = _scan(tmp_path / "again", EXAMPLES / "test-root.pem", *files)
    assert [r["uid"] for r in read_strict(again / "ssl.log")[2]] == [
        r["uid"] for r in logs["ssl"]]  # stable from run to run


def test_client_certificate_and_hostile_strings(tmp_path, synth_capture):
    path, ca, keys = synth_capture
    out, sessions, _ = _scan(tmp_path, ca, path, keys=keys)
    logs = check_against_json(out, sessions)
    ok = [r for r in logs["ssl"] if "ok" in r["fastcap_verdicts"]]
    assert len(ok) == 2  # TLS 1.2 and 1.3, both with a good client certificate
    assert {r["version"] for r in ok} == {"TLSv12", "TLSv13"}
    for r in ok:
        assert r["client_subject"] == "CN=mail.fabrikam.com"
        assert len(r["client_cert_chain_fps"]) == 2
    none = [r for r in logs["ssl"] if "no_client_cert" in r["fastcap_verdicts"]]
    assert len(none) == 1 and none[0]["client_cert_chain_fps"] == []
    (hostile,) = [r for r in logs["smtp"] if r["id.orig_p"] == 42003]
    assert hostile["helo"] == HOSTILE_EHLO and hostile["tls"] is False
    assert hostile["last_reply"] == HOSTILE_REPLY
    assert hostile["mailfrom"] == "a@fabrikam.com" and hostile["rcptto"] == {"b@contoso.com"}
    raw = (out / "smtp.log").read_bytes()
    # a control character: the whole stretch's non-ASCII bytes escaped; a backslash doubled
    assert b"evil\\x1b[2J\\xc3\\xa9\\\\x41,b\t" in raw
    # valid UTF-8 (here with a right-to-left mark) is kept; the tab escaped
    assert "221 2.0.0 bye\\x09caf\u00e9\u200f ok\t".encode() in raw
    assert b"\x1b" not in raw
    assert not [r for r in logs["ssl"] if r["id.orig_p"] == 42003]  # no TLS: no ssl.log line


def test_existing_logs_are_replaced_whole(tmp_path):
    out = tmp_path / "logs"
    out.mkdir()
    (out / "ssl.log").write_text("stale\n")
    r = run_cli("--format", "zeek", "-o", str(out),
                str(EXAMPLES / "exchange-online-no-client-cert.pcap"))
    assert r.returncode == 1, r.stderr
    assert len(read_strict(out / "ssl.log")[2]) == 1
    assert sorted(p.name for p in out.iterdir()) == ["smtp.log", "ssl.log", "x509.log"]


def test_output_directory_only_with_zeek_format(tmp_path):
    r = run_cli("-o", str(tmp_path / "x"), str(EXAMPLES / "exchange-online-no-client-cert.pcap"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--format zeek" in r.stderr
    assert not (tmp_path / "x").exists()


def test_with_mail_server_logs(tmp_path):
    """--evidence: the sessions are joined to the logs first; their verdicts (the logs' too)
    reach the Zeek logs as they reach the JSON."""
    data = Path(__file__).resolve().parent / "data" / "evidence"
    seed = EXAMPLES / "exchange-online-no-client-cert.pcap"
    ev = ["--evidence", str(data / "inbound-connector.json"), "--evidence",
          str(data / "RECV20260310-1.LOG")]
    out = tmp_path / "z"
    r = run_cli("--format", "zeek", "-o", str(out), *ev, str(seed))
    assert r.returncode in (0, 1) and r.stdout == "", r.stderr
    j = json.loads(run_cli("--format", "json", *ev, str(seed)).stdout)
    (s,) = j["files"][0]["sessions"]
    logs = check_against_json(out, [s])
    assert [r["fastcap_verdicts"] for r in logs["ssl"]] == [{v["code"] for v in s["verdicts"]}]


def test_an_unusable_output_directory_is_reported(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    r = run_cli("--format", "zeek", "-o", str(blocker / "logs"),
                str(EXAMPLES / "exchange-online-no-client-cert.pcap"))
    assert r.returncode == 2 and "cannot write Zeek logs" in r.stderr
    assert "Traceback" not in r.stderr


def test_x509_log_as_zeeks_own_baseline(tmp_path):
    """Zeek's x509.log of its smtp-starttls trace, but for the times: the leaf is the only
    host certificate, the two CA certificates after it are not."""
    corpus = Path(__file__).resolve().parent / "data" / "corpus"
    out = tmp_path / "logs"
    r = run_cli("--format", "zeek", "-o", str(out), str(corpus / "zeek__smtp-starttls.pcap"))
    assert r.returncode == 1, r.stderr
    baseline = (corpus / "upstream-expected" / "zeek__smtp-starttls.x509.log").read_text()

    def rows(text: str) -> list[list[str]]:
        return [line.split("\t")[1:] for line in text.splitlines()
                if line and not line.startswith("#")]

    assert rows((out / "x509.log").read_text()) == rows(baseline)


@pytest.mark.parametrize("capture, port, baseline", [
    ("zeek__smtp-starttls.pcap", 25, "zeek__smtp-starttls.ssl.log"),
    ("zeek__tls-certificate-request-failed.pcap", 3000,
     "zeek__certificate-request-info.ssl.log"),
    ("zeek__tls-xmpp-dialback-starttls.pcap", 5269, "zeek__xmpp-server-dialback-dpd.ssl.log"),
])
def test_ssl_history_as_zeeks_own_baseline(tmp_path, capture, port, baseline):
    """ssl_history letters only what travels in plaintext records, as Zeek does: not the
    Finished after ChangeCipherSpec, nor an encrypted alert."""
    corpus = Path(__file__).resolve().parent / "data" / "corpus"
    out = tmp_path / "logs"
    r = run_cli("--format", "zeek", "-o", str(out), "--ports", str(port), str(corpus / capture))
    assert r.returncode in (0, 1), r.stderr

    def history(text: str) -> list[str]:
        lines = text.splitlines()
        fields = next(x for x in lines if x.startswith("#fields")).split("\t")[1:]
        at = fields.index("ssl_history")
        return [x.split("\t")[at] for x in lines if x and not x.startswith("#")]

    expected = history((corpus / "upstream-expected" / baseline).read_text())
    assert history((out / "ssl.log").read_text()) == expected


def test_names_as_openssl_prints_them_for_zeek(tmp_path):
    """Subjects and issuers in ssl.log and x509.log are OpenSSL's RFC 2253 text, as Zeek
    writes them: short names OpenSSL knows (emailAddress, serialNumber), not dotted OIDs, and
    bytes outside ASCII escaped (the JSON keeps cryptography's RFC 4514 text)."""
    import dataclasses

    from cryptography import x509
    from cryptography.x509.oid import NameOID

    from fastcap_synth.certs import make_leaf

    pki = make_pki()
    subject = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Müller, Söhne"),
        x509.NameAttribute(NameOID.SERIAL_NUMBER, "HRB 1234"),
        x509.NameAttribute(NameOID.COMMON_NAME, "mail.fabrikam.com"),
        x509.NameAttribute(NameOID.EMAIL_ADDRESS, "postmaster@fabrikam.com"),
    ])
    leaf = make_leaf(pki.intermediate, "mail.fabrikam.com", sans=["mail.fabrikam.com"],
                     subject=subject)
    pki = dataclasses.replace(pki, client_wrong_name=leaf)
    start = int(pki.client.cert.not_valid_before_utc.timestamp()) * 10**9 + 3600 * 10**9
    sc = scenario("name_mismatch", pki, start_ns=start)
    path = tmp_path / "names.pcap"
    write_pcap(path, render(converse(sc), sc))
    ca = tmp_path / "root.pem"
    ca.write_bytes(pki.root.pem)
    out, sessions, _ = _scan(tmp_path, ca, path)
    expected = ("emailAddress=postmaster@fabrikam.com,CN=mail.fabrikam.com,"
                "serialNumber=HRB 1234,O=M\\C3\\BCller\\, S\\C3\\B6hne,C=DE")
    (ssl,) = read_strict(out / "ssl.log")[2]
    assert ssl["client_subject"] == expected
    assert ssl["client_issuer"] == pki.intermediate.cert.subject.rfc4514_string()  # ASCII
    x509s = {r["certificate.subject"] for r in read_strict(out / "x509.log")[2]}
    assert expected in x509s
    check = sessions[0]["client_cert_check"]
    assert check["certs"][0]["subject"] == leaf.cert.subject.rfc4514_string()


def test_openssl_name_escapes_as_openssl_does():
    """Texts `openssl x509 -nameopt RFC2253` prints for these names."""
    from cryptography import x509
    from cryptography.x509.name import _ASN1Type
    from cryptography.x509.oid import NameOID, ObjectIdentifier

    from fastcap.out.zeek_dn import openssl_name

    def attr(oid, value, kind=None):
        return x509.NameAttribute(oid, value) if kind is None else x509.NameAttribute(
            oid, value, kind)

    cases = [
        (x509.Name([x509.RelativeDistinguishedName([attr(NameOID.COMMON_NAME, "a+b"),
                                                    attr(NameOID.ORGANIZATIONAL_UNIT_NAME, "x")]),
                    x509.RelativeDistinguishedName([attr(NameOID.COUNTRY_NAME, "US")])]),
         "C=US,CN=a\\+b+OU=x"),
        (x509.Name([attr(NameOID.COMMON_NAME, "#lead and trail ,;<>\"\\ "),
                    attr(ObjectIdentifier("1.2.3.4"), "unk")]),
         "1.2.3.4=#0C03756E6B,CN=\\#lead and trail \\,\\;\\<\\>\\\"\\\\\\ "),
        (x509.Name([attr(NameOID.COMMON_NAME, " ctl\x01\x1b\x7f end"),
                    attr(NameOID.ORGANIZATION_NAME, "bmp Ü€", _ASN1Type.BMPString)]),
         "O=bmp \\C3\\9C\\E2\\82\\AC,CN=\\ ctl\\01\\1B\\7F end"),
        (x509.Name([]), ""),
    ]
    for name, text in cases:
        assert openssl_name(name.public_bytes()) == text


def test_smtp_log_as_zeeks_own_baseline(tmp_path):
    """Zeek's smtp.log of its smtp-starttls trace, field for field but for ts and uid (and
    fastcap's verdicts): fuids is an empty vector, not unset."""
    corpus = Path(__file__).resolve().parent / "data" / "corpus"
    out = tmp_path / "logs"
    r = run_cli("--format", "zeek", "-o", str(out), str(corpus / "zeek__smtp-starttls.pcap"))
    assert r.returncode == 1, r.stderr

    def rows(text: str) -> list[dict[str, str]]:
        lines = text.splitlines()
        fields = next(x for x in lines if x.startswith("#fields")).split("\t")[1:]
        return [{f: v for f, v in zip(fields, x.split("\t"), strict=True)
                 if f not in ("ts", "uid", "fastcap_verdicts")}
                for x in lines if x and not x.startswith("#")]

    baseline = (corpus / "upstream-expected" / "zeek__smtp-starttls.smtp.log").read_text()
    assert rows((out / "smtp.log").read_text()) == rows(baseline)


def test_ssl_history_after_a_hello_retry_request(tmp_path):
    """Zeek letters each plaintext message as it comes: ClientHello, HelloRetryRequest, the
    two change-cipher-specs, the second ClientHello, the ServerHello."""
    corpus = Path(__file__).resolve().parent / "data" / "corpus"
    out = tmp_path / "logs"
    r = run_cli("--format", "zeek", "-o", str(out), "--ports", "443",
                str(corpus / "zeek__tls-hrr.pcap"))
    assert r.returncode in (0, 1), r.stderr
    (rec,) = read_strict(out / "ssl.log")[2]
    assert rec["ssl_history"] == "CjiICs"


def test_cipher_suites_as_zeek_spells_them():
    from fastcap.out.zeek import zeek_cipher

    assert zeek_cipher(0xC02F) == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    assert zeek_cipher(0x00A7) == "TLS_DH_ANON_WITH_AES_256_GCM_SHA384"  # IANA: DH_anon
    assert zeek_cipher(0xC018) == "TLS_ECDH_ANON_WITH_AES_128_CBC_SHA"
    # suites fastcap has no name of its own for, and GREASE, as Zeek's SSL::cipher_desc
    assert zeek_cipher(0x000B) == "TLS_DH_DSS_EXPORT_WITH_DES40_CBC_SHA"
    assert zeek_cipher(0xC0A2) == "TLS_DHE_RSA_WITH_AES_128_CCM_8"
    assert zeek_cipher(0xCC13) == "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256_OLD"
    assert zeek_cipher(0xFEFE) == "SSL_RSA_FIPS_WITH_DES_CBC_SHA"
    assert zeek_cipher(0x1A1A) == "grease_0x1A1A"
    assert zeek_cipher(0x1A1B) == "unknown-6683"
    assert zeek_cipher(None) is None


def test_versions_alerts_and_groups_as_zeeks_tables():
    """Zeek's SSL::version_strings, alert_descriptions and ec_curves, with their
    ``unknown-N`` default: a TLS 1.3 draft by Zeek's own arithmetic, alert 117 named and
    109 not, the groups fastcap's own tables do not name."""
    from fastcap.out.zeek_consts import alert_name, group_name

    assert zeek_version(0x0303) == "TLSv12" and zeek_version(0xFEFD) == "DTLSv12"
    assert zeek_version(0x7F12) == "TLSv13-draft18"
    assert zeek_version(0x7F7F) == "TLSv13-draft0"  # value mod 127
    assert zeek_version(0x7F80) == "unknown-32640"  # value // 255 is 128: no draft
    assert zeek_version(0x7EFF) == "TLSv13-draft126" and zeek_version(0x0305) == "unknown-773"
    assert alert_name(117) == "general_error" and alert_name(121) == "ech_required"
    assert alert_name(109) == "unknown-109" and alert_name(None) is None
    assert group_name(29) == "x25519" and group_name(1) == "sect163k1"
    assert group_name(20) == "secp224k1" and group_name(41) == "curveSM2"
    assert group_name(0x11EE) == "curveSM2MLKEM768" and group_name(0x639A) == (
        "SecP256r1Kyber768Draft00")
    assert group_name(0xFAFA) == "grease_0xFAFA" and group_name(0x0B0B) == "unknown-2827"


def _fields(text: str, skip: tuple[str, ...] = ("ts", "uid", "fastcap_verdicts")
            ) -> list[dict[str, str]]:
    lines = text.splitlines()
    names = next(x for x in lines if x.startswith("#fields")).split("\t")[1:]
    return [{f: v for f, v in zip(names, x.split("\t"), strict=True) if f not in skip}
            for x in lines if x and not x.startswith("#")]


@pytest.mark.parametrize("capture, options, baseline", [
    ("zeek__smtp-starttls.pcap", (), "zeek__smtp-starttls.ssl.log"),
    ("zeek__tls-certificate-request-failed.pcap", ("--ports", "3000"),
     "zeek__certificate-request-info.ssl.log"),
    ("zeek__tls-fragmented-handshake.pcap", ("--ports", "4433", "--stream-cap", "2M"),
     "zeek__ssl-fragment.ssl.log"),
    ("zeek__tls-xmpp-dialback-starttls.pcap", ("--ports", "5269"),
     "zeek__xmpp-server-dialback-dpd.ssl.log"),
])
def test_ssl_log_as_zeeks_own_baselines(tmp_path, capture, options, baseline):
    """Every field Zeek's baseline has, but ts and uid: curve is a TLS 1.2 ECDHE
    ServerKeyExchange's named curve; cert_chain_fps and client_cert_chain_fps are (empty),
    not unset, for the side that sent no certificate once the other side sent one, whether
    the client sent an empty Certificate message or none."""
    corpus = Path(__file__).resolve().parent / "data" / "corpus"
    out = tmp_path / "logs"
    r = run_cli("--format", "zeek", "-o", str(out), *options, str(corpus / capture))
    assert r.returncode in (0, 1), r.stderr
    expected = _fields((corpus / "upstream-expected" / baseline).read_text(), ("ts", "uid"))
    got = _fields((out / "ssl.log").read_text())
    common = [f for f in expected[0] if f in got[0]]  # not Zeek's optional policy fields
    assert len(common) >= 15
    assert [{f: g[f] for f in common} for g in got] == [
        {f: e[f] for f in common} for e in expected]


def test_no_certificate_on_either_side_leaves_both_fingerprint_lists_unset(tmp_path):
    """TLS 1.3 without keys: no certificate is seen, Zeek makes neither vector."""
    corpus = Path(__file__).resolve().parent / "data" / "corpus"
    out = tmp_path / "logs"
    r = run_cli("--format", "zeek", "-o", str(out), str(corpus / "sv__smtp-startssl.pcap"))
    assert r.returncode in (0, 1), r.stderr
    (rec,) = read_strict(out / "ssl.log")[2]
    assert rec["version"] == "TLSv13"
    assert rec["cert_chain_fps"] is UNSET and rec["client_cert_chain_fps"] is UNSET


def test_smtp_log_as_zeeks_smtp_basic_baseline(tmp_path):
    """Zeek's testing/btest/Baseline/scripts.base.protocols.smtp.basic/smtp.log of its
    smtp.pcap: helo is the HELO/EHLO argument; last_reply is the reply to the message's end,
    where Zeek writes the line, not the 221 to QUIT after it."""
    corpus = Path(__file__).resolve().parent / "data" / "corpus"
    out = tmp_path / "logs"
    r = run_cli("--format", "zeek", "-o", str(out), str(corpus / "zeek__smtp.pcap"))
    assert r.returncode in (0, 1), r.stderr
    got = {(x["id.orig_h"], x["id.orig_p"]): x for x in _fields((out / "smtp.log").read_text())}
    first, second = got["10.10.1.4", "1470"], got["192.168.133.100", "49648"]
    assert (first["helo"], first["mailfrom"], first["rcptto"], first["last_reply"]) == (
        "GP", "gurpartap@patriots.in", "raj_deol2002in@yahoo.co.in",
        "250 OK id=1Mugho-0003Dg-Un")
    assert (second["helo"], second["mailfrom"], second["last_reply"]) == (
        "[192.168.133.100]", "albert@example.com", "250 Ok")
    assert set(second["rcptto"].split(",")) == {
        "felica4uu@hotmail.com", "ericlim220@yahoo.com", "davis_mark1@outlook.com"}


def test_smtp_log_after_a_multi_line_reply_to_the_message(tmp_path):
    """Zeek's SMTP analyzer raises smtp_reply for each line of a reply, each with the command
    it answers, and main.zeek writes the line at the first line answering the message's end:
    last_reply is that first line (its text from the first non-blank), and each line counts
    a message, so the next transaction's trans_depth is 3; helo is the whole argument of the
    last EHLO or HELO."""
    pki = make_pki()
    start = int(pki.client.cert.not_valid_before_utc.timestamp()) * 10**9 + 3600 * 10**9
    sc = scenario("starttls_not_offered", pki, start_ns=start, commands=(
        ("HELO  relay.fabrikam.com  (backup)", "250-first line\r\n250 second line"),
        ("MAIL FROM:<a@fabrikam.com>", "250 ok"), ("RCPT TO:<b@contoso.com>", "250 ok"),
        ("DATA", "354 go on"), ("Subject: x\r\n\r\nhello\r\n.", "250-  2.0.0 queued\r\n"
                                 "250  \t2.0.0 as 4F2A"),
        ("MAIL FROM:<c@fabrikam.com>", "250 ok"), ("RCPT TO:<d@contoso.com>", "250 ok"),
        ("QUIT", "221 bye")))
    path = tmp_path / "multi.pcap"
    write_pcap(path, render(converse(sc), sc))
    out = tmp_path / "logs"
    r = run_cli("--format", "zeek", "-o", str(out), str(path))
    assert r.returncode in (0, 1), r.stderr
    first, second = read_strict(out / "smtp.log")[2]
    assert first["last_reply"] == "250 2.0.0 queued" and first["trans_depth"] == 1
    assert first["helo"] == "relay.fabrikam.com  (backup)"
    assert first["mailfrom"] == "a@fabrikam.com" and first["rcptto"] == {"b@contoso.com"}
    assert (second["trans_depth"], second["mailfrom"], second["rcptto"]) == (
        3, "c@fabrikam.com", {"d@contoso.com"})
    assert second["last_reply"] == "221 bye" and second["helo"] == first["helo"]


def test_every_line_of_a_long_reply_to_the_message_counts(tmp_path):
    """Each of a reply's lines answering "." counts a message in main.zeek, however many
    there are (here four, so the next transaction's trans_depth is 5), and the written
    line keeps the first; a long reply to the last BDAT chunk counts one and leaves its
    last line."""
    four = "250-2.0.0 one\r\n250-2.0.0 two\r\n250-2.0.0 three\r\n250 2.0.0 four"
    path = _plain_capture(tmp_path / "long.pcap", make_pki(), 0, (
        ("EHLO relay.fabrikam.com", "250 hi"),
        ("MAIL FROM:<a@fabrikam.com>", "250 ok"), ("RCPT TO:<b@contoso.com>", "250 ok"),
        ("DATA", "354 go on"), ("Subject: x\r\n\r\nhello\r\n.", four),
        ("MAIL FROM:<c@fabrikam.com>", "250 ok"), ("RCPT TO:<d@contoso.com>", "250 ok"),
        ("BDAT 5 LAST\r\nhello", four),
        ("MAIL FROM:<e@fabrikam.com>", "250 ok"), ("QUIT", "221 bye")))
    assert _transactions(tmp_path, path) == [
        (1, "a@fabrikam.com", "250 2.0.0 one"), (5, "c@fabrikam.com", "250 2.0.0 four"),
        (6, "e@fabrikam.com", "221 bye")]


def test_x509_log_of_ed25519_ed448_and_ml_dsa_keys(tmp_path):
    """key_type as Zeek writes it from OpenSSL (EVP_PKEY_get0_type_name, EVP_PKEY_bits):
    ED25519 256, ED448 456; an ML-DSA-44 certificate as Zeek's own baseline
    (testing/btest/Baseline/scripts.base.protocols.ssl.ml-dsa-44-cert/x509.log)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ed448, ed25519, rsa
    from cryptography.x509.oid import NameOID

    from fastcap.out.zeek import CertRow, x509_row

    signer = rsa.generate_private_key(65537, 2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "k")])
    when = dt.datetime(2025, 1, 1)
    for key, kind, bits in ((ed25519.Ed25519PrivateKey.generate(), "ED25519", 256),
                            (ed448.Ed448PrivateKey.generate(), "ED448", 456)):
        der = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(1).not_valid_before(when)
               .not_valid_after(when + dt.timedelta(days=1)).sign(signer, hashes.SHA256())
               .public_bytes(serialization.Encoding.DER))
        row = x509_row(CertRow(der, 0, True, False))
        assert row[8:14] == [kind, "sha256WithRSAEncryption", kind, bits, None, None]
    corpus = Path(__file__).resolve().parent / "data" / "corpus"
    out = tmp_path / "logs"
    r = run_cli("--format", "zeek", "-o", str(out), "--ports", "443",
                str(corpus / "zeek__tls-ml-dsa-44-cert.pcap"))
    assert r.returncode in (0, 1), r.stderr
    (rec,) = _fields((out / "x509.log").read_text())
    assert [rec[f"certificate.{f}"] for f in (
        "key_alg", "sig_alg", "key_type", "key_length", "exponent", "curve")] == [
        "ML-DSA-44", "ML-DSA-44", "ML-DSA-44", "10496", "-", "-"]


def test_no_ssl_log_line_without_a_tls_record(tmp_path):
    """STARTTLS accepted and the dialogue going on in plaintext (a TLS-inspecting device's
    decrypted copy): smtp.log has the sessions, ssl.log none, as no TLS record was seen."""
    corpus = Path(__file__).resolve().parent / "data" / "corpus"
    out = tmp_path / "logs"
    r = run_cli("--format", "zeek", "-o", str(out), "--ports", "25,2525",
                str(corpus / "arkime__smtp-decrypted.pcap"))
    assert r.returncode == 1, r.stderr
    smtp = read_strict(out / "smtp.log")[2]
    assert len(smtp) == 4 and all(rec["tls"] for rec in smtp)
    assert read_strict(out / "ssl.log")[2] == []


def test_a_scan_that_reads_no_capture_leaves_earlier_outputs_alone(tmp_path):
    """A mistyped name (exit 2) reads nothing: the Zeek logs and the report of an earlier
    run stay as they were, rather than being replaced by empty ones."""
    logs, page = tmp_path / "logs", tmp_path / "r.html"
    good = str(EXAMPLES / "all-scenarios.pcapng")
    assert run_cli("--format", "zeek", "-o", str(logs), good).returncode in (0, 1)
    report = subprocess.run([sys.executable, "-m", "fastcap.cli", "report", good, "-o",
                             str(page)], capture_output=True, text=True, timeout=300)
    assert report.returncode in (0, 1)
    before = {p.name: p.read_bytes() for p in [*logs.iterdir(), page]}
    assert b"\n#close" in before["ssl.log"] and before["ssl.log"].count(b"\n") > 9
    typo = str(tmp_path / "typo.pcap")
    r = run_cli("--format", "zeek", "-o", str(logs), typo)
    assert r.returncode == 2 and "Zeek logs in" in r.stderr and "left as they were" in r.stderr
    r = subprocess.run([sys.executable, "-m", "fastcap.cli", "report", typo, "-o", str(page)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "left as it was" in r.stderr
    assert {p.name: p.read_bytes() for p in [*logs.iterdir(), page]} == before


def _frames_from(src: Path, first: int) -> bytes:
    """A little-endian pcap's header and its records from frame `first` (1-based) on: the
    capture as it would be had it started later."""
    import struct

    data = src.read_bytes()
    out, pos, n = bytearray(data[:24]), 24, 0
    while pos + 16 <= len(data):
        size = struct.unpack_from("<I", data, pos + 8)[0]
        n += 1
        if n >= first:
            out += data[pos:pos + 16 + size]
        pos += 16 + size
    return bytes(out)


def test_no_ssl_log_line_for_a_capture_joined_after_the_handshake(tmp_path):
    """A capture that starts after STARTTLS and the handshake (application data, then an
    encrypted alert): Zeek reads no TLS message there and starts no ssl.log record, so
    there is no line, not one with an (empty) ssl_history."""
    corpus = Path(__file__).resolve().parent / "data" / "corpus"
    path = tmp_path / "late.pcap"
    path.write_bytes(_frames_from(corpus / "zeek__smtp-starttls.pcap", 24))
    out = tmp_path / "logs"
    r = run_cli("--format", "json", str(path))
    assert r.returncode in (0, 1), r.stderr
    (s,) = json.loads(r.stdout)["files"][0]["sessions"]
    assert s["tls"] is not None and s["mid_session"] is not None  # TLS records were seen
    r = run_cli("--format", "zeek", "-o", str(out), str(path))
    assert r.returncode in (0, 1), r.stderr
    assert read_strict(out / "ssl.log")[2] == []


# Two mail transactions, the first ended by RSET, the second by a message
_TWO_TRANSACTIONS = (
    ("EHLO relay.fabrikam.com", "250 hi"),
    ("MAIL FROM:<a@fabrikam.com>", "250 ok"), ("RCPT TO:<b@contoso.com>", "250 ok"),
    ("RSET", "250 reset"),
    ("MAIL FROM:<c@fabrikam.com>", "250 ok"), ("RCPT TO:<d@contoso.com>", "250 ok"),
    ("DATA", "354 go on"), ("Subject: x\r\n\r\nhello\r\n.", "250 queued as 1"))


def _plain_capture(path: Path, pki, after_s: int, commands: tuple) -> Path:
    """A plaintext dialogue of `commands`, an hour and `after_s` seconds into the client
    certificate's validity, written to `path`."""
    start = (int(pki.client.cert.not_valid_before_utc.timestamp()) + 3600 + after_s) * 10**9
    sc = scenario("starttls_not_offered", pki, start_ns=start, commands=commands)
    write_pcap(path, render(converse(sc), sc))
    return path


def _transactions(tmp_path: Path, path: Path) -> list[tuple]:
    """(trans_depth, mailfrom, last_reply) of each smtp.log line of `path`."""
    out = tmp_path / "logs"
    r = run_cli("--format", "zeek", "-o", str(out), str(path))
    assert r.returncode in (0, 1), r.stderr
    return [(x["trans_depth"], x["mailfrom"], x["last_reply"])
            for x in read_strict(out / "smtp.log")[2]]


def test_smtp_log_has_one_line_per_mail_transaction(tmp_path):
    """As Zeek's base/protocols/smtp/main.zeek: a MAIL FROM writes the transaction before it
    (RSET writes nothing), the reply to a message's end writes its own and counts a message
    for trans_depth; a session without MAIL, RCPT or STARTTLS has no line. Zeek's own
    baseline for smtp-one-side-only.pcap (no server packets): two lines, both trans_depth 1,
    no last_reply."""
    pki = make_pki()
    path = _plain_capture(tmp_path / "three.pcap", pki, 0, _TWO_TRANSACTIONS + (
        ("MAIL FROM:<e@fabrikam.com>", "250 ok"), ("RCPT TO:<f@contoso.com>", "250 ok"),
        ("DATA", "354 go on"), ("Subject: y\r\n\r\nhello\r\n.", "250 queued as 2"),
        ("QUIT", "221 bye")))
    quiet = _plain_capture(tmp_path / "idle.pcap", pki, 10, (
        ("EHLO relay.fabrikam.com", "250 hi"), ("NOOP", "250 ok"), ("QUIT", "221 bye")))
    out = tmp_path / "logs"
    r = run_cli("--format", "zeek", "-o", str(out), str(path), str(quiet))
    assert r.returncode in (0, 1), r.stderr
    rows = read_strict(out / "smtp.log")[2]
    assert [(x["trans_depth"], x["mailfrom"], x["rcptto"], x["last_reply"]) for x in rows] == [
        (1, "a@fabrikam.com", {"b@contoso.com"}, "250 reset"),
        (1, "c@fabrikam.com", {"d@contoso.com"}, "250 queued as 1"),
        (2, "e@fabrikam.com", {"f@contoso.com"}, "250 queued as 2")]
    assert len({x["uid"] for x in rows}) == 1
    assert all(x["helo"] == "relay.fabrikam.com" for x in rows)

    corpus = Path(__file__).resolve().parent / "data" / "corpus"
    r = run_cli("--format", "zeek", "-o", str(out), str(corpus / "zeek__smtp-one-side-only.pcap"))
    assert r.returncode in (0, 1), r.stderr
    rows = read_strict(out / "smtp.log")[2]
    assert [(x["trans_depth"], x["helo"], x["mailfrom"], x["rcptto"], x["last_reply"])
            for x in rows] == [
        (1, "enzo.icir.org", "robin@icir.org", {"robin@icir.org"}, UNSET),
        (1, "enzo.icir.org", "robin@icir.org", {"rsommer@lbl.gov"}, UNSET)]


def _frame_times(path: Path) -> dict[int, int]:
    """frame number (1-based) -> time in microseconds, of a little-endian microsecond pcap."""
    import struct

    data, out, pos = path.read_bytes(), {}, 24
    while pos + 16 <= len(data):
        sec, usec, size = struct.unpack_from("<III", data, pos)
        out[len(out) + 1] = sec * 1_000_000 + usec
        pos += 16 + size
    return out


def test_ts_is_when_zeek_begins_each_record(tmp_path):
    """ts as Zeek's scripts set it (network_time() where each record is made): smtp.log's at
    the greeting (the first SMTP line), then at the MAIL FROM that writes the transaction
    before it or at the reply to a message's end; ssl.log's at the ClientHello; x509.log's
    at the Certificate message.  Zeek's smtp-starttls trace: greeting f4, ClientHello f13,
    the server's Certificate f16 (tshark's numbers)."""
    corpus = Path(__file__).resolve().parent / "data" / "corpus"
    capture = corpus / "zeek__smtp-starttls.pcap"
    at = _frame_times(capture)
    out = tmp_path / "logs"
    r = run_cli("--format", "zeek", "-o", str(out), str(capture))
    assert r.returncode in (0, 1), r.stderr
    (smtp,) = read_strict(out / "smtp.log")[2]
    (ssl,) = read_strict(out / "ssl.log")[2]
    assert (smtp["ts"], ssl["ts"]) == (at[4], at[13])
    assert {x["ts"] for x in read_strict(out / "x509.log")[2]} == {at[16]}

    path = _plain_capture(tmp_path / "three.pcap", make_pki(), 0, _TWO_TRANSACTIONS + (
        ("MAIL FROM:<e@fabrikam.com>", "250 ok"), ("QUIT", "221 bye")))
    at = _frame_times(path)
    r = run_cli("--format", "json", str(path))
    (s,) = json.loads(r.stdout)["files"][0]["sessions"]
    mails = [c["frame"] for c in s["smtp"]["commands"] if c["verb"] == "MAIL"]
    (end,) = [x["frame"] for x in s["smtp"]["replies"] if x["answers"] == "END_OF_DATA"]
    r = run_cli("--format", "zeek", "-o", str(out), str(path))
    assert r.returncode in (0, 1), r.stderr
    rows = read_strict(out / "smtp.log")[2]
    assert [x["ts"] for x in rows] == [at[s["smtp"]["banner_frame"]], at[mails[1]], at[end]]
    assert len(set(at.values())) == len(at)  # every frame its own time: the test can tell


def test_a_certificate_openssl_cannot_read_has_no_x509_line_nor_fingerprint(tmp_path):
    """Zeek's X509 analyzer logs nothing of a certificate d2i_X509 refuses, so x509.log has
    no line for it, ssl.log's cert_chain_fps leaves it out and subject and issuer are unset:
    here the leaf of Zeek's smtp-starttls trace with its issuer's SEQUENCE tagged SET
    (`openssl x509` refuses it).  One whose structure reads but that `cryptography` refuses
    (a PrintableString holding a NUL, which OpenSSL reads) keeps its names, in OpenSSL's
    text."""
    import base64

    from cryptography import x509

    corpus = Path(__file__).resolve().parent / "data" / "corpus"
    source = corpus / "zeek__smtp-starttls.pcap"
    r = run_cli("--format", "json", str(source))
    (s,) = json.loads(r.stdout)["files"][0]["sessions"]
    ders = [base64.b64decode(c["der_b64"]) for c in s["tls"]["server_certificate"]["certificates"]]
    issuer = x509.load_der_x509_certificate(ders[0]).issuer.public_bytes()
    k = ders[0].find(issuer)
    data = bytearray(source.read_bytes())
    at = data.find(ders[0][:k + 2])
    assert k > 0 and at > 0 and data[at + k] == 0x30
    data[at + k] = 0x31
    path = tmp_path / "bad-leaf.pcap"
    path.write_bytes(bytes(data))
    out = tmp_path / "logs"
    r = run_cli("--format", "zeek", "-o", str(out), str(path))
    assert r.returncode in (0, 1), r.stderr
    (ssl,) = read_strict(out / "ssl.log")[2]
    fps = [hashlib.sha256(d).hexdigest() for d in ders[1:]]
    assert ssl["cert_chain_fps"] == fps and ssl["client_cert_chain_fps"] == []
    assert ssl["subject"] is UNSET and ssl["issuer"] is UNSET
    assert [(x["fingerprint"], x["host_cert"]) for x in read_strict(out / "x509.log")[2]] == [
        (fp, False) for fp in fps]

    r = run_cli("--format", "zeek", "-o", str(out), "--ports", "443",
                str(corpus / "sv__tls-subject-zero.pcap"))
    assert r.returncode in (0, 1), r.stderr
    (ssl,) = read_strict(out / "ssl.log")[2]
    subject = ("CN=go.microsoft.com,OU=Microsoft Corporation,O=Microsoft Corporat\\00on,"
               "L=Redmond,ST=WA,C=US")
    assert ssl["subject"] == subject and len(ssl["cert_chain_fps"]) == 2
    leaf = read_strict(out / "x509.log")[2][0]
    assert leaf["host_cert"] and leaf["certificate.subject"] == subject


def test_smtp_log_line_at_the_reply_to_the_last_bdat_chunk(tmp_path):
    """Zeek ends a message at the reply to a BDAT whose argument ends with " LAST" (at its
    last line), not at the replies to the chunks before it."""
    path = _plain_capture(tmp_path / "bdat.pcap", make_pki(), 0, (
        ("EHLO relay.fabrikam.com", "250 hi"),
        ("MAIL FROM:<a@fabrikam.com>", "250 ok"), ("RCPT TO:<b@contoso.com>", "250 ok"),
        ("BDAT 5\r\nhel", "250 5 octets"),
        ("BDAT 7 LAST\r\nhello", "250-2.0.0 first\r\n250 2.0.0 queued as 9"),
        ("MAIL FROM:<c@fabrikam.com>", "250 ok"), ("QUIT", "221 bye")))
    assert _transactions(tmp_path, path) == [
        (1, "a@fabrikam.com", "250 2.0.0 queued as 9"), (2, "c@fabrikam.com", "221 bye")]


def test_smtp_log_addresses_as_zeeks_email_utils_find_them(tmp_path):
    """mailfrom and rcptto as base/utils/email.zeek extracts them: an address without angle
    brackets right after the colon is the address alone (not "FROM:a@..."), and an ORCPT
    parameter's copy is taken out of RCPT TO's."""
    path = _plain_capture(tmp_path / "bare.pcap", make_pki(), 0, (
        ("EHLO relay.fabrikam.com", "250 hi"),
        ("MAIL FROM:a@fabrikam.com", "250 ok"),
        ("RCPT TO:<b@contoso.com> NOTIFY=NEVER ORCPT=rfc822;b@contoso.com", "250 ok"),
        ("RCPT TO:c@contoso.com", "250 ok"), ("QUIT", "221 bye")))
    out = tmp_path / "logs"
    r = run_cli("--format", "zeek", "-o", str(out), str(path))
    assert r.returncode in (0, 1), r.stderr
    (rec,) = read_strict(out / "smtp.log")[2]
    assert rec["mailfrom"] == "a@fabrikam.com"
    assert rec["rcptto"] == {"b@contoso.com", "c@contoso.com"}


def test_a_certificate_sent_again_is_read_once(tmp_path, monkeypatch):
    """ssl.log reads each distinct certificate once, however many sessions send it: the
    same lines as reading it for each (the names, fingerprints and sni check of both lines
    agree), at the cost of one load."""
    from fastcap.out import zeek
    from fastcap.run.scanner import scan

    corpus = Path(__file__).resolve().parent / "data" / "corpus"
    (s,) = scan(corpus / "zeek__smtp-starttls.pcap")
    loads = []
    real = zeek.load_certificate
    monkeypatch.setattr(zeek, "load_certificate", lambda der: loads.append(der) or real(der))
    zeek._der_facts.cache_clear()
    first, again = zeek.ssl_row(s, "a.pcap"), zeek.ssl_row(s, "b.pcap")
    assert first[2:] == again[2:] and first[17].startswith("CN=mx.google.com,O=Google Inc")
    assert len(loads) == len(set(loads)) == len(s.tls.server_certs)


def _tshark_times(path: Path, display_filter: str) -> list[int]:
    """frame.time_epoch in microseconds of each frame tshark shows for `display_filter`
    (an SMTP line split over segments shows at the frame that ends it)."""
    import shutil
    from decimal import Decimal

    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed")
    r = subprocess.run([tshark, "-n", "-r", str(path), "-Y", display_filter, "-T", "fields",
                        "-e", "frame.time_epoch"], capture_output=True, text=True, check=True)
    return [int(Decimal(t) * 1_000_000) for t in r.stdout.split()]


def test_ts_is_the_time_of_the_packet_that_ends_the_line(tmp_path):
    """Zeek's SMTP analyzer reads lines, so an event (and network_time(), a record's ts)
    comes with the packet that carries a line's end: with 5-byte segments the greeting,
    the MAIL FROM that writes the transaction before it and the reply to the message's end
    each end frames after they begin, and ts is that last frame's time (tshark shows each
    line at that frame)."""
    pki = make_pki()
    start = (int(pki.client.cert.not_valid_before_utc.timestamp()) + 3600) * 10**9
    sc = scenario("starttls_not_offered", pki, start_ns=start, mss=5, commands=(
        *_TWO_TRANSACTIONS, ("MAIL FROM:<e@fabrikam.com>", "250 ok"), ("QUIT", "221 bye")))
    path = tmp_path / "small.pcap"
    write_pcap(path, render(converse(sc), sc))
    out = tmp_path / "logs"
    r = run_cli("--format", "zeek", "-o", str(out), str(path))
    assert r.returncode in (0, 1), r.stderr
    rows = read_strict(out / "smtp.log")[2]
    (greeting,) = _tshark_times(path, "smtp.response.code == 220")
    mails = _tshark_times(path, 'smtp.req.command == "MAIL"')
    (queued,) = _tshark_times(path, 'smtp.rsp.parameter contains "queued"')
    assert [x["ts"] for x in rows] == [greeting, mails[1], queued]
    # each line ends frames after it begins: the first frame's time would differ
    firsts = _tshark_times(path, 'tcp.payload[0:3] == "220" || tcp.payload[0:4] == "MAIL"')
    assert firsts and greeting not in firsts and mails[1] not in firsts


def test_replies_pair_with_commands_as_zeeks_smtp_analyzer_pairs_them(tmp_path):
    """Zeek's SMTP analyzer (SMTP.cc) pairs each reply with the oldest command not yet
    answered, the greeting counting as the first: in suricata-verify's smtp-rset-starttls
    trace the server never greets, so its first 250 answers the greeting, the next the EHLO
    and the 220 the RSET pipelined before STARTTLS. Zeek starts no TLS there and, with no
    MAIL, RCPT or STARTTLS answered, logs no smtp.log line (fastcap's own pairing has the 220
    answer STARTTLS)."""
    corpus = Path(__file__).resolve().parent / "data" / "corpus"
    capture = corpus / "sv__smtp-rset-starttls.pcap"
    r = run_cli("--format", "json", str(capture))
    (s,) = json.loads(r.stdout)["files"][0]["sessions"]
    assert s["smtp"]["starttls_accepted"] and s["tcp"]["client_by"] == "syn"
    out = tmp_path / "logs"
    r = run_cli("--format", "zeek", "-o", str(out), str(capture))
    assert r.returncode in (0, 1), r.stderr
    assert read_strict(out / "smtp.log")[2] == []


def test_no_line_for_a_connection_zeek_reads_as_partial(tmp_path):
    """Zeek marks a connection partial when the client's first packet is no SYN and no
    SYN-ACK came (TCPSessionAdapter::SetPartialStatus), and its SMTP line reader and SSL
    analyzer deliver nothing of a partial connection (ContentLine_Analyzer's skip_partial,
    SSL_Analyzer::DeliverStream): a capture that begins at the greeting has no line in any
    of the three logs.  One that lost only the SYN (the SYN-ACK seen) is read whole."""
    pki = make_pki()
    start = (int(pki.client.cert.not_valid_before_utc.timestamp()) + 3600) * 10**9
    sc = scenario("no_client_cert", pki, start_ns=start)
    records = render(converse(sc), sc)
    out = tmp_path / "logs"
    lines = {}
    for name, kept in (("whole", records), ("no-syn", records[1:]),
                       ("from-greeting", records[3:])):
        path = tmp_path / f"{name}.pcap"
        write_pcap(path, kept)
        r = run_cli("--format", "zeek", "-o", str(out), str(path))
        assert r.returncode in (0, 1), r.stderr
        lines[name] = [len(read_strict(out / f"{log}.log")[2]) for log in ("smtp", "ssl", "x509")]
    assert lines["whole"] == lines["no-syn"] and min(lines["whole"]) > 0
    assert lines["from-greeting"] == [0, 0, 0]


def _bare_ack(synack: Record) -> Record:
    """The SYN-ACK's segment as a bare ACK (its sequence number the ISN), sent 1 ms before."""
    frame = synack.data
    tcp_at = 14 + (frame[14] & 15) * 4
    sport, dport, seq, ack = struct.unpack(">HHII", frame[tcp_at:tcp_at + 12])
    assert frame[tcp_at + 13] == 0x12  # SYN | ACK
    return Record(tcp_frame(socket.inet_ntoa(frame[26:30]), socket.inet_ntoa(frame[30:34]),
                            sport, dport, seq, ack, 0x10), synack.ts_ns - 10**6)


def test_no_line_where_the_server_opened_without_a_syn(tmp_path, backend):
    """Zeek marks a connection partial too when the responder's first packet is no SYN
    (TCPSessionAdapter::SetPartialStatus), and nothing clears that after a client's SYN: a
    bare ACK some stacks send before their SYN-ACK is let pass by the state machine
    (TCPSessionAdapter::UpdateInactiveState, "eccentric TCP's") but not by SetPartialStatus,
    which ran first, and the SMTP and SSL analyzers then deliver nothing
    (ContentLine_Analyzer::DeliverStream's skip_partial, SSL_Analyzer::DeliverStream).  The
    same where the capture lost the SYN-ACK.  The session is one, as tshark's stream."""
    pki = make_pki()
    start = (int(pki.client.cert.not_valid_before_utc.timestamp()) + 3600) * 10**9
    sc = scenario("no_client_cert", pki, start_ns=start)
    records = render(converse(sc), sc)
    out = tmp_path / "logs"
    lines, sessions = {}, {}
    for name, kept in (("whole", records),
                       ("bare ACK first", records[:1] + [_bare_ack(records[1])] + records[1:]),
                       ("no SYN-ACK", records[:1] + records[2:])):
        path = tmp_path / f"{name}.pcap"
        write_pcap(path, kept)
        r = run_cli("--backend", backend, "--format", "zeek", "-o", str(out), str(path))
        assert r.returncode in (0, 1), r.stderr
        lines[name] = [len(read_strict(out / f"{log}.log")[2]) for log in ("smtp", "ssl", "x509")]
        sessions[name] = [(s.frames, s.smtp is not None, s.tls is not None)
                          for s in iter_sessions(path, backend=backend)]
    assert min(lines["whole"]) > 0
    assert lines["bare ACK first"] == lines["no SYN-ACK"] == [0, 0, 0]
    (frames, smtp, tls), = sessions["whole"]
    assert sessions["bare ACK first"] == [(frames + 1, smtp, tls)] and smtp and tls


def _untaken_rst_after(records: list[Record], k: int, delay_ns: int) -> list[Record]:
    """``records`` with an RST after frame k from the end that frame went to, 100 bytes past
    that end's next sequence number, which its receiver does not take (RFC 5961 3.2: a
    challenge ACK answers it), and every later frame ``delay_ns`` later."""
    frame = records[k - 1].data
    tcp_at = 14 + (frame[14] & 15) * 4
    sport, dport, seq, ack = struct.unpack(">HHII", frame[tcp_at:tcp_at + 12])
    sent = len(frame) - tcp_at - (frame[tcp_at + 12] >> 4) * 4
    rst = Record(tcp_frame(socket.inet_ntoa(frame[30:34]), socket.inet_ntoa(frame[26:30]),
                           dport, sport, ack + 100, seq + sent, 0x14),
                 records[k - 1].ts_ns + 10**6)
    return records[:k] + [rst] + [Record(r.data, r.ts_ns + delay_ns) for r in records[k:]]


@pytest.mark.parametrize(("delay_s", "want"), [
    (3, [(1, "a@fabrikam.com", "250 reset"), (1, "c@fabrikam.com", "250 queued as 1")]),
    (6, [(1, "a@fabrikam.com", "250 ok")])])
def test_zeek_ends_the_connection_5_s_after_any_rst(tmp_path, backend, delay_s, want):
    """An RST its receiver does not take closes nothing for fastcap or tshark (one session,
    one tcp.stream), but Zeek closes the end that sent it whatever its sequence number
    (TCPSessionAdapter::UpdateEstablishedState), and ConnectionClosed sets ConnDeleteTimer
    tcp_close_delay (5 s) on; timers expire before the next packet is read, so what comes
    after that is another connection, partial (SetPartialStatus: no SYN), of which Zeek logs
    no line.  The transaction open at the removal is written then (finalize_smtp, a removal
    hook).  Within the 5 s, the server's FIN sets the timer anew and all is read."""
    pki = make_pki()
    start = (int(pki.client.cert.not_valid_before_utc.timestamp()) + 3600) * 10**9
    sc = scenario("starttls_not_offered", pki, start_ns=start,
                  commands=(*_TWO_TRANSACTIONS, ("QUIT", "221 bye")))
    records = render(converse(sc), sc)
    assert records[11].data.endswith(b"250 ok\r\n")  # the RCPT's reply
    path = tmp_path / "rst.pcap"
    write_pcap(path, _untaken_rst_after(records, 12, delay_s * 10**9))
    (s,) = iter_sessions(path, backend=backend)
    assert s.frames == len(records) + 1 and s.tcp.closed_by == "fin"
    assert "zeek_cut" not in s.tcp.to_dict()  # the JSON as it was
    out = tmp_path / "logs"
    r = run_cli("--backend", backend, "--format", "zeek", "-o", str(out), str(path))
    assert r.returncode in (0, 1), r.stderr
    got = read_strict(out / "smtp.log")[2]
    assert [(x["trans_depth"], x["mailfrom"], x["last_reply"]) for x in got] == want


def test_zeek_reads_the_handshake_up_to_5_s_after_any_rst(tmp_path, backend):
    """The same for TLS after STARTTLS: an RST from the server after the ClientHello, which
    it does not take, and the rest of the handshake 6 s later.  Zeek read the ClientHello,
    removed the connection 5 s after the RST (ConnDeleteTimer) and wrote its ssl.log line
    then (ssl_history "C", not established); the ServerHello and the certificates go to a
    partial connection it reads nothing of, so x509.log is empty."""
    pki = make_pki()
    start = (int(pki.client.cert.not_valid_before_utc.timestamp()) + 3600) * 10**9
    sc = scenario("no_client_cert", pki, start_ns=start)
    records = render(converse(sc), sc)
    assert records[8].data[-0xcd - 5:].startswith(b"\x16\x03\x01\x00\xcd\x01")  # ClientHello
    path = tmp_path / "tls.pcap"
    write_pcap(path, _untaken_rst_after(records, 9, 6 * 10**9))
    (s,) = iter_sessions(path, backend=backend)
    assert s.tls is not None and s.tls.outcome == "completed"  # whole to fastcap
    out = tmp_path / "logs"
    r = run_cli("--backend", backend, "--format", "zeek", "-o", str(out), str(path))
    assert r.returncode in (0, 1), r.stderr
    (ssl,) = read_strict(out / "ssl.log")[2]
    assert (ssl["ssl_history"], ssl["established"]) == ("C", False)
    assert read_strict(out / "x509.log")[2] == []


def test_every_line_of_a_reply_past_fastcaps_cap_counts(tmp_path):
    """Zeek's SMTP analyzer has no cap on a reply's lines: each raises smtp_reply, so each
    of 200 lines answering "." counts a message (the next transaction's trans_depth is 201)
    and a 200-line answer to QUIT leaves its last line in last_reply, though fastcap keeps
    the text of the first MAX_REPLY_LINES only."""
    from fastcap.proto.smtp import MAX_REPLY_LINES

    def long(code: int, word: str) -> str:
        return "\r\n".join([f"{code}-{word} {i}" for i in range(1, 200)] + [f"{code} {word} end"])

    assert MAX_REPLY_LINES < 200
    path = _plain_capture(tmp_path / "long.pcap", make_pki(), 0, (
        ("EHLO relay.fabrikam.com", "250 hi"),
        ("MAIL FROM:<a@fabrikam.com>", "250 ok"), ("RCPT TO:<b@contoso.com>", "250 ok"),
        ("DATA", "354 go on"), ("Subject: x\r\n\r\nhello\r\n.", long(250, "queued")),
        ("MAIL FROM:<c@fabrikam.com>", "250 ok"), ("QUIT", long(221, "bye"))))
    assert _transactions(tmp_path, path) == [
        (1, "a@fabrikam.com", "250 queued 1"), (201, "c@fabrikam.com", "221 bye end")]


def test_tls_ts_is_the_packet_that_completes_the_record(tmp_path):
    """Zeek's SSL analyzer reads whole records (binpac's flow unit) and its handshake
    analyzer whole messages, so x509.log's ts (the file's first-seen time) is the packet
    completing the record that ends the Certificate message, and ssl.log's the one
    completing the first record: in Zeek's tls-fragmented-handshake trace, a 339,629-byte
    Certificate over 21 records, frame 410 (not 25, where its first record ends) and the
    ClientHello's frame 4 (the records' ends read from the capture's own bytes)."""
    corpus = Path(__file__).resolve().parent / "data" / "corpus"
    capture = corpus / "zeek__tls-fragmented-handshake.pcap"
    at = _frame_times(capture)
    ends = _record_end_frames(capture, 4433)
    out = tmp_path / "logs"
    r = run_cli("--format", "zeek", "-o", str(out), "--ports", "4433", "--stream-cap", "2M",
                str(capture))
    assert r.returncode in (0, 1), r.stderr
    (ssl,) = read_strict(out / "ssl.log")[2]
    (cert,) = read_strict(out / "x509.log")[2]
    assert ends["client"][0] == 4 and ends["server"][1:3] == [25, 43]  # the 2nd: Certificate's
    assert (ssl["ts"], cert["ts"]) == (at[4], at[410])
    assert at[ends["server"][-3]] == cert["ts"] != at[25]


def _record_end_frames(path: Path, port: int) -> dict[str, list[int]]:
    """The frame (1-based) carrying the last byte of each TLS record of each direction of a
    little-endian microsecond Ethernet/IPv4 pcap's one connection on `port`, in order."""
    import struct

    data, pos, n = path.read_bytes(), 24, 0
    segs: dict[str, list[tuple[int, int, bytes]]] = {"client": [], "server": []}
    while pos + 16 <= len(data):
        size = struct.unpack_from("<I", data, pos + 8)[0]
        frame, pos, n = data[pos + 16:pos + 16 + size], pos + 16 + size, n + 1
        ihl = (frame[14] & 15) * 4
        tcp = frame[14 + ihl:]
        sport, dport, seq = struct.unpack_from(">HHI", tcp)
        payload = tcp[(tcp[12] >> 4) * 4:len(frame) - 14 - ihl]
        total = struct.unpack_from(">H", frame, 16)[0]
        payload = payload[:max(0, total - ihl - (tcp[12] >> 4) * 4)]
        if payload and port in (sport, dport):
            segs["server" if sport == port else "client"].append((seq, n, payload))
    out: dict[str, list[int]] = {}
    for side, items in segs.items():
        stream, owner, base = b"", [], min(s for s, _, _ in items)
        for seq, frame, payload in sorted(items):
            skip = len(stream) - (seq - base)
            stream += payload[skip:]
            owner += [frame] * len(payload[skip:])
        p, ends = 0, []
        while p + 5 <= len(stream) and p + 5 + int.from_bytes(stream[p + 3:p + 5]) <= len(stream):
            p += 5 + int.from_bytes(stream[p + 3:p + 5])
            ends.append(owner[p - 1])
        out[side] = ends
    return out


def _capture_losing(path: Path, commands: tuple, lost=None) -> Path:
    """A plaintext dialogue of `commands` written to `path` without the one packet whose
    payload `lost` picks (a segment the capture missed); with no `lost`, whole."""
    pki = make_pki()
    start = (int(pki.client.cert.not_valid_before_utc.timestamp()) + 3600) * 10**9
    sc = scenario("starttls_not_offered", pki, start_ns=start, commands=commands)
    records = render(converse(sc), sc)
    kept = [r for r in records if lost is None or not lost(r.data)]
    assert len(kept) == len(records) - (lost is not None)
    write_pcap(path, kept)
    return path


def test_a_gap_empties_the_commands_waiting_for_replies_as_in_zeek(tmp_path):
    """Zeek's SMTP analyzer, told of a content gap (Undelivered), forgets every command
    waiting for a reply, and the next reply answers none: a lost 250 to RCPT does not
    shift the replies after it onto the wrong commands, so the 250 to the message's end
    still counts the message (the next transaction's trans_depth is 2)."""
    path = _capture_losing(tmp_path / "lost.pcap", (
        ("EHLO relay.fabrikam.com", "250 hi"),
        ("MAIL FROM:<a@fabrikam.com>", "250 ok"), ("RCPT TO:<b@contoso.com>", "250 lost"),
        ("DATA", "354 go on"), ("Subject: x\r\n\r\nhello\r\n.", "250 queued as 1"),
        ("MAIL FROM:<c@fabrikam.com>", "250 ok"), ("QUIT", "221 bye")),
        lambda data: b"250 lost" in data)
    assert _transactions(tmp_path, path) == [
        (1, "a@fabrikam.com", "250 queued as 1"), (2, "c@fabrikam.com", "221 bye")]


def test_ssl_log_ts_is_where_the_first_record_ends(tmp_path):
    """Zeek begins a connection's ssl.log record at its first plaintext record, read whole
    (ssl_plaintext_data, then the handshake analyzer's events): a ClientHello sent in two
    records, each in its own packet, dates the line by the first, not by the record that
    completes the message (the frame fastcap names for the ClientHello)."""
    from fastcap_synth.smtpgen import Message

    pki = make_pki()
    start = (int(pki.client.cert.not_valid_before_utc.timestamp()) + 3600) * 10**9
    sc = scenario("no_client_cert", pki, start_ns=start)
    conv = converse(sc)
    k = next(i for i, m in enumerate(conv.messages)
             if m.from_client and m.label == "tls-handshake")
    record = conv.messages[k].data
    head, body = record[:3], record[5:5 + int.from_bytes(record[3:5])]
    first, second = (head + len(part).to_bytes(2) + part for part in (body[:40], body[40:]))
    assert len(first) + len(second) == len(record) + 5
    conv.messages[k:k + 1] = [Message(True, first, "tls-handshake"),
                              Message(True, second + record[5 + len(body):], "tls-handshake")]
    path = tmp_path / "split.pcap"
    write_pcap(path, render(conv, sc))
    at = _frame_times(path)
    r = run_cli("--format", "json", str(path))
    (s,) = json.loads(r.stdout)["files"][0]["sessions"]
    hello = s["tls"]["client_hello"]["frame"]
    assert at[hello] != at[hello - 1]
    out = tmp_path / "logs"
    r = run_cli("--format", "zeek", "-o", str(out), str(path))
    assert r.returncode in (0, 1), r.stderr
    (ssl,) = read_strict(out / "ssl.log")[2]
    (first_at,) = _tshark_times(path, f"tcp.payload[0:5] == {first[:5].hex(':')}")
    assert ssl["ts"] == first_at != at[hello]


def test_a_pipelined_unknown_word_leaves_zeek_outside_the_message(tmp_path):
    """SMTP.cc queues no reply for a word it does not know (XFOO), so the replies to a
    pipelined group after it answer the commands one place on: the 250 to RCPT answers
    DATA, which ends Zeek's data state, and the 354 answers nothing, so Zeek reads the
    message's final dot as a line of no command, its 250 answers nothing and no message is
    counted: the next transaction's trans_depth stays 1 (fastcap's own pairing has the 354
    answer DATA and the 250 the message's end)."""
    path = _plain_capture(tmp_path / "xfoo.pcap", make_pki(), 0, (
        ("EHLO relay.fabrikam.com", "250 hi"),
        ("XFOO ARG\r\nMAIL FROM:<a@fabrikam.com>\r\nRCPT TO:<b@contoso.com>\r\nDATA",
         "500 what\r\n250 ok\r\n250 ok\r\n354 go on"),
        ("Subject: x\r\n\r\nhello\r\n.", "250 queued as 1"),
        ("MAIL FROM:<c@fabrikam.com>", "250 ok"), ("QUIT", "221 bye")))
    r = run_cli("--format", "json", str(path))
    (s,) = json.loads(r.stdout)["files"][0]["sessions"]
    assert [(x["code"], x["answers"]) for x in s["smtp"]["replies"]][-5:-2] == [
        (250, "RCPT"), (354, "DATA"), (250, "END_OF_DATA")]
    assert _transactions(tmp_path, path) == [
        (1, "a@fabrikam.com", "250 queued as 1"), (1, "c@fabrikam.com", "221 bye")]



def test_no_ssl_log_line_when_zeek_pairs_no_220_with_starttls(tmp_path):
    """Zeek's SMTP analyzer adds its SSL analyzer only at a 220 it pairs with STARTTLS
    (SMTP_Analyzer::StartTLS), and no signature finds TLS after the greeting: a word it does
    not know pipelined before STARTTLS pairs the 500 with STARTTLS and the 220 with nothing,
    so the handshake after it has no ssl.log line and its certificates no x509.log line
    (fastcap's own reading follows the handshake, as its JSON shows)."""
    pki = make_pki()
    start = (int(pki.client.cert.not_valid_before_utc.timestamp()) + 3600) * 10**9
    sc = scenario("no_client_cert", pki, start_ns=start)
    conv = converse(sc)
    for m in conv.messages:
        if m.label == "starttls":
            m.data = b"XFOO ARG\r\n" + m.data
        elif m.label == "starttls-reply":
            m.data = b"500 what\r\n" + m.data
    path = tmp_path / "shifted.pcap"
    write_pcap(path, render(conv, sc))
    r = run_cli("--format", "json", str(path))
    (s,) = json.loads(r.stdout)["files"][0]["sessions"]
    assert s["smtp"]["starttls_accepted"] and s["tls"]["server_certificate"]
    out = tmp_path / "logs"
    r = run_cli("--format", "zeek", "-o", str(out), str(path))
    assert r.returncode in (0, 1), r.stderr
    assert [len(read_strict(out / f"{log}.log")[2]) for log in ("smtp", "ssl", "x509")] == [
        0, 0, 0]


def test_validation_status_with_zeeks_intermediate_cache(tmp_path):
    """validate-certs.zeek keeps the intermediates of every chain it validated with more
    than two certificates, by their issuer's name, and tries them first for a later
    server certificate of that issuer: in Zeek's missing-intermediate trace the first
    connection's server sends no intermediate ("unable to get local issuer certificate"),
    the second's chain is good, and the third, the first server again, is "ok" with the
    intermediate the second sent (Zeek's own baseline,
    scripts.policy.protocols.ssl.validate-certs/ssl-all.log)."""
    corpus = Path(__file__).resolve().parent / "data" / "corpus"
    out = tmp_path / "logs"
    r = run_cli("--format", "zeek", "-o", str(out), "--ports", "443",
                "--implicit-tls-ports", "443", str(corpus / "zeek__tls-missing-intermediate.pcap"))
    assert r.returncode in (0, 1), r.stderr
    rows = read_strict(out / "ssl.log")[2]
    assert [(x["id.orig_p"], x["cert_chain_fps"][0][:8], x["validation_status"])
            for x in rows] == [
        (58529, "61110125", "unable to get local issuer certificate"),
        (58530, "b2e802a1", "ok"), (58532, "61110125", "ok")]


def test_a_gap_inside_a_message_ends_it_uncounted_as_in_zeek(tmp_path):
    """Zeek's SMTP analyzer, told of a gap in its data state, ends the message
    (SMTP_Analyzer::Undelivered) and reads no client line as a command until a reply: the
    bytes after the gap, the message's final dot among them, come only once the gap was
    reported, so the dot is no command, the 250 after it answers nothing and no message is
    counted (the next transaction's trans_depth stays 1)."""
    body = "\r\n".join(["Subject: x", ""] + [f"line {i:04d} " + "x" * 60 for i in range(60)]
                       + ["LOSTLINE " + "y" * 60] + [f"line {i:04d} " + "z" * 60
                                                    for i in range(60)] + ["."])
    path = _capture_losing(tmp_path / "lost-body.pcap", (
        ("EHLO relay.fabrikam.com", "250 hi"),
        ("MAIL FROM:<a@fabrikam.com>", "250 ok"), ("RCPT TO:<b@contoso.com>", "250 ok"),
        ("DATA", "354 go on"), (body, "250 queued as 1"),
        ("MAIL FROM:<c@fabrikam.com>", "250 ok"), ("QUIT", "221 bye")),
        lambda data: b"LOSTLINE" in data)
    r = run_cli("--format", "json", str(path))
    (s,) = json.loads(r.stdout)["files"][0]["sessions"]
    assert s["tcp"]["c2s_gaps"] and s["smtp"]["replies"][-3]["answers"] == "END_OF_DATA"
    assert _transactions(tmp_path, path) == [
        (1, "a@fabrikam.com", "250 queued as 1"), (1, "c@fabrikam.com", "221 bye")]


def test_a_lost_data_line_still_begins_the_message_as_in_zeek(tmp_path):
    """Zeek learns of a gap when the other side acknowledges the bytes it took: a DATA lost
    to the capture is reported before the server's 354 to it (its packet acknowledges
    DATA), which then answers nothing in SMTP_GAP_RECOVERY and so begins a message
    (UpdateState's default case); the final dot ends it, its 250 counts it, and the MAIL
    FROM after it is read: the next transaction's trans_depth is 2."""
    path = _capture_losing(tmp_path / "lost-data.pcap", (
        ("EHLO relay.fabrikam.com", "250 hi"),
        ("MAIL FROM:<a@fabrikam.com>", "250 ok"), ("RCPT TO:<b@contoso.com>", "250 ok"),
        ("DATA", "354 go on"), ("Subject: x\r\n\r\nhello\r\n.", "250 queued as 1"),
        ("MAIL FROM:<c@fabrikam.com>", "250 ok"), ("QUIT", "221 bye")),
        lambda data: data.endswith(b"DATA\r\n"))
    assert _transactions(tmp_path, path) == [
        (1, "a@fabrikam.com", "250 queued as 1"), (2, "c@fabrikam.com", "221 bye")]


def test_after_a_gap_zeeks_ssl_analyzer_reads_neither_direction(tmp_path):
    """Zeek's SSL analyzer, told of a content gap in either direction (SSL_Analyzer::
    Undelivered), delivers nothing more of the connection, the other direction included;
    it learns of the gap when the peer acknowledges the lost bytes, which the client's
    flight after a lost server flight does: so the ClientHello alone is read, with no
    client certificate (no fingerprints, subject or x509.log line)."""
    pki = make_pki()
    start = (int(pki.client.cert.not_valid_before_utc.timestamp()) + 3600) * 10**9
    sc = scenario("ok_client_cert", pki, start_ns=start)
    records = render(converse(sc), sc)
    tail = pki.server.cert.public_bytes(serialization.Encoding.DER)[-40:]
    lost = [n for n, r in enumerate(records) if tail in r.data]
    assert len(lost) == 1  # the server's flight, from ServerHello on
    path = tmp_path / "lost-flight.pcap"
    write_pcap(path, [r for n, r in enumerate(records) if n != lost[0]])
    out = tmp_path / "logs"
    r = run_cli("--format", "zeek", "-o", str(out), str(path))
    assert r.returncode in (0, 1), r.stderr
    (ssl,) = read_strict(out / "ssl.log")[2]
    assert ssl["ssl_history"] == "C"
    assert (ssl["client_cert_chain_fps"], ssl["client_subject"]) == (UNSET, UNSET)
    assert read_strict(out / "x509.log")[2] == []



def test_rcptto_stops_at_zeeks_cap_of_a_thousand_addresses(tmp_path):
    """Zeek's SMTP script adds no more than SMTP::max_rcptto_addresses (1000) addresses to a
    transaction's rcptto (weird smtp_too_many_rcptto_addresses): the first thousand, in
    the order sent, and none after."""
    sent = [f"r{n:04d}@contoso.com" for n in range(1100)]
    rcpts = [("RCPT TO:" + ",".join(f"<{a}>" for a in sent[k:k + 100]), "250 ok")
             for k in range(0, len(sent), 100)]
    path = _capture_losing(tmp_path / "many.pcap", (
        ("EHLO relay.fabrikam.com", "250 hi"), ("MAIL FROM:<a@fabrikam.com>", "250 ok"),
        *rcpts, ("QUIT", "221 bye")))
    out = tmp_path / "logs"
    r = run_cli("--format", "zeek", "-o", str(out), str(path))
    assert r.returncode in (0, 1), r.stderr
    (line,) = read_strict(out / "smtp.log")[2]
    assert line["rcptto"] == set(sent[:1000])


def test_zeeks_cap_on_commands_waiting_for_replies(tmp_path):
    """Zeek's SMTP analyzer keeps at most 1000 commands waiting behind the one the next
    reply answers; the one after that empties them (weird smtp_excessive_pending_cmds):
    a STARTTLS pipelined after 1001 NOOPs then waits right behind the first NOOP, the
    second 250 answers it, and the 220 answers nothing, so Zeek reads no TLS."""
    path = _capture_losing(tmp_path / "queue.pcap", (
        ("EHLO relay.fabrikam.com", "250 hi"), ("MAIL FROM:<a@fabrikam.com>", "250 ok"),
        ("\r\n".join(["NOOP"] * 1001 + ["STARTTLS"]),
         "\r\n".join(["250 ok"] * 1001 + ["220 go ahead"]))))
    out = tmp_path / "logs"
    r = run_cli("--format", "zeek", "-o", str(out), str(path))
    assert r.returncode in (0, 1), r.stderr
    assert [(x["mailfrom"], x["tls"]) for x in read_strict(out / "smtp.log")[2]] == [
        ("a@fabrikam.com", False)]


def test_a_reply_whose_code_changes_is_two_replies_in_zeek(tmp_path):
    """Zeek's SMTP analyzer ends a multi-line reply at a line of another code and reads
    that line as the next reply (SMTP.cc: "reply code does not match the continuing
    reply"): a "250-" then "251" answering a message's end counts the message once, its
    second line answering no command, so the next transaction's trans_depth is 2."""
    path = _capture_losing(tmp_path / "change.pcap", (
        ("EHLO relay.fabrikam.com", "250 hi"),
        ("MAIL FROM:<a@fabrikam.com>", "250 ok"), ("RCPT TO:<b@contoso.com>", "250 ok"),
        ("DATA", "354 go on"), ("Subject: x\r\n\r\nhello\r\n.", "250-queued as 1\r\n251 other"),
        ("MAIL FROM:<c@fabrikam.com>", "250 ok"), ("QUIT", "221 bye")))
    assert _transactions(tmp_path, path) == [
        (1, "a@fabrikam.com", "250 queued as 1"), (2, "c@fabrikam.com", "221 bye")]


def test_the_middle_part_of_a_reply_whose_code_changes_keeps_its_last_line(tmp_path):
    """A reply whose code changes twice is three replies in Zeek; the middle one (two lines)
    answers the last BDAT chunk, so the line is written at its last line, whose text is
    last_reply (not the part's first line)."""
    path = _plain_capture(tmp_path / "three.pcap", make_pki(), 0, (
        ("EHLO relay.fabrikam.com", "250 hi"), ("MAIL FROM:<a@fabrikam.com>", "250 ok"),
        ("RCPT TO:<b@contoso.com>\r\nBDAT 5 LAST\r\nhello",
         "250-rcpt ok\r\n251-2.0.0 first\r\n251-2.0.0 last\r\n252 after"),
        ("MAIL FROM:<e@fabrikam.com>", "250 ok"), ("QUIT", "221 bye")))
    assert _transactions(tmp_path, path) == [
        (1, "a@fabrikam.com", "251 2.0.0 last"), (2, "e@fabrikam.com", "221 bye")]


def test_command_words_with_underscores_as_zeek_reads_them(tmp_path):
    """SMTP.cc's ParseCmd matches any word of SMTP_cmd.def, its internal ones included:
    a client's END_OF_DATA ends a message there (its reply answers ".", so the line is
    written and a message counted) and X_ANONYMOUSTLS is X-ANONYMOUSTLS, whose 220 starts
    TLS.  fastcap reads both as (non-standard) commands, not as junk lines."""
    path = _plain_capture(tmp_path / "words.pcap", make_pki(), 0, (
        ("EHLO relay.fabrikam.com", "250 hi"), ("MAIL FROM:<a@fabrikam.com>", "250 ok"),
        ("RCPT TO:<b@contoso.com>", "250 ok"), ("END_OF_DATA", "500 unrecognized"),
        ("MAIL FROM:<c@fabrikam.com>", "250 ok"), ("X_ANONYMOUSTLS", "220 go ahead")))
    r = run_cli("--format", "json", str(path))
    (s,) = json.loads(r.stdout)["files"][0]["sessions"]
    assert [c["verb"] for c in s["smtp"]["commands"]][-3:] == [
        "END_OF_DATA", "MAIL", "X_ANONYMOUSTLS"]
    assert "bad_command" not in {a["kind"] for a in s["smtp"]["anomalies"]}
    out = tmp_path / "logs"
    r = run_cli("--format", "zeek", "-o", str(out), str(path))
    assert r.returncode in (0, 1), r.stderr
    assert [(x["trans_depth"], x["mailfrom"], x["last_reply"], x["tls"])
            for x in read_strict(out / "smtp.log")[2]] == [
        (1, "a@fabrikam.com", "500 unrecognized", False),
        (2, "c@fabrikam.com", "220 go ahead", True)]


def test_a_reply_to_an_end_of_data_command_is_not_a_later_messages_end(tmp_path):
    """The reply to a client's END_OF_DATA command answers "." in Zeek (a message counted),
    and the message sent after it still ends at its own final dot: the next transaction's
    trans_depth is 3."""
    path = _plain_capture(tmp_path / "eod.pcap", make_pki(), 0, (
        ("EHLO relay.fabrikam.com", "250 hi"), ("MAIL FROM:<a@fabrikam.com>", "250 ok"),
        ("RCPT TO:<b@contoso.com>", "250 ok"), ("END_OF_DATA", "500 unrecognized"),
        ("DATA", "354 go on"), ("Subject: x\r\n\r\nhello\r\n.", "250 queued"),
        ("MAIL FROM:<c@fabrikam.com>", "250 ok"), ("QUIT", "221 bye")))
    assert _transactions(tmp_path, path) == [
        (1, "a@fabrikam.com", "500 unrecognized"), (3, "c@fabrikam.com", "221 bye")]


def test_after_a_250_to_turn_the_server_sends_the_commands_as_in_zeek(tmp_path):
    """SMTP.cc swaps its sides on a 250 to TURN (orig_is_sender): the responder's lines are
    commands from there and the originator's are replies, so the mail the responder sends
    back is a transaction of its own: trans_depth 2, its EHLO name, its addresses and the
    reply to its message's end."""
    pki = make_pki()
    start = (int(pki.client.cert.not_valid_before_utc.timestamp()) + 3600) * 10**9
    sc = scenario("starttls_not_offered", pki, start_ns=start, commands=(
        ("MAIL FROM:<a@fabrikam.com>", "250 ok"), ("RCPT TO:<b@contoso.com>", "250 ok"),
        ("DATA", "354 go on"), ("Subject: x\r\n\r\nhello\r\n.", "250 queued as 1"),
        ("TURN", "250 OK")))
    conv = converse(sc)
    for from_client, text in (
            (True, "220 relay.fabrikam.com ready"), (False, "EHLO mx.contoso.com"),
            (True, "250 hi"), (False, "MAIL FROM:<x@contoso.com>"), (True, "250 ok"),
            (False, "RCPT TO:<y@fabrikam.com>"), (True, "250 ok"), (False, "DATA"),
            (True, "354 go on"), (False, "Subject: y\r\n\r\nback\r\n."),
            (True, "250 queued as 2"), (False, "QUIT"), (True, "221 bye")):
        conv.messages.append(Message(from_client, (text + "\r\n").encode(), "turned"))
    path = tmp_path / "turn.pcap"
    write_pcap(path, render(conv, sc))
    out = tmp_path / "logs"
    r = run_cli("--format", "zeek", "-o", str(out), str(path))
    assert r.returncode in (0, 1), r.stderr
    assert [(x["trans_depth"], x["helo"], x["mailfrom"], x["rcptto"], x["last_reply"])
            for x in read_strict(out / "smtp.log")[2]] == [
        (1, "mail.fabrikam.com", "a@fabrikam.com", {"b@contoso.com"}, "250 queued as 1"),
        (2, "mx.contoso.com", "x@contoso.com", {"y@fabrikam.com"}, "250 queued as 2")]


def _up_to_data():
    """The scenario and conversation of a plaintext dialogue up to DATA's 354."""
    pki = make_pki()
    start = (int(pki.client.cert.not_valid_before_utc.timestamp()) + 3600) * 10**9
    sc = scenario("starttls_not_offered", pki, start_ns=start, commands=(
        ("EHLO relay.fabrikam.com", "250 hi"), ("MAIL FROM:<a@fabrikam.com>", "250 ok"),
        ("RCPT TO:<b@contoso.com>", "250 ok"), ("DATA", "354 go on")))
    return sc, converse(sc)


def _capture_cutting_a_line(path: Path, pieces: tuple[tuple[bool, bytes], ...]) -> Path:
    """A plaintext dialogue up to DATA's 354, then ``pieces`` (from the client?, bytes),
    each its own segment, written to `path` without those holding b"LOST": a gap inside
    the line each splits."""
    sc, conv = _up_to_data()
    conv.messages += [Message(c, data, "piece") for c, data in pieces]
    records = render(conv, sc)
    kept = [r for r in records if b"LOST" not in r.data]
    assert len(kept) == len(records) - sum(b"LOST" in data for _, data in pieces)
    write_pcap(path, kept)
    return path


@pytest.mark.parametrize("text, cell", [
    (b"queued \xff", b"queued \\xff"),  # a byte that is no UTF-8: \xHH, as Zeek writes it
    (b"queued \\xff", b"queued \\\\xff"),  # the text \xff: its backslash doubled
    (b"C:\\queue", b"C:\\\\queue"),
    # each stretch between backslashes escaped on its own: one with such a byte whole
    (b"\xff \\xff \\ \xc3\xa9", b"\\xff \\\\xff \\\\ \xc3\xa9"),
    (b"\xc3\xa9\xff\\\xc3\xa9", b"\\xc3\\xa9\\xff\\\\\xc3\xa9"),
    (b"caf\xc3\xa9 \\", b"caf\xc3\xa9 \\\\"),  # valid UTF-8 as it is
])
@pytest.mark.parametrize("lines", [1, 2])
def test_reply_bytes_are_written_as_zeek_escapes_them(tmp_path, text, cell, lines):
    """A reply's text is kept with each byte that is no UTF-8 written \\xHH, so a byte 0xFF
    and the text "\\xff" a server typed read alike there, and both were written "\\\\xff"
    (the backslash doubled). Zeek writes the bytes: 0xFF as \\xff, a backslash doubled."""
    from fastcap.out.zeek import smtp_transactions
    from fastcap.out.zeek_ascii import value_bytes
    from fastcap.session import iter_sessions

    reply = b"221-first line\r\n" * (lines - 1) + b"221 " + text + b"\r\n"
    path = _capture_cutting_a_line(tmp_path / "bytes.pcap", (
        (True, b"Subject: x\r\n\r\nhello\r\n.\r\n"), (False, b"250 queued\r\n"),
        (True, b"MAIL FROM:<c@fabrikam.com>\r\n"), (False, b"250 ok\r\n"),
        (True, b"QUIT\r\n"), (False, reply)))
    for backend in ("native", "python"):
        (s,) = list(iter_sessions(path, backend=backend))
        last = smtp_transactions(s)[-1]
        assert value_bytes(last.last_reply, "string") == b"221 " + cell
        # the JSON keeps the text as it was: bytes that are no UTF-8 as \xHH
        assert s.smtp.to_dict()["replies"][-1]["text" if lines == 1 else "last_text"] == (
            text.decode("utf-8", "backslashreplace"))


@pytest.mark.parametrize("arg, cell", [
    (b"m\xff.fabrikam.com", b"m\\xff.fabrikam.com"),  # a byte that is no UTF-8: \xHH
    (b"m\\xff.fabrikam.com", b"m\\\\xff.fabrikam.com"),  # the text \xff: backslash doubled
    (b"\xc3\xa9\xff\\x", b"\\xc3\\xa9\\xff\\\\x"),
    (b"caf\xc3\xa9\\", b"caf\xc3\xa9\\\\"),  # valid UTF-8 as it is
])
def test_command_argument_bytes_are_written_as_zeek_escapes_them(tmp_path, arg, cell):
    """A command's argument keeps each byte that is no UTF-8 written \\xHH, so a byte 0xFF
    and the text "\\xff" a client typed read alike there, and both were written "\\\\xff"
    in helo, mailfrom and rcptto. SMTP_Analyzer::ProcessLine hands smtp_request the line's
    bytes (RequestEvent), main.zeek's smtp_request keeps them (helo, extract_email_addrs),
    and Zeek's ASCII writer writes 0xFF as \\xff but a backslash doubled."""
    from fastcap.out.zeek import smtp_transactions
    from fastcap.out.zeek_ascii import value_bytes
    from fastcap.session import iter_sessions

    path = _capture_cutting_a_line(tmp_path / "args.pcap", (
        (True, b"Subject: x\r\n\r\nhello\r\n.\r\n"), (False, b"250 queued\r\n"),
        (True, b"EHLO " + arg + b"\r\n"), (False, b"250 hi\r\n"),
        (True, b"MAIL FROM:<c" + arg + b"@fabrikam.com>\r\n"), (False, b"250 ok\r\n"),
        (True, b"RCPT TO:<d" + arg + b"@contoso.com>\r\n"), (False, b"250 ok\r\n"),
        (True, b"QUIT\r\n"), (False, b"221 bye\r\n")))
    for backend in ("native", "python"):
        (s,) = list(iter_sessions(path, backend=backend))
        last = smtp_transactions(s)[-1]
        assert value_bytes(last.helo, "string") == cell
        assert value_bytes(last.mailfrom, "string") == b"c" + cell + b"@fabrikam.com"
        assert value_bytes(last.rcptto, "set[string]") == b"d" + cell + b"@contoso.com"
        # the JSON keeps the text as it was: bytes that are no UTF-8 as \xHH
        text = arg.decode("utf-8", "backslashreplace")
        assert [c["arg"] for c in s.smtp.to_dict()["commands"][-4:-1]] == [
            text, f"FROM:<c{text}@fabrikam.com>", f"TO:<d{text}@contoso.com>"]
        assert "zeek_args" not in s.smtp.to_dict()


def test_a_reply_line_cut_by_a_gap_comes_after_the_gap_as_in_zeek(tmp_path):
    """Zeek's ContentLine keeps the head of a line a gap cut and delivers it with the bytes
    after the gap, after the SMTP analyzer was told of the gap: the 250 to the message's end
    answers nothing then, so no message is counted (the next trans_depth stays 1)."""
    path = _capture_cutting_a_line(tmp_path / "cut-reply.pcap", (
        (True, b"Subject: x\r\n\r\nhello\r\n.\r\n"), (False, b"250 que"), (False, b"LOST"),
        (False, b"ued as 1\r\n"), (True, b"MAIL FROM:<c@fabrikam.com>\r\n"),
        (False, b"250 ok\r\n"), (True, b"QUIT\r\n"), (False, b"221 bye\r\n")))
    assert [x[0] for x in _transactions(tmp_path, path)] == [1, 1]


def test_a_gap_in_the_last_line_of_a_multi_line_reply_comes_between_its_lines(tmp_path):
    """SMTP.cc's Undelivered empties the command queue but keeps pending_reply, so the cut
    last line, delivered after the gap's report, continues the reply: it answers nothing and
    leaves SMTP_AFTER_GAP, where the MAIL FROM after it is no command.  Only the first line
    answers the message's end: one message counted, and no second transaction."""
    path = _capture_cutting_a_line(tmp_path / "cut-multi.pcap", (
        (True, b"Subject: x\r\n\r\nhello\r\n.\r\n"), (False, b"250-2.0.0 one\r\n250 2.0.0 que"),
        (False, b"LOST"), (False, b"ued as 1\r\n"), (True, b"MAIL FROM:<c@fabrikam.com>\r\n"),
        (False, b"250 ok\r\n"), (True, b"QUIT\r\n"), (False, b"221 bye\r\n")))
    assert _transactions(tmp_path, path) == [(1, "a@fabrikam.com", "250 2.0.0 one")]


def test_a_command_line_cut_by_a_gap_is_no_command_as_in_zeek(tmp_path):
    """A MAIL FROM line a gap cut reaches Zeek's SMTP analyzer whole only after the gap's
    report (SMTP_AFTER_GAP): no command, so no address; the RCPT after the next reply is
    read again."""
    path = _capture_cutting_a_line(tmp_path / "cut-command.pcap", (
        (True, b"Subject: x\r\n\r\nhello\r\n.\r\n"), (False, b"250 queued as 1\r\n"),
        (True, b"MAIL FROM:<c@fab"), (True, b"LOST"), (True, b"rikam.com>\r\n"),
        (False, b"250 ok\r\n"), (True, b"RCPT TO:<d@contoso.com>\r\n"), (False, b"250 ok\r\n"),
        (True, b"QUIT\r\n"), (False, b"221 bye\r\n")))
    out = tmp_path / "logs"
    r = run_cli("--format", "zeek", "-o", str(out), str(path))
    assert r.returncode in (0, 1), r.stderr
    assert [(x["trans_depth"], x["mailfrom"], x["rcptto"], x["last_reply"])
            for x in read_strict(out / "smtp.log")[2]] == [
        (1, "a@fabrikam.com", {"b@contoso.com"}, "250 queued as 1"),
        (2, UNSET, {"d@contoso.com"}, "221 bye")]



def _cut_rows(path: Path) -> list[tuple]:
    """(trans_depth, mailfrom, last_reply) of each smtp.log line of `path`, read in this
    process by each backend, which must agree."""
    from fastcap.out.zeek import smtp_transactions
    from fastcap.session import iter_sessions

    rows = [[(t.depth, t.mailfrom, t.last_reply) for s in iter_sessions(path, backend=b)
             for t in smtp_transactions(s)] for b in ("native", "python")]
    assert rows[0] == rows[1]
    return rows[0]


@pytest.mark.parametrize("head", [b"MAIL  FROM:<c@fab", b"MAIL\t FROM:<c@fab",
                                  b"MAIL FROM:<c@fab\xc3"])
def test_a_command_line_cut_by_a_gap_is_no_command_however_spaced(tmp_path, head):
    """As test_a_command_line_cut_by_a_gap_is_no_command_as_in_zeek, with blanks after the
    verb that the kept argument drops, or a character the gap cut: the line is still the
    one the gap cut, no command in Zeek."""
    path = _capture_cutting_a_line(tmp_path / "cut-command.pcap", (
        (True, b"Subject: x\r\n\r\nhello\r\n.\r\n"), (False, b"250 queued as 1\r\n"),
        (True, head), (True, b"LOST"), (True, b"\xa9@fabrikam.com>\r\n"),
        (False, b"250 ok\r\n"), (True, b"RCPT TO:<d@contoso.com>\r\n"), (False, b"250 ok\r\n"),
        (True, b"QUIT\r\n"), (False, b"221 bye\r\n")))
    assert _cut_rows(path) == [(1, "a@fabrikam.com", "250 queued as 1"), (2, None, "221 bye")]


@pytest.mark.parametrize(("reply", "lost"), [
    (b"250-2.0.0 one\r\n250-two\r\n250 2.0.0 que", b"ued as 1\r\n"),  # its last line cut
    (b"250-2.0.0 one\r\n250-two\r\n250-th", b"ree\r\n250 2.0.0 queued as 1\r\n"),  # a middle one
    (b"250-2.0.0 one\r\n250-two\r\n", b"250 2.0.0 queued as 1\r\n"),  # between two lines
])
def test_a_gap_inside_a_long_reply_comes_between_its_lines_as_in_zeek(tmp_path, reply, lost):
    """SMTP.cc's Undelivered empties the command queue and keeps pending_reply, whichever
    of a reply's lines the gap cut or came before: the lines before it answer the message's
    end (each counts a message), the rest answer nothing and leave SMTP_AFTER_GAP, where the
    MAIL FROM after the reply is no command: no second transaction."""
    path = _capture_cutting_a_line(tmp_path / "cut-long.pcap", (
        (True, b"Subject: x\r\n\r\nhello\r\n.\r\n"), (False, reply), (False, b"LOST"),
        (False, lost), (True, b"MAIL FROM:<c@fabrikam.com>\r\n"),
        (False, b"250 ok\r\n"), (True, b"QUIT\r\n"), (False, b"221 bye\r\n")))
    assert _cut_rows(path) == [(1, "a@fabrikam.com", "250 2.0.0 one")]


@pytest.mark.parametrize("head", [b"250 que", b"250  que", b"250\tque", b"25",
                                  b"250 caf\xc3\xa9 que", b"250 caf\xc3"])
def test_last_reply_of_a_cut_reply_is_its_head_and_tail_as_in_zeek(tmp_path, head):
    """Zeek's ContentLine hands the cut line on joined with the bytes after the gap, so
    smtp_reply's message, and last_reply, is head and tail, whatever the gap cut: the code,
    a character, or the text after more than one space.  The reply comes after the gap's
    report: it answers nothing, and the MAIL FROM after it is a command."""
    tail = b"ued as 1\r\n" if head.endswith(b"que") else (
        b"0 queued as 1\r\n" if head == b"25" else b"\xa9 queued as 1\r\n")
    path = _capture_cutting_a_line(tmp_path / "cut.pcap", (
        (True, b"Subject: x\r\n\r\nhello\r\n.\r\n"), (False, head), (False, b"LOST"),
        (False, tail), (True, b"MAIL FROM:<c@fabrikam.com>\r\n"),
        (False, b"250 ok\r\n"), (True, b"QUIT\r\n"), (False, b"221 bye\r\n")))
    text = (head + tail).decode()[3:].strip(" \t\r\n")
    assert _cut_rows(path) == [
        (1, "a@fabrikam.com", f"250 {text}"), (1, "c@fabrikam.com", "221 bye")]


@pytest.mark.parametrize("client", [False, True])
def test_a_line_cut_right_after_its_cr_ends_before_the_gap_as_in_zeek(tmp_path, client):
    """SMTP's ContentLine takes a lone CR as a line's end (CR_as_EOL | LF_as_EOL, its
    default), and after a gap swallows a LF that follows that CR: a reply or command line
    whose LF alone a gap follows is whole before the gap, read as the same line with the
    gap after its CRLF is, not as a line the gap cut (the 250 answers the message's end,
    the MAIL FROM is a command)."""
    def rows(name: str, line: bytes, after: tuple[bytes, ...]) -> list[tuple]:
        if client:
            pieces = ((True, b"Subject: x\r\n\r\nhello\r\n.\r\n"),
                      (False, b"250 queued as 1\r\n"),
                      (True, line), *((True, x) for x in after), (False, b"250 ok\r\n"),
                      (True, b"RCPT TO:<d@contoso.com>\r\n"), (False, b"250 ok\r\n"),
                      (True, b"QUIT\r\n"), (False, b"221 bye\r\n"))
        else:
            pieces = ((True, b"Subject: x\r\n\r\nhello\r\n.\r\n"), (False, line),
                      *((False, x) for x in after), (True, b"MAIL FROM:<c@fabrikam.com>\r\n"),
                      (False, b"250 ok\r\n"), (True, b"QUIT\r\n"), (False, b"221 bye\r\n"))
        return _cut_rows(_capture_cutting_a_line(tmp_path / name, pieces))

    line = b"MAIL FROM:<c@fabrikam.com>\r" if client else b"250 queued as 1\r"
    got = rows("cr.pcap", line, (b"LOST", b"\n"))
    assert got == rows("crlf.pcap", line + b"\n", (b"LOST",))
    assert got[0] == (1, "a@fabrikam.com", "250 queued as 1")
    assert got[-1][1] == "c@fabrikam.com"  # the MAIL FROM after the 250, or cut by its LF


@pytest.mark.parametrize("cut", [(b"35", b"4 go", b" on\r\n"),
                                 (b"354 go", b" o", b"n\r\n")])
def test_two_gaps_inside_one_cut_reply_line_both_come_before_it_as_in_zeek(tmp_path, cut):
    """Zeek's ContentLine keeps the cut line's head across both gaps and hands the line on
    after the second one: both gap reports come before the joined 354, as one gap there
    does, so the message after it is read in Zeek's data state and the 250 to its final
    dot counts it.  The second gap was placed before the next server line, after the
    message: it ended the message uncounted and emptied the queue, so the 250 answered
    nothing and the next MAIL FROM's trans_depth stayed 2."""
    from fastcap.out.zeek import smtp_transactions
    from fastcap.session import iter_sessions

    def rows(path: Path) -> list[tuple]:
        got = [[(t.depth, t.mailfrom, tuple(t.rcptto or ()), t.last_reply)
                for s in iter_sessions(path, backend=b) for t in smtp_transactions(s)]
               for b in ("native", "python")]
        assert got[0] == got[1]
        return got[0]

    head, mid, tail = cut
    before = ((True, b"Subject: x\r\n\r\nhello\r\n.\r\n"), (False, b"250 queued as 1\r\n"),
              (True, b"MAIL FROM:<c@fabrikam.com>\r\nRCPT TO:<d@contoso.com>\r\nDATA\r\n"),
              (False, b"250 ok\r\n250 ok\r\n" + head))
    after = ((True, b"Subject: y\r\n\r\nhi\r\n.\r\n"), (False, b"250 queued as 2\r\n"),
             (True, b"MAIL FROM:<e@fabrikam.com>\r\n"), (False, b"250 ok\r\n"),
             (True, b"QUIT\r\n"), (False, b"221 bye\r\n"))
    two = rows(_capture_cutting_a_line(tmp_path / "two.pcap", (
        *before, (False, b"LOST"), (False, mid), (False, b"LOST2"), (False, tail), *after)))
    one = rows(_capture_cutting_a_line(tmp_path / "one.pcap", (
        *before, (False, b"LOST"), (False, mid + tail), *after)))
    assert two == one
    assert two[1:] == [(2, "c@fabrikam.com", ("d@contoso.com",), "250 queued as 2"),
                       (3, "e@fabrikam.com", (), "221 bye")]


def test_a_dot_line_after_a_lone_cr_ends_the_message_in_zeeks_logs(tmp_path):
    """Zeek's ContentLine ends a line at a lone CR, so "\r.\r\n" inside message content is
    a "." line to its SMTP analyzer: the message ends there (END_OF_DATA) and the lines
    after it are commands, a smuggled MAIL FROM a transaction of its own, whose own final
    dot the 250 answers.  fastcap's diagnosis reads on to the "." after an LF (servers
    differ): its commands stay those the client sent outside the message."""
    from fastcap.session import iter_sessions

    path = _capture_cutting_a_line(tmp_path / "smuggled.pcap", (
        (True, b"Subject: x\r\n\r\nhello\r.\r\nMAIL FROM:<evil@fabrikam.com>\r\n"
               b"RCPT TO:<c@contoso.com>\r\nDATA\r\nSubject: y\r\n\r\nsmuggled\r\n.\r\n"),
        (False, b"250 queued as 1\r\n"), (True, b"QUIT\r\n"), (False, b"221 bye\r\n")))
    assert _cut_rows(path) == [(1, "a@fabrikam.com", "354 go on"),
                               (1, "evil@fabrikam.com", "250 queued as 1")]
    for backend in ("native", "python"):
        (s,) = list(iter_sessions(path, backend=backend))
        assert [c.verb for c in s.smtp.commands].count("MAIL") == 1
        assert s.smtp.commands[-1].verb == "QUIT"
        assert "zeek_lines" not in s.smtp.to_dict()


def test_a_dot_line_ended_by_a_lone_cr_ends_the_message_in_zeeks_logs(tmp_path):
    """".\r" with no LF after it is a "." line to Zeek too, and the same message with no
    command after its early end reads as it does without it: content words are no
    commands, and the final dot, outside Zeek's data state then, is none either."""
    from fastcap.out.zeek import smtp_transactions
    from fastcap.session import iter_sessions

    rows = []
    for n, body in enumerate((b"hello\r\n.\rRCPT TO:<c@contoso.com>\r\nmore\r\n.\r\n",
                              b"hello\r\n.\rmore\r\n.\r\n", b"hello\r\nmore\r\n.\r\n")):
        path = _capture_cutting_a_line(tmp_path / f"cr{n}.pcap", (
            (True, b"Subject: x\r\n\r\n" + body), (False, b"250 queued as 1\r\n"),
            (True, b"MAIL FROM:<d@fabrikam.com>\r\n"), (False, b"250 ok\r\n"),
            (True, b"QUIT\r\n"), (False, b"221 bye\r\n")))
        rows.append([(t.depth, t.mailfrom, tuple(t.rcptto or ()), t.last_reply)
                     for s in iter_sessions(path) for t in smtp_transactions(s)])
    assert rows[1] == rows[2] == [(1, "a@fabrikam.com", ("b@contoso.com",), "250 queued as 1"),
                                  (2, "d@fabrikam.com", (), "221 bye")]
    # the RCPT after the early end is a command of the transaction the 250 then ends
    assert rows[0] == [
        (1, "a@fabrikam.com", ("b@contoso.com", "c@contoso.com"), "250 queued as 1"),
        (2, "d@fabrikam.com", (), "221 bye")]



def test_a_client_line_ended_by_cr_cr_lf_is_read_without_its_cr_in_zeeks_logs(tmp_path):
    """Zeek's ContentLine (CR_as_EOL) ends "MAIL FROM:c@fabrikam.com\r\r\n" at its first CR
    and reads an empty line after it, no command: the argument has no CR, so neither has
    helo nor the address Zeek's email utils find where no brackets close it."""
    from fastcap.out.zeek import smtp_transactions
    from fastcap.session import iter_sessions

    path = _capture_cutting_a_line(tmp_path / "crcrlf.pcap", (
        (True, b"Subject: x\r\n\r\nhello\r\n.\r\n"), (False, b"250 queued as 1\r\n"),
        (True, b"EHLO again.fabrikam.com\r\r\n"), (False, b"250 hi\r\n"),
        (True, b"MAIL FROM:c@fabrikam.com\r\r\n"), (False, b"250 ok\r\n"),
        (True, b"RCPT TO:d@contoso.com\r\r\n"), (False, b"250 ok\r\n")))
    for backend in ("native", "python"):
        (s,) = list(iter_sessions(path, backend=backend))
        t = smtp_transactions(s)[-1]
        assert (t.depth, t.helo, t.mailfrom, t.rcptto, t.last_reply) == (
            2, "again.fabrikam.com", "c@fabrikam.com", ["d@contoso.com"], "250 ok")


@pytest.mark.parametrize("padding", [0, 11_000])
def test_a_reply_line_ended_by_cr_cr_lf_stops_zeeks_smtp_analyzer(tmp_path, padding):
    """After "250 queued as 1\r\r\n" Zeek's SMTP analyzer reads an empty reply line: "reply
    code out of range", an analyzer violation, on which DPD (base/frameworks/analyzer/
    dpd.zeek) removes the analyzer when the connection has sent at most 10 KiB
    (DPD::ignore_violations_after): nothing after that packet is read, so the MAIL FROM
    after it makes no transaction.  Past 10 KiB the violation is ignored and it does."""
    path = _capture_cutting_a_line(tmp_path / "reply-crcrlf.pcap", (
        (True, b"Subject: x\r\n\r\n" + b"hello\r\n" * (padding // 7) + b".\r\n"),
        (False, b"250 queued as 1\r\r\n"), (True, b"MAIL FROM:<c@fabrikam.com>\r\n"),
        (False, b"250 ok\r\n"), (True, b"QUIT\r\n"), (False, b"221 bye\r\n")))
    first = (1, "a@fabrikam.com", "250 queued as 1")
    assert _cut_rows(path) == ([first, (2, "c@fabrikam.com", "221 bye")] if padding
                               else [first])


@pytest.mark.parametrize("padding", [0, 11_000])
@pytest.mark.parametrize("middle", [1, 3])
def test_a_middle_reply_line_ended_by_cr_cr_lf_stops_zeeks_smtp_analyzer(tmp_path, padding,
                                                                         middle):
    """A line between a multi-line reply's first and last ended by CR CR LF: Zeek's
    ContentLine_Analyzer::DoDeliverOnce (CR_as_EOL) ends it at its first CR and reads an
    empty line at the second, which SMTP_Analyzer::ProcessLine finds "reply code out of
    range", an analyzer violation; within DPD's 10 KiB the analyzer is removed after that
    packet, so the MAIL FROM after it makes no transaction.  fastcap keeps the text of a
    reply's first and last lines only, and saw none of it."""
    lines = [b"250-queued\r\n"] + [b"250-as\r\n"] * middle + [b"250 1\r\n"]
    lines[1] = b"250-as\r\r\n"
    path = _capture_cutting_a_line(tmp_path / "middle-crcrlf.pcap", (
        (True, b"Subject: x\r\n\r\n" + b"hello\r\n" * (padding // 7) + b".\r\n"),
        (False, b"".join(lines)), (True, b"MAIL FROM:<c@fabrikam.com>\r\n"),
        (False, b"250 ok\r\n"), (True, b"QUIT\r\n"), (False, b"221 bye\r\n")))
    first = (1, "a@fabrikam.com", "250 queued")
    # each line of the answer to the final dot counts a message (main.zeek's smtp_reply)
    later = (middle + 3, "c@fabrikam.com", "221 bye")
    assert _cut_rows(path) == ([first, later] if padding else [first])


def test_binary_bytes_after_a_gap_are_joined_to_the_cut_reply_as_in_zeek(tmp_path):
    """Zeek's ContentLine joins the head of a reply line a gap cut with the bytes after the
    gap up to the next CR or LF, binary ones too (TLS records; the first NUL of the stream
    left out, SetIsNULSensitive), so smtp_reply's message, and last_reply, holds them, the
    log escaping them; fastcap's own reading keeps the head alone."""
    from fastcap.out.zeek import smtp_transactions
    from fastcap.out.zeek_ascii import text_bytes
    from fastcap.session import iter_sessions

    path = _capture_cutting_a_line(tmp_path / "cut-binary.pcap", (
        (True, b"Subject: x\r\n\r\nhello\r\n.\r\n"), (False, b"250 que"), (False, b"LOST"),
        (False, b"\x16\x03\x01\x00\x05ab\x00c\xff\rrest\r\n")))
    for backend in ("native", "python"):
        (s,) = list(iter_sessions(path, backend=backend))
        assert [r.text for r in s.smtp.replies if r.code == 250][-1] == "que"
        (t,) = smtp_transactions(s)
        assert text_bytes(t.last_reply) == b"250 que\x16\x03\x01\x05ab\x00c\xff"


@pytest.mark.parametrize(("line", "padding", "stops"), [
    (b"hello there", 0, True), (b"", 0, True), (b"99 no", 0, True),
    (b"hello there", 11_000, False)])
def test_a_server_line_with_no_reply_code_stops_zeeks_smtp_analyzer(tmp_path, line,
                                                                    padding, stops):
    """A server line whose first three bytes are no code from 100 to 599 is "reply code out
    of range" to SMTP.cc, an analyzer violation: within DPD's 10 KiB the analyzer is
    removed after that packet (as Zeek's own FTP baseline ftp-invalid-reply-code shows for
    its analyzer), so the MAIL FROM after it makes no transaction."""
    path = _capture_cutting_a_line(tmp_path / "no-code.pcap", (
        (True, b"Subject: x\r\n\r\n" + b"hello\r\n" * (padding // 7) + b".\r\n"),
        (False, b"250 queued as 1\r\n"), (False, line + b"\r\n"),
        (True, b"MAIL FROM:<c@fabrikam.com>\r\n"), (False, b"250 ok\r\n"), (True, b"QUIT\r\n"),
        (False, b"221 bye\r\n")))
    first = (1, "a@fabrikam.com", "250 queued as 1")
    assert _cut_rows(path) == ([first] if stops else [first, (2, "c@fabrikam.com", "221 bye")])


def _dpd_rows(path: Path, replies: tuple[bytes, ...], total: int) -> list[tuple]:
    """_cut_rows of a dialogue up to DATA's 354, a message padded so that the connection
    has sent ``total`` bytes by the end of ``replies`` (the server's, each its own packet),
    then a second transaction."""
    sc, conv = _up_to_data()
    head, tail = b"Subject: x\r\n\r\n", b"\r\n.\r\n"
    before = sum(len(m.data) for m in conv.messages) + len(head + tail) + sum(map(len, replies))
    body = head + b"a" * (total - before) + tail
    conv.messages += [Message(True, body, "body"), *(Message(False, r, "r") for r in replies)]
    assert sum(len(m.data) for m in conv.messages) == total
    conv.messages += [Message(c, data, "after") for c, data in (
        (True, b"MAIL FROM:<c@fabrikam.com>\r\n"), (False, b"250 ok\r\n"), (True, b"QUIT\r\n"),
        (False, b"221 bye\r\n"))]
    write_pcap(path, render(conv, sc))
    return _cut_rows(path)


@pytest.mark.parametrize("over", [0, 1])
def test_zeeks_dpd_counts_both_sides_bytes_through_the_violations_packet(tmp_path, over):
    """DPD's analyzer_violation_info handler (base/frameworks/analyzer/dpd.zeek) removes the
    analyzer unless ``c$orig$size + c$resp$size`` is over DPD::ignore_violations_after
    (10 KiB), each size the highest sequence number its side reached once the violation's
    packet is read (TCP_Endpoint::Size): both sides' bytes up to the end of the server line
    with no reply code.  At exactly 10,240 bytes the MAIL FROM after it is not read; one
    byte more and it is."""
    rows = _dpd_rows(tmp_path / "dpd.pcap", (b"250 queued as 1\r\n", b"hello there\r\n"),
                     10 * 1024 + over)
    first = (1, "a@fabrikam.com", "250 queued as 1")
    assert rows == ([first, (2, "c@fabrikam.com", "221 bye")] if over else [first])


@pytest.mark.parametrize("split", [False, True])
def test_zeeks_dpd_counts_the_bytes_through_the_packet_that_ends_the_bad_line(tmp_path, split):
    """SMTP_Analyzer::ProcessLine meets "reply code out of range" when ContentLine_Analyzer::
    DoDeliverOnce hands it the line, at its first CR or LF, so DPD compares the bytes both
    sides had sent through the packet that ends the line with DPD::ignore_violations_after,
    not through the one it begins in.  A code-less line whose head ends the connection's
    10,240th byte is read at its tail's packet, past 10 KiB: the violation is ignored and the
    MAIL FROM after it is read; sent whole, it is not."""
    line = (b"hello", b" there\r\n") if split else (b"hello there\r\n",)
    rows = _dpd_rows(tmp_path / "dpd-split.pcap", (b"250 queued as 1\r\n", *line),
                     10 * 1024 + 8 * split)  # through "hello": 10,240 bytes either way
    first = (1, "a@fabrikam.com", "250 queued as 1")
    assert rows == ([first, (2, "c@fabrikam.com", "221 bye")] if split else [first])


@pytest.mark.parametrize("split", [False, True])
def test_zeeks_dpd_counts_tls_bytes_through_the_packet_that_ends_their_first_line(tmp_path,
                                                                                  split):
    """TLS bytes where no STARTTLS was accepted are lines to Zeek's ContentLine as any: the
    first is handed to SMTP_Analyzer::ProcessLine, "reply code out of range", at its first
    CR or LF, and DPD counts the bytes through that packet, not the record's first."""
    record = b"\x16\x03\x01\x00\x05hello"
    line = (record, b"ab\r\n") if split else (record + b"ab\r\n",)
    rows = _dpd_rows(tmp_path / "dpd-tls.pcap", (b"250 queued as 1\r\n", *line),
                     10 * 1024 + 4 * split)  # through the record's head: 10,240 bytes
    # (fastcap reads no server line after the record, where Zeek reads on: last_reply left)
    assert [row[:2] for row in rows] == [(1, "a@fabrikam.com"), *[(2, "c@fabrikam.com")] * split]


def test_a_verb_alone_before_cr_cr_lf_is_a_command_in_zeeks_logs(tmp_path):
    """Zeek's ContentLine ends "DATA\r\r\n" at its first CR (CR_as_EOL), and SMTP.cc reads
    "DATA" as the command (the empty line after it is none): the 354 answers it and the
    250 after the final dot counts the message, so the next transaction's trans_depth is 3;
    "STARTTLS\r\r\n" answered 220 sets tls.  fastcap's diagnosis keeps reading such a line
    as no command (bad_command), as Postfix does."""
    from fastcap.out.zeek import smtp_transactions
    from fastcap.session import iter_sessions

    first = ((True, b"Subject: x\r\n\r\nhello\r\n.\r\n"), (False, b"250 queued as 1\r\n"),
             (True, b"MAIL FROM:<c@fabrikam.com>\r\n"), (False, b"250 ok\r\n"))
    data = _capture_cutting_a_line(tmp_path / "data.pcap", (
        *first, (True, b"DATA\r\r\n"), (False, b"354 go on\r\n"), (True, b"hi\r\n.\r\n"),
        (False, b"250 queued as 2\r\n"), (True, b"MAIL FROM:<d@fabrikam.com>\r\n"),
        (False, b"250 ok\r\n"), (True, b"QUIT\r\r\n"), (False, b"221 bye\r\n")))
    assert _cut_rows(data) == [(1, "a@fabrikam.com", "250 queued as 1"),
                               (2, "c@fabrikam.com", "250 queued as 2"),
                               (3, "d@fabrikam.com", "221 bye")]
    tls = _capture_cutting_a_line(tmp_path / "starttls.pcap", (
        *first, (True, b"STARTTLS\r\r\n"), (False, b"220 go ahead\r\n")))
    for backend in ("native", "python"):
        (s,) = list(iter_sessions(tls, backend=backend))
        assert [t.tls for t in smtp_transactions(s)] == [False, True]
        assert [a.detail for a in s.smtp.anomalies if a.kind == "bad_command"] == ["STARTTLS\\r"]
        assert "STARTTLS" not in [c.verb for c in s.smtp.commands]


def test_an_auth_answer_ended_by_cr_cr_lf_is_two_answers_in_zeeks_logs(tmp_path):
    """Zeek's ContentLine ends "dXNlcg==\r\r\n" at its first CR and then reads an empty
    line, which SMTP.cc, in its AUTH state, takes as another answer (AUTH_ANSWER): each
    answer so ended queues two commands, so the replies after them pair one command late.
    Here the 354 and the 250 to the message's end answer the MAIL and the RCPT: no message
    is counted, and the one line ends at the 221.  Both parsing paths (the usual dialogue's
    fast path and the general one) see it."""
    from fastcap.proto.smtp import parse as smtp_parse

    auth = ((True, b"AUTH LOGIN\r\n"), (False, b"334 VXNlcm5hbWU6\r\n"),
            (True, b"dXNlcg==\r\r\n"), (False, b"334 UGFzc3dvcmQ6\r\n"),
            (True, b"cGFzcw==\r\r\n"), (False, b"235 2.7.0 ok\r\n"))
    pki = make_pki()
    start = (int(pki.client.cert.not_valid_before_utc.timestamp()) + 3600) * 10**9
    sc = scenario("starttls_not_offered", pki, start_ns=start, commands=(
        ("EHLO relay.fabrikam.com", "250 hi"),))
    conv = converse(sc)
    conv.messages += [Message(c, data, "piece") for c, data in (
        *auth, (True, b"MAIL FROM:<a@fabrikam.com>\r\n"), (False, b"250 ok\r\n"),
        (True, b"RCPT TO:<b@contoso.com>\r\n"), (False, b"250 ok\r\n"), (True, b"DATA\r\n"),
        (False, b"354 go on\r\n"), (True, b"hi\r\n.\r\n"), (False, b"250 queued as 1\r\n"),
        (True, b"QUIT\r\n"), (False, b"221 bye\r\n"))]
    path = tmp_path / "auth.pcap"
    write_pcap(path, render(conv, sc))
    assert _cut_rows(path) == [(1, "a@fabrikam.com", "221 bye")]
    real = smtp_parse._parse_plain
    try:  # the general path
        smtp_parse._parse_plain = lambda *a, **k: None
        assert _cut_rows(path) == [(1, "a@fabrikam.com", "221 bye")]
    finally:
        smtp_parse._parse_plain = real


def test_a_final_dot_ended_by_cr_cr_lf_ends_the_message_in_zeeks_logs(tmp_path):
    """Zeek's ContentLine ends ".\r\r\n" at its first CR: a "." line, the message's end
    (END_OF_DATA), and an empty line after it, no command.  The 250 after it counts the
    message and the MAIL FROM and QUIT sent after that reply are commands, each read when
    its packet comes: a second transaction, ended by the 221.  fastcap's diagnosis finds
    no final dot (body_unfinished), as a server that wants CR LF "." CR LF does."""
    from fastcap.session import iter_sessions

    path = _capture_cutting_a_line(tmp_path / "dot-crcrlf.pcap", (
        (True, b"Subject: x\r\n\r\nhello\r\n.\r\r\n"), (False, b"250 queued as 1\r\n"),
        (True, b"MAIL FROM:<c@fabrikam.com>\r\n"), (False, b"250 ok\r\n"),
        (True, b"QUIT\r\n"), (False, b"221 bye\r\n")))
    assert _cut_rows(path) == [(1, "a@fabrikam.com", "250 queued as 1"),
                               (2, "c@fabrikam.com", "221 bye")]
    for backend in ("native", "python"):
        (s,) = list(iter_sessions(path, backend=backend))
        assert "body_unfinished" in [a.kind for a in s.smtp.anomalies]
        assert [c.verb for c in s.smtp.commands][-1] == "DATA"


def test_tls_bytes_from_the_server_outside_starttls_stop_zeeks_smtp_analyzer(tmp_path):
    """A TLS record where no STARTTLS was accepted reaches Zeek's SMTP analyzer as server
    lines (its ContentLine splits the bytes at a CR or LF) whose first bytes are no reply
    code: "reply code out of range", a violation on which DPD removes the analyzer within
    10 KiB, so the MAIL FROM after it makes no transaction.  fastcap's reader stops reading
    the server there (unexpected_tls) and still reads the client's commands."""
    path = _capture_cutting_a_line(tmp_path / "tls-bytes.pcap", (
        (True, b"Subject: x\r\n\r\nhello\r\n.\r\n"), (False, b"250 queued as 1\r\n"),
        (False, b"\x16\x03\x03\x00\x05hel\nlo"), (True, b"MAIL FROM:<c@fabrikam.com>\r\n"),
        (False, b"250 ok\r\n"), (True, b"QUIT\r\n"), (False, b"221 bye\r\n")))
    assert _cut_rows(path) == [(1, "a@fabrikam.com", "250 queued as 1")]


def _turned(path: Path, after: tuple[tuple[bool, str], ...], verb: str = "TURN") -> Path:
    """A dialogue whose originator sends one message, then ``verb`` answered 250, then the
    lines ``after`` (from the originator?, text)."""
    pki = make_pki()
    start = (int(pki.client.cert.not_valid_before_utc.timestamp()) + 3600) * 10**9
    sc = scenario("starttls_not_offered", pki, start_ns=start, commands=(
        ("MAIL FROM:<a@fabrikam.com>", "250 ok"), ("RCPT TO:<b@contoso.com>", "250 ok"),
        ("DATA", "354 go on"), ("Subject: x\r\n\r\nhello\r\n.", "250 queued as 1"),
        (verb, "250 OK")))
    conv = converse(sc)
    conv.messages += [Message(c, (t + "\r\n").encode(), "turned") for c, t in after]
    write_pcap(path, render(conv, sc))
    return path


def test_a_line_with_no_reply_code_from_the_new_receiver_after_turn_stops_zeek(tmp_path):
    """After a 250 to TURN SMTP.cc reads the originator's lines as replies (orig_is_sender
    swapped), so one with no reply code is a violation there: within DPD's 10 KiB the
    analyzer is removed and the responder's MAIL FROM after it makes no transaction."""
    turn = (True, "220 relay.fabrikam.com ready"), (False, "EHLO mx.contoso.com")
    mail = ((False, "MAIL FROM:<x@contoso.com>"), (True, "250 ok"), (False, "QUIT"),
            (True, "221 bye"))
    assert [x[1] for x in _cut_rows(_turned(tmp_path / "turn.pcap", (
        *turn, (True, "250 hi"), *mail)))] == ["a@fabrikam.com", "x@contoso.com"]
    assert [x[1] for x in _cut_rows(_turned(tmp_path / "bad.pcap", (
        *turn, (True, "hello there"), *mail)))] == ["a@fabrikam.com"]


def test_the_new_senders_first_command_after_atrn_stops_zeeks_smtp_analyzer(tmp_path):
    """Zeek's SMTP analyzer knows no ATRN, so after its 250 the responder's EHLO is a server
    line with no reply code to SMTP.cc: a violation on which DPD removes the analyzer within
    10 KiB.  A later 250 to TURN, which turns fastcap's roles back to Zeek's, is not read
    then, nor the originator's mail after it."""
    back = ((False, "EHLO mx.contoso.com"), (True, "250 hi"), (False, "TURN"),
            (True, "250 OK"), (False, "220 mx.contoso.com"), (True, "MAIL FROM:<c@fabrikam.com>"),
            (False, "250 ok"), (True, "QUIT"), (False, "221 bye"))
    assert [x[1] for x in _cut_rows(_turned(tmp_path / "atrn.pcap", (
        (True, "220 relay.fabrikam.com ready"), *back), "ATRN"))] == ["a@fabrikam.com"]


@pytest.mark.parametrize(("lost", "after", "stops"), [
    (b"250-2.0.0 one\r\n", b"LINING\r\n250 queued as 1\r\n", True),  # a fresh line, no code
    (b"250-2.0.0 one\r\n", b"250 queued as 1\r\n", False),  # a fresh line with a code
    (b"250-2.0.0 o", b"ne\r\n250 queued as 1\r\n", False),  # joined to the cut head "250-"
])
def test_a_server_line_after_a_gap_with_no_reply_code_stops_zeeks_smtp_analyzer(
        tmp_path, lost, after, stops):
    """After a gap that began where a server line began, Zeek's ContentLine hands the bytes
    after it on as a line of their own: with no reply code first, "reply code out of range",
    a violation on which DPD removes the analyzer within 10 KiB, so the MAIL FROM sent
    after the gap's recovery makes no transaction.  fastcap skips that line (resync) and
    reads on.  A line the gap cut is joined to its head, whose code Zeek reads."""
    path = _capture_cutting_a_line(tmp_path / "gap-nocode.pcap", (
        (True, b"Subject: x\r\n\r\nhello\r\n.\r\n"), (False, lost), (False, b"LOST"),
        (False, after), (True, b"MAIL FROM:<c@fabrikam.com>\r\n"), (False, b"250 ok\r\n"),
        (True, b"MAIL FROM:<d@fabrikam.com>\r\n"), (False, b"250 ok\r\n"),
        (True, b"QUIT\r\n"), (False, b"221 bye\r\n")))
    rows = _cut_rows(path)
    assert [r[1] for r in rows][-1] == ("a@fabrikam.com" if stops else "d@fabrikam.com")


def test_the_bytes_for_dpd_are_counted_where_zeek_may_meet_a_violation(tmp_path):
    """The scan counts the connection's bytes for DPD (zeek_sizes) only where Zeek's SMTP
    analyzer may meet a violation: left uncounted there, the logs would stop at it however
    many bytes came before.  Each shape Zeek reads as a violation gets them; an ordinary
    dialogue does not (they cost about 40 µs a session)."""
    from fastcap.session import iter_sessions

    message = ((True, b"Subject: x\r\n\r\nhello\r\n.\r\n"), (False, b"250 queued as 1\r\n"))
    shapes = {
        "no reply code": (*message, (False, b"hello there\r\n")),
        "TLS outside STARTTLS": (*message, (False, b"\x16\x03\x03\x00\x05hel\nlo")),
        "a reply ended by CR CR LF": ((True, message[0][1]), (False, b"250 queued\r\r\n")),
        "a line after a gap": (*message[:1], (False, b"250-2.0.0 one\r\n"), (False, b"LOST"),
                               (False, b"LINING\r\n250 queued as 1\r\n")),
    }
    paths = {name: _capture_cutting_a_line(tmp_path / f"{n}.pcap", (
        *pieces, (True, b"QUIT\r\n"), (False, b"221 bye\r\n")))
        for n, (name, pieces) in enumerate(shapes.items())}
    paths["ATRN"] = _turned(tmp_path / "atrn.pcap", (
        (True, "220 relay.fabrikam.com ready"), (False, "EHLO mx.contoso.com")), "ATRN")
    plain = _capture_cutting_a_line(tmp_path / "plain.pcap", (
        *message, (True, b"QUIT\r\n"), (False, b"221 bye\r\n")))
    for backend in ("native", "python"):
        for name, path in paths.items():
            (s,) = list(iter_sessions(path, backend=backend))
            assert s.smtp.zeek_sizes, name
        (s,) = list(iter_sessions(plain, backend=backend))
        assert s.smtp.zeek_sizes == ()
