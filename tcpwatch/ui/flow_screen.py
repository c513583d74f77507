"""One connection in depth: overview (handshake, options, counters), plots (RTT, window and
bytes in flight, throughput), the event timeline, and the packets with a packet's full
Wireshark dissection (tshark via pyshark, in a worker thread)."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static, TabbedContent, TabPane, Tree
from textual_plotext import PlotextPlot

from ..analysis import events as E
from ..errors import UserError
from ..monitor import FlowDetail, Snapshot
from . import fmt
from .columns import badge_text
from .fasttable import FastTable

DIRS = ("client → server", "server → client")
PARTS = (("connect", "blue"), ("tls", "magenta"), ("wait", "grey50"), ("upload", "cyan"),
         ("network", "yellow"), ("think", "red"), ("transfer", "green"))
BAR = 62


def _legend() -> Text:
    t = Text("breakdown: ")
    for name, color in PARTS:
        t.append("██", style=color)
        t.append(f" {name}  ")
    return t


LEGEND = _legend()


def waterfall(b: dict, scale: float) -> Text:
    """One exchange's parts as a bar; `scale` is seconds per character."""
    t = Text()
    for name, color in PARTS:
        v = b.get(name)
        if v:
            n = max(1, round(v / scale)) if scale > 0 else 1
            t.append("█" * n, style=color)
    return t


def request_label(x: dict) -> str:
    q, proto = x["request"], x["protocol"]
    if proto == "http" and q.get("method"):
        return f"{q['method']} {q['path']}"
    if proto == "redis" and q.get("command"):
        return f"redis {q['command']}"
    if proto == "dns" and q.get("query"):
        return f"dns {q['query']}"
    if not x["request_frames"]:
        return "(server spoke first)"
    return f"{proto or 'data'} {x['request_bytes']} B"


def answer_label(x: dict) -> str:
    a = x["response"]
    if "status" in a:
        return str(a["status"])
    if "reply" in a:
        return a["reply"]
    if "rcode" in a:
        return a["rcode"]
    return f"{x['response_bytes']} B" if x["response_frames"] else "no answer"
ARROW = ("→", "←")
# tcpwatch's own event names (analysis/events.py, second group); the rest are Wireshark's
OURS = frozenset(E.NAMES[b] for b in (
    E.RTO_RETRANSMISSION, E.FAST_RESEND, E.TLP_RESEND, E.SPURIOUS_RESEND, E.LATE_ORIGINAL,
    E.AMBIGUOUS, E.WINDOW_PROBE, E.DSACK, E.DUPLICATE_FRAME, E.SYN_SEEN, E.FIN_SEEN,
    E.RST_SEEN))


def _on_off(v: bool) -> str:
    return "yes" if v else "no"


def overview_text(d: FlowDetail) -> Text:
    s = d.summary
    hs = s["handshake"]
    t = Text()
    t.append("Handshake", style="bold underline")
    t.append("  (RFC 9293 3.5; times from the first packet)\n")
    if hs["syn_time"] is None:
        t.append("  no SYN captured: the connection started before the capture; roles "
                 f"guessed ({s['roles_from']})\n")
    else:
        again = f"   ×{hs['syn_count']} (retransmitted)" if hs["syn_count"] > 1 else ""
        t.append(f"  SYN       {fmt.dur(hs['syn_time']):>9}   client → server{again}\n")
        if hs["rejected"]:
            t.append("  RST                   server → client: connection refused\n",
                     style="bold red")
        if hs["synack_time"] is not None:
            t.append(f"  SYN-ACK   {fmt.dur(hs['synack_time']):>9}   server → client\n")
        if hs["ack_time"] is not None:
            t.append(f"  ACK       {fmt.dur(hs['ack_time']):>9}   client → server\n")
        t.append(f"  handshake RTT {fmt.dur(hs['irtt'])}: capture point ↔ server "
                 f"{fmt.dur(hs['irtt_server_side'])}, capture point ↔ client "
                 f"{fmt.dur(hs['irtt_client_side'])}\n")
    t.append("\nOptions offered", style="bold underline")
    t.append("  (MSS RFC 9293 3.7.1, window scale RFC 7323, SACK RFC 2018, timestamps)\n")
    for side, key in (("client", "client_options"), ("server", "server_options")):
        o = hs[key]
        ws = o["window_scale"]
        t.append(f"  {side:<7} MSS {o['mss'] or fmt.NONE:<6} window scale "
                 f"{fmt.NONE if ws is None else f'{ws} (×{1 << ws})':<10} "
                 f"SACK {_on_off(o['sack_permitted']):<4} timestamps "
                 f"{_on_off(o['timestamps'])}\n")
    t.append(f"\nState {s['state']}  history {s['history']}  duration "
             f"{fmt.dur(s['duration'])}  frames {s['first_frame']}–{s['last_frame']}\n",
             style="bold")
    for i, key in enumerate(("c2s", "s2c")):
        x = s[key]
        r, w, rt = x["rtt"], x["window"], x["retransmissions"]
        t.append(f"\n{DIRS[i]}", style="bold underline")
        t.append(f"  packets {fmt.count(x['packets'])}, data {fmt.size(x['unique_payload_bytes'])}"
                 f" (goodput {fmt.rate(x['goodput'])})\n")
        share = r["delayed_share"]
        t.append(f"  RTT      samples {r['samples']}  min {fmt.dur(r['min'])}  avg "
                 f"{fmt.dur(r['avg'])}  max {fmt.dur(r['max'])}  SRTT {fmt.dur(r['srtt'])} "
                 f"(path; {'-' if share is None else f'{100 * share:.0f}%'} of samples held "
                 f"by delayed ACK)  RTO {fmt.dur(r['rto'])}\n")
        t.append(f"  window   advertised by the {'server' if i == 0 else 'client'}: see "
                 f"{DIRS[1 - i].split()[0]}'s window; this side's own: last "
                 f"{fmt.size(w['last'])}  min {fmt.size(w['min'])}  max {fmt.size(w['max'])}"
                 f"  scale {fmt.NONE if w['scale'] is None else w['scale']}\n")
        t.append(f"  in flight max {fmt.size(x['in_flight']['max'])}  zero windows "
                 f"{w['zero_window_events']} ({fmt.dur(w['zero_window_time'])})  probes "
                 f"{w['zero_window_probes']}\n")
        style = "bold red" if rt["total"] else ""
        t.append(f"  resent {rt['total']} (timeout {rt['rto']}, probe {rt['tlp']}, fast "
                 f"{rt['fast']}; lost {rt['lost']}, spurious {rt['spurious']}, unconfirmed "
                 f"{rt['unconfirmed']})  dup ACKs sent {x['duplicate_acks']}  out of order "
                 f"{x['out_of_order']}  ambiguous {x['ambiguous']}  not captured "
                 f"{x['lost_segments']}\n", style=style)
    return t


def kept_text(what: str, seen: int, kept: int, why: str) -> Text:
    """'packets 1.2M seen, newest 200k kept' when the budget let some go."""
    if kept >= seen:
        return Text(f"{what} {fmt.count(seen)}, all kept")
    return Text(f"{what} {fmt.count(seen)} seen, newest {fmt.count(kept)} kept ({why}; "
                "--memory raises it)")


class FlowScreen(Screen):
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("backspace", "back", "Back", show=False),
        Binding("o", "tab('overview')", "Overview"),
        Binding("g", "tab('plots')", "Plots"),
        Binding("e", "tab('events')", "Events"),
        Binding("k", "tab('packets')", "Packets"),
        Binding("x", "tab('requests')", "Requests"),
    ]
    DEFAULT_CSS = """
    FlowScreen { overflow: hidden; }
    FlowScreen #flowtitle { height: auto; max-height: 3; background: $panel; }
    FlowScreen #tabs { height: 1fr; }
    FlowScreen TabPane { height: 1fr; padding: 0; }
    FlowScreen #plots { height: 1fr; }
    FlowScreen #plots { grid-size: 2 2; }
    FlowScreen PlotextPlot { height: 1fr; }
    FlowScreen #pkts { height: 1fr; }
    FlowScreen #dissection { height: 1fr; border-top: solid $primary; }
    FlowScreen #reqs { height: 1fr; }
    FlowScreen #legend { height: 1; }
    FlowScreen .kept { height: 1; color: $text-muted; }
    FlowScreen #diagbox { height: 1fr; border-top: solid $primary; }
    """

    def __init__(self, fid: int, exchange: int | None = None) -> None:
        super().__init__()
        self.fid = fid
        self.exchange = exchange  # opened at this request (the Requests view's Enter)
        self.version = -1
        self.packet_keys: set[str] = set()
        self.saved: str | None = None
        self.dissected: int | None = None
        self.ready = False  # set once composed: snapshots before that wait for on_mount

    def compose(self) -> ComposeResult:
        yield Static(Text(f"connection {self.fid}: waiting for data…"), id="flowtitle")
        with TabbedContent(initial="overview", id="tabs"):
            with TabPane("Overview", id="overview"), VerticalScroll():
                yield Static(id="ov")
            with TabPane("Plots", id="plots"), Grid(id="plots"):
                yield PlotextPlot(id="p_rtt")
                yield PlotextPlot(id="p_win_c")
                yield PlotextPlot(id="p_thr")
                yield PlotextPlot(id="p_win_s")
            with TabPane("Requests", id="requests"), Vertical():
                yield Static(id="rqnote", classes="kept")
                rq: DataTable = FastTable(id="reqs", cursor_type="row", zebra_stripes=True)
                for label, key, w in (("#", "i", 4), ("request", "req", 34),
                                      ("answer", "resp", 12), ("total", "total", 9),
                                      ("breakdown", "bar", 64), ("stalls", "stalls", 26)):
                    rq.add_column(label, key=key, width=w)
                yield rq
                yield Static(LEGEND, id="legend")
                with VerticalScroll(id="diagbox"):
                    yield Static(id="diag")
            with TabPane("Events", id="events"), Vertical():
                yield Static(id="evnote", classes="kept")
                ev: DataTable = FastTable(id="ev", cursor_type="row", zebra_stripes=True)
                ev.add_columns("time", "frame", "dir", "event")
                yield ev
            with TabPane("Packets", id="packets"), Vertical():
                yield Static(id="pknote", classes="kept")
                pk: DataTable = FastTable(id="pkts", cursor_type="row", zebra_stripes=True)
                for label, key, w in (("frame", "num", 7), ("time", "t", 10), ("dir", "d", 3),
                                      ("flags", "f", 6), ("seq", "seq", 10),
                                      ("ack", "ack", 10), ("len", "len", 6),
                                      ("win", "win", 6), ("analysis", "ev", 22),
                                      ("info", "info", 50)):
                    pk.add_column(label, key=key, width=w)
                yield pk
                yield Tree(Text("Enter on a packet: its full dissection (tshark)"),
                           id="dissection")
        yield Footer()

    def on_mount(self) -> None:
        self.ready = True
        if self.exchange is not None:
            self.action_tab("requests")
        s = self.app.monitor.latest
        if s is not None and s.detail is not None and s.detail.id == self.fid:
            self.show(s)

    def action_back(self) -> None:
        self.app.monitor.focus = None
        self.app.pop_screen()

    def action_tab(self, tab: str) -> None:
        self.query_one("#tabs", TabbedContent).active = tab
        tables = self.query_one(f"TabPane#{tab}").query(DataTable)
        if tables:
            tables.first().focus()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        tables = event.pane.query(DataTable)
        if tables:
            tables.first().focus()

    # ---- snapshot ------------------------------------------------------------------------
    def show(self, s: Snapshot) -> None:
        d = s.detail
        self.saved = s.saved
        if not self.ready or d is None or d.id != self.fid or d.version == self.version:
            return
        self.version = d.version
        sm = d.summary
        title = Text()
        title.append(f"connection {d.id}  ", style="bold")
        title.append_text(fmt.untrusted(
            f"{sm['client']['addr']}:{sm['client']['port']} → "
            f"{sm['server']['addr']}:{sm['server']['port']}", 100))
        for who, p in (("client", d.client_proc), ("server", d.server_proc)):
            if p is not None:
                title.append(f"  {who} ")
                title.append_text(fmt.untrusted(
                    p.name if p.pid is None else f"{p.name} ({p.pid}, {p.user or '?'})", 60,
                    "bold cyan"))
                if p.cmdline:
                    title.append(" ")
                    title.append_text(fmt.untrusted(p.cmdline, 80, "dim"))
        title.append(f"  {sm['state']}  ")
        title.append_text(badge_text(d.badges))
        self.query_one("#flowtitle", Static).update(title)
        self.query_one("#ov", Static).update(overview_text(d))
        self._plots(d)
        self._events(d)
        self._packets(d)
        self._requests(d)

    def _plot(self, wid: str, title: str, ylabel: str, lines: list) -> None:
        w = self.query_one(wid, PlotextPlot)
        plt = w.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(title)
        plt.xlabel("seconds since the first packet")
        plt.ylabel(ylabel)
        drawn = False
        for xs, ys, label in lines:
            if xs:
                plt.plot(list(xs), list(ys), label=label, marker="braille")
                drawn = True
        if not drawn:
            plt.title(title + " (no samples)")
        w.refresh()

    def _plots(self, d: FlowDetail) -> None:
        lines = []
        for i in (0, 1):
            ser = d.rtt[i]
            if ser:
                xs = [p[0] for p in ser]
                lines.append((xs, [p[1] * 1e3 for p in ser], f"RTT {ARROW[i]}"))
                lines.append((xs, [p[2] * 1e3 for p in ser], f"SRTT {ARROW[i]}"))
        self._plot("#p_rtt", "RTT samples and SRTT (RFC 6298)", "ms", lines)
        # data client->server is limited by the window the server advertises, and vice versa
        for wid, sender, receiver, name in (("#p_win_c", 0, 1, "client → server"),
                                             ("#p_win_s", 1, 0, "server → client")):
            win, fl = d.window[receiver], d.flight[sender]
            self._plot(wid, f"{name}: receiver's window vs bytes in flight", "KiB", [
                ([p[0] for p in win], [p[1] / 1024 for p in win], "advertised window"),
                ([p[0] for p in fl], [p[1] / 1024 for p in fl], "in flight")])
        self._plot("#p_thr", f"throughput (frame bytes, {fmt.dur(d.throughput_bin)} bins)",
                   "KiB/s", [
            ([p[0] for p in d.throughput[i]], [p[1] / 1024 for p in d.throughput[i]],
             DIRS[i]) for i in (0, 1)])

    def _requests(self, d: FlowDetail) -> None:
        rq = self.query_one("#reqs", DataTable)
        exs = d.summary["exchanges"]
        self.query_one("#rqnote", Static).update(kept_text(
            "requests", len(exs) + d.summary["exchanges_dropped"], len(exs),
            "the newest within the memory budget"))
        rq.clear()
        longest = max((x["breakdown"]["total"] or 0 for x in exs), default=0)
        scale = longest / BAR if longest else 0
        for x in exs[-500:]:
            b = x["breakdown"]
            stalls = ", ".join(f"{k} {fmt.dur(v)}" for k, v in b["stalls"].items())
            rq.add_row(x["index"], fmt.untrusted(request_label(x), 120),
                       fmt.untrusted(answer_label(x), 40),
                       Text(fmt.dur(b["total"]), justify="right"), waterfall(b, scale),
                       Text(stalls, style="bold red" if stalls else ""), key=str(x["index"]))
        if self.exchange is not None and str(self.exchange) in rq.rows:
            # opened at this request: the cursor on it, once
            rq.move_cursor(row=rq.get_row_index(str(self.exchange)), animate=False)
            self.exchange = None
        diag = Text()
        tls = d.summary.get("tls")
        if tls:
            diag.append("TLS ", style="bold")
            diag.append_text(fmt.untrusted(
                f"{tls.get('version') or '?'}, SNI {tls.get('sni') or '—'}, "
                f"{tls.get('rtts') or '?'} round trip(s), "
                f"{'resumed' if tls.get('resumed') else 'full handshake'}, handshake "
                f"{fmt.dur(tls.get('handshake_time'))}; requests are its turns (encrypted: "
                f"an HTTP/2 connection's streams cannot be told apart)\n", 300))
        app = d.summary.get("app")
        if app and app.get("note"):
            diag.append(f"{app.get('protocol')} ", style="bold")
            diag.append_text(fmt.untrusted(f"{app['note']}\n", 300))
        found = sorted(d.summary["diagnosis"], key=lambda f: -f["lost"])
        if not found:
            diag.append("Diagnosis: nothing found on this connection.", style="green")
        for f in found:
            sev = {"error": "bold red", "warn": "yellow"}.get(f["severity"], "")
            diag.append(f"[{f['badge']}] ", style=sev)
            diag.append(f"{f['kind']}  lost {fmt.dur(f['lost'])}", style="bold")
            frames = ", ".join(str(e["frame"]) for e in f["evidence"][:8])
            if frames:
                diag.append(f"  frames {frames}")
            diag.append(f"\n  {f['explain']}\n  → {f['advice']}\n")
        self.query_one("#diag", Static).update(diag)

    def _events(self, d: FlowDetail) -> None:
        self.query_one("#evnote", Static).update(kept_text(
            "events", d.events_seen, len(d.events), "the newest within the memory budget"))
        ev = self.query_one("#ev", DataTable)
        ev.clear()
        for t, num, di, names in d.events:
            # tcpwatch's reading first (what was resent and whether it was needed), then
            # Wireshark's flags for the same frame
            ours = [n for n in names if n in OURS]
            theirs = [n for n in names if n not in OURS]
            loss = any(n.endswith("_resend") for n in ours) and "spurious_resend" not in ours
            style = "bold red" if loss or "rst" in ours or "zero_window" in theirs else (
                "yellow" if "spurious_resend" in ours or "late_original" in ours else "")
            text = ", ".join(ours)
            if theirs:
                text += ("  · " if text else "") + "tshark: " + ", ".join(theirs)
            ev.add_row(Text(fmt.dur(t), justify="right"), num, ARROW[di],
                       Text(text, style=style), key=f"{num}:{names}")

    def _packets(self, d: FlowDetail) -> None:
        self.query_one("#pknote", Static).update(kept_text(
            "packets", d.packets_seen, len(d.packets),
            "the newest of the whole capture within the memory budget"))
        pk = self.query_one("#pkts", DataTable)
        wanted = {str(p[0]): p for p in d.packets}
        for key in [k for k in self.packet_keys if k not in wanted]:
            pk.remove_row(key)
            self.packet_keys.discard(key)
        for key, p in wanted.items():
            if key in self.packet_keys:
                continue
            num, t, di, flags, seq, ack, plen, win, evs, info = p
            pk.add_row(num, Text(f"{t:.6f}", justify="right"), ARROW[di], flags, seq, ack,
                       plen, win, Text(", ".join(evs), style="yellow" if evs else ""),
                       fmt.untrusted(info, 200), key=key)
            self.packet_keys.add(key)

    # ---- dissection ------------------------------------------------------------------------
    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id != "pkts" or event.row_key.value is None:
            return
        frame = int(event.row_key.value)
        tree = self.query_one("#dissection", Tree)
        tree.clear()
        raw = self.app.monitor.capture.raw
        if (self.saved is None or self.saved == "-") and raw is None:
            why = "standard input" if self.saved == "-" else \
                "live capture with the pyshark engine: add -w FILE"
            tree.root.set_label(Text(f"no capture file to dissect from ({why})"))
            return
        tree.root.set_label(Text(f"frame {frame}: asking tshark…"))
        self.dissect(self.saved, frame)

    @work(thread=True, exclusive=True, group="dissect")
    def dissect(self, path: str | None, frame: int) -> None:
        from ..capture.dissect import dissect, dissect_raw
        capture = self.app.monitor.capture
        capture.flush_saved()
        try:
            if path is None or path == "-":
                held = capture.raw.get(frame) if capture.raw is not None else None
                if held is None:
                    raise UserError(f"frame {frame} is no longer held in memory (the newest "
                                    f"{capture.raw.max_bytes >> 20} MiB are): capture with "
                                    "-w FILE to dissect any packet")
                lines = dissect_raw(*held, frame)
            else:
                lines = dissect(path, frame)
            err = None
        except UserError as e:
            lines, err = [], e.message
        self.app.call_from_thread(self._show_dissection, frame, lines, err)

    def _show_dissection(self, frame: int, lines: list, err: str | None) -> None:
        tree = self.query_one("#dissection", Tree)
        tree.clear()
        if err is not None:
            tree.root.set_label(fmt.untrusted(err, 200, "red"))
            return
        tree.root.set_label(Text(f"frame {frame} (Wireshark dissection)", style="bold"))
        stack = [tree.root]
        for i, (depth, text) in enumerate(lines):
            del stack[depth + 1:]
            parent = stack[min(depth, len(stack) - 1)]
            label = fmt.untrusted(text, 300, "bold" if depth == 0 else "")
            if i + 1 < len(lines) and lines[i + 1][0] > depth:
                stack.append(parent.add(label, expand=depth == 0))
            else:
                parent.add_leaf(label)
        tree.root.expand()
        self.dissected = frame
