"""HTTP/2 over cleartext TCP (RFC 9113), and gRPC over it: one connection's two byte streams,
as the capture saw them, turned into stream events (request and response headers, DATA
progress, ends, resets, GOAWAY) and HTTP/2 flow-control stalls.

The caller (per connection) feeds each direction's in-order TCP payload: d=0 client->server,
d=1 server->client, with the packet's timestamp (ns) and capture frame number. Two ways in:

  prior knowledge  the client starts with the connection preface (RFC 9113 3.4),
  h2c upgrade      an HTTP/1.1 request with "Upgrade: h2c" and "HTTP2-Settings" (RFC 7540 3.2),
                   answered by "101 Switching Protocols"; the request becomes stream 1 and the
                   client then sends the preface.

A connection picked up mid-stream cannot be decoded (HPACK's dynamic table, RFC 7541 2.3.2,
is built from every header block since the start): both directions are reported lost.
looks_like_h2_preface() and is_h2c_upgrade() help the caller recognise the protocol.

Frames are parsed with hyperframe, header blocks with one hpack.Decoder per direction (the
dynamic table is per direction). DATA payloads are skipped by counting, never buffered.

Events, drained with H2Conn.take() (sid: stream id, d: sending direction, ts: ns, frame: the
capture frame that completed the HTTP/2 frame; fields: dict of str -> str | int):

  ("open", sid, ts, frame, fields)      first HEADERS of a client stream: method, path,
                                        authority, scheme, content-type, grpc-timeout (raw)
                                        and grpc-timeout-ns, and for gRPC (content-type
                                        application/grpc...) grpc-service and grpc-method
  ("req_end", sid, ts, frame)           END_STREAM from the client
  ("resp", sid, ts, frame, fields)      first final (non-1xx) response HEADERS: status (int,
                                        0 if missing), content-type
  ("data", sid, d, ts, frame, nbytes)   one DATA frame's payload bytes (padding excluded)
  ("resp_end", sid, ts, frame, fields)  END_STREAM from the server; fields: the trailers
                                        (grpc-status as int, grpc-message percent-decoded);
                                        {} when the stream ended with a DATA frame; for a
                                        trailers-only response only its grpc-* fields
  ("rst", sid, d, ts, frame, code)      RST_STREAM by d, the error code by name (RFC 9113 7)
  ("goaway", d, ts, frame, last_sid, code, debug)
  ("blocked", sid, d, ts, frame)        sender d's window reached 0 after a DATA frame that did
                                        not end the stream: stalled by HTTP/2 flow control
                                        (sid 0: the connection window, with a stream of d
                                        still open; else that stream's window)
  ("unblocked", sid, d, ts, frame)      a WINDOW_UPDATE (or SETTINGS_INITIAL_WINDOW_SIZE)
                                        reopened it; also when the stalled stream ends or is
                                        reset
  ("lost", d, reason)                   direction d cannot be parsed any further

Only streams tracked (at most MAX_STREAMS open at once) get events; header blocks of the
others are still decoded to keep HPACK in sync. Flow-control events stop once either
direction is lost or a flow-control frame was missed (the windows are unknown then).

Gaps: gap(d, nbytes) says bytes were lost. Inside a DATA payload (or another frame skipped by
counting) whose remaining length covers them, parsing goes on in sync; inside a SETTINGS,
WINDOW_UPDATE, RST_STREAM or GOAWAY payload that frame is dropped (flow control stops);
anywhere else, or when nbytes is unknown, the direction is lost: frame boundaries, and with
them the HPACK context, cannot be recovered.

Bounds: BUF_MAX bytes buffered per direction, a header block at most HEADER_BLOCK_MAX
(beyond: lost), decoded header lists at most HEADER_LIST_MAX, an HPACK table at most
TABLE_MAX, values VALUE_MAX characters, GOAWAY debug data DEBUG_MAX characters, trailers
TRAILERS_MAX fields.
"""

from __future__ import annotations

import base64
from typing import Any, Final

from hpack import Decoder  # type: ignore
from hyperframe.exceptions import HyperframeError  # type: ignore
from hyperframe.frame import FRAMES  # type: ignore

PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # RFC 9113 3.4 client connection preface
PREFACE_MIN: Final = 16  # a shorter prefix of the preface is not evidence enough

# frame types (RFC 9113 6)
DATA: Final = 0x0
HEADERS: Final = 0x1
PRIORITY: Final = 0x2
RST_STREAM: Final = 0x3
SETTINGS: Final = 0x4
PUSH_PROMISE: Final = 0x5
PING: Final = 0x6
GOAWAY: Final = 0x7
WINDOW_UPDATE: Final = 0x8
CONTINUATION: Final = 0x9

# flags (RFC 9113 6.1, 6.2, 6.5)
END_STREAM: Final = 0x1
ACK: Final = 0x1
END_HEADERS: Final = 0x4
PADDED: Final = 0x8

# settings (RFC 9113 6.5.2)
SETTINGS_HEADER_TABLE_SIZE: Final = 0x1
SETTINGS_INITIAL_WINDOW_SIZE: Final = 0x4
SETTINGS_MAX_FRAME_SIZE: Final = 0x5

DEFAULT_WINDOW: Final = 65_535  # RFC 9113 6.5.2 / 6.9.2: initial stream and connection window
DEFAULT_MAX_FRAME: Final = 16_384  # RFC 9113 4.2: SETTINGS_MAX_FRAME_SIZE initial value
MAX_FRAME_LIMIT: Final = (1 << 24) - 1  # RFC 9113 6.5.2: largest allowed SETTINGS_MAX_FRAME_SIZE

# error codes (RFC 9113 7)
ERROR_CODES: Final = {0x0: "NO_ERROR", 0x1: "PROTOCOL_ERROR", 0x2: "INTERNAL_ERROR",
                      0x3: "FLOW_CONTROL_ERROR", 0x4: "SETTINGS_TIMEOUT", 0x5: "STREAM_CLOSED",
                      0x6: "FRAME_SIZE_ERROR", 0x7: "REFUSED_STREAM", 0x8: "CANCEL",
                      0x9: "COMPRESSION_ERROR", 0xA: "CONNECT_ERROR",
                      0xB: "ENHANCE_YOUR_CALM", 0xC: "INADEQUATE_SECURITY",
                      0xD: "HTTP_1_1_REQUIRED"}

# gRPC over HTTP/2 (grpc/doc/PROTOCOL-HTTP2.md): Timeout -> TimeoutValue TimeoutUnit
GRPC_TIMEOUT_UNIT_NS: Final = {"H": 3_600_000_000_000, "M": 60_000_000_000, "S": 1_000_000_000,
                               "m": 1_000_000, "u": 1_000, "n": 1}

# bounds on what the wire can make us keep
BUF_MAX: Final = 65_536  # bytes buffered per direction (a frame header or a kept payload)
HEADER_BLOCK_MAX: Final = 65_536  # HEADERS + CONTINUATION fragments of one header block
HEADER_LIST_MAX: Final = 262_144  # decoded size of a header list (RFC 7541 4.1 accounting)
TABLE_MAX: Final = 65_536  # the largest HPACK dynamic table we follow
VALUE_MAX: Final = 512  # characters of a header value in the events
MESSAGE_RAW_MAX: Final = 4_096  # bytes of grpc-message percent-decoded
DEBUG_MAX: Final = 256  # characters of GOAWAY debug data in the events
GOAWAY_KEEP: Final = 8 + 1_024  # bytes of a GOAWAY payload kept (the rest is skipped)
TRAILERS_MAX: Final = 16  # trailer fields reported
MAX_STREAMS: Final = 1_024  # streams tracked at once; more are counted in H2Conn.untracked
H1_HEAD_MAX: Final = 16_384  # bytes of the HTTP/1.1 head of an h2c upgrade or its 101

# parser states of one direction
S_START: Final = 0  # nothing seen yet
S_H1: Final = 1  # inside an HTTP/1.1 head (h2c upgrade request or its response)
S_H1_BODY: Final = 2  # skipping the upgrade request's body
S_PREFACE: Final = 3  # client after an h2c upgrade request: the preface comes next
S_HDR: Final = 4  # reading a 9-byte frame header
S_BODY: Final = 5  # buffering a payload that is kept
S_SKIP: Final = 6  # skipping a payload by counting (DATA, PING, PRIORITY, unknown types)
S_LOST: Final = 7

NO_PREFACE: Final = "no connection preface: HPACK context unknown"
_BLOCK_FRAMES: Final = {HEADERS: "HEADERS", CONTINUATION: "CONTINUATION",
                        PUSH_PROMISE: "PUSH_PROMISE"}  # frames carrying header blocks
_HEX: Final = b"0123456789abcdefABCDEF"
_HTTP_TOKEN: Final = (b"!#$%&'*+-.^_`|~0123456789"  # tchar (RFC 9110 5.6.2)
                      b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")

Fields = dict[str, str | int]


def looks_like_h2_preface(data: bytes) -> bool:
    """The client connection preface, or (a short first segment) at least PREFACE_MIN bytes
    of it."""
    n = min(len(data), len(PREFACE))
    return n >= PREFACE_MIN and data[:n] == PREFACE[:n]


def looks_like_h2_frames(data: bytes) -> bool:
    """A segment of whole HTTP/2 frames (RFC 9113 4.1), one of them a HEADERS frame on a
    client stream (odd id): HTTP/2 picked up after its preface."""
    i, n, headers = 0, len(data), False
    while i < n:
        if i + 9 > n:
            return False
        ln = int.from_bytes(data[i:i + 3], "big")
        t = data[i + 3]
        sid = int.from_bytes(data[i + 5:i + 9], "big") & 0x7FFFFFFF
        if t > 9 or ln > 16384 or (t in (0, 1, 2, 3, 5, 9) and sid == 0) \
                or (t in (4, 6, 7) and sid != 0):
            return False
        headers = headers or (t == 1 and sid & 1 == 1)
        i += 9 + ln
    return i == n and headers


def is_h2c_upgrade(data: bytes) -> bool:
    """An HTTP/1.1 request head asking for h2c: "Upgrade: h2c" and an HTTP2-Settings header
    (RFC 7540 3.2). data: the first bytes of the client's payload (the head may be cut)."""
    end = data.find(b"\r\n\r\n")
    head = bytes(data[:end if end >= 0 else len(data)])
    sp = head.find(b" ")
    if sp <= 0 or not _is_token(head[:sp]):
        return False
    hdrs = _h1_headers(head)
    return "h2c" in _tokens(hdrs.get("upgrade", "")) and "http2-settings" in hdrs


def _is_token(b: bytes) -> bool:
    """Only tchars (RFC 9110 5.6.2): an HTTP method."""
    return not b.translate(None, _HTTP_TOKEN)


def _h1_headers(head: bytes) -> dict[str, str]:
    """Header fields of an HTTP/1.x head (after its start line), names lower-cased; the first
    of repeated fields, except Upgrade and Connection whose lists are joined."""
    out: dict[str, str] = {}
    for line in head.split(b"\r\n")[1:]:
        colon = line.find(b":")
        if colon <= 0:
            continue
        name = line[:colon].strip().decode("latin-1").lower()
        value = line[colon + 1:].strip().decode("latin-1")
        if name in out:
            if name in ("upgrade", "connection"):
                out[name] += "," + value
        else:
            out[name] = value
    return out


def _tokens(v: str) -> list[str]:
    return [t.strip().lower() for t in v.split(",")]


def _text(v: bytes) -> str:
    return v[:VALUE_MAX * 4].decode("utf-8", "replace")[:VALUE_MAX]


def error_name(code: int) -> str:
    return ERROR_CODES.get(code, f"0x{code:x}")


def grpc_message(v: bytes) -> str:
    """Percent-decode a grpc-message value (gRPC PROTOCOL-HTTP2.md: percent-encoded UTF-8; an
    invalid escape is kept as it is), bounded."""
    v = v[:MESSAGE_RAW_MAX]
    if b"%" not in v:
        return _text(v)
    out = bytearray()
    i = 0
    n = len(v)
    while i < n:
        c = v[i]
        if c == 0x25 and i + 2 < n and v[i + 1] in _HEX and v[i + 2] in _HEX:
            out.append(int(v[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(c)
            i += 1
    return _text(bytes(out))


def grpc_timeout_ns(v: str) -> int:
    """grpc-timeout in ns (1 to 8 digits and a unit), -1 if malformed."""
    n = v[:-1]
    if len(v) < 2 or len(v) > 9 or not (n.isascii() and n.isdigit()) \
            or v[-1] not in GRPC_TIMEOUT_UNIT_NS:
        return -1
    return int(v[:-1]) * GRPC_TIMEOUT_UNIT_NS[v[-1]]


def parse_settings(payload: bytes) -> dict[int, int]:
    """A SETTINGS payload (RFC 9113 6.5.1): 6-byte identifier/value pairs."""
    out: dict[int, int] = {}
    for i in range(0, len(payload) - len(payload) % 6, 6):
        out[int.from_bytes(payload[i:i + 2], "big")] = int.from_bytes(payload[i + 2:i + 6], "big")
    return out


class _Stream:
    """A tracked stream: per direction (0 client, 1 server) its send window, whether that side
    ended it and whether it is stalled."""

    __slots__ = ("sid", "win", "ended", "blocked", "resp")

    def __init__(self, sid: int, win0: int, win1: int) -> None:
        self.sid = sid
        self.win = [win0, win1]
        self.ended = [False, False]
        self.blocked = [False, False]
        self.resp = False  # a final response HEADERS was seen


class _Dir:
    """One direction's parser state; the flow-control fields are about this direction as the
    sender."""

    __slots__ = ("d", "state", "buf", "ftype", "fflags", "fsid", "flen", "keep", "skip",
                 "pad", "need_pad", "hb", "hb_sid", "hb_end", "hb_push", "decoder",
                 "max_frame", "want_settings", "ts", "frame", "lost", "conn_win", "init_win",
                 "conn_blocked")

    def __init__(self, d: int) -> None:
        self.d = d
        self.state = S_START
        self.buf = bytearray()
        self.ftype = -1  # the frame being read
        self.fflags = 0
        self.fsid = 0
        self.flen = 0
        self.keep = 0  # bytes of its payload kept (S_BODY)
        self.skip = 0  # bytes still to skip (S_SKIP, S_H1_BODY)
        self.pad = 0  # DATA pad length (-1: unknown)
        self.need_pad = False  # the next payload byte is the pad length
        self.hb = bytearray()  # header block being assembled from CONTINUATION frames
        self.hb_sid = 0  # its stream (0: none)
        self.hb_end = False  # its HEADERS had END_STREAM
        self.hb_push = False  # it is a PUSH_PROMISE's
        self.decoder = Decoder(HEADER_LIST_MAX)
        self.max_frame = DEFAULT_MAX_FRAME  # the largest frame the peer allowed us to send
        self.want_settings = False  # the next frame must be SETTINGS (a connection preface)
        self.ts = 0
        self.frame = 0
        self.lost = ""  # why this direction could not be parsed further
        self.conn_win = DEFAULT_WINDOW
        self.init_win = DEFAULT_WINDOW  # initial stream window (the peer's setting)
        self.conn_blocked = False


class H2Conn:
    """One HTTP/2 connection; see the module docstring for the events."""

    __slots__ = ("dirs", "streams", "events", "highest", "opened", "untracked", "pushed",
                 "mode", "fc", "bad_frames", "dropped_frames")

    def __init__(self) -> None:
        self.dirs = [_Dir(0), _Dir(1)]
        self.streams: dict[int, _Stream] = {}
        self.events: list[tuple[Any, ...]] = []
        self.highest = 0  # the highest client stream id seen
        self.opened = 0  # client streams opened
        self.untracked = 0  # of them, not tracked (more than MAX_STREAMS open)
        self.pushed = 0  # PUSH_PROMISEs (their streams are not tracked)
        self.mode = ""  # "prior-knowledge" or "h2c" once recognised
        self.fc = True  # flow-control windows are known
        self.bad_frames = 0  # frames with an invalid payload, ignored
        self.dropped_frames = 0  # control frames partly lost in a gap, ignored

    # ---- the caller's interface ------------------------------------------------------------
    def take(self) -> list[tuple[Any, ...]]:
        ev = self.events
        self.events = []
        return ev

    def lost(self, d: int) -> str:
        """Why direction d could not be parsed further ("" while it can)."""
        return self.dirs[d].lost

    def feed(self, d: int, data: bytes, ts: int, frame: int) -> None:
        st = self.dirs[d]
        n = len(data)
        if st.state == S_LOST or n == 0:
            return
        st.ts = ts
        st.frame = frame
        if st.state == S_SKIP and n < st.skip and not st.need_pad:
            st.skip -= n  # the hot path: a segment inside a DATA payload
            return
        mv = memoryview(data)
        i = 0
        while i < n:
            s = st.state
            if s == S_SKIP:
                if st.need_pad:
                    st.pad = data[i]
                    st.need_pad = False
                k = st.skip
                take = n - i if n - i < k else k
                i += take
                st.skip = k - take
                if st.skip == 0:
                    self._skipped(st)
            elif s == S_HDR:
                if not st.buf and n - i >= 9:
                    self._header(st, data[i:i + 9])
                    i += 9
                else:
                    take = min(9 - len(st.buf), n - i)
                    st.buf += mv[i:i + take]
                    i += take
                    if len(st.buf) == 9:
                        hdr = bytes(st.buf)
                        st.buf.clear()
                        self._header(st, hdr)
            elif s == S_BODY:
                keep = st.keep
                if not st.buf and n - i >= keep:
                    self._payload(st, mv[i:i + keep])
                    i += keep
                else:
                    take = min(keep - len(st.buf), n - i)
                    st.buf += mv[i:i + take]
                    i += take
                    if len(st.buf) == keep:
                        body = bytes(st.buf)
                        st.buf = bytearray()
                        self._payload(st, memoryview(body))
            elif s == S_LOST:
                return
            else:
                i = self._h1(st, data, i)

    def gap(self, d: int, nbytes: int = -1) -> None:
        """Bytes of direction d were lost (nbytes of them, -1 if unknown) between the last
        feed() and the next."""
        st = self.dirs[d]
        s = st.state
        if s == S_LOST:
            return
        if 0 < nbytes <= st.skip and s in (S_SKIP, S_H1_BODY):
            if st.need_pad:
                st.need_pad = False
                st.pad = -1
            st.skip -= nbytes
            if st.skip == 0:
                if s == S_SKIP:
                    self._skipped(st)
                else:
                    self._h1_body_end(st)
            return
        if (s == S_BODY and 0 < nbytes <= st.keep - len(st.buf)
                and st.ftype in (SETTINGS, WINDOW_UPDATE, RST_STREAM, GOAWAY)):
            # the frame is dropped; its length is known, so framing stays in sync
            self.dropped_frames += 1
            if st.ftype != GOAWAY:
                self.fc = False
            if st.ftype == SETTINGS:  # what it allowed the peer is unknown: allow the most
                other = self.dirs[1 - d]
                other.decoder.max_allowed_table_size = TABLE_MAX
                other.max_frame = MAX_FRAME_LIMIT
            st.skip = st.flen - len(st.buf) - nbytes
            st.buf = bytearray()
            st.ftype = -1
            st.state = S_SKIP
            if st.skip == 0:
                self._skipped(st)
            return
        if s == S_BODY and st.ftype in (HEADERS, CONTINUATION, PUSH_PROMISE) or st.hb_sid:
            self._lose(d, "gap inside a header block: HPACK context lost")
        elif s in (S_START, S_H1, S_PREFACE):
            self._lose(d, "gap before the connection preface: HPACK context unknown")
        else:
            size = f"{nbytes} bytes" if nbytes > 0 else "bytes"
            self._lose(d, f"gap: {size} missing, frame boundaries lost (HPACK context unknown)")

    # ---- framing ---------------------------------------------------------------------------
    def _lose(self, d: int, reason: str) -> None:
        st = self.dirs[d]
        if st.state == S_LOST:
            return
        st.state = S_LOST
        st.lost = reason
        st.buf = bytearray()
        st.hb = bytearray()
        self.fc = False
        self.events.append(("lost", d, reason))

    def _header(self, st: _Dir, b: bytes) -> None:
        length = (b[0] << 16) | (b[1] << 8) | b[2]
        t = b[3]
        fl = b[4]
        sid = ((b[5] & 0x7F) << 24) | (b[6] << 16) | (b[7] << 8) | b[8]
        d = st.d
        if st.want_settings:
            if t != SETTINGS or fl & ACK or sid != 0:
                self._lose(d, NO_PREFACE if d == 0 else
                           "no server connection preface (SETTINGS): HPACK context unknown")
                return
            st.want_settings = False
        if length > st.max_frame:
            self._lose(d, f"frame larger than SETTINGS_MAX_FRAME_SIZE ({length} > "
                          f"{st.max_frame}): out of sync")
            return
        if st.hb_sid and (t != CONTINUATION or sid != st.hb_sid):
            self._lose(d, "header block interrupted (CONTINUATION expected): out of sync")
            return
        st.ftype = t
        st.fflags = fl
        st.fsid = sid
        st.flen = length
        if t == DATA:
            if sid == 0:
                self._lose(d, "DATA on stream 0: out of sync")
                return
            st.pad = 0
            st.need_pad = bool(fl & PADDED) and length > 0
            st.skip = length
            st.state = S_SKIP
            if length == 0:
                self._skipped(st)
        elif t in (HEADERS, CONTINUATION, PUSH_PROMISE, SETTINGS, WINDOW_UPDATE, RST_STREAM,
                   GOAWAY):
            keep = min(length, GOAWAY_KEEP) if t == GOAWAY else length
            if keep > BUF_MAX:
                self._lose(d, f"frame too large to keep ({length} bytes)")
                return
            st.keep = keep
            if keep == 0:
                self._payload(st, memoryview(b""))
            else:
                st.state = S_BODY
        else:  # PRIORITY, PING, extension frames (RFC 9113 5.5): ignored
            st.skip = length
            st.state = S_SKIP
            if length == 0:
                st.state = S_HDR

    def _skipped(self, st: _Dir) -> None:
        """The end of a skipped payload."""
        st.state = S_HDR
        if st.ftype == DATA:
            self._data(st)

    def _payload(self, st: _Dir, payload: memoryview) -> None:
        """A kept payload (of the frame described in st) is complete."""
        d = st.d
        t = st.ftype
        st.state = S_HDR
        if st.flen > st.keep:  # a GOAWAY's long debug data: skip the rest
            st.skip = st.flen - st.keep
            st.state = S_SKIP
            st.ftype = -1
        try:
            f: Any = FRAMES[t](st.fsid)
            f.parse_flags(st.fflags)
            f.parse_body(payload)
        except HyperframeError as e:
            if t in (HEADERS, CONTINUATION, PUSH_PROMISE):
                self._lose(d, f"invalid {_BLOCK_FRAMES[t]} frame ({e}): HPACK context lost")
            else:
                self.bad_frames += 1
            return
        if t == HEADERS or t == PUSH_PROMISE:
            block = f.data
            push = t == PUSH_PROMISE
            if st.fflags & END_HEADERS:
                self._block(st, st.fsid, block, bool(st.fflags & END_STREAM) and not push, push)
            else:
                if len(block) > HEADER_BLOCK_MAX:
                    self._lose(d, "header block larger than 64 KiB: HPACK context lost")
                    return
                st.hb = bytearray(block)
                st.hb_sid = st.fsid
                st.hb_end = bool(st.fflags & END_STREAM) and not push
                st.hb_push = push
        elif t == CONTINUATION:
            if not st.hb_sid:
                self._lose(d, "CONTINUATION without HEADERS: out of sync")
                return
            st.hb += f.data
            if len(st.hb) > HEADER_BLOCK_MAX:
                self._lose(d, "header block larger than 64 KiB: HPACK context lost")
                return
            if st.fflags & END_HEADERS:
                block = bytes(st.hb)
                sid = st.hb_sid
                st.hb = bytearray()
                st.hb_sid = 0
                self._block(st, sid, block, st.hb_end, st.hb_push)
        elif t == SETTINGS:
            if not st.fflags & ACK:
                self._settings(d, f.settings)
        elif t == WINDOW_UPDATE:
            self._window(st, st.fsid, f.window_increment)
        elif t == RST_STREAM:
            self._rst(st, st.fsid, f.error_code)
        elif t == GOAWAY:
            debug = bytes(f.additional_data).decode("utf-8", "replace")[:DEBUG_MAX]
            self.events.append(("goaway", d, st.ts, st.frame, f.last_stream_id,
                                error_name(f.error_code), debug))

    # ---- HTTP/1.1 start: prior knowledge or h2c --------------------------------------------
    def _h1(self, st: _Dir, data: bytes, i: int) -> int:
        """The states before HTTP/2 framing; returns the index of the first byte not used."""
        d = st.d
        n = len(data)
        s = st.state
        if s == S_H1_BODY:
            take = min(st.skip, n - i)
            st.skip -= take
            if st.skip == 0:
                self._h1_body_end(st)
            return i + take
        if s == S_START and d == 1:
            if data[i] == 0x48:  # "H": an HTTP/1.1 response (to an h2c upgrade)
                st.state = S_H1
            else:
                st.state = S_HDR
                st.want_settings = True  # RFC 9113 3.4: the server preface is a SETTINGS
            return i
        if s == S_START or s == S_PREFACE:
            take = min(len(PREFACE) - len(st.buf), n - i)
            st.buf += data[i:i + take]
            if st.buf == PREFACE:
                st.buf = bytearray()
                st.state = S_HDR
                st.want_settings = True
                if not self.mode:
                    self.mode = "prior-knowledge"
                return i + take
            if PREFACE.startswith(st.buf):
                return i + take
            if s == S_PREFACE:
                self._lose(0, "h2c: no connection preface after the upgrade request")
                return n
            # maybe an h2c upgrade request: S_H1 takes this call's bytes again
            del st.buf[len(st.buf) - take:]
            st.state = S_H1
            return i
        # S_H1: collect the head
        old = len(st.buf)
        take = min(H1_HEAD_MAX + 4 - old, n - i)
        st.buf += data[i:i + take]
        sp = st.buf.find(b" ")
        if d == 0 and (sp == 0 or not _is_token(bytes(st.buf[:sp if sp > 0 else 64]))):
            self._lose_both(NO_PREFACE)
            return n
        end = st.buf.find(b"\r\n\r\n", old - 3 if old > len(PREFACE) else 0)
        if end < 0:
            if len(st.buf) > H1_HEAD_MAX:
                self._lose(d, "HTTP/1.1 head too long: not an h2c upgrade")
                return n
            return i + take
        head = bytes(st.buf[:end])
        rest = len(st.buf) - (end + 4)
        st.buf = bytearray()
        nxt = max(i, i + take - rest)
        if d == 0:
            self._h1_request(st, head)
        else:
            self._h1_response(st, head)
        return nxt

    def _lose_both(self, reason: str) -> None:
        self._lose(0, reason)
        self._lose(1, reason)

    def _h1_request(self, st: _Dir, head: bytes) -> None:
        hdrs = _h1_headers(head)
        if "h2c" not in _tokens(hdrs.get("upgrade", "")) or "http2-settings" not in hdrs:
            self._lose_both("HTTP/1.x without an h2c upgrade: " + NO_PREFACE)
            return
        if "transfer-encoding" in hdrs:
            self._lose(0, "h2c upgrade request with a chunked body: not followed")
            return
        self.mode = "h2c"
        raw = hdrs["http2-settings"].strip().encode("latin-1")
        try:
            settings = parse_settings(base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4)))
        except ValueError:
            settings = {}
        self._settings(0, settings)  # RFC 7540 3.2.1: the client's settings
        line = head.split(b"\r\n", 1)[0].split(b" ")
        fields: Fields = {"method": _text(line[0]), "path": _text(line[1]) if len(line) > 1
                          else "", "authority": hdrs.get("host", "")[:VALUE_MAX],
                          "scheme": "http"}
        if "content-type" in hdrs:
            fields["content-type"] = hdrs["content-type"][:VALUE_MAX]
        self.highest = 1
        self.opened += 1
        s = _Stream(1, self.dirs[0].init_win, self.dirs[1].init_win)
        self.streams[1] = s
        self.events.append(("open", 1, st.ts, st.frame, fields))
        try:
            clen = int(hdrs.get("content-length", "0"))
        except ValueError:
            clen = 0
        if clen > 0:
            st.skip = clen
            st.state = S_H1_BODY
        else:
            self._h1_body_end(st)

    def _h1_body_end(self, st: _Dir) -> None:
        st.state = S_PREFACE
        s = self.streams.get(1)
        if s is not None:
            self._end(st, s, {})

    def _h1_response(self, st: _Dir, head: bytes) -> None:
        parts = head[:64].split(b" ", 2)
        try:
            status = int(parts[1])
        except (IndexError, ValueError):
            status = 0
        if status == 101:
            st.state = S_HDR
            st.want_settings = True
        elif 100 <= status < 200:
            st.state = S_H1  # an interim response; the 101 or the final one follows
        else:
            self._lose_both(f"h2c upgrade not accepted (HTTP {status})")

    # ---- streams ---------------------------------------------------------------------------
    def _block(self, st: _Dir, sid: int, block: bytes, end_stream: bool, push: bool) -> None:
        try:
            hdrs: Any = st.decoder.decode(block, raw=True)  # (name, value) bytes pairs
        except Exception as e:  # hpack's errors, or anything a hostile block provokes
            self._lose(st.d, f"HPACK decoding failed ({type(e).__name__}): context lost")
            return
        if push:
            self.pushed += 1
            return
        h: dict[bytes, bytes] = {}
        for name, value in hdrs:
            if name not in h:
                h[name] = value
        if st.d == 0:
            self._client_headers(st, sid, h, end_stream)
        else:
            self._server_headers(st, sid, hdrs, h, end_stream)

    def _new_stream(self, sid: int) -> _Stream | None:
        self.highest = sid
        self.opened += 1
        if len(self.streams) >= MAX_STREAMS:
            self.untracked += 1
            return None
        s = _Stream(sid, self.dirs[0].init_win, self.dirs[1].init_win)
        self.streams[sid] = s
        return s

    def _client_headers(self, st: _Dir, sid: int, h: dict[bytes, bytes],
                        end_stream: bool) -> None:
        s = self.streams.get(sid)
        if s is None:
            if sid % 2 == 0 or sid <= self.highest:
                return  # closed, untracked or invalid
            s = self._new_stream(sid)
            if s is None:
                return
            fields: Fields = {}
            for key, name in (("method", b":method"), ("path", b":path"),
                              ("authority", b":authority"), ("scheme", b":scheme"),
                              ("content-type", b"content-type")):
                v = h.get(name)
                if v is not None:
                    fields[key] = _text(v)
            timeout = h.get(b"grpc-timeout")
            if timeout is not None:
                t = _text(timeout)
                fields["grpc-timeout"] = t
                fields["grpc-timeout-ns"] = grpc_timeout_ns(t)
            ct = h.get(b"content-type", b"")
            if ct.startswith(b"application/grpc"):
                parts = h.get(b":path", b"").split(b"/")
                if len(parts) == 3 and not parts[0]:
                    fields["grpc-service"] = _text(parts[1])
                    fields["grpc-method"] = _text(parts[2])
            self.events.append(("open", sid, st.ts, st.frame, fields))
        if end_stream and not s.ended[0]:
            self._end(st, s, {})

    def _server_headers(self, st: _Dir, sid: int, hdrs: list[tuple[bytes, bytes]],
                        h: dict[bytes, bytes], end_stream: bool) -> None:
        s = self.streams.get(sid)
        if s is None:
            # the client's side was lost: streams are known from the responses alone
            if not (self.dirs[0].lost and sid % 2 == 1 and sid > self.highest):
                return
            s = self._new_stream(sid)
            if s is None:
                return
        trailers_only = False
        if not s.resp:
            try:
                status = int(h.get(b":status", b"0"))
            except ValueError:
                status = 0
            if 100 <= status < 200 and not end_stream:
                return  # informational (RFC 9110 15.2); the final response follows
            s.resp = True
            fields: Fields = {"status": status}
            ct = h.get(b"content-type")
            if ct is not None:
                fields["content-type"] = _text(ct)
            self.events.append(("resp", sid, st.ts, st.frame, fields))
            trailers_only = True
        if end_stream and not s.ended[1]:
            trailers: Fields = {}
            for name, value in hdrs:
                if len(trailers) >= TRAILERS_MAX:
                    break
                if name[:1] == b":" or trailers_only and not name.startswith(b"grpc-"):
                    continue
                key = name.decode("latin-1")[:VALUE_MAX]
                if key in trailers:
                    continue
                if name == b"grpc-status":
                    try:
                        trailers[key] = int(value)
                    except ValueError:
                        trailers[key] = _text(value)
                elif name == b"grpc-message":
                    trailers[key] = grpc_message(value)
                else:
                    trailers[key] = _text(value)
            self._end(st, s, trailers)

    def _end(self, st: _Dir, s: _Stream, fields: Fields) -> None:
        """END_STREAM from st's side of stream s."""
        d = st.d
        s.ended[d] = True
        if s.blocked[d]:
            s.blocked[d] = False
            self.events.append(("unblocked", s.sid, d, st.ts, st.frame))
        if d == 0:
            self.events.append(("req_end", s.sid, st.ts, st.frame))
        else:
            self.events.append(("resp_end", s.sid, st.ts, st.frame, fields))
        if s.ended[1 - d]:
            del self.streams[s.sid]

    def _rst(self, st: _Dir, sid: int, code: int) -> None:
        s = self.streams.pop(sid, None)
        if s is None:
            return
        for k in (0, 1):
            if s.blocked[k]:
                self.events.append(("unblocked", sid, k, st.ts, st.frame))
        self.events.append(("rst", sid, st.d, st.ts, st.frame, error_name(code)))

    # ---- flow control (RFC 9113 5.2, 6.9) --------------------------------------------------
    def _data(self, st: _Dir) -> None:
        """A DATA frame of st.flen bytes from st's side is complete."""
        d = st.d
        length = st.flen
        st.conn_win -= length
        s = self.streams.get(st.fsid)
        end = bool(st.fflags & END_STREAM)
        if s is not None:
            if st.fflags & PADDED:
                nb = length - 1 - st.pad if st.pad >= 0 else length - 1
            else:
                nb = length
            if nb > 0:
                self.events.append(("data", s.sid, d, st.ts, st.frame, nb))
            s.win[d] -= length
            if self.fc and not end and s.win[d] <= 0 and not s.blocked[d]:
                s.blocked[d] = True
                self.events.append(("blocked", s.sid, d, st.ts, st.frame))
            if end and not s.ended[d]:
                self._end(st, s, {})
        if self.fc and st.conn_win <= 0 and not st.conn_blocked:
            for o in self.streams.values():
                if not o.ended[d]:
                    st.conn_blocked = True
                    self.events.append(("blocked", 0, d, st.ts, st.frame))
                    break

    def _window(self, st: _Dir, sid: int, inc: int) -> None:
        """WINDOW_UPDATE from st's side: more room for the other side's DATA."""
        o = 1 - st.d
        if sid == 0:
            so = self.dirs[o]
            so.conn_win += inc
            if so.conn_blocked and so.conn_win > 0:
                so.conn_blocked = False
                if self.fc:
                    self.events.append(("unblocked", 0, o, st.ts, st.frame))
            return
        s = self.streams.get(sid)
        if s is not None:
            s.win[o] += inc
            if s.blocked[o] and s.win[o] > 0:
                s.blocked[o] = False
                if self.fc:
                    self.events.append(("unblocked", sid, o, st.ts, st.frame))

    def _settings(self, d: int, settings: dict[int, int]) -> None:
        """SETTINGS from side d: they bound what the other side sends."""
        other = self.dirs[1 - d]
        st = self.dirs[d]
        for key, value in settings.items():
            if key == SETTINGS_HEADER_TABLE_SIZE:
                # followed leniently (before the ACK too); the encoder's own size updates in
                # its header blocks are what the decoder follows
                dec = other.decoder
                dec.max_allowed_table_size = max(dec.max_allowed_table_size,
                                                 min(value, TABLE_MAX))
            elif key == SETTINGS_INITIAL_WINDOW_SIZE:
                delta = value - other.init_win
                other.init_win = value
                o = other.d
                for s in self.streams.values():
                    s.win[o] += delta  # RFC 9113 6.9.2: applies to open streams
                    if s.blocked[o] and s.win[o] > 0:
                        s.blocked[o] = False
                        if self.fc:
                            self.events.append(("unblocked", s.sid, o, st.ts, st.frame))
            elif key == SETTINGS_MAX_FRAME_SIZE:
                other.max_frame = max(other.max_frame, min(value, MAX_FRAME_LIMIT))
