"""The lab's own servers and clients, run inside the lab's namespaces (real kernel TCP):

    python apps.py server PORT [--think S]
        an HTTP/1.1 keep-alive server answering each request with ONE send (headers + body):
        GET /bulk/N answers N bytes of body, /think sleeps S seconds first, anything else 500 B
    python apps.py pyhttp PORT [--nodelay] [--think S]
        Python's http.server (BaseHTTPRequestHandler, HTTP/1.1, keep-alive), which writes the
        headers and the body in two sends: with Nagle on, the body waits for the client's
        delayed ACK; --nodelay sets TCP_NODELAY on every accepted socket. /think sleeps S s
    python apps.py client ADDR PORT [--mode keepalive|split] [--nodelay] [-n N] [--path P]
                          [--pause S] [--paths P1,P2,...]
        N requests on one keep-alive connection, --pause S between them; "split" writes each
        request in two sends (write-write-read). Prints JSON: each request's latency (first
        byte sent -> last response byte received, seconds) and their sum.

The servers print "listening" once they accept. Clients close cleanly: they shut their side
down and wait for the server's FIN, so the capture holds the whole connection.
"""

from __future__ import annotations

import argparse
import http.server
import json
import socket
import socketserver
import sys
import threading
import time

BODY = 500  # bytes of body for any path that names no size


def size_of(path: str) -> int:
    return int(path.rsplit("/", 1)[1]) if path.startswith("/bulk/") else BODY


def serve_one_send(port: int, think: float) -> None:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(64)

    def serve(c: socket.socket) -> None:
        buf = b""
        with c:
            while True:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
                while b"\r\n\r\n" in buf:
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    path = head.split(b" ")[1].decode()
                    if path.startswith("/think"):
                        time.sleep(think)
                    size = size_of(path)
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size
                              + b"x" * size)

    print("listening", flush=True)
    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def serve_http_server(port: int, nodelay: bool, think: float) -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            if nodelay:
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().setup()

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path.startswith("/think"):
                time.sleep(think)
            body = b"x" * size_of(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()  # the first send: the headers
            self.wfile.write(body)  # the second: the body

        def log_message(self, *args) -> None:
            pass

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    srv = Server(("0.0.0.0", port), Handler)
    print("listening", flush=True)
    srv.serve_forever()


def read_response(s: socket.socket) -> None:
    head = b""
    while b"\r\n\r\n" not in head:
        d = s.recv(65536)
        if not d:
            raise ConnectionError("closed before the response headers")
        head += d
    h, body = head.split(b"\r\n\r\n", 1)
    size = int(h.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < size:
        d = s.recv(65536)
        if not d:
            raise ConnectionError("closed inside the response body")
        body += d


def client(a: argparse.Namespace) -> dict:
    s = socket.socket()
    if a.nodelay:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.connect((a.addr, a.port))
    paths = a.paths.split(",") if a.paths else [a.path] * a.n
    latencies = []
    for i, path in enumerate(paths):
        if i:
            time.sleep(a.pause)
        req = f"GET {path} HTTP/1.1\r\nHost: lab\r\n\r\n".encode()
        t = time.monotonic()
        if a.mode == "split":  # write-write-read: two small writes, then wait for the answer
            s.sendall(req[:20])
            s.sendall(req[20:])
        else:
            s.sendall(req)
        read_response(s)
        latencies.append(round(time.monotonic() - t, 6))
    s.shutdown(socket.SHUT_WR)
    while s.recv(65536):  # the server's FIN: the connection is over on both sides
        pass
    s.close()
    return {"latencies": latencies, "total": round(sum(latencies), 6), "paths": paths,
            "mode": a.mode, "nodelay": a.nodelay}


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("server")
    p.add_argument("port", type=int)
    p.add_argument("--think", type=float, default=0.0)
    p = sub.add_parser("pyhttp")
    p.add_argument("port", type=int)
    p.add_argument("--nodelay", action="store_true")
    p.add_argument("--think", type=float, default=0.0)
    p = sub.add_parser("client")
    p.add_argument("addr")
    p.add_argument("port", type=int)
    p.add_argument("--mode", choices=("keepalive", "split"), default="keepalive")
    p.add_argument("--nodelay", action="store_true")
    p.add_argument("-n", type=int, default=1)
    p.add_argument("--path", default="/")
    p.add_argument("--paths", default="")
    p.add_argument("--pause", type=float, default=0.0)
    a = ap.parse_args()
    if a.what == "server":
        serve_one_send(a.port, a.think)
    elif a.what == "pyhttp":
        serve_http_server(a.port, a.nodelay, a.think)
    else:
        print(json.dumps(client(a)), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
