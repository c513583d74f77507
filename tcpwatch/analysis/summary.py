"""Every number tcpwatch shows, defined once: flow trackers -> plain dicts (the JSON schema of
`tcpwatch report --json`, documented in README.md, and what the dashboard reads).

Times are seconds (floats), sizes bytes, rates bytes per second. None means "not measured".
"""

from __future__ import annotations

from typing import Final

from ..capture.record import fmt_addr
from .diagnosis import diagnose_flow
from .direction import Direction
from .exchange import exchange_summary
from .flow import Flow

SCHEMA_VERSION: Final = 2  # 2: exchanges, tls, diagnosis


def _s(ns: int | None) -> float | None:
    return None if ns is None else ns / 1e9


def direction_summary(d: Direction, duration_s: float, end_ts: int) -> dict:
    c = d.counts
    fast = c["fast_retransmission"] + c["sack_recovery"]
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
            "zero_window_probes": c["zero_window_probe"],
            "zero_window_probe_acks": c["zero_window_probe_ack"],
            "window_full": c["window_full"],
            "window_updates": c["window_update"],
        },
        # bytes sent but not yet acknowledged: snd_nxt - snd_una (RFC 5681 FlightSize)
        "in_flight": {"last": d.inflight_last, "max": d.inflight_max},
        "retransmissions": {
            # total: every segment resent (as tshark's tcp.analysis.retransmission), plus
            # holes the receiver reported that tshark calls out-of-order ("sack_recovery")
            "total": c["retransmission"] + c["ooo_resent"],
            "rto": c["rto_retransmission"],  # resent after the timer expired (RFC 6298 5)
            "fast": fast,  # resent on dup-ACKs / SACK (RFC 5681 3.2, RFC 6675)
            "spurious": c["spurious_retransmission"],  # resent data already acknowledged
        },
        # reordering: tshark's out-of-order minus the holes the receiver had reported
        "out_of_order": c["out_of_order"] - c["ooo_resent"],
        "tshark_out_of_order_resent": c["ooo_resent"],
        "lost_segments": c["lost_segment"],  # previous segment not captured
        "acked_unseen": c["ack_lost_segment"],  # ACKs data the capture never saw
        "duplicate_acks": c["duplicate_ack"],  # sent by this side (RFC 5681 2)
        "keep_alives": c["keep_alive"],  # RFC 1122 4.2.3.6
        "keep_alive_acks": c["keep_alive_ack"],
        "events": dict(c.items()),  # raw per-segment analysis counts, named as tshark's fields
    }


def endpoint(addr: bytes, port: int) -> dict:
    return {"addr": fmt_addr(addr), "port": port}


def flow_summary(f: Flow, capture_end: int | None = None) -> dict:
    end = f.last_ts
    duration = (end - f.first_ts) / 1e9
    c2s, s2c = f.dirs
    orig_bytes, resp_bytes = c2s.unique_payload, s2c.unique_payload
    return {
        "id": f.id,  # order of first packet, 0-based (equals tshark's tcp.stream)
        "ip_version": f.ipv,
        "client": endpoint(*f.client),
        "server": endpoint(*f.server),
        "roles_from": f.roles_from,  # syn | syn-ack | the heuristic used (table.py)
        "start": f.first_ts / 1e9,  # epoch seconds
        "end": end / 1e9,
        "duration": duration,
        "first_frame": f.first_num, "last_frame": f.last_num,
        "state": f.life.conn_state(orig_bytes, resp_bytes),  # Zeek conn_state
        "history": "".join(f.life.history),  # Zeek-style history letters
        "closed": f.closed,
        "reused_ports": f.reused,
        "handshake": f.handshake.as_dict(f.first_ts),
        "c2s": direction_summary(c2s, duration, end),
        "s2c": direction_summary(s2c, duration, end),
        # TLS handshake: SNI, version, 1 or 2 round trips, resumed (exchange.py, RFC 8446)
        "tls": _tls(f),
        "exchanges": [exchange_summary(x, f, f.exchanges) for x in f.exchanges.items],
        "exchanges_dropped": f.exchanges.dropped,
        "diagnosis": [x.as_dict() for x in diagnose_flow(f)],
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
