"""A ring buffer with compressed members (a job gzipping closed files, say)
is still one capture: a compressed member is joined to the files beside it as if it were
not compressed.  A file that cannot be joined (a pipe; a compressed file under an executor)
keeps the files on either side of it apart."""

from __future__ import annotations

import dataclasses
import errno
import gzip
import json
import mmap
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import lz4.frame
import numpy as np
import pytest
import zstandard

from fastcap.read.pcapng import TLS_KEY_LOG
from fastcap.read.secrets import leading_secrets
from fastcap.run import compressed
from fastcap.run.scanner import scan, scan_files
from fastcap.run.workers import SerialExecutor
from fastcap_synth.scenarios import keyed_conversations, make_pki
from fastcap_synth.smtpgen import render
from fastcap_synth.writers import PcapngWriter, keylog_bytes

from .gencap import generate
from .test_ring import CA, split_pcap


@pytest.fixture(scope="module")
def ring(tmp_path_factory):
    """Four ring files cut from one capture, the third (which most sessions reach) also
    gzipped."""
    d = tmp_path_factory.mktemp("packed")
    whole = generate(d, size="3M", sessions=60, seed=21)["pcap"]
    files, _ = split_pcap(whole, d, 4)
    gz = d / "ring_00002.pcap.gz"
    gz.write_bytes(gzip.compress(files[2].read_bytes(), compresslevel=1))
    return files, gz


def _dicts(results, gz: Path | None = None, plain: Path | None = None) -> list[list[dict]]:
    """Each file's sessions as dicts, the compressed file's name read as the plain one's."""
    text = json.dumps([[s.to_dict() for s in r.sessions] for r in results])
    if gz is not None:
        text = text.replace(json.dumps(str(gz))[1:-1], json.dumps(str(plain))[1:-1])
        text = text.replace(gz.name, plain.name)  # as key sources name it
    return json.loads(text)


@pytest.mark.parametrize("jobs, parts", [(1, None), (3, 5)])
def test_a_compressed_member_is_joined_as_if_it_were_not_compressed(ring, jobs, parts):
    files, gz = ring
    plain = scan_files(files, ca_file=CA, jobs=1)
    got = scan_files([*files[:2], gz, files[3]], ca_file=CA, jobs=jobs, parts=parts)
    assert [r.error for r in got] == [None] * 4
    assert _dicts(got, gz, files[2]) == _dicts(plain)
    assert any(str(gz) in map(str, s.continues_into) for s in got[0].sessions)
    assert sum(len(r.sessions) for r in got) == 60  # no session reported in pieces
    # its totals are those of the file read on its own, but for the sessions it begins
    run = scan(gz, ca_file=CA)
    list(run)
    alone = run.summary
    joined = got[2].summary.to_dict()
    differ = {k for k, v in alone.to_dict().items() if joined[k] != v}
    assert differ <= {"sessions", "with_problems", "verdicts"}


def test_payloads_past_the_memory_bound_go_to_a_temporary_file(ring, monkeypatch):
    files, gz = ring
    task = compressed.task(str(gz), frozenset([25]))
    windows = []
    copy = compressed.carried
    monkeypatch.setattr(compressed, "carried", lambda *a, **k: windows.append(1) or copy(*a, **k))
    held = compressed.read(task)
    assert len(windows) == 1  # one piece of 16 MiB holds the whole file
    spilled = compressed.read(replace(task, piece=4096), spill_after=0)
    assert len(windows) > 10  # each piece's payloads are copied before the next is read
    assert isinstance(held.payload, bytes) and isinstance(spilled.payload, mmap.mmap)
    assert bytes(spilled.payload) == held.payload and len(held.payload) > 10_000
    for f in ("frame_no", "payload_file_off", "payload_caplen", "seq"):
        assert np.array_equal(getattr(spilled.cols, f), getattr(held.cols, f))
    # the whole ring judged on spilled payloads, read in small pieces, is the plain ring's
    monkeypatch.setattr(compressed, "SPILL_AFTER", 0)
    windows.clear()
    got = scan_files([*files[:2], gz, files[3]], ca_file=CA, jobs=1, piece=4096)
    assert len(windows) > 10  # the scan's `piece` is the compressed member's
    assert _dicts(got, gz, files[2]) == _dicts(scan_files(files, ca_file=CA, jobs=1))
    python = scan_files([*files[:2], gz, files[3]], ca_file=CA, jobs=1, backend="python")
    assert _dicts(python) == _dicts(got)  # the pure-Python reassembler reads the mapping too


def test_a_damaged_member_warns_and_the_ring_goes_on(ring, tmp_path):
    files, gz = ring
    cut = tmp_path / gz.name
    cut.write_bytes(gz.read_bytes()[: gz.stat().st_size // 2])
    got = scan_files([*files[:2], cut, files[3]], ca_file=CA, jobs=1)
    assert [r.error for r in got] == [None] * 4
    assert any("unreadable after decompressed offset" in w for w in got[2].summary.warnings)
    run = scan(cut, ca_file=CA)
    list(run)
    assert 0 < got[2].summary.frames == run.summary.frames
    run = scan(files[3], ca_file=CA)  # the file after it is read whole
    list(run)
    assert got[3].summary.frames == run.summary.frames > 0


def _alone(path) -> list[dict]:
    return [s.to_dict() for s in scan(path, ca_file=CA)]


def test_under_an_executor_a_compressed_member_is_joined_as_one_job_joins_it(ring):
    """An executor's scan (a Dask cluster's) reads a ring's compressed member in this process
    and joins it to the files around it, as `-j 1` does: the same sessions, the one spanning
    the member reported once, and a compressed file given alone is still read whole."""
    files, gz = ring
    paths = [*files[:2], gz, files[3]]
    got = scan_files(paths, ca_file=CA, executor=SerialExecutor())
    assert [r.error for r in got] == [None] * 4
    local = _dicts(scan_files(paths, ca_file=CA, jobs=1))
    assert _dicts(got) == local
    assert _dicts(got) != [*_dicts(scan_files(files[:2], ca_file=CA, jobs=1)), _alone(gz),
                           _alone(files[3])]  # joined, not read apart
    assert _dicts(scan_files([gz], ca_file=CA, executor=SerialExecutor()))[0] == _alone(gz)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
@pytest.mark.parametrize("jobs", [1, 2])
def test_a_pipe_between_ring_files_keeps_them_apart(ring, tmp_path, jobs):
    files, _gz = ring
    fifo = tmp_path / "ring_00002.fifo"
    os.mkfifo(fifo)
    # written by another process: workers forked while a thread of this one writes would
    # copy a process that Python 3.12 and later warn may deadlock
    copy = ("import shutil, sys; "
            "shutil.copyfileobj(open(sys.argv[1], 'rb'), open(sys.argv[2], 'wb'))")
    writer = subprocess.Popen([sys.executable, "-c", copy, str(files[2]), str(fifo)])
    got = scan_files([*files[:2], fifo, files[3]], ca_file=CA, jobs=jobs)
    assert writer.wait(30) == 0
    assert [r.error for r in got] == [None] * 4
    assert _dicts(got)[:2] == _dicts(scan_files(files[:2], ca_file=CA, jobs=1))
    assert _dicts(got)[2] == _alone(files[2])
    assert _dicts(got)[3] == _alone(files[3])


def test_files_named_apart_are_not_joined(ring):
    files, _gz = ring
    got = scan_files(files, ca_file=CA, jobs=1, apart={2})
    assert _dicts(got)[:2] == _dicts(scan_files(files[:2], ca_file=CA, jobs=1))
    assert _dicts(got)[2:] == _dicts(scan_files(files[2:], ca_file=CA, jobs=1))
    assert _dicts(got) != _dicts(scan_files(files, ca_file=CA, jobs=1))


@pytest.fixture(scope="module")
def keyed_ring(tmp_path_factory):
    """Three pcapng ring files, the last beginning with a Decryption Secrets Block, and that
    file gzipped: its keys are read before the scan whether it is compressed or not."""
    d = tmp_path_factory.mktemp("keyed")
    names = ("keys_tls12_gcm_cert", "keys_tls13_aes128_cert", "keys_tls12_chacha_nocert")
    start = time.time_ns() - 3600 * 10**9
    flows, lines = [], {}
    for i, (sc, conv) in enumerate(keyed_conversations(make_pki(), names)):
        sc = dataclasses.replace(sc, start_ns=start + i * 10**10)
        flows.append(render(conv, sc))
        lines[sc.name] = list(conv.keylog)
    a, b, c = flows

    def write(path: Path, parts) -> Path:
        with PcapngWriter(path) as w:
            w.section()
            w.interface(1)
            for part in parts:
                if isinstance(part, tuple):  # names whose keys a block carries
                    w.dsb(TLS_KEY_LOG, keylog_bytes([x for n in part for x in lines[n]]))
                else:
                    for r in part:
                        w.epb(0, r.data, ts_ns=r.ts_ns, orig_len=r.orig_len)
        return path

    hb, hc = len(b) // 2, len(c) // 2
    files = [write(d / "ring_00000.pcapng", [a, names[:2], b[:hb]]),
             write(d / "ring_00001.pcapng", [b[hb:], c[:hc]]),
             write(d / "ring_00002.pcapng", [names[2:], c[hc:]])]
    gz = d / "ring_00002.pcapng.gz"
    gz.write_bytes(gzip.compress(files[2].read_bytes()))
    return files, gz


def test_a_compressed_members_leading_keys_are_read_before_the_scan(keyed_ring):
    files, gz = keyed_ring
    ahead = leading_secrets(files[2])
    assert len(ahead) == 1 and ahead[0][1] == f"{files[2].name} DSB at byte 48"
    assert leading_secrets(gz) == [(ahead[0][0], f"{gz.name} DSB at byte 48")]
    data = files[2].read_bytes()
    for packed in (gz.with_suffix(".zst"), gz.with_suffix(".lz4")):  # read forward only
        packed.write_bytes(zstandard.compress(data) if packed.suffix == ".zst"
                           else lz4.frame.compress(data))
        assert leading_secrets(packed) == [(ahead[0][0], f"{packed.name} DSB at byte 48")]
    for jobs in (1, 2):
        plain = scan_files(files, jobs=jobs)
        packed = scan_files([*files[:2], gz], jobs=jobs)
        assert _dicts(packed, gz, files[2]) == _dicts(plain)
        assert [r.summary.to_dict()["verdicts"] for r in packed] == \
            [r.summary.to_dict()["verdicts"] for r in plain]
        # the last file's block serves the session that ends after it, in the file before
        (c,) = plain[1].sessions
        assert c.decryption is not None and c.decryption.keys_found
        # ... and no session that ended before a block: none was given keys, as in one file
        a = plain[0].sessions[0]
        assert a.decryption is None
        assert "no_key_for_session" not in [v.code for v in a.verdicts]


_TEMPORARY_FILE = tempfile.TemporaryFile  # the real one, which the test replaces


class _FullDisk:
    """An unbuffered temporary file on a disk that fills after `room` bytes."""

    def __init__(self, room: int) -> None:
        self._file = _TEMPORARY_FILE(buffering=0)
        self._room = room

    def write(self, data) -> int:
        if len(data) > self._room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(data)
        return self._file.write(data)

    def __getattr__(self, name):
        return getattr(self._file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()


@pytest.mark.parametrize("room", [None, 0, 5000])
def test_a_member_whose_payloads_find_no_room_is_one_error_and_the_ring_goes_on(
        ring, monkeypatch, room):
    files, gz = ring

    def temporary(**_kw):
        if room is None:  # no usable temporary directory at all
            raise FileNotFoundError(errno.ENOENT, "No usable temporary directory found")
        return _FullDisk(room)

    monkeypatch.setattr(compressed, "SPILL_AFTER", 0)
    monkeypatch.setattr(compressed.tempfile, "TemporaryFile", temporary)
    got = scan_files([*files[:2], gz, files[3]], ca_file=CA, jobs=1)
    assert got[2].error == (
        f"{gz}: cannot keep the payloads of its SMTP frames in a temporary file "
        f"({'No usable temporary directory found' if room is None else 'No space left on device'})"
        f": set TMPDIR to a directory with room")
    assert got[2].sessions == ()
    assert _dicts(got)[:2] == _dicts(scan_files(files[:2], ca_file=CA, jobs=1))
    assert _dicts(got)[3] == _alone(files[3])  # read after it, on its own
