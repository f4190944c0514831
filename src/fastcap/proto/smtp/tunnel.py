"""Proxy tunnels a connection may open with before its SMTP: an HTTP CONNECT (RFC 9110 §9.3.6)
or a SOCKS 4, 4a or 5 CONNECT (RFC 1928, with RFC 1929 username/password authentication).

A relay behind a proxy connects to the proxy's port, asks it for the mail server's, and once
the proxy grants it speaks SMTP through it; Wireshark's HTTP and SOCKS dissectors hand the
bytes after the grant to the dissector of the target's port. Here each direction's opening is
read up to where the tunnel begins, from the first bytes of the two streams alone. A request
the proxy refused, or any opening that is not a whole request and grant, is no tunnel.
"""

from __future__ import annotations

import ipaddress
from typing import Final, NamedTuple

HEAD_MAX: Final = 8192  # a proxy's request or reply is read up to this many bytes


class Tunnel(NamedTuple):
    """Where the tunnel begins in each direction, its anomaly kind, what it was (the
    target, never a credential) and the target's port (None when the request names none)."""

    c2s_offset: int
    s2c_offset: int
    kind: str  # http_connect_tunnel | socks_tunnel
    detail: str
    port: int | None = None


def _text(b: bytes) -> str:
    return b[:255].decode("ascii", "backslashreplace")


def _head_end(head: bytes) -> int | None:
    """The offset after an HTTP message head's empty line (CRLF CRLF, or LF LF)."""
    ends = [i + len(sep) for sep in (b"\r\n\r\n", b"\n\n") if (i := head.find(sep)) >= 0]
    return min(ends) if ends else None


def http_connect(request: bytes, reply: bytes) -> Tunnel | None:
    """The client's ``CONNECT host:port`` request and the proxy's 2xx reply, both heads ended
    by an empty line."""
    if request[:8] != b"CONNECT " or reply[:7] != b"HTTP/1.":
        return None
    c_end, s_end = _head_end(request), _head_end(reply)
    if c_end is None or s_end is None:
        return None
    status = reply[: reply.find(b"\n")].strip().split(None, 2)
    if len(status) < 2 or not status[1].isdigit() or not 200 <= int(status[1]) < 300:
        return None
    words = request[: request.find(b"\n")].strip().split()
    target = _text(words[1]) if len(words) > 1 else ""
    answer = _text(b" ".join(status))[:80]
    port = target.rpartition(":")[2]
    return Tunnel(c_end, s_end, "http_connect_tunnel",
                  f"CONNECT {target} answered {answer}: SMTP read inside the tunnel",
                  int(port) if port.isdigit() and len(port) <= 5 else None)


def _socks5_address(b: bytes, i: int) -> tuple[int, str, int] | None:
    """(end, "host:port", port) of a SOCKS5 address at ``b[i]`` (its type byte), if whole."""
    if i >= len(b):
        return None
    atyp, at = b[i], i + 1
    if atyp == 1:
        end, host = at + 4, ".".join(str(x) for x in b[at : at + 4])
    elif atyp == 4:
        end = at + 16
        host = f"[{ipaddress.IPv6Address(b[at:end])}]" if end <= len(b) else ""
    elif atyp == 3 and at < len(b):
        end, host = at + 1 + b[at], _text(b[at + 1 : at + 1 + b[at]])
    else:
        return None
    if end + 2 > len(b):
        return None
    port = int.from_bytes(b[end:end + 2], "big")
    return end + 2, f"{host}:{port}", port


def _socks5(c: bytes, s: bytes) -> Tunnel | None:
    """Greeting (methods), the proxy's choice (none, or RFC 1929 username/password and its
    success), then CONNECT and a success reply."""
    if len(c) < 3 or len(s) < 2 or s[0] != 5:
        return None
    ci, si = 2 + c[1], 2
    if not c[1] or s[1] not in c[2:ci]:
        return None
    if s[1] == 2:  # username/password: skipped, never kept
        if ci + 2 > len(c) or c[ci] != 1:
            return None
        p = ci + 2 + c[ci + 1]
        if p >= len(c) or s[si : si + 2] != b"\x01\x00":
            return None
        ci, si = p + 1 + c[p], si + 2
    elif s[1] != 0:
        return None  # GSS-API and the rest encapsulate what follows
    if c[ci : ci + 3] != b"\x05\x01\x00" or s[si : si + 3] != b"\x05\x00\x00":
        return None
    request, reply = _socks5_address(c, ci + 3), _socks5_address(s, si + 3)
    if request is None or reply is None:
        return None
    return Tunnel(request[0], reply[0], "socks_tunnel",
                  f"SOCKS5 CONNECT {request[1]} granted: SMTP read inside the tunnel",
                  request[2])


def _socks4(c: bytes, s: bytes) -> Tunnel | None:
    """CONNECT (port, address, user id; SOCKS4a: address 0.0.0.x and a host name after the
    user id), then the proxy's 8-byte grant (0x5A)."""
    if len(c) < 9 or c[1] != 1 or s[:2] != b"\x00\x5a" or len(s) < 8:
        return None
    end = c.find(b"\x00", 8)
    if end < 0:
        return None
    host = ".".join(str(x) for x in c[4:8])
    if c[4:7] == b"\x00\x00\x00" and c[7]:
        name_end = c.find(b"\x00", end + 1)
        if name_end < 0:
            return None
        host, end = _text(c[end + 1 : name_end]), name_end
    port = int.from_bytes(c[2:4], "big")
    return Tunnel(end + 1, 8, "socks_tunnel",
                  f"SOCKS{'4a' if c[4:7] == bytes(3) and c[7] else '4'} CONNECT {host}:{port} "
                  "granted: SMTP read inside the tunnel", port)


def proxy_tunnel(client: bytes, server: bytes) -> Tunnel | None:
    """The tunnel the two streams' first bytes (up to HEAD_MAX each) open, if any."""
    if not client or not server:
        return None
    if client[0] == 5:
        return _socks5(client, server)
    if client[0] == 4:
        return _socks4(client, server)
    return http_connect(client, server)
