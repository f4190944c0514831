"""`openssl verify` as the oracle of the chain tests: OpenSSL's first error and its depth."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
from pathlib import Path

OPENSSL = shutil.which("openssl")


def openssl_error(tmp_path: Path, root_pem: bytes, leaf_pem: bytes, untrusted_pem: bytes = b"",
                  *, at: dt.datetime, purpose: str = "sslclient"
                  ) -> tuple[str | None, int | None]:
    """(error text, depth) of `openssl verify` on the leaf with the root trusted and the
    untrusted certificates beside it, at ``at``; (None, None) when it verifies."""
    (tmp_path / "root.pem").write_bytes(root_pem)
    (tmp_path / "leaf.pem").write_bytes(leaf_pem)
    extra = []
    if untrusted_pem:
        (tmp_path / "untrusted.pem").write_bytes(untrusted_pem)
        extra = ["-untrusted", str(tmp_path / "untrusted.pem")]
    done = subprocess.run(
        [OPENSSL, "verify", "-no-CApath", "-no-CAstore", "-attime", str(int(at.timestamp())),
         "-purpose", purpose, "-CAfile", str(tmp_path / "root.pem"), *extra,
         str(tmp_path / "leaf.pem")], capture_output=True, text=True, timeout=30)
    if done.returncode == 0:
        return None, None
    m = re.search(r"error \d+ at (\d+) depth lookup: (.*)", done.stderr)
    assert m, done.stderr
    return m.group(2).strip(), int(m.group(1))
