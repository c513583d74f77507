"""A userspace link between two TUN devices (netem does not exist on these kernels): packets read
from one device are written to the other after a fixed one-way delay, with deterministic loss,
holds and freezes per direction. What the link did is the lab's ground truth, written as JSON
on exit (SIGTERM).

    python link.py DEV_A DEV_B --stats FILE [--delay-ms 20] [--syn-drop K]
                   [--loss-ab N] [--loss-ba N]
                   [--drop-ab SEL[+K]] [--drop-ba SEL[+K]]       (each may repeat)
                   [--hold-ab SEL@MS] [--hold-ba SEL@MS]
                   [--freeze-ab SEL@MS] [--freeze-ba SEL@MS]

A is the client side, B the server side; "ab" is what A sends to B. The devices must exist (ip
tuntap add) and be attachable: this process opens them before they are moved into their
namespaces.

Selectors pick ORIGINAL data segments of one direction (a segment none of whose bytes the link
had seen before; resends are never picked), over every connection:
    seg:N     the Nth original data segment, counted from 1
    byte:N    the original data segment carrying relative byte N (the first data byte is 1,
              as Wireshark numbers them): with known request and response sizes, this hits
              e.g. the last segment of the second response however the sender segmented it
              (Linux sets PSH on many segments of one write, so PSH marks no write's end)

--loss-xy N         drop every Nth data segment (originals and resends alike) from x to y
--syn-drop K        drop the first K SYNs from A
--drop-xy SEL+K     drop the selected segment and the next K segments of that connection and
                    direction that carry its first byte again (its resends: a tail loss probe,
                    an RTO); K defaults to 0
--hold-xy SEL@MS    deliver the selected segment MS ms late; later segments pass it (reordering)
--freeze-xy SEL@MS  hold EVERY packet from x for MS ms, starting when the link forwards the
                    segment SEL of the OTHER direction (y to x); the held packets leave in order
                    when the freeze ends, then travel the delay. E.g. --freeze-ab byte:6042@100
                    delays the client's ACKs by 100 ms from the moment the first segment of a
                    second 6,000 B response (41 B of headers) reaches the client.

The JSON (times are epoch seconds, the clock dumpcap stamps packets with):
    "packets": every TCP packet received, in order: i, t (received), dir ("ab"/"ba"), src,
        sport, dst, dport, seq, ack, rseq/rack (relative to the ISNs: the SYN is 0, as
        Wireshark shows), len (payload), flags ("FSRPAU" letters), win (the raw field),
        wscale (a SYN's option), window (advertised, in bytes: scaled once both SYNs offered
        scaling), tsval, tsecr, sack (SACK blocks, absolute), fate ("forwarded" / "held" /
        "dropped" / "undelivered": still queued at exit), out (time written to the other
        side, or null), held_ms (beyond the delay), why (the rule that dropped or held it);
        data segments also carry
        resend      the sender had sent some of these bytes before (as the link saw)
        spurious    a resend every byte of which reached the receiver in another copy: one
                    delivered before it, or an earlier one the link was still holding
        late        an original delivered after a segment with a higher sequence number of
                    the same connection and direction (reordering the link caused)
        silence     resends only: seconds since the previous packet of that sender
    "totals": {"ab": {...}, "ba": {...}} and "flows": [{"client", "server", "ab", "ba"}]: counts
        of packets, data, originals, resends, spurious, late, dropped, dropped_data, held.
    The old counters stay: forwarded_xy, dropped_xy (data segments dropped), dropped_syn,
    data_xy, dropped_frames_xy (absolute sequence numbers of the dropped data segments).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import heapq
import json
import os
import select
import signal
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000

TH_FIN = 0x01  # no more data from sender
TH_SYN = 0x02  # synchronize sequence numbers
TH_RST = 0x04  # reset the connection
TH_PSH = 0x08  # push: the end of a write
TH_ACK = 0x10  # acknowledgment field significant
TH_URG = 0x20  # urgent pointer field significant
FLAG_LETTERS = ((TH_FIN, "F"), (TH_SYN, "S"), (TH_RST, "R"), (TH_PSH, "P"), (TH_ACK, "A"),
                (TH_URG, "U"))
OPT_EOL = 0  # end of option list (RFC 9293)
OPT_NOP = 1  # no-operation (RFC 9293)
OPT_WSCALE = 3  # window scale, SYN only (RFC 7323 2)
OPT_SACK = 5  # selective acknowledgment blocks (RFC 2018)
OPT_TIMESTAMP = 8  # TSval, TSecr (RFC 7323 3)

SEQ_MOD = 1 << 32


def open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def parse_tcp(pkt: bytes) -> dict | None:
    """The TCP header fields of an IPv4 TCP packet, else None."""
    if len(pkt) < 40 or pkt[0] >> 4 != 4 or pkt[9] != 6:
        return None
    ihl = (pkt[0] & 15) * 4
    total = struct.unpack_from("!H", pkt, 2)[0]
    sport, dport, seq, ack, off_flags, win = struct.unpack_from("!HHIIHH", pkt, ihl)
    doff = (off_flags >> 12) * 4
    flags = off_flags & 0x3F
    tsval = tsecr = wscale = None
    sack: list[list[int]] = []
    opts = pkt[ihl + 20:ihl + doff]
    i = 0
    while i < len(opts):
        kind = opts[i]
        if kind == OPT_EOL:
            break
        if kind == OPT_NOP:
            i += 1
            continue
        if i + 1 >= len(opts) or opts[i + 1] < 2:
            break
        size = opts[i + 1]
        body = opts[i + 2:i + size]
        if kind == OPT_WSCALE and len(body) == 1:
            wscale = min(body[0], 14)
        elif kind == OPT_TIMESTAMP and len(body) == 8:
            tsval, tsecr = struct.unpack("!II", body)
        elif kind == OPT_SACK:
            sack = [list(struct.unpack_from("!II", body, j)) for j in range(0, len(body) - 7, 8)]
        i += size
    return {"src": ".".join(map(str, pkt[12:16])), "sport": sport,
            "dst": ".".join(map(str, pkt[16:20])), "dport": dport, "seq": seq, "ack": ack,
            "len": total - ihl - doff, "flags": flags, "win": win, "wscale": wscale,
            "tsval": tsval, "tsecr": tsecr,
            "sack": sack}


def flag_text(flags: int) -> str:
    return "".join(letter for bit, letter in FLAG_LETTERS if flags & bit)


def parse_selector(text: str) -> tuple[str, int]:
    kind, _, n = text.partition(":")
    if kind not in ("seg", "byte") or not n.isdigit() or int(n) < 1:
        raise argparse.ArgumentTypeError(f"selector {text!r}: seg:N or byte:N")
    return kind, int(n)


def drop_rule(text: str) -> dict:
    sel, _, copies = text.partition("+")
    return {"sel": parse_selector(sel), "copies": int(copies or 0), "byte": None,
            "fired": False, "text": text}


def timed_rule(text: str) -> dict:
    sel, _, ms = text.partition("@")
    try:
        hold = float(ms)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: SELECTOR@MS") from None
    return {"sel": parse_selector(sel), "ms": hold, "text": text, "window": None,
            "fired": False}


def matches(sel: tuple[str, int], rec: dict) -> bool:
    """Whether an original data segment (its log record) is the one the selector names."""
    kind, n = sel
    if kind == "seg":
        return rec["number"] == n
    return rec["rseq"] <= n < rec["rseq"] + rec["len"]


class Half:
    """One direction of one connection, as the link saw it: sequence numbers relative to the
    ISN, the highest byte received (anything below was sent before) and delivered."""

    def __init__(self) -> None:
        self.isn: int | None = None
        self.high = 0  # relative end of the highest byte received from the sender
        self.top_delivered = -1  # highest relative start delivered
        self.last_t: float | None = None  # when the sender's previous packet arrived
        self.wscale: int | None = None  # the shift its SYN offered (RFC 7323)

    def rel(self, seq: int) -> int:
        if self.isn is None:  # no SYN seen: start counting here, as Wireshark would
            self.isn = (seq - 1) % SEQ_MOD
        return (seq - self.isn) % SEQ_MOD


def spurious_copies(data: list[dict]) -> None:
    """Mark each resend spurious when every byte of it reached the receiver in another copy
    delivered before it, or in an earlier copy (received by the link before it) that was
    delivered at all."""
    delivered = [d for d in data if d["out"] is not None]
    for r in data:
        if not r["resend"]:
            continue
        others = sorted((d["rseq"], d["rseq"] + d["len"]) for d in delivered
                        if d is not r and (d["i"] < r["i"] or (
                            r["out"] is not None and d["out"] < r["out"])))
        need, end = r["rseq"], r["rseq"] + r["len"]
        for lo, hi in others:
            if lo > need:
                break
            need = max(need, hi)
            if need >= end:
                break
        r["spurious"] = need >= end


def totals(packets: list[dict]) -> dict:
    out = {"packets": 0, "data": 0, "originals": 0, "resends": 0, "spurious": 0, "late": 0,
           "dropped": 0, "dropped_data": 0, "held": 0, "payload": 0}
    for p in packets:
        out["packets"] += 1
        out["dropped"] += p["fate"] == "dropped"
        out["held"] += p["fate"] == "held"
        if p["len"]:
            out["data"] += 1
            out["payload"] += p["len"]
            out["dropped_data"] += p["fate"] == "dropped"
            out["resends" if p["resend"] else "originals"] += 1
            out["spurious"] += p["spurious"]
            out["late"] += p["late"]
    return out


def truth(packets: list[dict]) -> dict:
    """The per-segment verdicts that need the whole log, and the totals."""
    flows: dict[tuple, dict] = {}
    for p in packets:
        a, b = (p["src"], p["sport"]), (p["dst"], p["dport"])
        key = (a, b) if p["dir"] == "ab" else (b, a)
        flows.setdefault(key, {"ab": [], "ba": []})[p["dir"]].append(p)
    out_flows = []
    for (client, server), halves in flows.items():
        for pk in halves.values():
            spurious_copies([p for p in pk if p["len"]])
        out_flows.append({"client": "{}:{}".format(*client), "server": "{}:{}".format(*server),
                          "ab": totals(halves["ab"]), "ba": totals(halves["ba"])})
    return {"totals": {d: totals([p for p in packets if p["dir"] == d]) for d in ("ab", "ba")},
            "flows": out_flows}


class Link:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.delay = args.delay_ms / 1000
        self.clock = time.time() - time.monotonic()  # monotonic -> epoch
        self.originals = {"ab": 0, "ba": 0}  # original data segments so far
        self.halves: dict[tuple, Half] = {}
        self.drops = {"ab": args.drop_ab, "ba": args.drop_ba}
        self.holds = {"ab": args.hold_ab, "ba": args.hold_ba}
        self.freezes = {"ab": args.freeze_ab, "ba": args.freeze_ba}
        self.packets: list[dict] = []
        self.queue: list[tuple] = []  # heap of (due, order, destination fd, packet, record)
        self.order = 0
        self.stats = {"forwarded_ab": 0, "forwarded_ba": 0, "dropped_ab": 0, "dropped_ba": 0,
                      "dropped_syn": 0, "data_ab": 0, "data_ba": 0, "dropped_frames_ab": [],
                      "dropped_frames_ba": []}

    def epoch(self, mono: float) -> float:
        return round(mono + self.clock, 6)

    def receive(self, pkt: bytes, d: str, dst: int, now: float) -> None:
        """Decide one packet's fate: dropped, or queued for delivery at some time."""
        tcp = parse_tcp(pkt)
        if tcp is None:  # not TCP: forwarded after the delay, not logged
            self.push(now + self.delay, dst, pkt, None)
            return
        half = self.halves.setdefault((tcp["src"], tcp["sport"], tcp["dst"], tcp["dport"]),
                                      Half())
        peer = self.halves.setdefault((tcp["dst"], tcp["dport"], tcp["src"], tcp["sport"]),
                                      Half())
        flags = tcp["flags"]
        if flags & TH_SYN:
            half.isn = tcp["seq"]
            half.wscale = tcp["wscale"]
        # the window this packet advertises, in bytes: scaled once both SYNs offered scaling
        scaled = not flags & TH_SYN and half.wscale is not None and peer.wscale is not None
        window = tcp["win"] << half.wscale if scaled else tcp["win"]
        rec = {"i": len(self.packets), "t": self.epoch(now), "dir": d, **tcp,
               "flags": flag_text(flags), "rseq": half.rel(tcp["seq"]),
               "rack": None if not flags & TH_ACK or peer.isn is None else
               (tcp["ack"] - peer.isn) % SEQ_MOD,
               "window": window, "fate": "forwarded", "out": None, "held_ms": 0.0,
               "why": None}
        self.packets.append(rec)
        due = now + self.delay
        why = None
        if d == "ab" and flags & TH_SYN and not flags & TH_ACK and \
                self.stats["dropped_syn"] < self.args.syn_drop:
            self.stats["dropped_syn"] += 1
            why = "syn-drop"
        if tcp["len"] > 0:
            rec.update(resend=rec["rseq"] < half.high, spurious=False, late=False,
                       silence=None)
            if rec["resend"] and half.last_t is not None:
                rec["silence"] = round(now - half.last_t, 6)
            half.high = max(half.high, rec["rseq"] + tcp["len"])
            self.stats["data_" + d] += 1
            every = self.args.loss_ab if d == "ab" else self.args.loss_ba
            if every and self.stats["data_" + d] % every == 0:
                why = f"every {every}"
            if not rec["resend"]:
                self.originals[d] += 1
                rec["number"] = self.originals[d]
            original = not rec["resend"]
            for rule in self.drops[d]:
                if original and not rule["fired"] and matches(rule["sel"], rec):
                    rule["fired"] = True
                    rule["byte"] = (id(half), rec["rseq"])
                    why = why or "drop " + rule["text"]
                elif rule["byte"] and rule["copies"] > 0 and rule["byte"][0] == id(half) and \
                        rec["rseq"] <= rule["byte"][1] < rec["rseq"] + tcp["len"]:
                    rule["copies"] -= 1
                    why = why or "drop " + rule["text"] + " (copy)"
            for rule in self.holds[d]:
                if why is None and original and not rule["fired"] and \
                        matches(rule["sel"], rec):
                    rule["fired"] = True
                    due += rule["ms"] / 1000
                    rec.update(fate="held", held_ms=rule["ms"], why="hold " + rule["text"])
        half.last_t = now
        if why is not None:
            rec.update(fate="dropped", why=why)
            if tcp["len"] > 0:
                self.stats["dropped_" + d] += 1
                self.stats["dropped_frames_" + d].append(tcp["seq"])
            return
        for rule in self.freezes[d]:
            w = rule["window"]
            if w is not None and w[0] <= now < w[1] and w[1] + self.delay > due:
                rec.update(fate="held", held_ms=round((w[1] + self.delay - due) * 1e3, 3),
                           why="freeze " + rule["text"])
                due = w[1] + self.delay
        self.push(due, dst, pkt, rec)

    def push(self, due: float, dst: int, pkt: bytes, rec: dict | None) -> None:
        self.order += 1
        heapq.heappush(self.queue, (due, self.order, dst, pkt, rec))

    def deliver(self, now: float, fb: int) -> None:
        """Write every packet that is due by `now` (fb: B's device, to tell directions)."""
        while self.queue and self.queue[0][0] <= now:
            _, _, dst, pkt, rec = heapq.heappop(self.queue)
            with contextlib.suppress(OSError):
                os.write(dst, pkt)
            sent = now
            d = "ab" if dst == fb else "ba"
            self.stats["forwarded_" + d] += 1
            if rec is None:
                continue
            rec["out"] = self.epoch(sent)
            if rec["len"] > 0:
                half = self.halves[(rec["src"], rec["sport"], rec["dst"], rec["dport"])]
                rec["late"] = not rec["resend"] and half.top_delivered > rec["rseq"]
                half.top_delivered = max(half.top_delivered, rec["rseq"])
                other = "ba" if d == "ab" else "ab"
                for rule in self.freezes[other]:
                    if rule["window"] is None and not rec["resend"] and \
                            matches(rule["sel"], rec):
                        rule["window"] = (sent, sent + rule["ms"] / 1000)

    def result(self) -> dict:
        for p in self.packets:
            if p["fate"] != "dropped" and p["out"] is None:
                p["fate"] = "undelivered"
        a = self.args
        return {"link": {"delay_ms": a.delay_ms, "syn_drop": a.syn_drop, "loss_ab": a.loss_ab,
                         "loss_ba": a.loss_ba,
                         **{f"{kind}_{d}": [r["text"] for r in getattr(a, f"{kind}_{d}")]
                            for kind in ("drop", "hold", "freeze") for d in ("ab", "ba")}},
                **self.stats, **truth(self.packets), "packets": self.packets}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="a userspace link between two TUN devices")
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--delay-ms", type=float, default=0.0)
    ap.add_argument("--loss-ab", type=int, default=0)
    ap.add_argument("--loss-ba", type=int, default=0)
    ap.add_argument("--syn-drop", type=int, default=0)
    for d in ("ab", "ba"):
        ap.add_argument(f"--drop-{d}", type=drop_rule, action="append", default=[])
        ap.add_argument(f"--hold-{d}", type=timed_rule, action="append", default=[])
        ap.add_argument(f"--freeze-{d}", type=timed_rule, action="append", default=[])
    ap.add_argument("--stats", required=True)
    return ap


def main() -> None:
    args = parser().parse_args()
    fa, fb = open_tun(args.a), open_tun(args.b)
    # a real-time priority, where allowed: on a busy machine the link then reads each packet
    # as it comes, and its delays stay the ones it was told (it sleeps in select otherwise)
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    link = Link(args)
    print("ready", flush=True)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop:
        now = time.monotonic()
        timeout = max(0.0, link.queue[0][0] - now) if link.queue else 0.2
        try:
            ready, _, _ = select.select([fa, fb], [], [], timeout)
        except InterruptedError:
            continue
        for fd in ready:
            while True:
                try:
                    pkt = os.read(fd, 65536)
                except BlockingIOError:
                    break
                ab = fd == fa
                link.receive(pkt, "ab" if ab else "ba", fb if ab else fa, time.monotonic())
        link.deliver(time.monotonic(), fb)
    with open(args.stats + ".tmp", "w") as f:
        json.dump(link.result(), f)
    os.replace(args.stats + ".tmp", args.stats)
    sys.exit(0)


if __name__ == "__main__":
    main()
