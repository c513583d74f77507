"""Every number tcpwatch shows, defined once: flow trackers -> plain dicts (the JSON schema of
`tcpwatch report --json`, documented in README.md, and what the dashboard reads).

Times are seconds (floats), sizes bytes, rates bytes per second. None means "not measured".
"""

from __future__ import annotations

from typing import Final

from ..capture.record import fmt_addr
from .badges import flow_badges
from .diagnosis import diagnose_flow
from .direction import Direction
from .exchange import exchange_summary
from .flow import Flow

SCHEMA_VERSION: Final = 5  # 2: exchanges, tls, diagnosis; 3: resends by trigger and verdict,
#                             the path's SRTT, zero-window probes of either form; 4: services,
#                             endpoints, processes, requests_counted, badges, DNS qtype;
#                             5: pgsql, mysql, http2, grpc exchanges, "app" per connection


def _s(ns: int | None) -> float | None:
    return None if ns is None else ns / 1e9


def direction_summary(d: Direction, duration_s: float, end_ts: int) -> dict:
    c = d.counts
    return {
        "packets": d.packets,
        "bytes": d.bytes,  # frame bytes on the wire, as tshark -z conv,tcp
        "payload_bytes": d.payload,  # TCP payload, retransmissions included
        "unique_payload_bytes": d.unique_payload,  # payload that advanced snd_nxt
        # goodput: new payload bytes per second over the whole connection
        "goodput": d.unique_payload / duration_s if duration_s > 0 else None,
        "rtt": d.rtt.as_dict(),  # RTT of data sent in this direction (RFC 6298, 7323)
        "window": {
            # advertised receive window of the *sender of this direction* (RFC 9293 3.8.6,
            # scaled per RFC 7323 2.3); scale None = unknown because no SYN was captured
            "scale": d.win_scale,
            "scale_known": d.win_scale is not None,
            "last": d.wnd_last, "min": d.wnd_min, "max": d.wnd_max,
            "zero_window_segments": c["zero_window"],
            "zero_window_events": d.zw_events,
            "zero_window_time": _s(d.zero_window_time(end_ts)),
            "zero_window_longest": _s(max(d.zw_longest_ns, end_ts - d.zw_start
                                          if d.zw_start is not None else 0)),
            "zero_window_open": d.zw_start is not None,
            # either form: 1 byte past the window, or Linux's snd_una - 1 with no data
            # (which tshark calls a keep-alive)
            "zero_window_probes": c["window_probe"],
            "zero_window_probe_acks": c["zero_window_probe_ack"],
            "window_full": c["window_full"],
            "window_updates": c["window_update"],
        },
        # bytes sent but not yet acknowledged: snd_nxt - snd_una (RFC 5681 FlightSize)
        "in_flight": {"last": d.inflight_last, "max": d.inflight_max},
        # segments sent again, read from first principles (retrans.py); total = rto + tlp +
        # fast (what triggered the resend) = lost + spurious + unconfirmed (was it needed)
        "retransmissions": {
            "total": c["resent"],
            "rto": c["resent_rto"],  # the retransmission timer expired (RFC 6298 5)
            "tlp": c["resent_tlp"],  # tail loss probes (RFC 8985 7)
            "fast": c["resent_fast"],  # the receiver reported the hole (RFC 5681 3.2, 6675)
            "lost": c["resent_lost"],  # the original was lost
            "spurious": c["resent_spurious"],  # the original had arrived: not needed
            "unconfirmed": c["resent"] - c["resent_lost"] - c["resent_spurious"],
            "spurious_dsack": c["spurious_dsack"],  # known by a D-SACK (RFC 2883, 3708)
            "spurious_eifel": c["spurious_eifel"],  # known by the echoed TSval (RFC 3522)
            "spurious_acked": c["spurious_acked"],  # already acknowledged when resent
            # the waits they caused, spurious ones excluded (seconds)
            "stall_rto": d.stall_rto / 1e9, "stall_tlp": d.stall_tlp / 1e9,
            "stall_fast": d.stall_fast / 1e9,
        },
        # reordering: originals that arrived after segments sent later (retrans.py)
        "out_of_order": c["late_original"],
        "out_of_order_max_late": _s(d.late_max_ns) if c["late_original"] else None,
        # below snd_nxt, and the capture cannot tell a late original from a resend
        "ambiguous": c["ambiguous"],
        "dsacks": c["dsack"],  # D-SACK blocks this side sent (duplicates it received)
        # the same datagram seen twice (same sequence and IPv4 id): the network or the capture
        # duplicated it; not a resend
        "duplicate_frames": c["duplicate_frame"],
        "lost_segments": c["lost_segment"],  # previous segment not captured
        "acked_unseen": c["ack_lost_segment"],  # ACKs data the capture never saw
        "duplicate_acks": c["duplicate_ack"],  # sent by this side (RFC 5681 2)
        # RFC 1122 4.2.3.6 (tshark's count, less the zero-window probes of Linux's form)
        "keep_alives": c["keep_alive"] - (c["window_probe"] - c["zero_window_probe"]),
        "keep_alive_acks": c["keep_alive_ack"],
        # Wireshark's tcp.analysis counts, by its field names and its rules (events.py)
        "events": c.tshark(),
    }


def main_direction(f: Flow) -> int:
    """The direction that carried more data."""
    c2s, s2c = f.dirs
    return 0 if c2s.unique_payload >= s2c.unique_payload else 1


def flow_srtt(f: Flow) -> float | None:
    """The connection's round trip, one definition for the table and the report. Data->ACK
    samples of client data time the capture point's round trip to the server, those of server
    data its round trip to the client; the connection's RTT is their sum (RFC 6298 2
    smoothing of each, over samples whose ACK the receiver did not hold: rtt.py). A direction
    that carried no data is stood in for by its half of the handshake (RFC 9293 3.5), as
    tshark's iRTT is the sum of both halves. Wherever the capture point sits, on either host
    or in between, this is the path's round trip."""
    parts = []
    for d in (0, 1):
        srtt = f.dirs[d].rtt.srtt
        if srtt is None:
            half = f._sender_rtt(1 - d)  # the capture point's round trip to the receiver
            srtt = half / 1e9 if half else None
        parts.append(srtt)
    known = [p for p in parts if p is not None]
    return sum(known) if known else None


def flow_resent(f: Flow) -> int:
    """Segments sent again on a connection, one definition for the table and the report: the
    data resends of both directions and the handshake's repeated SYNs and SYN-ACKs."""
    hs = f.handshake
    return (f.dirs[0].counts.resent + f.dirs[1].counts.resent + hs.syn_retransmissions
            + max(0, hs.synack_count - 1))


def flow_delayed_share(f: Flow) -> float | None:
    """Share of the connection's RTT samples whose ACK the receiver held (rtt.py): what the
    RTT would have read, had they been counted, is in each direction's `srtt_all`."""
    n = f.dirs[0].rtt.n + f.dirs[1].rtt.n
    return (f.dirs[0].rtt.n_held + f.dirs[1].rtt.n_held) / n if n else None


def endpoint(addr: bytes, port: int) -> dict:
    return {"addr": fmt_addr(addr), "port": port}


def flow_summary(f: Flow, capture_end: int | None = None) -> dict:
    end = f.last_ts
    duration = (end - f.first_ts) / 1e9
    c2s, s2c = f.dirs
    findings = diagnose_flow(f)
    return {
        "id": f.id,  # order of first packet, 0-based (equals tshark's tcp.stream)
        "ip_version": f.ipv,
        "client": endpoint(*f.client),
        "server": endpoint(*f.server),
        "roles_from": f.roles_from,  # syn | syn-ack | the heuristic used (table.py)
        "srtt": flow_srtt(f),  # the path's SRTT (flow_srtt): the table's SRTT column
        "resent": flow_resent(f),  # every segment sent again (flow_resent): the retx column
        "delayed_ack_share": flow_delayed_share(f),
        "start": f.first_ts / 1e9,  # epoch seconds
        "end": end / 1e9,
        "duration": duration,
        "first_frame": f.first_num, "last_frame": f.last_num,
        "state": f.life.conn_state(),  # Zeek conn_state
        "history": "".join(f.life.history),  # Zeek-style history letters
        "closed": f.closed,
        "reused_ports": f.reused,
        "handshake": f.handshake.as_dict(f.first_ts),
        "c2s": direction_summary(c2s, duration, end),
        "s2c": direction_summary(s2c, duration, end),
        # TLS handshake: SNI, version, 1 or 2 round trips, resumed (exchange.py, RFC 8446)
        "tls": _tls(f),
        # the message-level parser that followed it, and why some of it is unknown
        "app": None if f.exchanges.app is None and not f.exchanges.app_note else {
            "protocol": f.exchanges.app.name if f.exchanges.app is not None
            else f.exchanges.proto, "note": f.exchanges.app_note or None},
        "exchanges": [exchange_summary(x, f, f.exchanges) for x in f.exchanges.items],
        "exchanges_dropped": f.exchanges.dropped,
        "diagnosis": [x.as_dict() for x in findings],
        # the dashboard's problems column (badges.flow_badges), most severe first
        "badges": list(flow_badges(f, findings)),
    }


def _tls(f: Flow) -> dict | None:
    ex = f.exchanges
    if ex.tls is None:
        return None
    out = dict(ex.tls)
    out["handshake_done"] = None if ex.tls_done_ts is None else ex.tls_done_ts / 1e9
    out["handshake_time"] = None if ex.tls_done_ts is None else \
        ex.tls_done_ts / 1e9 - ex.tls["client_hello"]
    return out
