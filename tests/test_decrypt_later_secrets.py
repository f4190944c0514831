"""TLS key logs in Decryption Secrets Blocks anywhere in a pcapng, as dumpcap or a merge
places them: a block's keys serve the sessions that end after it, the same whether the file
is mapped, gzip-compressed, piped, read by range workers or split among executor tasks."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fastcap.options import ScanOptions
from fastcap.proto.tls.keylog import KeyLog
from fastcap.read.capture import Capture
from fastcap.read.pcapng import TLS_KEY_LOG, SecretsBlock
from fastcap.run import split, streamed
from fastcap.run.scanner import analyzer_for, scan
from fastcap.run.workers import SerialExecutor
from fastcap.session import KeysAsRead, with_keys
from fastcap_synth.scenarios import keyed_conversations, make_pki
from fastcap_synth.smtpgen import render
from fastcap_synth.writers import PcapngWriter, keylog_bytes

REPO = Path(__file__).resolve().parents[1]
# before any key, keys in a block between the sessions, keys in a block amid the session
NAMES = ("keys_tls12_gcm_cert", "keys_tls13_aes128_cert", "keys_tls12_chacha_nocert")
SSH_KEYS = 0x5353484B  # "SSHK": secrets fastcap does not use


@dataclasses.dataclass
class Later:
    path: Path
    gz: Path
    port: dict[int, str]  # client port -> scenario
    offsets: list[int]  # file offsets of the two key log blocks
    lines: dict[str, list[str]]


@pytest.fixture(scope="module")
def later(tmp_path_factory) -> Later:
    d = tmp_path_factory.mktemp("later")
    start = time.time_ns() - 3600 * 10**9
    sessions, port, lines = [], {}, {}
    for i, (sc, conv) in enumerate(keyed_conversations(make_pki(), NAMES)):
        sc = dataclasses.replace(sc, start_ns=start + i * 10**10)
        sessions.append(render(conv, sc))
        port[sc.client_port] = sc.name
        lines[sc.name] = list(conv.keylog)
    a, b, c = sessions
    mid = len(c) // 2
    path = d / "later.pcapng"
    logs: list[bytes] = []
    with PcapngWriter(path) as w:
        w.section()
        w.interface(1)

        def frames(records) -> None:
            for r in records:
                w.epb(0, r.data, ts_ns=r.ts_ns, orig_len=r.orig_len)

        def keys(names) -> None:
            text = keylog_bytes([x for n in names for x in lines[n]])
            logs.append(text)
            w.dsb(TLS_KEY_LOG, text)

        frames(a)
        keys(NAMES[:2])  # A's keys come too late for A, in time for B
        frames(b)
        w.dsb(SSH_KEYS, b"not a key log\n")
        frames(c[:mid])
        keys(NAMES[2:])  # amid C: C ends after it
        frames(c[mid:])
    data = path.read_bytes()
    offsets = [data.index(text) - 16 for text in logs]  # block header, type, length
    gz = d / "later.pcapng.gz"
    gz.write_bytes(gzip.compress(data))
    return Later(path, gz, port, offsets, lines)


def _unnamed(d: dict) -> dict:
    """`d` with the capture's name left out of key sources ("x.pcapng DSB at byte N line
    L"): a compressed or piped copy has another name."""
    return json.loads(re.sub(r'"[^"]* DSB at byte ', '"DSB at byte ', json.dumps(d)))


def _by_name(later: Later, sessions) -> dict[str, dict]:
    out = {}
    for s in sessions:
        d = s.to_dict()
        d.pop("file", None)
        out[later.port[int(d["client"].rsplit(":", 1)[1])]] = d
    assert set(out) == set(NAMES)
    return out


def test_blocks_serve_the_sessions_that_end_after_them(later):
    got = _by_name(later, scan(later.path, jobs=1))
    first, second, third = (got[n] for n in NAMES)
    assert "decryption" not in first  # no key had been read when it ended
    assert second["decryption"]["keys_found"] and third["decryption"]["keys_found"]
    at1, at2 = later.offsets
    assert second["decryption"]["sources"] and all(
        src.startswith(f"later.pcapng DSB at byte {at1} line ")
        and int(src.rsplit(" ", 1)[1]) > len(later.lines[NAMES[0]])  # B's lines, after A's
        for src in second["decryption"]["sources"])
    assert all(src.startswith(f"later.pcapng DSB at byte {at2} line ")
               for src in third["decryption"]["sources"])
    assert "smtp_tls" in second and "smtp_tls" in third


def test_walk_keeps_key_logs_once_and_other_secrets_by_reference(later):
    with Capture(later.path) as cap:
        for _ in cap.windows():
            pass
        blocks = cap.meta.secrets
    assert [b.secrets_type for b in blocks] == [TLS_KEY_LOG, SSH_KEYS, TLS_KEY_LOG]
    assert [b.offset for b in blocks if b.secrets_type == TLS_KEY_LOG] == later.offsets
    assert blocks[1].data == b"" and blocks[0].data.startswith(b"CLIENT_RANDOM ")
    assert 1 < blocks[0].frame < blocks[1].frame < blocks[2].frame


def test_compressed_piped_ranges_and_split_read_the_same(later):
    base = _by_name(later, scan(later.path, jobs=1))
    packed = _by_name(later, scan(later.gz, jobs=1, piece=4096))  # many pieces
    o = with_keys(ScanOptions(), later.path)
    ranged = _by_name(later, streamed.iter_scan(later.path, o, analyzer_for(o), jobs=2,
                                                parts=5, workers=False))
    dealt = _by_name(later, split.split_scan(later.path, o, jobs=3, parts=6,
                                             executor=SerialExecutor()).sessions)
    assert _unnamed(packed) == _unnamed(base) != base
    assert ranged == base
    assert dealt == base


def _cli(*args: str, stdin=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SSLKEYLOGFILE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), str(REPO),
                                                      env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "fastcap.cli", *args], capture_output=True,
                          env=env, timeout=300, stdin=stdin)


def _sessions(proc: subprocess.CompletedProcess) -> list[dict]:
    out = []
    for f in json.loads(proc.stdout)["files"]:
        for s in f["sessions"]:
            s.pop("file", None)
            out.append(s)
    return out


def test_cli_one_job_two_jobs_and_stdin_agree(later):
    one = _cli("scan", "--format", "json", "-j", "1", str(later.path))
    two = _cli("scan", "--format", "json", "-j", "2", str(later.path))
    with open(later.gz, "rb") as f:
        piped = _cli("scan", "--format", "json", "-j", "2", "-", stdin=f)
    assert one.returncode == two.returncode == piped.returncode
    assert one.stdout == two.stdout
    assert b"DSB" not in one.stderr and b"DSB" not in piped.stderr  # SSHK ignored silently
    sessions = _sessions(one)
    assert [("decryption" in s) for s in sessions] == [False, True, True]
    assert _unnamed(_sessions(piped)) == _unnamed(sessions)


def _block(offset: int, frame: int, text: bytes, stype: int = TLS_KEY_LOG) -> SecretsBlock:
    return SecretsBlock(offset, stype, offset + 16, len(text), frame, text)


def test_keys_as_read_by_frame_once_and_bounded(later, monkeypatch):
    lines = {n: "".join(f"{x}\n" for x in later.lines[n]).encode() for n in NAMES}
    cr = {n: bytes.fromhex(later.lines[n][0].split()[1]) for n in NAMES}
    given = KeyLog()
    given.add_bytes(lines[NAMES[0]], "x.pcapng DSB at byte 100")  # read before the scan
    keys = KeysAsRead(given)
    keys.add([_block(100, 1, lines[NAMES[0]]), _block(400, 3, lines[NAMES[1]]),
              _block(900, 7, b"garbage", SSH_KEYS)], "dir/x.pcapng")
    keys.add([_block(50, 5, lines[NAMES[2]])], "y.pcapng", frame_base=4)  # frame 9
    assert keys.for_frame(2) is given
    assert keys.for_frame(3).lookup(cr[NAMES[1]]).sources[0].startswith(
        "x.pcapng DSB at byte 400 line ")
    assert keys.for_frame(8).lookup(cr[NAMES[2]]) is None
    assert keys.for_frame(9).lookup(cr[NAMES[2]]) is not None
    assert len(keys.for_frame(9).lookup(cr[NAMES[0]]).sources) == len(later.lines[NAMES[0]])
    # past the bound, no block is used from the first that does not fit
    monkeypatch.setattr("fastcap.session.MAX_KEY_LOG_KEPT", len(lines[NAMES[1]]) + 10)
    small = KeysAsRead(None)
    small.add([_block(0, 1, lines[NAMES[1]]), _block(500, 2, lines[NAMES[0]]),
               _block(900, 3, b"")], "z.pcapng")
    assert small.for_frame(5).lookup(cr[NAMES[1]]) is not None
    assert small.for_frame(5).lookup(cr[NAMES[0]]) is None
    assert small.warnings == []


def test_garbled_line_of_a_later_block_is_a_warning_with_its_place(later, tmp_path):
    data = later.path.read_bytes()
    at = later.offsets[1]
    line = later.lines[NAMES[2]][0].encode()
    start = data.index(line, at)
    garbled = tmp_path / "garbled.pcapng"
    garbled.write_bytes(data[:start] + b"X" * len(line) + data[start + len(line):])
    o = with_keys(ScanOptions(), garbled)
    run = scan(garbled, o)
    one = _by_name(later, run)
    ranged = list(streamed.iter_scan(garbled, o, analyzer_for(o), jobs=2, parts=5,
                                     workers=False, out=(found := [])))
    dealt = split.split_scan(garbled, o, jobs=3, parts=6, executor=SerialExecutor())
    warnings = [list(run.summary.warnings), [str(w) for w in found[0].meta.warnings],
                [str(w) for w in dealt.meta.warnings]]
    assert warnings[0] == [f"{garbled}: TLS key log in secrets block, line 1: "
                           f"not a key log line at offset {at}"]
    assert warnings[1] == warnings[2] == warnings[0]
    assert _by_name(later, ranged) == _by_name(later, dealt.sessions) == one
    assert not one[NAMES[2]]["decryption"]["keys_found"]  # its one line was the garbled one
    assert one[NAMES[1]]["decryption"]["keys_found"]
    proc = _cli("scan", "--format", "json", "-j", "2", str(garbled))
    assert proc.returncode == 1 and b"TLS key log in secrets block, line 1" in proc.stderr


def test_key_logs_past_the_bound_are_a_warning_naming_the_block(later, monkeypatch):
    """Memory stays bounded by not keeping key logs past MAX_KEY_LOG_KEPT; the user is told
    which block was the first left out, and how to give those keys instead."""
    with Capture(later.path) as cap:
        for _ in cap.windows():
            pass
        first = cap.meta.secrets[0].data_len
    monkeypatch.setattr("fastcap.read.pcapng.MAX_KEY_LOG_KEPT", first)  # the first block fits
    with Capture(later.path) as cap:
        for _ in cap.windows():
            pass
        blocks, warnings = cap.meta.secrets, cap.meta.warnings
    keys = [b for b in blocks if b.secrets_type == TLS_KEY_LOG]
    assert keys[0].data and not keys[1].data
    dropped = [w for w in warnings if w.kind == "key_log_not_kept"]
    assert [w.offset for w in dropped] == [later.offsets[1]]
    assert "--keylog" in str(dropped[0])
