"""The command line as a user meets it: reports on every shared capture, and one clear line
on stderr with exit code 2 for every kind of bad input - never a traceback."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from builders import ether, ipv4, pcap_file, tcp_header
from conftest import NEED_SHARED
from oracle import shared_captures

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = shared_captures()
BROKEN = {"truncated_dns_2.pcap"}  # cut short mid-record: report, then exit 2


def tcpwatch(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "tcpwatch", *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=timeout)


def one_clean_line(p):
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("tcpwatch: ")
    return lines[0]


@NEED_SHARED
@pytest.mark.parametrize("path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_json_report_for_every_shared_capture(path):
    p = tcpwatch("report", "-r", str(path), "--json")
    rep = json.loads(p.stdout)
    assert rep["totals"]["packets"] > 0
    assert rep["totals"]["flows"] == len(rep["flows"])
    assert rep["totals"]["tcp_packets"] == sum(f["c2s"]["packets"] + f["s2c"]["packets"]
                                               for f in rep["flows"])
    if path.name in BROKEN:
        line = one_clean_line(p)
        assert "damaged at byte" in line and "reported above" in line
    else:
        assert p.returncode == 0, p.stderr
        assert p.stderr == ""


def test_demo_capture_shows_real_problems():
    rep = json.loads(tcpwatch("report", "--demo", "--json").stdout)
    states = [f["state"] for f in rep["flows"]]
    assert "REJ" in states  # connection refused
    assert any(f["s2c"]["retransmissions"]["total"] > 0 for f in rep["flows"])  # loss
    assert any(f["c2s"]["window"]["zero_window_time"] for f in rep["flows"])  # zero window
    assert sum(1 for f in rep["flows"] if f["server"]["port"] == 8081) >= 9  # churn
    text = tcpwatch("report", "--demo").stdout
    assert "REJ" in text and "127.0.0.1:8084" in text


def test_missing_file():
    assert "no such file" in one_clean_line(tcpwatch("report", "-r", "/nonexistent.pcap"))


def test_directory_and_not_a_capture(tmp_path):
    assert "directory" in one_clean_line(tcpwatch("report", "-r", str(tmp_path)))
    f = tmp_path / "notes.txt"
    f.write_text("these are not packets\n")
    assert "not a pcap or pcapng" in one_clean_line(tcpwatch("report", "-r", str(f)))
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    assert "too short" in one_clean_line(tcpwatch("report", "-r", str(empty)))


def test_truncated_capture_reports_what_came_before(tmp_path):
    frames = [ether(ipv4(tcp_header(seq=i, flags=0x10) + b"x" * 10)) for i in range(6)]
    f = tmp_path / "cut.pcap"
    f.write_bytes(pcap_file(frames)[:-7])
    p = tcpwatch("report", "-r", str(f), "--json")
    assert "after frame 5" in one_clean_line(p)
    rep = json.loads(p.stdout)
    assert rep["totals"]["packets"] == 5 and rep["flows"][0]["c2s"]["packets"] == 5


def test_corrupt_record_header(tmp_path):
    data = bytearray(pcap_file([ether(ipv4(tcp_header()))] * 3))
    data[24 + 16 + 54 + 8:24 + 16 + 54 + 12] = b"\xff\xff\xff\x7f"  # 2nd caplen: 2 GB
    f = tmp_path / "corrupt.pcap"
    f.write_bytes(bytes(data))
    p = tcpwatch("report", "-r", str(f))
    assert "corrupt record header" in one_clean_line(p)
    assert "1 packets" in p.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="live capture needs root")
def test_unknown_interface():
    line = one_clean_line(tcpwatch("report", "-i", "nosuchif0", "--duration", "2"))
    assert "nosuchif0" in line and "ip link" in line


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to take the capture capabilities away")
def test_no_capture_permission():
    # a process without CAP_NET_RAW/CAP_NET_ADMIN, as an unprivileged user would be
    p = subprocess.run(["setpriv", "--bounding-set", "-net_raw,-net_admin", "--inh-caps",
                        "-net_raw,-net_admin", sys.executable, "-m", "tcpwatch", "report",
                        "-i", "lo", "--duration", "2"], capture_output=True, text=True,
                       cwd=ROOT, timeout=60)
    line = one_clean_line(p)
    assert "permission" in line and "wireshark" in line


def test_tshark_missing(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))  # an empty PATH: no tshark, no dumpcap
    p = subprocess.run([sys.executable, "-m", "tcpwatch", "report", "--demo", "--engine",
                        "pyshark"], capture_output=True, text=True, cwd=ROOT, env=env,
                       timeout=60)
    assert "tshark not found" in one_clean_line(p)


def test_bad_arguments_are_one_line_too():
    p = tcpwatch("report", "-r", "x.pcap", "-c", "-3")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "must be positive" in p.stderr
