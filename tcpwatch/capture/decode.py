"""Frame bytes -> PacketRecord: link layers, IPv4/IPv6 and TCP with its options.

Pure functions over bytes; used by the fast engine. Link types from
https://www.tcpdump.org/linktypes.html. Nothing here imports from analysis/ or ui/.
"""

from __future__ import annotations

from .record import (
    OPT_EOL,
    OPT_MSS,
    OPT_NOP,
    OPT_SACK,
    OPT_SACK_PERM,
    OPT_TIMESTAMP,
    OPT_WSCALE,
    PAYLOAD_PREFIX,
    PacketRecord,
)

# link-layer header types (pcap LINKTYPE_* values)
LINK_NULL = 0  # BSD loopback: 4-byte address family in host byte order
LINK_ETHERNET = 1
LINK_RAW_12 = 12  # raw IP (DLT_RAW on most BSDs)
LINK_RAW_14 = 14  # raw IP (DLT_RAW on OpenBSD)
LINK_RAW = 101  # raw IP
LINK_LOOP = 108  # OpenBSD loopback: address family in network byte order
LINK_LINUX_SLL = 113  # Linux cooked capture v1
LINK_IPV4 = 228
LINK_IPV6 = 229
LINK_LINUX_SLL2 = 276  # Linux cooked capture v2

SUPPORTED_LINKS = {LINK_NULL, LINK_ETHERNET, LINK_RAW_12, LINK_RAW_14, LINK_RAW, LINK_LOOP,
                   LINK_LINUX_SLL, LINK_IPV4, LINK_IPV6, LINK_LINUX_SLL2}

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_VLAN = (0x8100, 0x88A8, 0x9100, 0x9200)  # 802.1Q, 802.1ad (QinQ) and legacy QinQ tags
ETH_PPPOE_SESSION = 0x8864  # RFC 2516: 6-byte PPPoE header, then a 2-byte PPP protocol
ETH_MPLS = (0x8847, 0x8848)  # RFC 3032 label stack; IP version read from the first nibble
PPP_IPV4, PPP_IPV6 = 0x0021, 0x0057

IPPROTO_TCP = 6
# IPv6 extension headers that are walked to reach TCP (RFC 8200 4.1)
IP6_HOPOPTS, IP6_ROUTING, IP6_FRAGMENT, IP6_DSTOPTS, IP6_AH = 0, 43, 44, 60, 51
IP6_EXT_WALKED = {IP6_HOPOPTS, IP6_ROUTING, IP6_DSTOPTS}

# BSD address family values for IPv6 differ between systems (Linux 10, NetBSD/OpenBSD 24,
# FreeBSD 28, macOS 30)
AF_INET = 2
AF_INET6 = {10, 24, 28, 30}

NOT_TCP = 1  # decoded fine, but not a TCP segment
UNDECODABLE = 2  # too short, malformed, or an unknown link type



# byte by byte rather than struct: compiled (setup.py), these are plain C array reads
def _be16(data: bytes, i: int) -> int:
    return data[i] << 8 | data[i + 1]


def _be32(data: bytes, i: int) -> int:
    return data[i] << 24 | data[i + 1] << 16 | data[i + 2] << 8 | data[i + 3]


def _le32(data: bytes, i: int) -> int:
    return data[i + 3] << 24 | data[i + 2] << 16 | data[i + 1] << 8 | data[i]


def network_offset(link: int, data: bytes) -> int:
    """Where the IP header starts and which IP version it is, as offset << 3 | version; or
    -NOT_TCP / -UNDECODABLE (one int, not a tuple: no allocation per frame)."""
    if link == LINK_ETHERNET:
        if len(data) < 14:
            return -UNDECODABLE
        etype = _be16(data, 12)
        off = 14
        while etype in ETH_VLAN:
            if len(data) < off + 4:
                return -UNDECODABLE
            etype = _be16(data, off + 2)
            off += 4
        if etype == ETH_PPPOE_SESSION:
            if len(data) < off + 8:
                return -UNDECODABLE
            ppp = _be16(data, off + 6)
            off += 8
            etype = ETH_IPV4 if ppp == PPP_IPV4 else ETH_IPV6 if ppp == PPP_IPV6 else 0
        elif etype in ETH_MPLS:
            while True:
                if len(data) < off + 5:
                    return -UNDECODABLE
                bottom = data[off + 2] & 1
                off += 4
                if bottom:
                    break
            v = data[off] >> 4
            etype = ETH_IPV4 if v == 4 else ETH_IPV6 if v == 6 else 0
    elif link == LINK_LINUX_SLL:
        if len(data) < 16:
            return -UNDECODABLE
        etype, off = _be16(data, 14), 16
    elif link == LINK_LINUX_SLL2:
        if len(data) < 20:
            return -UNDECODABLE
        etype, off = _be16(data, 0), 20
    elif link in (LINK_NULL, LINK_LOOP):
        if len(data) < 4:
            return -UNDECODABLE
        fam = _be32(data, 0) if link == LINK_LOOP else _le32(data, 0)
        if fam > 0xFFFF:  # written by a host of the other byte order
            fam = _be32(data, 0)
        if fam == AF_INET:
            return 4 << 3 | 4
        if fam in AF_INET6:
            return 4 << 3 | 6
        return -NOT_TCP
    elif link in (LINK_RAW, LINK_RAW_12, LINK_RAW_14, LINK_IPV4, LINK_IPV6):
        if not data:
            return -UNDECODABLE
        v = data[0] >> 4
        return v if v == 4 or v == 6 else -UNDECODABLE  # at offset 0
    else:
        return -UNDECODABLE
    if etype == ETH_IPV4:
        return off << 3 | 4
    if etype == ETH_IPV6:
        return off << 3 | 6
    return -NOT_TCP


def decode(link: int, data: bytes, wire_len: int, ts: int, num: int) -> PacketRecord | int:
    """Decode one frame. Returns a PacketRecord, NOT_TCP or UNDECODABLE."""
    where = network_offset(link, data)
    if where < 0:
        return -where
    off, ipv = where >> 3, where & 7
    n = len(data)
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
        frag = _be16(data, off + 6)
        proto = data[off + 9]
        if proto != IPPROTO_TCP:
            return NOT_TCP
        if frag & 0x1FFF:  # a non-first fragment carries no TCP header
            return NOT_TCP
        src = data[off + 12:off + 16]
        dst = data[off + 16:off + 20]
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
                       wire_len)
    if hlen > 20:
        parse_options(rec, data, tcp + 20, min(tcp + hlen, n))
    if plen:
        start = tcp + hlen
        rec.payload = bytes(data[start:min(start + plen, start + PAYLOAD_PREFIX, n)])
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
