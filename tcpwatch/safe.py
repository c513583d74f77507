"""Making untrusted text inert: anything that came off the wire or from another process
(HTTP paths, SNI, hostnames, process names) is shown with control characters escaped, so that
no terminal control sequence from a packet reaches the terminal. (Rich markup is a UI
concern: the UI escapes it as well, with rich.markup.escape, at display time.)"""

from __future__ import annotations

_ESC = {i: f"\\x{i:02x}" for i in list(range(0x20)) + [0x7F]}
_ESC.update({0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x5C: "\\\\"})
# C1 controls (U+0080-U+009F) are terminal controls too (CSI = U+009B)
_ESC.update({i: f"\\u{i:04x}" for i in range(0x80, 0xA0)})


def inert(text: str) -> str:
    """Escape every C0/C1 control character and backslash; printable text is unchanged."""
    return text.translate(_ESC)


def inert_bytes(data: bytes, limit: int = 200) -> str:
    """Bytes from the wire as inert text (latin-1 keeps one char per byte)."""
    s = data[:limit].decode("latin-1")
    return inert(s) + ("..." if len(data) > limit else "")
