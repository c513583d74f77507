"""Recognising the application protocol of a turn from its first payload bytes (at most
capture.record.PAYLOAD_PREFIX of them): HTTP/1.x, TLS (RFC 8446 / RFC 5246 records), Redis RESP,
DNS over TCP (RFC 1035 4.2.2, RFC 7766). Pure functions over bytes; the strings they return
come from the wire (shown escaped by the UI)."""

from __future__ import annotations

from typing import Final

from ..capture.record import PAYLOAD_PREFIX
from .peek import client_hello_sni

HTTP_METHODS: Final = (b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH",
                       b"CONNECT", b"TRACE")
TLS_HANDSHAKE: Final = 22  # record content type (RFC 8446 5.1)
TLS_CCS: Final = 20
TLS_APPDATA: Final = 23
EXT_SUPPORTED_VERSIONS: Final = 43  # RFC 8446 4.2.1
EXT_PRE_SHARED_KEY: Final = 41  # RFC 8446 4.2.11: the server accepted a PSK (resumption)
DNS_PORT: Final = 53
RCODES: Final = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP",
                  5: "REFUSED"}


def http_request(p: bytes) -> dict | None:
    sp = p.find(b" ")
    if sp <= 0 or p[:sp] not in HTTP_METHODS:
        return None
    end = p.find(b"\r\n")
    line = p[: end if end >= 0 else len(p)]
    parts = line.split(b" ")
    if len(parts) < 2:
        return None
    version = parts[2].decode("latin-1") if len(parts) > 2 else None
    # more request lines inside the same prefix: pipelining (RFC 9112 9.3.2)
    extra = sum(p.count(b"\r\n\r\n" + m + b" ") for m in HTTP_METHODS)
    close = b"\r\nconnection: close" in p.lower()
    return {"method": parts[0].decode("latin-1"), "path": parts[1].decode("latin-1"),
            "version": version, "pipelined": extra, "close": close}


def http_response(p: bytes) -> dict | None:
    if not p.startswith(b"HTTP/1."):
        return None
    p = p[:PAYLOAD_PREFIX]
    parts = p[:64].split(b" ", 2)
    try:
        status = int(parts[1])
    except (IndexError, ValueError):
        return None
    return {"status": status, "version": parts[0].decode("latin-1"),
            "close": b"\r\nconnection: close" in p.lower()}


def is_client_hello(p: bytes) -> bool:
    return len(p) > 5 and p[0] == TLS_HANDSHAKE and p[1] == 3 and p[5] == 1


def server_hello(p: bytes) -> dict | None:
    """Version and resumption from a ServerHello record (and what follows it in the prefix)."""
    if len(p) < 44 or p[0] != TLS_HANDSHAKE or p[5] != 2:
        return None
    version = "1.2" if p[9:11] == b"\x03\x03" else {b"\x03\x01": "1.0", b"\x03\x02": "1.1"}.get(
        bytes(p[9:11]), "?")
    psk = False
    try:
        i = 11 + 32
        sid_len = p[i]
        i += 1 + sid_len + 2 + 1  # session id, cipher suite, compression
        end = i + 2 + int.from_bytes(p[i:i + 2], "big")
        i += 2
        while i + 4 <= min(end, len(p)):
            etype = int.from_bytes(p[i:i + 2], "big")
            elen = int.from_bytes(p[i + 2:i + 4], "big")
            if etype == EXT_SUPPORTED_VERSIONS and p[i + 4:i + 6] == b"\x03\x04":
                version = "1.3"
            elif etype == EXT_PRE_SHARED_KEY:
                psk = True
            i += 4 + elen
    except IndexError:
        pass
    rec_end = 5 + int.from_bytes(p[3:5], "big")
    if version == "1.3":
        resumed = psk
        rtts = 1  # RFC 8446 2: one round trip before the client may send (0-RTT aside)
    else:
        # abbreviated handshake (RFC 5246 7.3): ChangeCipherSpec right after the ServerHello,
        # no Certificate: the session was resumed, one round trip
        resumed = len(p) > rec_end and p[rec_end] == TLS_CCS
        rtts = 1 if resumed else 2
    return {"version": version, "resumed": resumed, "rtts": rtts}


def redis_command(p: bytes) -> dict | None:
    """RESP array of bulk strings: *<n>\\r\\n$<len>\\r\\n<COMMAND>\\r\\n..."""
    if not p.startswith(b"*"):
        return None
    try:
        first = p.index(b"\r\n")
        int(p[1:first])
        if p[first + 2:first + 3] != b"$":
            return None
        second = p.index(b"\r\n", first + 2)
        n = int(p[first + 3:second])
        if n < 0:  # a null bulk string: no command (and no slice ending before it starts)
            return None
        cmd = p[second + 2:second + 2 + n]
    except ValueError:
        return None
    if not cmd or not cmd.isalpha():
        return None
    return {"command": cmd.decode("latin-1").upper()}


def redis_reply(p: bytes) -> dict | None:
    if not p or p[:1] not in b"+-:$*":
        return None
    kind = {b"+": "status", b"-": "error", b":": "integer", b"$": "bulk", b"*": "array"}[p[:1]]
    out = {"reply": kind}
    if kind == "error":
        end = p.find(b"\r\n")
        out["error"] = p[1:end if end > 0 else 80].decode("latin-1")
    return out


QTYPES: Final = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT",
                  28: "AAAA", 33: "SRV", 35: "NAPTR", 43: "DS", 48: "DNSKEY", 64: "SVCB",
                  65: "HTTPS", 252: "AXFR", 251: "IXFR", 255: "ANY"}  # RFC 1035 3.2.2, IANA


def _qname(p: bytes, i: int) -> tuple[str, int] | None:
    """The question's name (RFC 1035 4.1.2) and the index just after it."""
    labels: list[str] = []
    while i < len(p):
        n = p[i]
        if n == 0:
            return ".".join(labels) or ".", i + 1
        if n & 0xC0:
            return None  # a compressed name in a question is not expected
        labels.append(p[i + 1:i + 1 + n].decode("latin-1"))
        i += 1 + n
    return None


def dns_message(p: bytes) -> dict | None:
    """DNS over TCP: 2-byte length, then the RFC 1035 header and the first question."""
    if len(p) < 2 + 12 + 5:
        return None
    msg = p[2:]
    flags = int.from_bytes(msg[2:4], "big")
    qdcount = int.from_bytes(msg[4:6], "big")
    if qdcount != 1:
        return None
    q = _qname(msg, 12)
    if q is None:
        return None
    name, end = q
    out: dict = {"id": int.from_bytes(msg[0:2], "big"), "query": name,
                 "response": bool(flags & 0x8000)}
    if end + 2 <= len(msg):
        qt = int.from_bytes(msg[end:end + 2], "big")
        out["qtype"] = QTYPES.get(qt, f"TYPE{qt}")  # RFC 3597 spelling of unknown types
    if out["response"]:
        out["rcode"] = RCODES.get(flags & 0xF, str(flags & 0xF))
    return out


def label_request(p: bytes, server_port: int) -> tuple[str, dict]:
    """(protocol, fields) for the first bytes of a client turn."""
    if len(p) > PAYLOAD_PREFIX:
        p = p[:PAYLOAD_PREFIX]
    if server_port == DNS_PORT:
        d = dns_message(p)
        if d is not None:
            return "dns", d
    h = http_request(p)
    if h is not None:
        return "http", h
    r = redis_command(p)
    if r is not None:
        return "redis", r
    if len(p) > 5 and p[0] in (TLS_HANDSHAKE, TLS_APPDATA, TLS_CCS) and p[1] == 3:
        out = {}
        if is_client_hello(p):
            out["sni"] = client_hello_sni(p)
        return "tls", out
    return "", {}


def label_response(proto: str, p: bytes) -> dict:
    if len(p) > PAYLOAD_PREFIX:
        p = p[:PAYLOAD_PREFIX]
    if proto == "http":
        return http_response(p) or {}
    if proto == "redis":
        return redis_reply(p) or {}
    if proto == "dns":
        return dns_message(p) or {}
    return {}
