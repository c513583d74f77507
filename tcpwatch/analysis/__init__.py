"""Pure per-connection trackers: no I/O, no threads, no Textual; time comes only from packet
timestamps. Imports only capture.record from below."""

from typing import Final

# cyclic-GC thresholds for a process that analyses (the report, the dashboard's capture
# process): the trackers keep many long-lived objects and make no reference cycles (tested),
# and Python's default (700, 10, 10) walks them all again and again
GC_THRESHOLDS: Final = (100_000, 50, 1000)
