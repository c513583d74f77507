"""Command line: `tcpwatch report` (headless). Bad input ends with one line on stderr and
exit code 2, never a traceback; whatever was analysed before a failure is still printed."""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
from importlib import resources

from . import __version__
from .analysis import GC_THRESHOLDS
from .analysis.budget import DASHBOARD_MIB, PACKETS_MIB, REPORT_MIB
from .analysis.table import MAX_FLOWS
from .errors import EXIT_USAGE, UserError

EXIT_INTERRUPTED = 130  # ended by a signal (SIGINT, SIGTERM, SIGHUP), as after Ctrl+C


class ExitSignals:
    """SIGINT, SIGTERM and SIGHUP for the dashboard, never raised as an exception in whatever
    frame happens to run: a KeyboardInterrupt landing inside one of Textual's tasks (drawing
    the table, applying a snapshot) was re-raised while Textual stopped its timers, so it
    never restored the terminal nor stopped its input thread, and Python's exit waited for
    that thread forever. So outside the app's event loop a signal is only noted here; while
    the loop runs, the loop delivers it (loop.add_signal_handler, ui/app.py) and the app
    quits by the path `q` takes."""

    # interrupted; asked to stop; the terminal went away
    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.received: int | None = None
        # one ignored when tcpwatch started (nohup; SIGINT in a background job) stays so
        self.handled = tuple(s for s in self.SIGNALS if signal.getsignal(s) != signal.SIG_IGN)

    def note(self, signum: int, _frame=None) -> None:
        self.received = signum

    def install(self) -> ExitSignals:
        for sig in self.handled:
            signal.signal(sig, self.note)
        return self


def demo_capture() -> str:
    return str(resources.files("tcpwatch") / "data" / "demo.pcapng")


def _positive(kind):
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if v <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
        return v
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tcpwatch",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="What TCP is really doing under your services: handshakes, RTT, windows, "
                    "retransmissions, per connection and per process, live or from a capture "
                    "file.\n\nWith no command: the live dashboard (on interface 'any' unless -i "
                    "or -r is given). Keys: F1 in the dashboard.",
        epilog="examples:\n"
               "  tcpwatch                       watch every interface (needs capture rights)\n"
               "  tcpwatch -i lo -f 'port 8080'  watch one service on loopback\n"
               "  tcpwatch -i eth0 -w out.pcapng watch and save (Wireshark reads it)\n"
               "  tcpwatch -r trace.pcapng       explore a capture file\n"
               "  tcpwatch -r trace.pcapng --replay --speed 4   play it back as if live\n"
               "  tcpwatch report -r trace.pcapng --json        headless analysis")
    p.add_argument("--version", action="version", version=f"tcpwatch {__version__}")
    _source_options(p, dashboard=True)
    p.add_argument("--replay", action="store_true",
                   help="with -r: play the capture in capture time, as if it were live")
    p.add_argument("--speed", type=_positive(float), default=1.0, metavar="X",
                   help="with --replay: play X times faster (default 1)")
    p.add_argument("-w", dest="write", metavar="FILE.pcapng",
                   help="live: also save the packets watched to this pcapng file")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    r = sub.add_parser(
        "report", help="analyse a capture file or a live interface and print a report",
        description="Analyse every TCP connection of a capture (-r) or of a live interface "
                    "(-i, until -c packets, --duration seconds or Ctrl+C) and print one line "
                    "per connection, or JSON (--json; schema in README.md).")
    _source_options(r, dashboard=False)
    r.add_argument("-c", dest="count", type=_positive(int), metavar="N",
                   help="stop after N packets")
    r.add_argument("--duration", type=_positive(float), metavar="S",
                   help="stop a live capture after S seconds")
    r.add_argument("--json", action="store_true", help="print JSON instead of a table")
    r.add_argument("--by", choices=("service", "endpoint", "process"), metavar="GROUP",
                   help="instead of one line per connection, one per service (server "
                        "address:port and protocol), endpoint (HTTP route, Redis command, DNS "
                        "query type, TLS name) or local process (live): requests, errors, "
                        "p50/p90/p99/max, think and network time, churn, the main cause")
    r.add_argument("--limit", type=int, default=200, metavar="N",
                   help="text table: show at most N connections (0: all; default 200)")
    return p


def _snaplen(args) -> int | None:
    """--snaplen: None (the live default), 0 (whole frames) or at least 128 bytes (every
    header: link, IP, TCP with options)."""
    n = args.snaplen
    if n is None:
        return None
    if n != 0 and not 128 <= n <= 262144:
        raise UserError(f"--snaplen {n}: give 0 (whole frames) or 128 to 262144 bytes")
    if n and (getattr(args, "file", None) or getattr(args, "demo", False)):
        raise UserError("--snaplen applies to live capture (-i)")
    return n


def _source_options(p: argparse.ArgumentParser, dashboard: bool) -> None:
    src = p.add_mutually_exclusive_group(required=not dashboard)
    src.add_argument("-r", dest="file", metavar="FILE",
                     help="read a pcap or pcapng file ('-' for standard input)")
    src.add_argument("-i", dest="iface", metavar="IFACE",
                     help="capture live on this interface (any, lo, eth0...)"
                     + ("; default: any" if dashboard else ""))
    src.add_argument("--demo", action="store_true",
                     help="read the capture bundled with tcpwatch")
    p.add_argument("-f", dest="bpf", metavar="BPF",
                   help="capture filter, pcap-filter(7) syntax (live capture only)")
    p.add_argument("--snaplen", type=int, default=None, metavar="BYTES",
                   help="live: bytes kept of each frame (default 512: every header and the "
                        "payload's start, enough for HTTP/1, TLS, Redis, DNS and query-sized "
                        "database messages; 0: whole frames, for PostgreSQL, MySQL and "
                        "HTTP/2 messages anywhere in large segments, at a cost in keep-up)")
    p.add_argument("--engine", choices=("fast", "pyshark"), default="fast",
                   help="packet engine: our own decoder (default) or tshark via pyshark")
    p.add_argument("--filter", metavar="EXPR", default="",
                   help="show only matching connections: words, proc:NAME pid:N user:U "
                        "addr:A port:N state:SF badge:RTO id:N, !negated (the dashboard's "
                        "filter box)")
    p.add_argument("--max-flows", type=_positive(int), default=MAX_FLOWS, metavar="N",
                   help="keep at most N connections in memory; past it the least recently "
                        f"active are evicted and added up (default {MAX_FLOWS:,})")
    p.add_argument("--memory", type=_positive(float), default=None, metavar="MIB",
                   help="memory for what grows with the capture, beyond each connection's "
                        "counters: plot series, events, requests, and the dashboard's packet "
                        f"list (default: report {REPORT_MIB} MiB, dashboard "
                        f"{DASHBOARD_MIB + PACKETS_MIB} MiB; README: memory)")


def memory_split(mib: float | None) -> dict:
    """The dashboard's budget: its packet list and the flow table's (budget.py), in the
    default proportion."""
    if mib is None:
        return {}
    share = PACKETS_MIB / (PACKETS_MIB + DASHBOARD_MIB)
    return {"packets_mib": mib * share, "budget_mib": mib * (1 - share)}


def cmd_report(args: argparse.Namespace) -> int:
    from .capture.session import Capture
    from .report import run, text

    file = demo_capture() if args.demo else args.file
    if args.bpf and file is not None:
        raise UserError("-f applies to live capture (-i); to filter a file, use tshark -Y")
    pred = _filter(args.filter)
    capture = Capture(args.engine, file=file, iface=args.iface, bpf=args.bpf,
                      count=args.count, duration=args.duration, keep_raw=False,
                      snaplen=_snaplen(args), linger=True)
    capture.preflight()
    if _root_note(args.iface):
        print(f"tcpwatch: note: {ROOT_NOTE}", file=sys.stderr)
    progress = None
    if sys.stderr.isatty():  # packets, bytes, rate and ETA while a big file is read
        from .report.progress import Progress
        progress = Progress(os.path.basename(file) if file else f"-i {args.iface}",
                            capture.stats, sys.stderr).start()
    # a file: no cyclic GC until the report is written (the trackers make no cycles, and
    # each pass would walk every object kept); a live capture may run for days: it stays on
    paused = file is not None and gc.isenabled()
    if paused:
        gc.disable()
    procs = None
    if args.iface is not None:  # live: which local process served and sent each request
        from .procmap import FlowProcs, ProcMap
        procs = FlowProcs(ProcMap().start())
    try:
        try:
            table, err = run.analyse(capture, args.max_flows, args.memory or REPORT_MIB,
                                     procs)
        finally:
            if progress is not None:
                progress.stop()
            if procs is not None:
                procs.pm.stop()
        if isinstance(err, KeyboardInterrupt):
            err = None  # Ctrl+C ends a live capture: report what was seen
        if isinstance(err, UserError) and not table.flows and not capture.stats.packets:
            raise err
        report = run.build(table, capture, pred, lazy=args.json)
        if args.json:
            run.write_json(report, sys.stdout)
        elif args.by:
            print(text.render_groups(report, args.by, None if args.limit == 0 else args.limit))
        else:
            print(text.render(report, None if args.limit == 0 else args.limit))
    finally:
        if paused:
            gc.enable()
    if err is not None:
        if isinstance(err, UserError):
            raise err
        raise UserError(f"capture failed after {capture.stats.packets} packets: {err}")
    st = capture.stats
    if st.error:
        raise UserError(f"{capture.source}: capture damaged at {st.stopped_at}: {st.error}; "
                        f"the {st.packets} packets before it are reported above")
    if st.link_problem():
        raise UserError(f"{capture.source}: {st.link_problem()}")
    return 0


ROOT_NOTE = ("running as root: live capture needs only dumpcap's capture rights "
             "(README: capture without root)")


def _root_note(iface: str | None) -> str | None:
    return ROOT_NOTE if iface is not None and os.geteuid() == 0 else None


def _filter(text: str):
    from .viewfilter import FilterError, compile_filter
    try:
        return compile_filter(text)
    except FilterError as e:
        raise UserError(f"bad --filter: {e}") from None


def cmd_dashboard(args: argparse.Namespace, signals: ExitSignals) -> int:
    from .capture.session import Capture
    from .monitor import ViewSpec
    from .worker import RemoteMonitor

    file = demo_capture() if args.demo else args.file
    iface = args.iface if args.iface or file is not None else "any"
    if args.bpf and file is not None:
        raise UserError("-f applies to live capture (-i); to filter a file, use tshark -Y")
    if args.write and file is not None:
        raise UserError("-w saves a live capture (-i); a file (-r) is already saved")
    if args.replay and file is None:
        raise UserError("--replay plays a capture file: give -r FILE")
    if file == "-" and args.replay:
        raise UserError("--replay needs a file, not standard input")
    _filter(args.filter)
    if args.write:
        _check_writable(args.write)
    if not sys.stdout.isatty() or not sys.stdin.isatty():
        raise UserError("the dashboard needs a terminal; for text or JSON use "
                        "'tcpwatch report'")
    # live without -w: nothing is written; the drill-down dissects the newest frames from
    # memory (capture/rawring.py)
    capture_kw = dict(engine=args.engine, file=file, iface=iface, bpf=args.bpf,
                      save=args.write, snaplen=_snaplen(args))
    try:
        Capture(**capture_kw).preflight()  # one clear line before the screen changes
    except UserError:
        if signals.received is not None:  # Ctrl+C in the terminal ended `dumpcap -d` too
            return EXIT_INTERRUPTED
        raise
    mode = "live" if iface is not None else ("replay" if args.replay else "file")
    # capture and analysis run in a process of their own (worker.py): the UI never waits
    # for them, and they never wait for the UI
    monitor = RemoteMonitor(capture_kw, mode=mode, speed=args.speed,
                            procmap=iface is not None,
                            saved=args.write if iface is not None else file,
                            max_flows=args.max_flows, **memory_split(args.memory))
    monitor.view = ViewSpec(filter=args.filter)
    if _root_note(iface):
        monitor.notes = (ROOT_NOTE,)
    from .ui.app import SIGNAL_EXIT_S, TcpwatchApp
    app = TcpwatchApp(monitor, signals=signals, exit_deadline=SIGNAL_EXIT_S)
    try:
        app.run()
    finally:
        # the event loop, closing, set these signals back to their defaults: noted again (the
        # app has stopped the capture by now; a signal in between costs only the totals)
        signals.install()
        monitor.stop()
    last = monitor.latest
    if last is not None and mode == "live":  # as tcpdump does, the totals once the screen is gone
        print(f"tcpwatch: {last.packets:,} packets captured on {iface}; dropped "
              f"{last.dropped:,} by the capture (kernel) and {last.lost:,} by tcpwatch",
              file=sys.stderr)
    if last is not None and last.error:
        raise UserError(last.error)
    if monitor.failed is not None:
        raise UserError(monitor.failed)
    return EXIT_INTERRUPTED if signals.received is not None else 0


def _check_writable(path: str) -> None:
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise UserError(f"{path}: no such directory: {d}")
    if os.path.isdir(path):
        raise UserError(f"{path}: is a directory; give a file name for -w")
    if not os.access(d, os.W_OK):
        raise UserError(f"{path}: permission denied: cannot write in {d}")


def _interrupt(_sig, _frame):
    raise KeyboardInterrupt  # a report: SIGINT/SIGTERM/SIGHUP end a capture as Ctrl+C does


def main(argv: list[str] | None = None) -> int:
    # fewer cyclic-GC passes: the trackers keep many long-lived objects and make no cycles
    gc.set_threshold(*GC_THRESHOLDS)
    signals = ExitSignals().install()  # from the first moment: noted, never raised
    stacks = os.environ.get("TCPWATCH_STACKS")
    if stacks:  # debugging a hang: SIGUSR1 writes every thread's stack to this file
        import faulthandler
        faulthandler.register(signal.SIGUSR1, file=open(stacks, "a"),  # noqa: SIM115
                              all_threads=True)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "report":
            # no event loop here: the report's capture loop stops on KeyboardInterrupt, as on
            # Ctrl+C, and reports what it saw (report/run.py)
            for sig in signals.handled:
                signal.signal(sig, _interrupt)
            if signals.received is not None:
                raise KeyboardInterrupt
            return cmd_report(args)
        return cmd_dashboard(args, signals)
    except UserError as e:
        sys.stdout.flush()
        print(f"tcpwatch: {e.message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `tcpwatch report ... | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
