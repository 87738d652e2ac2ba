"""The NF language's state library (nf.h) as the engine knows it: which call allocates which kind
of object, which of its arguments is the capacity, and which kind of object each state call takes.

The path explorer models these calls and the code generator rewrites them; both read this table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Allocation:
    """An ``nf_*_allocate`` call: the kind it makes and the position of its capacity argument (None
    when the object has no entry count a core could take a share of: a sketch's width and a cht's
    height are hash ranges)."""

    call: str
    kind: str
    capacity_arg: Optional[int]


ALLOCATIONS: dict[str, Allocation] = {a.call: a for a in (
    Allocation("nf_map_allocate", "map", 1),
    Allocation("nf_vector_allocate", "vector", 1),
    Allocation("nf_dchain_allocate", "dchain", 0),
    Allocation("nf_sketch_allocate", "sketch", None),
    Allocation("nf_cht_allocate", "cht", None),
)}
KINDS: dict[str, str] = {call: a.kind for call, a in ALLOCATIONS.items()}

# The state call and the kind of object its first argument must be.
STATE_CALLS: dict[str, str] = {
    "nf_map_get": "map", "nf_map_put": "map", "nf_map_erase": "map",
    "nf_vector_borrow": "vector", "nf_vector_return": "vector",
    "nf_dchain_allocate_new_index": "dchain", "nf_dchain_rejuvenate_index": "dchain",
    "nf_dchain_is_index_allocated": "dchain", "nf_dchain_free_index": "dchain",
    "nf_expire_items": "dchain", "nf_expire_items2": "dchain",
    "nf_sketch_touch": "sketch", "nf_sketch_estimate": "sketch", "nf_sketch_expire": "sketch",
    "nf_cht_find_backend": "cht",
}
# gcc's builtins C programmers use in packet code (``likely()`` / ``unlikely()``, byte swaps); gcc knows
# them without a declaration (the analysis's are ``explorer.symbex.program.BUILTIN_PROTOTYPES``).
BUILTINS = frozenset({"__builtin_expect", "__builtin_bswap16", "__builtin_bswap32", "__builtin_bswap64",
                      "__builtin_popcount", "__builtin_popcountl", "__builtin_popcountll", "__builtin_clz",
                      "__builtin_clzl", "__builtin_clzll", "__builtin_ctz", "__builtin_ctzl", "__builtin_ctzll",
                      "__builtin_constant_p"})
# nf.h's other functions: header access, byte order, checksums, hashing, and the libc the NF may use.
OTHER_CALLS = frozenset({"nf_ether_header", "nf_ipv4_header", "nf_tcpudp_header", "nf_tcp_fields",
                         "nf_update_checksums", "nf_ntohs", "nf_htons", "nf_ntohl", "nf_htonl", "nf_hash", "memcpy",
                         "memset", "memcmp", *BUILTINS})
