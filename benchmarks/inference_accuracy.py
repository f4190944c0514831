"""Accuracy of TLS 1.3 client-certificate inference from record sizes, as a markdown table.

Every case is a real OpenSSL handshake (fastcap_synth.tls13cases: five TLS 1.3 suites, client
keys RSA 2048/4096 and ECDSA P-256/P-384, chains of 1 to 3 certificates, the server asking or
not, the client sending none, an accepted chain or a refused one, plus a HelloRetryRequest and
post-handshake authentication); the truth is the client's flight decrypted with its key log.

    python benchmarks/inference_accuracy.py
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from fastcap.proto.tls import parse_flights  # noqa: E402
from fastcap.proto.tls.inference import infer_client_cert  # noqa: E402
from fastcap_synth.tls13cases import KEY_NAMES, Case, generate  # noqa: E402


def _group(c: Case) -> str:
    if c.extra == "pha":
        return "server does not ask, client offers post-handshake auth"
    if c.extra == "hrr":
        return "after a HelloRetryRequest (chain or none)"
    if c.server_auth == "none":
        return "server does not ask (client with or without a certificate)"
    if c.client == "none":
        return "server asks, client sends none"
    fate = "accepted" if c.client == "chain" else "refused"
    return f"server asks, {KEY_NAMES[c.key]} chain of 1-3 certificates, {fate}"


def main() -> None:
    rows: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # cases, decided, right
    suites: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for c in generate():
        got = infer_client_cert(parse_flights(c.flights))
        right = got.verdict == ("present" if c.truth else "absent")
        for table, key in ((rows, _group(c)), (suites, c.suite)):
            table[key][0] += 1
            table[key][1] += got.decided
            table[key][2] += right
    print("| cases | count | decided | right |")
    print("| --- | ---: | ---: | ---: |")
    for title, table in (("by scenario", rows), ("by suite", suites)):
        print(f"| *{title}* | | | |")
        for key, (n, decided, right) in table.items():
            print(f"| {key} | {n} | {decided} | {right} |")
    n, decided, right = (sum(v[i] for v in rows.values()) for i in range(3))
    print(f"| **all** | **{n}** | **{decided}** | **{right}** |")


if __name__ == "__main__":
    main()
