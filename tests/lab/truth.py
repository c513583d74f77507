"""The link's log (tests/lab/link.py) turned into what a capture can know, at either end.

dumpcap runs in one namespace. It sees every packet that side SENT, before the link did
anything to it, and only what the link DELIVERED to that side, in delivery order:

* from the capture side (the sender is here): every copy the sender sent, dropped or not; its
  resends are all visible; nothing is out of order (the link reorders after the capture).
* to the capture side (the receiver is here): only delivered copies. A delivered original that
  came after a higher sequence number is out of order. A delivered resend is visible unless it
  looks new: no byte of it was delivered before and it starts at or above the highest byte
  delivered so far (e.g. the repair of a dropped tail whose earlier copies were all dropped).

Directions: "c2s" is what the client (namespace A) sent, the link's "ab"; "s2c" is "ba".
Pure functions over the JSON; nothing here runs anything.
"""

from __future__ import annotations

LINK_DIR = {"c2s": "ab", "s2c": "ba"}


def flows(log: dict) -> dict[int, dict]:
    """Every connection in the log by client port: {"c2s": [packets], "s2c": [packets]}."""
    out: dict[int, dict] = {}
    for p in log["packets"]:
        port = p["sport"] if p["dir"] == "ab" else p["dport"]
        d = "c2s" if p["dir"] == "ab" else "s2c"
        out.setdefault(port, {"c2s": [], "s2c": []})[d].append(p)
    return out


def _sent_view(packets: list[dict]) -> dict:
    data = [p for p in packets if p["len"]]
    resends = [p for p in data if p["resend"]]
    return _counts(data, resends, late=[])


def _received_view(packets: list[dict]) -> dict:
    data = sorted((p for p in packets if p["len"] and p["out"] is not None),
                  key=lambda p: p["out"])
    covered: list[tuple[int, int]] = []
    top = 0  # end of the highest byte delivered
    resends = []
    for p in data:
        lo, hi = p["rseq"], p["rseq"] + p["len"]
        seen_before = any(a < hi and lo < b for a, b in covered)
        if p["resend"] and (seen_before or lo < top):
            resends.append(p)
        covered.append((lo, hi))
        top = max(top, hi)
    return _counts(data, resends, late=[p for p in data if p["late"]])


def _counts(data: list[dict], resends: list[dict], late: list[dict]) -> dict:
    spurious = [p for p in resends if p["spurious"]]
    return {"data": len(data),
            "retransmissions": len(resends),
            "spurious": len(spurious),
            "lost": len(resends) - len(spurious),  # resends that repaired a real loss
            "out_of_order": len(late),
            "resends": [{"rseq": p["rseq"], "len": p["len"], "t": p["t"],
                         "silence": p["silence"], "spurious": p["spurious"],
                         "fate": p["fate"]} for p in resends],
            "late": [{"rseq": p["rseq"], "len": p["len"], "t": p["t"], "out": p["out"]}
                     for p in late]}


def visible(log: dict, capture_in: str) -> dict[int, dict]:
    """Per connection (client port), per direction, the truth as seen where dumpcap ran
    ("client" or "server")."""
    out = {}
    for port, dirs in flows(log).items():
        out[port] = {}
        for d, packets in dirs.items():
            sent_here = (d == "c2s") == (capture_in == "client")
            out[port][d] = _sent_view(packets) if sent_here else _received_view(packets)
    return out


def link_totals(log: dict) -> dict:
    """The link's own per-direction totals, under c2s/s2c names."""
    return {d: log["totals"][ld] for d, ld in LINK_DIR.items()}


def _delivered(p: dict) -> bool:
    return p["out"] is not None


def _first_acks(log: dict, client_port: int, d: str):
    """Each original data segment of direction d that the link delivered (Karn: no
    resends), with the first ACK covering it that reached the link after it was delivered."""
    dirs = flows(log)[client_port]
    acks = [p for p in dirs["s2c" if d == "c2s" else "c2s"] if _delivered(p)
            and p["rack"] is not None]
    for seg in dirs[d]:
        if not seg["len"] or seg["resend"] or not _delivered(seg):
            continue
        end = seg["rseq"] + seg["len"]
        ack = next((a for a in acks if a["rack"] >= end and a["t"] >= seg["out"]), None)
        if ack is not None:
            yield seg, ack


def round_trips(log: dict, client_port: int, d: str = "c2s") -> list[float]:
    """Round trips the link gave the data of one direction, as the sender's side sees them:
    from the segment reaching the link to the first ACK covering it leaving the link (the
    sender's namespace is a TUN device away from the link). Originals only (Karn)."""
    return [ack["out"] - seg["t"] for seg, ack in _first_acks(log, client_port, d)]


def handshake_rtt(log: dict, client_port: int) -> float | None:
    """SYN reaching the link -> the SYN-ACK leaving it: the handshake round trip at the
    client, as the link made it (the client answers the SYN-ACK at once)."""
    dirs = flows(log)[client_port]
    syn = [p for p in dirs["c2s"] if "S" in p["flags"] and _delivered(p)]
    synack = [p for p in dirs["s2c"] if "S" in p["flags"] and _delivered(p)]
    if not syn or not synack:
        return None
    return synack[0]["out"] - syn[-1]["t"]


def exchanges(log: dict, client_port: int) -> list[dict]:
    """Each request (a run of client data) and the response that follows, timed by the link:
    "think" = the request's last segment delivered to the server -> the response's first
    segment reaching the link (the server's own time); "network" = the link's delay on the
    request's last segment plus on the response's first (the round trip inside the wait)."""
    packets = sorted((p for p in flows(log)[client_port]["c2s"] + flows(log)[client_port]["s2c"]
                      if p["len"] and not p["resend"] and _delivered(p)), key=lambda p: p["t"])
    out, request = [], None
    for p in packets:
        if p["dir"] == "ab":
            request = p
        elif request is not None:
            out.append({"think": p["t"] - request["out"],
                        "network": (request["out"] - request["t"]) + (p["out"] - p["t"])})
            request = None
    return out


def path_rtts(log: dict, client_port: int, d: str) -> list[dict]:
    """Per original data segment of direction d that was delivered, with the first ACK
    covering it: "path" = the link's delay on the segment plus on the ACK (the network's
    round trip), "hold" = how long the receiver kept the ACK (its delayed ACK, not the
    network's)."""
    return [{"path": (seg["out"] - seg["t"]) + (ack["out"] - ack["t"]),
             "hold": ack["t"] - seg["out"]} for seg, ack in _first_acks(log, client_port, d)]


def zero_window_probes(log: dict, client_port: int, d: str) -> int:
    """Probes sent in direction d while the peer's window was zero (RFC 9293 3.8.6.1), as
    the link received them: a segment with no new data, sent while the last window the
    link had delivered to the sender was 0. Linux probes with seq = snd_una - 1 and no
    data; others send one byte past the window."""
    dirs = flows(log)[client_port]
    back = "s2c" if d == "c2s" else "c2s"
    windows = sorted((p["out"], p["window"]) for p in dirs[back] if _delivered(p)
                     and "S" not in p["flags"])
    probes = 0
    for p in dirs[d]:
        seen = [w for out, w in windows if out <= p["t"]]
        if seen and seen[-1] == 0 and not {"S", "F", "R"} & set(p["flags"]) and \
                (p["len"] == 0 and p["rack"] is not None and p.get("resend") is None
                 and _below_una(p, dirs[back]) or p["len"] == 1):
            probes += 1
    return probes


def _below_una(p: dict, acks: list[dict]) -> bool:
    """The segment's sequence number is one below what the peer had acknowledged."""
    acked = [a["rack"] for a in acks if a["rack"] is not None and _delivered(a)
             and a["out"] <= p["t"]]
    return bool(acked) and p["rseq"] == max(acked) - 1


def request_spreads(log: dict, client_port: int) -> list[float]:
    """Per request (the client's data between two responses), the time from its first to
    its last segment reaching the link: what the client's stack made the request's tail
    wait (Nagle holding a small write for the ACK of the one before)."""
    dirs = flows(log)[client_port]
    packets = sorted((p for p in dirs["c2s"] + dirs["s2c"] if p["len"] and not p["resend"]),
                     key=lambda p: p["t"])
    out, first, last = [], None, None
    for p in packets:
        if p["dir"] == "ab":
            first = first if first is not None else p["t"]
            last = p["t"]
        elif first is not None:
            out.append(last - first)
            first = None
    if first is not None:
        out.append(last - first)
    return out
