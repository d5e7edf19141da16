"""Fuzz targets for the pure decoders: bytes or untrusted text in, a value or the decoder's
documented error out. What each target pins down is in its docstring; anything else
escaping a target (IndexError, TypeError, RecursionError, OverflowError, a broken
invariant) is a finding.
"""

from __future__ import annotations

import copy
import dataclasses
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import strategies as st

from overlay_core.api.validate import check_mss, settings_from_json
from overlay_core.io.framing import FramingError, RecordDecoder, encode_record
from overlay_core.proto import ethernet, fragment, wire
from overlay_core.proto.ethernet import EthernetFrame, FrameError, IpView
from overlay_core.proto.identity import Identity, parse_address
from overlay_core.proto.mss import clamp_mss, clamp_mss_to_mtu
from overlay_core.proto.netconf import (
    CertificateOfMembership,
    NetconfError,
    NetworkConfig,
    canonical_json,
    parse_nwid,
)
from overlay_core.proto.netfields import (
    MssPolicy,
    ValidationError,
    check_address,
    check_interface,
    check_route,
)
from overlay_core.proto.netrules import PRESETS, Rule, check_presets, check_rules, rules_from_json
from overlay_core.proto.report import SIGN_DOMAIN, PathReport, ReportEntry
from overlay_core.proto.roots import parse_endpoint, parse_roots
from overlay_core.proto.rules import RuleSet
from overlay_core.proto.switch import SwitchTable
from tests.core import frames
from tests.fuzz.harness import ContractError, Registry, datagrams, expect, mutated
from tests.fuzz.seeds import fuzz_world

registry = Registry()
WORLD = fuzz_world()
PACKETS = [s.data for s in WORLD.seeds]
PLAINTEXTS = [s.plaintext[1:] for s in WORLD.seeds if s.plaintext]  # payloads after the verb
FRAMES = [
    *WORLD.frames,
    frames.syn_v4(),
    frames.syn_v6(vlan=7),
    frames.dhcp_discover(frames.HOST_A),
    frames.router_advertisement(frames.HOST_B),
    frames.arp_request(frames.HOST_A, "10.0.0.1", "10.0.0.2"),
]
CONFIG_JSON = NetworkConfig.from_signed_bytes(WORLD.signed_config, WORLD.controller).to_json()
CONTROLLER = WORLD.pristine["ctl"].identity  # holds the secret: signs fuzzed configs
_ROOT = WORLD.pristine["root"].identity
ROOT_LINES = [
    f"{_ROOT.to_public_text()} 198.18.0.10:9993",
    f"{_ROOT.to_public_text()} 198.18.0.10:9993 [2001:db8::1]:9993 # two",
]
IDENTITY_TEXTS = [_ROOT.to_public_text(), CONTROLLER.to_secret_text()]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**400),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["off", "auto", "fixed:1400", "10.0.0.0/24", "10.147.17.5/24", "drop"]),
    st.sampled_from(["fixed:" + "9" * 5000, "9" * 5000]),  # int() refuses > 4300 digits
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
INTERESTING_CHARS = ":#[] \n\t0123456789abcdefABCDEF.-/²١\x00é\ufeff"


@st.composite
def mutated_text(draw: st.DrawFn, seeds: list[str]) -> str:
    text = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, 512)) % (len(text) + 1)
        op = draw(st.integers(0, 3))
        if op == 0:
            text = text[:at] + draw(st.sampled_from(INTERESTING_CHARS)) + text[at + 1 :]
        elif op == 1:
            text = text[:at] + draw(st.text(max_size=8)) + text[at:]
        elif op == 2:
            text = text[:at] + text[at + draw(st.integers(1, 40)) :]
        else:
            text = text[:at]
    return text


@st.composite
def mutated_config(draw: st.DrawFn) -> Any:
    """The real config as JSON, with fields removed or replaced by arbitrary JSON values,
    at the top level or inside members, routes and rules."""
    obj: Any = {k: v for k, v in CONFIG_JSON.items()}
    obj["rules"] = [r.to_json() for r in PRESETS["block-dhcp"]]
    obj["routes"] = [["10.0.0.0/8", None], ["10.1.0.0/16", "10.147.17.1"]]
    obj["member_info"] = [[m[0], "nas", ["10.147.17.5", "fd00::5"]] for m in obj["members"][:1]]
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(sorted(obj)))
        where = draw(st.integers(0, 2))
        if where == 0:
            if draw(st.booleans()):
                obj[key] = draw(json_values)
            else:
                obj.pop(key)
        elif isinstance(obj.get(key), list) and obj[key]:
            items = list(obj[key])
            i = draw(st.integers(0, len(items) - 1))
            item = items[i]
            if isinstance(item, dict) and item:
                item = dict(item)
                item[draw(st.sampled_from(sorted(item)))] = draw(json_values)
            elif isinstance(item, list) and item:
                item = list(item)
                item[draw(st.integers(0, len(item) - 1))] = draw(json_values)
            else:
                item = draw(json_values)
            items[i] = item
            obj[key] = items
    return obj


# --------------------------------------------------------------------------- wire


@registry.add("wire.parse_header", datagrams(PACKETS))
def fuzz_parse_header(data: bytes) -> None:
    """MalformedError, or a Header that packs back to the same 20 bytes; the same for
    parse_cookie_reply, whose cookie is the 16 bytes after the header."""
    with expect(wire.MalformedError):
        header = wire.parse_header(data)
        if header.pack() != data[: wire.HEADER_BYTES]:
            raise ContractError("header does not pack back to its bytes")
    with expect(wire.MalformedError):
        header, cookie = wire.parse_cookie_reply(data)
        if header.cipher is not wire.Cipher.COOKIE or cookie != data[20:36]:
            raise ContractError("cookie reply parsed to something else")


@registry.add("wire.accessors", datagrams(PACKETS).filter(lambda d: len(d) >= wire.HEADER_BYTES))
def fuzz_accessors(data: bytes) -> None:
    """The header accessors a root runs before anything is authenticated are total on any
    datagram the node lets through (>= HEADER_BYTES), and with_hops changes only hops."""
    wire.is_fragment(data)
    wire.dest_of(data)
    wire.source_of(data)
    hops = wire.hops_of(data)
    bumped = wire.with_hops(data, hops + 1)
    if len(bumped) != len(data) or wire.hops_of(bumped) != (hops + 1) & wire.HOPS_MASK:
        raise ContractError("with_hops changed more than the hop count")
    wire.associated_data(data[: wire.HEADER_BYTES])


@registry.add("wire.parse_fragment", datagrams(PACKETS))
def fuzz_parse_fragment(data: bytes) -> None:
    """MalformedError, or numbering 0 < number < total <= 15 and hops <= 7."""
    with expect(wire.MalformedError):
        piece = wire.parse_fragment(data)
        if not (0 < piece.number < piece.total <= wire.MAX_FRAGMENTS and piece.hops <= 7):
            raise ContractError(f"bad fragment accepted: {piece}")


READS = ("u8", "u16", "u32", "u64", "address", "text", "endpoint", "rest", "done", "take")
PAYLOADS = st.one_of(mutated(PLAINTEXTS), st.binary(max_size=80)) if PLAINTEXTS else st.binary()


@registry.add(
    "wire.payloads",
    st.tuples(PAYLOADS, st.lists(st.sampled_from(READS), max_size=12), st.integers(0, 300)),
)
def fuzz_payloads(value: tuple[bytes, list[str], int]) -> None:
    """Reader methods, Hello.parse, Echo.parse and parse_endpoints raise only
    MalformedError, and a Reader never reads past its data."""
    data, reads, n = value
    for parse in (wire.Hello.parse, wire.Echo.parse, wire.parse_endpoints):
        with expect(wire.MalformedError):
            parse(wire.Reader(data))
    reader = wire.Reader(data)
    for name in reads:
        with expect(wire.MalformedError):
            if name == "take":
                reader.take(n)
            else:
                getattr(reader, name)()
        if not 0 <= reader.pos <= len(data):
            raise ContractError(f"reader at {reader.pos} of {len(data)}")


@registry.add(
    "wire.fragment_roundtrip",
    st.tuples(
        st.binary(min_size=wire.HEADER_BYTES + 17, max_size=4000),
        st.integers(wire.FRAGMENT_HEADER_BYTES + 1, 1500),
        st.randoms(use_true_random=False),
    ),
)
def fuzz_fragment_roundtrip(value: tuple[bytes, int, Any]) -> None:
    """fragment_packet's pieces fit the datagram size and, fed to a Reassembler in any
    order with duplicates, give back the packet (FRAGMENTED set on the head) once."""
    packet, size, rnd = value
    # A real packet: no reserved flag bits, and a source that doesn't start with the
    # fragment marker (no address does).
    raw = bytearray(packet)
    raw[13] &= 0x7F
    raw[18] &= 0x37
    packet = bytes(raw)
    with expect(ValueError):
        pieces = wire.fragment_packet(packet, size)
        if any(len(p) > size for p in pieces):
            raise ContractError("a piece is larger than the datagram size")
        if len(pieces) == 1:
            return
        feed = pieces + rnd.sample(pieces, k=min(2, len(pieces)))
        rnd.shuffle(feed)
        reassembler = fragment.Reassembler(Counter())
        done = []
        for piece in feed:
            if wire.is_fragment(piece):
                out = reassembler.add_fragment(wire.parse_fragment(piece), 0.0)
            else:
                out = reassembler.add_head(
                    wire.source_of(piece), int.from_bytes(piece[:8]), piece, 0.0
                )
            if out is not None:
                done.append(out)
        expected = packet[:18] + bytes([packet[18] | wire.FLAG_FRAGMENTED]) + packet[19:]
        if done[:1] != [expected]:
            raise ContractError("reassembly did not give back the packet")


@contextmanager
def small_reassembly_limits() -> Iterator[None]:
    saved = fragment.MAX_PENDING_PACKETS, fragment.MAX_PENDING_BYTES
    fragment.MAX_PENDING_PACKETS, fragment.MAX_PENDING_BYTES = 4, 600
    try:
        yield
    finally:
        fragment.MAX_PENDING_PACKETS, fragment.MAX_PENDING_BYTES = saved


reassembly_ops = st.lists(
    st.one_of(
        st.tuples(st.just("head"), st.integers(1, 3), st.integers(0, 5), st.binary(max_size=300)),
        st.tuples(
            st.just("fragment"), st.integers(1, 3), st.integers(0, 5), st.binary(max_size=300)
        ),
        st.tuples(st.just("expire"), st.floats(0, 5)),
    ),
    max_size=30,
)


@registry.add("fragment.reassembler", reassembly_ops)
def fuzz_reassembler(ops: list[tuple[Any, ...]]) -> None:
    """Any sequence of heads, fragments (through parse_fragment) and expiries: no error
    but MalformedError, at most MAX_PENDING_PACKETS entries and MAX_PENDING_BYTES bytes
    held (shrunk to 4 and 600 here so a short run reaches them), and the byte count
    matches what the entries hold."""
    drops: Counter[str] = Counter()
    now = 0.0
    with small_reassembly_limits():
        reassembler = fragment.Reassembler(drops)
        for op in ops:
            if op[0] == "expire":
                now += op[1]
                reassembler.expire(now)
                continue
            _, source, packet_id, body = op
            if op[0] == "head":
                reassembler.add_head(source, packet_id, body, now)
            else:
                head = packet_id.to_bytes(8, "big") + bytes(5) + b"\xff" + source.to_bytes(5, "big")
                with expect(wire.MalformedError):
                    reassembler.add_fragment(wire.parse_fragment(head + body), now)
            held = sum(e.size for e in reassembler._pending.values())
            if (
                reassembler.pending_packets > fragment.MAX_PENDING_PACKETS
                or reassembler.pending_bytes > fragment.MAX_PENDING_BYTES
                or held != reassembler.pending_bytes
            ):
                raise ContractError(
                    f"reassembly holds {reassembler.pending_packets} packets, "
                    f"{reassembler.pending_bytes} bytes (entries: {held})"
                )


# --------------------------------------------------------------------------- netconf


@registry.add("netconf.certificate", st.one_of(mutated([WORLD.com]), st.binary(max_size=100)))
def fuzz_certificate(data: bytes) -> None:
    """CertificateOfMembership.from_bytes: a NetconfError, or a COM that encodes back."""
    with expect(NetconfError):
        com = CertificateOfMembership.from_bytes(data)
        com.verify(WORLD.controller)
        if com.to_bytes() != data:
            raise ContractError("certificate does not encode back to its bytes")


def _nested(depth: int) -> bytes:
    return b'{"v":' + b"[" * depth + b"]" * depth + b"}"


signed_bodies = st.one_of(
    mutated([canonical_json(CONFIG_JSON)]),
    mutated_config().map(lambda o: canonical_json(o)),
    json_values.map(lambda o: canonical_json(o)),
    st.integers(1, 5000).map(_nested),
)


@registry.add(
    "netconf.signed_config",
    st.one_of(
        mutated([WORLD.signed_config]),
        signed_bodies.map(lambda body: body + CONTROLLER.sign(b"ztui-netconf-v1\x00" + body)),
    ),
)
def fuzz_signed_config(data: bytes) -> None:
    """NetworkConfig.from_signed_bytes raises only NetconfError, for any bytes and for any
    body the controller really signed (mutated configs, arbitrary and deeply nested JSON)."""
    with expect(NetconfError):
        NetworkConfig.from_signed_bytes(data, WORLD.controller)


@registry.add("netconf.from_json", mutated_config())
def fuzz_config_from_json(obj: Any) -> None:
    """NetworkConfig.from_json on the real config with fields broken: NetconfError only,
    and what it accepts encodes back to JSON it accepts again."""
    with expect(NetconfError):
        config = NetworkConfig.from_json(obj)
        if NetworkConfig.from_json(config.to_json()) != config:
            raise ContractError("config does not survive to_json/from_json")


@registry.add("netconf.fields", st.tuples(json_values, mutated_text(["10.0.0.0/24", "fixed:1400"])))
def fuzz_fields(value: tuple[Any, str]) -> None:
    """The field checks shared by configs and the controller API raise only their
    ValidationError, for any JSON value or text; parse_nwid a ValueError."""
    obj, text = value
    for arg in (obj, text):
        with expect(ValueError):
            parse_nwid(arg)
    for check in (
        MssPolicy.parse,
        check_route,
        lambda v: check_interface(v, "f"),
        lambda v: check_address(v, "f"),
        rules_from_json,
        check_rules,
        check_presets,
        lambda v: Rule.from_json(v),
    ):
        for arg in (obj, text, [obj], {"action": "drop", "ip_protocol": obj}):
            with expect(ValidationError):
                check(arg)


_REPORTER = WORLD.pristine["a"].identity  # holds the secret: signs fuzzed report bodies
_REPORT_BODY = PathReport(
    WORLD.nwid,
    _REPORTER.address,
    3,
    60,
    "unknown",
    True,
    False,
    "fuzz",
    tuple(ReportEntry(0x1000000000 + i, "RELAY", "relay", "filtered", i / 3) for i in range(3)),
).body()


@registry.add(
    "report.from_signed",
    st.one_of(
        mutated([_REPORT_BODY]).map(lambda b: b + _REPORTER.sign(SIGN_DOMAIN + b)),
        mutated([_REPORT_BODY + _REPORTER.sign(SIGN_DOMAIN + _REPORT_BODY)]),
        st.binary(max_size=200),
    ),
)
def fuzz_path_report(data: bytes) -> None:
    """PathReport.from_signed: MalformedError only, even for bodies the member really
    signed; what it accepts, signed again, reads back the same (not byte for byte: codes
    and flag bits it does not know read as the first word and are dropped)."""
    with expect(wire.MalformedError):
        report = PathReport.from_signed(data, _REPORTER.public())
        if PathReport.from_signed(report.sign(_REPORTER), _REPORTER.public()) != report:
            raise ContractError("path report does not survive sign/from_signed")


# --------------------------------------------------------------------------- frames

FRAMES_IN = st.one_of(mutated(FRAMES), st.binary(max_size=120))


@registry.add("ethernet.parse", st.tuples(FRAMES_IN, st.integers(0, (1 << 64) - 1)))
def fuzz_ethernet(value: tuple[bytes, int]) -> None:
    """EthernetFrame.parse and IpView.parse raise only FrameError, and their offsets stay
    inside the frame; address_from_mac never raises."""
    frame, nwid = value
    ethernet.address_from_mac(nwid, frame[:6])
    ethernet.address_from_mac(WORLD.nwid, frame[6:12])
    with expect(FrameError):
        eth = EthernetFrame.parse(frame)
        view = IpView.parse(frame, eth)
        if not view.end <= len(frame) or (view.l4_offset is not None and view.l4_offset > view.end):
            raise ContractError(f"IP view outside the frame: {view}")


@registry.add("ethernet.parse_mac", mutated_text(["02:ab:cd:ef:01:23", "02-AB-CD-EF-01-23"]))
def fuzz_parse_mac(text: str) -> None:
    """parse_mac: ValueError, or 6 bytes that format back to the same MAC."""
    with expect(ValueError):
        mac = ethernet.parse_mac(text)
        if ethernet.parse_mac(ethernet.format_mac(mac)) != mac:
            raise ContractError("MAC does not survive format/parse")


rule_fields = st.fixed_dictionaries(
    {"action": st.sampled_from(["accept", "drop"])},
    optional={
        "ethertype": st.sampled_from([0x0800, 0x86DD, 0x0806, 0x8100]),
        "ip_protocol": st.sampled_from([1, 6, 17, 58, 132]),
        "src_ports": st.tuples(st.integers(0, 65535), st.integers(0, 65535)).map(sorted),
        "dst_ports": st.tuples(st.integers(0, 65535), st.integers(0, 65535)).map(sorted),
        "icmp_type": st.integers(0, 255),
    },
)


def _rule(obj: dict[str, Any]) -> Rule | None:
    try:
        return Rule.from_json(obj)
    except ValueError:
        return None


@registry.add(
    "rules.evaluate",
    st.tuples(FRAMES_IN, st.lists(rule_fields.map(_rule), max_size=5), st.booleans()),
)
def fuzz_rules(value: tuple[bytes, list[Rule | None], bool]) -> None:
    """RuleSet.evaluate never raises for any frame: it returns None or the index of a
    drop rule, whose counter went up by one."""
    frame, maybe_rules, presets = value
    rules = [r for r in maybe_rules if r is not None]
    if presets:
        rules = [*PRESETS["block-dhcp"], *PRESETS["block-ra"], *rules]
    ruleset = RuleSet(rules)
    index = ruleset.evaluate(frame)
    if index is not None and (rules[index].action != "drop" or ruleset.counters[index] != 1):
        raise ContractError(f"rule {index} reported but not a counted drop")


@registry.add(
    "mss.clamp",
    st.tuples(FRAMES_IN, st.integers(1, 0xFFFF), st.integers(-10, 10000)),
)
def fuzz_mss(value: tuple[bytes, int, int]) -> None:
    """clamp_mss and clamp_mss_to_mtu never raise for a valid limit; a clamped frame has
    the same length and differs in at most the MSS value and the TCP checksum."""
    frame, mss, mtu = value
    for out in (clamp_mss(frame, mss), clamp_mss_to_mtu(frame, mtu)):
        if len(out) != len(frame) or sum(a != b for a, b in zip(out, frame, strict=True)) > 4:
            raise ContractError("clamping changed more than the MSS option and checksum")


@registry.add(
    "vnet.clamp",
    st.tuples(
        FRAMES_IN,
        st.sampled_from(["off", "auto", "fixed:536", "fixed:1400", "fixed:8960"]),
        st.one_of(st.none(), st.integers(0, 10000)),
        st.one_of(st.none(), st.integers(1280, 9000)),
    ),
)
def fuzz_vnet_clamp(value: tuple[bytes, str, int | None, int | None]) -> None:
    """Network.clamp, which every frame to or from a TAP goes through, never raises for
    any frame, MSS policy, path MTU (a tiny one included) and network MTU, and keeps the
    frame's length."""
    frame, policy, path_mtu, mtu = value
    network = copy.deepcopy(WORLD.pristine["a"].memberships.networks[WORLD.nwid])
    network.settings = dataclasses.replace(network.settings, mss=policy, mtu=mtu)
    if len(network.clamp(frame, path_mtu)) != len(frame):
        raise ContractError("clamping changed the frame's length")


addresses = st.sampled_from(sorted(WORLD.addresses.values()))


@registry.add(
    "switch.table",
    st.lists(
        st.tuples(FRAMES_IN, addresses, st.sets(addresses), st.sets(addresses), st.floats(0, 10)),
        max_size=10,
    ),
)
def fuzz_switch(steps: list[tuple[bytes, int, set[int], set[int], float]]) -> None:
    """SwitchTable.accept and route never raise on any frame, route only names members,
    and the learned table stays within its limit."""
    table = SwitchTable(WORLD.nwid, limit=3)
    now = 0.0
    for frame, sender, members, bridges, dt in steps:
        now += dt
        table.accept(sender, frame, members | {sender}, bridges, now)
        targets = table.route(frame, now, members, bridges, sender, 8)
        if not set(targets) <= members or len(table) > 3:
            raise ContractError(f"route {targets} outside members or table of {len(table)}")


# --------------------------------------------------------------------------- streams, text

RECORDS = [encode_record(p) for p in PACKETS[:20]]


@registry.add(
    "framing.record_decoder",
    st.tuples(
        st.one_of(mutated([b"".join(RECORDS)]), st.binary(max_size=200)),
        st.lists(st.integers(1, 400), max_size=10),
    ),
)
def fuzz_record_decoder(value: tuple[bytes, list[int]]) -> None:
    """RecordDecoder.feed, with the stream cut anywhere: records are non-empty and within
    the limit, and their framing is a prefix of the stream; FramingError only, and once
    raised it keeps being raised."""
    stream, cuts = value
    decoder = RecordDecoder(max_record_bytes=2000)
    pos, got = 0, []
    for cut in [*cuts, len(stream)]:
        chunk, pos = stream[pos : pos + cut], pos + cut
        try:
            got += decoder.feed(chunk)
        except FramingError as exc:
            got += exc.records
            try:
                decoder.feed(b"\x00\x01x")
            except FramingError:
                break
            raise ContractError("decoder accepted bytes after a framing error") from None
    framed = b"".join(encode_record(r) for r in got)
    if any(not 0 < len(r) <= 2000 for r in got) or not stream.startswith(framed):
        raise ContractError("records do not match the stream")


@registry.add("roots.parse_roots", mutated_text([*ROOT_LINES, "\n".join(ROOT_LINES)]))
def fuzz_parse_roots(text: str) -> None:
    """parse_roots and parse_endpoint raise only ValueError for any text."""
    with expect(ValueError):
        parse_roots(text)
    for word in text.split()[1:3]:
        with expect(ValueError):
            parse_endpoint(word)


@registry.add("identity.from_text", mutated_text(IDENTITY_TEXTS))
def fuzz_identity_text(text: str) -> None:
    """Identity.from_text and parse_address raise only ValueError for any text."""
    with expect(ValueError):
        Identity.from_text(text)
    with expect(ValueError):
        parse_address(text[:12])


settings_bodies = st.one_of(
    json_values,
    st.dictionaries(
        st.sampled_from(["allow_managed", "allow_global", "allow_default", "mtu", "mss", "x"]),
        st.one_of(json_values, mutated_text(["fixed:1400", "1400", "auto"])),
    ),
)


@registry.add("api.settings_from_json", settings_bodies)
def fuzz_settings(body: Any) -> None:
    """settings_from_json and check_mss raise only ValidationError for any JSON body."""
    with expect(ValidationError):
        settings_from_json(body)
    if isinstance(body, dict):
        for value in body.values():
            with expect(ValidationError):
                check_mss(value)
