"""Every bad input we tried, with the exact line on stderr and the exit code it gets. The
README's "Bad input" table lists the same cases. Never a traceback; whatever was analysed
before a failure is still printed (stdout)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from builders import ether, ipv4, pcap_file, pcapng_file, tcp_header

ROOT = Path(__file__).resolve().parent.parent
FRAMES = [ether(ipv4(tcp_header(seq=i, flags=0x10) + b"x" * 10)) for i in range(6)]
LIVE = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("dumpcap"),
                          reason="live capture needs root and dumpcap here")


def _block(btype: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)


def _pcapng_unknown_blocks() -> bytes:
    """A custom block, a name resolution block and a block type nobody defined, between the
    interface description and the packets: all skipped, every packet read."""
    ng = pcapng_file(FRAMES)
    cut = struct.unpack_from("<I", ng, 4)[0]
    cut += struct.unpack_from("<I", ng, cut + 4)[0]
    extra = (_block(0x40000BAD, b"\x00\x00\x7e\x7ehello") + _block(4, b"\x00" * 4)
             + _block(0x0BAD, b"junk"))
    return ng[:cut] + extra + ng[cut:]


def _pcap_snaplen(snaplen: int, link: int = 1) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, link)
    for i, f in enumerate(FRAMES):
        out += struct.pack("<IIII", 1_700_000_000 + i, 500, len(f), len(f)) + f
    return out


FILES = {
    "empty.pcap": b"",
    "cut-in-header.pcap": pcap_file(FRAMES)[:14],
    "cut-mid-packet.pcap": pcap_file(FRAMES)[:-7],
    "wrong-magic.pcap": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "unknown-blocks.pcapng": _pcapng_unknown_blocks(),
    "snaplen-0.pcap": _pcap_snaplen(0),
    "snaplen-2g.pcap": _pcap_snaplen(0x7FFFFFFF),
    "link-147.pcap": _pcap_snaplen(65535, link=147),
}

# (case, arguments, exit code, the exact stderr line or "" for none, packets reported)
TABLE = [
    ("missing file", ["report", "-r", "nope.pcap"], 2,
     "tcpwatch: nope.pcap: no such file: check the path (tcpwatch report -r FILE)", None),
    ("a directory", ["report", "-r", "."], 2,
     "tcpwatch: .: is a directory, not a capture file", None),
    ("empty file", ["report", "-r", "empty.pcap"], 2,
     "tcpwatch: empty.pcap: empty or too short to be a capture file: give a pcap or pcapng "
     "file (tcpdump -w / dumpcap -w)", None),
    ("truncated in the file header", ["report", "-r", "cut-in-header.pcap"], 2,
     "tcpwatch: cut-in-header.pcap: file ends in the middle of the file header (at byte 14), "
     "before the first packet: not a complete capture", None),
    ("truncated mid-packet", ["report", "-r", "cut-mid-packet.pcap"], 2,
     "tcpwatch: cut-mid-packet.pcap: capture damaged at byte 497, after frame 5: file ends "
     "in the middle of a packet; the 5 packets before it are reported above", 5),
    ("wrong magic number", ["report", "-r", "wrong-magic.pcap"], 2,
     "tcpwatch: wrong-magic.pcap: not a pcap or pcapng capture file (unknown magic number "
     "47455420): give a pcap or pcapng file (tcpdump -w / dumpcap -w)", None),
    ("pcapng with unknown blocks", ["report", "-r", "unknown-blocks.pcapng"], 0, "", 6),
    ("snaplen 0", ["report", "-r", "snaplen-0.pcap"], 0, "", 6),
    ("snaplen 2 GiB", ["report", "-r", "snaplen-2g.pcap"], 0, "", 6),
    ("link type we do not decode", ["report", "-r", "link-147.pcap"], 2,
     "tcpwatch: link-147.pcap: link type 147 is not one tcpwatch decodes (Ethernet, Linux "
     "cooked, raw IP, loopback): 6 frames counted undecodable", 6),
    ("display filter: unknown field", ["report", "--demo", "--filter", "prot:80"], 2,
     "tcpwatch: bad --filter: unknown field 'prot:' (fields: proc pid user addr port state "
     "badge id)", None),
    ("display filter: not a number", ["report", "--demo", "--filter", "port:http"], 2,
     "tcpwatch: bad --filter: 'port:' needs a number, not 'http'", None),
    ("display filter: unbalanced quote", ["report", "--demo", "--filter", 'proc:"x'], 2,
     "tcpwatch: bad --filter: unbalanced double quote", None),
    ("capture filter on a file", ["report", "--demo", "-f", "tcp"], 2,
     "tcpwatch: -f applies to live capture (-i); to filter a file, use tshark -Y", None),
    ("dashboard without a terminal", ["-r", "empty.pcap"], 2,
     "tcpwatch: the dashboard needs a terminal; for text or JSON use 'tcpwatch report'", None),
    ("-w into a missing directory", ["-i", "lo", "-w", "no/such/dir/x.pcapng"], 2,
     f"tcpwatch: no/such/dir/x.pcapng: no such directory: {os.getcwd()}", None),
]
LIVE_TABLE = [
    ("interface that does not exist", ["report", "-i", "nosuch0", "--duration", "1"], 2,
     "tcpwatch: no capture interface named 'nosuch0': list them with `ip link` (or "
     "`dumpcap -D`), or use -i any"),
    ("capture filter syntax error", ["report", "-i", "lo", "-f", "tcp port", "--duration",
                                     "1"], 2,
     "tcpwatch: bad capture filter: dumpcap: Invalid capture filter \"tcp port\" for "
     "interface 'lo'. (see pcap-filter(7))"),
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bad")
    for name, data in FILES.items():
        (d / name).write_bytes(data)
    return d


def run(args, cwd):
    return subprocess.run([sys.executable, "-m", "tcpwatch", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


@pytest.mark.parametrize("case,args,code,line,packets", TABLE, ids=[t[0] for t in TABLE])
def test_bad_input(workdir, case, args, code, line, packets):
    if case == "-w into a missing directory":
        line = line.replace(os.getcwd(), str(workdir / "no/such/dir"))
    p = run(args, workdir)
    assert "Traceback" not in p.stderr
    assert p.returncode == code, p.stderr
    assert p.stderr.strip() == line
    if packets is not None:  # what was read before the problem is still reported
        assert f"{packets} packets = TCP" in p.stdout


@LIVE
@pytest.mark.parametrize("engine", ["fast", "pyshark"])
@pytest.mark.parametrize("case,args,code,line", LIVE_TABLE, ids=[t[0] for t in LIVE_TABLE])
def test_bad_live_input(workdir, engine, case, args, code, line):
    p = run([*args, "--engine", engine], workdir)
    assert "Traceback" not in p.stderr
    assert p.returncode == code
    assert p.stderr.strip() == line
