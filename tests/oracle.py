"""tshark as the oracle: run Wireshark's own TCP analysis on a capture, in the test."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "pcaps"

FLAG_FIELDS = ("retransmission", "fast_retransmission", "spurious_retransmission",
               "out_of_order", "lost_segment", "ack_lost_segment", "duplicate_ack",
               "zero_window", "zero_window_probe", "zero_window_probe_ack", "keep_alive",
               "keep_alive_ack", "window_update", "window_full")


def have_tshark() -> bool:
    return shutil.which("tshark") is not None


def shared_captures() -> list[Path]:
    if not SHARED.is_dir():
        return []
    return sorted(p for p in SHARED.iterdir()
                  if p.suffix in (".pcap", ".pcapng", ".dmp"))


def tshark_fields(path: Path, fields: list[str], display_filter: str = "tcp") -> list[list[str]]:
    cmd = ["tshark", "-n", "-r", str(path), "-Y", display_filter, "-T", "fields",
           "-E", "separator=\t", "-E", "occurrence=f"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    return [ln.split("\t") for ln in out.splitlines()]


def tshark_frames(path: Path) -> dict[int, dict]:
    """frame number -> {stream, flags (set of names), irtt, src, sport, len}."""
    fields = ["frame.number", "tcp.stream", "tcp.analysis.initial_rtt", "ip.src", "ipv6.src",
              "tcp.srcport", "frame.len", "tcp.analysis.ack_rtt"] + [
        f"tcp.analysis.{f}" for f in FLAG_FIELDS]
    res = {}
    for row in tshark_fields(path, fields):
        row += [""] * (len(fields) - len(row))
        if not row[1]:  # a frame tshark could not dissect as TCP (malformed header)
            continue
        flags = {name for name, v in zip(FLAG_FIELDS, row[8:]) if v}
        res[int(row[0])] = {
            "stream": int(row[1]), "irtt": float(row[2]) if row[2] else None,
            "src": row[3] or row[4], "sport": int(row[5]), "len": int(row[6]),
            "ack_rtt": float(row[7]) if row[7] else None, "flags": flags}
    return res


def tshark_streams(path: Path) -> dict[int, dict]:
    """Per tcp.stream: packets/bytes per direction (first packet's source = 'a'), iRTT and
    counts of each analysis flag."""
    streams: dict[int, dict] = {}
    for num, f in sorted(tshark_frames(path).items()):
        s = streams.get(f["stream"])
        if s is None:
            s = streams[f["stream"]] = {"a": (f["src"], f["sport"]), "pkts": [0, 0],
                                        "bytes": [0, 0], "irtt": None,
                                        "flags": defaultdict(int), "first": num}
        d = 0 if (f["src"], f["sport"]) == s["a"] else 1
        s["pkts"][d] += 1
        s["bytes"][d] += f["len"]
        if f["irtt"] is not None:
            s["irtt"] = f["irtt"]
        for fl in f["flags"]:
            s["flags"][fl] += 1
    return streams


_CONV = re.compile(r"^(\S+):(\d+)\s+<->\s+(\S+):(\d+)\s+(\d+)\s+\S+\s+\S+\s+(\d+)\s+\S+\s+\S+"
                   r"\s+(\d+)")


def tshark_conv(path: Path) -> list[tuple]:
    """Rows of `-z conv,tcp`: (addr A, port A, addr B, port B, frames B->A, frames A->B,
    frames total). (Its byte columns are rounded to kB, so bytes are compared per frame.)"""
    out = subprocess.run(["tshark", "-n", "-q", "-r", str(path), "-z", "conv,tcp"],
                         capture_output=True, text=True, check=False).stdout
    rows = []
    for ln in out.splitlines():
        m = _CONV.match(ln.strip())
        if m:
            a, pa, b, pb, left, right, total = m.groups()
            rows.append((a, int(pa), b, int(pb), int(left), int(right), int(total)))
    return rows
