"""Small network probes the system tests run inside rig namespaces (stdlib only).

    ip netns exec NS python tests/netns/net_tools.py COMMAND ARGS...

    syn-mss IFACE PORT TIMEOUT        the MSS option of the first TCP SYN to PORT seen on
                                      IFACE (AF_PACKET): {"mss": N, "src": IP, "dst": IP}
    bulk-server ADDR PORT BYTES       accept one TCP connection, send BYTES, close
    bulk-client ADDR PORT TIMEOUT     read until EOF: {"bytes", "seconds", "max_gap_s"}
    udp-listen PORT SECONDS           one JSON line per datagram to 0.0.0.0:PORT
    dhcp-discover IFACE XID           a DHCPDISCOVER broadcast from :68 to
                                      255.255.255.255:67, out of IFACE

Servers and listeners print "ready" (flushed) once their socket is bound, so a test can
start the other side without sleeping. Results are one JSON object per line on stdout;
a timeout prints {"timeout": true}. Why not tcpdump/nc: neither is installed on every test
machine (Debian's iputils/iproute2 are), and these need nothing but Python.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
import time
from pathlib import Path

ETH_P_ALL = 0x0003
ETHERTYPE_IPV4 = 0x0800
IPPROTO_TCP = 6
TCP_SYN, TCP_ACK = 0x02, 0x10
CHUNK = 64 * 1024


def _emit(obj: object) -> None:
    print(json.dumps(obj), flush=True)


def _tcp_syn_mss(frame: bytes, port: int) -> dict[str, object] | None:
    """The MSS of an IPv4 TCP SYN (not SYN-ACK) to `port` in an Ethernet frame, else None."""
    if len(frame) < 14 + 20 + 20 or struct.unpack_from("!H", frame, 12)[0] != ETHERTYPE_IPV4:
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    if ip[9] != IPPROTO_TCP or len(ip) < ihl + 20:
        return None
    tcp = ip[ihl:]
    dport = struct.unpack_from("!H", tcp, 2)[0]
    flags = tcp[13]
    if dport != port or not flags & TCP_SYN or flags & TCP_ACK:
        return None
    offset = (tcp[12] >> 4) * 4
    options, i, mss = tcp[20:offset], 0, None
    while i < len(options):
        kind = options[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(options) or options[i + 1] < 2:
            break
        length = options[i + 1]
        if kind == 2 and length == 4:
            mss = struct.unpack_from("!H", options, i + 2)[0]
        i += length
    return {"mss": mss, "src": socket.inet_ntoa(ip[12:16]), "dst": socket.inet_ntoa(ip[16:20])}


def syn_mss(iface: str, port: int, timeout: float) -> None:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((iface, 0))
    print("ready", flush=True)
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            frame = sock.recv(65536)
        except TimeoutError:
            break
        found = _tcp_syn_mss(frame, port)
        if found is not None:
            _emit(found)
            return
    _emit({"timeout": True})


def bulk_server(addr: str, port: int, total: int) -> None:
    server = socket.create_server((addr, port))
    print("ready", flush=True)
    conn, _ = server.accept()
    block = os.urandom(CHUNK)
    sent = 0
    while sent < total:
        sent += conn.send(block[: min(CHUNK, total - sent)])
    conn.shutdown(socket.SHUT_WR)
    conn.close()
    _emit({"sent": sent})


def bulk_client(addr: str, port: int, timeout: float) -> None:
    sock = socket.create_connection((addr, port), timeout=timeout)
    start = last = time.monotonic()
    received, max_gap = 0, 0.0
    while True:
        try:
            data = sock.recv(CHUNK)
        except TimeoutError:
            _emit({"timeout": True, "bytes": received, "max_gap_s": time.monotonic() - last})
            return
        now = time.monotonic()
        max_gap = max(max_gap, now - last)
        last = now
        if not data:
            break
        received += len(data)
    _emit({"bytes": received, "seconds": last - start, "max_gap_s": max_gap})


def udp_listen(port: int, seconds: float) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", port))
    print("ready", flush=True)
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data, (ip, sport) = sock.recvfrom(4096)
        except TimeoutError:
            break
        xid = struct.unpack_from("!I", data, 4)[0] if len(data) >= 8 else None
        _emit({"from": ip, "port": sport, "len": len(data), "xid": xid})
    _emit({"done": True})


def dhcp_discover(iface: str, xid: int) -> None:
    """A minimal, well-formed DHCPDISCOVER (RFC 2131): BOOTP header, cookie, option 53."""
    mac = bytes.fromhex(
        Path(f"/sys/class/net/{iface}/address").read_text().strip().replace(":", "")
    )
    bootp = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000,
                        b"\0" * 4, b"\0" * 4, b"\0" * 4, b"\0" * 4, mac.ljust(16, b"\0"),
                        b"", b"")  # fmt: skip
    packet = bootp + b"\x63\x82\x53\x63" + b"\x35\x01\x01" + b"\xff"
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
    sock.bind(("0.0.0.0", 68))
    sock.sendto(packet, ("255.255.255.255", 67))
    _emit({"sent": len(packet), "xid": xid})


def main(argv: list[str]) -> int:
    command, args = argv[0], argv[1:]
    if command == "syn-mss":
        syn_mss(args[0], int(args[1]), float(args[2]))
    elif command == "bulk-server":
        bulk_server(args[0], int(args[1]), int(args[2]))
    elif command == "bulk-client":
        bulk_client(args[0], int(args[1]), float(args[2]))
    elif command == "udp-listen":
        udp_listen(int(args[0]), float(args[1]))
    elif command == "dhcp-discover":
        dhcp_discover(args[0], int(args[1]))
    else:
        print(f"unknown command {command!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
