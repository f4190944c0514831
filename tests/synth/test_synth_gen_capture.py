"""benchmarks/gen_capture.py: the truth file must match what tshark finds in the capture."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import defaultdict
from pathlib import Path

import pytest

_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gen_capture.py"


@pytest.fixture(scope="module")
def gen_capture():
    spec = importlib.util.spec_from_file_location("gen_capture", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being defined
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_parse_size(gen_capture):
    assert gen_capture.parse_size("5M") == 5 << 20
    assert gen_capture.parse_size("2G") == 2 << 30
    assert gen_capture.parse_size("1.5k") == 1536
    assert gen_capture.parse_size("123") == 123


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_truth_matches_tshark(gen_capture, tmp_path, run_tshark, run_capinfos, fmt):
    out = tmp_path / f"bench.{fmt}"
    argv = [str(out), "--size", "5M", "--format", fmt, "--smtp-sessions", "60", "--seed", "11"]
    assert gen_capture.main(argv) == 0
    truth = json.loads(out.with_name(out.name + ".truth.json").read_text())
    assert truth["format"] == fmt and truth["bytes"] == out.stat().st_size
    assert abs(truth["bytes"] - (5 << 20)) < (5 << 20) * 0.05
    assert f"Number of packets:   {truth['frames']}" in run_capinfos("-c", str(out))
    sessions = truth["smtp_sessions"]
    assert truth["port25"]["flows"] == len(sessions) == 60

    rows = [
        r.split("|")
        for r in run_tshark(
            "-r", str(out), "-Y", "tcp.port==25", "-T", "fields", "-E", "separator=|",
            "-e", "frame.number", "-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport",
            "-e", "tcp.stream", "-e", "tcp.flags.str", "-e", "tcp.analysis.flags",
            "-e", "tls.handshake.type", "-e", "vlan.id",
        )
    ]  # fmt: skip
    assert len(rows) == truth["port25"]["frames"]
    assert all(r[6] == "" for r in rows), "replayed sessions must have consistent seq/ack"
    streams: dict[str, list[list[str]]] = defaultdict(list)
    for r in rows:
        streams[r[4]].append(r)
    assert len(streams) == len(sessions)

    syns = {}
    hs_types = {}
    for frames in streams.values():
        first = frames[0]
        assert first[5].replace("\u00b7", "") == "S"
        src = first[1] or first[2]
        client = f"[{src}]:{first[3]}" if first[2] else f"{src}:{first[3]}"
        syns[client] = (int(first[0]), len(frames), bool(first[8]))
        hs_types[client] = {t for f in frames for t in f[7].split(",") if t}
    for s in sessions:
        assert syns[s["client"]] == (s["first_frame"], s["frames"], s["vlan"]), s
        requested_12 = s["client_cert_requested"] and s["tls_version"] == "TLSv1.2"
        assert ("13" in hs_types[s["client"]]) == requested_12, s
        if s["tls_version"] is None:
            assert not hs_types[s["client"]] and s["client_cert_cn"] is None
    assert [s["first_frame"] for s in sessions] == sorted(s["first_frame"] for s in sessions)
    assert {s["scenario"] for s in sessions} >= {"ok_client_cert", "no_client_cert"}

    kinds = run_tshark("-r", str(out), "-T", "fields", "-E", "separator=|",
                   "-e", "vlan.id", "-e", "ipv6.src", "-e", "dns.id")  # fmt: skip
    cols = [k.split("|") for k in kinds]
    share = {name: sum(bool(c[i]) for c in cols) / len(cols) for i, name in
             enumerate(("vlan", "ipv6", "dns"))}  # fmt: skip
    assert 0.01 < share["vlan"] < 0.15 and 0.01 < share["ipv6"] < 0.15 and share["dns"] > 0.005
