"""pcap files written by Nokia's IPSO, Red Hat 6.1's patched libpcap, Ixia's lcap and AIX's
libpcap: the first two use the standard magic with longer record headers, Ixia its own
magic with a 28-byte file header, AIX version 2.2 headers with an ifType for a link type
and nanosecond times.  Wireshark reads each (choosing the record form from the first
records where the magic leaves a choice); so does fastcap, in both walkers and in ranges,
as it reads the same records in a standard pcap."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from fastcap.read.capture import Capture

from .gencap import generate
from .test_concatenated import _sessions
from .test_modified_pcap import _columns
from .test_split import _streamed
from .test_undated import _records

NOKIA_STUFF = 0x9FBFB601  # the form Wireshark checks for: 0xXfbfYZ0W


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("var"), size="1M", sessions=15, seed=19)["pcap"]


def _variant(records, variant: str, big: bool) -> bytes:
    """`records` as `variant` writes them, in the byte order `big` says."""
    o = ">" if big else "<"
    magic = {"ixia_hw": 0x1C0001AC, "ixia_sw": 0x1C0001AB}.get(variant, 0xA1B2C3D4)
    minor, linktype = (2, 6) if variant == "aix" else (4, 1)
    out = [struct.pack(o + "IHHiIII", magic, 2, minor, 0, 0, 262144, linktype)]
    if variant.startswith("ixia"):
        out.append(struct.pack(o + "I", sum(16 + len(p) for *_, p in records)))
    for i, (sec, usec, orig, pkt) in enumerate(records):
        frac = usec * 1000 if variant in ("aix", "ixia_hw") else usec
        lens = (orig, len(pkt)) if variant == "aix" else (len(pkt), orig)  # 2.2: old order
        head = struct.pack(o + "IIII", sec, frac, *lens)
        if variant == "nokia":
            head += struct.pack("=I", NOKIA_STUFF)
        elif variant == "redhat":
            head += struct.pack(o + "IHBB", 2 + i % 3, 0x0800, i % 5, 0)
        out.append(head + pkt)
    return b"".join(out)


def _read(path: Path, backend: str) -> tuple[list[tuple], list[int]]:
    """Each frame's columns (no warnings) and the link type of each interface."""
    with Capture(path, backend=backend) as cap:
        linktypes = [i.linktype for i in cap.meta.interfaces] if list(cap.windows()) else []
    return _columns(path, backend), linktypes


VARIANTS = ["nokia", "redhat", "ixia_hw", "ixia_sw", "aix"]


@pytest.mark.parametrize("backend", ["native", "python"])
@pytest.mark.parametrize("big", [False, True])
@pytest.mark.parametrize("variant", VARIANTS)
def test_a_variant_pcap_reads_as_the_standard_one(plain, tmp_path, backend, variant, big):
    """Every frame, time, length, leading byte and the link type as in the standard file;
    before, Ixia's was refused as not a capture, AIX's read as Token Ring with times a
    thousand times too large, and the others framed from the wrong offsets."""
    var = tmp_path / f"{variant}.pcap"
    var.write_bytes(_variant(_records(plain.read_bytes()), variant, big))
    want = _read(plain, backend)
    assert len(want[0]) > 500 and want[1] == [1] and _read(var, backend) == want


@pytest.mark.parametrize("variant", VARIANTS)
def test_ranges_of_a_variant_pcap_give_one_walks_sessions(plain, tmp_path, variant):
    """`-j N` begins its ranges at this form's records (after Ixia's longer header too)."""
    var = tmp_path / f"{variant}.pcap"
    var.write_bytes(_variant(_records(plain.read_bytes()), variant, False))
    whole, want = _sessions(var), _sessions(plain)
    assert len(whole[0]) > 10
    assert [{**s, "file": str(plain)} if "file" in s else s for s in whole[0]] == want[0]
    assert whole[1]["frames"] == want[1]["frames"]
    assert _streamed(var, 5) == whole


@pytest.mark.parametrize("variant", ["nokia", "redhat", "ixia_sw", "aix"])
def test_tshark_reads_the_same_frames(plain, tmp_path, variant, tshark):
    """tshark's frame times and lengths are fastcap's.  (Ixia's hardware form is left out:
    tshark 4.0 reads its nanoseconds as microseconds; later Wireshark reads them as
    nanoseconds, as fastcap does.)"""
    var = tmp_path / f"{variant}.pcap"
    var.write_bytes(_variant(_records(plain.read_bytes())[:300], variant, False))
    out = subprocess.run([tshark, "-r", str(var), "-T", "fields", "-e", "frame.time_epoch",
                          "-e", "frame.cap_len", "-e", "frame.len"], capture_output=True,
                         text=True, check=True).stdout.split("\n")
    theirs = [(int(t.replace(".", "")), int(c), int(n))  # tshark prints 9 decimals
              for t, c, n in (line.split("\t") for line in out if line)]
    rows = _columns(var, "python")
    assert len(rows) == 300 and [(r[1], r[2], r[3]) for r in rows] == theirs


def test_a_standard_pcap_is_not_taken_for_another_form(plain, tmp_path):
    """The standard form reads first and wins when its records read without a flaw, as
    Wireshark's choice goes; a file of a single record too."""
    from fastcap.read import pcap
    data = plain.read_bytes()
    hdr = pcap.parse_header(data[:pcap.MAX_HEADER_LEN])
    assert hdr.forms and pcap.with_records(hdr, data, len(data)).extra == 0
    one = data[:24 + 16 + struct.unpack_from("<I", data, 32)[0]]
    assert pcap.with_records(hdr, one, len(one)).extra == 0
