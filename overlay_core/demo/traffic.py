"""The demo's TCP traffic, run inside the members' namespaces (stdlib only):

    python -m overlay_core.demo.traffic sink PORT
        accept connections on 0.0.0.0:PORT and read each to EOF (one thread each)
    python -m overlay_core.demo.traffic send ADDR PORT BYTES EVERY_S [--delay S]
        every EVERY_S seconds (first after S): connect, send BYTES, close; a failed
        transfer is skipped, the next one comes on time

They run until killed (the demo's rig kills them with their namespaces).
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import socketserver
import time

CHUNK = 16 * 1024
CONNECT_TIMEOUT_S = 5.0


class _Drain(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.settimeout(60)
        with contextlib.suppress(OSError):
            while self.request.recv(CHUNK):
                pass


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def sink(port: int) -> None:
    with _Server(("0.0.0.0", port), _Drain) as server:
        server.serve_forever()


def send(addr: str, port: int, size: int, every: float, delay: float) -> None:
    payload = b"\x5a" * CHUNK
    next_at = time.monotonic() + delay
    while True:
        time.sleep(max(0.0, next_at - time.monotonic()))
        next_at += every
        try:
            with socket.create_connection((addr, port), timeout=CONNECT_TIMEOUT_S) as conn:
                conn.settimeout(every)
                left = size
                while left > 0:
                    conn.sendall(payload[: min(left, CHUNK)])
                    left -= CHUNK
        except OSError:
            continue


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m overlay_core.demo.traffic")
    sub = parser.add_subparsers(dest="command", required=True)
    p_sink = sub.add_parser("sink")
    p_sink.add_argument("port", type=int)
    p_send = sub.add_parser("send")
    p_send.add_argument("addr")
    p_send.add_argument("port", type=int)
    p_send.add_argument("bytes", type=int)
    p_send.add_argument("every", type=float)
    p_send.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        if args.command == "sink":
            sink(args.port)
        else:
            send(args.addr, args.port, args.bytes, args.every, args.delay)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
