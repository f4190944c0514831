"""SMTP conversations whose TCP segments travel in IP fragments (IPv4 and IPv6), for the
defragmentation tests: in order, reversed, interleaved with other flows, duplicated with
other bytes, overlapping, with a fragment missing or cut by the snap length, with two last
fragments, sent again after they were complete, with fragments of no data, without the
first fragment, with a bad TCP data offset, with a first fragment of 8 bytes (the TCP
header in two), or with IP options and IPv6 extension headers on either side of the
fragment header."""

from __future__ import annotations

import random

from fastcap_synth import packets as p
from fastcap_synth.writers import Record, write_pcap, write_pcapng

CLIENT_BODY = b"EHLO client.example.org\r\n" + b"X" * 300 + b"\r\n"
SERVER_BODY = b"250-mail.example.com\r\n" + b"250-" + b"Y" * 400 + b"\r\n250 OK\r\n"


def _ip(v6: bool, data: bytes, src: str, dst: str, ident: int, off: int, more: bool,
        opts: bool = False) -> bytes:
    """One fragment: `data` at byte `off` (a multiple of 8) of its datagram; with `opts`,
    IPv4 options, or an IPv6 hop-by-hop header before the fragment header and a destination
    options header opening the datagram (so its data begins with it)."""
    if v6:
        ext = [(p.IPPROTO_HOPOPTS, b"")] if opts else []
        ext.append((p.IPPROTO_FRAGMENT, p.ipv6_frag_body(off // 8, more, ident)))
        return p.ether(p.ipv6(data, p.IPPROTO_DSTOPTS if opts else 6, src, dst,
                              ext_headers=ext), 0x86DD)
    options = b"\x01\x01\x01\x00" if opts else b""
    return p.ether(p.ipv4(data, 6, src, dst, ident=ident, dont_fragment=False,
                          more_fragments=more, frag_offset=off // 8, options=options,
                          total_length=20 + len(options) + len(data)), 0x0800)


_DSTOPTS = bytes((6, 0, 1, 4, 0, 0, 0, 0))  # a destination options header before TCP


def fragments(v6: bool, seg: bytes, src: str, dst: str, ident: int, size: int = 64,
              first: int | None = None, opts: bool = False) -> list[bytes]:
    """`seg` (a TCP segment) cut in fragments of `size` bytes (a multiple of 8), the first
    of `first` bytes if given."""
    if opts and v6:
        seg = _DSTOPTS + seg
    cuts = [0] + list(range(first or size, len(seg), size))
    ends = cuts[1:] + [len(seg)]
    return [_ip(v6, seg[a:b], src, dst, ident, a, b < len(seg), opts)
            for a, b in zip(cuts, ends, strict=True)]


def conversation(mode: str = "order", v6: bool = False, port: int = 25, cport: int = 40000,
                 seed: int = 0, ident: int = 7) -> list[bytes]:
    """One SMTP exchange (handshake, banner, a fragmented EHLO and reply, QUIT, FINs)."""
    c, s = ("2001:db8::1", "2001:db8::2") if v6 else ("10.0.0.1", "10.0.0.2")
    rnd = random.Random(seed)

    def whole(src, dst, sp, dp, seq, ack, flags, data=b""):
        return p.tcp_frame(src, dst, sp, dp, seq, ack, flags, data)

    out = [whole(c, s, cport, port, 100, 0, p.SYN),
           whole(s, c, port, cport, 900, 101, p.SYN | p.ACK),
           whole(c, s, cport, port, 101, 901, p.ACK),
           whole(s, c, port, cport, 901, 101, p.ACK | p.PSH, b"220 mail.example.com\r\n")]
    seq_c, seq_s = 101, 901 + 22
    for src, dst, sp, dp, seq, ack, body, k in (
            (c, s, cport, port, seq_c, seq_s, CLIENT_BODY, ident),
            (s, c, port, cport, seq_s, seq_c + len(CLIENT_BODY), SERVER_BODY, ident + 1)):
        if mode == "whole":  # not fragmented: for a tunnel's outer packet to be (`outer`)
            out.append(whole(src, dst, sp, dp, seq, ack, p.ACK | p.PSH, body))
            continue
        seg = p.tcp(sp, dp, seq, ack, p.ACK | p.PSH, body, src=src, dst=dst)
        fr = fragments(v6, seg, src, dst, k, first=8 if mode == "tiny_first" else None,
                       opts=mode == "options")
        if mode == "reversed":
            fr = fr[::-1]
        elif mode == "shuffled":
            rnd.shuffle(fr)
        elif mode in ("duplicated", "duplicated_first"):  # a second copy, other bytes
            bad = bytearray(seg)
            bad[64:128] = b"Z" * 64
            at = 2 if mode == "duplicated" else 1  # after the original, or before it
            fr.insert(at, fragments(v6, bytes(bad), src, dst, k)[1])
        elif mode in ("overlap", "overlap_first"):  # at 32, over the first two: other bytes
            bad = bytearray(seg)
            bad[32:96] = b"W" * 64
            at = 1 if mode == "overlap" else 0
            fr.insert(at, _ip(v6, bytes(bad[32:96]), src, dst, k, 32, True))
        elif mode == "missing" and body is CLIENT_BODY:
            del fr[1]
        elif mode == "headless" and body is CLIENT_BODY:  # its first fragment never comes
            del fr[0]
        elif mode == "bad_offset" and body is CLIENT_BODY:  # a TCP data offset of 4
            bad = bytearray(seg)
            bad[12] = 0x40
            fr = fragments(v6, bytes(bad), src, dst, k)
        elif mode == "snapped":  # the second fragment cut by the snap length
            fr[1] = (fr[1][:-10], len(fr[1]))
        elif mode == "snapped_first":
            fr[0] = (fr[0][:-10], len(fr[0]))
        elif mode in ("two_tails", "two_tails_early"):  # a last fragment ending early
            fr.insert(2 if mode == "two_tails" else 1,
                      _ip(v6, seg[128:192], src, dst, k, 128, False))
            if mode == "two_tails_early":  # ... and the true last one before the middle
                fr.insert(2, fr.pop())
        elif mode == "repeated":  # the whole datagram again, after it was completed
            fr = fr + fr
        elif mode == "repeated_last":  # its last fragment again, alone
            fr = fr + fr[-1:]
        elif mode == "zero_length":  # fragments of no data, one claiming to be the last
            fr.insert(1, _ip(v6, b"", src, dst, k, 64, True))
            fr.insert(3, _ip(v6, b"", src, dst, k, 128, False))
        out += fr
    seq_c += len(CLIENT_BODY)
    seq_s += len(SERVER_BODY)
    out += [whole(c, s, cport, port, seq_c, seq_s, p.ACK | p.PSH, b"QUIT\r\n"),
            whole(s, c, port, cport, seq_s, seq_c + 6, p.ACK | p.PSH, b"221 bye\r\n"),
            whole(c, s, cport, port, seq_c + 6, seq_s + 9, p.FIN | p.ACK),
            whole(s, c, port, cport, seq_s + 9, seq_c + 7, p.FIN | p.ACK),
            whole(c, s, cport, port, seq_c + 7, seq_s + 10, p.ACK)]
    return out


def tagged(frame: bytes, vlans: list[int], tpids: list[int] | None = None) -> bytes:
    """An Ethernet frame put under 802.1ad/802.1Q tags (outermost first), or under tags of
    the `tpids` given."""
    tpids = tpids or [0x88A8] * (len(vlans) - 1) + [0x8100]
    tags = b"".join(t.to_bytes(2, "big") + v.to_bytes(2, "big")
                    for t, v in zip(tpids, vlans, strict=True))
    return frame[:12] + tags + frame[12:]


def vxlan(frame: bytes) -> bytes:
    """An Ethernet frame carried in VXLAN (UDP port 4789) over IPv4."""
    return p.ether(p.ipv4(p.udp(5555, 4789, bytes((8, 0, 0, 0, 0, 0, 1, 0)) + frame), 17,
                          "192.0.2.1", "192.0.2.2"), 0x0800)


def geneve(frame: bytes) -> bytes:
    """An Ethernet frame carried in Geneve (UDP port 6081, one 8-byte option) over IPv4."""
    option = b"\x01\x02\x03\x01" + bytes(4)  # class, type, length of 1 word
    header = bytes((2, 0)) + (0x6558).to_bytes(2, "big") + bytes((0, 0, 7, 0))
    return p.ether(p.ipv4(p.udp(5555, 6081, header + option + frame), 17, "192.0.2.1",
                          "192.0.2.2"), 0x0800)


def gre(frame: bytes) -> bytes:
    """The IP packet of an Ethernet frame carried in GRE over IPv4."""
    return p.ether(p.ipv4(b"\x00\x00" + frame[12:14] + frame[14:], 47, "192.0.2.1",
                          "192.0.2.2"), 0x0800)


def ipip(frame: bytes) -> bytes:
    """The IPv4 packet of an Ethernet frame carried in IPv4 (IP-in-IP)."""
    return p.ether(p.ipv4(frame[14:], 4, "192.0.2.1", "192.0.2.2"), 0x0800)


def outer(frame: bytes, ident: int, size: int = 64) -> list[bytes]:
    """An Ethernet frame's IPv4 packet (a tunnel's outer one) cut in fragments of `size`
    bytes, whatever it carries."""
    ip = frame[14:]
    ihl, proto = (ip[0] & 0x0F) * 4, ip[9]
    src, dst = (".".join(map(str, ip[a:a + 4])) for a in (12, 16))
    data = ip[ihl:]
    return [p.ether(p.ipv4(data[a:a + size], proto, src, dst, ident=ident,
                           dont_fragment=False, more_fragments=a + size < len(data),
                           frag_offset=a // 8), 0x0800) for a in range(0, len(data), size)]


def interleaved(conversations: list[list[bytes]]) -> list[bytes]:
    """Frames of several conversations taken in turn."""
    out, longest = [], max(len(c) for c in conversations)
    for i in range(longest):
        out += [c[i] for c in conversations if i < len(c)]
    return out


def write(path, frames: list[bytes | tuple[bytes, int]], pcapng: bool = False) -> None:
    """Frames (or (captured bytes, length on the wire) for one cut by the snap length)."""
    records = [Record(f, i * 1000) if isinstance(f, bytes) else Record(f[0], i * 1000, f[1])
               for i, f in enumerate(frames)]
    (write_pcapng if pcapng else write_pcap)(path, records)


def route(hops: list[str], ptr: int = 4, code: int = 0x83) -> bytes:
    """A loose (0x83) or strict (0x89) source route option through `hops`, its pointer at
    byte `ptr` of the option (4: the first hop; past the end: the route is spent)."""
    body = b"".join(bytes(map(int, h.split("."))) for h in hops)
    return bytes((code, 3 + len(body), ptr)) + body


ROUTES = {  # IPv4 options, each with a route ending at the server (10.0.0.2) or not
    "loose": route(["10.0.0.2"]),
    "strict_after_nop": b"\x01" + route(["10.0.0.7", "10.0.0.2"], 8, 0x89),
    "spent": route(["10.0.0.2"], 8),
    "pointer_inside_an_address": route(["10.0.0.7", "10.0.0.2"], 5),
    "after_a_router_alert_of_5_bytes": bytes((0x94, 5, 0, 0, 0)) + route(["10.0.0.2"]),
    "within_an_option_past_the_header": bytes((0x9E, 13)) + route(["10.0.0.2"]),
    "after_an_unknown_option": bytes((0x9E, 4, 0, 0)) + route(["10.0.0.2"]),
    "after_the_end_of_options": b"\x00" + route(["10.0.0.2"]),
}


def routed(case: str, options: bytes, other: bytes | None = None) -> list[bytes]:
    """An SMTP exchange whose EHLO goes out in IPv4 fragments carrying `options`, through
    routers 10.0.0.9 and 10.0.0.8 (the header's destination), the rest between client and
    server directly.  `case` "hops": the fragments alternate between the two routers (one
    identification); "apart": all through 10.0.0.9, interleaved with the fragments of
    another TCP datagram of the same identification whose options are `other` (a route to
    10.0.0.3, port 25, if not given)."""
    c, s = "10.0.0.1", "10.0.0.2"
    w = p.tcp_frame
    out = [w(c, s, 40000, 25, 100, 0, p.SYN), w(s, c, 25, 40000, 900, 101, p.SYN | p.ACK),
           w(c, s, 40000, 25, 101, 901, p.ACK),
           w(s, c, 25, 40000, 901, 101, p.ACK | p.PSH, b"220 mail.example.com\r\n")]
    seg = p.tcp(40000, 25, 101, 923, p.ACK | p.PSH, CLIENT_BODY, src=c, dst=s)

    def cut(data: bytes, hops: list[str], opts: bytes) -> list[bytes]:
        return [p.ether(p.ipv4(data[a:a + 64], 6, c, hops[a // 64 % len(hops)], ident=7,
                               dont_fragment=False, more_fragments=a + 64 < len(data),
                               frag_offset=a // 8, options=opts), 0x0800)
                for a in range(0, len(data), 64)]

    if case == "hops":
        out += cut(seg, ["10.0.0.9", "10.0.0.8"], options)
    else:
        third = p.tcp(40001, 25, 5, 0, p.ACK | p.PSH, b"Q" * len(CLIENT_BODY), src=c,
                      dst="10.0.0.3")
        out += interleaved([cut(seg, ["10.0.0.9"], options),
                            cut(third, ["10.0.0.9"],
                                route(["10.0.0.3"]) if other is None else other)])
    return out + [w(s, c, 25, 40000, 923, 101 + len(CLIENT_BODY), p.ACK | p.PSH,
                    b"250 OK\r\n")]
