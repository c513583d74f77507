"""Frame bytes -> PacketRecord: link layers, IPv4/IPv6 and TCP with its options.

Pure functions over bytes; used by the fast engine. Link types from
https://www.tcpdump.org/linktypes.html. Nothing here imports from analysis/ or ui/.
"""

from __future__ import annotations

from typing import Final

from .record import (
    OPT_EOL,
    OPT_MSS,
    OPT_NOP,
    OPT_SACK,
    OPT_SACK_PERM,
    OPT_TIMESTAMP,
    OPT_WSCALE,
    PacketRecord,
)

# link-layer header types (pcap LINKTYPE_* values)
LINK_NULL: Final = 0  # BSD loopback: 4-byte address family in host byte order
LINK_ETHERNET: Final = 1
LINK_RAW_12: Final = 12  # raw IP (DLT_RAW on most BSDs)
LINK_RAW_14: Final = 14  # raw IP (DLT_RAW on OpenBSD)
LINK_RAW: Final = 101  # raw IP
LINK_LOOP: Final = 108  # OpenBSD loopback: address family in network byte order
LINK_LINUX_SLL: Final = 113  # Linux cooked capture v1
LINK_IPV4: Final = 228
LINK_IPV6: Final = 229
LINK_LINUX_SLL2: Final = 276  # Linux cooked capture v2

SUPPORTED_LINKS: Final = {LINK_NULL, LINK_ETHERNET, LINK_RAW_12, LINK_RAW_14, LINK_RAW, LINK_LOOP,
                   LINK_LINUX_SLL, LINK_IPV4, LINK_IPV6, LINK_LINUX_SLL2}

ETH_IPV4: Final = 0x0800
ETH_IPV6: Final = 0x86DD
ETH_VLAN: Final = (0x8100, 0x88A8, 0x9100, 0x9200)  # 802.1Q, 802.1ad (QinQ) and legacy QinQ tags
ETH_PPPOE_SESSION: Final = 0x8864  # RFC 2516: 6-byte PPPoE header, then a 2-byte PPP protocol
ETH_MPLS: Final = (0x8847, 0x8848)  # RFC 3032 label stack; IP version read from the first nibble
PPP_IPV4: Final = 0x0021
PPP_IPV6: Final = 0x0057

IPPROTO_TCP: Final = 6
# IPv6 extension headers that are walked to reach TCP (RFC 8200 4.1)
IP6_HOPOPTS: Final = 0
IP6_ROUTING: Final = 43
IP6_FRAGMENT: Final = 44
IP6_DSTOPTS: Final = 60
IP6_AH: Final = 51
IP6_EXT_WALKED: Final = {IP6_HOPOPTS, IP6_ROUTING, IP6_DSTOPTS}

# BSD address family values for IPv6 differ between systems (Linux 10, NetBSD/OpenBSD 24,
# FreeBSD 28, macOS 30)
AF_INET: Final = 2
AF_INET6: Final = {10, 24, 28, 30}

NOT_TCP: Final = 1  # decoded fine, but not a TCP segment
UNDECODABLE: Final = 2  # too short, malformed, or an unknown link type



# byte by byte rather than struct: compiled (setup.py), these are plain C array reads
def _be16(data: bytes, i: int) -> int:
    return data[i] << 8 | data[i + 1]


def _be32(data: bytes, i: int) -> int:
    return data[i] << 24 | data[i + 1] << 16 | data[i + 2] << 8 | data[i + 3]


def _le32(data: bytes, i: int) -> int:
    return data[i + 3] << 24 | data[i + 2] << 16 | data[i + 1] << 8 | data[i]


def network_offset(link: int, data: bytes, base: int, end: int) -> int:
    """Where the IP header of the frame data[base:end] starts (an index into data) and which
    IP version it is, as index << 3 | version; or -NOT_TCP / -UNDECODABLE (one int, not a
    tuple: no allocation per frame)."""
    if link == LINK_ETHERNET:
        if end - base < 14:
            return -UNDECODABLE
        etype = _be16(data, base + 12)
        off = base + 14
        while etype == 0x8100 or etype == 0x88A8 or etype == 0x9100 or etype == 0x9200:
            if end < off + 4:  # ETH_VLAN
                return -UNDECODABLE
            etype = _be16(data, off + 2)
            off += 4
        if etype == ETH_PPPOE_SESSION:
            if end < off + 8:
                return -UNDECODABLE
            ppp = _be16(data, off + 6)
            off += 8
            etype = ETH_IPV4 if ppp == PPP_IPV4 else ETH_IPV6 if ppp == PPP_IPV6 else 0
        elif etype in ETH_MPLS:
            while True:
                if end < off + 5:
                    return -UNDECODABLE
                bottom = data[off + 2] & 1
                off += 4
                if bottom:
                    break
            v = data[off] >> 4
            etype = ETH_IPV4 if v == 4 else ETH_IPV6 if v == 6 else 0
    elif link == LINK_LINUX_SLL:
        if end - base < 16:
            return -UNDECODABLE
        etype, off = _be16(data, base + 14), base + 16
    elif link == LINK_LINUX_SLL2:
        if end - base < 20:
            return -UNDECODABLE
        etype, off = _be16(data, base), base + 20
    elif link == LINK_NULL or link == LINK_LOOP:
        if end - base < 4:
            return -UNDECODABLE
        fam = _be32(data, base) if link == LINK_LOOP else _le32(data, base)
        if fam > 0xFFFF:  # written by a host of the other byte order
            fam = _be32(data, base)
        if fam == AF_INET:
            return (base + 4) << 3 | 4
        if fam in AF_INET6:
            return (base + 4) << 3 | 6
        return -NOT_TCP
    elif link in (LINK_RAW, LINK_RAW_12, LINK_RAW_14, LINK_IPV4, LINK_IPV6):
        if end <= base:
            return -UNDECODABLE
        v = data[base] >> 4
        return base << 3 | v if v == 4 or v == 6 else -UNDECODABLE
    else:
        return -UNDECODABLE
    if etype == ETH_IPV4:
        return off << 3 | 4
    if etype == ETH_IPV6:
        return off << 3 | 6
    return -NOT_TCP


def decode(link: int, data: bytes, wire_len: int, ts: int, num: int) -> PacketRecord | int:
    """Decode one frame. Returns a PacketRecord, NOT_TCP or UNDECODABLE."""
    return decode_at(link, data, 0, len(data), wire_len, ts, num)


def decode_at(link: int, data: bytes, base: int, end: int, wire_len: int, ts: int,
              num: int) -> PacketRecord | int:
    """Decode the frame data[base:end] in place (a capture reader's buffer: no copy of the
    frame). Returns a PacketRecord, NOT_TCP or UNDECODABLE."""
    if end > len(data):
        end = len(data)
    where = network_offset(link, data, base, end)
    if where < 0:
        return -where
    off, ipv = where >> 3, where & 7
    n = end
    if ipv == 4:
        if n < off + 20:
            return UNDECODABLE
        vihl = data[off]
        if vihl >> 4 != 4:
            return UNDECODABLE
        ihl = (vihl & 0x0F) * 4
        if ihl < 20:
            return UNDECODABLE
        total = _be16(data, off + 2)
        ipid = _be16(data, off + 4)
        frag = _be16(data, off + 6)
        proto = data[off + 9]
        if proto != IPPROTO_TCP:
            return NOT_TCP
        if frag & 0x1FFF:  # a non-first fragment carries no TCP header
            return NOT_TCP
        src = data[off + 12:off + 16]
        dst = data[off + 16:off + 20]
        src_int = _be32(data, off + 12)
        dst_int = _be32(data, off + 16)
        if total == 0:  # TSO / offloaded packets captured before segmentation
            total = n - off
        tcp = off + ihl
        ip_end = off + total
        if total < ihl:
            return UNDECODABLE
    else:
        if n < off + 40:
            return UNDECODABLE
        if data[off] >> 4 != 6:
            return UNDECODABLE
        plen6 = _be16(data, off + 4)
        nxt = data[off + 6]
        src = data[off + 8:off + 24]
        dst = data[off + 24:off + 40]
        src_int = int.from_bytes(src, "big")
        dst_int = int.from_bytes(dst, "big")
        ipid = -1  # IPv6 has no identification field outside fragments
        tcp = off + 40
        ip_end = tcp + plen6 if plen6 else n  # jumbograms: trust the capture
        while nxt != IPPROTO_TCP:
            if nxt in IP6_EXT_WALKED:
                if n < tcp + 2:
                    return UNDECODABLE
                nxt, hlen = data[tcp], (data[tcp + 1] + 1) * 8
            elif nxt == IP6_FRAGMENT:
                if n < tcp + 8:
                    return UNDECODABLE
                if _be16(data, tcp + 2) & 0xFFF8:  # non-first fragment
                    return NOT_TCP
                nxt, hlen = data[tcp], 8
            elif nxt == IP6_AH:
                if n < tcp + 2:
                    return UNDECODABLE
                nxt, hlen = data[tcp], (data[tcp + 1] + 2) * 4
            else:
                return NOT_TCP
            tcp += hlen
    if n < tcp + 20:
        return UNDECODABLE
    sport = data[tcp] << 8 | data[tcp + 1]
    dport = data[tcp + 2] << 8 | data[tcp + 3]
    seq = data[tcp + 4] << 24 | data[tcp + 5] << 16 | data[tcp + 6] << 8 | data[tcp + 7]
    ack = data[tcp + 8] << 24 | data[tcp + 9] << 16 | data[tcp + 10] << 8 | data[tcp + 11]
    doff = data[tcp + 12]
    flags = data[tcp + 13]
    win = data[tcp + 14] << 8 | data[tcp + 15]
    hlen = (doff >> 4) * 4
    if hlen < 20:
        return UNDECODABLE
    flags |= (doff & 1) << 8  # NS bit
    plen = ip_end - tcp - hlen
    if plen < 0:
        plen = 0
    rec = PacketRecord(num, ts, ipv, src, dst, sport, dport, seq, ack, flags, win, plen,
                       wire_len, src_int=src_int << 16 | sport, dst_int=dst_int << 16 | dport,
                       ipid=ipid)
    if hlen > 20:
        parse_options(rec, data, tcp + 20, min(tcp + hlen, n))
    if plen:
        start = tcp + hlen
        # every captured payload byte: the message parsers (analysis/sqlwire.py, h2.py)
        # frame the application's stream across segments; a record kept for the packet list
        # keeps PAYLOAD_PREFIX of them (analysis/live.py)
        stop = min(start + plen, n)
        if stop > start:  # (a header longer than the captured frame: no payload; and compiled,
            # a slice that ends before it starts is an error, not b"")
            rec.payload = data[start:stop]
    return rec


def parse_options(rec: PacketRecord, data: bytes, i: int, end: int) -> None:
    """Fill the option fields of `rec` from the TCP options in data[i:end]. A truncated or
    malformed option ends the walk; what was parsed before it stays."""
    while i < end:
        kind = data[i]
        if kind == OPT_EOL:
            return
        if kind == OPT_NOP:
            i += 1
            continue
        if i + 1 >= end:
            return
        olen = data[i + 1]
        if olen < 2 or i + olen > end:
            return
        if kind == OPT_MSS and olen == 4:
            rec.mss = _be16(data, i + 2)
        elif kind == OPT_WSCALE and olen == 3:
            rec.wscale = data[i + 2]
        elif kind == OPT_SACK_PERM and olen == 2:
            rec.sack_perm = True
        elif kind == OPT_SACK and (olen - 2) % 8 == 0:
            rec.sack = tuple((_be32(data, j), _be32(data, j + 4))
                             for j in range(i + 2, i + olen, 8))
        elif kind == OPT_TIMESTAMP and olen == 10:
            rec.tsval = _be32(data, i + 2)
            rec.tsecr = _be32(data, i + 6)
        i += olen
