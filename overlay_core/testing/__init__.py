"""Test doubles and rigs that ship beside the real code.

`netns` builds real network namespaces (an "internet", public hosts, NATed home sites) for
the system tests and for `ztui demo`. It needs root and iproute2/iptables; importing it does
not, so this package stays importable everywhere.
"""
