"""The network controller: SQLite store, member approval, IP pools, signed configs.

controller = Controller(identity_with_secret, db_path(home))
network = controller.create_network("home", pools=["10.147.17.0/24"], now=now)
outcome = controller.answer_request(nwid, member_identity, version=..., physical=...,
                                   now=now)  # .reply: bytes (signed config) or Denied
controller.authorize(nwid, address, now)             # NotAskedError unless it asked (force=)
for nwid in controller.take_dirty():                 # on the node's tick
    for address in controller.members_to_notify(nwid):
        push(address, controller.build_config(nwid, address, now))
"""

from overlay_core.proto.netconf import ValidationError

from .controller import REQUEST_SILENCE_S, Controller
from .pools import PoolsFullError
from .records import (
    ConfigReply,
    Denied,
    MemberRecord,
    NetworkRecord,
    NotAskedError,
    NotFoundError,
    RequestOutcome,
)
from .store import Store, StoreError, db_path

__all__ = [
    "REQUEST_SILENCE_S",
    "ConfigReply",
    "Controller",
    "Denied",
    "MemberRecord",
    "NetworkRecord",
    "NotAskedError",
    "NotFoundError",
    "PoolsFullError",
    "RequestOutcome",
    "Store",
    "StoreError",
    "ValidationError",
    "db_path",
]
