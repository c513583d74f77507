"""Record tcpwatch's bundled demo capture from real traffic made on loopback (run as root).

    python tests/lab/record_demo.py tcpwatch/data/demo.pcapng

What it contains, all real kernel TCP on 127.0.0.1 (payloads cut to 160 bytes by the snaplen):
  * port 8081  an HTTP/1.1 keep-alive client: 5 quick requests on one connection
  * port 8081  /slow: the server thinks 400 ms before answering
  * port 8081  connection churn: 8 requests, one new connection each
  * port 8082  a bulk response to a client that stops reading for 1.5 s: zero window
  * port 8083  a bulk transfer through an nftables rule dropping 1 in 12 inbound segments:
               retransmissions (fast and RTO)
  * port 8084  nobody listens: connection refused (RST answering the SYN)
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

NFT_TABLE = "tcpwatch_demo"


def http_server(port: int, stop: threading.Event) -> None:
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(16)
    srv.settimeout(0.2)

    def serve(conn: socket.socket) -> None:
        with conn:
            buf = b""
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    path = head.split(b" ")[1]
                    if path == b"/slow":
                        time.sleep(0.4)
                    size = 3_000_000 if path == b"/bulk" else 600
                    body = b"x" * size
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + body)

    while not stop.is_set():
        try:
            conn, _ = srv.accept()
        except TimeoutError:
            continue
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
    srv.close()


def get(sock: socket.socket, path: str, read: bool = True, pause: float = 0.0) -> None:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: demo\r\n\r\n".encode())
    if pause:
        time.sleep(pause)
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    got = 0
    while got < length:
        got += len(sock.recv(min(65536, length - got)))


def main(out: str) -> None:
    stop = threading.Event()
    for port in (8081, 8082, 8083):
        threading.Thread(target=http_server, args=(port, stop), daemon=True).start()
    nft = ("add table inet {t}; add chain inet {t} in {{ type filter hook input priority 0; }};"
           " add rule inet {t} in tcp sport 8083 numgen random mod 12 == 0 drop")
    subprocess.run(["nft", nft.format(t=NFT_TABLE)], check=True)
    cap = subprocess.Popen(["dumpcap", "-q", "-i", "lo", "-s", "160", "-w", out, "-f",
                            "tcp portrange 8081-8084"])
    try:
        time.sleep(1.0)
        with socket.create_connection(("127.0.0.1", 8081)) as s:  # keep-alive
            for _ in range(5):
                get(s, "/index.html")
                time.sleep(0.05)
            get(s, "/slow")
        for i in range(8):  # churn
            with socket.create_connection(("127.0.0.1", 8081)) as s:
                get(s, f"/item/{i}")
        small = socket.socket()
        small.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        small.connect(("127.0.0.1", 8082))
        get(small, "/bulk", pause=1.5)  # stops reading: the window closes
        small.close()
        with socket.create_connection(("127.0.0.1", 8083)) as s:  # loss
            get(s, "/bulk")
        try:
            socket.create_connection(("127.0.0.1", 8084), timeout=1).close()
        except ConnectionRefusedError:
            pass
        time.sleep(1.0)
    finally:
        cap.terminate()
        cap.wait()
        subprocess.run(["nft", f"delete table inet {NFT_TABLE}"], check=False)
        stop.set()


if __name__ == "__main__":
    main(sys.argv[1])
