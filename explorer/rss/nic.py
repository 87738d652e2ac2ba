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
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterable, Union

from explorer.errors import ConfigError, ShardingError
from explorer.rss.hash_input import FIELD_NAMES, L3_FIELDS, L4_FIELDS, canonical_fields

# Values from DPDK 22.11's rte_ethdev.h (tests compile a C file against the installed headers to
# confirm them).
RSS_HF_BITS: dict[str, int] = {
    "RTE_ETH_RSS_IPV4": 1 << 2,
    "RTE_ETH_RSS_NONFRAG_IPV4_TCP": 1 << 4,
    "RTE_ETH_RSS_NONFRAG_IPV4_UDP": 1 << 5,
    "RTE_ETH_RSS_L4_DST_ONLY": 1 << 60,
    "RTE_ETH_RSS_L4_SRC_ONLY": 1 << 61,
    "RTE_ETH_RSS_L3_DST_ONLY": 1 << 62,
    "RTE_ETH_RSS_L3_SRC_ONLY": 1 << 63,
}
_FLAG_OF = {"src_ip": "RTE_ETH_RSS_L3_SRC_ONLY", "dst_ip": "RTE_ETH_RSS_L3_DST_ONLY",
            "src_port": "RTE_ETH_RSS_L4_SRC_ONLY", "dst_port": "RTE_ETH_RSS_L4_DST_ONLY"}
_TCP_UDP = RSS_HF_BITS["RTE_ETH_RSS_NONFRAG_IPV4_TCP"] | RSS_HF_BITS["RTE_ETH_RSS_NONFRAG_IPV4_UDP"]
_L3_FLAGS = RSS_HF_BITS["RTE_ETH_RSS_L3_SRC_ONLY"] | RSS_HF_BITS["RTE_ETH_RSS_L3_DST_ONLY"]

# How each driver narrows the hashed fields (see the module docstring).
_SELECTION_STYLE = {"ixgbe": "none", "ice": "intel", "i40e": "intel", "mlx5": "per-layer"}


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

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "driver": self.driver, "model": self.model, "key_bytes": self.key_bytes,
                "reta_size": self.reta_size, "reta_sizes": list(self.reta_sizes),
                "field_selection": self.field_selection, "selection_api": self.selection_api}


PROFILES: dict[str, NicProfile] = {
    p.name: p
    for p in (
        NicProfile("e810", "ice", 52, 512, True, (128, 512, 2048), "Intel E810", "rte_flow"),
        NicProfile("x710", "i40e", 52, 512, True, (128, 512), "Intel X710/XL710", "rte_flow"),
        NicProfile("cx5", "mlx5", 40, 512, True, (64, 128, 256, 512), "NVIDIA ConnectX-5/6", "rss_conf"),
        NicProfile("82599", "ixgbe", 40, 128, False, (128,), "Intel 82599/X540", ""),
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
    an ``L4_*_ONLY`` flag on a pattern without L4. Non-TCP/UDP IPv4 packets hash their addresses."""
    ipv4 = RSS_HF_BITS["RTE_ETH_RSS_IPV4"]
    rules = []
    for pattern, l4_type in (("eth / ipv4 / tcp", RSS_HF_BITS["RTE_ETH_RSS_NONFRAG_IPV4_TCP"]),
                             ("eth / ipv4 / udp", RSS_HF_BITS["RTE_ETH_RSS_NONFRAG_IPV4_UDP"])):
        if mask & l4_type:
            rules.append((pattern, (mask & ~(ipv4 | _TCP_UDP)) | l4_type))
        elif mask:
            rules.append((pattern, mask & (ipv4 | _L3_FLAGS)))
    if mask:
        rules.append(("eth / ipv4", mask & (ipv4 | _L3_FLAGS)))
    return tuple(rules)
