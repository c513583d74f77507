"""Frame bytes -> PacketRecord: link layers, IPv4/IPv6 and TCP with its options.

Pure functions over bytes; used by the fast engine. Link types from
https://www.tcpdump.org/linktypes.html. Nothing here imports from analysis/ or ui/.
"""

from __future__ import annotations

import struct

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

_u16 = struct.Struct("!H").unpack_from
_tcp_hdr = struct.Struct("!HHIIBBH").unpack_from  # sport dport seq ack offset flags window
_ts_opt = struct.Struct("!II").unpack_from
_u32le = struct.Struct("<I").unpack_from
_u32be = struct.Struct("!I").unpack_from


def network_offset(link: int, data: bytes) -> tuple[int, int] | int:
    """Where the IP header starts and which IP version it is, or NOT_TCP/UNDECODABLE."""
    if link == LINK_ETHERNET:
        if len(data) < 14:
            return UNDECODABLE
        etype = _u16(data, 12)[0]
        off = 14
        while etype in ETH_VLAN:
            if len(data) < off + 4:
                return UNDECODABLE
            etype = _u16(data, off + 2)[0]
            off += 4
        if etype == ETH_PPPOE_SESSION:
            if len(data) < off + 8:
                return UNDECODABLE
            ppp = _u16(data, off + 6)[0]
            off += 8
            etype = ETH_IPV4 if ppp == PPP_IPV4 else ETH_IPV6 if ppp == PPP_IPV6 else 0
        elif etype in ETH_MPLS:
            while True:
                if len(data) < off + 5:
                    return UNDECODABLE
                bottom = data[off + 2] & 1
                off += 4
                if bottom:
                    break
            v = data[off] >> 4
            etype = ETH_IPV4 if v == 4 else ETH_IPV6 if v == 6 else 0
    elif link == LINK_LINUX_SLL:
        if len(data) < 16:
            return UNDECODABLE
        etype, off = _u16(data, 14)[0], 16
    elif link == LINK_LINUX_SLL2:
        if len(data) < 20:
            return UNDECODABLE
        etype, off = _u16(data, 0)[0], 20
    elif link in (LINK_NULL, LINK_LOOP):
        if len(data) < 4:
            return UNDECODABLE
        fam = _u32be(data, 0)[0] if link == LINK_LOOP else _u32le(data, 0)[0]
        if fam > 0xFFFF:  # written by a host of the other byte order
            fam = _u32be(data, 0)[0]
        if fam == AF_INET:
            return 4, 4
        if fam in AF_INET6:
            return 4, 6
        return NOT_TCP
    elif link in (LINK_RAW, LINK_RAW_12, LINK_RAW_14, LINK_IPV4, LINK_IPV6):
        if not data:
            return UNDECODABLE
        v = data[0] >> 4
        return (0, v) if v in (4, 6) else UNDECODABLE
    else:
        return UNDECODABLE
    if etype == ETH_IPV4:
        return off, 4
    if etype == ETH_IPV6:
        return off, 6
    return NOT_TCP


def decode(link: int, data: bytes, wire_len: int, ts: int, num: int) -> PacketRecord | int:
    """Decode one frame. Returns a PacketRecord, NOT_TCP or UNDECODABLE."""
    where = network_offset(link, data)
    if where.__class__ is int:
        return where  # type: ignore[return-value]
    off, ipv = where  # type: ignore[misc]
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
        total = _u16(data, off + 2)[0]
        frag = _u16(data, off + 6)[0]
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
        plen6 = _u16(data, off + 4)[0]
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
                if _u16(data, tcp + 2)[0] & 0xFFF8:  # non-first fragment
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
    sport, dport, seq, ack, doff, flags, win = _tcp_hdr(data, tcp)
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
            rec.mss = _u16(data, i + 2)[0]
        elif kind == OPT_WSCALE and olen == 3:
            rec.wscale = data[i + 2]
        elif kind == OPT_SACK_PERM and olen == 2:
            rec.sack_perm = True
        elif kind == OPT_SACK and (olen - 2) % 8 == 0:
            rec.sack = tuple(struct.unpack_from("!II", data, i + 2 + 8 * k)
                             for k in range((olen - 2) // 8))
        elif kind == OPT_TIMESTAMP and olen == 10:
            rec.tsval, rec.tsecr = _ts_opt(data, i + 2)
        i += olen
