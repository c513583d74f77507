"""The dashboard's views as columns: for each view (monitor.VIEWS) its columns — key, header,
width, priority, what it means — and the cells of one of its rows. A narrow terminal drops
the columns of lowest priority first (`fit`), and narrows address and name columns before
that; the request's total and the problems column go last. The help screen explains the
same columns (help.py). Every string from the wire or another process goes through
fmt.untrusted: shown inert and bounded."""

from __future__ import annotations

from typing import NamedTuple

from rich.text import Text

from ..analysis.badges import BADGES, ERROR, WARN
from . import fmt

SEV_STYLE = {ERROR: "bold red", WARN: "yellow"}
NONE_T = Text(fmt.NONE, style="dim")


class Column(NamedTuple):
    key: str  # the monitor's sort key of the column
    label: str
    width: int
    priority: int  # 1 kept longest; higher numbers drop first on a narrow terminal
    help: str
    shrink: int = 0  # may narrow to this width before anything is dropped (0: fixed)


CONNECTIONS = (
    Column("id", "#", 5, 4, "Connection number, in order of first packet (Wireshark's "
           "`tcp.stream`)."),
    Column("proc", "process", 18, 2, "The local process that owns the socket (client side "
           "first), with its pid, from the kernel's socket table. `?`: a socket of another user "
           "(run as root to see it). `—`: no local socket (a capture file, or a remote host).",
           10),
    Column("client", "client", 22, 3, "Who opened the connection (sent the SYN).", 15),
    Column("server", "server", 22, 1, "Who accepted it. Without a SYN in the capture the roles "
           "are guessed from the ports (history starts with `^`).", 15),
    Column("state", "state", 6, 2, "Zeek's connection state: `S0` SYN with no answer, `S1` "
           "open, `SF` opened and closed normally, `REJ` refused, `RSTO`/`RSTR` reset by "
           "client/server, `S2`/`S3` half closed, `OTH` seen mid-stream. Closed connections are "
           "dimmed."),
    Column("age", "age", 7, 5, "Time since the first packet (for a closed connection: how "
           "long it lasted)."),
    Column("irtt", "hs rtt", 8, 6, "Handshake RTT: SYN to the ACK of the SYN-ACK, at the "
           "capture point (RFC 9293 3.5). Every new connection costs this before a request can "
           "be sent; TLS adds one or two more round trips."),
    Column("srtt", "srtt", 8, 3, "The path's smoothed round trip (RFC 6298: SRTT = 7/8 SRTT + "
           "1/8 sample; Karn's rule; RFC 7323 timestamps): the capture point's RTT to the "
           "server plus its RTT to the client, from data->ACK samples. Samples whose ACK the "
           "receiver held (delayed ACK, RFC 1122 4.2.3.2, or waiting for its answer) measure "
           "the receiver, not the path: they are kept apart (the drill-down shows their "
           "share). Each request/response needs at least one RTT; slow start needs several "
           "for a large response."),
    Column("up", "↑ data", 9, 5, "Application bytes client → server, each byte counted once "
           "(retransmissions excluded)."),
    Column("down", "↓ data", 9, 5, "Application bytes server → client."),
    Column("rate", "rate", 10, 4, "Bytes on the wire per second, both ways, over the last "
           "second of capture time."),
    Column("retx", "retx", 5, 2, "Segments sent again: on the RTO timer (RFC 6298), as a tail "
           "loss probe (RFC 8985) or after duplicate ACKs/SACK (RFC 5681). Late originals "
           "(reordering) are not counted; resends that were not needed (D-SACK, timestamps) "
           "are, and the drill-down says which. Each loss costs at least one RTT, or a whole "
           "RTO (>=200 ms on Linux) when nothing reveals it, and the sender halves its rate."),
    Column("zwin", "0-win", 7, 6, "Time a receiver advertised a zero window (RFC 9293 "
           "3.8.6): its application was not reading, so the sender had to stop."),
    Column("badges", "problems", 16, 1, "Badges for what went wrong (below), most severe "
           "first.", 10),
)

REQUESTS = (
    Column("start", "time", 12, 5, "When the request started (capture time of its first "
           "byte)."),
    Column("proc", "process", 16, 4, "The local process: the server's, else the client's.", 8),
    Column("server", "server", 21, 2, "The server endpoint (address:port) the request went "
           "to.", 14),
    Column("proto", "proto", 5, 5, "The protocol recognised from the first bytes (http, "
           "redis, dns, tls; tcp: turns only)."),
    Column("request", "request", 28, 1, "Method and path, Redis command, DNS name and type "
           "(from the wire, shown escaped).", 14),
    Column("result", "result", 7, 2, "HTTP status, Redis reply (`-ERR` an error), DNS "
           "rcode, `RST` when the connection was reset inside the request. Errors in red."),
    Column("total", "total", 8, 1, "First request byte (or SYN, on a new connection) to the "
           "last response byte."),
    Column("network", "net", 7, 3, "One round trip between the capture point and the server: "
           "the part of the wait the network explains."),
    Column("think", "think", 7, 2, "The server's time: last request byte to first response "
           "byte, less the round trip."),
    Column("transfer", "xfer", 7, 3, "First to last response byte."),
    Column("stalls", "stalls", 7, 4, "Time lost inside the parts: RTO waits, loss recovery, "
           "zero or full window, Nagle meeting delayed ACK."),
    Column("bar", "breakdown", 20, 6, "The parts as a bar: network, think, transfer, "
           "stalls."),
    Column("badges", "cause", 6, 1, "The diagnosis that cost this request the most."),
)

SERVICES = (
    Column("name", "service", 26, 1, "The server endpoint and protocol (a service), or one "
           "kind of request to it (an endpoint, `e`): HTTP method and route, numeric, UUID "
           "and hex path segments as `{id}`; Redis command; DNS query type; TLS server name.",
           16),
    Column("requests", "reqs", 7, 1, "Finished requests (in the window, `w`)."),
    Column("rps", "req/s", 6, 3, "Requests per second over the last 10 s."),
    Column("errors", "errs", 5, 2, "HTTP 5xx, Redis error replies, DNS rcode other than "
           "NOERROR, a RST inside the request."),
    Column("p50", "p50", 7, 3, "Median total time (DDSketch, within 1%)."),
    Column("p90", "p90", 7, 4, "90th percentile of total time."),
    Column("p99", "p99", 7, 1, "99th percentile of total time: the sample of rank "
           "⌊0.99 (n−1)⌋, within 1%."),
    Column("max", "max", 7, 3, "The slowest request (exact)."),
    Column("think", "think", 7, 2, "Median server think time."),
    Column("network", "net", 7, 4, "Median network round trip."),
    Column("bytes", "bytes", 8, 5, "Request and response bytes."),
    Column("churn", "new/req", 7, 4, "New connections per request: 1.00 means every request "
           "paid a handshake (no connection reuse)."),
    Column("badges", "cause", 14, 1, "The cause that cost these requests the most time, "
           "and how much.", 6),
)

PROCESSES = (
    Column("name", "process", 22, 1, "A local process (name and pid).", 12),
    Column("conns", "conns", 9, 2, "Connections open now / all seen (either end)."),
    Column("bytes_in", "in", 9, 3, "Payload bytes it received, each counted once."),
    Column("bytes_out", "out", 9, 3, "Payload bytes it sent, each counted once."),
    Column("rate", "rate ↓ ↑", 22, 2, "Bytes/s received and sent over the last second.", 12),
    Column("retx", "retx", 5, 3, "Segments the process's sockets sent again."),
    Column("served", "served", 7, 2, "Requests it answered (its server sockets)."),
    Column("sent", "sent", 7, 2, "Requests it sent (its client sockets)."),
    Column("p99", "p99", 7, 1, "99th percentile of those requests' total time."),
    Column("badges", "worst", 14, 1, "The cause that cost its requests the most time.", 6),
)

VIEW_COLUMNS = {"connections": CONNECTIONS, "requests": REQUESTS, "services": SERVICES,
                "processes": PROCESSES}
VIEW_TITLES = {"connections": "Connections", "requests": "Requests", "services": "Services",
               "processes": "Processes"}


def fit(columns: tuple[Column, ...], width: int) -> list[tuple[Column, int]]:
    """The columns shown in `width` cells, each with its width. Until they fit: the columns of
    priority 4 and up drop (the last first), address and name columns narrow, priorities 3
    then 2 drop, and last the problems column narrows; priority 1 always stays. Room left
    over widens what was narrowed."""
    pad = 2  # DataTable's cell padding
    widths = {c.key: c.width for c in columns}
    keep = list(columns)

    def used() -> int:
        return sum(widths[c.key] + pad for c in keep) + 2  # and the scroll bar

    def drop(lowest: int) -> None:
        for c in sorted(columns, key=lambda c: (-c.priority, -columns.index(c))):
            if used() <= width:
                return
            if c.priority >= lowest and c in keep:
                keep.remove(c)

    def shrink(badges: bool) -> None:
        for c in keep:
            if c.shrink and (c.key == "badges") == badges and used() > width:
                widths[c.key] = max(c.shrink, widths[c.key] - (used() - width))

    drop(4)
    shrink(False)
    drop(3)
    drop(2)
    shrink(True)
    for c in sorted(keep, key=lambda c: c.priority):  # room left: narrowed columns regrow
        spare = width - used()
        if spare <= 0:
            break
        widths[c.key] = min(c.width, widths[c.key] + spare)
    return [(c, widths[c.key]) for c in keep]


def badge_text(badges: tuple[str, ...], dim: bool = False, lost: float | None = None) -> Text:
    t = Text()
    for i, b in enumerate(badges):
        if i:
            t.append(" ")
        t.append(b, style=SEV_STYLE.get(BADGES[b][0], "dim") if b in BADGES else "")
    if lost:
        t.append(f" {fmt.dur(lost)}")
    if dim:
        t.stylize("dim")
    return t


def _t(s: str, style: str = "", right: bool = False) -> Text:
    return Text(s, style=style, justify="right" if right else "left")


def _proc(p, limit: int, style: str = "") -> Text:
    if p is None:
        return NONE_T
    return fmt.untrusted(p.name if p.pid is None else f"{p.name} ({p.pid})", limit, style)


def connection_cells(r, now: float) -> dict:
    """A FlowRow's cells by column key (Text: never markup)."""
    dim = "dim" if r.closed else ""
    age = (r.last if r.closed else now) - r.start
    return {
        "id": _t(str(r.id), dim, True), "proc": _proc(r.proc, 40, dim),
        "client": fmt.untrusted(r.client, 60, dim), "server": fmt.untrusted(r.server, 60, dim),
        "state": _t(r.state, dim), "age": _t(fmt.dur(age), dim, True),
        "irtt": _t(fmt.dur(r.irtt), dim, True), "srtt": _t(fmt.dur(r.srtt), dim, True),
        "up": _t(fmt.size(r.up), dim, True), "down": _t(fmt.size(r.down), dim, True),
        "rate": _t(fmt.rate(r.rate), dim, True),
        "retx": _t(str(r.retx) if r.retx else "", dim, True),
        "zwin": _t(fmt.dur(r.zwin) if r.zwin else "", dim, True),
        "badges": badge_text(r.badges, r.closed),
    }


BAR_PARTS = (("network", "blue"), ("think", "magenta"), ("transfer", "green"))


def bar(r, width: int = 20) -> Text:
    """network, think and transfer as one bar, to the scale of the request's own total; the
    time lost to stalls (inside those parts) marks the end of the bar in red."""
    cells: list[str] = []
    if not r.total:
        return Text()
    for key, color in BAR_PARTS:
        n = round(width * (getattr(r, key) or 0.0) / r.total)
        cells += [color] * min(n, width - len(cells))
    st = min(len(cells), round(width * r.stalls / r.total)) if r.stalls else 0
    if st:
        cells[len(cells) - st:] = ["red"] * st
    t = Text()
    for color in cells:
        t.append("█", style=color)
    return t


def request_cells(r, now: float) -> dict:
    err = "bold red" if r.error else ""
    clock = fmt.clock(r.start)
    return {
        "start": _t(clock), "proc": _proc(r.proc, 30), "server": fmt.untrusted(r.server, 60),
        "proto": _t(r.proto), "request": fmt.untrusted(r.request or "—", 200),
        "result": fmt.untrusted(r.result, 40, err), "total": _t(fmt.dur(r.total), "bold", True),
        "network": _t(fmt.dur(r.network), right=True),
        "think": _t(fmt.dur(r.think), right=True),
        "transfer": _t(fmt.dur(r.transfer), right=True),
        "stalls": _t(fmt.dur(r.stalls) if r.stalls else "", "bold red", True),
        "bar": bar(r), "badges": badge_text(r.badges),
    }


def group_cells(r, now: float) -> dict:
    # an endpoint: what it is first (a narrow column cuts the service's address, not it)
    name = r.name if not r.service else f"{r.name}  @{r.service.rsplit(' ', 1)[0]}"
    return {
        "name": fmt.untrusted(name, 200), "requests": _t(fmt.count(r.requests), right=True),
        "rps": _t(f"{r.rps:.1f}" if r.rps else "", right=True),
        "errors": _t(fmt.count(r.errors) if r.errors else "", "bold red", True),
        "p50": _t(fmt.dur(r.p50), right=True), "p90": _t(fmt.dur(r.p90), right=True),
        "p99": _t(fmt.dur(r.p99), "bold", True), "max": _t(fmt.dur(r.max), right=True),
        "think": _t(fmt.dur(r.think), right=True), "network": _t(fmt.dur(r.network), right=True),
        "bytes": _t(fmt.size(r.bytes), right=True),
        "churn": _t(f"{r.churn:.2f}", "yellow" if r.churn >= 0.9 and r.requests > 2 else "",
                    True),
        "badges": badge_text(r.badges, lost=r.lost),
    }


def process_cells(r, now: float) -> dict:
    return {
        "name": _proc(r.proc, 60), "conns": _t(f"{r.conns_open}/{r.conns_total}", right=True),
        "bytes_in": _t(fmt.size(r.bytes_in), right=True),
        "bytes_out": _t(fmt.size(r.bytes_out), right=True),
        "rate": _t(f"{fmt.rate(r.rate_in)}↓ {fmt.rate(r.rate_out)}↑"
                   if r.rate_in or r.rate_out else "", right=True),
        "retx": _t(str(r.retx) if r.retx else "", right=True),
        "served": _t(fmt.count(r.served) if r.served else "", right=True),
        "sent": _t(fmt.count(r.sent) if r.sent else "", right=True),
        "p99": _t(fmt.dur(r.p99), "bold", True),
        "badges": badge_text(r.badges, lost=r.lost),
    }


CELLS = {"connections": connection_cells, "requests": request_cells,
         "services": group_cells, "processes": process_cells}


def row_key(r) -> str:
    """The table's key of a row: a connection's id, a request's flow:index, a group's name."""
    k = getattr(r, "key", None)
    return str(r.id) if k is None else k
