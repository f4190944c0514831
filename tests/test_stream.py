"""Compressed captures (gzip, zstd, lz4, found by magic), pipes and stdin: read in pieces,
they must give exactly what the decompressed file gives, with memory bounded by the piece."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import lz4.frame
import pytest
import zstandard

from fastcap.errors import CaptureError
from fastcap.read import stream as stream_module
from fastcap.read.stream import PIECE, StreamCapture, compression_of, needs_stream
from fastcap.run.scanner import scan
from fastcap.select.stats import compute_stats

from .corpus import corpus_params
from .gencap import generate

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
CA = str(EXAMPLES / "test-root.pem")

COMPRESS = {"gz": lambda d: gzip.compress(d, 1), "zst": zstandard.ZstdCompressor().compress,
            "lz4": lz4.frame.compress}


def _result(path, **kw):
    run = scan(path, ca_file=CA, **kw)
    sessions = [s.to_dict() for s in run]
    doc = json.dumps([sessions, run.summary.to_dict()])
    return json.loads(doc.replace(json.dumps(str(path))[1:-1], "<capture>"))


def _stats(path, **kw) -> dict:
    d = compute_stats(path, **kw).to_dict()
    for k in ("path", "backend", "size", "compression"):
        d.pop(k)
    d["warnings"] = [w.replace(str(path), "<capture>") for w in d["warnings"]]
    return d


def _compressed(src: Path, dst_dir: Path, kind: str) -> Path:
    dst = dst_dir / f"{src.name}.{kind}"
    dst.write_bytes(COMPRESS[kind](src.read_bytes()))
    return dst


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict[str, Path]:
    """Generated captures (background traffic + SMTP sessions), pcap and pcapng."""
    return generate(tmp_path_factory.mktemp("gen"), size="2M", sessions=40, seed=9)


def test_magic_not_name_decides(tmp_path):
    src = EXAMPLES / "all-scenarios.pcapng"
    assert compression_of(gzip.compress(b"x")) == "gzip"
    assert compression_of(zstandard.ZstdCompressor().compress(b"x")) == "zstd"
    assert compression_of(lz4.frame.compress(b"x")) == "lz4"
    assert compression_of(src.read_bytes()) is None
    odd = tmp_path / "capture.pcapng"  # a gzip file with a capture's name
    odd.write_bytes(gzip.compress(src.read_bytes()))
    assert needs_stream(odd) and not needs_stream(src) and needs_stream("-")
    assert _result(odd) == _result(src)


@pytest.mark.parametrize("path", corpus_params())
def test_every_corpus_file_gzipped_reads_the_same(path, tmp_path):
    try:
        plain = _stats(path)
    except CaptureError as e:
        with pytest.raises(CaptureError) as got:
            _stats(_compressed(path, tmp_path, "gz"), piece=4096)
        assert str(got.value).split(": ", 1)[1] == str(e).split(": ", 1)[1]
        return
    gz = _compressed(path, tmp_path, "gz")
    assert _stats(gz, piece=4096) == plain
    assert _result(gz, piece=4096) == _result(path)


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_generated_capture_in_small_pieces(generated, tmp_path, fmt):
    path = generated[fmt]
    packed = _compressed(path, tmp_path, "gz")
    whole = _result(path)
    assert len(whole[0]) == 40
    for piece in (300, 5000, 65536, PIECE):  # 300 B: most records span pieces
        assert _result(packed, piece=piece) == whole, f"piece {piece}"
    assert _stats(packed, piece=777) == _stats(path)


@pytest.mark.parametrize("kind", sorted(COMPRESS))
@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_every_compression_reads_the_same(generated, tmp_path, kind, fmt):
    path = generated[fmt]
    packed = _compressed(path, tmp_path, kind)
    assert _result(packed, piece=4096) == _result(path)


def test_memory_stays_within_two_pieces(generated, tmp_path):
    packed = _compressed(generated["pcap"], tmp_path, "gz")
    piece = 64 * 1024
    seen = []
    with StreamCapture(packed, piece=piece) as cap:
        for _win in cap.windows():
            seen.append(len(cap.buffer))
    assert len(seen) > 20 and max(seen) <= 2 * piece
    assert cap.meta.size == generated["pcap"].stat().st_size and cap.meta.compression == "gzip"


def test_stdin_and_pipe(generated, tmp_path):
    src = generated["pcapng"]
    packed = _compressed(src, tmp_path, "zst")

    def cli(*args, stdin=None):
        return subprocess.run([sys.executable, "-m", "fastcap.cli", "scan", "--ca-file", CA,
                               "--format", "jsonl", *args], stdin=stdin, capture_output=True,
                              text=True, timeout=300)

    direct = cli(str(src))
    with open(packed, "rb") as f:
        piped = cli("-", stdin=f)
    assert piped.returncode == direct.returncode and piped.stderr == ""
    strip = [{**json.loads(line), "file": None} for line in direct.stdout.splitlines()]
    got = [json.loads(line) for line in piped.stdout.splitlines()]
    assert [g["file"] for g in got] == ["-"] * 40
    assert [{**g, "file": None} for g in got] == strip
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    feeder = threading.Thread(target=lambda: fifo.write_bytes(src.read_bytes()))
    feeder.start()
    res = cli(str(fifo))
    feeder.join()
    assert [{**json.loads(line), "file": None} for line in res.stdout.splitlines()] == strip


def test_cut_compressed_file_keeps_what_was_read(generated, tmp_path):
    """A gzip file cut short is read like a cut capture: every record before the cut is
    scanned, and a warning names the file and the decompressed offset reached."""
    raw = generated["pcap"].read_bytes()
    data = gzip.compress(raw, 1)
    cut = tmp_path / "cut.pcap.gz"
    cut.write_bytes(data[: len(data) // 2])
    run = scan(cut, ca_file=CA)
    got = list(run)
    summary = run.summary
    assert 5 < len(got) < 40
    (warning,) = [w for w in summary.warnings if "decompressed offset" in w]
    assert warning.startswith(f"{cut}: gzip data unreadable after decompressed offset ")
    reached = int(warning.split("decompressed offset ")[1].split(":")[0])
    assert len(raw) // 3 < reached < len(raw)
    r = subprocess.run([sys.executable, "-m", "fastcap.cli", "scan", "--ca-file", CA,
                        "--format", "jsonl", str(cut)], capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert len(r.stdout.splitlines()) == len(got)


def test_concatenated_members_and_damage_inside(generated, tmp_path):
    raw = generated["pcapng"].read_bytes()
    half = len(raw) // 2
    members = tmp_path / "two.pcapng.gz"  # what `cat a.gz b.gz` makes
    members.write_bytes(gzip.compress(raw[:half]) + gzip.compress(raw[half:]))
    assert _result(members, piece=4096) == _result(generated["pcapng"])
    zc = zstandard.ZstdCompressor(write_checksum=True)  # 64 KiB frames, as seekable zstd
    frames = [zc.compress(raw[i:i + 65536]) for i in range(0, len(raw), 65536)]
    at = sum(map(len, frames[: len(frames) // 2])) + 20
    data = bytearray(b"".join(frames))
    data[at: at + 64] = bytes(64)
    bad = tmp_path / "bad.pcapng.zst"
    bad.write_bytes(bytes(data))
    run = scan(bad, ca_file=CA)
    assert 5 < len(list(run)) < 40
    assert any("zstd data unreadable" in w for w in run.summary.warnings)


def test_not_a_capture_inside_the_compression(tmp_path):
    p = tmp_path / "notes.txt.gz"
    p.write_bytes(gzip.compress(b"hello, this is not a capture\n" * 10))
    with pytest.raises(CaptureError, match="not a pcap or pcapng file"):
        list(scan(p, ca_file=CA))
    empty = tmp_path / "empty.gz"
    empty.write_bytes(gzip.compress(b""))
    with pytest.raises(CaptureError, match="empty stream"):
        list(scan(empty, ca_file=CA))
    garbage = tmp_path / "garbage.gz"
    garbage.write_bytes(b"\x1f\x8b" + bytes(range(256)) * 4)
    with pytest.raises(CaptureError, match="cannot decompress") as e:
        list(scan(garbage, ca_file=CA))
    assert str(e.value).startswith(str(garbage))


def _before_damage(data: bytes) -> int:
    """Decompressed bytes zlib gives for a gzip stream fed one byte at a time, up to the byte
    where it finds damage."""
    d, n = zlib.decompressobj(wbits=31), 0
    for i in range(len(data)):
        try:
            n += len(d.decompress(data[i: i + 1]))
        except zlib.error:
            break
    return n


@pytest.mark.parametrize("where", ["checksum", "inside"])
def test_damaged_gzip_gives_every_byte_before_the_damage(generated, tmp_path, where):
    """zlib gives nothing for a call that raises: the bytes a read inflated before the
    damage are had again from a copy of its state, up to the byte where the damage lies."""
    raw = generated["pcap"].read_bytes()
    data = bytearray(gzip.compress(raw, 1))
    if where == "checksum":
        data[-8] ^= 0xFF  # the CRC-32 of the trailer: every byte of the capture is intact
    else:
        intact = bytes(data)
        for at in range(len(data) // 3, len(data) - 24, 997):
            # a run of ones that zlib rejects (not one it inflates to garbage)
            data = bytearray(intact)
            data[at: at + 16] = b"\xff" * 16
            try:
                zlib.decompress(bytes(data), wbits=31)
            except zlib.error as e:
                if "incorrect data check" not in str(e):
                    break
        else:
            pytest.fail("no run of ones that zlib rejects")
    bad = tmp_path / f"{where}.pcap.gz"
    bad.write_bytes(bytes(data))
    run = scan(bad, ca_file=CA)
    sessions = [s.to_dict() for s in run]
    summary = run.summary
    (warning,) = [w for w in summary.warnings if "decompressed offset" in w]
    reached = int(warning.split("decompressed offset ")[1].split(":")[0])
    assert reached == _before_damage(bytes(data))
    if where == "checksum":
        assert reached == len(raw)
        whole = scan(generated["pcap"], ca_file=CA)
        assert sessions == [s.to_dict() for s in whole]
        assert summary.frames == whole.summary.frames
    else:
        assert 0 < reached < len(raw)


def test_damage_in_one_zstd_frame_keeps_what_came_before(generated, tmp_path):
    """A zstd frame's state cannot be copied: it is fed in steps, so damage costs at most
    one step's output, not the whole frame."""
    raw = generated["pcapng"].read_bytes()
    data = bytearray(zstandard.ZstdCompressor(level=1, write_checksum=True).compress(raw))
    at = min(len(data) // 2, 200_000)  # within the first read of the file
    data[at: at + 64] = bytes(64)
    bad = tmp_path / "one-frame.pcapng.zst"
    bad.write_bytes(bytes(data))
    run = scan(bad, ca_file=CA)
    assert len(list(run)) > 5
    (warning,) = [w for w in run.summary.warnings if "decompressed offset" in w]
    assert 0 < int(warning.split("decompressed offset ")[1].split(":")[0]) < len(raw)


def _zstd_before_damage(data: bytes, step: int = 1024) -> tuple[int, int]:
    """(compressed offset of the first output, bytes given before the damage) by a zstd
    decompressor fed `step` bytes at a time."""
    d, n, first = zstandard.ZstdDecompressor().decompressobj(), 0, None
    for at in range(0, len(data), step):
        try:
            got = len(d.decompress(data[at: at + step]))
        except zstandard.ZstdError:
            break
        if got and first is None:
            first = at
        n += got
    return first, n


def test_damage_early_in_a_highly_compressed_zstd_frame_keeps_what_came_before(
        generated, tmp_path):
    """A capture inflates 10-fold and more: fixed 64 KiB steps lost up to a megabyte before
    the damage (all of it, in the frame's first step: no capture at all).  Steps are sized by
    the ratio, so about one zstd block is lost."""
    raw = generated["pcap"].read_bytes()
    data = bytearray(zstandard.ZstdCompressor(level=3, write_checksum=True).compress(raw))
    assert len(raw) > 10 * len(data)
    first, _ = _zstd_before_damage(bytes(data))
    at = first + 24_000
    assert at + 64 < 64 << 10
    data[at: at + 64] = bytes(64)
    _, before = _zstd_before_damage(bytes(data))
    assert 512 << 10 < before < len(raw)  # damage zstd finds, deep into the capture
    bad = tmp_path / "early.pcap.zst"
    bad.write_bytes(bytes(data))
    (warning,) = [w for w in compute_stats(bad).warnings if "decompressed offset" in w]
    reached = int(warning.split("decompressed offset ")[1].split(":")[0])
    assert before - (256 << 10) <= reached <= before


def test_an_unexpected_error_while_decompressing_ends_the_stream_not_the_scan(
        generated, tmp_path, monkeypatch):
    """The decompressing thread hands on whatever it raises: a reader waiting for its next
    chunk would otherwise wait for ever."""
    gz = _compressed(generated["pcap"], tmp_path, "gz")

    class Failing:
        """zlib's decompressor, whose `eof` breaks after a few reads."""

        def __init__(self) -> None:
            self._d = zlib.decompressobj(wbits=31)
            self.unused_data, self.calls = b"", 0

        def decompress(self, data):
            self.calls += 1
            return self._d.decompress(data)

        @property
        def eof(self) -> bool:
            if self.calls > 8:  # past the reads of the head, in the decompressing thread
                raise TypeError("a decompressor's own bug")
            return self._d.eof

    monkeypatch.setattr(stream_module, "_decompressors", lambda kind, path: Failing)
    monkeypatch.setattr(stream_module, "_RAW_READ", 4096)  # a call per 4 KiB read
    run = scan(gz, ca_file=CA)
    done: list = []
    t = threading.Thread(target=lambda: done.append(list(run)), daemon=True)
    t.start()
    t.join(60)
    assert done, "the scan waited for ever"
    assert any("unreadable after decompressed offset" in w and "a decompressor's own bug" in w
               for w in run.summary.warnings)
