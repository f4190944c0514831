"""Child process for compare.py: the pure-Python way, a dpkt or scapy loop over a capture.

    python benchmarks/_pyreaders.py FILE dpkt|scapy

Walks every frame of a pcap or pcapng file, decodes Ethernet (802.1Q included), IPv4/IPv6 and
TCP, and counts the frames to or from TCP port 25 -- what `tcpdump 'tcp port 25'` selects and
where a hand-written script would start.  Prints JSON: frames, selected_frames and the seconds
the loop took after imports (compare.py scales them to the big file's size).
"""

from __future__ import annotations

import json
import sys
import time

PORT = 25


def dpkt_loop(path: str) -> dict:
    import dpkt

    t0 = time.perf_counter()
    frames = selected = 0
    with open(path, "rb") as fh:
        for _ts, buf in dpkt.pcap.UniversalReader(fh):  # pcap or pcapng, by magic
            frames += 1
            try:
                ip = dpkt.ethernet.Ethernet(buf).data  # 802.1Q tags are stripped here
            except (dpkt.UnpackError, IndexError):
                continue
            if not isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6):
                continue
            tcp = ip.data
            if isinstance(tcp, dpkt.tcp.TCP) and PORT in (tcp.sport, tcp.dport):
                selected += 1
    return {"frames": frames, "selected_frames": selected, "seconds": time.perf_counter() - t0}


def scapy_loop(path: str) -> dict:
    import logging

    logging.getLogger("scapy").setLevel(logging.ERROR)
    from scapy.layers.inet import TCP
    from scapy.utils import PcapReader

    t0 = time.perf_counter()
    frames = selected = 0
    with PcapReader(path) as reader:  # pcap or pcapng, by magic
        for pkt in reader:
            frames += 1
            tcp = pkt.getlayer(TCP)
            if tcp is not None and PORT in (tcp.sport, tcp.dport):
                selected += 1
    return {"frames": frames, "selected_frames": selected, "seconds": time.perf_counter() - t0}


def main() -> None:
    path, reader = sys.argv[1], sys.argv[2]
    loops = {"dpkt": dpkt_loop, "scapy": scapy_loop}
    if reader not in loops:
        raise SystemExit(f"unknown reader {reader}")
    print(json.dumps(loops[reader](path)))


if __name__ == "__main__":
    main()
