"""`tcpwatch report`: run a capture to its end through the flow table, then render."""

from __future__ import annotations

from ..analysis.diagnosis import diagnose_capture
from ..analysis.summary import SCHEMA_VERSION, flow_summary
from ..analysis.table import FlowTable
from ..capture.session import Capture


def analyse(capture: Capture) -> tuple[FlowTable, BaseException | None]:
    """Feed every record to a FlowTable. An error from the capture is returned, not raised,
    so that everything analysed before it is still reported."""
    table = FlowTable()
    feed = table.feed
    err = None
    capture.start()
    try:
        for batch in capture.batches():
            for rec in batch:
                feed(rec)
    except BaseException as e:  # noqa: BLE001 - reported by the caller, after the results
        err = e
    finally:
        capture.stop()
    return table, err


def build(table: FlowTable, capture: Capture) -> dict:
    st = capture.stats
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
            "flows": len(table.flows),
            "first": None if table.first_ts is None else table.first_ts / 1e9,
            "last": None if table.first_ts is None else table.last_ts / 1e9,
            "stopped_at": st.stopped_at,  # where a damaged capture stopped being read
            "error": st.error,
        },
        "flows": [flow_summary(f) for f in table.flows],
        # findings across connections (connection churn)
        "diagnosis": [x.as_dict() for x in diagnose_capture(table.flows)],
    }
