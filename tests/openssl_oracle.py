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
    errors = openssl_errors(tmp_path, root_pem, leaf_pem, untrusted_pem, at=at, purpose=purpose)
    return errors[0] if errors else (None, None)


def openssl_errors(tmp_path: Path, root_pem: bytes, leaf_pem: bytes, untrusted_pem: bytes = b"",
                   *, at: dt.datetime, purpose: str = "sslclient", flags: tuple[str, ...] = ()
                   ) -> list[tuple[str, int]]:
    """Every (error text, depth) `openssl verify` prints, in its order: it goes on after the
    errors its callback forgives (an expired or self-signed leaf, a purpose, a CA flag).
    ``flags``: more options, e.g. ``-x509_strict``."""
    (tmp_path / "root.pem").write_bytes(root_pem)
    (tmp_path / "leaf.pem").write_bytes(leaf_pem)
    extra = []
    if untrusted_pem:
        (tmp_path / "untrusted.pem").write_bytes(untrusted_pem)
        extra = ["-untrusted", str(tmp_path / "untrusted.pem")]
    done = subprocess.run(
        [OPENSSL, "verify", "-no-CApath", "-no-CAstore", "-attime", str(int(at.timestamp())),
         "-purpose", purpose, *flags, "-CAfile", str(tmp_path / "root.pem"), *extra,
         str(tmp_path / "leaf.pem")], capture_output=True, text=True, timeout=300)
    found = [(m.group(2).strip(), int(m.group(1)))
             for m in re.finditer(r"error \d+ at (\d+) depth lookup: (.*)", done.stderr)]
    assert found or done.returncode == 0, done.stderr
    return found


def openssl_said(tmp_path: Path, root_pem: bytes, leaf_pem: bytes, untrusted_pem: bytes = b"",
                 *, at: dt.datetime, purpose: str = "sslclient") -> list[tuple[int, int, str, str]]:
    """Every error `openssl verify -show_chain -verbose -nameopt RFC2253` prints, in its order,
    as (error number, depth, text, subject of the certificate it concerns): the lines an admin
    running it sees."""
    return openssl_chain(tmp_path, root_pem, leaf_pem, untrusted_pem, at=at, purpose=purpose)[1]


def openssl_name(pem: bytes, which: str = "issuer", form: str = "compat") -> str:
    """A certificate's issuer (or subject) as `openssl x509 -nameopt FORM` prints it: by
    default as X509_NAME_oneline writes it, the form Postfix logs."""
    done = subprocess.run([OPENSSL, "x509", "-noout", f"-{which}", "-nameopt", form],
                          input=pem, capture_output=True, timeout=300, check=True)
    return done.stdout.decode().strip().removeprefix(f"{which}=")


def openssl_chain(tmp_path: Path, root_pem: bytes, leaf_pem: bytes, untrusted_pem: bytes = b"",
                  *, at: dt.datetime, purpose: str = "sslclient"
                  ) -> tuple[list[tuple[str, bool]], list[tuple[int, int, str, str]]]:
    """The path `openssl verify -show_chain` builds, leaf first, as (subject, whether it came
    from the trust store), when the chain verifies; and every error it prints, as
    `openssl_said` gives them."""
    (tmp_path / "chain").mkdir(exist_ok=True)
    files = {name: tmp_path / "chain" / f"{name}.pem" for name in ("root", "leaf", "untrusted")}
    files["root"].write_bytes(root_pem)
    files["leaf"].write_bytes(leaf_pem)
    extra = []
    if untrusted_pem:
        files["untrusted"].write_bytes(untrusted_pem)
        extra = ["-untrusted", str(files["untrusted"])]
    done = subprocess.run(
        [OPENSSL, "verify", "-no-CApath", "-no-CAstore", "-show_chain", "-verbose", "-nameopt",
         "RFC2253", "-attime", str(int(at.timestamp())), "-purpose", purpose, "-CAfile",
         str(files["root"]), *extra, str(files["leaf"])],
        capture_output=True, text=True, timeout=300)
    errors = [(int(m[2]), int(m[3]), m[4].strip(), m[1]) for m in re.finditer(
        r"^(.*)\nerror (\d+) at (\d+) depth lookup: (.*)$", done.stderr, re.M)]
    chain = [(m[1], not m[2]) for m in re.finditer(
        r"^depth=\d+: (.*?)( \(untrusted\))?$", done.stdout, re.M)]
    assert errors or done.returncode == 0, done.stderr
    return chain, errors
