"""The help screen: every column and badge in first-principles words, and every key."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

from ..analysis.badges import BADGES
from .columns import VIEW_COLUMNS, VIEW_TITLES

KEYS = (
    ("1 2 3 4", "the views: Connections, Requests (every finished request, slowest first), "
     "Services (per server endpoint; `e` per endpoint: route, command, query type), "
     "Processes (per local process)"),
    ("Enter", "Connections: open the connection (handshake, RTT, window and throughput plots, "
     "events, packets, a packet's full Wireshark dissection); Requests: open its connection "
     "at that request; Services: list that service's (endpoint's) requests; Processes: list "
     "its connections"),
    ("e", "Services: one row per endpoint / per service"),
    ("w", "Services and Processes: percentiles over the whole capture, the last 10 s or the "
     "last 60 s (in 5 s steps)"),
    ("/", "filter: words must all match; `proc:nginx` `port:443` `addr:10.0.` `state:SF` "
     "`state:open` `badge:RTO` `pid:123` `user:www`; `!word` excludes"),
    ("Esc", "leave the filter box / go back"),
    ("p", "problems only: connections with a badge"),
    ("space", "pause: the table stops moving, the capture goes on"),
    ("s / S", "sort by the next / previous column (or click a header); r reverses"),
    ("F1 / ?", "this help"),
    ("Ctrl+P", "command palette: every action by name"),
    ("q / Ctrl+C", "quit (stops the capture)"),
)


def help_markdown() -> str:
    out = ["# tcpwatch", "",
           "What TCP is doing under your services, per connection. Numbers are measured at "
           "the capture point from packet timestamps; each comes from one definition, with "
           "the RFC it follows.", ""]
    for view, cols in VIEW_COLUMNS.items():
        out += [f"## {VIEW_TITLES[view]}", ""]
        for c in cols:
            out.append(f"- **{c.label}**: {c.help}")
        out.append("")
    out += ["## Badges", ""]
    for tag, (sev, short, text) in BADGES.items():
        out.append(f"- **{tag}** ({sev}, {short}): {text}")
    out += ["", "## Keys", ""]
    for k, text in KEYS:
        out.append(f"- **{k}**: {text}")
    out += ["", "## In a connection (Enter)", "",
            "- **Overview**: the handshake (SYN, SYN-ACK, ACK times; the iRTT split into the "
            "server side and the client side of the capture point), the options each side "
            "offered (MSS, window scale, SACK, timestamps), and per direction the counters.",
            "- **Plots**: RTT samples and SRTT; the receiver's advertised window against the "
            "sender's bytes in flight (in flight pinned at the window means flow control "
            "limits the transfer; a window at zero means the reader stalled); throughput per "
            "second.",
            "- **Requests**: every request/response exchange (HTTP/1, Redis, DNS by their "
            "turns; PostgreSQL queries, MySQL commands, HTTP/2 streams and gRPC calls one by "
            "one, pipelined or concurrent; encrypted traffic, HTTP/2 inside TLS included, by "
            "its turns: TLS hides the messages; any other protocol by its turns) with a "
            "waterfall of where its time went: "
            "connect (SYN to ACK), TLS handshake, the client's own wait, upload, one network "
            "round trip, the server's think time, and the response transfer; the parts add "
            "up to the total. Stalls inside them (RTO waits, fast-retransmit recovery, zero "
            "window, full window, Nagle with delayed ACK) are listed. Below: the diagnosis, "
            "each finding with the time it cost, its evidence frames, why it happens and what "
            "to do.",
            "- **Events**: retransmissions, duplicate ACKs, zero windows, SYN/FIN/RST, with "
            "times from the first packet.",
            "- **Packets**: the newest packets of the connection; Enter on one shows its full "
            "Wireshark dissection (tshark through pyshark, read from the capture file or the "
            "live capture's saved copy).",
            ]
    return "\n".join(out)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("q", "dismiss", "Close", show=False),
        Binding("f1", "dismiss", "Close", show=False),
        Binding("question_mark", "dismiss", "Close", show=False),
    ]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90%; height: 90%; border: thick $primary;
                                  background: $surface; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown(help_markdown())

    async def action_dismiss(self, result=None) -> None:
        self.dismiss(result)
