"""NIC profiles (key length, RETA size, field selection) and the DPDK 22.11 ``rss_hf`` masks.

Which fields a NIC can hash for IPv4 TCP/UDP packets (facts from the DPDK 22.11 drivers):

* ``ixgbe`` (82599/X540): no field selection. TCP/UDP packets hash the full 4-tuple, so a key that
  must ignore a field has to be built with zeros where that field's windows meet the RETA-index bits.
* ``ice`` (E810) and ``i40e`` (X710): ``RTE_ETH_RSS_L3_*_ONLY`` / ``L4_*_ONLY`` act through
  ``rte_flow`` RSS action rules (ice's port-level ``rss_conf.rss_hf`` ignores them), one rule per
  pattern, see ``flow_rule_types``. In those drivers an L3 flag without an L4 flag drops both ports
  and an L4 flag without an L3 flag drops both addresses; types ``RTE_ETH_RSS_IPV4`` on a TCP/UDP
  pattern hash the two addresses only. Reachable: one or both addresses without ports, one address
  with one port, one port alone, and the full 4-tuple. Not reachable: both addresses with one port,
  one address with both ports, both ports without addresses.
* ``mlx5`` (ConnectX-5/6): the flags act on ``rss_conf.rss_hf`` too and each only narrows its own
  layer; an IPv4 type always hashes at least one address. Reachable: any non-empty set of addresses
  with any set of ports; never ports alone.

The fields a NIC hashes are packed in hash-input order (``explorer.rss.hash_input``); nfx assumes this of
every driver, which is why generated code must check the hardware hash against ``rte_softrss`` at
start-up.

What each driver's ``rte_flow`` parser accepts in an RSS action (``RssActionRules``, from the DPDK
22.11 sources; ``rss_action_problems`` checks an action against them):

* ``ice`` (``drivers/net/ice/ice_hash.c``, ``ice_hash_parse_action``): no key (``key_len`` 0: the key is
  the port's, set with ``rte_eth_dev_rss_hash_update``), ``level`` 0, no queue list (``queue`` NULL),
  priority 0; ``RTE_ETH_RSS_IPV4`` never with ``NONFRAG_IPV4_TCP``/``UDP`` in one rule; an ``L3_*_ONLY``
  flag needs an IPv4 type and an ``L4_*_ONLY`` flag a TCP/UDP type; types within what the pattern
  allows; the symmetric function takes no ``*_ONLY`` flag. ``RTE_ETH_RSS_FRAG_IPV4`` is accepted on
  every IPv4 pattern but misapplied for nfx: ``ice_refine_hash_cfg_l234`` then matches fragments
  only (``ICE_FLOW_SEG_HDR_IPV_FRAG`` for ``IPV_OTHER``) and adds the IPv4 identification to the
  hashed fields, which no plan's hash input has. Without it, "eth / ipv4" with ``RTE_ETH_RSS_IPV4``
  (``IPV4 | IPV_OTHER``) takes every outer IPv4 packet type, fragments and ICMP included, that no
  TCP/UDP rule takes. Its port-level ``flow_type_rss_offloads``
  (``ICE_RSS_OFFLOAD_ALL``) has no ``*_ONLY`` flag, so ethdev refuses them in ``rss_conf.rss_hf``.
* ``i40e`` (``drivers/net/i40e/i40e_hash.c``, ``i40e_hash_parse``): ``level`` 0, exactly one action, no
  queue list with a pattern, items without spec/mask/last; a ``key_len`` other than 52 silently loads
  the driver's default key, and 52 reprograms the port's key (so give none); the first rule turns
  off the port-level hashing of every packet type that no rule names. Its port-level types
  (``I40E_RSS_OFFLOAD_ALL``) have no ``RTE_ETH_RSS_IPV4`` (``FRAG_IPV4`` and ``NONFRAG_IPV4_OTHER``
  instead), and its TCP/UDP types hash the whole 4-tuple, so every plan but the 4-tuple's takes
  rules there (``NicProfile.port_rss_hf``, ``NicProfile.flow_rules``).
* ``mlx5`` (``drivers/net/mlx5/mlx5_flow.c``, ``mlx5_flow_validate_action_rss``): Toeplitz only, ``level``
  at most 1, ``key_len`` 0 or 40, at least one queue; nfx selects mlx5's fields through
  ``rss_conf.rss_hf`` instead, where its ``*_ONLY`` flags are accepted.
* ``ixgbe``: no field selection; nfx adds no rule.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterable, Optional, Union

from explorer.errors import ConfigError, ShardingError
from explorer.rss.hash_input import FIELD_NAMES, L3_FIELDS, L4_FIELDS, canonical_fields

# Values from DPDK 22.11's rte_ethdev.h (tests compile a C file against the installed headers to
# confirm them).
RSS_HF_BITS: dict[str, int] = {
    "RTE_ETH_RSS_IPV4": 1 << 2,
    "RTE_ETH_RSS_FRAG_IPV4": 1 << 3,
    "RTE_ETH_RSS_NONFRAG_IPV4_TCP": 1 << 4,
    "RTE_ETH_RSS_NONFRAG_IPV4_UDP": 1 << 5,
    "RTE_ETH_RSS_NONFRAG_IPV4_SCTP": 1 << 6,
    "RTE_ETH_RSS_NONFRAG_IPV4_OTHER": 1 << 7,
    "RTE_ETH_RSS_PORT": 1 << 18,
    "RTE_ETH_RSS_L4_DST_ONLY": 1 << 60,
    "RTE_ETH_RSS_L4_SRC_ONLY": 1 << 61,
    "RTE_ETH_RSS_L3_DST_ONLY": 1 << 62,
    "RTE_ETH_RSS_L3_SRC_ONLY": 1 << 63,
}
_FLAG_OF = {"src_ip": "RTE_ETH_RSS_L3_SRC_ONLY", "dst_ip": "RTE_ETH_RSS_L3_DST_ONLY",
            "src_port": "RTE_ETH_RSS_L4_SRC_ONLY", "dst_port": "RTE_ETH_RSS_L4_DST_ONLY"}
_TCP_UDP = RSS_HF_BITS["RTE_ETH_RSS_NONFRAG_IPV4_TCP"] | RSS_HF_BITS["RTE_ETH_RSS_NONFRAG_IPV4_UDP"]
_L3_FLAGS = RSS_HF_BITS["RTE_ETH_RSS_L3_SRC_ONLY"] | RSS_HF_BITS["RTE_ETH_RSS_L3_DST_ONLY"]

_L4_FLAGS = RSS_HF_BITS["RTE_ETH_RSS_L4_SRC_ONLY"] | RSS_HF_BITS["RTE_ETH_RSS_L4_DST_ONLY"]
ONLY_FLAGS = _L3_FLAGS | _L4_FLAGS

# How each driver narrows the hashed fields (see the module docstring).
_SELECTION_STYLE = {"ixgbe": "none", "ice": "intel", "i40e": "intel", "mlx5": "per-layer"}

# rte_flow hash functions (enum rte_eth_hash_function in rte_flow.h).
HASH_FUNCTIONS = {"DEFAULT": 0, "TOEPLITZ": 1, "SIMPLE_XOR": 2, "SYMMETRIC_TOEPLITZ": 3}
PATTERNS = ("eth / ipv4 / tcp", "eth / ipv4 / udp", "eth / ipv4")


def _mask(*names: str) -> int:
    return sum(RSS_HF_BITS[f"RTE_ETH_RSS_{n}"] for n in names)


@dataclass(frozen=True)
class RssActionRules:
    """What a driver's rte_flow parser accepts in an RSS action (DPDK 22.11, see the module docstring)."""

    source: str  # where the rules come from: "drivers/net/ice/ice_hash.c (ice_hash_parse_action)"
    key_lengths: tuple[int, ...]  # key_len values it accepts without doing something else with them
    max_level: int
    queues: str  # "refused" (queue must be NULL) or "required" (queue_num >= 1)
    functions: tuple[str, ...]  # HASH_FUNCTIONS names
    pattern_types: tuple[tuple[str, int], ...]  # pattern -> the RSS types a rule on it may name
    no_ipv4_with_l4: bool  # ice: IPV4 and NONFRAG_IPV4_TCP/UDP never in one rule
    one_action: bool  # i40e: the RSS action and END, nothing else
    bare_items: bool  # i40e: pattern items without spec, mask or last
    frag_hashes_id: bool = False  # ice: FRAG_IPV4 narrows the rule to fragments and hashes their IPv4 ID

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "key_lengths": list(self.key_lengths), "max_level": self.max_level,
                "queues": self.queues, "functions": list(self.functions),
                "pattern_types": {p: t for p, t in self.pattern_types}}


_ICE_RULES = RssActionRules(
    "drivers/net/ice/ice_hash.c (ice_hash_parse_action, ice_any_invalid_rss_type)", (0,), 0, "refused",
    ("DEFAULT", "TOEPLITZ", "SYMMETRIC_TOEPLITZ"),
    (("eth / ipv4 / tcp", _mask("IPV4", "FRAG_IPV4", "NONFRAG_IPV4_TCP") | ONLY_FLAGS),
     ("eth / ipv4 / udp", _mask("IPV4", "FRAG_IPV4", "NONFRAG_IPV4_UDP") | ONLY_FLAGS),
     ("eth / ipv4", _mask("IPV4", "FRAG_IPV4") | _L3_FLAGS)),
    no_ipv4_with_l4=True, one_action=False, bare_items=False, frag_hashes_id=True)
_I40E_RULES = RssActionRules(
    "drivers/net/i40e/i40e_hash.c (i40e_hash_parse, i40e_hash_parse_pattern_act)", (0,), 0, "refused",
    ("DEFAULT", "TOEPLITZ", "SIMPLE_XOR", "SYMMETRIC_TOEPLITZ"),
    (("eth / ipv4 / tcp", _mask("IPV4", "NONFRAG_IPV4_TCP", "PORT") | ONLY_FLAGS),
     ("eth / ipv4 / udp", _mask("IPV4", "NONFRAG_IPV4_UDP", "PORT") | ONLY_FLAGS),
     ("eth / ipv4", _mask("IPV4", "FRAG_IPV4", "NONFRAG_IPV4_OTHER") | _L3_FLAGS)),
    no_ipv4_with_l4=False, one_action=True, bare_items=True)
_MLX5_RULES = RssActionRules(
    "drivers/net/mlx5/mlx5_flow.c (mlx5_flow_validate_action_rss)", (0, 40), 1, "required",
    ("DEFAULT", "TOEPLITZ"),
    tuple((p, _mask("IPV4", "FRAG_IPV4", "NONFRAG_IPV4_TCP", "NONFRAG_IPV4_UDP", "NONFRAG_IPV4_OTHER")
           | ONLY_FLAGS) for p in PATTERNS),
    no_ipv4_with_l4=False, one_action=False, bare_items=False)


@dataclass(frozen=True)
class NicProfile:
    name: str  # "e810"
    driver: str  # DPDK driver: "ice", "i40e", "mlx5", "ixgbe"
    key_bytes: int
    reta_size: int
    field_selection: bool  # whether the NIC can hash a subset of the 4-tuple
    reta_sizes: tuple[int, ...]  # RETA sizes the driver accepts
    model: str = ""
    selection_api: str = ""  # where *_ONLY flags take effect: "rte_flow", "rss_conf" or "" (nowhere)
    dpdk_driver: str = ""  # rte_eth_dev_info.driver_name of its ports: "net_ice"
    rss_action: Optional[RssActionRules] = None  # what its rte_flow parser accepts in an RSS action
    rss_queues: int = 0  # the most queues its RSS spreads over, when fewer than its RETA entries (0: none fewer)

    @property
    def max_cores(self) -> int:
        """The most cores RSS can feed: one queue per core, each named by a RETA entry."""
        return min(self.reta_size, self.rss_queues or self.reta_size)

    @property
    def index_bits(self) -> int:
        """Hash bits that index the RETA: log2(reta_size)."""
        return self.reta_size.bit_length() - 1

    def with_reta_size(self, size: int) -> "NicProfile":
        if size not in self.reta_sizes:
            raise ConfigError(f"{self.name} ({self.driver}) supports RETA sizes "
                              f"{', '.join(map(str, self.reta_sizes))}, not {size}")
        return replace(self, reta_size=size)

    def can_hash(self, fields: Iterable[str]) -> bool:
        """Whether the NIC can hash exactly ``fields`` of IPv4 TCP/UDP packets."""
        names = canonical_fields(fields)
        if not names:
            return True  # RSS off: every packet to RETA entry 0
        l3 = [f for f in names if f in L3_FIELDS]
        l4 = [f for f in names if f in L4_FIELDS]
        style = _SELECTION_STYLE[self.driver]
        if style == "none":
            return names == FIELD_NAMES
        if style == "per-layer":
            return bool(l3)
        # intel: an L3 flag alone drops the ports, an L4 flag alone drops the addresses.
        if not l3:
            return len(l4) == 1
        if not l4:
            return True
        return len(l3) == len(l4)

    def select_fields(self, wanted: Iterable[str]) -> tuple[str, ...]:
        """The smallest field set the NIC can hash that contains ``wanted`` (the key must then make
        the extra fields irrelevant); all four when nothing is wanted, for the best spread."""
        names = canonical_fields(wanted)
        if not names:
            return FIELD_NAMES
        candidates = []
        for mask in range(1, 16):
            chosen = tuple(f for i, f in enumerate(FIELD_NAMES) if mask >> i & 1)
            if set(names) <= set(chosen) and self.can_hash(chosen):
                candidates.append(chosen)
        return min(candidates, key=lambda c: (len(c), [FIELD_NAMES.index(f) for f in c]))

    def port_rss_hf(self, mask: int) -> int:
        """The ``rss_conf.rss_hf`` a port of this NIC is programmed with for a plan's ``mask``.

        Where flow rules select the fields (ice, i40e) the ``*_ONLY`` flags stay out of it (ethdev
        refuses them there). i40e's port-level types have no ``RTE_ETH_RSS_IPV4``
        (``I40E_RSS_OFFLOAD_ALL``: ethdev refused every plan): its packet types for IPv4 frames
        without ports are ``FRAG_IPV4`` and ``NONFRAG_IPV4_OTHER``, hashed on the addresses."""
        if self.selection_api == "rte_flow":
            mask &= ~ONLY_FLAGS
        ipv4 = RSS_HF_BITS["RTE_ETH_RSS_IPV4"]
        if self.driver == "i40e" and mask & ipv4:
            mask = mask & ~ipv4 | _mask("FRAG_IPV4", "NONFRAG_IPV4_OTHER")
        return mask

    def flow_rules(self, mask: int) -> tuple[tuple[str, int], ...]:
        """The RSS flow rules (pattern, types) a port of this NIC needs for a plan's ``mask`` beside
        its port-level ``port_rss_hf``: on ice, those that select fields (``*_ONLY`` flags); on
        i40e, also those of a plan that hashes TCP/UDP on the addresses alone, as its port-level
        TCP/UDP types hash the whole 4-tuple (their default input set)."""
        if self.selection_api != "rte_flow" or not mask:
            return ()
        if mask & ONLY_FLAGS or (self.driver == "i40e" and mask != rss_hf(FIELD_NAMES, self).mask):
            return flow_rule_types(mask)
        return ()

    def portless_fields(self, fields: Iterable[str]) -> tuple[str, ...]:
        """What the NIC hashes of an IPv4 frame without TCP/UDP ports (a fragment, ICMP, another
        protocol) on a port programmed to hash ``fields`` of TCP/UDP frames.

        Such frames fall under the ``RTE_ETH_RSS_IPV4`` type every hashing plan carries, with the
        plan's ``L3_*_ONLY`` flag: on ice and i40e that is the "eth / ipv4" rule of
        ``flow_rule_types`` (ice: ``ICE_FLOW_SEG_HDR_IPV_OTHER`` takes every outer IPv4 packet
        type a TCP/UDP rule does not, fragments included; i40e: packet types ``FRAG_IPV4`` and
        ``NONF_IPV4_OTHER``). A plan that hashes ports alone has no L3 flag, so those frames hash
        both addresses there, not nothing."""
        names = canonical_fields(fields)
        if not names:
            return ()
        if self.selection_api == "rte_flow" and self.can_hash(names):
            rules = dict(self.flow_rules(rss_hf(names, self).mask))
            if rules:
                return hashed_fields(rules["eth / ipv4"], "eth / ipv4")
        return tuple(f for f in names if f in L3_FIELDS) or L3_FIELDS

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "driver": self.driver, "model": self.model, "key_bytes": self.key_bytes,
                "reta_size": self.reta_size, "reta_sizes": list(self.reta_sizes),
                "field_selection": self.field_selection, "selection_api": self.selection_api,
                "max_cores": self.max_cores,
                "dpdk_driver": self.dpdk_driver,
                "rss_action": self.rss_action.to_dict() if self.rss_action else None}


PROFILES: dict[str, NicProfile] = {
    p.name: p
    for p in (
        NicProfile("e810", "ice", 52, 512, True, (128, 512, 2048), "Intel E810", "rte_flow", "net_ice", _ICE_RULES),
        # The i40e PF's traffic class 0 takes at most I40E_MAX_Q_PER_TC (64) queues
        # (i40e_vsi_config_tc_queue_mapping), and RSS spreads over that class alone: a RETA entry naming
        # queue 64 or more is cut to the class's queue bits by the NIC.
        NicProfile("x710", "i40e", 52, 512, True, (128, 512), "Intel X710/XL710", "rte_flow", "net_i40e",
                   _I40E_RULES, rss_queues=64),
        NicProfile("cx5", "mlx5", 40, 512, True, (64, 128, 256, 512), "NVIDIA ConnectX-5/6", "rss_conf", "mlx5_pci",
                   _MLX5_RULES),
        # 82599/X540 RETA entries hold 4 bits: RSS spreads over 16 queues (Linux's IXGBE_MAX_RSS_INDICES); a
        # larger queue number in the RETA is cut to its low bits by the NIC, silently sending packets elsewhere.
        NicProfile("82599", "ixgbe", 40, 128, False, (128,), "Intel 82599/X540", "", "net_ixgbe", rss_queues=16),
    )
}


def nic_profile(name: str) -> NicProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(f"unknown NIC profile {name!r} (expected one of {', '.join(PROFILES)})") from None


@dataclass(frozen=True)
class RssHf:
    """An ``rss_hf`` mask and its ``RTE_ETH_RSS_*`` names (by increasing bit) for generated C."""

    mask: int
    names: tuple[str, ...]

    @property
    def c_expression(self) -> str:
        return " | ".join(self.names) if self.names else "0"


def rss_hf(fields: Iterable[str], nic: Union[NicProfile, str] = "e810") -> RssHf:
    """The mask that makes ``nic`` hash exactly ``fields`` of IPv4 TCP/UDP packets.

    ``RTE_ETH_RSS_IPV4`` alone hashes addresses only, also of TCP/UDP packets; the TCP/UDP types add
    the ports; one ``*_ONLY`` flag per layer where one field of the layer is wanted. Raises
    ShardingError when the NIC cannot hash exactly those fields (see ``NicProfile.select_fields``).
    """
    profile = nic if isinstance(nic, NicProfile) else nic_profile(nic)
    names = canonical_fields(fields)
    if not profile.can_hash(names):
        raise ShardingError(f"{profile.name} ({profile.driver}) cannot hash exactly {', '.join(names)} of "
                            f"TCP/UDP packets; the nearest it can is {', '.join(profile.select_fields(names))}")
    if not names:
        return RssHf(0, ())
    chosen = ["RTE_ETH_RSS_IPV4"]
    if any(f in L4_FIELDS for f in names):
        chosen += ["RTE_ETH_RSS_NONFRAG_IPV4_TCP", "RTE_ETH_RSS_NONFRAG_IPV4_UDP"]
    for layer in (L3_FIELDS, L4_FIELDS):
        picked = [f for f in names if f in layer]
        if len(picked) == 1:
            chosen.append(_FLAG_OF[picked[0]])
    chosen.sort(key=RSS_HF_BITS.__getitem__)
    mask = 0
    for name in chosen:
        mask |= RSS_HF_BITS[name]
    return RssHf(mask, tuple(chosen))


def flow_rule_types(mask: int) -> tuple[tuple[str, int], ...]:
    """For drivers whose field selection needs ``rte_flow`` (ice, i40e): the RSS action ``types`` of
    one rule per pattern, since ice rejects ``IPV4`` together with ``NONFRAG_IPV4_TCP`` in one rule and
    an ``L4_*_ONLY`` flag on a pattern without L4. Non-TCP/UDP IPv4 packets hash their addresses.

    "eth / ipv4" comes first: on ice its profile (``IPV4 | IPV_OTHER``) takes every outer IPv4 packet
    type, TCP and UDP included, and the TCP/UDP profiles added after it take their packet types
    back, the order ice's own port-level setup (``ice_rss_hash_set``) adds them in; created last, it
    could leave TCP/UDP hashed on its fields. i40e's rules name disjoint packet types."""
    ipv4 = RSS_HF_BITS["RTE_ETH_RSS_IPV4"]
    rules = [("eth / ipv4", mask & (ipv4 | _L3_FLAGS))] if mask else []
    for pattern, l4_type in (("eth / ipv4 / tcp", RSS_HF_BITS["RTE_ETH_RSS_NONFRAG_IPV4_TCP"]),
                             ("eth / ipv4 / udp", RSS_HF_BITS["RTE_ETH_RSS_NONFRAG_IPV4_UDP"])):
        if mask & l4_type:
            rules.append((pattern, (mask & ~(ipv4 | _TCP_UDP)) | l4_type))
        elif mask:
            rules.append((pattern, mask & (ipv4 | _L3_FLAGS)))
    return tuple(rules)


@dataclass(frozen=True)
class RssAction:
    """An rte_flow rule with one RSS action, as the generated program builds it (the fields the drivers'
    parsers look at; a C test prints them from the real structs)."""

    pattern: str  # one of PATTERNS
    func: int  # HASH_FUNCTIONS value
    level: int
    types: int
    key_len: int
    key_set: bool  # key != NULL
    queue_num: int
    queue_set: bool  # queue != NULL
    priority: int = 0
    ingress: bool = True
    items_bare: bool = True  # no item has spec, mask or last
    actions: int = 1  # actions before END


def _names_of(mask: int) -> str:
    return " | ".join(n for n, b in sorted(RSS_HF_BITS.items(), key=lambda kv: kv[1]) if mask & b) or "0"


def rss_action_problems(profile: Union[NicProfile, str], action: RssAction) -> tuple[str, ...]:
    """Why ``profile``'s driver would refuse (or misapply) ``action``; empty when it takes it."""
    nic = profile if isinstance(profile, NicProfile) else nic_profile(profile)
    rules = nic.rss_action
    who = f"{nic.driver} ({nic.name})"
    if rules is None:
        return (f"{who} selects no fields through rte_flow: nfx adds no rule for it",)
    problems = []
    function = {v: k for k, v in HASH_FUNCTIONS.items()}.get(action.func, str(action.func))
    if function not in rules.functions:
        problems.append(f"{who} refuses hash function {function}")
    if action.level > rules.max_level:
        problems.append(f"{who} refuses RSS level {action.level} (at most {rules.max_level})")
    if action.key_len not in rules.key_lengths or action.key_set != (action.key_len != 0):
        problems.append(f"{who} refuses an RSS key_len of {action.key_len} with {'a' if action.key_set else 'no'} "
                        f"key (it takes key_len {' or '.join(map(str, rules.key_lengths))}; the port's key is set "
                        "with rte_eth_dev_rss_hash_update)")
    if rules.queues == "refused" and (action.queue_set or action.queue_num):
        problems.append(f"{who} refuses a queue list in an RSS action with a pattern")
    if rules.queues == "required" and action.queue_num == 0:
        problems.append(f"{who} needs a queue list in an RSS action")
    if not action.ingress or action.priority != 0:
        problems.append(f"{who} takes hash rules on ingress, priority 0")
    if rules.one_action and action.actions != 1:
        problems.append(f"{who} takes exactly one action in a hash rule")
    if rules.bare_items and not action.items_bare:
        problems.append(f"{who} refuses pattern items with spec, mask or last in a hash rule")
    allowed = dict(rules.pattern_types).get(action.pattern)
    if allowed is None:
        problems.append(f"{who}: no hash rule for pattern {action.pattern!r}")
        return tuple(problems)
    types = action.types
    if types & ~allowed:
        problems.append(f"{who} refuses types {_names_of(types & ~allowed)} on pattern {action.pattern}")
    if rules.no_ipv4_with_l4 and types & RSS_HF_BITS["RTE_ETH_RSS_IPV4"] and types & _TCP_UDP:
        problems.append(f"{who} refuses RTE_ETH_RSS_IPV4 together with a TCP/UDP type in one rule")
    if types & _L3_FLAGS and not types & (_mask("IPV4", "FRAG_IPV4", "NONFRAG_IPV4_OTHER") | _TCP_UDP):
        problems.append(f"{who} refuses an L3_*_ONLY flag without an IPv4 type")
    if types & _L4_FLAGS and not types & (_TCP_UDP | _mask("PORT")):
        problems.append(f"{who} refuses an L4_*_ONLY flag without a TCP/UDP type")
    if rules.frag_hashes_id and types & RSS_HF_BITS["RTE_ETH_RSS_FRAG_IPV4"]:
        problems.append(f"{who} takes RTE_ETH_RSS_FRAG_IPV4 but then hashes fragments alone, with their IPv4 "
                        "identification, which the plan's hash input does not have")
    if function == "SYMMETRIC_TOEPLITZ" and types & ONLY_FLAGS:
        problems.append(f"{who} refuses *_ONLY flags with the symmetric Toeplitz function")
    return tuple(problems)


def hashed_fields(types: int, pattern: str) -> tuple[str, ...]:
    """The fields an Intel (ice, i40e) hash rule on ``pattern`` with RSS ``types`` hashes, in hash-input
    order: what the drivers' input-set refinement leaves (an L3 flag alone drops the ports, an L4 flag
    alone the addresses, a TCP/UDP type is needed for ports at all)."""
    l4 = pattern != "eth / ipv4" and bool(types & _TCP_UDP)
    addresses = ["src_ip", "dst_ip"]
    ports = ["src_port", "dst_port"] if l4 else []
    l3_flags, l4_flags = types & _L3_FLAGS, types & _L4_FLAGS
    if l3_flags == RSS_HF_BITS["RTE_ETH_RSS_L3_SRC_ONLY"]:
        addresses = ["src_ip"]
    elif l3_flags == RSS_HF_BITS["RTE_ETH_RSS_L3_DST_ONLY"]:
        addresses = ["dst_ip"]
    if ports and l4_flags == RSS_HF_BITS["RTE_ETH_RSS_L4_SRC_ONLY"]:
        ports = ["src_port"]
    elif ports and l4_flags == RSS_HF_BITS["RTE_ETH_RSS_L4_DST_ONLY"]:
        ports = ["dst_port"]
    if ports and l3_flags and not l4_flags:
        ports = []
    if ports and l4_flags and not l3_flags:
        addresses = []
    return tuple(addresses + ports)
