"""Both engines, one contract: the fast decoder and pyshark (tshark) produce identical
records, hence identical flow tables, on every shared capture."""

import threading

import pytest
from conftest import NEED_SHARED, NEED_TSHARK
from oracle import shared_captures

from tcpwatch.analysis.summary import flow_summary
from tcpwatch.analysis.table import FlowTable
from tcpwatch.capture import fast, pyshark_engine
from tcpwatch.capture.record import CaptureStats

pytestmark = [NEED_SHARED, NEED_TSHARK]
CAPTURES = shared_captures()


def table_of(records):
    t = FlowTable()
    for r in records:
        t.feed(r)
    return [flow_summary(f) for f in t.flows.values()]


@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_engines_give_identical_flow_tables(path):
    st_fast, st_ps = CaptureStats(), CaptureStats()
    recs_fast = list(fast.iter_file(str(path), st_fast))
    recs_ps = list(pyshark_engine.records(str(path), None, None, st_ps, threading.Event()))
    assert len(recs_fast) == len(recs_ps)
    assert recs_fast == recs_ps  # field by field, options and payload prefix included
    assert table_of(recs_fast) == table_of(recs_ps)
    assert st_fast.tcp == st_ps.tcp
    if st_fast.error is None:
        assert st_fast.packets == st_ps.packets
        assert st_fast.bytes == st_ps.bytes
