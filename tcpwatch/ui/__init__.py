"""The Textual dashboard. Reads Monitor snapshots only; never touches the trackers."""
