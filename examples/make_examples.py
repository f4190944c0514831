"""Regenerate the bundled example captures from real OpenSSL handshakes.

    python examples/make_examples.py

Each run makes fresh keys, so the files differ byte for byte between runs but always show
the same situations.  Capture time is "now", inside the certificates' validity (except the
deliberately expired one).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for fastcap_synth
from fastcap_synth.scenarios import SCENARIO_NAMES, make_pki, scenario
from fastcap_synth.smtpgen import smtp_records
from fastcap_synth.writers import PcapngWriter, write_pcap

HERE = Path(__file__).resolve().parent


def main() -> None:
    now = dt.datetime.now(dt.UTC)
    pki = make_pki(now)
    start = time.time_ns() - 3600 * 10**9
    seed = scenario("no_client_cert", pki, start_ns=start, client_ip="10.20.30.40",
                    client_port=51234, server_ip="52.101.68.10")
    write_pcap(HERE / "exchange-online-no-client-cert.pcap", smtp_records(seed))

    truth = []
    with PcapngWriter(HERE / "all-scenarios.pcapng") as w:
        w.section()
        w.interface(1, snaplen=262144, name="eth0")
        for i, name in enumerate(SCENARIO_NAMES):
            sc = scenario(name, pki, start_ns=start + i * 5 * 10**9, client_port=50000 + i,
                          client_ip=f"10.20.30.{41 + i}")
            for rec in smtp_records(sc):
                w.epb(0, rec.data, ts_ns=rec.ts_ns, orig_len=rec.orig_len)
            truth.append({"session": i + 1, "scenario": name,
                          "client": f"{sc.client_ip}:{sc.client_port}"})
    (HERE / "all-scenarios.truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    # The examples' private test root: `fastcap scan --ca-file examples/test-root.pem ...`
    (HERE / "test-root.pem").write_bytes(pki.root.pem)


if __name__ == "__main__":
    main()
