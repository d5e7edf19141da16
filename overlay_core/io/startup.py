"""How a daemon comes up: what it is started with, and the steps before the node runs.

`DaemonConfig` is everything `overlayd` (io/cli.py), the lab's loopback overlays and the
tests start a Daemon with; `check()` refuses modes it does not know. Then, in `Daemon.start`:

1. `open_sockets` binds the UDP socket(s) and, on a root, the TCP fallback listener on the
   same port number (so leaves need only one number); with port 0 it retries when the
   kernel's pick is taken for TCP;
2. `share_with_group` lets --api-group reach the control socket;
3. `started_line` is the one log line that says what the daemon got: sockets, offloads the
   kernel granted, API endpoints, roots.

Every failure here is a `StartupError` with one line for the operator.
"""

from __future__ import annotations

import grp
import os
from dataclasses import dataclass, field
from pathlib import Path

from overlay_core.api.schema import DEFAULT_UDP_PORT
from overlay_core.proto.effects import udp
from overlay_core.proto.roots import RootEntry

from .tap import TapDevice, TapOpener
from .tcp import TcpLinks
from .udp import UdpSockets
from .udp_contract import BatchHandler, BindLike, BindOpener, ErrorHandler

DEFAULT_BINDS = ("0.0.0.0", "::")
TCP_FALLBACK_MODES = ("auto", "force", "off")
# auto: TAP offloads and UDP GSO/GRO where the kernel has them; tap: TAP offloads, and
# sendmmsg/recvmmsg instead of GSO/GRO (what a kernel before 4.18 can do, e.g. a NAS's 4.4);
# off: one frame per datagram per syscall.
OFFLOAD_MODES = ("auto", "tap", "off")
EPHEMERAL_PORT_TRIES = 5  # port 0 roots also need TCP on the same number; retry if taken


class StartupError(Exception):
    """The daemon could not start; the message is one line for the operator."""


@dataclass(slots=True)
class DaemonConfig:
    home: Path
    port: int = DEFAULT_UDP_PORT
    binds: list[str] = field(default_factory=lambda: list(DEFAULT_BINDS))
    is_root: bool = False
    roots: list[RootEntry] = field(default_factory=list)
    advertise: list[str] | None = None  # CIDRs/IPs; None: every non-loopback address
    tcp_fallback: str = "auto"  # "auto", "force" or "off"
    api_unix: bool = True
    api_tcp_port: int | None = None  # 0 picks a free port; see Daemon.api_tcp_port
    api_group: str | None = None  # a group that may use the control socket
    tap_factory: TapOpener = TapDevice.open  # tests pass MemoryTapFactory().open
    udp_factory: BindOpener = UdpSockets.open  # tests may pass LossyBindFactory().open
    offload: str = "auto"  # one of OFFLOAD_MODES
    on_member_request: str = ""  # a shell command run for each join request (hooks.py)

    def check(self) -> None:
        """StartupError for a mode the daemon does not know (the CLI offers only these)."""
        if self.tcp_fallback not in TCP_FALLBACK_MODES:
            raise StartupError(f"tcp_fallback must be one of {', '.join(TCP_FALLBACK_MODES)}")
        if self.offload not in OFFLOAD_MODES:
            raise StartupError(f"offload must be one of {', '.join(OFFLOAD_MODES)}")


async def open_sockets(
    config: DaemonConfig, tcp: TcpLinks, on_error: ErrorHandler, on_batch: BatchHandler
) -> BindLike:
    """Bind UDP as `config` says; a root also listens for TCP on the same port number."""
    tries = EPHEMERAL_PORT_TRIES if config.port == 0 else 1
    attempt = 1
    while True:
        bound = await config.udp_factory(
            config.binds,
            config.port,
            on_error=on_error,
            on_batch=on_batch,
            offload=config.offload == "auto",
            batch=config.offload != "off",
        )
        if not config.is_root:
            return bound
        # Roots take TCP on their UDP port number, so leaves need only one number.
        tcp_binds = [host for host, _ in bound.local_addresses()]
        try:
            await tcp.serve(tcp_binds, bound.port)
            return bound
        except OSError as exc:
            failure = f"cannot listen on TCP port {bound.port}: {exc.strerror}"
        except BaseException:
            bound.close()
            raise
        bound.close()
        await tcp.close()
        if attempt == tries:
            raise StartupError(failure)
        attempt += 1


def share_with_group(home: Path, socket_path: Path, group: str) -> None:
    """Let `group` reach the control socket: the home directory becomes 0750 and both it
    and the socket belong to the group. Secrets stay 0600, so the group can drive the node
    through the API but never read its keys."""
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise StartupError(f"--api-group {group}: no such group (create it: groupadd {group})")
    try:
        os.chown(home, -1, gid)
        home.chmod(0o750)
        os.chown(socket_path, -1, gid)
    except OSError as exc:
        raise StartupError(f"--api-group {group}: {exc.strerror}") from None


def started_line(
    address: str,
    config: DaemonConfig,
    bound: BindLike,
    api: tuple[Path | None, int | None],
    hook_set: bool,
) -> str:
    """The log line of a started daemon. `api`: its control socket and TCP port, each None
    when not served; `hook_set`: an on-member-request command is set (never shown: it may
    hold a token)."""
    role = "root" if config.is_root else "leaf"
    sockets = ", ".join(str(udp(h, p)) for h, p in bound.local_addresses())
    # What the kernel granted, so a slow NAS says why (a 4.4 kernel: no GSO/GRO).
    granted = [name.upper() for name, on in bound.offloads.items() if on]
    offloads = "+".join(granted) if granted else f"none (--offload {config.offload})"
    parts = [f"overlayd {address} started as {role}", f"UDP {sockets} (offloads: {offloads})"]
    if config.is_root:
        parts.append(f"TCP fallback on port {bound.port}")
    unix_path, tcp_port = api
    if unix_path is not None:
        parts.append(f"API {unix_path}")
    if tcp_port is not None:
        parts.append(f"API 127.0.0.1:{tcp_port} (token)")
    parts.append(f"{len(config.roots)} roots")
    if hook_set:
        parts.append("on-member-request hook set")
    return "; ".join(parts)
