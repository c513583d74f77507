"""Live analysis for the dashboard: a thread that drains the capture into the flow table and,
on a fixed clock (SNAPSHOT_HZ), publishes an immutable Snapshot for the UI.

The UI never touches the trackers: it reads `Monitor.latest` (a frozen object replaced whole)
and tells the monitor what it wants to see by replacing `view` (filter, sort, limit) and
`focus` (the flow being drilled into), then `poke()`s for a prompt snapshot. Filtering,
sorting and the top-N cut run here, off the UI thread. No Textual import.
"""

from __future__ import annotations

import dataclasses
import gc
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .analysis import events as E
from .analysis.badges import BADGES, SEVERITY_ORDER, flow_badges
from .analysis.budget import DASHBOARD_MIB, MIB, PACKETS_MIB
from .analysis.diagnosis import BADGE
from .analysis.flow import Flow
from .analysis.live import LiveFeed
from .analysis.peek import describe
from .analysis.requests import SENT, SERVED
from .analysis.summary import flow_resent, flow_srtt, flow_summary
from .analysis.table import HALF_OPEN_FOLD, HALF_OPEN_STATE, MAX_FLOWS, FlowTable
from .capture.record import FLAG_LETTERS, PacketRecord, fmt_addr
from .capture.session import Capture
from .procmap import FlowProcs, ProcInfo, ProcMap, proc_label
from .viewfilter import FilterError, compile_filter

__all__ = ["FilterError", "compile_filter", "Monitor", "Snapshot", "ViewSpec", "FlowRow"]

SNAPSHOT_HZ = 2  # snapshots published per second (the UI polls at twice this rate)
LINGER_S = 30.0  # live: a closed connection stays listed (dimmed) this long, capture time
IDLE_S = 60.0  # "active": not closed and a packet within this many seconds of capture time
DEFAULT_LIMIT = 200  # rows sent to the table; the rest are counted as hidden
M32 = 0xFFFFFFFF
RECENT_S = 3.0  # rows of connections active this recently are rebuilt at every snapshot
READING_ROWS_MAX = 4000  # reading a file: rows rebuilt per snapshot at the most
REQUEST_ROWS_WARM = 1000  # Requests rows built ahead per snapshot while another view shows


VIEWS = ("connections", "requests", "services", "processes")
WINDOW_CHOICES = (None, 10, 60)  # percentiles over the whole capture, or the last 10 s / 60 s
# each view's sort when it is opened: (key, slowest / largest first)
DEFAULT_SORT = {"connections": ("activity", True), "requests": ("total", True),
                "services": ("p99", True), "processes": ("p99", True)}


@dataclass(frozen=True, slots=True)
class ViewSpec:
    """What the table shows: set by the UI, applied by the monitor."""
    filter: str = ""
    sort: str = "activity"  # a key of the view's sort keys (SORTS)
    reverse: bool = True
    problems: bool = False
    limit: int = DEFAULT_LIMIT
    view: str = "connections"  # one of VIEWS
    endpoints: bool = False  # services view: one row per endpoint instead of per service
    window: int | None = None  # services and processes: seconds of the window, None: all
    group: str = ""  # requests view: only the requests of this service or endpoint


@dataclass(frozen=True, slots=True)
class RequestRow:
    """One finished request (analysis.requests.Sample), with the fields the filter reads."""
    key: str  # "flow:exchange"
    id: int  # its connection
    index: int  # its exchange on that connection
    start: float  # epoch seconds
    proc: ProcInfo | None  # the local process: the server's, else the client's
    client: str
    server: str
    caddr: str
    cport: int
    saddr: str
    sport: int
    proto: str
    request: str  # method and path, command, query (from the wire: shown escaped)
    result: str  # status, reply, rcode, RST
    error: bool
    total: float
    network: float | None
    think: float | None
    transfer: float | None
    stalls: float
    badges: tuple[str, ...]  # the diagnosis that cost it most
    lost: float
    service: str
    endpoint: str
    state: str = ""
    closed: bool = True


@dataclass(frozen=True, slots=True)
class GroupRow:
    """A service, an endpoint or a local process with its requests' numbers (requests.py)."""
    key: str
    name: str
    service: str  # an endpoint's service; "" otherwise
    proto: str
    requests: int
    rps: float  # requests/s over the last 10 s
    errors: int
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None
    think: float | None  # median think time
    network: float | None  # median network time
    bytes: int
    churn: float  # new connections per request
    badges: tuple[str, ...]  # the cause that cost the most
    lost: float
    saddr: str = ""
    sport: int = 0
    # processes view: the connections of the process (both its ends)
    proc: ProcInfo | None = None
    conns_open: int = 0
    conns_total: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    rate_in: float = 0.0
    rate_out: float = 0.0
    retx: int = 0
    served: int = 0
    sent: int = 0
    # (what the filter reads on every row)
    id: int = -1
    caddr: str = ""
    cport: int = 0
    client: str = ""
    server: str = ""
    state: str = ""
    closed: bool = False


@dataclass(frozen=True, slots=True)
class FlowRow:
    id: int
    client: str  # "addr:port" ([v6]:port)
    server: str
    caddr: str
    cport: int
    saddr: str
    sport: int
    proc: ProcInfo | None  # local process of the client side, else of the server side
    proc_side: str  # "client" | "server" | ""
    state: str  # Zeek conn_state
    closed: bool
    start: float  # capture time, epoch seconds
    last: float
    irtt: float | None  # handshake RTT (tshark's tcp.analysis.initial_rtt)
    srtt: float | None  # the path's SRTT (analysis.summary.flow_srtt)
    up: int  # payload bytes client -> server, retransmissions excluded
    down: int  # payload bytes server -> client
    rate: float  # payload+header bytes/s over the last second, both ways (rate.py)
    retx: int  # segments sent again, handshake included (analysis.summary.flow_resent)
    zwin: float  # seconds either side advertised a zero window
    badges: tuple[str, ...]
    packets: int


@dataclass(frozen=True, slots=True)
class FlowDetail:
    id: int
    version: int  # changes whenever the flow saw new packets
    summary: dict  # analysis.summary.flow_summary: the numbers, one definition
    client_proc: ProcInfo | None
    server_proc: ProcInfo | None
    t0: float  # first packet of the flow (epoch seconds); series times are relative to it
    rtt: tuple  # per direction: ((t, sample, srtt), ...)
    window: tuple  # per direction: ((t, advertised window), ...) of that side
    flight: tuple  # per direction: ((t, bytes in flight), ...) sent by that side
    throughput: tuple  # per direction: ((t, frame bytes/s in the bin starting at t), ...)
    throughput_bin: float  # bin width, seconds
    events: tuple  # ((t, frame, direction, (names...)), ...)
    packets: tuple  # ((frame, t, dir, flags, seq, ack, len, win, (events...), info), ...)
    packets_dropped: int  # older packets not kept (the packet list's budget: live.py)
    badges: tuple[str, ...]
    packets_seen: int = 0  # packets of the connection, kept or not
    events_seen: int = 0  # analysis events of the connection; len(events) of them kept


@dataclass(frozen=True, slots=True)
class Snapshot:
    seq: int
    source: str
    engine: str
    mode: str  # "live" | "file" | "replay"
    packets: int  # frames read: tcp + non_tcp + undecodable
    tcp: int  # frames with a TCP header, all tracked
    non_tcp: int  # decoded, not TCP (ARP, UDP, ICMP...)
    undecodable: int  # too short, malformed, or a link type we do not decode
    bytes: int
    dropped: int  # packets the capture (dumpcap / kernel) reported dropped
    lost: int  # live: packets tcpwatch let go because its analysis fell behind
    pps: float  # TCP packets/s over the last second of capture time
    bps: float  # bytes/s over the last second of capture time
    flows_total: int  # connections kept (at most the flow cap)
    flows_active: int
    evicted: int  # connections evicted past the flow cap (counted in the totals)
    elapsed: float  # live: wall seconds since start; file: capture span; replay: position
    now: float  # capture time the snapshot describes (epoch seconds)
    rows: tuple  # the view's rows (FlowRow, RequestRow, GroupRow): filtered, sorted, cut
    matched: int  # rows matching the filter before the cut
    hidden: int  # matched rows not sent (matched - len(rows))
    view: ViewSpec
    done: bool  # the capture ended (end of file, -c, or an error)
    error: str | None
    saved: str | None  # a capture file holding these packets (for dissection)
    detail: FlowDetail | None = None
    procmap: bool = False
    notes: tuple[str, ...] = field(default=())
    read: float | None = None  # file mode, still reading: share of the file read, 0..1
    eta: float | None = None  # ... and the wall seconds left at the current pace
    read_pps: float = 0.0  # ... packets read per wall second so far
    requests: int = 0  # requests counted so far (analysis.requests)


def _none_last(v):
    return (v is None, v if v is not None else 0)


def _badge_score(r: FlowRow):
    return tuple(SEVERITY_ORDER[BADGES[b][0]] for b in r.badges) + (9,) if r.badges else (9,)


# sort keys on raw values (never on displayed text); None sorts after every number
SORT_KEYS = {
    "id": lambda r, now: r.id,
    "proc": lambda r, now: ((r.proc.name.lower() if r.proc else "\uffff"),
                            (r.proc.pid or 0) if r.proc else 0),
    "client": lambda r, now: (r.caddr, r.cport),
    "server": lambda r, now: (r.saddr, r.sport),
    "state": lambda r, now: r.state,
    "age": lambda r, now: (r.last if r.closed else now) - r.start,
    "irtt": lambda r, now: _none_last(r.irtt),
    "srtt": lambda r, now: _none_last(r.srtt),
    "up": lambda r, now: r.up,
    "down": lambda r, now: r.down,
    "rate": lambda r, now: r.rate,
    "retx": lambda r, now: r.retx,
    "zwin": lambda r, now: r.zwin,
    "badges": lambda r, now: (len(r.badges), [-x for x in _badge_score(r)]),
    "activity": lambda r, now: r.last,
    "packets": lambda r, now: r.packets,
}

REQUEST_SORTS = {
    "start": lambda r, now: r.start, "proc": lambda r, now: r.proc.name if r.proc else "",
    "server": lambda r, now: (r.saddr, r.sport), "proto": lambda r, now: r.proto,
    "request": lambda r, now: r.request, "result": lambda r, now: (r.error, r.result),
    "total": lambda r, now: r.total, "network": lambda r, now: _none_last(r.network),
    "think": lambda r, now: _none_last(r.think),
    "transfer": lambda r, now: _none_last(r.transfer), "stalls": lambda r, now: r.stalls,
    "badges": lambda r, now: r.lost,
}
GROUP_SORTS = {
    "name": lambda r, now: r.name.lower(), "requests": lambda r, now: r.requests,
    "rps": lambda r, now: r.rps, "errors": lambda r, now: r.errors,
    "p50": lambda r, now: _none_last(r.p50), "p90": lambda r, now: _none_last(r.p90),
    "p99": lambda r, now: _none_last(r.p99), "max": lambda r, now: _none_last(r.max),
    "think": lambda r, now: _none_last(r.think), "network": lambda r, now: _none_last(r.network),
    "bytes": lambda r, now: r.bytes, "churn": lambda r, now: r.churn,
    "badges": lambda r, now: r.lost, "conns": lambda r, now: r.conns_open,
    "bytes_in": lambda r, now: r.bytes_in, "bytes_out": lambda r, now: r.bytes_out,
    "rate": lambda r, now: r.rate_in + r.rate_out, "retx": lambda r, now: r.retx,
    "served": lambda r, now: r.served, "sent": lambda r, now: r.sent,
}
SORTS = {"connections": SORT_KEYS, "requests": REQUEST_SORTS, "services": GROUP_SORTS,
         "processes": GROUP_SORTS}


def _endpoint(addr: bytes, port: int, ipv: int) -> str:
    a = fmt_addr(addr)
    return f"[{a}]:{port}" if ipv == 6 else f"{a}:{port}"


def flags_text(flags: int) -> str:
    return "".join(ch for bit, ch in FLAG_LETTERS if flags & bit) or "."


class Monitor:
    def __init__(self, capture: Capture, *, mode: str = "file", speed: float = 1.0,
                 procmap: ProcMap | None = None, saved: str | None = None,
                 linger_s: float = LINGER_S, hz: float = SNAPSHOT_HZ,
                 packets_mib: float = PACKETS_MIB, budget_mib: float = DASHBOARD_MIB,
                 max_flows: int = MAX_FLOWS) -> None:
        self.capture = capture
        self.mode = mode
        self.speed = speed
        self.procmap = procmap
        self.saved = saved if saved is not None else capture.file
        self.linger_ns = int(linger_s * 1e9)
        self.period = 1.0 / hz
        self.table = FlowTable(max_flows, on_evict=self._forget, budget_mib=budget_mib)
        # rates, the newest packets of the capture, what changed
        self.live = LiveFeed(self.table, int(packets_mib * MIB))
        self.view = ViewSpec()
        self.focus: int | None = None
        self.latest: Snapshot | None = None
        self.snapshots = 0
        self.build_seconds = 0.0  # time spent building snapshots (measured, for the note)
        self._poke = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rates = self.live.rates
        # each connection's local processes, sticky (procmap.FlowProcs)
        self._fprocs = FlowProcs(procmap) if procmap is not None else None
        if self._fprocs is not None:  # requests by the local process that served / sent them
            self.table.requests.add_kind(SERVED, self._fprocs.served)
            self.table.requests.add_kind(SENT, self._fprocs.sent)
        self._rows: dict[int, FlowRow] = {}  # flow id -> its current row
        self._nob: set[int] = set()  # ... whose row has no badges yet (_with_badges)
        self._names: dict[int, tuple] = {}  # flow id -> its endpoints as text
        self._req_rows: dict[tuple[int, int], tuple] = {}  # (flow, index) -> (Sample, row)
        self._recent: deque[set[int]] = deque(maxlen=max(1, int(RECENT_S * hz) + 1))
        self._done = False
        self._final = False  # file mode: the rows were rebuilt after the end of the file
        self._error: str | None = None
        self._wall0 = 0.0
        self._ts0: int | None = None
        self._seq = 0
        self._detail: FlowDetail | None = None
        self._last_pub = 0.0  # monotonic time of the last snapshot
        self._fold_ids: dict[str, int] = {}  # server -> id of its folded half-open row
        self.notes: tuple[str, ...] = ()  # one-line notes for the status line (root...)
        # called with each snapshot, on the monitor's thread (worker.py sends it on)
        self.on_publish: Callable[[Snapshot], None] | None = None

    def _forget(self, fl: Flow) -> None:
        """The flow table evicted this connection (its cap): drop what we keep beside it."""
        fid = fl.id
        self.live.forget(fid)
        for d in (self._rows, self._names):
            d.pop(fid, None)
        if self._fprocs is not None:
            self._fprocs.forget(fid)
        self._nob.discard(fid)

    # ---- thread control ---------------------------------------------------------------
    @property
    def _direct(self) -> bool:
        """A file read at full speed with our own decoder: on the monitor's own thread, as the
        report reads it (no hand-over between threads, no queue)."""
        c = self.capture
        return self.mode == "file" and c.file is not None and c.engine == "fast"

    def start(self) -> Monitor:
        self._wall0 = time.monotonic()
        if not self._direct:
            self.capture.start()
        if self.procmap is not None:
            self.procmap.start()
        self._thread = threading.Thread(target=self._run, name="tcpwatch-monitor",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the capture (reaping tshark/dumpcap) and the threads; idempotent."""
        self._stop.set()
        self._poke.set()
        self.capture.stop()
        if self.procmap is not None:
            self.procmap.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def final_snapshot(self) -> Snapshot:
        """After stop(): a last snapshot, with the capture's final counters (dumpcap reports
        its drops as it ends)."""
        self._done = True
        self._publish()
        return self.latest  # type: ignore[return-value]

    def poke(self) -> None:
        """The view or focus changed: publish a snapshot now rather than at the next tick."""
        self._poke.set()

    # ---- the loop ---------------------------------------------------------------------
    def _run(self) -> None:
        next_snap = time.monotonic()
        direct = self._direct
        # reading a file: no cyclic GC until its end (the trackers make no cycles, tested;
        # each pass would walk every object kept: report/run.py does the same)
        paused = direct and gc.isenabled()
        if paused:
            gc.disable()
        try:
            source = self.capture.iter_batches() if direct else \
                self.capture.batches(timeout=self.period / 2)
            for batch in source:
                if batch:
                    self._ingest(batch)
                now = time.monotonic()
                if now >= next_snap or self._poke.is_set():
                    self._poke.clear()
                    self._publish()
                    next_snap = now + self.period
                if self._stop.is_set():
                    return
        except BaseException as e:  # noqa: BLE001 - shown in the header; flows are kept
            self._error = getattr(e, "message", None) or str(e) or e.__class__.__name__
        finally:
            if paused:
                # what the read built is kept until the end (no cycles in it): later
                # collections skip it, rather than walk it all (a second or more at 20,000
                # connections, during which no snapshot is published)
                gc.freeze()
                gc.enable()
        self._done = True
        st = self.capture.stats
        if st.error and not self._error:
            self._error = f"capture damaged at {st.stopped_at}: {st.error}"
        if st.link_problem() and not self._error:
            self._error = st.link_problem()
        # the capture is over: keep answering view changes until stopped
        while not self._stop.is_set():
            self._publish()
            self._poke.wait(self.period)
            self._poke.clear()

    def _ingest(self, batch: list[PacketRecord]) -> None:
        if self.mode == "replay":
            self._ingest_paced(batch)
        else:
            self._feed(batch)

    def _feed(self, batch: list[PacketRecord]) -> None:
        self.live.feed(batch)

    def _ingest_paced(self, batch: list[PacketRecord]) -> None:
        """--replay: hand packets over in capture time, scaled by speed."""
        i = 0
        while i < len(batch):
            if self._ts0 is None:
                self._ts0 = batch[0].ts
                self._wall0 = time.monotonic()
            now_cap = self._replay_now()
            j = i
            while j < len(batch) and batch[j].ts <= now_cap:
                j += 1
            if j > i:
                self._feed(batch[i:j])
                i = j
                continue
            wait = (batch[i].ts - now_cap) / 1e9 / self.speed
            if self._stop.wait(min(wait, self.period)):
                return
            if self._poke.is_set() or time.monotonic() - self._last_pub >= self.period:
                self._poke.clear()
                self._publish()

    def _replay_now(self) -> int:
        if self._ts0 is None:
            return 0
        return self._ts0 + int((time.monotonic() - self._wall0) * self.speed * 1e9)

    # ---- snapshots ----------------------------------------------------------------------
    def _now_ns(self) -> int:
        t = self.table
        if self.mode == "live":
            return max(t.last_ts, time.time_ns())
        if self.mode == "replay" and not self._done:
            return max(t.last_ts, self._replay_now())
        return t.last_ts

    def _procs_for(self, fl: Flow) -> tuple[ProcInfo | None, ProcInfo | None]:
        """Sticky: once a side is matched it keeps its process (flows outlive sockets)."""
        fp = self._fprocs
        return (None, None) if fp is None else fp.of(fl)

    def _with_badges(self, rows: list[FlowRow]) -> list[FlowRow]:
        """The rows with their badges. A badge is the diagnosis of the connection (14 us
        each), so rows are built without and get them here, only when something looks at
        them: the rows shown, or every row for a filter, problems-only or the badge sort;
        once per change of the connection."""
        nob = self._nob
        if not nob:
            return rows
        flows, cache = self.table.flows, self._rows
        out = []
        for r in rows:
            if r.id in nob:
                nob.discard(r.id)
                fl = flows.get(r.id)
                if fl is not None:
                    r = dataclasses.replace(r, badges=flow_badges(fl))
                    cache[r.id] = r
            out.append(r)
        return out

    def _row(self, fl: Flow, now: int) -> FlowRow:
        self._nob.add(fl.id)
        c2s, s2c = fl.dirs
        cp, sp = self._procs_for(fl)
        proc, side = (cp, "client") if cp is not None and cp.known else (
            (sp, "server") if sp is not None and sp.known else (cp or sp, "client" if cp
                                                                 else "server" if sp else ""))
        rb = self._rates.get(fl.id)
        rate = rb[0].now(now)[0] + rb[1].now(now)[0] if rb is not None else 0.0
        names = self._names.get(fl.id)
        if names is None:
            (ca, cport), (sa, sport) = fl.client, fl.server
            names = self._names[fl.id] = (_endpoint(ca, cport, fl.ipv), _endpoint(
                sa, sport, fl.ipv), fmt_addr(ca), cport, fmt_addr(sa), sport)
        irtt = fl.handshake.irtt_ns
        return FlowRow(
            id=fl.id, client=names[0], server=names[1], caddr=names[2], cport=names[3],
            saddr=names[4], sport=names[5],
            proc=proc, proc_side=side,
            state=fl.life.conn_state(),
            closed=fl.closed, start=fl.first_ts / 1e9, last=fl.last_ts / 1e9,
            irtt=None if irtt is None else irtt / 1e9, srtt=flow_srtt(fl),
            up=c2s.unique_payload, down=s2c.unique_payload, rate=rate,
            retx=flow_resent(fl),
            zwin=(c2s.zero_window_time(fl.last_ts) + s2c.zero_window_time(fl.last_ts)) / 1e9,
            badges=(), packets=c2s.packets + s2c.packets)  # badges: _with_badges

    def _rows_now(self, now: int) -> list[FlowRow]:
        """Rows of every listed connection. Only connections that saw packets in the last
        RECENT_S of snapshots are rebuilt (their rate is still moving, and their process may
        just have been found); the others keep their row object, which also tells the UI
        that nothing changed."""
        cache = self._rows
        touched = self.live.take_dirty()
        flows = self.table.flows
        if self.mode == "file":
            # reading a file: capture time jumps ahead, so rebuild what changed, and every
            # row once at the end (rates "now" are then those at the end of the capture)
            if self._done and not self._final:
                self._final = True
                touched = list(flows)
            elif len(touched) > READING_ROWS_MAX:
                # still reading: the newest connections now, the others at a later snapshot
                # (or the final rebuild): a snapshot costs the same whatever the capture
                order = sorted(touched)
                touched = order[-READING_ROWS_MAX:]
                self.live.dirty.update(order[:-READING_ROWS_MAX])
            for fid in touched:
                cache[fid] = self._row(flows[fid], now)
            return list(cache.values())
        self._recent.append(touched)
        for fid in set().union(*self._recent):
            fl = flows.get(fid)
            if fl is not None:  # else evicted since (the flow cap)
                cache[fid] = self._row(fl, now)
        out = []
        for fid, row in list(cache.items()):
            if row.closed and now - int(row.last * 1e9) > self.linger_ns:
                del cache[fid]  # lingered long enough: off the table
                self._nob.discard(fid)
                continue
            out.append(row)
        return out

    def _publish(self) -> None:
        t_start = time.perf_counter()
        if self.procmap is not None and self.live.new_flows:
            self.live.new_flows = False
            self.procmap.poke()
        save_err = self.capture.flush_saved()  # the drill-down dissects from this copy
        now = self._now_ns()
        view = self.view
        # requests whose connection went quiet or closed are finished (requests.py)
        self.table.requests.settle(self.table.flows, self.table.last_ts, final=self._done)
        try:
            pred = compile_filter(view.filter)
        except FilterError:
            pred = None  # the UI checks the text first; a bad filter filters nothing
        nows = now / 1e9
        if view.view == "connections" or view.view not in VIEWS:
            rows = self._rows_now(now)
            if view.problems or pred is not None or view.sort == "badges":
                rows = self._with_badges(rows)
        elif view.view == "requests":
            rows = self._request_rows(view)
        elif view.view == "services":
            rows = self._group_rows("endpoint" if view.endpoints else "service", now,
                                    view.window)
        else:
            rows = self._process_rows(now, view.window)
        if view.view != "requests":
            self._warm_request_rows()
        if view.problems:
            rows = [r for r in rows if r.badges]
        if pred is not None:
            rows = [r for r in rows if pred(r)]
        elif view.view == "connections":
            rows = self._fold_half_open(rows)
        sorts = SORTS.get(view.view, SORT_KEYS)
        key = sorts.get(view.sort) or sorts[DEFAULT_SORT.get(view.view, ("activity", True))[0]]
        rows.sort(key=lambda r: key(r, nows), reverse=view.reverse)
        matched = len(rows)
        shown = tuple(rows[: view.limit] if view.limit else rows)
        if view.view == "connections":
            shown = tuple(self._with_badges(list(shown)))
        st = self.capture.stats
        t = self.table
        idle_ns = int(IDLE_S * 1e9)
        active = sum(1 for f in t.active.values() if not f.closed and now - f.last_ts < idle_ns)
        if self.mode == "live":
            elapsed = time.monotonic() - self._wall0
        elif t.first_ts is None:
            elapsed = 0.0
        else:
            elapsed = (now - t.first_ts) / 1e9
        bps, pps = self.live.total.now(now)
        read = eta = None
        read_pps = 0.0
        if self.mode == "file" and not self._done:
            wall = time.monotonic() - self._wall0
            read = st.progress()
            read_pps = st.packets / wall if wall > 0 else 0.0
            if read:
                eta = wall * (1 - read) / read
        self._seq += 1
        snap = Snapshot(
            seq=self._seq, source=self.capture.source, engine=self.capture.engine,
            mode=self.mode, packets=st.packets, tcp=st.tcp, non_tcp=st.non_tcp,
            undecodable=st.undecodable, bytes=st.bytes,
            dropped=st.dropped, lost=st.lost, pps=pps, bps=bps, flows_total=len(t.flows),
            flows_active=active, evicted=t.evicted.flows, elapsed=elapsed, now=nows,
            rows=shown, matched=matched,
            hidden=matched - len(shown), view=view, done=self._done, error=self._error,
            saved=self.saved, detail=self._detail_for(self.focus, now),
            procmap=self.procmap is not None,
            notes=self.notes + ((save_err,) if save_err else ()), read=read, eta=eta,
            read_pps=read_pps, requests=self.table.requests.counted)
        self.latest = snap
        if self.on_publish is not None:
            self.on_publish(snap)
        self._last_pub = time.monotonic()
        self.snapshots += 1
        self.build_seconds += time.perf_counter() - t_start

    # ---- the requests, services and processes views (analysis/requests.py) -------------
    def _request_rows(self, view: ViewSpec) -> list[RequestRow]:
        """The newest finished requests (requests.RECENT_MAX of them), as rows; `view.group`
        keeps those of one service or endpoint."""
        out = []
        flows = self.table.flows
        recent = self.table.requests.recent
        # a finished request never changes: its row is built once (and again only when its
        # process is found), so a key press costs a lookup per request, not a row
        cache = self._req_rows
        if len(cache) > 2 * (recent.maxlen or len(recent)):
            live = {(smp.flow, smp.index) for smp in recent}
            for k in [k for k in cache if k not in live]:
                del cache[k]
        for smp in recent:
            if view.group and view.group not in (smp.service, f"{smp.service} {smp.endpoint}"):
                continue
            fl = flows.get(smp.flow)
            cp, sp = self._procs_for(fl) if fl is not None else (None, None)
            proc = sp if sp is not None else cp
            hit = cache.get((smp.flow, smp.index))
            if hit is not None and hit[0] is smp and hit[1].proc is proc:
                out.append(hit[1])
                continue
            row = self._request_row(smp, fl, proc)
            out.append(row)
        return out

    def _request_row(self, smp, fl: Flow | None, proc) -> RequestRow:
        names = self._names
        nm = names.get(smp.flow)
        if nm is None and fl is not None:
            (ca, cport), (sa, sport) = fl.client, fl.server
            nm = names[fl.id] = (_endpoint(ca, cport, fl.ipv), _endpoint(sa, sport, fl.ipv),
                                 fmt_addr(ca), cport, fmt_addr(sa), sport)
        if nm is None:
            nm = (smp.client, smp.service.rsplit(" ", 1)[0], "", 0, "", 0)
        row = RequestRow(
            key=f"{smp.flow}:{smp.index}", id=smp.flow, index=smp.index, start=smp.start,
            proc=proc, client=nm[0], server=nm[1], caddr=nm[2],
            cport=nm[3], saddr=nm[4], sport=nm[5], proto=smp.proto, request=smp.request,
            result=smp.result, error=smp.error, total=smp.total, network=smp.network,
            think=smp.think, transfer=smp.transfer, stalls=smp.stalls,
            badges=(BADGE[smp.cause],) if smp.cause else (), lost=smp.lost,
            service=smp.service, endpoint=smp.endpoint)
        self._req_rows[(smp.flow, smp.index)] = (smp, row)
        return row

    def _warm_request_rows(self) -> None:
        """Build a share of the Requests view's rows while another view is shown, newest
        first, so that switching to it costs lookups (REQUEST_ROWS_WARM per snapshot)."""
        cache, flows = self._req_rows, self.table.flows
        n = 0
        for smp in reversed(self.table.requests.recent):
            if (smp.flow, smp.index) in cache:
                continue
            fl = flows.get(smp.flow)
            cp, sp = self._procs_for(fl) if fl is not None else (None, None)
            self._request_row(smp, fl, sp if sp is not None else cp)
            n += 1
            if n >= REQUEST_ROWS_WARM:
                return

    def _group_rows(self, kind: str, now: int, window: int | None) -> list[GroupRow]:
        out = []
        for g in self.table.requests.groups.get(kind, {}).values():
            r = g.row(now, window)
            if not r["requests"] and window is not None:
                continue  # nothing in the window
            addr, _, port = (g.service or g.name).split(" ")[0].rpartition(":")
            out.append(GroupRow(
                key=g.name if kind != "endpoint" else f"{g.service} {g.name}", name=g.name,
                service=g.service, proto=g.proto, requests=r["requests"],
                rps=r["requests_per_s"], errors=r["errors"], p50=r["p50"], p90=r["p90"],
                p99=r["p99"], max=r["max"], think=r["think_p50"], network=r["network_p50"],
                bytes=r["bytes"], churn=r["churn"],
                badges=(r["badge"],) if r["badge"] else (), lost=r["lost"],
                saddr=addr.strip("[]"), sport=int(port) if port.isdigit() else 0,
                server=g.service or g.name))
        return out

    def _process_rows(self, now: int, window: int | None) -> list[GroupRow]:
        """One row per local process: its connections (either end), bytes and rates from
        its side, resends, and the requests it served and sent (requests.py)."""
        fp = self._fprocs
        if fp is None:
            return []
        acc: dict[str, dict] = {}
        idle_ns = int(IDLE_S * 1e9)
        for fl in self.table.flows.values():
            c2s, s2c = fl.dirs
            rb = self._rates.get(fl.id)
            up = rb[0].now(now)[0] if rb is not None else 0.0
            down = rb[1].now(now)[0] if rb is not None else 0.0
            for end, p in enumerate(fp.of(fl)):
                if p is None or not p.known:
                    continue
                a = acc.setdefault(proc_label(p), {"proc": p, "open": 0, "total": 0, "in": 0,
                                                   "out": 0, "rin": 0.0, "rout": 0.0,
                                                   "retx": 0})
                a["total"] += 1
                a["open"] += not fl.closed and now - fl.last_ts < idle_ns
                sent, got = (c2s, s2c) if end == 0 else (s2c, c2s)
                a["out"] += sent.unique_payload
                a["in"] += got.unique_payload
                a["rout"] += up if end == 0 else down
                a["rin"] += down if end == 0 else up
                a["retx"] += sent.counts.resent  # segments this end sent again
        rq = self.table.requests
        served = {g.name: g.row(now, window) for g in rq.groups.get(SERVED, {}).values()}
        sent_r = {g.name: g.row(now, window) for g in rq.groups.get(SENT, {}).values()}
        out = []
        for name, a in acc.items():
            sv, st = served.get(name), sent_r.get(name)
            both = [x for x in (sv, st) if x is not None and x["requests"]]
            p99 = max((x["p99"] or 0 for x in both), default=None) if both else None
            worst = max(both, key=lambda x: x["lost"], default=None)
            out.append(GroupRow(
                key=name, name=name, service="", proto="",
                requests=sum(x["requests"] for x in both), rps=sum(x["requests_per_s"]
                                                                   for x in both),
                errors=sum(x["errors"] for x in both), p50=None, p90=None, p99=p99,
                max=None, think=None, network=None, bytes=a["in"] + a["out"], churn=0.0,
                badges=(worst["badge"],) if worst is not None and worst["badge"] else (),
                lost=worst["lost"] if worst is not None else 0.0, proc=a["proc"],
                conns_open=a["open"], conns_total=a["total"], bytes_in=a["in"],
                bytes_out=a["out"], rate_in=a["rin"], rate_out=a["rout"], retx=a["retx"],
                served=sv["requests"] if sv else 0, sent=st["requests"] if st else 0))
        return out

    def _fold_half_open(self, rows: list[FlowRow]) -> list[FlowRow]:
        """A SYN flood or a scan must not drown the table: HALF_OPEN_FOLD or more half-open attempts
        (a SYN, no answer) to one server become one row, with the evicted ones counted in.
        Its id is negative; filtering (state:S0 port:N) lists the attempts one by one."""
        groups: dict[str, list[FlowRow]] = {}
        for r in rows:
            if r.state == HALF_OPEN_STATE:
                groups.setdefault(r.server, []).append(r)
        big = {k: v for k, v in groups.items() if len(v) >= HALF_OPEN_FOLD}
        if not big:
            return rows
        out = [r for r in rows if r.state != HALF_OPEN_STATE or r.server not in big]
        gone = self.table.evicted.half_open
        for server, members in big.items():
            fid = self._fold_ids.setdefault(server, -1 - len(self._fold_ids))
            n = len(members) + gone.get(server, 0)
            addrs = len({m.caddr for m in members})
            first = members[0]
            out.append(FlowRow(
                id=fid, client=f"{n:,} half-open from {addrs:,} addr", server=server,
                caddr="", cport=0, saddr=first.saddr, sport=first.sport,
                proc=next((m.proc for m in members if m.proc is not None), None),
                proc_side=first.proc_side, state=HALF_OPEN_STATE, closed=False,
                start=min(m.start for m in members), last=max(m.last for m in members),
                irtt=None, srtt=None, up=0, down=0, rate=sum(m.rate for m in members),
                retx=sum(m.retx for m in members), zwin=0.0, badges=("FLOOD",),
                packets=sum(m.packets for m in members)))
        return out

    def _detail_for(self, fid: int | None, now: int) -> FlowDetail | None:
        if fid is None or fid not in self.table.flows:
            return None
        fl = self.table.flows[fid]
        old = self._detail
        if old is not None and old.id == fid and old.version == fl.last_num and \
                not (fl.dirs[0].zw_start or fl.dirs[1].zw_start):
            return old
        self._detail = d = self._build_detail(fl, now)
        return d

    def _throughput(self, fl: Flow, ring) -> tuple[tuple, float]:
        """Frame bytes/s per direction over time. When every packet of the flow is still
        kept (live.py) and it lasted under a minute, bins are sized for ~40 points (1-2-5 steps,
        >= 100 us); otherwise the 1 s bins of rate.py."""
        t0 = fl.first_ts
        span = fl.last_ts - t0
        if ring and ring[0].num == fl.first_num and span < 60_000_000_000:
            width = 100_000  # ns
            while width * 40 < span:
                for step in (2, 5 / 2, 2):
                    width = int(width * step)
                    if width * 40 >= span:
                        break
            nbins = span // width + 1
            acc = [[0] * nbins, [0] * nbins]
            for r in ring:
                d = fl.direction_of(r)
                acc[d][(r.ts - t0) // width] += r.flen
            scale = 1e9 / width
            return tuple(tuple((i * width / 1e9, b * scale) for i, b in enumerate(a))
                         for a in acc), width / 1e9
        rb = self._rates.get(fl.id)
        if rb is None:
            return ((), ()), 1.0
        return tuple(tuple((sec - t0 / 1e9, by) for sec, by in b.series()) for b in rb), 1.0

    def _build_detail(self, fl: Flow, now: int) -> FlowDetail:
        t0 = fl.first_ts

        def rel(ts: int) -> float:
            return (ts - t0) / 1e9

        dirs = fl.dirs
        rtt = tuple(tuple((rel(ts), r, s) for ts, r, s in d.rtt.series.points())
                    for d in dirs)
        window = tuple(tuple((rel(ts), int(w)) for ts, w in d.series.points()) for d in dirs)
        flight = tuple(tuple((rel(ts), int(b)) for ts, b in d.flight.points()) for d in dirs)
        ring = self.live.packets_of(fl)
        thr, thr_bin = self._throughput(fl, ring)
        evs = tuple((rel(ts), num, d, tuple(E.names(m))) for ts, num, d, m in fl.events.items())
        base = (dirs[0].base_seq or 0, dirs[1].base_seq or 0)
        pk = []
        ev_by_num = {num: names for _t, num, _d, names in evs}
        for r in ring:
            d = fl.direction_of(r)
            ack = (r.ack - base[1 - d]) & M32 if r.flags & 0x10 else 0
            pk.append((r.num, rel(r.ts), d, flags_text(r.flags), (r.seq - base[d]) & M32, ack,
                       r.plen, r.win, ev_by_num.get(r.num, ()), describe(r.payload)))
        c, s = self._fprocs.known.get(fl.id, (None, None)) if self._fprocs is not None \
            else (None, None)
        return FlowDetail(
            id=fl.id, version=fl.last_num, summary=flow_summary(fl), client_proc=c,
            server_proc=s, t0=t0 / 1e9, rtt=rtt, window=window, flight=flight,
            throughput=thr, throughput_bin=thr_bin, events=evs, packets=tuple(pk),
            packets_dropped=dirs[0].packets + dirs[1].packets - len(ring),
            badges=flow_badges(fl),
            packets_seen=dirs[0].packets + dirs[1].packets, events_seen=fl.events.seen)
