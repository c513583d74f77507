"""Pure per-connection trackers: no I/O, no threads, no Textual; time comes only from packet
timestamps. Imports only capture.record from below."""
