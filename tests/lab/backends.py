"""Real application servers on 127.0.0.1 for the request-timing tests (issue 16): PostgreSQL,
MariaDB, nginx speaking cleartext HTTP/2, and a gRPC server; a tcpdump capture of their
traffic; and tshark's dissectors as the oracle, one list entry per protocol message.

Context managers (each in a fresh temporary directory, on a free private port; readiness is
polled, never slept for; every process group is killed and the directory removed on exit,
failures included):

    postgres(auth="trust"|"md5"|"scram-sha-256") -> Postgres
        .host .port .user .dbname .password .bin (directory of the server's programs)
        .psql(*args, input=None) .pgbench(*args) -> CompletedProcess (over TCP 127.0.0.1)
        PostgreSQL refuses root: it runs as the system user tcpwatch-pg (made if missing).
    mariadb() -> MariaDB
        .host .port .user .password .dbname
        .client(sql, *args) = .run_client(...) -> CompletedProcess: the mariadb client,
        --protocol=TCP, password authentication (mysql_native_password), --batch --force,
        the SQL on stdin (one COM_QUERY per statement; an error does not stop the rest)
        .slap(*args) -> CompletedProcess (mysqlslap over TCP, same user)
    nginx_h2c() -> Nginx
        .port .url(path); serves /small.txt (13 B), /large.bin (1 MiB); anything else 404.
        HTTP/2 with prior knowledge only ("listen ... http2" on a cleartext port, nginx 1.22):
        nghttp -n --no-dep URL... (several requests at once on ONE connection; prior
        knowledge on http:// unless -u; --no-dep: no PRIORITY frames for idle "anchor"
        streams 3-11), curl --http2-prior-knowledge URL (one URL per curl: Debian 12's curl
        7.88.1 fails every later transfer on a reused prior-knowledge connection with
        "(16) Error in the HTTP2 framing layer", curl#10634, fixed in 8.0; and -Z
        --parallel-immediate opens one connection per URL). An HTTP/1.1 request gets no
        HTTP/1.1 answer (curl: "Received HTTP/0.9"), and h2c Upgrade is not supported.
    grpc_server() -> Grpc
        .port; methods /lab.Echo/Unary (echo), /lab.Echo/Slow (200 ms, then echo),
        /lab.Echo/Fail (NOT_FOUND, "no such thing"), /lab.Echo/Stream (request: ASCII N;
        N messages of 100 bytes). Raw bytes in and out: no protobuf.
        .client(*calls) -> dict: runs `python backends.py grpc-client PORT CALL...` (one
        channel, the calls in order) and returns its JSON (see grpc_client()).
    capture(ports, pcap) -> Path of the pcap: tcpdump on lo, TCP on these ports; once the
        with block is left the file holds every packet (see capture())

Oracles (tshark, decode-as on the private port; one dict per PDU, in capture order; the dict
names the TCP frame that completed the PDU, so several PDUs may share a frame):

    tshark_pgsql(pcap, port), tshark_mysql(pcap, port), tshark_http2(pcap, port),
    h2_requests(tshark_http2(...)) (HTTP/2 frames grouped per request stream),
    tshark_pdus(pcap, port, proto) (any dissector, every field)

Script modes (used by the context managers):

    python backends.py grpc-server PORTFILE
    python backends.py grpc-client PORT [CALL ...]   CALL: Method[:payload][@timeout_s]
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from conftest import wait_until  # noqa: E402

HOST = "127.0.0.1"
PG_USER = "tcpwatch-pg"  # the unprivileged system user PostgreSQL runs as
START_TIMEOUT = 30.0


# ---- processes, ports, directories ---------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _kill_group(p: subprocess.Popen, first: int | None = None, grace: float = 10.0) -> None:
    """Stop p's process group (p was started with start_new_session): `first` to p (a clean
    shutdown), then SIGKILL to the whole group, whatever is left of it."""
    if first is not None and p.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(first)
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(p.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        p.wait(10)
    for f in (p.stdin, p.stdout, p.stderr):
        if f is not None:
            f.close()


def _spawn(argv: list[str], log: Path, **kw) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, **kw)


def _tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def _ready(p: subprocess.Popen, log: Path, check, what: str, timeout: float = START_TIMEOUT):
    """Poll check() until true; RuntimeError (with the log) if p exits or time runs out."""
    def pred():
        if p.poll() is not None:
            raise RuntimeError(f"{what} exited with {p.returncode}:\n{_tail(log)}")
        return check()
    try:
        return wait_until(pred, timeout, 0.02)
    except AssertionError:
        raise RuntimeError(f"{what} not ready after {timeout} s:\n{_tail(log)}") from None


def _listening(port: int) -> bool:
    """Something listens on 127.0.0.1:port (from /proc/net/tcp: no packet is sent)."""
    return any(st == "0A" and lp == port for lp, _, st in _tcp_sockets())


def _tcp_sockets() -> list[tuple[int, int, str]]:
    """(local port, remote port, state hex) of every TCP socket of this network namespace."""
    out = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for r in rows:
            c = r.split()
            out.append((int(c[1].rsplit(":", 1)[1], 16), int(c[2].rsplit(":", 1)[1], 16), c[3]))
    return out


def connections_closed(ports) -> bool:
    """No TCP connection on these ports is still open or half closed: each is gone, in
    TIME_WAIT (both FINs sent and acknowledged) or CLOSE; listeners do not count."""
    ports = set(ports)
    return not any(st not in ("0A", "06", "07") and (lp in ports or rp in ports)
                   for lp, rp, st in _tcp_sockets())


@contextlib.contextmanager
def _tempdir(prefix: str):
    d = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- PostgreSQL ---------------------------------------------------------------------------
def pg_bindir() -> Path | None:
    """Debian keeps initdb, pg_ctl, postgres and pgbench in /usr/lib/postgresql/N/bin."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return Path(found[-1]).parent if found else None


def pg_user() -> pwd.struct_passwd:
    """The unprivileged system user PostgreSQL runs as (made, if missing, with useradd)."""
    try:
        return pwd.getpwnam(PG_USER)
    except KeyError:
        pass
    r = subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", PG_USER], capture_output=True, text=True)
    if r.returncode not in (0, 9):  # 9: made meanwhile by someone else
        raise RuntimeError(f"useradd {PG_USER}: {r.stderr}")
    return pwd.getpwnam(PG_USER)


@dataclass
class Postgres:
    bin: Path
    dir: Path
    port: int
    sockdir: Path
    auth: str
    host: str = HOST
    user: str = "postgres"
    dbname: str = "postgres"
    password: str | None = None
    log: Path = field(default=Path("/dev/null"))

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        if self.password:
            env["PGPASSWORD"] = self.password
        env["PGSSLMODE"] = "disable"
        env["PGCONNECT_TIMEOUT"] = "10"
        return env

    def conninfo(self) -> list[str]:
        return ["-h", self.host, "-p", str(self.port), "-U", self.user]

    def psql(self, *args: str, input: str | None = None, timeout: float = 60,  # noqa: A002
             check: bool = False) -> subprocess.CompletedProcess:
        """psql -X over TCP; SQL on stdin (`input`) is sent one statement per Query message,
        while one -c "A; B" is a single Query holding both."""
        return subprocess.run([str(self.bin / "psql"), "-X", "-q", *self.conninfo(),
                               "-d", self.dbname, *args], input=input, capture_output=True,
                              text=True, env=self.env(), timeout=timeout, check=check)

    def pgbench(self, *args: str, timeout: float = 120,
                check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.bin / "pgbench"), *self.conninfo(), *args, self.dbname],
                              capture_output=True, text=True, env=self.env(), timeout=timeout,
                              check=check)

    def local_psql(self, sql: str) -> subprocess.CompletedProcess:
        """psql through the Unix socket in the temporary directory (no TCP: not captured)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        return subprocess.run([str(self.bin / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                               "-h", str(self.sockdir), "-p", str(self.port), "-U", self.user,
                               "-d", self.dbname, "-c", sql], capture_output=True, text=True,
                              env=env, timeout=60, check=True)


@contextlib.contextmanager
def postgres(auth: str = "trust", password: str = "labpass"):
    """A PostgreSQL server on 127.0.0.1 (see the module's docstring). auth: "trust", "md5" or
    "scram-sha-256" for TCP connections (the password exchange is then on the wire)."""
    if auth not in ("trust", "md5", "scram-sha-256"):
        raise ValueError(auth)
    bindir = pg_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL's server programs are not installed (postgresql)")
    u = pg_user()
    as_pg = ["setpriv", f"--reuid={u.pw_uid}", f"--regid={u.pw_gid}", "--init-groups", "--"]
    with _tempdir("tcpwatch-pg-") as tmp:
        os.chown(tmp, u.pw_uid, u.pw_gid)
        data, sockdir, log = tmp / "data", tmp / "sock", tmp / "server.log"
        sockdir.mkdir()
        os.chown(sockdir, u.pw_uid, u.pw_gid)
        r = subprocess.run([*as_pg, str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                            "--auth-local=trust", f"--auth-host={auth}", "--no-sync",
                            "--no-instructions", "-E", "UTF8", "--locale=C"],
                           capture_output=True, text=True, cwd=tmp)
        if r.returncode:
            raise RuntimeError(f"initdb failed: {r.stdout}{r.stderr}")
        port = free_port()
        p = _spawn([*as_pg, str(bindir / "postgres"), "-D", str(data), "-p", str(port),
                    "-c", f"listen_addresses={HOST}", "-c", f"unix_socket_directories={sockdir}",
                    "-c", "ssl=off", "-c", "fsync=off", "-c", "synchronous_commit=off",
                    "-c", "full_page_writes=off", "-c", "autovacuum=off",
                    "-c", "shared_buffers=16MB", "-c", "max_connections=20",
                    "-c", "max_wal_senders=0", "-c", "wal_level=minimal",
                    "-c", "logging_collector=off"], log, cwd=tmp)
        try:
            def ready() -> bool:
                try:  # postmaster.pid's 8th line says "ready" once it accepts connections
                    lines = (data / "postmaster.pid").read_text().splitlines()
                except OSError:
                    return False
                return len(lines) >= 8 and lines[7].strip() == "ready" and _listening(port)
            _ready(p, log, ready, "postgres")
            pg = Postgres(bin=bindir, dir=tmp, port=port, sockdir=sockdir, auth=auth, log=log)
            if auth != "trust":
                enc = "md5" if auth == "md5" else "scram-sha-256"
                pg.local_psql(f"SET password_encryption = '{enc}'; "
                              f"ALTER USER postgres PASSWORD '{password}'")
                pg.password = password
            yield pg
        finally:
            _kill_group(p, signal.SIGINT)  # SIGINT: fast shutdown (no shared memory left)


# ---- MariaDB ------------------------------------------------------------------------------
@dataclass
class MariaDB:
    dir: Path
    port: int
    socket: Path
    host: str = HOST
    user: str = "lab"
    password: str = "labpass"
    dbname: str = "lab"
    log: Path = field(default=Path("/dev/null"))

    def conn(self) -> list[str]:
        return ["--protocol=TCP", "-h", self.host, "-P", str(self.port), "-u", self.user,
                f"-p{self.password}", "--skip-ssl"]

    def client(self, sql: str, *args: str, timeout: float = 60,
               check: bool = False) -> subprocess.CompletedProcess:
        """mariadb --no-defaults --batch --force ... < SQL: each ;-terminated statement is
        its own COM_QUERY, and an error does not stop the rest (with -e it would)."""
        return subprocess.run(["mariadb", "--no-defaults", *self.conn(), "-D", self.dbname,
                               "--batch", "--force", *args], input=sql, capture_output=True,
                              text=True, timeout=timeout, check=check)

    def run_client(self, sql: str, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.client(sql, *args, **kw)

    def slap(self, *args: str, timeout: float = 120,
             check: bool = True) -> subprocess.CompletedProcess:
        """mysqlslap over TCP, e.g. slap("--query=SELECT 1", "--concurrency=1",
        "--iterations=1", "--number-of-queries=10")."""
        return subprocess.run(["mysqlslap", "--no-defaults", *self.conn(), *args],
                              capture_output=True, text=True, timeout=timeout, check=check)

    def root_sql(self, sql: str) -> subprocess.CompletedProcess:
        """As root through the Unix socket (not captured)."""
        return subprocess.run(["mariadb", "--no-defaults", f"--socket={self.socket}", "-u",
                               "root", "-e", sql], capture_output=True, text=True, timeout=60,
                              check=True)


@contextlib.contextmanager
def mariadb(user: str = "lab", password: str = "labpass", dbname: str = "lab"):
    """A MariaDB server on 127.0.0.1 (see the module's docstring), with a user that logs in
    with a password (mysql_native_password: the challenge and answer are on the wire)."""
    for prog in ("mariadbd", "mariadb-install-db", "mariadb"):
        if shutil.which(prog) is None:
            raise RuntimeError(f"{prog} is not installed (mariadb-server, mariadb-client)")
    with _tempdir("tcpwatch-mariadb-") as tmp:
        data, sock, log = tmp / "data", tmp / "mariadb.sock", tmp / "server.log"
        r = subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}",
                            "--user=root", "--auth-root-authentication-method=socket",
                            "--skip-test-db", "--skip-name-resolve"],
                           capture_output=True, text=True, cwd=tmp)
        if r.returncode:
            raise RuntimeError(f"mariadb-install-db failed: {r.stdout}{r.stderr}")
        port = free_port()
        p = _spawn(["mariadbd", "--no-defaults", f"--datadir={data}", f"--socket={sock}",
                    f"--port={port}", f"--bind-address={HOST}", "--user=root",
                    f"--pid-file={tmp / 'mariadbd.pid'}", f"--log-error={log}",
                    "--skip-name-resolve", "--skip-log-bin", "--performance-schema=OFF",
                    "--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M",
                    "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0",
                    "--innodb-use-native-aio=0", "--skip-ssl", "--max-connections=20"],
                   tmp / "stdout.log", cwd=tmp)
        try:
            _ready(p, log, lambda: "ready for connections" in _tail(log, 100_000)
                   and _listening(port), "mariadbd")
            db = MariaDB(dir=tmp, port=port, socket=sock, user=user, password=password,
                         dbname=dbname, log=log)
            db.root_sql(f"CREATE DATABASE {dbname}; "
                        f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED VIA "
                        f"mysql_native_password USING PASSWORD('{password}'); "
                        f"GRANT ALL ON *.* TO '{user}'@'127.0.0.1'")
            yield db
        finally:
            _kill_group(p, signal.SIGTERM)


# ---- nginx, cleartext HTTP/2 --------------------------------------------------------------
NGINX_H2C_CONF = """\
daemon off;
master_process on;
worker_processes 1;
user root root;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    default_type application/octet-stream;
    keepalive_timeout 30s;
    server {{
        listen {host}:{port} http2;
        root {prefix}/www;
    }}
}}
"""
SMALL_BODY = b"hello, h2c!\r\n"  # /small.txt
LARGE_SIZE = 1 << 20  # /large.bin


@dataclass
class Nginx:
    dir: Path
    port: int
    host: str = HOST

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"


@contextlib.contextmanager
def nginx_h2c():
    """nginx serving HTTP/2 with prior knowledge on a cleartext private port (see the
    module's docstring)."""
    if shutil.which("nginx") is None:
        raise RuntimeError("nginx is not installed (nginx-light)")
    with _tempdir("tcpwatch-nginx-") as tmp:
        (tmp / "www").mkdir()
        (tmp / "www" / "small.txt").write_bytes(SMALL_BODY)
        (tmp / "www" / "large.bin").write_bytes(bytes(range(256)) * (LARGE_SIZE // 256))
        port = free_port()
        conf = tmp / "nginx.conf"
        conf.write_text(NGINX_H2C_CONF.format(prefix=tmp, port=port, host=HOST))
        log = tmp / "error.log"
        p = _spawn(["nginx", "-p", str(tmp), "-c", str(conf), "-e", str(log)],
                   tmp / "stdout.log")
        try:
            _ready(p, log, lambda: _listening(port), "nginx")
            yield Nginx(dir=tmp, port=port)
        finally:
            _kill_group(p, signal.SIGQUIT, grace=5)


# ---- gRPC ---------------------------------------------------------------------------------
GRPC_SLOW = 0.2
GRPC_STREAM_MSG = 100


@dataclass
class Grpc:
    dir: Path
    port: int
    host: str = HOST

    def client(self, *calls: str, timeout: float = 60) -> dict:
        """Run the client script (one channel; CALL: Method[:payload][@timeout_s]);
        its JSON. Returns once the process exited (its connection is then closed)."""
        r = subprocess.run([sys.executable, str(Path(__file__).resolve()), "grpc-client",
                            str(self.port), *calls], capture_output=True, text=True,
                           timeout=timeout, start_new_session=True)
        if r.returncode:
            raise RuntimeError(f"grpc client failed ({r.returncode}): {r.stderr}")
        return json.loads(r.stdout)


@contextlib.contextmanager
def grpc_server():
    """The gRPC server in a subprocess (see the module's docstring)."""
    with _tempdir("tcpwatch-grpc-") as tmp:
        portfile, log = tmp / "port", tmp / "server.log"
        p = _spawn([sys.executable, str(Path(__file__).resolve()), "grpc-server",
                    str(portfile)], log)
        try:
            port = int(_ready(p, log, lambda: portfile.exists() and portfile.read_text(),
                              "grpc server"))
            _ready(p, log, lambda: _listening(port), "grpc server")
            yield Grpc(dir=tmp, port=port)
        finally:
            _kill_group(p, signal.SIGTERM, grace=5)


def serve_grpc(portfile: str) -> None:
    from concurrent import futures

    import grpc

    def unary(req: bytes, ctx) -> bytes:
        return req

    def slow(req: bytes, ctx) -> bytes:
        time.sleep(GRPC_SLOW)
        return req

    def fail(req: bytes, ctx) -> bytes:
        ctx.abort(grpc.StatusCode.NOT_FOUND, "no such thing")

    def stream(req: bytes, ctx):
        n = int(req or b"3")
        for i in range(n):
            yield (b"%d:" % i).ljust(GRPC_STREAM_MSG, b"s")

    uu, us = grpc.unary_unary_rpc_method_handler, grpc.unary_stream_rpc_method_handler
    handler = grpc.method_handlers_generic_handler("lab.Echo", {
        "Unary": uu(unary), "Slow": uu(slow), "Fail": uu(fail), "Stream": us(stream)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                         options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port(f"{HOST}:0")
    server.start()
    tmp = portfile + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(port))
    os.replace(tmp, portfile)  # whole or absent
    signal.signal(signal.SIGTERM, lambda *a: server.stop(0))
    server.wait_for_termination()


def grpc_client(port: int, calls: list[str]) -> dict:
    """The calls in order over one insecure channel; JSON-able:
    {"calls": [{"method", "path", "timeout", "code" (name), "code_value", "details",
    "start", "end" (epoch s), "elapsed" (s), "request_bytes", "responses",
    "response_bytes"}]}."""
    import grpc
    calls = calls or ["Unary:hello", "Slow:slow", "Fail:x", "Stream:5", "Slow:late@0.05"]
    out = []
    with grpc.insecure_channel(f"{HOST}:{port}", options=[("grpc.enable_http_proxy", 0)]) \
            as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        for spec in calls:
            m = re.fullmatch(r"(\w+)(?::([^@]*))?(?:@([\d.]+))?", spec)
            if not m:
                raise SystemExit(f"bad call {spec!r}")
            method, payload, tmo = m.group(1), (m.group(2) or "").encode(), m.group(3)
            path = f"/lab.Echo/{method}"
            timeout = float(tmo) if tmo else None
            rec = {"method": method, "path": path, "timeout": timeout,
                   "request_bytes": len(payload), "responses": 0, "response_bytes": 0}
            t0, w0 = time.monotonic(), time.time()
            try:
                if method == "Stream":
                    for msg in ch.unary_stream(path)(payload, timeout=timeout):
                        rec["responses"] += 1
                        rec["response_bytes"] += len(msg)
                else:
                    msg = ch.unary_unary(path)(payload, timeout=timeout)
                    rec["responses"], rec["response_bytes"] = 1, len(msg)
                code, details = grpc.StatusCode.OK, ""
            except grpc.RpcError as e:
                code, details = e.code(), e.details()
            rec.update(code=code.name, code_value=code.value[0], details=details,
                       start=w0, end=w0 + time.monotonic() - t0,
                       elapsed=time.monotonic() - t0)
            out.append(rec)
    return {"port": port, "calls": out}


# ---- capture ------------------------------------------------------------------------------
_STATS = re.compile(r"(\d+) packets captured, (\d+) packets received by filter, "
                    r"(\d+) packets dropped by kernel")


@contextlib.contextmanager
def capture(ports, pcap: Path | str, close_timeout: float = 10.0):
    """tcpdump on lo of TCP on these ports (an int or several) into `pcap` (the caller's to
    keep or remove; tcpdump's messages go next to it, PCAP.tcpdump.log) -> its Path.

    Capturing once tcpdump says "listening" (its filter is then set). On leaving the block
    (the caller's connections are done), first wait until no connection on the ports is
    still open or half closed, then until tcpdump has written every packet the kernel
    handed it: SIGUSR1 makes tcpdump report "N packets captured, M received by filter"; on
    lo each packet reaches the packet socket twice (out and in) and libpcap keeps one, so
    it is complete when M == 2 N (or M == N) twice in a row. Then SIGINT and wait."""
    if shutil.which("tcpdump") is None:
        raise RuntimeError("tcpdump is not installed")
    ports = [ports] if isinstance(ports, int) else list(ports)
    pcap = Path(pcap)
    err = pcap.with_name(pcap.name + ".tcpdump.log")
    err.unlink(missing_ok=True)  # a stale "listening" would be believed (and SIGUSR1 kill)
    flt = " or ".join(f"tcp port {p}" for p in ports)
    p = _spawn(["tcpdump", "-i", "lo", "-U", "--immediate-mode", "-B", "32768", "-s", "0",
                "-Z", "root", "-n", "-w", str(pcap), flt], err)
    try:
        _ready(p, err, lambda: "listening on" in _tail(err), "tcpdump", 15)
        yield pcap
        with contextlib.suppress(AssertionError):
            wait_until(lambda: connections_closed(ports), close_timeout, 0.01)
        last: list[tuple[int, int]] = []

        def complete() -> bool:
            n = len(_STATS.findall(_tail(err, 1_000_000)))
            p.send_signal(signal.SIGUSR1)
            wait_until(lambda: len(_STATS.findall(_tail(err, 1_000_000))) > n
                       or p.poll() is not None, 5, 0.005)
            stats = _STATS.findall(_tail(err, 1_000_000))
            if p.poll() is not None or not stats:
                raise RuntimeError(f"tcpdump exited early:\n{_tail(err)}")
            c, r, d = map(int, stats[-1])
            if d:
                raise RuntimeError(f"tcpdump: the kernel dropped {d} packets")
            last.append((c, r))
            return r in (c, 2 * c) and len(last) >= 2 and last[-2] == last[-1]
        wait_until(complete, 15, 0.01)
    finally:
        _kill_group(p, signal.SIGINT, grace=10)


# ---- tshark as the oracle -----------------------------------------------------------------
def tshark_pdus(pcap: Path | str, port: int, proto: str, decode_as: str | None = None,
                extra: tuple[str, ...] = ()) -> list[dict]:
    """One dict per `proto` PDU tshark dissects in the capture, in order, from its PDML:
    frame (number of the frame that completed it), time (epoch s), stream (tcp.stream),
    dir ("c2s" / "s2c": is the source port `port`?), index (its place among the frame's
    PDUs of this protocol), segments (for the frame's first PDU when tshark reassembled it
    from several TCP segments: their frame numbers, this one last; else []), fields ({field
    name: [shown values, in order]} of everything in its tree). `extra` names protocols
    that follow it in the frame (gRPC inside HTTP/2) and belong to it: their fields are
    merged in."""
    cmd = ["tshark", "-n", "-r", str(pcap), "-d", f"tcp.port=={port},{decode_as or proto}",
           "-o", "tcp.desegment_tcp_streams:TRUE", "-T", "pdml", "-Y", proto]
    r = subprocess.run(cmd, capture_output=True, timeout=300)
    if r.returncode:
        raise RuntimeError(f"tshark failed: {r.stderr.decode(errors='replace')}")
    out: list[dict] = []
    for pkt in ET.fromstring(r.stdout).iter("packet"):
        frame = tm = stream = sport = None
        idx = 0
        cur: dict | None = None
        first: dict | None = None
        segments: list[int] = []
        for pr in pkt.findall("proto"):
            name = pr.get("name")
            fields = _fields(pr)
            if "tcp.segment" in fields:  # "[N Reassembled TCP Segments]"
                segments = [int(x) for x in fields["tcp.segment"]]
            if name == "frame":
                frame = int(fields["frame.number"][0])
                tm = float(fields["frame.time_epoch"][0])
            elif name == "tcp":
                stream = int(fields["tcp.stream"][0])
                sport = int(fields["tcp.srcport"][0])
            elif name == proto:
                cur = {"frame": frame, "time": tm, "stream": stream,
                       "dir": "s2c" if sport == port else "c2s", "index": idx,
                       "segments": [], "fields": fields}
                first = first or cur
                idx += 1
                out.append(cur)
            elif name in extra and cur is not None:
                for k, v in fields.items():
                    cur["fields"].setdefault(k, []).extend(v)
        if first is not None and len(segments) > 1:
            first["segments"] = segments
    return out


def _fields(el: ET.Element) -> dict[str, list[str]]:
    got: dict[str, list[str]] = {}
    for f in el.iter("field"):
        name = f.get("name")
        if name:
            got.setdefault(name, []).append(f.get("show", ""))
    return got


def _first(fields: dict, name: str, cast=str):
    v = fields.get(name)
    if not v:
        return None
    try:
        return cast(v[0])
    except ValueError:
        return None


# PostgreSQL message types: tshark shows pgsql.type as a name; the one-letter wire codes
PG_CODES = {
    "Startup message": "", "SSL request": "", "Cancel request": "",
    "Simple query": "Q", "Parse": "P", "Bind": "B", "Execute": "E", "Describe": "D",
    "Close": "C", "Sync": "S", "Flush": "H", "Function call": "F", "Copy data": "d",
    "Copy completion": "c", "Copy failure": "f", "Termination": "X",
    "Password message": "p", "SASLInitialResponse message": "p",
    "SASLResponse message": "p", "GSSAPI or SSPI response": "p",
    "Authentication request": "R", "Backend key data": "K", "Parameter status": "S",
    "Parse completion": "1", "Bind completion": "2", "Close completion": "3",
    "Command completion": "C", "Copy in response": "G", "Copy out response": "H",
    "Copy both response": "W", "Data row": "D", "Empty query": "I", "Error": "E",
    "Function call response": "V", "Negotiate protocol version": "v", "No data": "n",
    "Notice": "N", "Notification": "A", "Parameter description": "t",
    "Portal suspended": "s", "Ready for query": "Z", "Row description": "T",
}


def tshark_pgsql(pcap: Path | str, port: int) -> list[dict]:
    """Each PostgreSQL message: frame, time, stream, dir, index, type (tshark's name, e.g.
    "Simple query", "Command completion", "Error", "Ready for query"), code (the wire's
    letter, "" for startup), query, tag, sqlstate, severity, message, status (Z's
    transaction state: "I", "T" or "E"), authtype (R's: 0 ok, 5 MD5, 10 SASL, 11 SASL
    continue, 12 SASL final), fields (everything)."""
    out = []
    for d in tshark_pdus(pcap, port, "pgsql"):
        f = d["fields"]
        typ = _first(f, "pgsql.type") or ""
        d.update(type=typ, code=PG_CODES.get(typ, "?"), query=_first(f, "pgsql.query"),
                 tag=_first(f, "pgsql.tag"), sqlstate=_first(f, "pgsql.code"),
                 severity=_first(f, "pgsql.severity"), message=_first(f, "pgsql.message"),
                 status=_first(f, "pgsql.status", lambda v: chr(int(v))),
                 authtype=_first(f, "pgsql.authtype", int))
        out.append(d)
    return out


MYSQL_RESPONSES = {0x00: "OK", 0xFF: "ERR", 0xFE: "EOF"}


def tshark_mysql(pcap: Path | str, port: int) -> list[dict]:
    """Each MySQL packet: frame, time, stream, dir, index, number (mysql.packet_number),
    command (mysql.command, e.g. 3 = COM_QUERY; requests only), query, response ("OK",
    "ERR", "EOF" or None: greeting, result-set packets), error_code, sqlstate,
    error_message, affected_rows, num_fields, greeting (bool), login (bool), fields."""
    out = []
    for d in tshark_pdus(pcap, port, "mysql"):
        f = d["fields"]
        rc = _first(f, "mysql.response_code", lambda s: int(s, 0))
        d.update(number=_first(f, "mysql.packet_number", int),
                 command=_first(f, "mysql.command", int), query=_first(f, "mysql.query"),
                 response=MYSQL_RESPONSES.get(rc) if rc is not None else None,
                 error_code=_first(f, "mysql.error_code", int),
                 sqlstate=_first(f, "mysql.sqlstate"),
                 error_message=_first(f, "mysql.error.message"),
                 affected_rows=_first(f, "mysql.affected_rows", int),
                 num_fields=_first(f, "mysql.num_fields", int),
                 greeting="mysql.server_greeting" in f or "mysql.protocol" in f,
                 login="mysql.login_request" in f or "mysql.user" in f)
        out.append(d)
    return out


H2_TYPES = {0: "DATA", 1: "HEADERS", 2: "PRIORITY", 3: "RST_STREAM", 4: "SETTINGS",
            5: "PUSH_PROMISE", 6: "PING", 7: "GOAWAY", 8: "WINDOW_UPDATE", 9: "CONTINUATION"}


def tshark_http2(pcap: Path | str, port: int) -> list[dict]:
    """Each HTTP/2 frame: frame (TCP frame), time, stream (tcp.stream), dir, index,
    streamid, type ("HEADERS", "DATA", ...), length, end_stream, headers ([(name, value)]
    in order: :method :path :status grpc-status ...), header (dict of them), rst_error,
    goaway_error, grpc (the gRPC message lengths tshark found in it; [] if none), fields.
    The preface (magic) comes out as type "MAGIC"."""
    out = []
    for d in tshark_pdus(pcap, port, "http2", extra=("grpc",)):
        f = d["fields"]
        t = _first(f, "http2.type", int)
        typ = H2_TYPES.get(t, str(t)) if t is not None else (
            "MAGIC" if "http2.magic" in f else "?")
        names, values = f.get("http2.header.name", []), f.get("http2.header.value", [])
        headers = list(zip(names, values))
        flags = _first(f, "http2.flags", lambda s: int(s, 0)) or 0
        d.update(streamid=_first(f, "http2.streamid", int), type=typ,
                 length=_first(f, "http2.length", int),
                 end_stream=bool(flags & 1) if typ in ("DATA", "HEADERS") else False,
                 headers=headers, header=dict(headers),
                 rst_error=_first(f, "http2.rst_stream.error", lambda s: int(s, 0)),
                 goaway_error=_first(f, "http2.goaway.error", lambda s: int(s, 0)),
                 grpc=[int(x) for x in f.get("grpc.message_length", [])])
        out.append(d)
    return out


def h2_requests(frames: list[dict]) -> dict[tuple[int, int], dict]:
    """HTTP/2 frames grouped per (tcp stream, stream id) > 0: method, path, status,
    grpc_status, grpc_message, first/last time, frames, rst (error code or None),
    data_bytes per direction."""
    reqs: dict[tuple[int, int], dict] = {}
    for fr in frames:
        sid = fr["streamid"]
        if not sid:
            continue
        r = reqs.setdefault((fr["stream"], sid), {
            "method": None, "path": None, "status": None, "grpc_status": None,
            "grpc_message": None, "first": fr["time"], "last": fr["time"], "frames": [],
            "rst": None, "data_bytes": {"c2s": 0, "s2c": 0}, "timeout": None})
        r["last"] = fr["time"]
        r["frames"].append(fr)
        h = fr["header"]
        for key, name in ((":method", "method"), (":path", "path"), (":status", "status"),
                          ("grpc-status", "grpc_status"), ("grpc-message", "grpc_message"),
                          ("grpc-timeout", "timeout")):
            if key in h:
                r[name] = h[key]
        if fr["type"] == "RST_STREAM":
            r["rst"] = fr["rst_error"]
        if fr["type"] == "DATA":
            r["data_bytes"][fr["dir"]] += fr["length"] or 0
    return reqs


def main(argv: list[str]) -> None:
    if argv[:1] == ["grpc-server"] and len(argv) == 2:
        serve_grpc(argv[1])
    elif argv[:1] == ["grpc-client"] and len(argv) >= 2:
        print(json.dumps(grpc_client(int(argv[1]), argv[2:])))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
