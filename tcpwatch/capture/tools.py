"""Finding Wireshark's command-line tools and turning their failures into one-line errors."""

from __future__ import annotations

import re
import shutil
import subprocess

from ..errors import UserError

INSTALL_HINT = "install Wireshark's tools: apt-get install tshark (it brings dumpcap)"


def reap(proc: subprocess.Popen, grace: float = 3.0) -> None:
    """End a child process: SIGTERM, then SIGKILL if it is still there after `grace` s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def find_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise UserError(f"{name} not found on PATH: {INSTALL_HINT}")
    return path


def explain_dumpcap_error(text: str, iface: str) -> str:
    """Map dumpcap/tshark/tcpdump stderr to one line that names the problem and the fix."""
    low = text.lower()
    if "no such device" in low or "there is no device named" in low or (
            "doesn't exist" in low and "interface" in low):
        return (f"no capture interface named '{iface}': list them with `ip link` "
                f"(or `dumpcap -D`), or use -i any")
    if "permission" in low or "operation not permitted" in low or "you don't have" in low:
        return (f"no permission to capture on '{iface}': let your user run dumpcap (Debian: "
                "sudo dpkg-reconfigure wireshark-common, then sudo usermod -aG wireshark "
                "$USER and log in again; see README), or run as root")
    if "syntax error" in low or "can't parse filter" in low or "invalid capture filter" in low:
        first = next((ln for ln in text.splitlines() if "filter" in ln.lower()), text.strip())
        return f"bad capture filter: {first.strip()} (see pcap-filter(7))"
    # (not tcpdump's counts as it ends, nor its first line)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()
             and not re.match(r"(\d+ packets? |tcpdump: listening on )", ln)]
    return f"capture failed: {lines[-1] if lines else 'the capture exited with an error'}"


def capture_ended(tool: str, rc: int | None, text: str, iface: str, packets: int) -> str:
    """A live capture whose dumpcap/tshark ended without being asked to: why, in one line.
    Everything seen before stays analysed (the callers keep it)."""
    kept = f"after {packets:,} packets; what was seen is kept"
    low = text.lower()
    if rc is not None and rc < 0:
        return f"{tool} was killed (signal {-rc}) {kept}"
    if "no longer attached" in low or "no longer running" in low or "went down" in low \
            or "interface disappeared" in low:  # (dumpcap's words; tcpdump's last)
        return f"interface '{iface}' went away: the capture stopped {kept}"
    if rc == 0 and not text.strip():
        return f"{tool} stopped {kept}"
    return f"{explain_dumpcap_error(text, iface)} ({tool} stopped {kept})"
