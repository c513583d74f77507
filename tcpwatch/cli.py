"""Command line: `tcpwatch report` (headless). Bad input ends with one line on stderr and
exit code 2, never a traceback; whatever was analysed before a failure is still printed."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from importlib import resources

from . import __version__
from .errors import EXIT_USAGE, UserError


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
        description="What TCP is really doing under your services: handshakes, RTT, windows, "
                    "retransmissions, per connection, live or from a capture file.")
    p.add_argument("--version", action="version", version=f"tcpwatch {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    r = sub.add_parser(
        "report", help="analyse a capture file or a live interface and print a report",
        description="Analyse every TCP connection of a capture (-r) or of a live interface "
                    "(-i, until -c packets, --duration seconds or Ctrl+C) and print one line "
                    "per connection, or JSON (--json; schema in README.md).")
    src = r.add_mutually_exclusive_group(required=True)
    src.add_argument("-r", dest="file", metavar="FILE",
                     help="read a pcap or pcapng file ('-' for standard input)")
    src.add_argument("-i", dest="iface", metavar="IFACE",
                     help="capture live on this interface (any, lo, eth0...)")
    src.add_argument("--demo", action="store_true",
                     help="read the capture bundled with tcpwatch")
    r.add_argument("-f", dest="bpf", metavar="BPF",
                   help="capture filter, pcap-filter(7) syntax (live capture only)")
    r.add_argument("-c", dest="count", type=_positive(int), metavar="N",
                   help="stop after N packets")
    r.add_argument("--duration", type=_positive(float), metavar="S",
                   help="stop a live capture after S seconds")
    r.add_argument("--engine", choices=("fast", "pyshark"), default="fast",
                   help="packet engine: our own decoder (default) or tshark via pyshark")
    r.add_argument("--json", action="store_true", help="print JSON instead of a table")
    r.add_argument("--limit", type=int, default=200, metavar="N",
                   help="text table: show at most N connections (0: all; default 200)")
    return p


def cmd_report(args: argparse.Namespace) -> int:
    from .capture.session import Capture
    from .report import run, text

    file = demo_capture() if args.demo else args.file
    if args.bpf and file is not None:
        raise UserError("-f applies to live capture (-i); to filter a file, use tshark -Y")
    capture = Capture(args.engine, file=file, iface=args.iface, bpf=args.bpf,
                      count=args.count, duration=args.duration)
    table, err = run.analyse(capture)
    if isinstance(err, KeyboardInterrupt):
        err = None  # Ctrl+C ends a live capture: report what was seen
    if isinstance(err, UserError) and not table.flows and not capture.stats.packets:
        raise err
    report = run.build(table, capture)
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(text.render(report, None if args.limit == 0 else args.limit))
    if err is not None:
        if isinstance(err, UserError):
            raise err
        raise UserError(f"capture failed after {capture.stats.packets} packets: {err}")
    st = capture.stats
    if st.error:
        raise UserError(f"{capture.source}: capture damaged at {st.stopped_at}: {st.error}; "
                        f"the {st.packets} packets before it are reported above")
    return 0


def _terminate(_sig, _frame):
    raise KeyboardInterrupt  # SIGTERM ends a capture like Ctrl+C: clean up, report, exit


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "report":
            return cmd_report(args)
        parser.print_help()
        return 0
    except UserError as e:
        sys.stdout.flush()
        print(f"tcpwatch: {e.message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `tcpwatch report ... | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
