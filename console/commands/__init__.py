"""`ztui` subcommands by role: networks.py (this node's memberships: networks, join,
leave, set) and controller.py (networks this node hosts: net, members, approve, deauth,
member). Each module adds its parsers with `add_parsers` and maps names to handlers;
common.py holds what they share. console/cli.py assembles them."""
