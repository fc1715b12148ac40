"""A tiny TCP/UDP peer for the network tests, run inside a namespace with nsenter.

    serve PORT                 TCP: answer each connection with the peer's address
    serve-udp PORT             UDP: print "SRC DATA" for each datagram received
    connect IP PORT [TIMEOUT]  TCP: print what the server sent (exit 1 on failure)
    send-udp IP PORT DATA [SRC] UDP: one datagram, from SRC if given
    sink PORT                  TCP: read one connection to its end; print JSON figures
    source IP PORT SECONDS     TCP: send zeros for SECONDS

Servers print "ready" once they listen, so the test knows when to go on.
Stdlib only; nothing here sends anywhere but the addresses given.
"""

from __future__ import annotations

import json
import socket
import sys
import time


def serve(port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(16)
    print("ready", flush=True)
    while True:
        conn, peer = s.accept()
        with conn:
            conn.sendall(f"{peer[0]}\n".encode())


def serve_udp(port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    print("ready", flush=True)
    while True:
        data, peer = s.recvfrom(2048)
        print(f"{peer[0]} {data.decode(errors='replace')}", flush=True)


def connect(ip: str, port: int, timeout: float) -> int:
    try:
        with socket.create_connection((ip, port), timeout=timeout) as c:
            c.settimeout(timeout)
            data = b""
            while chunk := c.recv(1024):
                data += chunk
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(data.decode().strip())
    return 0


def send_udp(ip: str, port: int, data: str, src: str | None) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if src:
        s.bind((src, 0))
    for _ in range(3):  # the first may wait on ARP
        s.sendto(data.encode(), (ip, port))
        time.sleep(0.05)


def sink(port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(1)
    print("ready", flush=True)
    conn, _ = s.accept()
    marks: list[tuple[float, int]] = []
    total = 0
    buf = bytearray(1 << 16)
    while n := conn.recv_into(buf):
        total += n
        marks.append((time.monotonic(), total))
    conn.close()
    start_t, start_b = marks[0]
    end_t, end_b = marks[-1]
    # the steady part: leave out the first half second (the burst and slow start)
    steady = [m for m in marks if m[0] - start_t >= 0.5]
    s_t, s_b = steady[0] if steady else marks[0]
    print(json.dumps({"bytes": total, "seconds": end_t - start_t,
                      "steady_bps": (end_b - s_b) * 8 / max(end_t - s_t, 1e-9),
                      "overall_bps": (end_b - start_b) * 8 / max(end_t - start_t, 1e-9)}))


def source(ip: str, port: int, seconds: float) -> None:
    chunk = bytes(1 << 16)
    with socket.create_connection((ip, port), timeout=10) as c:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            c.sendall(chunk)


def main(argv: list[str]) -> int:
    cmd, args = argv[0], argv[1:]
    if cmd == "serve":
        serve(int(args[0]))
    elif cmd == "serve-udp":
        serve_udp(int(args[0]))
    elif cmd == "connect":
        return connect(args[0], int(args[1]), float(args[2]) if len(args) > 2 else 3.0)
    elif cmd == "send-udp":
        send_udp(args[0], int(args[1]), args[2], args[3] if len(args) > 3 else None)
    elif cmd == "sink":
        sink(int(args[0]))
    elif cmd == "source":
        source(args[0], int(args[1]), float(args[2]))
    else:
        print(f"unknown command {cmd}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
