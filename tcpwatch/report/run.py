"""`tcpwatch report`: run a capture to its end through the flow table, then render."""

from __future__ import annotations

import gc
import re
import signal
import threading
from types import SimpleNamespace

import orjson

from ..analysis.budget import REPORT_MIB
from ..analysis.diagnosis import diagnose_capture
from ..analysis.requests import SENT, SERVED, process_rows
from ..analysis.summary import SCHEMA_VERSION, flow_summary
from ..analysis.table import MAX_FLOWS, FlowTable
from ..capture.session import Capture


def analyse(capture: Capture, max_flows: int = MAX_FLOWS, budget_mib: float = REPORT_MIB,
            procs=None) -> tuple[FlowTable, BaseException | None]:
    """Feed every record to a FlowTable, then finish the requests still open. An error from
    the capture is returned, not raised, so that everything analysed before it is still
    reported. With `procs` (live: procmap.FlowProcs, given by the command line, which owns
    the process table), requests are also grouped by local process."""
    table = FlowTable(max_flows, budget_mib=budget_mib)
    if procs is not None:
        table.requests.add_kind(SERVED, procs.served)
        table.requests.add_kind(SENT, procs.sent)
    table, err = _analyse(capture, table)
    table.requests.settle(table.flows, table.last_ts, final=True)
    return table, err


def _analyse(capture: Capture, table: FlowTable) -> tuple[FlowTable, BaseException | None]:
    err = None
    # a file with our own decoder: decode and analyse on this thread (no hand-over), with the
    # cyclic GC paused: the trackers make no reference cycles (tested), and scanning millions
    # of per-flow objects again and again halved the rate on short connections
    direct = capture.file is not None and capture.engine == "fast"
    paused = direct and gc.isenabled()
    if paused:
        gc.disable()
    # live with our own decoder: on this thread too (session.Capture.iter_batches); the first
    # signal asks dumpcap to stop, and what it still has (its drop counter last) is read
    live_direct = capture.direct_live and threading.current_thread() is threading.main_thread()
    if live_direct:
        return _analyse_live_direct(capture, table)
    if not direct:
        capture.start()
    try:
        for batch in capture.iter_batches() if direct else capture.batches():
            table.feed_all(batch)
    except KeyboardInterrupt as e:  # Ctrl+C ends a live capture: what it caught is analysed
        err = e
        if not direct:
            try:
                capture.request_stop()
                for batch in capture.batches():  # until dumpcap's end (a second Ctrl+C: now)
                    table.feed_all(batch)
            except BaseException:  # noqa: BLE001 - the first interruption is the one reported
                pass
    except BaseException as e:  # noqa: BLE001 - reported by the caller, after the results
        err = e
    finally:
        if paused:
            gc.enable()
        if not direct:
            capture.stop()
    return table, err


def _analyse_live_direct(capture: Capture, table: FlowTable
                         ) -> tuple[FlowTable, BaseException | None]:
    """A live capture read, decoded and analysed on this (the main) thread. A signal that
    would end the report (SIGINT, SIGTERM, SIGHUP: cli.py) stops the capture instead of
    interrupting whatever runs: dumpcap ends, and the packets it still has are analysed; a
    second one interrupts at once."""
    stopped: list[int] = []

    def stop(signum: int, _frame) -> None:
        if stopped:
            raise KeyboardInterrupt
        stopped.append(signum)
        capture.request_stop()

    handled = [s for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
               if signal.getsignal(s) not in (signal.SIG_IGN, None)]
    before = {s: signal.signal(s, stop) for s in handled}
    err: BaseException | None = None
    try:
        for batch in capture.iter_batches():
            table.feed_all(batch)
    except BaseException as e:  # noqa: BLE001 - reported by the caller, after the results
        err = e
    finally:
        for s, h in before.items():
            signal.signal(s, h)
        capture.stop()
    if err is None and stopped:
        err = KeyboardInterrupt()
    return table, err


def _row(s: dict) -> SimpleNamespace:
    """A flow summary in the shape the dashboard's filter reads (monitor.FlowRow)."""
    c, v = s["client"], s["server"]
    badges = tuple(s["badges"])  # badges.flow_badges: the dashboard's own
    return SimpleNamespace(id=s["id"], proc=None, caddr=c["addr"], cport=c["port"],
                           saddr=v["addr"], sport=v["port"], state=s["state"],
                           closed=s["closed"], badges=badges,
                           client=f"{c['addr']}:{c['port']}", server=f"{v['addr']}:{v['port']}")


def build(table: FlowTable, capture: Capture, pred=None, lazy: bool = False) -> dict:
    """The report; `pred` (viewfilter.compile_filter) keeps only the flows it matches. With
    `lazy`, "flows" is an iterator that summarises each connection as it is written
    (write_json): no list of every summary in memory at once."""
    st = capture.stats
    flows = (flow_summary(f) for f in table.flows.values())
    if pred is not None:
        flows = (s for s in flows if pred(_row(s)))
    if not lazy:
        flows = list(flows)
    return {
        "schema": SCHEMA_VERSION,
        "source": capture.source,
        "engine": capture.engine,
        "totals": {
            "packets": st.packets,  # every frame read
            "tcp_packets": st.tcp,
            "non_tcp": st.non_tcp,
            "undecodable": st.undecodable,
            "bytes": st.bytes,
            "dropped": st.dropped,  # by the capture (kernel, dumpcap: known at its end)
            "dropped_by_tcpwatch": st.lost,  # live: analysis fell behind (0 when keeping up)
            "flows": len(table.flows),  # connections listed below
            "flows_seen": table.next_id,  # listed + evicted
            "first": None if table.first_ts is None else table.first_ts / 1e9,
            "last": None if table.first_ts is None else table.last_ts / 1e9,
            "stopped_at": st.stopped_at,  # where a damaged capture stopped being read
            "error": st.error,
        },
        # connections past the flow cap (--max-flows), least recently active first: added up
        "evicted": table.evicted.as_dict(),
        # what grows with connections' lives, and each one's share of it (budget.py)
        "memory": table.budget.as_dict(),
        # half-open attempts (SYN, no answer) per server endpoint, listed and evicted
        "half_open": table.half_open(),
        "flows": flows,
        # findings across connections (connection churn)
        "diagnosis": [x.as_dict() for x in diagnose_capture(list(table.flows.values()))],
        # every finished request, grouped (analysis/requests.py), slowest p99 first
        **groups(table),
    }


def groups(table: FlowTable) -> dict:
    """The services, endpoints and processes sections (one definition: requests.Group.row)."""
    rq, now = table.requests, table.last_ts

    def slowest(rows: list[dict]) -> list[dict]:
        return sorted(rows, key=lambda r: (-(r["p99"] or 0), r["name"]))

    return {"services": slowest(rq.rows("service", now)),
            "endpoints": slowest(rq.rows("endpoint", now)),
            "processes": process_rows(rq, now),
            "requests_counted": rq.counted}


_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _escape(m: re.Match) -> str:
    c = ord(m.group())
    if c < 0x10000:
        return f"\\u{c:04x}"
    c -= 0x10000  # a UTF-16 surrogate pair, as JSON spells characters past the BMP
    return f"\\u{0xD800 | c >> 10:04x}\\u{0xDC00 | c & 0x3FF:04x}"


def dumps(value) -> str:
    """One JSON text, ASCII only: text from the wire (HTTP paths, SNI, DNS names) is kept as
    \\u escapes, never as raw bytes a terminal could act on (C1 controls). orjson encodes
    (~4x json's C encoder on these reports); the few non-ASCII strings are then escaped.
    Infinity and NaN, which JSON cannot spell, become null."""
    b = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    s = b.decode()
    return s if b.isascii() else _NON_ASCII.sub(_escape, s)


def write_json(report: dict, out) -> None:
    """The report as JSON, one connection per line, written part by part (no list of every
    connection's text in memory)."""
    head = {k: v for k, v in report.items() if k not in ("flows", "diagnosis")}
    out.write(dumps(head)[:-1] + ',"diagnosis":' + dumps(report["diagnosis"]) + ',"flows":[')
    sep = "\n"
    for f in report["flows"]:
        out.write(sep)
        out.write(dumps(f))
        sep = ",\n"
    out.write("\n]}\n")
