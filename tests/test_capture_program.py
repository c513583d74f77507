"""Which program captures live for the fast engine, and what tcpwatch reads from it
(capture/fast.py: tcpdump where it can capture, dumpcap otherwise)."""

import os
import shutil

import pytest

from tcpwatch.capture import fast, tools

ROOT_TCPDUMP = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("tcpdump"),
                                  reason="needs root and tcpdump")


def test_tcpdump_drop_counts_are_the_kernels_and_the_interfaces():
    # what tcpdump 4.99 prints on stderr as it ends
    text = ("tcpdump: listening on lo, link-type EN10MB (Ethernet), snapshot length 512 bytes\n"
            "1756008 packets captured\n3587878 packets received by filter\n"
            "71879 packets dropped by kernel\n12 packets dropped by interface\n")
    assert fast.tcpdump_dropped(text) == 71879 + 12
    assert fast.tcpdump_dropped("1 packet captured\n1 packet received by filter\n"
                                "1 packet dropped by kernel\n") == 1
    assert fast.tcpdump_dropped("tcpdump: pcap_loop: The interface disappeared\n") == 0


def test_tcpdump_failures_read_as_one_line():
    gone = ("tcpdump: listening on twx1, link-type EN10MB (Ethernet), snapshot length 262144 "
            "bytes\ntcpdump: pcap_loop: The interface disappeared\n0 packets captured\n"
            "0 packets received by filter\n0 packets dropped by kernel\n")
    assert tools.capture_ended("tcpdump", 1, gone, "twx1", 5).startswith(
        "interface 'twx1' went away: the capture stopped after 5 packets")
    other = "tcpdump: listening on lo, ...\ntcpdump: something odd\n3 packets captured\n"
    assert tools.explain_dumpcap_error(other, "lo") == "capture failed: tcpdump: something odd"


def test_forced_and_w_choose_dumpcap(monkeypatch):
    monkeypatch.setenv("TCPWATCH_CAPTURE", "dumpcap")
    assert fast.choose_tool("lo", None, None) == "dumpcap"
    monkeypatch.setenv("TCPWATCH_CAPTURE", "tcpdump")
    assert fast.choose_tool("lo", None, None) == "tcpdump"
    monkeypatch.delenv("TCPWATCH_CAPTURE")
    # -w: dumpcap's pcapng, with its drop counter in the file
    assert fast.choose_tool("lo", None, "/tmp/x.pcapng") == "dumpcap"


@ROOT_TCPDUMP
def test_tcpdump_where_it_can_open_the_interface(monkeypatch):
    monkeypatch.delenv("TCPWATCH_CAPTURE", raising=False)
    assert fast.choose_tool("lo", "tcp port 80", None) == "tcpdump"
    # where it cannot, dumpcap (whose errors tcpwatch explains: `dumpcap -d` checks first)
    assert fast.choose_tool("nosuch0", None, None) == "dumpcap"
    assert fast.choose_tool("lo", "tcp port", None) == "dumpcap"
    cmd = fast.tcpdump_command("lo", "tcp port 80", 512)
    # each packet written as it is handed on (-U), the filter one word as the user gave it
    assert "-U" in cmd and cmd[-1] == "tcp port 80" and cmd[cmd.index("-s") + 1] == "512"
    assert cmd[cmd.index("-B") + 1] == str(fast.LIVE_BUFFER_MB << 10)  # KiB for tcpdump


PARENT = """
import subprocess, sys, time
from tcpwatch.capture import fast
p = subprocess.Popen(fast.tcpdump_command("lo", sys.argv[1]), stdout=subprocess.PIPE,
                     stderr=subprocess.DEVNULL, start_new_session=True,
                     preexec_fn=fast._die_with_parent)
print(p.pid, flush=True)
time.sleep(120)
"""


@ROOT_TCPDUMP
def test_tcpdump_ends_with_the_process_that_started_it(tmp_path):
    """SIGKILL (the OOM killer, say) to the process that started tcpdump: the kernel ends
    tcpdump too (parent-death signal), on a quiet filter where no failed write would."""
    import subprocess
    import sys

    from conftest import wait_until
    parent = subprocess.Popen([sys.executable, "-c", PARENT, "tcp port 9"],
                              stdout=subprocess.PIPE, text=True)
    pid = int(parent.stdout.readline())
    try:
        def wrote_header() -> bool:  # (after it opened the interface and set its user)
            with open(f"/proc/{pid}/io") as f:
                return int(next(ln for ln in f if ln.startswith("wchar:")).split()[1]) >= 24
        wait_until(wrote_header, 10)
        parent.kill()
        parent.wait()

        def ended() -> bool:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # dead, unreaped
            except FileNotFoundError:
                return True
        wait_until(ended, 10)
    finally:
        subprocess.run(["kill", "-KILL", str(pid)], capture_output=True)
