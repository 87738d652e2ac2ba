"""Link types: nfx reads Ethernet captures only (an NF starts at the Ethernet header); for the
captures a tool can give Ethernet headers, the error says how."""
from __future__ import annotations

# Raw IP (12 on OpenBSD's numbering, 101 in files), Linux cooked captures (tcpdump -i any: SLL 113,
# SLL2 276) and BSD loopback ones (a 4-byte address family before the IP header: tcpdump -i lo0 on
# macOS writes 0, OpenBSD 108), which tcprewrite's decoders turn into Ethernet.
_CONVERTIBLE = {12: "raw IP", 101: "raw IP", 113: "Linux cooked (tcpdump -i any)",
                276: "Linux cooked v2 (tcpdump -i any)", 0: "BSD loopback (tcpdump -i lo0 on macOS)",
                108: "OpenBSD loopback"}


def link_hint(linktype: int) -> str:
    """How to turn a capture of ``linktype`` into Ethernet, when a tool can ('' otherwise)."""
    kind = _CONVERTIBLE.get(linktype)
    if kind is None:
        return ""
    return (f"; this is a {kind} capture: give it Ethernet headers with `tcprewrite --dlt=enet "
            f"--enet-smac=02:00:00:00:00:01 --enet-dmac=02:00:00:00:00:02 -i IN.pcap -o OUT.pcap`")
