"""The help screen: every column and badge in first-principles words, and every key."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

from ..analysis.badges import BADGES

# (column key, header, width, what it means). One definition of each number lives in
# monitor.FlowRow / analysis.summary; these words explain them.
COLUMNS = (
    ("id", "#", 5, "Connection number, in order of first packet (Wireshark's `tcp.stream`)."),
    ("proc", "process", 18, "The local process that owns the socket (client side first), with "
     "its pid, from the kernel's socket table. `?`: a socket of another user (run as root to "
     "see it). `—`: no local socket (a capture file, or a remote host)."),
    ("client", "client", 22, "Who opened the connection (sent the SYN)."),
    ("server", "server", 22, "Who accepted it. Without a SYN in the capture the roles are "
     "guessed from the ports (history starts with `^`)."),
    ("state", "state", 6, "Zeek's connection state: `S0` SYN with no answer, `S1` open, `SF` "
     "opened and closed normally, `REJ` refused, `RSTO`/`RSTR` reset by client/server, `S2`/`S3` "
     "half closed, `OTH` seen mid-stream. Closed connections are dimmed."),
    ("age", "age", 7, "Time since the first packet (for a closed connection: how long it "
     "lasted)."),
    ("irtt", "hs rtt", 8, "Handshake RTT: SYN to the ACK of the SYN-ACK, at the capture point "
     "(RFC 9293 3.5). Every new connection costs this before a request can be sent; TLS adds "
     "one or two more round trips."),
    ("srtt", "srtt", 8, "The path's smoothed round trip (RFC 6298: SRTT = 7/8 SRTT + 1/8 "
     "sample; Karn's rule; RFC 7323 timestamps): the capture point's RTT to the server plus "
     "its RTT to the client, from data->ACK samples. Samples whose ACK the receiver held "
     "(delayed ACK, RFC 1122 4.2.3.2, or waiting for its answer) measure the receiver, not the "
     "path: they are kept apart (the drill-down shows their share). Each request/response "
     "needs at least one RTT; slow start needs several for a large response."),
    ("up", "↑ data", 9, "Application bytes client → server, each byte counted once "
     "(retransmissions excluded)."),
    ("down", "↓ data", 9, "Application bytes server → client."),
    ("rate", "rate", 10, "Bytes on the wire per second, both ways, over the last second of "
     "capture time."),
    ("retx", "retx", 5, "Segments sent again: on the RTO timer (RFC 6298), as a tail loss "
     "probe (RFC 8985) or after duplicate ACKs/SACK (RFC 5681). Late originals (reordering) are "
     "not counted; resends that were not needed (D-SACK, timestamps) are, and the drill-down "
     "says which. Each loss costs at least one RTT, or a whole RTO (>=200 ms on Linux) when "
     "nothing reveals it, and the sender halves its rate."),
    ("zwin", "0-win", 7, "Time a receiver advertised a zero window (RFC 9293 3.8.6): its "
     "application was not reading, so the sender had to stop."),
    ("badges", "problems", 16, "Badges for what went wrong (below), most severe first."),
)

KEYS = (
    ("Enter", "open the connection: handshake, RTT, window and throughput plots, events, "
     "packets, and a packet's full Wireshark dissection"),
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
           "the RFC it follows.", "", "## Columns", ""]
    for _key, label, _w, text in COLUMNS:
        out.append(f"- **{label}**: {text}")
    out += ["", "## Badges", ""]
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
            "- **Requests**: every request/response exchange (HTTP, TLS, Redis, DNS recognised; "
            "any other protocol by its turns) with a waterfall of where its time went: "
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
