"""What a request may carry, and the bounds on each value: one list for the daemon, the
console's forms and the console's fake node, so a limit is written once.

The protocol keeps its own copies where it checks the same things in configs it receives
(overlay_core/proto/netfields.py: MIN_MTU ... MAX_MULTICAST_LIMIT), because proto may not
import the API; tests/daemon/test_api_parity.py holds the two equal.
"""

from __future__ import annotations

# --------------------------------------------------------------------------- node addresses

ADDRESS_HEX_DIGITS = 10
NWID_HEX_DIGITS = 16
NWID_SHAPE_REASON = "a network id is 16 hex digits"
_HEX = frozenset("0123456789abcdef")


def format_address(address: int) -> str:
    return f"{address:0{ADDRESS_HEX_DIGITS}x}"


def check_address_text(text: str) -> str:
    """Normalise a typed address to 10 lowercase hex digits, or raise ValueError saying why.

    Only the shape is checked here (the console cannot import the protocol); the daemon
    additionally rejects reserved addresses with `proto.identity.parse_address`, and so
    does `check_path_address`.
    """
    norm = text.strip().lower()
    if len(norm) != ADDRESS_HEX_DIGITS or not _HEX.issuperset(norm):
        raise ValueError(f"an address is {ADDRESS_HEX_DIGITS} hex digits, got {text!r}")
    return norm


def check_path_address(text: str) -> str:
    """An address in a request path: the shape, and not a reserved one (0 means nobody; a
    first byte of ff marks a fragment on the wire), in the words of proto's parse_address."""
    norm = check_address_text(text)
    if norm == "0" * ADDRESS_HEX_DIGITS or norm.startswith("ff"):
        raise ValueError(f"address {norm} is reserved")
    return norm


def check_nwid_text(text: str) -> str:
    """Normalise a typed network id to 16 lowercase hex digits, or raise ValueError.

    The message is exactly NWID_SHAPE_REASON, the same words the daemon answers with, so
    a typo reads the same whether the console or the daemon caught it.
    """
    norm = text.strip().lower()
    if len(norm) != NWID_HEX_DIGITS or not _HEX.issuperset(norm):
        raise ValueError(NWID_SHAPE_REASON)
    return norm


# --------------------------------------------------------------------------- numbers

MIN_MTU = 1280  # IPv6 minimum link MTU
MAX_MTU = 9000  # jumbo frames
MIN_MSS = 536  # RFC 9293 default MSS; clamping below it breaks hosts that assume it
MAX_MSS = MAX_MTU - 40  # IPv4 and TCP headers without options: an MSS past it is moot
MAX_NAME_CHARS = 64
MAX_MULTICAST_LIMIT = 4096
MAX_NETWORK_NUMBER = 0xFFFFFF  # the last 6 hex digits of a network id
MAX_PATHS_LIMIT = 1_000_000  # GET .../paths?limit=: pairs; 1,000 members make 499,500
MAX_EVENT_ID_DIGITS = 18  # ?since=: ids are counted from 1 per daemon run
ECHO_TIMEOUT_DEFAULT_S = 2.0
ECHO_TIMEOUT_MAX_S = 30.0
# The largest useful body is a controller network's settings, and everything those become
# fits in one signed config of at most proto.netconf.MAX_CONFIG_BYTES (16 KiB): 64 KiB is
# ample, and keeps what one request can make the daemon hold (and json.loads chew) small.
MAX_BODY_BYTES = 64 * 1024

# The rules as the API words them after the field's name ("mtu: must be 1280-9000").
MTU_RULE = f"must be {MIN_MTU}-{MAX_MTU}"
MSS_RULE = f'must be "off", "auto" or a number {MIN_MSS}-{MAX_MSS}'  # a member's setting
NETWORK_MSS_RULE = f'must be "off", "auto" or "fixed:N" with N {MIN_MSS}-{MAX_MSS}'
NAME_RULE = f"must be text of at most {MAX_NAME_CHARS} characters"
MULTICAST_LIMIT_RULE = f"must be 0-{MAX_MULTICAST_LIMIT}"
NUMBER_RULE = f"must be 0-{MAX_NETWORK_NUMBER}"
PATHS_LIMIT_RULE = f"must be 0-{MAX_PATHS_LIMIT}"
FLAG_RULE = "must be true or false"

# --------------------------------------------------------------------------- body fields

# A joined network's local settings (POST and PATCH /networks/{nwid}).
SETTING_FLAGS = ("allow_managed", "allow_global", "allow_default", "report")
SETTING_KEYS = (*SETTING_FLAGS, "mtu", "mss")
# A hosted network's settings (POST and PATCH /controller/networks...); POST also "number".
NETWORK_FIELDS = (
    *("name", "private", "pools", "routes", "mtu", "mss", "broadcast"),
    *("multicast_limit", "rules", "presets"),
)
NETWORK_LIST_FIELDS = ("pools", "routes", "rules", "presets")
# A member (PATCH .../members/{address}); "force" is a flag of the request, not stored.
MEMBER_FIELDS = ("authorized", "name", "ips", "active_bridge")
MEMBER_REQUEST_FIELDS = (*MEMBER_FIELDS, "force")
ECHO_FIELDS = ("timeout_s",)
ROOTS_FIELD = "roots"  # PUT /roots: {"roots": "<roots file text>"}
