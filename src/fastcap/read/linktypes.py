"""Names of the link types fastcap meets, as tcpdump/libpcap spell them."""

NAMES = {
    0: "NULL", 1: "EN10MB", 9: "PPP", 12: "RAW", 14: "RAW", 101: "RAW", 105: "IEEE802_11",
    108: "LOOP", 113: "LINUX_SLL", 127: "IEEE802_11_RADIO", 228: "IPV4", 229: "IPV6",
    276: "LINUX_SLL2",
}


def describe(linktype: int) -> str:
    """'1(EN10MB)' style, matching the corpus manifest; unknown types print as '160(?)'."""
    return f"{linktype}({NAMES.get(linktype, '?')})"
