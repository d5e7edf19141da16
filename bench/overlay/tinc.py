"""tinc 1.0 in switch mode on the rig beside ztui: the anchor of `make bench-overlay`.

tinc 1.0 is the fastest of the peers measured on this machine (issue 9) and Debian ships it
(package `tinc`, 1.0.36; `make sysdeps` installs it). Each world gets two tinc networks,
each its own daemons and configuration directories under the world's temporary directory:

* direct (port 655, 10.148.0.0/24, interface tinc0): pc1 and pc2 only. tinc needs one side
  reachable, so pc2's home router forwards UDP and TCP 655 to pc2, as a NAS owner would
  for tinc; pc1 has `ConnectTo = pc2` and knows pc2 by home2's public address. Data flows
  over UDP between the homes through both NATs, the path ztui's DIRECT takes.
* relay (port 656, 10.149.0.0/24, interface tinc1): a hub on root1 (a public host, like
  ztui's root), pc1 and pc2 both `ConnectTo = hub`, no port forward. In that phase the
  homes' routers drop UDP between their public addresses (what makes ztui relay through
  its root), so tinc's MTU probes to the other home go unanswered; tinc 1.0 then sends
  every packet for it to the hub (its next hop on the meta graph) over UDP, and the hub,
  a switch, decrypts it and forwards it, re-encrypted, to the other home: pc1 -> hub ->
  pc2: tinc relays because it must, as ztui does. (`IndirectData = yes` on the homes is
  the way to ask for it by configuration; measured here it takes the same path, UDP
  through the hub, at the same speed.) The results record, for each relayed run, the UDP
  datagrams and TCP segments the relay's namespace received: tinc's are all UDP.

Per node, in the directory given with `-c`:

    tinc.conf     Name, Mode = switch, Interface, Port, AddressFamily = ipv4, ConnectTo
    hosts/NAME    for every node of the network: Address (for the node others connect
                  to), Port, and its RSA public key
    rsa_key.priv  `tincd -c DIR -K2048` (tinc 1.0's default size; RSA is only used on the
                  meta connection, not per packet)
    tinc-up       ip link set $INTERFACE up; ip addr add 10.148.0.N/24 dev $INTERFACE

Cipher and digest are tinc's defaults, what a user who writes no Cipher line runs: since
1.0.30 those are AES-256-CBC and SHA-256 (truncated to MACLength = 4 bytes), for the UDP
packets and the meta connections alike; 1.0 releases before that defaulted to Blowfish-CBC
and SHA-1. The node dumps (SIGUSR2) record the cipher and digest NIDs each side uses (427
aes-256-cbc, 672 sha256) in the results. Everything else is default too: TAP MTU 1500,
PMTUDiscovery and ClampMSS on, no compression.

Daemons run in the foreground (`tincd -c DIR -D --pidfile ... --logfile ...`) in their rig
namespace through the rig's popen (own process group, killed with the rig whatever
happens) and are stopped by their own PID: SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from overlay_core.lab.netns import Host
from overlay_core.lab.processes import stop_processes

DIRECT_PORT = 655
RELAY_PORT = 656
DIRECT_SUBNET = "10.148.0.0/24"
RELAY_SUBNET = "10.149.0.0/24"
KEY_BITS = 2048
READY_TIMEOUT_S = 30.0
PMTU_TIMEOUT_S = 40.0  # tinc 1.0 fixes the MTU after at most 30 rounds of probes, 1 s apart
DUMP_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 5.0
CIPHERS = {427: "aes-256-cbc", 91: "bf-cbc", 0: "none"}
DIGESTS = {672: "sha256", 64: "sha1", 0: "none"}

# " pc2 at 198.18.1.13 port 655 cipher 427 digest 672 maclength 4 compression 0 options c
#   status 001b nexthop pc2 via pc2 pmtu 1459 (min 1459 max 1459)"
_NODE = re.compile(
    r" (?P<name>\S+) at (?P<at>.+?) cipher (?P<cipher>\d+) digest (?P<digest>\d+) "
    r"maclength (?P<maclength>\d+) compression (?P<compression>\d+) options (?P<options>[0-9a-f]+) "
    r"status (?P<status>[0-9a-f]+) nexthop (?P<nexthop>\S+) via (?P<via>\S+) "
    r"pmtu (?P<pmtu>\d+) \(min (?P<min>\d+) max (?P<max>\d+)\)"
)


class TincError(RuntimeError):
    """tinc could not be configured or started, or its tunnel never carried a ping."""


def tinc_version() -> str | None:
    """`tincd --version`'s number (e.g. 1.0.36), None if tincd is not installed."""
    if shutil.which("tincd") is None:
        return None
    out = subprocess.run(["tincd", "--version"], capture_output=True, text=True, check=False)
    match = re.search(r"tinc version (\S+)", out.stdout)
    return match.group(1) if match else "?"


@dataclass
class TincNode:
    """One tincd: its rig host, its address on the tinc network and its directory."""

    name: str
    host: Host
    ip: str
    confdir: Path
    address: str | None = None  # public address others connect to (None: nobody does)
    connect_to: list[str] = field(default_factory=list)
    proc: subprocess.Popen[Any] | None = None

    @property
    def log(self) -> Path:
        return self.confdir / "tinc.log"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(no log: {exc})"


class TincNet:
    """One tinc network (a set of daemons sharing a port, a subnet and an interface name)."""

    def __init__(self, label: str, base: Path, port: int, subnet: str, iface: str) -> None:
        self.label = label
        self.base = base / f"tinc-{label}"
        self.port = port
        self.subnet = ipaddress.IPv4Network(subnet)
        self.iface = iface
        self.nodes: dict[str, TincNode] = {}
        self._hosts = iter(self.subnet.hosts())

    def add(
        self,
        name: str,
        host: Host,
        *,
        address: str | None = None,
        connect_to: tuple[str, ...] = (),
    ) -> TincNode:
        node = TincNode(name, host, str(next(self._hosts)), self.base / name, address,
                        list(connect_to))  # fmt: skip
        self.nodes[name] = node
        return node

    # ---- configuration --------------------------------------------------------------------

    def _host_lines(self, node: TincNode) -> str:
        lines = [f"Address = {node.address}"] if node.address else []
        lines.append(f"Port = {self.port}")
        return "\n".join(lines) + "\n"

    def configure(self) -> None:
        """Write every node's directory and generate its keys; then give every node every
        other node's host file, as a user copies hosts/ around."""
        for node in self.nodes.values():
            (node.confdir / "hosts").mkdir(parents=True, exist_ok=True)
            conf = [f"Name = {node.name}", "Mode = switch", f"Interface = {self.iface}",
                    f"Port = {self.port}", "AddressFamily = ipv4",
                    *(f"ConnectTo = {peer}" for peer in node.connect_to)]  # fmt: skip
            (node.confdir / "tinc.conf").write_text("\n".join(conf) + "\n")
            (node.confdir / "hosts" / node.name).write_text(self._host_lines(node))
            up = node.confdir / "tinc-up"
            up.write_text(
                "#!/bin/sh\n"
                'ip link set dev "$INTERFACE" up\n'
                f'ip addr add {node.ip}/{self.subnet.prefixlen} dev "$INTERFACE"\n'
            )
            up.chmod(0o755)
            keygen = subprocess.run(
                ["tincd", "-c", str(node.confdir), f"-K{KEY_BITS}"],
                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                check=False,
            )  # fmt: skip
            if keygen.returncode != 0 or not (node.confdir / "rsa_key.priv").exists():
                raise TincError(f"tincd -K for {node.name}: {keygen.stderr.strip()[-300:]}")
        for node in self.nodes.values():
            own = (node.confdir / "hosts" / node.name).read_text()
            for other in self.nodes.values():
                if other is not node:
                    (other.confdir / "hosts" / node.name).write_text(own)

    def config_text(self) -> dict[str, dict[str, str]]:
        """Each node's tinc.conf and hosts files without the key blocks (for the results)."""
        out: dict[str, dict[str, str]] = {}
        for node in self.nodes.values():
            files = {"tinc.conf": (node.confdir / "tinc.conf").read_text()}
            for path in sorted((node.confdir / "hosts").iterdir()):
                text = path.read_text().split("-----BEGIN")[0].strip()
                files[f"hosts/{path.name}"] = text + "\n(RSA public key)"
            out[node.name] = files
        return out

    # ---- daemons ---------------------------------------------------------------------------

    def start(self) -> None:
        for node in self.nodes.values():
            with (node.confdir / "stdout.log").open("w") as out:
                node.proc = node.host.popen(
                    ["tincd", "-c", str(node.confdir), "-D",
                     f"--pidfile={node.confdir / 'tinc.pid'}", f"--logfile={node.log}"],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                )  # fmt: skip

    def stop(self) -> None:
        """SIGTERM each daemon by its PID, SIGKILL it if it lingers. Idempotent."""
        stop_processes([node.proc for node in self.nodes.values()], STOP_TIMEOUT_S)

    def check_alive(self) -> None:
        for node in self.nodes.values():
            if node.proc is not None and node.proc.poll() is not None:
                raise TincError(
                    f"tincd {node.name} ({self.label}) exited {node.proc.returncode}:\n"
                    f"{node.log_tail()}\n{(node.confdir / 'stdout.log').read_text()[-500:]}"
                )

    def dump(self, node: TincNode) -> dict[str, dict[str, Any]]:
        """The node's view of every node (SIGUSR2 makes tinc 1.0 log its node list)."""
        if node.proc is None or node.pid is None:
            return {}
        before = self._log_text(node).count("End of nodes.")
        node.proc.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + DUMP_TIMEOUT_S
        while time.monotonic() < deadline:
            text = self._log_text(node)
            if text.count("End of nodes.") > before:
                block = text.rsplit("Nodes:", 1)[-1].split("End of nodes.", 1)[0]
                views = {}
                for match in _NODE.finditer(block):
                    view: dict[str, Any] = match.groupdict()
                    for key in ("cipher", "digest", "maclength", "compression", "pmtu", "min",
                                "max"):  # fmt: skip
                        view[key] = int(view[key])
                    view["cipher_name"] = CIPHERS.get(view["cipher"], str(view["cipher"]))
                    view["digest_name"] = DIGESTS.get(view["digest"], str(view["digest"]))
                    views[view.pop("name")] = view
                return views
            time.sleep(0.05)
        return {}

    @staticmethod
    def _log_text(node: TincNode) -> str:
        try:
            return node.log.read_text(errors="replace")
        except OSError:
            return ""

    def wait_ping(self, src: TincNode, dst: TincNode, timeout: float = READY_TIMEOUT_S) -> float:
        """Until src pings dst over the tunnel; the seconds it took."""
        start = time.monotonic()
        while True:
            self.check_alive()
            proc = src.host.run(["ping", "-n", "-c", "1", "-W", "1", dst.ip], timeout=10)
            if proc.returncode == 0:
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise TincError(
                    f"tinc {self.label}: {src.name} cannot ping {dst.name} ({dst.ip}) after "
                    f"{timeout:g} s\n--- {src.name}:\n{src.log_tail()}\n--- {dst.name}:\n"
                    f"{dst.log_tail()}"
                )
            time.sleep(0.3)

    def wait_pmtu(
        self, pairs: list[tuple[str, str]], timeout: float = PMTU_TIMEOUT_S
    ) -> dict[str, Any]:
        """Until each (node, peer) pair's path MTU is fixed (the node's dump of the peer
        says min == max), at most `timeout` s: until then tinc sends every packet above
        the MTU it has confirmed over TCP, which is not the steady state a user measures.
        Returns every node's dump and whether the pairs settled."""
        start = time.monotonic()
        while True:
            self.check_alive()
            dumps = {name: self.dump(node) for name, node in self.nodes.items()}
            settled = all(
                peer in dumps[name] and dumps[name][peer]["min"] == dumps[name][peer]["max"] > 0
                for name, peer in pairs
            )
            took = time.monotonic() - start
            if settled or took > timeout:
                return {"settled": settled, "seconds": round(took, 1), "nodes": dumps}
            time.sleep(1.0)
