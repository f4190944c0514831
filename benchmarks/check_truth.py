"""Check a scan of a generated capture against its truth file, session by session.

    python benchmarks/check_truth.py bench-data/2g.pcap      # reads 2g.pcap.truth.json

Exits non-zero on the first disagreement about a session's endpoints, first frame or client
certificate status, so a fast wrong scan cannot pass for a fast right one.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time

from fastcap.run.scanner import scan


def expected_status(t: dict) -> str:
    if t["tls_version"] is None:
        return "no-tls"
    if t["tls_version"] == "TLSv1.3":
        return "encrypted"
    if not t["client_cert_requested"]:
        return "not-requested"
    if t["client_cert_sha256"] is None:
        return "empty"
    return "cert:" + t["client_cert_sha256"]


def observed_status(s) -> str:
    t = s.tls
    if t is None:
        return "no-tls"
    if t.tls13_encrypted:
        return "encrypted"
    if t.client_certificate is None:
        return "not-requested" if not t.cert_requested else "absent"
    if not t.client_certificate:
        return "empty"
    return "cert:" + hashlib.sha256(t.client_certificate[0]).hexdigest()


def main() -> int:
    path = sys.argv[1]
    truth = json.load(open(path + ".truth.json"))
    want = {t["client"]: t for t in truth["smtp_sessions"]}
    t0 = time.perf_counter()
    seen = 0
    run = scan(path)
    for s in run:
        t = want.get(s.client)
        if t is None:
            print(f"session {s.number} {s.client}: not in the truth file")
            return 1
        if s.first_frame != t["first_frame"] or s.frames != t["frames"]:
            print(f"session {s.number} {s.client}: frames {s.first_frame}/{s.frames}, "
                  f"truth {t['first_frame']}/{t['frames']}")
            return 1
        got, exp = observed_status(s), expected_status(t)
        if got != exp:
            print(f"session {s.number} {s.client} ({t['scenario']}): {got}, truth {exp}")
            return 1
        seen += 1
    secs = time.perf_counter() - t0
    if seen != len(want):
        print(f"{seen} sessions scanned, truth has {len(want)}")
        return 1
    print(f"{seen} sessions agree with the truth file; scan took {secs:.2f} s; "
          f"verdicts: {dict(sorted(run.summary.verdicts.items(), key=lambda kv: -kv[1]))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
