"""The daemon: one sans-IO `Node` driven by real sockets, a clock and the control API.

The pipeline, in both directions:

1. a UDP datagram or TCP record arrives -> `node.receive_datagram(data, endpoint, now)`,
   a run of UDP datagrams from one source (a GRO read, or consecutive reads) ->
   `node.receive_datagrams(datagrams, endpoint, now)`;
   an ICMP "fragmentation needed" / "packet too big" for one of our UDP datagrams
   (udp.py reads them off the socket's error queue) -> `node.path_mtu_hint(...)`;
   once the node has authenticated a packet from a TCP link, TcpLinks is told, and stops
   treating that link as a stranger's (tcp.py);
   the frames the host sends into a network's TAP -> `node.receive_frames(nwid, frames,
   now)` (networks.py), a batch per wakeup;
2. every TICK_S the tick loop calls `node.tick(now)`, then pushes whatever the local
   controller changed (approvals, deauthorizations) to the members concerned;
3. API calls (`echo`, `join`, `leave`, ...) call the node the same way;
4. whatever effects any of those return are executed at once, in order, by `_execute`,
   one `match` over the Effect union that ends in `assert_never`, so an effect added to
   proto/effects.py and forgotten here fails type-checking instead of being dropped:
   Send/SendMany -> UDP socket (GSO) or TCP link, Deliver -> the deliveries queue,
   EchoReply/EchoFailed -> the waiting `echo()` future, OpenTcp/CloseTcp -> TcpLinks,
   Event -> EventBus + log, the PortEffects (Open/Configure/ClosePort, DeliverFrame(s))
   -> the TAP devices, ConfigRequest/PathReportIn -> the controller (networks.py has
   that glue).

What the daemon is started with (DaemonConfig) and the steps of coming up (binding,
sharing the control socket with a group, the "started" log line) are in startup.py.

Every node hosts a controller (`<home>/controller.db`), so any node can create networks.
Joined networks and their local settings are kept in `<home>/networks.json` and joined
again at start.

The UDP sockets and the TAPs below it are opened through factories in the config, so
tests can put doubles there: `config.udp_factory` is a BindOpener (udp_contract:
UdpSockets.open, or testing.fakebind's LossyBindFactory().open), `config.tap_factory` a
TapOpener (tap_contract: TapDevice.open, or lab.memtap's MemoryTapFactory().open).

Everything runs on one event loop thread, so the node is never entered concurrently and
needs no locks. A node exception is a bug, but one bad packet must not take the daemon
down: calls into the node are guarded, counted and logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import assert_never

from overlay_core.api.events import EventBus
from overlay_core.api.schema import EventJson
from overlay_core.api.server import ApiError, ApiServer
from overlay_core.controller import Controller
from overlay_core.proto.effects import (
    ClosePort,
    CloseTcp,
    ConfigRequest,
    ConfigurePort,
    Deliver,
    DeliverFrame,
    DeliverFrames,
    EchoFailed,
    EchoReply,
    Effect,
    Endpoint,
    Event,
    NetworkStatus,
    NodeStatus,
    OpenPort,
    OpenTcp,
    PathReportIn,
    PeerStatus,
    Send,
    SendMany,
    Transport,
    udp,
)
from overlay_core.proto.identity import Identity, format_address
from overlay_core.proto.netcheck import NetcheckReport
from overlay_core.proto.netcheck import netcheck as node_netcheck
from overlay_core.proto.netconf import format_nwid
from overlay_core.proto.node import TICK_S, Node, NodeConfig
from overlay_core.proto.roots import RootEntry
from overlay_core.proto.vnet import NetworkSettings

from .eventlimit import EventLimiter
from .home import Home, HomeError
from .hooks import HookRunner
from .interfaces import (
    interface_addresses,
    interface_mtus,
    parse_networks,
    phys_mtu_from,
    select_advertised,
)
from .networks import ControllerLink, NetworkPorts, NodeCall, load_joined, save_joined
from .ratelog import RateLimitedLog
from .roots_live import LiveRoots
from .startup import DaemonConfig, StartupError, open_sockets, share_with_group, started_line
from .tap import TapCounters
from .tcp import TCP_LOG_INTERVAL_S, TcpLinks
from .udp_contract import BindError, BindLike, IcmpError

log = logging.getLogger(__name__)

ADVERTISE_REFRESH_S = 30.0  # interfaces change (DHCP, Wi-Fi roaming); re-read them this often
DELIVERIES_KEPT = 1024
NODE_ERRORS_LOGGED = 20  # full tracebacks for the first few, then only the counter


class Daemon:
    """A running node. `await start()`, then use the helpers below, then `await stop()`."""

    def __init__(self, config: DaemonConfig, *, clock: Callable[[], float] = time.time) -> None:
        config.check()
        self.config = config
        self._clock = clock
        self.home = Home(config.home)
        try:
            self.identity: Identity = self.home.load_or_create_identity()
            self.authtoken: str = self.home.load_or_create_authtoken()
            self._advertise = parse_networks(config.advertise) if config.advertise else None
            self._joined: dict[int, NetworkSettings] = load_joined(self.home)
        except (HomeError, ValueError) as exc:
            raise StartupError(str(exc)) from None
        self.address: int = self.identity.address
        self.node: Node | None = None
        self.events = EventBus(clock)  # GET /events streams it; see overlay_core.api.events
        self._event_limit = EventLimiter()  # events (and their log lines) by kind
        self.deliveries: asyncio.Queue[Deliver] = asyncio.Queue(DELIVERIES_KEPT)
        self.counters: Counter[str] = Counter()
        self._udp: BindLike | None = None
        self._tcp = TcpLinks(self._on_datagram, self._on_tcp_up, self._on_tcp_down)
        # Remote peers decide how often their TCP links drop: log those at a bounded rate.
        self._tcp_log = RateLimitedLog(log, TCP_LOG_INTERVAL_S)
        self._api: ApiServer | None = None
        self._tick_task: asyncio.Task[None] | None = None
        self._echo_waiters: dict[int, asyncio.Future[EchoReply]] = {}
        self.ports = NetworkPorts(config.tap_factory, self._drive, config.offload != "off")
        self._controller: ControllerLink | None = None
        self.member_hook = HookRunner(config.on_member_request)  # its counters: io_counters
        self._last_advertise_refresh = 0.0
        # GET/PUT /roots: new roots for the running node, saved for the next start.
        self.live_roots = LiveRoots(self.home, config, self._running_node, self._drive, clock)

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        return self._tick_task is not None

    @property
    def udp_port(self) -> int:
        if self._udp is None:
            raise RuntimeError("the daemon is not started")
        return self._udp.port

    @property
    def control_socket_path(self) -> Path:
        return self.home.control_socket_path

    @property
    def api_tcp_port(self) -> int | None:
        return None if self._api is None else self._api.tcp_port

    async def start(self) -> None:
        """Bind sockets, start the node, serve the API. Raises StartupError (one line)."""
        if self.running:
            return
        try:
            self._open_controller()
            self._udp = await open_sockets(
                self.config, self._tcp, self._on_udp_error, self._on_datagrams
            )
            node = Node(self.identity, self._node_config())
            self.node = node
            if self.config.api_unix or self.config.api_tcp_port is not None:
                self._api = ApiServer(self, self.authtoken)
                unix_path = self.control_socket_path if self.config.api_unix else None
                await self._api.start(unix_path, self.config.api_tcp_port)
                if unix_path is not None and self.config.api_group is not None:
                    share_with_group(self.home.path, unix_path, self.config.api_group)
        except StartupError:
            await self.stop()
            raise
        except (BindError, ApiError) as exc:
            await self.stop()
            raise StartupError(str(exc)) from None
        except OSError as exc:
            await self.stop()
            raise StartupError(f"cannot start: {exc.strerror or exc}") from None
        self._execute(self._guard(node.start, self._clock()))
        for nwid, settings in self._joined.items():
            self._execute(self._guard(node.join, nwid, self._clock(), settings))
        self._tick_task = asyncio.create_task(self._tick_loop(), name="node-tick")
        log.info("%s", self._started_line())

    async def stop(self) -> None:
        """Stop everything start() began; idempotent, and safe after a failed start."""
        task, self._tick_task = self._tick_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for future in self._echo_waiters.values():
            future.cancel()
        self._echo_waiters.clear()
        self.events.close()  # open /events streams end now, so the API stops without waiting
        if self._api is not None:
            await self._api.stop()
            self._api = None
        await self._tcp.close()
        if self._udp is not None:
            self._udp.close()
            self._udp = None
            await asyncio.sleep(0)  # transports release their sockets on the next turn
        await self.ports.close()
        await self.member_hook.close()
        link, self._controller = self._controller, None
        if link is not None:
            link.controller.close()

    def _open_controller(self) -> None:
        try:
            controller = Controller(self.identity, self.home.controller_db_path)
        except Exception as exc:  # sqlite3.Error, StoreError: a one-line reason either way
            raise StartupError(f"cannot open {self.home.controller_db_path}: {exc}") from None
        self._controller = ControllerLink(
            controller, self._drive, self.events, on_member_request=self.member_hook.run
        )

    def _node_config(self) -> NodeConfig:
        return NodeConfig(
            is_root=self.config.is_root,
            roots=list(self.config.roots),
            local_endpoints=self._local_endpoints(),
            phys_mtu=phys_mtu_from(interface_mtus()),
            force_tcp=self.config.tcp_fallback == "force",
            tcp_fallback=self.config.tcp_fallback != "off",
            partial_csum=self.config.offload != "off",
        )

    def _local_endpoints(self) -> list[Endpoint]:
        assert self._udp is not None
        addresses = select_advertised(
            interface_addresses(),
            self.config.binds,
            self._advertise,
            ipv6=self._udp.has_ipv6,
        )
        return [udp(address, self._udp.port) for address in addresses]

    def _started_line(self) -> str:
        assert self._udp is not None
        api = self._api
        endpoints = (None, None) if api is None else (api.unix_path, api.tcp_port)
        address = self.identity.address_text
        return started_line(address, self.config, self._udp, endpoints, self.member_hook.enabled)

    def root_entry(self, hosts: Iterable[str] = ("127.0.0.1",)) -> RootEntry:
        """This node's line for a roots file, at `hosts` on the bound UDP port."""
        endpoints = tuple(udp(host, self.udp_port) for host in hosts)
        return RootEntry(self.identity.public(), endpoints)

    # ------------------------------------------------------------------ the node loop

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += TICK_S
            delay = next_at - loop.time()
            if delay < 0:  # fell behind (a long GC, a busy loop): skip, don't burst
                next_at = loop.time()
                delay = 0
            await asyncio.sleep(delay)
            node = self.node
            if node is None:
                continue
            now = self._clock()
            if now - self._last_advertise_refresh >= ADVERTISE_REFRESH_S:
                self._last_advertise_refresh = now
                node.set_local_endpoints(self._local_endpoints())
                node.set_phys_mtu(phys_mtu_from(interface_mtus()))
            self._execute(self._guard(node.tick, now))
            if self._controller is not None:
                self._controller.push(now)

    def _on_datagram(self, data: bytes, source: Endpoint) -> None:
        node = self.node
        if node is None:
            return
        self._execute(self._guard(node.receive_datagram, data, source, self._clock()))
        # A TCP link is a stranger's until the node has authenticated a packet from it
        # (tcp.py holds strangers to a deadline and small records); asked only until then.
        if (
            source.transport is Transport.TCP
            and not self._tcp.is_authenticated(source)
            and node.authenticated_from(source)
        ):
            self._tcp.authenticated(source)

    def _on_datagrams(self, datagrams: list[bytes], source: Endpoint) -> None:
        """A run of UDP datagrams from one source (a GRO read, or consecutive reads)."""
        node = self.node
        if node is None:
            return
        if len(datagrams) == 1:
            self._on_datagram(datagrams[0], source)
        else:
            self._execute(self._guard(node.receive_datagrams, datagrams, source, self._clock()))

    def _on_udp_error(self, error: IcmpError) -> None:
        """An ICMP error for one of our datagrams (udp.py, already counted by kind). A
        smaller path MTU goes to the node at once; time exceeded and unreachable ones feed
        hole punching's hop trace and relay reasons (proto/punch.py)."""
        node = self.node
        if node is None:
            return
        now = self._clock()
        if error.kind == "mtu" and error.mtu is not None:
            self._execute(self._guard(node.path_mtu_hint, error.endpoint, error.mtu, now))
        elif error.kind in ("ttl_exceeded", "port_unreachable", "unreachable"):
            icmp = node.icmp_error
            self._execute(self._guard(icmp, error.kind, error.endpoint, error.offender, now))

    def _on_tcp_up(self, endpoint: Endpoint) -> None:
        log.info("TCP fallback connected to %s", endpoint)
        if self.node is not None:
            self._execute(self._guard(self.node.tcp_up, endpoint, self._clock()))

    def _on_tcp_down(self, endpoint: Endpoint) -> None:
        self._tcp_log.info("down", "TCP link %s closed", endpoint)
        if self.node is not None:
            self._execute(self._guard(self.node.tcp_down, endpoint, self._clock()))

    def _drive(self, call: NodeCall) -> None:
        """Call into the node from the network glue (TAP frames, controller answers)."""
        node = self.node
        if node is not None:
            self._execute(self._guard(call, node, self._clock()))

    def _guard(self, call: Callable[..., list[Effect]], *args: object) -> list[Effect]:
        try:
            return call(*args)
        except Exception:
            self.counters["node_errors"] += 1
            if self.counters["node_errors"] <= NODE_ERRORS_LOGGED:
                log.exception("node.%s failed", getattr(call, "__name__", "call"))
            return []

    def _execute(self, effects: list[Effect]) -> None:
        for effect in effects:
            match effect:
                case Send(endpoint, data, ttl):
                    self._send(endpoint, data, ttl)
                case SendMany(endpoint, datagrams):
                    self._send_many(endpoint, datagrams)
                case Deliver():
                    self._deliver(effect)
                case EchoReply(echo_id=echo_id):
                    if (future := self._echo_waiter(echo_id)) is not None:
                        future.set_result(effect)
                case EchoFailed(echo_id=echo_id, reason=reason):
                    if (future := self._echo_waiter(echo_id)) is not None:
                        future.set_exception(LookupError(reason))
                case OpenTcp(endpoint):
                    if self.config.tcp_fallback != "off":
                        self._tcp.want(endpoint)
                case CloseTcp(endpoint):
                    self._tcp.unwant(endpoint)
                case OpenPort() | ConfigurePort() | ClosePort() | DeliverFrame() | DeliverFrames():
                    self.ports.handle(effect)
                case ConfigRequest():
                    if self._controller is not None:
                        self._controller.answer(effect, self._clock())
                case PathReportIn():
                    if self._controller is not None:
                        self._controller.report(effect, self._clock())
                case Event():
                    self._event(effect)
                case _:
                    assert_never(effect)

    def _echo_waiter(self, echo_id: int) -> asyncio.Future[EchoReply] | None:
        """The `echo()` still waiting for `echo_id`'s answer, no longer listed; None if
        it has given up (timed out, or the daemon is stopping)."""
        future = self._echo_waiters.pop(echo_id, None)
        return future if future is not None and not future.done() else None

    def _event(self, effect: Event) -> None:
        admitted = self._event_limit.admit(effect, self._clock())
        if admitted is None:
            self.counters["events_suppressed"] += 1
            return
        self.events.publish_effect(admitted)
        log.info("%s: %s", admitted.kind, admitted.message)

    def _send(self, endpoint: Endpoint, data: bytes, ttl: int | None = None) -> None:
        if endpoint.transport is Transport.TCP:
            self._tcp.send(endpoint, data)
        elif self._udp is not None:
            self._udp.send(endpoint, data, ttl)

    def _send_many(self, endpoint: Endpoint, datagrams: list[bytes]) -> None:
        if endpoint.transport is Transport.TCP:
            for data in datagrams:
                self._tcp.send(endpoint, data)
        elif self._udp is not None:
            self._udp.send_many(endpoint, datagrams)

    def _deliver(self, delivered: Deliver) -> None:
        try:
            self.deliveries.put_nowait(delivered)
        except asyncio.QueueFull:
            self.counters["deliveries_dropped"] += 1

    # ------------------------------------------------------------------ for the API

    def _running_node(self) -> Node:
        if self.node is None:
            raise RuntimeError("the daemon is not started")
        return self.node

    def status(self) -> NodeStatus:
        return self._running_node().snapshot(self._clock())

    def peers(self) -> list[PeerStatus]:
        return self.status().peers

    def peer(self, address: int) -> PeerStatus | None:
        text = format_address(address)
        return next((p for p in self.peers() if p.address == text), None)

    def io_counters(self) -> dict[str, int]:
        merged: Counter[str] = Counter(self.counters)
        if self._udp is not None:
            merged.update(self._udp.counters)
        merged.update(self._tcp.counters)
        merged.update(self.member_hook.counters)
        merged.update(self.ports.counters)  # port_errors, port_clashes, ...
        if self._controller is not None:  # config_replies, reports_kept, reports_stale, ...
            merged.update(self._controller.counters)
        return dict(merged)

    def netcheck(self) -> NetcheckReport:
        """GET /netcheck: reachability, NAT and roots as the node sees them now."""
        port = self._udp.port if self._udp is not None else None  # the NAT may keep it
        return node_netcheck(self._running_node(), self._clock(), local_port=port)

    def recent_events(self) -> list[EventJson]:
        return self.events.recent()

    def retry_direct(self, address: int) -> None:
        """Punch again at once (KeyError for a peer this node doesn't know)."""
        node = self._running_node()
        self._execute(node.retry_direct(address, self._clock()))

    def probe_mtu(self, address: int) -> None:
        """Search every live direct path's MTU again (KeyError for an unknown peer)."""
        node = self._running_node()
        self._execute(node.probe_mtu(address, self._clock()))

    async def echo(self, address: int, timeout_s: float) -> EchoReply | None:
        """One overlay echo to `address`; the reply, or None after `timeout_s`.

        Raises LookupError when the roots answer that no node has that address."""
        node = self._running_node()
        if address == self.address:
            raise ValueError("cannot echo this node itself")
        future: asyncio.Future[EchoReply] = asyncio.get_running_loop().create_future()
        try:
            echo_id, effects = node.echo(address, self._clock())
        except Exception:
            self.counters["node_errors"] += 1
            log.exception("node.echo failed")
            raise
        self._echo_waiters[echo_id] = future
        try:
            self._execute(effects)
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            return None
        finally:
            self._echo_waiters.pop(echo_id, None)

    async def send_user_data(self, address: int, payload: bytes) -> None:
        """Send `payload` to `address` over the overlay (USER_DATA); fire and forget."""
        node = self._running_node()
        self._execute(self._guard(node.send_user_data, address, payload, self._clock()))

    async def receive_user_data(self, timeout_s: float | None = None) -> Deliver:
        """The next delivered user data; raises TimeoutError after `timeout_s`."""
        return await asyncio.wait_for(self.deliveries.get(), timeout_s)

    # ------------------------------------------------------------------ networks

    def now(self) -> float:
        return self._clock()

    @property
    def controller(self) -> Controller:
        if self._controller is None:
            raise RuntimeError("the daemon is not started")
        return self._controller.controller

    def networks(self) -> list[NetworkStatus]:
        return self.status().networks

    def network(self, nwid: int) -> NetworkStatus | None:
        text = format_nwid(nwid)
        return next((n for n in self.networks() if n.nwid == text), None)

    def network_settings(self, nwid: int) -> NetworkSettings | None:
        """The local settings of a joined network, as kept in networks.json."""
        return self._joined.get(nwid)

    def join(self, nwid: int, settings: NetworkSettings | None = None) -> bool:
        """Join `nwid` (or, if joined, apply `settings` when given); True if it is new."""
        node = self._running_node()
        new = nwid not in self._joined
        if not new and settings is None:
            return False
        settings = settings or NetworkSettings()
        self._joined[nwid] = settings
        self._execute(self._guard(node.join, nwid, self._clock(), settings))
        self._save_joined()
        return new

    def leave(self, nwid: int) -> bool:
        """Leave `nwid`: its TAP closes and it is not joined again at start. False if it
        was not joined."""
        node = self._running_node()
        if self._joined.pop(nwid, None) is None:
            return False
        self._execute(self._guard(node.leave, nwid, self._clock()))
        self._save_joined()
        return True

    def set_network_settings(self, nwid: int, settings: NetworkSettings) -> None:
        """Raises KeyError for a network this node has not joined."""
        node = self._running_node()
        if nwid not in self._joined:
            raise KeyError(nwid)
        self._joined[nwid] = settings
        self._execute(self._guard(node.set_network_settings, nwid, settings))
        self._save_joined()

    def port_device(self, nwid: int) -> str | None:
        return self.ports.device(nwid)

    def port_counters(self, nwid: int) -> TapCounters | None:
        return self.ports.tap_counters(nwid)

    def _save_joined(self) -> None:
        try:
            save_joined(self.home, self._joined)
        except HomeError as exc:
            # The change holds until the daemon restarts; say so where the admin looks.
            self.counters["networks_save_errors"] += 1
            self._event(Event("network", f"not saved, lost at restart: {exc}"))
