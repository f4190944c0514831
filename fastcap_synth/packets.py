"""Byte builders for link, network and transport headers.

Every builder returns plain ``bytes`` and takes the payload first, so layers nest naturally:
``ether(ipv4(tcp(...), IPPROTO_TCP, a, b), ETH_P_IP)``. Fields a decoder must cope with when
they lie (lengths, checksums, fragment bits) can be overridden so tests can build broken packets.
"""

from __future__ import annotations

import ipaddress
import struct
import sys
from array import array
from collections.abc import Sequence

# Ethertypes / SLL protocols.
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
ETH_P_QINQ_OLD = 0x9100

# IP protocol numbers / IPv6 next-header values.
IPPROTO_HOPOPTS = 0
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_AH = 51
IPPROTO_NONE = 59
IPPROTO_DSTOPTS = 60

# Address families for DLT_NULL / DLT_LOOP (the IPv6 value differs per BSD).
AF_INET = 2
AF_INET6_BSD = 24
AF_INET6_FREEBSD = 28
AF_INET6_DARWIN = 30

# TCP flags; NS lives in the low bit of the data-offset byte, hence 0x100.
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80
NS = 0x100

DEFAULT_MAC_A = b"\x02\x00\x00\x00\x00\x01"
DEFAULT_MAC_B = b"\x02\x00\x00\x00\x00\x02"

_VLAN_TPIDS = (ETH_P_8021Q, ETH_P_8021AD, ETH_P_QINQ_OLD)


def checksum(data: bytes) -> int:
    """Return the Internet (RFC 1071) checksum of ``data``.

    The ones'-complement sum is byte-order independent, so words are summed in native order
    with ``array`` (fast) and the result swapped once at the end.
    """
    if len(data) % 2:
        data += b"\x00"
    total = sum(array("H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    if sys.byteorder == "little":
        total = ((total & 0xFF) << 8) | (total >> 8)
    return ~total & 0xFFFF


_checksum = checksum  # ipv4() shadows the name with its ``checksum`` flag.


def _pad(data: bytes, multiple: int, fill: bytes = b"\x00") -> bytes:
    return data + fill * (-len(data) % multiple)


# --- link layer -------------------------------------------------------------------------------


def ether(
    payload: bytes,
    ethertype: int,
    *,
    src: bytes = DEFAULT_MAC_A,
    dst: bytes = DEFAULT_MAC_B,
    vlans: Sequence[tuple[int, int]] = (),
    pad: bool = False,
) -> bytes:
    """Ethernet II frame; ``vlans`` are (tpid, tci) tags outermost first.

    ``pad=True`` pads to the 60-byte minimum like a real NIC (without FCS), which matters for
    decoders that must trust the IP length rather than the frame length.
    """
    if len(src) != 6 or len(dst) != 6:
        raise ValueError("MAC addresses must be 6 bytes")
    tags = b"".join(struct.pack("!HH", tpid, tci) for tpid, tci in vlans)
    frame = dst + src + tags + struct.pack("!H", ethertype) + payload
    if pad and len(frame) < 60:
        frame += b"\x00" * (60 - len(frame))
    return frame


def vlan_tci(vid: int, pcp: int = 0, dei: bool = False) -> int:
    """Pack an 802.1Q tag control field."""
    return ((pcp & 7) << 13) | (int(dei) << 12) | (vid & 0xFFF)


def sll(
    payload: bytes,
    protocol: int,
    *,
    pkttype: int = 0,
    arphrd: int = 1,
    addr: bytes = DEFAULT_MAC_A,
) -> bytes:
    """Linux cooked capture v1 (DLT_LINUX_SLL, 16-byte header)."""
    return (
        struct.pack("!HHH", pkttype, arphrd, len(addr))
        + addr[:8].ljust(8, b"\x00")
        + struct.pack("!H", protocol)
        + payload
    )


def sll2(
    payload: bytes,
    protocol: int,
    *,
    ifindex: int = 1,
    arphrd: int = 1,
    pkttype: int = 0,
    addr: bytes = DEFAULT_MAC_A,
) -> bytes:
    """Linux cooked capture v2 (DLT_LINUX_SLL2, 20-byte header)."""
    return (
        struct.pack("!HHIHBB", protocol, 0, ifindex, arphrd, pkttype, len(addr))
        + addr[:8].ljust(8, b"\x00")
        + payload
    )


def null_hdr(payload: bytes, family: int, *, big_endian: bool = False) -> bytes:
    """BSD DLT_NULL: the family is in the *capturing host's* byte order, so both must be tested."""
    return struct.pack(">I" if big_endian else "<I", family) + payload


def loop_hdr(payload: bytes, family: int) -> bytes:
    """OpenBSD DLT_LOOP: like DLT_NULL but the family is always big-endian."""
    return struct.pack(">I", family) + payload


# --- network layer ----------------------------------------------------------------------------


def ipv4(
    payload: bytes,
    proto: int,
    src: str,
    dst: str,
    *,
    ttl: int = 64,
    ident: int = 0,
    dont_fragment: bool = True,
    more_fragments: bool = False,
    frag_offset: int = 0,
    options: bytes = b"",
    total_length: int | None = None,
    checksum: bool = True,
    tos: int = 0,
) -> bytes:
    """IPv4 header + payload. ``frag_offset`` is in 8-byte units; options are zero-padded.

    ``total_length`` overrides the computed length so tests can write lying headers.
    """
    options = _pad(options, 4)
    ihl = 5 + len(options) // 4
    if ihl > 15:
        raise ValueError("IPv4 options longer than 40 bytes")
    if total_length is None:
        total_length = ihl * 4 + len(payload)
    flags = (0x4000 if dont_fragment else 0) | (0x2000 if more_fragments else 0)
    header = bytearray(
        struct.pack(
            "!BBHHHBBH4s4s",
            0x40 | ihl,
            tos,
            total_length & 0xFFFF,
            ident & 0xFFFF,
            flags | (frag_offset & 0x1FFF),
            ttl,
            proto,
            0,
            ipaddress.IPv4Address(src).packed,
            ipaddress.IPv4Address(dst).packed,
        )
        + options
    )
    if checksum:
        struct.pack_into("!H", header, 10, _checksum(bytes(header)))
    return bytes(header) + payload


def ipv6_frag_body(offset8: int, more: bool, ident: int) -> bytes:
    """The 6 bytes of an IPv6 Fragment header after next-header and reserved."""
    return struct.pack("!HI", ((offset8 & 0x1FFF) << 3) | int(more), ident & 0xFFFFFFFF)


def _padn(n: int) -> bytes:
    """Pad1/PadN options so padded hop-by-hop/destination headers stay well-formed."""
    if n == 0:
        return b""
    if n == 1:
        return b"\x00"
    return bytes((1, n - 2)) + b"\x00" * (n - 2)


def _ext_header(htype: int, next_header: int, body: bytes) -> bytes:
    if htype == IPPROTO_FRAGMENT:
        if len(body) != 6:
            raise ValueError("fragment header body must be 6 bytes (use ipv6_frag_body)")
        return bytes((next_header, 0)) + body
    if htype == IPPROTO_AH:
        body += b"\x00" * (-(len(body) + 2) % 8)  # IPv6 requires 8-byte alignment
        return bytes((next_header, (len(body) + 2) // 4 - 2)) + body
    if htype in (IPPROTO_HOPOPTS, IPPROTO_DSTOPTS):
        body += _padn(-(len(body) + 2) % 8)
    elif htype == IPPROTO_ROUTING:
        body += b"\x00" * (-(len(body) + 2) % 8)
    else:
        raise ValueError(f"unsupported IPv6 extension header type {htype}")
    return bytes((next_header, (len(body) + 2) // 8 - 1)) + body


def ipv6(
    payload: bytes,
    next_header: int,
    src: str,
    dst: str,
    *,
    ext_headers: Sequence[tuple[int, bytes]] = (),
    hop_limit: int = 64,
    payload_length: int | None = None,
    traffic_class: int = 0,
    flow_label: int = 0,
) -> bytes:
    """IPv6 header, extension-header chain, payload.

    ``ext_headers`` are (type, body) pairs in wire order; body excludes the next-header and
    length bytes, which are filled in here, and is padded to the header's length unit.
    ``next_header`` is the upper-layer protocol after the chain.
    """
    chain = b""
    following = next_header
    for htype, body in reversed(list(ext_headers)):
        chain = _ext_header(htype, following, body) + chain
        following = htype
    if payload_length is None:
        payload_length = len(chain) + len(payload)
    first = (6 << 28) | ((traffic_class & 0xFF) << 20) | (flow_label & 0xFFFFF)
    header = struct.pack(
        "!IHBB16s16s",
        first,
        payload_length & 0xFFFF,
        following,
        hop_limit,
        ipaddress.IPv6Address(src).packed,
        ipaddress.IPv6Address(dst).packed,
    )
    return header + chain + payload


# --- transport layer --------------------------------------------------------------------------


def _pseudo_header(src: str, dst: str, proto: int, length: int) -> bytes:
    a = ipaddress.ip_address(src)
    b = ipaddress.ip_address(dst)
    if a.version != b.version:
        raise ValueError("src and dst must be the same IP version")
    if a.version == 4:
        return a.packed + b.packed + struct.pack("!BBH", 0, proto, length)
    return a.packed + b.packed + struct.pack("!IxxxB", length, proto)


def tcp(
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    payload: bytes = b"",
    *,
    window: int = 65535,
    options: bytes = b"",
    urgent: int = 0,
    src: str | None = None,
    dst: str | None = None,
) -> bytes:
    """TCP segment; the checksum is computed only when ``src`` and ``dst`` are given.

    Options are padded with EOL bytes to a 4-byte boundary.
    """
    options = _pad(options, 4)
    doff = 5 + len(options) // 4
    if doff > 15:
        raise ValueError("TCP options longer than 40 bytes")
    seg = bytearray(
        struct.pack(
            "!HHIIBBHHH",
            sport,
            dport,
            seq & 0xFFFFFFFF,
            ack & 0xFFFFFFFF,
            (doff << 4) | ((flags >> 8) & 1),
            flags & 0xFF,
            window & 0xFFFF,
            0,
            urgent & 0xFFFF,
        )
        + options
        + payload
    )
    if src is not None and dst is not None:
        csum = checksum(_pseudo_header(src, dst, IPPROTO_TCP, len(seg)) + bytes(seg))
        struct.pack_into("!H", seg, 16, csum)
    return bytes(seg)


def udp(
    sport: int,
    dport: int,
    payload: bytes = b"",
    *,
    src: str | None = None,
    dst: str | None = None,
) -> bytes:
    """UDP datagram; checksum computed when addresses are given (0 is sent as 0xFFFF)."""
    length = 8 + len(payload)
    dgram = bytearray(struct.pack("!HHHH", sport, dport, length & 0xFFFF, 0) + payload)
    if src is not None and dst is not None:
        csum = checksum(_pseudo_header(src, dst, IPPROTO_UDP, length) + bytes(dgram)) or 0xFFFF
        struct.pack_into("!H", dgram, 6, csum)
    return bytes(dgram)


# TCP option helpers, handy for realistic SYNs.


def opt_mss(mss: int) -> bytes:
    return struct.pack("!BBH", 2, 4, mss)


def opt_wscale(shift: int) -> bytes:
    return struct.pack("!BBB", 3, 3, shift)


def opt_sack_permitted() -> bytes:
    return b"\x04\x02"


def opt_timestamps(tsval: int, tsecr: int) -> bytes:
    return struct.pack("!BBII", 8, 10, tsval & 0xFFFFFFFF, tsecr & 0xFFFFFFFF)


def opt_nop() -> bytes:
    return b"\x01"


def tcp_frame(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    payload: bytes = b"",
    *,
    window: int = 65535,
    options: bytes = b"",
    ttl: int = 64,
    ident: int = 0,
    vlans: Sequence[tuple[int, int]] = (),
    eth_src: bytes = DEFAULT_MAC_A,
    eth_dst: bytes = DEFAULT_MAC_B,
    checksums: bool = True,
) -> bytes:
    """Ethernet + IPv4/IPv6 + TCP in one call; IPv6 is chosen when ``src`` contains ':'."""
    seg = tcp(
        sport,
        dport,
        seq,
        ack,
        flags,
        payload,
        window=window,
        options=options,
        src=src if checksums else None,
        dst=dst if checksums else None,
    )
    return ether(
        ip_packet(seg, IPPROTO_TCP, src, dst, ttl=ttl, ident=ident, checksum=checksums),
        ETH_P_IPV6 if ":" in src else ETH_P_IP,
        src=eth_src,
        dst=eth_dst,
        vlans=vlans,
    )


def ip_packet(
    payload: bytes,
    proto: int,
    src: str,
    dst: str,
    *,
    ttl: int = 64,
    ident: int = 0,
    checksum: bool = True,
) -> bytes:
    """IPv4 or IPv6 packet depending on the address family of ``src``."""
    if ":" in src:
        return ipv6(payload, proto, src, dst, hop_limit=ttl)
    return ipv4(payload, proto, src, dst, ttl=ttl, ident=ident, checksum=checksum)


def ethertype_for(addr: str) -> int:
    """Ethertype matching an address literal."""
    return ETH_P_IPV6 if ":" in addr else ETH_P_IP


LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276


def link_encap(
    ip_pkt: bytes,
    linktype: int = LINKTYPE_ETHERNET,
    *,
    eth_src: bytes = DEFAULT_MAC_A,
    eth_dst: bytes = DEFAULT_MAC_B,
    vlans: Sequence[tuple[int, int]] = (),
    outgoing: bool = True,
) -> bytes:
    """Wrap an IP packet for ``linktype`` (the version is read from the packet itself).

    ``outgoing`` picks the SLL packet type (4 = sent by us, 0 = to us) so cooked captures look
    like they were taken on one end of the conversation; ``vlans`` apply to Ethernet only.
    """
    v6 = ip_pkt[0] >> 4 == 6
    etype = ETH_P_IPV6 if v6 else ETH_P_IP
    if linktype == LINKTYPE_ETHERNET:
        return ether(ip_pkt, etype, src=eth_src, dst=eth_dst, vlans=vlans)
    if linktype == LINKTYPE_RAW:
        return ip_pkt
    if linktype == LINKTYPE_LINUX_SLL:
        return sll(ip_pkt, etype, pkttype=4 if outgoing else 0, addr=eth_src)
    if linktype == LINKTYPE_LINUX_SLL2:
        return sll2(ip_pkt, etype, pkttype=4 if outgoing else 0, addr=eth_src)
    if linktype == LINKTYPE_NULL:
        return null_hdr(ip_pkt, AF_INET6_BSD if v6 else AF_INET)
    if linktype == LINKTYPE_LOOP:
        return loop_hdr(ip_pkt, AF_INET6_BSD if v6 else AF_INET)
    raise ValueError(f"unsupported link type {linktype}")
