import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from oracle import have_tshark, shared_captures  # noqa: E402

NEED_SHARED = pytest.mark.skipif(
    not shared_captures(),
    reason="../shared/pcaps not present (public captures are not shipped with the repo)")
NEED_TSHARK = pytest.mark.skipif(not have_tshark(), reason="tshark not installed")


def tree_labels(node) -> list:
    """Every label of a Textual Tree, depth first (the dissection pane)."""
    out = [node.label]
    for child in node.children:
        out += tree_labels(child)
    return out


def wait_until(pred, timeout: float = 20.0, step: float = 0.1):
    """pred()'s first true value, polled every `step` s; AssertionError after `timeout` s."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("timed out")
