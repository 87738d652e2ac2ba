"""What a run does beyond its memory: the state objects nf_init allocates, and per run of
nf_process the state calls it makes (accesses), the vector cells it borrows and returns, the packet
fields it reads and its checksum updates. The library models fill these in; the path search turns
them into ``ir`` values."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from explorer.ir import Location, Op
from explorer.symbex.ctype import CType
from explorer.symbex.memory import cell_key, term_key
from explorer.wire import field_at


@dataclass
class ObjectInfo:
    """A state object as nf_init allocates it (mutable while the analysis learns its layout)."""

    name: str
    kind: str
    alloc_index: int
    capacity: int
    size: int
    layout: Optional[CType]
    extra: tuple[tuple[str, int], ...]
    location: Optional[Location]
    # concrete contents while nf_init runs, and how many calls nf_init made on the object (a record:
    # state filled there is read-only for nf_process unless nf_process writes it)
    entries: dict = field(default_factory=dict)
    init_calls: int = 0


@dataclass(frozen=True)
class RawAccess:
    """An access as recorded during a run; the path search renders it into an ir.Access."""

    object: str
    op: Op
    call: str
    key: Any  # Z3 term or None
    key_cells: Optional[tuple]  # the key bytes (maps, sketches), for per-member text
    key_layout: Optional[CType]
    results: tuple[str, ...]
    location: Optional[Location]
    related: tuple[str, ...] = ()
    value: Any = None  # the value a map put stores (a 32-bit term)
    time: Any = None  # the time an expiry passes (a 64-bit term or int)


@dataclass(frozen=True)
class Borrow:
    """A vector cell handed out (or back): the object, the index and the cell's bytes."""

    object: str
    index: Any
    cells: tuple
    location: Optional[Location] = None  # the nf_vector_borrow call


class Effects:
    """The library-visible effects of one run (nf_init or one path of nf_process)."""

    def __init__(self) -> None:
        self.calls = 0  # state calls so far: the ``n`` of result symbols ``<object>.<what>#<n>``
        self.accesses: list[RawAccess] = []
        self.borrows: dict[str, Borrow] = {}  # by cell region name: borrowed and not yet returned
        self.returned: list[Borrow] = []  # cells handed back on this path, latest last (content as returned)
        self.fields_read: set[str] = set()
        self.checksum_writes: list[Optional[Location]] = []

    def next_call(self) -> int:
        self.calls += 1
        return self.calls

    def record(self, access: RawAccess) -> None:
        self.accesses.append(access)

    def note_read(self, region_kind: str, region_name: str, offset: int, n: int) -> None:
        if region_kind == "header":
            for i in range(offset, offset + n):
                self.fields_read.add(field_at(region_name, i))

    def copy(self) -> "Effects":
        other = Effects()
        other.calls = self.calls
        other.accesses = list(self.accesses)
        other.borrows = dict(self.borrows)
        other.returned = list(self.returned)
        other.fields_read = set(self.fields_read)
        other.checksum_writes = list(self.checksum_writes)
        return other

    def fingerprint(self, since: "Effects") -> tuple:
        """What later code can observe of the effects added after ``since`` (these effects, earlier),
        as a hashable value (fields read excluded: they only add to the analysis' list)."""
        return (self.calls, tuple(_access_key(a) for a in self.accesses[len(since.accesses):]),
                tuple(sorted((name, _borrow_key(b)) for name, b in self.borrows.items())),
                tuple(_borrow_key(b) for b in self.returned[len(since.returned):]),
                tuple(self.checksum_writes[len(since.checksum_writes):]))


def _access_key(a: RawAccess) -> tuple:
    return (a.object, a.op, a.call, term_key(a.key), a.results, a.location, a.related, term_key(a.value),
            term_key(a.time))


def _borrow_key(b: Borrow) -> tuple:
    return (b.object, term_key(b.index), tuple(cell_key(c) for c in b.cells))
