"""The TLS key logs a pcapng file carries in Decryption Secrets Blocks before its first packet,
where `editcap --inject-secrets tls,KEYS` puts them: read before the scan so every session,
in this process or a worker, is built with them.  A compressed file's are read from the
head of its decompressed bytes, so a compressed member of a ring buffer lends its keys as an
uncompressed one does.  Blocks further on (and every block of a piped capture) are kept by
the walk in `CaptureMeta.secrets` and serve the sessions that end after them
(`fastcap.session.KeysAsRead`)."""

from __future__ import annotations

import os
import struct

from . import pcapng
from .stream import HeadReader, is_compressed_file

TLS_KEY_LOG = pcapng.TLS_KEY_LOG  # secrets type "TLSK": an NSS key log
_PACKETS = frozenset({pcapng.BT_EPB, pcapng.BT_SPB, pcapng.BT_PB})
_MAX_BLOCKS = 4096  # header blocks read at most before giving up on a packet appearing
_MAX_SECRETS = 256 << 20


def leading_secrets(path: str | os.PathLike) -> list[tuple[bytes, str]]:
    """(key log bytes, "FILE DSB at byte N") of each TLS key log block before the first
    packet (N counted in the decompressed bytes of a compressed file); empty for anything but
    a regular pcapng file, compressed or not (never raises)."""
    try:
        name = os.fspath(path)
        if not isinstance(name, str) or not os.path.isfile(name):
            return []
        with HeadReader(name) if is_compressed_file(name) else open(name, "rb") as f:
            return _read(f, os.path.basename(name))
    except Exception:  # noqa: BLE001 - the walk reads the file again, and tells what fails
        return []


def _read(f, label: str) -> list[tuple[bytes, str]]:
    out: list[tuple[bytes, str]] = []
    order, off = "<", 0
    for _ in range(_MAX_BLOCKS):
        f.seek(off)
        head = f.read(12)
        if len(head) < 8:
            break
        (btype,) = struct.unpack_from("<I", head)
        if btype == pcapng.BT_SHB:
            if len(head) < 12:
                break
            order = ">" if head[8:12] == b"\x1a\x2b\x3c\x4d" else "<"
        elif off == 0:
            break  # not pcapng
        btype, blen = struct.unpack_from(order + "II", head)
        blen = pcapng.padded(blen)
        if btype in _PACKETS or blen < 12:
            break
        if btype == pcapng.BT_DSB and blen >= 20:  # read on, never back: f may be a stream
            stype, slen = struct.unpack(order + "II", head[8:12] + f.read(4))
            if stype == TLS_KEY_LOG:
                data = f.read(min(slen, blen - 20, _MAX_SECRETS))
                out.append((data, f"{label} DSB at byte {off}"))
        off += blen
    return out
