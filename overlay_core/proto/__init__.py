"""The sans-IO overlay protocol: identities, packets, sessions, paths, the node state machine.

Nothing in this package reads a clock, opens a socket or draws randomness except through an
injected source. The public surface used by `overlay_core.io`:

    identity = Identity.generate()                       # or Identity.from_text(...)
    node = Node(identity, NodeConfig(roots=..., is_root=...))
    effects = node.start(now)
    effects = node.receive_datagram(data, Endpoint, now)
    effects = node.tick(now)                             # call every TICK_S
    effects = node.send_user_data(address, payload, now)
    echo_id, effects = node.echo(address, now)
    effects = node.tcp_up(endpoint, now) / node.tcp_down(endpoint, now)
    status = node.snapshot(now)                          # plain NodeStatus dataclass
"""
