"""Which local process owns a connection: psutil's socket table, refreshed in the background at
most once a second, with a per-process cache.

- pid reuse: a process is identified by (pid, create time); a cached entry whose pid now has
  another create time is replaced.
- without root, psutil lists other users' sockets with no pid: they map to UNKNOWN ("?").
- a flow keeps the process it was first matched to (the caller makes it sticky), so flows that
  ended before a refresh keep theirs.
Runs beside the UI; imports nothing from analysis/ or ui/.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from dataclasses import dataclass

import psutil

REFRESH_MIN_S = 1.0  # never walk the socket table more often than this
# sockets the kernel keeps after their process let go (RFC 9293 3.3.2 states)
_OWNERLESS = {psutil.CONN_TIME_WAIT, psutil.CONN_CLOSE, psutil.CONN_NONE}


@dataclass(frozen=True, slots=True)
class ProcInfo:
    pid: int | None
    name: str  # untrusted: another user's process chooses it (shown escaped)
    user: str | None = None
    cmdline: str = ""
    create_time: float = 0.0

    @property
    def known(self) -> bool:
        return self.pid is not None


UNKNOWN = ProcInfo(None, "?")  # a local socket whose owner we may not see (not root)


def norm_addr(addr: str) -> str:
    """One spelling per address: IPv4-mapped IPv6 as IPv4, IPv6 compressed, wildcard as '*'."""
    try:
        ip = ipaddress.ip_address(addr.split("%", 1)[0])
    except ValueError:
        return addr
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified:
        return "*"
    return str(ip)


class ProcMap:
    def __init__(self, interval: float = REFRESH_MIN_S) -> None:
        self.interval = max(REFRESH_MIN_S, interval)
        self._conns: dict[tuple, ProcInfo] = {}  # (laddr, lport, raddr, rport) -> process
        self._listen: dict[tuple, ProcInfo] = {}  # (laddr or '*', lport) -> process
        self._procs: dict[int, ProcInfo] = {}  # pid -> process (checked by create time)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refreshes = 0
        self.last_refresh = 0.0
        self.error: str | None = None

    # ---- lookups (any thread; reads the dicts replaced whole by refresh) -----------------
    def lookup(self, laddr: str, lport: int, raddr: str, rport: int) -> ProcInfo | None:
        """The process owning the local endpoint (laddr, lport) of a connection to
        (raddr, rport); None when no local socket matches."""
        la, ra = norm_addr(laddr), norm_addr(raddr)
        p = self._conns.get((la, lport, ra, rport))
        if p is not None:
            return p
        listen = self._listen
        return listen.get((la, lport)) or listen.get(("*", lport))

    # ---- refreshing -----------------------------------------------------------------------
    def _proc(self, pid: int) -> ProcInfo:
        try:
            p = psutil.Process(pid)
            ct = p.create_time()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return ProcInfo(pid, "?")
        cached = self._procs.get(pid)
        if cached is not None and cached.create_time == ct:
            return cached
        with p.oneshot():
            try:
                name = p.name()
            except psutil.Error:
                name = "?"
            try:
                user = p.username()
            except (psutil.Error, KeyError):
                user = None
            try:
                cmd = " ".join(p.cmdline())
            except psutil.Error:
                cmd = ""
        info = ProcInfo(pid, name, user, cmd, ct)
        self._procs[pid] = info
        return info

    def refresh(self) -> None:
        """Walk the socket table once (psutil.net_connections)."""
        try:
            table = psutil.net_connections(kind="tcp")
        except (psutil.Error, OSError) as e:
            self.error = str(e)
            return
        conns: dict[tuple, ProcInfo] = {}
        listen: dict[tuple, ProcInfo] = {}
        for c in table:
            if not c.laddr:
                continue
            if c.pid is None and c.status in _OWNERLESS:
                continue  # TIME_WAIT and friends belong to no process: not "unknown"
            info = UNKNOWN if c.pid is None else self._proc(c.pid)
            la = norm_addr(c.laddr.ip)
            if c.status == psutil.CONN_LISTEN:
                listen[(la, c.laddr.port)] = info
            elif c.raddr:
                conns[(la, c.laddr.port, norm_addr(c.raddr.ip), c.raddr.port)] = info
        alive = {p.pid for p in conns.values()} | {p.pid for p in listen.values()}
        self._procs = {pid: p for pid, p in self._procs.items() if pid in alive}
        self._conns, self._listen = conns, listen
        self.refreshes += 1
        self.last_refresh = time.monotonic()

    def poke(self) -> None:
        """Ask for a refresh soon (new connections appeared); still at most one per interval."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._wake.wait(self.interval)
            self._wake.clear()
            # rate limit: at most one refresh per interval, even when poked
            left = self.interval - (time.monotonic() - self.last_refresh)
            if left > 0 and self._stop.wait(left):
                break

    def start(self) -> ProcMap:
        self._thread = threading.Thread(target=self._run, name="tcpwatch-procmap", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def proc_label(p: ProcInfo | None) -> str:
    """A process as the views name it: "nginx (1234)"; "" when not known."""
    if p is None:
        return ""
    return p.name if p.pid is None else f"{p.name} ({p.pid})"


class FlowProcs:
    """The local processes of each connection's two ends, sticky: once an end is matched it
    keeps its process (a short connection's socket is gone by the next refresh). Duck-typed
    connections (analysis.flow.Flow: id, client, server), so nothing here imports analysis."""

    MAX = 200_000  # connections remembered; past it the oldest half is forgotten

    def __init__(self, pm: ProcMap) -> None:
        self.pm = pm
        self.known: dict[int, tuple[ProcInfo | None, ProcInfo | None]] = {}

    def of(self, flow) -> tuple[ProcInfo | None, ProcInfo | None]:
        have = self.known.get(flow.id)
        if have is not None and have[0] is not None and have[1] is not None:
            return have
        (ca, cp), (sa, sp) = flow.client, flow.server
        ca_s, sa_s = _addr_text(ca), _addr_text(sa)
        c = have[0] if have and have[0] is not None else self.pm.lookup(ca_s, cp, sa_s, sp)
        s = have[1] if have and have[1] is not None else self.pm.lookup(sa_s, sp, ca_s, cp)
        got = (c, s)
        if len(self.known) >= self.MAX:
            for k in list(self.known)[: self.MAX // 2]:
                del self.known[k]
        self.known[flow.id] = got
        return got

    def forget(self, fid: int) -> None:
        self.known.pop(fid, None)

    def served(self, flow) -> str:
        """The local process that answered the connection's requests (its server end)."""
        return proc_label(self.of(flow)[1])

    def sent(self, flow) -> str:
        """The local process that sent them (its client end)."""
        return proc_label(self.of(flow)[0])


def _addr_text(a: bytes) -> str:
    return str(ipaddress.ip_address(a))
