"""Captures concatenated byte for byte (`cat a.pcap b.pcap > both.pcap`): the second file's
header sits where a record should.  tshark stops there; fastcap reads on by that header's own
rules (byte order, time resolution), as one capture of the same records would read, and
says where the join is.  Another link type cannot share the file's frames: reading stops."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest

from fastcap.run.scanner import scan
from fastcap.select.stats import compute_stats

from .gencap import generate, new_isns
from .test_split import _split, _streamed
from .test_undated import _records

ROOT = Path(__file__).resolve().parents[1]
CA = str(ROOT / "examples" / "test-root.pem")
_SHIFT_S = 3600  # the second capture an hour after the first: new connections, same tuples
_ISN_SHIFT = 0x3A5F1C07  # and new ISNs (the same ones would be a replay: tshark's same streams)


@pytest.fixture(scope="module")
def first(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("cat"), size="2M", sessions=30, seed=11)["pcap"]


def _pcap(records, *, nanosecond: bool, big: bool = False, linktype: int = 1,
          shift_s: int = 0) -> bytes:
    """`records` as a pcap of the given rules, `shift_s` later."""
    o = ">" if big else "<"
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    out = [struct.pack(o + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype)]
    for sec, usec, orig, pkt in records:
        frac = usec * 1000 if nanosecond else usec
        out.append(struct.pack(o + "IIII", sec + shift_s, frac, len(pkt), orig) + pkt)
    return b"".join(out)


def _sessions(path: Path, **kw) -> tuple[list[dict], dict]:
    run = scan(path, ca_file=CA, **kw)
    got = [s.to_dict() for s in run]
    return got, run.summary.to_dict()


@pytest.mark.parametrize("backend", ["native", "python"])
@pytest.mark.parametrize("nanosecond,big", [(True, False), (True, True), (False, False)])
def test_an_appended_capture_reads_as_one_capture_of_the_same_records(
        first, tmp_path, backend, nanosecond, big):
    """The join reads as one nanosecond capture holding both files' records: the same
    sessions (frame numbers, times, verdicts), the same counts, and one warning at the
    second header.  Before, the header read as a frame stamped 2055 and the records after
    a nanosecond header were lost to a resync, or read with times off by up to 999 s."""
    data = first.read_bytes()
    recs = _records(data)
    again = [(s, u, o, new_isns(p, _ISN_SHIFT)) for s, u, o, p in recs]
    joined = tmp_path / "joined.pcap"
    joined.write_bytes(data + _pcap(again, nanosecond=nanosecond, big=big, shift_s=_SHIFT_S))
    one = tmp_path / "one.pcap"
    one.write_bytes(_pcap(recs + [(s + _SHIFT_S, u, o, p) for s, u, o, p in again],
                          nanosecond=True))
    got, summary = _sessions(joined, backend=backend)
    want, want_summary = _sessions(one, backend=backend)
    assert len(got) > 30 and got == [{**s, "file": str(joined)} if "file" in s else s
                                      for s in want]
    assert summary["frames"] == want_summary["frames"] == 2 * len(recs)
    # (the second capture's connections reuse the first's tuples, with new ISNs: any segment
    # read as a late one of the first's is read so in the one capture too)
    assert summary["unreadable"] == [] and summary["skipped"] == want_summary["skipped"]
    (w,) = summary["warnings"]
    assert w.startswith(f"{joined}: captures concatenated") and w.endswith(
        f"at offset {len(data)}")
    stats = compute_stats(joined, backend=backend)
    assert (stats.frames, stats.first_ts_ns, stats.last_ts_ns) == (
        2 * len(recs), *(lambda s: (s.first_ts_ns, s.last_ts_ns))(compute_stats(one)))


@pytest.mark.parametrize("first_ns", [False, True])
def test_split_and_streamed_reads_agree_past_the_join(first, tmp_path, first_ns):
    """Ranges that begin after the join are guessed with the first header's rules (a
    microsecond record reads as a nanosecond one); the stitch reads them again with the
    second's, so `-j N` and a stream of pieces give what one walk gives."""
    recs = _records(first.read_bytes())
    data = _pcap(recs, nanosecond=first_ns)
    joined = tmp_path / "joined.pcap"
    joined.write_bytes(data + _pcap(recs, nanosecond=not first_ns, shift_s=_SHIFT_S))
    whole = _sessions(joined)
    assert _streamed(joined, 9) == whole  # `scan -j 3` of the file in nine ranges
    assert _split(joined, 9) == whole  # the same dealt to an executor's tasks
    packed = tmp_path / "joined.pcap.gz"
    packed.write_bytes(gzip.compress(joined.read_bytes(), 1))
    # the first piece ends 20 bytes into the second header: more than a record header,
    # less than a file header
    got, summary = _sessions(packed, piece=len(data) + 20)
    assert [{**s, "file": str(joined)} if "file" in s else s for s in got] == whole[0]
    assert summary["frames"] == whole[1]["frames"] == 2 * len(_records(data))
    assert summary["skipped"] == whole[1]["skipped"] and len(summary["warnings"]) == 1


@pytest.mark.parametrize("backend", ["native", "python"])
def test_a_capture_of_another_link_type_stops_the_read_at_its_header(first, tmp_path,
                                                                        backend):
    data = first.read_bytes()
    recs = _records(data)
    joined = tmp_path / "sll.pcap"
    joined.write_bytes(data + _pcap(recs, nanosecond=False, linktype=113))
    stats = compute_stats(joined, backend=backend)
    assert stats.frames == len(recs)
    assert stats.skipped == {"capture of another link type appended": 1}
    (w,) = stats.warnings
    assert "link type 113" in w and "stopped reading" in w and w.endswith(
        f"at offset {len(data)}")
    assert _sessions(joined, backend=backend)[0] == [
        {**s, "file": str(joined)} if "file" in s else s for s in _sessions(first)[0]]
    # read as a stream, the pieces after the header are not read: told and counted once
    packed = tmp_path / "sll.pcap.gz"
    packed.write_bytes(gzip.compress(joined.read_bytes(), 1))
    for piece in (256, len(data) + 20):
        summary = _sessions(packed, backend=backend, piece=piece)[1]
        assert summary["skipped"] == {"capture of another link type appended": 1}, piece
        assert len(summary["warnings"]) == 1 and summary["frames"] == len(recs), piece


@pytest.mark.parametrize("backend", ["native", "python"])
@pytest.mark.parametrize("frac", [0, 5, 0x00040001])
def test_a_packet_stamped_with_a_magic_number_is_a_packet(tmp_path, backend, frac):
    """Only a magic number followed by a pcap version (2.0-2.4) is a header: a record
    stamped 0xD4C3B2A1 (2083) with any other fraction is read as the packet it is."""
    path = tmp_path / "2083.pcap"
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
                     + struct.pack("<IIII", 0xD4C3B2A1, frac, 14, 14) + bytes(14))
    stats = compute_stats(path, backend=backend)
    assert (stats.frames, stats.warnings) == (1, ())
    assert stats.first_ts_ns == 0xD4C3B2A1 * 10**9 + frac * 1000
