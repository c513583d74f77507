"""What a segment's first payload bytes say, for the packet list's Info column: an HTTP/1.x
request or status line, a TLS record (with the SNI of a ClientHello, RFC 8446 4.1.2 and
RFC 6066 3), or nothing. Returns raw text from the wire: the UI must show it escaped."""

from __future__ import annotations

from typing import Final

_METHODS: Final = (b"GET ", b"POST ", b"PUT ", b"DELETE ", b"HEAD ", b"OPTIONS ", b"PATCH ",
            b"CONNECT ", b"TRACE ")
_TLS_TYPES: Final = {20: "ChangeCipherSpec", 21: "Alert", 22: "Handshake", 23: "Application Data"}
_HS_TYPES: Final = {1: "Client Hello", 2: "Server Hello", 4: "New Session Ticket",
             8: "Encrypted Extensions", 11: "Certificate", 12: "Server Key Exchange",
             13: "Certificate Request", 14: "Server Hello Done", 15: "Certificate Verify",
             16: "Client Key Exchange", 20: "Finished"}


def _line(payload: bytes, limit: int = 120) -> str:
    end = payload.find(b"\r\n")
    line = payload[: end if end >= 0 else limit][:limit]
    return line.decode("latin-1")


def client_hello_sni(p: bytes) -> str | None:
    """The server_name of a TLS ClientHello record, if the record prefix holds it."""
    try:
        if p[0] != 22 or p[5] != 1:
            return None
        i = 9 + 2 + 32  # record hdr 5, handshake hdr 4, version 2, random 32
        i += 1 + p[i]  # session id
        i += 2 + int.from_bytes(p[i:i + 2], "big")  # cipher suites
        i += 1 + p[i]  # compression methods
        end = i + 2 + int.from_bytes(p[i:i + 2], "big")
        i += 2
        while i + 4 <= min(end, len(p)):
            etype = int.from_bytes(p[i:i + 2], "big")
            elen = int.from_bytes(p[i + 2:i + 4], "big")
            if etype == 0:  # server_name (RFC 6066 3): list len 2, type 1, name len 2
                nlen = int.from_bytes(p[i + 7:i + 9], "big")
                name = p[i + 9:i + 9 + nlen]
                return name.decode("latin-1") if name else None
            i += 4 + elen
    except IndexError:
        return None
    return None


def describe(payload: bytes) -> str:
    if not payload:
        return ""
    if payload.startswith(_METHODS) or payload.startswith(b"HTTP/1."):
        return _line(payload)
    if len(payload) >= 6 and payload[0] in _TLS_TYPES and payload[1] == 3:
        kind = _TLS_TYPES[payload[0]]
        if payload[0] == 22 and payload[5] in _HS_TYPES:
            kind = _HS_TYPES[payload[5]]
            if payload[5] == 1:
                sni = client_hello_sni(payload)
                if sni:
                    kind += f" (SNI {sni})"
        return f"TLS {kind}"
    return ""
