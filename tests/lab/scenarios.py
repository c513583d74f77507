"""Scenarios on real kernel TCP, each returning its capture, the truth and what the client
measured. The truth is what the link did (tests/lab/link.py's log, seen from the capture point
by tests/lab/truth.py) or what the client measured itself, never what tcpwatch says.

    python tests/lab/scenarios.py OUTDIR [NAME ...]     (root; all scenarios by default)

writes OUTDIR/RUN.pcapng and OUTDIR/RUN.truth.json for every run (a scenario may make several
runs, e.g. nagle_server makes nagle_server and nagle_server_nodelay), and prints one line each.

Across the link (delay 20 ms each way, RTT 40 ms; Linux: min RTO 200 ms, so RTO ~ 240 ms;
tail loss probe after PTO = 2 SRTT + 2 ms ~ 82 ms while more than one segment is in flight):
  rto_tail       3 responses of 6,000 B; the link drops the last segment of the 2nd and its
                 tail loss probe: a real RTO. Captured at the server (the sender).
  rto_tail_client  the same captured at the client (the receiver): the repair arrives where
                 the lost tail should have, nothing delivered above it, so it looks new: no
                 retransmission is visible there.
  tlp_dsack      3 responses of 5,000 B; the client's packets are frozen 100 ms from when the
                 2nd response's first segment reaches it, so every ACK of that response is
                 late (more than the PTO, less than the RTO): a tail loss probe that a D-SACK
                 answers, nothing lost. Captured at the server.
  spurious_rto   the same with the ACKs frozen 450 ms (past the RTO): a spurious probe and a
                 spurious RTO resend (Linux undoes it, F-RTO/Eifel). Captured at the server.
                 (The client pauses longer than the freeze between requests, so that its
                 next request is not frozen too, and resent by its own RTO.)
  reorder        one 400,000 B response; segment 9 of the initial window held 4 ms, so only
                 segment 10 passes it: one SACK, below Linux's 3, keeps RACK's reordering
                 window at min_rtt/4 = 10 ms (with 3 or more SACKed and no reordering seen
                 yet, RACK resends at once). Reordering, nothing resent. Captured at the
                 client (the receiver).
  reorder_dsack  the same with segment 150 held 30 ms: a spurious fast retransmit the
                 receiver answers with a D-SACK. Captured at the client.
  loss_bulk      a 3 MB response, every 150th data segment from the server dropped: fast
                 retransmits, most sent before the receiver's report reached the capture
                 (tshark calls them out-of-order). Captured at the server. (Not in
                 tests/test_real_stacks.py: tests/test_lab.py runs the same.)
On loopback in a private namespace (RTT in microseconds):
  nagle_server   Python's http.server (headers and body in two sends), 12 keep-alive requests,
                 Nagle on, then with TCP_NODELAY (run nagle_server_nodelay, also the clean
                 http.server run). Truth: the client's measured total latency difference.
  nagle_client   the client writes each request in two sends (write-write-read), Nagle on,
                 then TCP_NODELAY (nagle_client_nodelay); the server answers in one send.
  nginx          nginx (nginx-light, keep-alive, a 4 KB static file): 20 requests by one curl
                 on one connection, then wrk: 1,000 requests on 2 connections (its Lua script
                 stops there; the connections then idle until its 2 s are up).
  redis          redis-server and redis-benchmark: 2,000 SET and 2,000 GET on 2 connections.
  curl_download  curl downloads 4 MB from nginx.
  slow_handler   http.server with TCP_NODELAY whose /think handler sleeps 300 ms, 3 requests:
                 the only finding expected is server think time.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.netlab import LOOPBACK_IP, SERVER_IP, Lab, Loopback, sh  # noqa: E402
from lab.truth import link_totals, visible  # noqa: E402

PORT = 8080
LINK_DELAY_MS = 20.0
MIN_RTO = 0.200  # Linux's TCP_RTO_MIN


def response_len(body: int) -> int:
    """Bytes apps.py's one-send server writes for a body of that size (headers included)."""
    return len(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % body) + body


@dataclass
class Run:
    name: str
    pcap: Path
    truth: dict = field(default_factory=dict)  # written as NAME.truth.json
    measured: dict = field(default_factory=dict)  # what the client measured itself


# ---- across the link ------------------------------------------------------------------------
def over_link(name: str, tmp: Path, client: list[str], capture_in: str, what: str,
              expect: dict, server: tuple = (), **link) -> Run:
    tmp.mkdir(parents=True, exist_ok=True)
    with Lab(tmp, delay_ms=LINK_DELAY_MS, capture_in=capture_in, **link) as lab:
        srv = lab.app("server", "server", str(PORT), *server)
        assert srv.stdout.readline().strip() == "listening", srv.stderr.read()
        c = lab.app("client", "client", SERVER_IP, str(PORT), *client)
        out, err = c.communicate(timeout=60)
        assert c.returncode == 0, err
        lab.finish()
    measured = json.loads(out)
    log = lab.stats
    seen = visible(log, capture_in)
    assert len(seen) == 1, f"{name}: expected one connection, the link saw {sorted(seen)}"
    port, dirs = next(iter(seen.items()))
    truth = {"scenario": name, "what": what, "capture": capture_in, "client_port": port,
             "link_delay_ms": LINK_DELAY_MS, "visible": dirs, "link_totals": link_totals(log),
             "expect": expect, "measured": measured, "link": log}
    return Run(name, lab.pcap, truth, measured)


def rto_tail(tmp: Path, capture_in: str = "server", name: str = "rto_tail") -> list[Run]:
    return [over_link(
        name, tmp, ["-n", "3", "--path", "/bulk/6000", "--pause", "0.05"], capture_in,
        "the last segment of the 2nd response and its tail loss probe dropped: a real RTO",
        {"loss": True, "finding": "rto_stall", "min_rto": MIN_RTO},
        drop_ba=[f"byte:{2 * response_len(6000)}+1"])]


def rto_tail_client(tmp: Path) -> list[Run]:
    return rto_tail(tmp, "client", "rto_tail_client")


def tlp_dsack(tmp: Path) -> list[Run]:
    return [over_link(
        "tlp_dsack", tmp, ["-n", "3", "--path", "/bulk/5000", "--pause", "0.15"], "server",
        "the client's ACKs of the 2nd response frozen 100 ms (PTO < 100 ms < RTO): a tail "
        "loss probe answered by a D-SACK, nothing lost",
        {"loss": False, "finding": "spurious_retransmission"},
        freeze_ab=[f"byte:{response_len(5000) + 1}@100"])]


def spurious_rto(tmp: Path) -> list[Run]:
    return [over_link(
        "spurious_rto", tmp, ["-n", "3", "--path", "/bulk/5000", "--pause", "0.5"], "server",
        "the client's ACKs of the 2nd response frozen 450 ms (past the RTO): spurious tail "
        "loss probe and RTO resends, nothing lost",
        {"loss": False, "finding": "spurious_retransmission"},
        freeze_ab=[f"byte:{response_len(5000) + 1}@450"])]


def reorder(tmp: Path) -> list[Run]:
    return [over_link(
        "reorder", tmp, ["-n", "1", "--path", "/bulk/400000"], "client",
        "one data segment held 4 ms (< min_rtt/4) while one passes it: reordering, nothing "
        "resent",
        {"loss": False, "finding": "reordering"}, hold_ba=["seg:9@4"])]


def reorder_dsack(tmp: Path) -> list[Run]:
    return [over_link(
        "reorder_dsack", tmp, ["-n", "1", "--path", "/bulk/400000"], "client",
        "one data segment held 30 ms: a spurious fast retransmit, answered by a D-SACK",
        {"loss": False, "finding": "spurious_retransmission"}, hold_ba=["seg:150@30"])]


def loss_bulk(tmp: Path) -> list[Run]:
    return [over_link(
        "loss_bulk", tmp, ["-n", "1", "--path", "/bulk/3000000"], "server",
        "a 3 MB response, the link drops every 150th data segment from the server",
        {"loss": True, "finding": "fast_retransmit"}, loss_ba=150)]


# ---- on loopback --------------------------------------------------------------------------
def wait_listening(ns: Loopback, port: int, proc: subprocess.Popen, timeout: float = 15) -> None:
    """Until something listens on the port (asked of the kernel: no connection is made)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if sh("ip", "netns", "exec", ns.netns, "ss", "-Hltn", f"sport = :{port}").stdout.strip():
            return
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read()[-2000:]}")
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {port}")


def loopback_run(name: str, tmp: Path, what: str, expect: dict, body) -> Run:
    tmp.mkdir(parents=True, exist_ok=True)
    with Loopback(tmp) as ns:
        measured = body(ns)
        ns.finish()
    truth = {"scenario": name, "what": what, "capture": "loopback", "expect": expect,
             "measured": measured}
    return Run(name, ns.pcap, truth, measured)


def app_client(ns: Loopback, *args: str) -> dict:
    return json.loads(ns.run([sys.executable, str(Path(__file__).parent / "apps.py"),
                              "client", LOOPBACK_IP, str(PORT), *args]))


def _nagle_pair(name: str, tmp: Path, server: tuple, client: tuple, side: str) -> list[Run]:
    runs = []
    for variant, nodelay in (("", False), ("_nodelay", True)):
        def body(ns: Loopback, nodelay=nodelay) -> dict:
            flag = ("--nodelay",) if nodelay else ()
            srv_flags = flag if side == "server" else ()
            cli_flags = flag if side == "client" else ()
            srv = ns.app(*server, str(PORT), *srv_flags)
            assert srv.stdout.readline().strip() == "listening", srv.stderr.read()
            return app_client(ns, *client, *cli_flags)
        what = (f"Nagle on the {side}" if not nodelay else f"the {side} sets TCP_NODELAY")
        runs.append(loopback_run(name + variant, tmp / (name + variant), what,
                                 {"nagle_side": None if nodelay else side}, body))
    nagle, nodelay = runs
    cost = nagle.measured["total"] - nodelay.measured["total"]
    for r in runs:
        r.truth["nagle_cost"] = round(cost, 6)  # what Nagle cost, measured by the client
        r.truth["responses"] = len(r.measured["latencies"])
        r.measured["max_latency"] = max(r.measured["latencies"])
    return runs


def nagle_server(tmp: Path) -> list[Run]:
    return _nagle_pair("nagle_server", tmp, ("pyhttp",),
                        ("-n", "12", "--path", "/bulk/300"), "server")


def nagle_client(tmp: Path) -> list[Run]:
    return _nagle_pair("nagle_client", tmp, ("server",),
                        ("--mode", "split", "-n", "12", "--path", "/bulk/300"), "client")


NGINX_CONF = """
daemon off;
master_process off;
user root;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    keepalive_timeout 30s;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        root {prefix}/www;
    }}
}}
"""

WRK_REQUESTS = 1000
WRK_STOP = """
local n = 0
function response(status, headers, body)
  n = n + 1
  if n >= {count} then wrk.thread:stop() end
end
function done(summary, latency, requests)
  io.write(string.format("max_latency_us %d\\n", latency.max))
end
"""


def start_nginx(ns: Loopback, prefix: Path, files: dict[str, int]) -> None:
    (prefix / "www").mkdir(parents=True, exist_ok=True)
    for fname, size in files.items():
        (prefix / "www" / fname).write_bytes(b"y" * size)
    (prefix / "nginx.conf").write_text(NGINX_CONF.format(prefix=prefix, port=PORT))
    p = ns.spawn_here(["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                       "-e", str(prefix / "error.log")])
    wait_listening(ns, PORT, p)


def nginx(tmp: Path) -> list[Run]:
    def body(ns: Loopback) -> dict:
        start_nginx(ns, tmp / "nginx", {"page.html": 4_000})
        url = f"http://{LOOPBACK_IP}:{PORT}/page.html"
        out = ns.run(["curl", "-sS", "-w", "%{time_total}\\n", "--keepalive-time", "30",
                      *(["-o", "/dev/null", url] * 20)])  # one -o per URL
        curl = [float(x) for x in out.split()]
        script = tmp / "stop.lua"
        script.write_text(WRK_STOP.format(count=WRK_REQUESTS))
        out = ns.run(["wrk", "-t1", "-c2", "-d2s", "-s", str(script), url])
        wrk_max = int(out.split("max_latency_us ")[1].split()[0]) / 1e6
        return {"curl_requests": len(curl), "curl_latencies": curl,
                "wrk_requests": WRK_REQUESTS, "wrk_max_latency": wrk_max, "wrk": out,
                "max_latency": max(*curl, wrk_max)}
    return [loopback_run("nginx", tmp, "nginx keep-alive: 20 requests by curl on one "
                         "connection, 1,000 by wrk on 2", {"clean": True}, body)]


def redis(tmp: Path) -> list[Run]:
    def body(ns: Loopback) -> dict:
        p = ns.spawn_here(["redis-server", "--port", str(PORT), "--bind", LOOPBACK_IP,
                           "--save", "", "--appendonly", "no", "--daemonize", "no",
                           "--dir", str(tmp)])
        wait_listening(ns, PORT, p)
        out = ns.run(["redis-benchmark", "-h", LOOPBACK_IP, "-p", str(PORT), "-n", "2000",
                      "-c", "2", "-t", "set,get", "--csv"])
        rows = list(csv.DictReader(out.splitlines()))
        return {"requests": 4000, "benchmark": rows,
                "max_latency": max(float(r["max_latency_ms"]) for r in rows) / 1e3}
    return [loopback_run("redis", tmp, "redis-benchmark: 2,000 SET and 2,000 GET, 2 clients",
                         {"clean": True}, body)]


def curl_download(tmp: Path) -> list[Run]:
    def body(ns: Loopback) -> dict:
        start_nginx(ns, tmp / "nginx", {"big.bin": 4_000_000})
        out = ns.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download} %{time_total}",
                      f"http://{LOOPBACK_IP}:{PORT}/big.bin"])
        size, seconds = out.split()
        return {"bytes": int(size), "seconds": float(seconds)}
    return [loopback_run("curl_download", tmp, "curl downloads 4 MB from nginx",
                         {"clean": True, "loss": False}, body)]


THINK = 0.300


def slow_handler(tmp: Path) -> list[Run]:
    def body(ns: Loopback) -> dict:
        srv = ns.app("pyhttp", str(PORT), "--nodelay", "--think", str(THINK))
        assert srv.stdout.readline().strip() == "listening", srv.stderr.read()
        return app_client(ns, "-n", "3", "--path", "/think")
    return [loopback_run("slow_handler", tmp, f"http.server, TCP_NODELAY, /think sleeps "
                         f"{THINK * 1e3:.0f} ms", {"findings": ["server_think"],
                                                   "think": THINK}, body)]


SCENARIOS = {f.__name__: f for f in (rto_tail, rto_tail_client, tlp_dsack, spurious_rto,
                                     reorder, reorder_dsack, loss_bulk, nagle_server,
                                     nagle_client, nginx, redis, curl_download, slow_handler)}


def run(name: str, tmp: Path) -> list[Run]:
    return SCENARIOS[name](tmp / name)


def tshark_counts(pcap: Path) -> dict | None:
    """Wireshark's own counts on a capture, to print beside the truth (an independent check
    of the lab; its rules differ from the truth where tcpwatch's must do better)."""
    if shutil.which("tshark") is None:
        return None
    fields = ("retransmission", "fast_retransmission", "spurious_retransmission",
              "out_of_order")
    cmd = ["tshark", "-n", "-r", str(pcap), "-Y",
           "tcp.analysis.flags or tcp.options.sack.dsack", "-T", "fields"]
    for f in fields:
        cmd += ["-e", "tcp.analysis." + f]
    cmd += ["-e", "tcp.options.sack.dsack"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    return {n: sum(1 for row in rows if len(row) > i and row[i])
            for i, n in enumerate((*fields, "dsack"))}


def summary_line(r: Run) -> str:
    t = r.truth
    if "visible" in t:
        parts = [f"{d}: data {v['data']} resent {v['retransmissions']} spurious "
                 f"{v['spurious']} lost {v['lost']} late {v['out_of_order']} silences "
                 f"{[round(x['silence'] * 1e3, 1) for x in v['resends'] if x['silence']]} ms"
                 for d, v in t["visible"].items()]
        return (f"{r.name} ({t['capture']} side): " + "; ".join(parts)
                + f"; tshark {tshark_counts(r.pcap)}")
    if "nagle_cost" in t:
        return (f"{r.name}: client total {r.measured['total'] * 1e3:.1f} ms over "
                f"{t['responses']} requests; Nagle cost {t['nagle_cost'] * 1e3:.1f} ms")
    shown = {k: v for k, v in r.measured.items() if k not in ("wrk", "benchmark")}
    return f"{r.name}: {json.dumps(shown)[:300]}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir", type=Path)
    ap.add_argument("names", nargs="*", metavar="NAME", help=" ".join(SCENARIOS))
    a = ap.parse_args()
    unknown = [n for n in a.names if n not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario {unknown}: {' '.join(SCENARIOS)}")
    a.outdir.mkdir(parents=True, exist_ok=True)
    lines = []
    with tempfile.TemporaryDirectory(prefix="twlab-") as tmp:
        for name in a.names or list(SCENARIOS):
            for r in run(name, Path(tmp)):
                shutil.copyfile(r.pcap, a.outdir / f"{r.name}.pcapng")
                (a.outdir / f"{r.name}.truth.json").write_text(json.dumps(r.truth, indent=1))
                lines.append(summary_line(r))
                print(lines[-1], flush=True)
    (a.outdir / "INDEX.txt").write_text(INDEX + "\n".join(lines) + "\n")


INDEX = """Captures made by tests/lab/scenarios.py (real kernel TCP) and their truth.

NAME.pcapng        dumpcap's capture (TUN: raw IP; loopback: Ethernet-framed lo)
NAME.truth.json    "scenario", "what", "capture" (client | server | loopback), "expect",
                   "measured" (the client's own numbers: per-request latencies, total);
                   across the link also "client_port", "visible" (the truth as the capture
                   point can know it, per direction c2s/s2c: retransmissions, spurious, lost,
                   out_of_order and each resend's rseq/len/time/silence: tests/lab/truth.py),
                   "link_totals" and "link" (the link's whole log: tests/lab/link.py says
                   what every field means); Nagle pairs also "nagle_cost" (s), "responses".

"""


if __name__ == "__main__":
    main()
