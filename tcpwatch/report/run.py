"""`tcpwatch report`: run a capture to its end through the flow table, then render."""

from __future__ import annotations

import gc
import json
from types import SimpleNamespace

from ..analysis.diagnosis import diagnose_capture
from ..analysis.summary import SCHEMA_VERSION, flow_summary
from ..analysis.table import MAX_FLOWS, FlowTable
from ..capture.session import Capture


def analyse(capture: Capture, max_flows: int = MAX_FLOWS
            ) -> tuple[FlowTable, BaseException | None]:
    """Feed every record to a FlowTable. An error from the capture is returned, not raised,
    so that everything analysed before it is still reported."""
    table = FlowTable(max_flows)
    feed = table.feed
    err = None
    # a file with our own decoder: decode and analyse on this thread (no hand-over), with the
    # cyclic GC paused: the trackers make no reference cycles (tested), and scanning millions
    # of per-flow objects again and again halved the rate on short connections
    direct = capture.file is not None and capture.engine == "fast"
    if direct:
        gc.disable()
    else:
        capture.start()
    try:
        if direct:
            for rec in capture.iter_records():
                feed(rec)
        else:
            for batch in capture.batches():
                for rec in batch:
                    feed(rec)
    except BaseException as e:  # noqa: BLE001 - reported by the caller, after the results
        err = e
    finally:
        if direct:
            gc.enable()
        else:
            capture.stop()
    return table, err


def _row(s: dict) -> SimpleNamespace:
    """A flow summary in the shape the dashboard's filter reads (monitor.FlowRow)."""
    c, v = s["client"], s["server"]
    badges = tuple(sorted({d["badge"] for d in s["diagnosis"]}))
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
            "dropped": st.dropped,
            "flows": len(table.flows),  # connections listed below
            "flows_seen": table.next_id,  # listed + evicted
            "first": None if table.first_ts is None else table.first_ts / 1e9,
            "last": None if table.first_ts is None else table.last_ts / 1e9,
            "stopped_at": st.stopped_at,  # where a damaged capture stopped being read
            "error": st.error,
        },
        # connections past the flow cap (--max-flows), least recently active first: added up
        "evicted": table.evicted.as_dict(),
        # half-open attempts (SYN, no answer) per server endpoint, listed and evicted
        "half_open": table.half_open(),
        "flows": flows,
        # findings across connections (connection churn)
        "diagnosis": [x.as_dict() for x in diagnose_capture(list(table.flows.values()))],
    }


def write_json(report: dict, out) -> None:
    """The report as JSON, one connection per line. Written part by part with the C encoder
    (json's indenting encoder is pure Python: 60 s for 50,000 connections, against ~3 s)."""
    dumps = json.dumps
    head = {k: v for k, v in report.items() if k not in ("flows", "diagnosis")}
    out.write(dumps(head)[:-1] + ', "diagnosis": ' + dumps(report["diagnosis"]) +
              ', "flows": [')
    sep = "\n"
    for f in report["flows"]:
        out.write(sep)
        out.write(dumps(f))
        sep = ",\n"
    out.write("\n]}\n")
