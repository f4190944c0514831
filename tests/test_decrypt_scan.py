"""Decryption with key logs, end to end: generated SMTP sessions over real OpenSSL handshakes
(fastcap_synth's keyed catalogue: TLS 1.2 GCM/ChaCha20/CBC, TLS 1.3 with its three AEADs, with
and without a client certificate, and Exchange Online's 550 5.7.64 inside TLS 1.3), scanned
with their keys from a file, from SSLKEYLOGFILE and from a pcapng Decryption Secrets Block."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from fastcap.options import ScanOptions
from fastcap.out.follow import format_follow
from fastcap.run import scanner
from fastcap.run.scanner import scan
from fastcap.session import iter_sessions
from fastcap_synth.scenarios import KEYED_SCENARIOS, keyed_conversations, make_pki
from fastcap_synth.smtpgen import render
from fastcap_synth.writers import keylog_bytes, write_pcap, write_pcapng

REPO = Path(__file__).resolve().parents[1]
NAMES = tuple(KEYED_SCENARIOS)
FAMILIES = ("aes128", "aes256", "chacha")


@dataclasses.dataclass
class Keyed:
    pcap: Path
    pcapng: Path  # the same frames, the key log in a Decryption Secrets Block
    keys: Path
    lines: dict[str, list[str]]  # scenario -> its key log lines
    port: dict[int, str]  # client port -> scenario
    cert: dict[str, bytes | None]  # scenario -> the client certificate it sent


@pytest.fixture(scope="module")
def keyed(tmp_path_factory) -> Keyed:
    d = tmp_path_factory.mktemp("keyed")
    start = time.time_ns() - 3600 * 10**9  # certificates are valid from a day ago
    records, lines, port, cert = [], {}, {}, {}
    for i, (sc, conv) in enumerate(keyed_conversations(make_pki(), NAMES)):
        sc = dataclasses.replace(sc, start_ns=start + i * 10**10)
        records += render(conv, sc)
        lines[sc.name] = list(conv.keylog)
        port[sc.client_port] = sc.name
        cert[sc.name] = sc.client_cert.der if sc.client_cert else None
    keys = keylog_bytes([x for name in NAMES for x in lines[name]])
    out = Keyed(d / "keyed.pcap", d / "keyed.pcapng", d / "keyed.keys", lines, port, cert)
    out.keys.write_bytes(keys)
    write_pcap(out.pcap, records)
    write_pcapng(out.pcapng, records, tls_keylog=keys)
    return out


def _by_name(keyed: Keyed, path: Path, **kw) -> dict[str, dict]:
    out = {}
    for s in scan(path, **kw):
        port = int(s.client.rsplit(":", 1)[1])
        out[keyed.port[port]] = s.to_dict()
    assert len(out) == len(NAMES)
    return out


def _codes(s: dict) -> list[str]:
    return [v["code"] for v in s["verdicts"]]


def _cli(*args: str, env_keys: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SSLKEYLOGFILE"}
    if env_keys is not None:
        env["SSLKEYLOGFILE"] = env_keys
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), str(REPO),
                                                      env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "fastcap.cli", *args], capture_output=True,
                          text=True, env=env, timeout=300)


def _sessions_json(proc: subprocess.CompletedProcess) -> list[dict]:
    return [s for f in json.loads(proc.stdout)["files"] for s in f["sessions"]]


def _without_sources(sessions: list[dict]) -> list[dict]:
    out = []
    for s in sessions:
        s = json.loads(json.dumps(s))
        s.pop("file", None)  # the CLI's JSON names the capture in each session
        if s.get("decryption"):
            s["decryption"]["sources"] = None
        out.append(s)
    return out


@pytest.fixture(scope="module")
def with_keys(keyed) -> dict[str, dict]:
    return _by_name(keyed, keyed.pcap, keylog=(str(keyed.keys),))


@pytest.fixture(scope="module")
def without_keys(keyed) -> dict[str, dict]:
    return _by_name(keyed, keyed.pcap)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("cert", ["cert", "nocert"])
def test_tls13_with_keys_is_judged_as_tls12_without(with_keys, without_keys, keyed, family,
                                                     cert):
    tls13 = with_keys[f"keys_tls13_{family}_{cert}"]
    assert "tls13_encrypted" in _codes(without_keys[f"keys_tls13_{family}_{cert}"])
    assert _codes(tls13) == _codes(without_keys[f"keys_tls12_gcm_{cert}"])
    assert "tls13_encrypted" not in _codes(tls13)
    t = tls13["tls"]
    assert t["tls13_encrypted"] is False and t["outcome"] == "completed"
    assert not t["outcome_inferred"]
    sent = t["client_certificate"]
    assert sent is not None and sent["empty"] == (cert == "nocert")
    if cert == "cert":
        import base64

        assert base64.b64decode(sent["certificates"][0]["der_b64"]) == keyed.cert[
            f"keys_tls13_{family}_{cert}"]
    assert t["certificate_request"] is not None
    d = tls13["decryption"]
    assert d["keys_found"] and d["handshake"] and d["error"] is None
    assert d["c2s"]["app_bytes"] > 0 and d["s2c"]["app_bytes"] > 0
    # the wire record counts and sizes stay as they were
    assert t["encrypted"] == without_keys[f"keys_tls13_{family}_{cert}"]["tls"]["encrypted"]


def test_every_suite_decrypts_the_smtp_dialogue_inside_tls(with_keys):
    for name, spec in KEYED_SCENARIOS.items():
        s = with_keys[name]
        d = s["decryption"]
        assert d["keys_found"] and d["error"] is None, (name, d)
        inner = s["smtp_tls"]
        assert inner is not None, name
        verbs = [c["verb"] for c in inner["commands"]]
        assert verbs[:3] == ["EHLO", "MAIL", "RCPT"], (name, verbs)
        assert inner["anomalies"] == [], (name, inner["anomalies"])
        codes = [r["code"] for r in inner["replies"]]
        assert (550 in codes) == spec.relay_denied, (name, codes)


def test_encrypted_alerts_are_named_with_keys_in_every_version(with_keys, without_keys):
    """An alert sent after ChangeCipherSpec (TLS <= 1.2) or the hellos (TLS 1.3) is opaque
    without keys; with them it is named, in TLS 1.2 as in TLS 1.3 (whose handshake is read
    again from its plaintext), as tshark names both."""
    tls12 = [n for n in NAMES if with_keys[n]["tls"]["version"] == "TLS1.2"]
    assert tls12 and len(tls12) < len(NAMES)
    for name in NAMES:
        bare, keyed = without_keys[name]["tls"]["alerts"], with_keys[name]["tls"]["alerts"]
        assert {(a["level"], a["description"], a["encrypted"]) for a in keyed} == {
            ("warning", "close_notify", False)}, name
        if name in tls12:  # TLS 1.3 hides even that a record is an alert
            assert bare and all(a["encrypted"] and a["description"] is None for a in bare)
            assert [(a["from"], a["offset"], a["frame"]) for a in keyed] == [
                (a["from"], a["offset"], a["frame"]) for a in bare], name


def test_relay_denied_inside_tls_names_its_frame(with_keys, without_keys):
    name = "keys_tls13_relay_denied"
    assert "relay_denied" not in _codes(without_keys[name])
    s = with_keys[name]
    (v,) = [v for v in s["verdicts"] if v["code"] == "relay_denied"]
    (reply,) = s["smtp_tls"]["relay_denied"]
    assert reply["enhanced"] == "5.7.64" and v["frame"] == reply["frame"]
    assert "inside TLS" in v["message"] and f"frame {reply['frame']}" in v["message"]
    rcpt = next(c for c in s["smtp_tls"]["commands"] if c["verb"] == "RCPT")
    assert s["first_frame"] <= rcpt["frame"] < reply["frame"] <= s["last_frame"]
    # the same scenario over TLS 1.2: the same verdicts with keys, all but the 550 without
    assert _codes(s) == _codes(with_keys["keys_tls12_relay_denied"])
    assert [c for c in _codes(s) if c != "relay_denied"] == _codes(
        without_keys["keys_tls12_relay_denied"])


def test_key_file_environment_and_secrets_block_give_the_same_result(keyed):
    by_file = _cli("scan", "--format", "json", "-j", "1", "--keylog", str(keyed.keys),
                   str(keyed.pcap))
    by_env = _cli("scan", "--format", "json", "-j", "1", str(keyed.pcap),
                  env_keys=str(keyed.keys))
    by_dsb = _cli("scan", "--format", "json", "-j", "1", str(keyed.pcapng))
    assert by_file.returncode == by_env.returncode == by_dsb.returncode
    a, b, c = (_sessions_json(p) for p in (by_file, by_env, by_dsb))
    assert a == b
    assert all(s["decryption"]["keys_found"] for s in a)
    assert _without_sources(a) == _without_sources(c)
    assert all(src.startswith("keyed.pcapng DSB at byte ")
               for s in c for src in s["decryption"]["sources"])
    assert all(src.startswith(str(keyed.keys)) for s in a for src in s["decryption"]["sources"])


def test_no_keys_no_change(keyed, without_keys):
    proc = _cli("scan", "--format", "json", "-j", "1", str(keyed.pcap))
    for s in _sessions_json(proc):
        assert "decryption" not in s and "smtp_tls" not in s
    assert all("decryption" not in s for s in without_keys.values())


def _flip(line: str) -> str:
    """The line with its secret changed (same length, still hex)."""
    label, cr, secret = line.split()
    flipped = "".join("0" if ch != "0" else "1" for ch in secret[:8]) + secret[8:]
    return f"{label} {cr} {flipped}"


def test_wrong_keys_are_a_finding_naming_the_record(keyed, tmp_path, with_keys):
    bad = "keys_tls13_aes256_cert"
    lines = [(_flip(x) if name == bad else x) for name in NAMES for x in keyed.lines[name]]
    path = tmp_path / "wrong.keys"
    path.write_bytes(keylog_bytes(lines))
    got = _by_name(keyed, keyed.pcap, keylog=(str(path),))
    (v,) = [v for v in got[bad]["verdicts"] if v["code"] == "decryption_failed"]
    assert v["severity"] == "warning" and v["frame"] is not None
    assert got[bad]["first_frame"] <= v["frame"] <= got[bad]["last_frame"]
    assert "stream offset" in v["message"] and f"frame {v['frame']}" in v["message"]
    assert got[bad]["decryption"]["error_frame"] == v["frame"]
    for name in NAMES:  # the other sessions are unaffected
        if name != bad:
            assert _without_sources([got[name]]) == _without_sources([with_keys[name]]), name


@pytest.mark.parametrize("cert", ["cert", "nocert"])
def test_client_flight_read_without_the_servers_keys_is_an_answered_request(
        keyed, tmp_path, cert):
    """Without SERVER_HANDSHAKE_TRAFFIC_SECRET the server's CertificateRequest stays
    encrypted, but the client's Certificate, decrypted, answers one: no
    `client_cert_not_requested` (whose text says the client could not have sent one)."""
    name = f"keys_tls13_aes128_{cert}"
    lines = [x for x in keyed.lines[name] if not x.startswith("SERVER_HANDSHAKE_TRAFFIC")]
    path = tmp_path / "client-only.keys"
    path.write_bytes(keylog_bytes(lines))
    got = _by_name(keyed, keyed.pcap, keylog=(str(path),))[name]
    assert got["tls"]["client_certificate"] is not None  # the client's flight was read
    assert "decryption_failed" in _codes(got)
    assert "client_cert_not_requested" not in _codes(got)
    if cert == "nocert":
        assert "no_client_cert" in _codes(got)


def test_keys_for_other_sessions_give_no_key_for_session(keyed, tmp_path, without_keys):
    only = "keys_tls12_gcm_cert"
    path = tmp_path / "one.keys"
    path.write_bytes(keylog_bytes(keyed.lines[only]))
    got = _by_name(keyed, keyed.pcap, keylog=(str(path),))
    assert "no_key_for_session" not in _codes(got[only])
    assert got[only]["decryption"]["keys_found"]
    for name in NAMES:
        if name == only:
            continue
        (v,) = [v for v in got[name]["verdicts"] if v["code"] == "no_key_for_session"]
        assert v["severity"] == "info" and "client random" in v["message"]
        assert got[name]["decryption"]["keys_found"] is False
        # apart from that finding, what the session shows is what it shows without keys
        assert [c for c in _codes(got[name]) if c != "no_key_for_session"] == _codes(
            without_keys[name])


def test_garbled_key_file_warns_with_the_line_and_spares_other_sessions(keyed, tmp_path):
    lines = [x for name in NAMES for x in keyed.lines[name]]
    lines.insert(2, "CLIENT_RANDOM not-hex-at-all 00")
    path = tmp_path / "garbled.keys"
    path.write_bytes(keylog_bytes(lines)[:-40])  # and the last line cut short
    clean = _cli("scan", "--format", "json", "-j", "1", "--keylog", str(keyed.keys),
                 str(keyed.pcap))
    proc = _cli("scan", "--format", "json", "-j", "1", "--keylog", str(path), str(keyed.pcap))
    warnings = [w for w in proc.stderr.splitlines() if "warning" in w]
    assert any(f"{path} line 3" in w for w in warnings), proc.stderr
    assert any(f"line {len(lines)}" in w for w in warnings), proc.stderr
    assert proc.returncode == 1
    last = NAMES[-1]  # its last key line was cut
    a = {s["client"]: s for s in _sessions_json(clean)}
    b = {s["client"]: s for s in _sessions_json(proc)}
    spared = [c for c, s in a.items() if keyed.port[int(c.rsplit(":", 1)[1])] != last]
    assert len(spared) == len(NAMES) - 1
    for c in spared:
        assert _without_sources([b[c]]) == _without_sources([a[c]])


def test_one_process_and_two_give_the_same(keyed, monkeypatch, with_keys):
    monkeypatch.setattr(scanner, "SPLIT_MIN_BYTES", 0)  # split even this small file
    two = _by_name(keyed, keyed.pcap, keylog=(str(keyed.keys),), jobs=2, parts=4)
    assert two == with_keys
    dsb = _by_name(keyed, keyed.pcapng, jobs=2, parts=4)
    assert _without_sources(list(dsb.values())) == _without_sources(list(with_keys.values()))


def test_decrypt_limit_bounds_application_data(keyed):
    got = _by_name(keyed, keyed.pcap, keylog=(str(keyed.keys),), decrypt_limit=16)
    for name, s in got.items():
        d = s["decryption"]
        for side in ("c2s", "s2c"):
            assert d[side]["app_bytes"] <= 16, name
        assert d["s2c"]["limited"], name
        assert s["tls"]["tls13_encrypted"] is False  # the handshake is decrypted all the same


def test_follow_prints_the_decrypted_dialogue_marked(keyed):
    options = ScanOptions(keylog=(str(keyed.keys),))
    target = next(p for p, n in keyed.port.items() if n == "keys_tls13_relay_denied")
    for s in iter_sessions(keyed.pcap, options, keep_streams=True):
        if s.client.endswith(f":{target}"):
            text = format_follow(s)
            break
    decrypted = [x for x in text.splitlines() if "*: " in x]
    assert any("C*: RCPT TO:" in x for x in decrypted)
    assert any("S*: 550 5.7.64 TenantAttribution" in x for x in decrypted)
    assert "--- decrypted with keys from " in text
    plain = format_follow(next(s for s in iter_sessions(keyed.pcap, keep_streams=True)
                               if s.client.endswith(f":{target}")))
    assert "*: " not in plain and "decrypted" not in plain


def _tshark_smtp(pcap: Path, keys: Path) -> dict[int, list[tuple[int, str]]]:
    """tshark's decrypted SMTP per client port: (frame, command verb or reply code)."""
    out = subprocess.run(
        ["tshark", "-n", "-r", str(pcap), "-o", f"tls.keylog_file:{keys}", "-Y", "smtp",
         "-T", "fields", "-e", "frame.number", "-e", "tcp.srcport", "-e", "tcp.dstport",
         "-e", "smtp.req.command", "-e", "smtp.response.code", "-E", "occurrence=f"],
        capture_output=True, text=True, timeout=120, check=True).stdout
    seen: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for row in out.splitlines():
        frame, sport, dport, cmd, code = (row.split("\t") + [""] * 5)[:5]
        port = int(sport) if int(dport) == 25 else int(dport)
        seen[port].append((int(frame), cmd or code))
    return seen


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_decrypted_dialogue_matches_tshark(keyed, with_keys):
    theirs = _tshark_smtp(keyed.pcap, keyed.keys)
    for port, name in keyed.port.items():
        s = with_keys[name]
        smtp = s["smtp"]
        ours = sorted([(smtp["banner_frame"], str(smtp["banner_code"]))]
                      + [(c["frame"], c["verb"]) for c in smtp["commands"]]
                      + [(r["frame"], str(r["code"])) for r in smtp["replies"]]
                      + [(c["frame"], c["verb"]) for c in s["smtp_tls"]["commands"]]
                      + [(r["frame"], str(r["code"])) for r in s["smtp_tls"]["replies"]])
        # tshark names the first command or reply of each frame, a command by 4 letters
        firsts = sorted({f: v.upper()[:4] for f, v in reversed(ours)}.items())
        theirs_known = [(f, v.upper()[:4]) for f, v in theirs[port] if v]
        assert firsts == theirs_known, name
        assert any(v == "550" for _, v in firsts) == KEYED_SCENARIOS[name].relay_denied


def test_garbled_secrets_block_warns_with_its_place(keyed, tmp_path):
    data = keyed.pcapng.read_bytes()
    keys = keyed.keys.read_bytes()
    at = data.index(keys)
    lines = keys.split(b"\n")
    lines[1] = b"X" * len(lines[1])  # same length: the block's framing stays valid
    garbled = tmp_path / "garbled.pcapng"
    garbled.write_bytes(data[:at] + b"\n".join(lines) + data[at + len(keys):])
    proc = _cli("scan", "--format", "json", "-j", "1", str(garbled))
    # worded as a block met later in the file is, and as the capture's other warnings are
    assert (f"{garbled}: TLS key log in secrets block, line 2: not a key log line at offset "
            f"{at - 16}\n") in proc.stderr, proc.stderr
    assert proc.stderr.count("secrets block") == 1  # read once, reported once
    owner = NAMES[1]  # a TLS 1.2 session: its one key line is the second
    assert keyed.lines[owner] == [keys.split(b"\n")[1].decode()]
    for s in _sessions_json(proc):
        name = keyed.port[int(s["client"].rsplit(":", 1)[1])]
        assert s["decryption"]["keys_found"] == (name != owner), name
        assert s["decryption"]["error"] is None, name


def test_decrypted_messages_point_at_their_ciphertext_records(keyed, with_keys, without_keys):
    name = "keys_tls13_chacha_cert"
    port = next(p for p, n in keyed.port.items() if n == name)
    (s,) = [s for s in iter_sessions(keyed.pcap, ScanOptions(keylog=(str(keyed.keys),)),
                                     keep_streams=True) if s.client.endswith(f":{port}")]
    t, data = s.tls, s.c2s.data
    for at in (t.client_certificate_at, t.certificate_verify_at, t.client_finished_at):
        assert data[at.offset:at.offset + 3] == b"\x17\x03\x03"  # an encrypted record's header
        length = data[at.offset + 3] << 8 | data[at.offset + 4]
        assert at.frame == s.c2s.frame_at(at.offset + 4 + length)  # the frame completing it
    for at in (t.server_certs_at, t.cert_request_at):
        assert s.s2c.data[at.offset] == 0x17
    # what was plaintext on the wire keeps its place
    assert with_keys[name]["tls"]["client_hello"]["offset"] == without_keys[name]["tls"][
        "client_hello"]["offset"]
    assert with_keys[name]["tls"]["stops"] == without_keys[name]["tls"]["stops"]


def test_record_listing_stops_at_a_gap_a_cut_record_or_non_tls():
    from fastcap.proto.decrypted import PlainStream
    from fastcap.proto.tls.recordlist import list_records

    rec = b"\x17\x03\x03\x00\x04abcd"
    data = b"xx" + rec + rec + rec[:6]
    records, end = list_records(data, [], 2)
    assert [(r.offset, r.content_type, r.body) for r in records] == [(2, 23, b"abcd"),
                                                                    (11, 23, b"abcd")]
    assert end == 20  # the cut record is not listed
    assert list_records(data, [(12, 3)], 2) == ((records[0],), 11)
    assert list_records(b"HELO x\r\n" + rec, [], 0) == ((), 0)
    frames = {i: 100 + i for i in range(len(data))}
    ps = PlainStream(b"HDRpppp" + rec, [(0, 2, 0, 11), (7, 11, 9, 20)], frames.get)
    assert [ps.wire_offset(i) for i in (0, 6, 7, 10)] == [2, 2, 11, 14]
    assert [ps.frame_at(i) for i in (0, 6, 7, 10)] == [110, 110, 111, 114]
    assert ps.frame_at(len(ps.data)) is None and ps.contiguous_end(0) == len(ps.data)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_decrypted_bytes_and_certificates_match_tshark(keyed):
    from .tlskeys import tshark_view

    theirs = {st.client[1]: st for st in tshark_view(keyed.pcap, keyed.keys).values()
              if st.client is not None}
    options = ScanOptions(keylog=(str(keyed.keys),))
    seen = 0
    for s in iter_sessions(keyed.pcap, options, keep_streams=True):
        st = theirs[int(s.client.rsplit(":", 1)[1])]
        name = keyed.port[int(s.client.rsplit(":", 1)[1])]
        assert st.client_data and st.server_data, name
        assert s.tls_c2s.data == st.client_data, name
        assert s.tls_s2c.data == st.server_data, name
        assert list(s.tls.client_certificate or ()) == st.client_certs, name
        assert list(s.tls.server_certs) == st.server_certs, name
        verbs = [c.verb for c in s.smtp_tls.commands]
        assert [v[:4] for v in verbs] == [c.upper()[:4] for c in st.smtp_commands], name
        assert [r.code for r in s.smtp_tls.replies] == st.smtp_replies, name
        seen += 1
    assert seen == len(NAMES)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_corpus_capture_with_keys_decrypts_as_tshark_does():
    from .tlskeys import tshark_view

    corpus = REPO / "tests" / "data" / "corpus"
    pcap, keys = corpus / "zeek__tls12-decryption.pcap", corpus / "keys" / (
        "zeek__tls12-decryption.keylog")
    if not pcap.exists() or not keys.exists():
        pytest.skip("corpus capture with keys not present")
    theirs = [st for st in tshark_view(pcap, keys, smtp_ports=()).values() if st.client_data]
    assert theirs
    ports = {st.client[1] for st in theirs if st.client}
    options = ScanOptions(keylog=(str(keys),), ports=frozenset({443}),
                          decrypt_limit=1 << 20, stream_cap=1 << 24)
    got = {int(s.client.rsplit(":", 1)[1]): s
           for s in iter_sessions(pcap, options, keep_streams=True)}
    for st in theirs:
        s = got[st.client[1]]
        assert s.decryption is not None and s.decryption.keys_found
        assert s.tls_c2s.data == st.client_data[:len(s.tls_c2s.data)]
        assert s.tls_s2c.data == st.server_data[:len(s.tls_s2c.data)]
        assert s.tls_c2s.data and s.tls_s2c.data
    assert ports <= set(got)


_PEAK = """
import resource, subprocess, sys
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stdout.write(proc.stdout)
sys.stderr.write(f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}\\n")
sys.exit(proc.returncode)
"""


def test_a_1_gb_key_log_finds_its_sessions_in_bounded_memory(keyed, tmp_path, with_keys):
    """Busy servers write key logs of gigabytes: the sessions' lines, buried in the middle of
    1 GB of other sessions' (and again at its end), decrypt as from a small file, and the scan's
    peak memory stays far below the file's size."""
    from fastcap_synth.keylogs import write_big_keylog

    if "asan" in os.environ.get("LD_PRELOAD", ""):
        pytest.skip("AddressSanitizer's shadow memory inflates the peak it bounds (and the key "
                    "log index is numpy, no C of ours: sanitizer CI step)")
    big = tmp_path / "big.keys"
    lines = [x for name in NAMES for x in keyed.lines[name]]
    assert write_big_keylog(big, 1 << 30, include=lines) > 1_000_000_000
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO)]))
    env.pop("SSLKEYLOGFILE", None)
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK, sys.executable, "-m", "fastcap.cli", "scan", "--format",
         "json", "-j", "1", "--keylog", str(big), str(keyed.pcap)],
        capture_output=True, text=True, env=env, timeout=600)
    big.unlink()
    peak_kib = int(proc.stderr.strip().splitlines()[-1])
    sessions = _sessions_json(proc)
    assert len(sessions) == len(NAMES)
    for s in sessions:
        name = keyed.port[int(s["client"].rsplit(":", 1)[1])]
        assert s["decryption"]["keys_found"], name
        assert _codes(s) == _codes(with_keys[name]), name
        assert s["smtp_tls"] == with_keys[name]["smtp_tls"], name
    assert peak_kib * 1024 < 400 << 20  # a 96 MB index and the scan: not the file's 1 GB


@pytest.mark.parametrize("jobs", ["1", "2"])
@pytest.mark.parametrize("keyed_first", [True, False])
def test_a_secrets_block_serves_only_the_file_it_is_in(keyed, jobs, keyed_first):
    """`fastcap scan keyed.pcapng keyed.pcap`: the pcapng's block decrypts its own sessions
    and none of the pcap's, which read as they do scanned alone (no keys given: no
    `no_key_for_session`), as `tshark -r keyed.pcap` decrypts nothing whatever other file
    holds the keys (tests/test_decrypt_tshark.py)."""
    files = [str(keyed.pcapng), str(keyed.pcap)]
    if not keyed_first:
        files.reverse()
    both = _cli("scan", "--format", "json", "-j", jobs, *files)
    alone = _cli("scan", "--format", "json", "-j", jobs, str(keyed.pcap))
    got = {f["path"]: f["sessions"] for f in json.loads(both.stdout)["files"]}
    assert all(s["decryption"]["keys_found"] for s in got[str(keyed.pcapng)])
    assert all(s.get("decryption") is None for s in got[str(keyed.pcap)])
    assert got[str(keyed.pcap)] == _sessions_json(alone)
    from fastcap.run.workers import SerialExecutor

    # the API reads them as the CLI does, and so do an executor's tasks (a Dask cluster's)
    for executor in (None, SerialExecutor()):
        for r in scanner.scan_files(files, jobs=int(jobs), executor=executor):
            keyed_file = r.path == str(keyed.pcapng)
            assert r.sessions and all((s.decryption is not None) == keyed_file
                                      for s in r.sessions), r.path
