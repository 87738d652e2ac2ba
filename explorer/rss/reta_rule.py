"""A RETA as a rule, so a plan's text can say in one line what a table of 512 cores says.

A plan's RETA is dealt out over GF(2) directions of the entry number (``explorer.rss.reta``): entry
e goes to core x(e) mod ``cores``, where bit t of x(e) is the parity of ``e & m[t]`` for a mask m[t]
per bit. The round robin is the case m[t] = 1 << t. Such a table rarely repeats with a short period,
so ``plan.txt`` printed all of it; as its masks it fits on a line, and the masks say what decides
the core. ``rule_of`` reads the masks back from a table where they follow from it alone (a shifted
round robin; with 2^k cores, whose core bits are each linear in e); for other numbers of cores x(e)
mod n hides x's bits, so the plan asks ``reta.dealing`` for the masks it dealt with. Every rule is
checked entry by entry against the table it stands for; a table that follows none (rebalanced, or
taken modulo fewer cores) is cut short, pointing at the files that hold it whole.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

SHORT_PERIOD = 32  # a table that repeats this few entries is printed as them ("0 1 2 3 x128")
SHOWN = 32  # entries a table that follows no rule shows before pointing at the whole table


@dataclass(frozen=True)
class RetaRule:
    """Entry e -> core x(e) mod ``cores``, bit t of x(e) the parity of ``e & masks[t]``."""

    masks: tuple[int, ...]
    cores: int
    entries: int

    @staticmethod
    def of(masks: Sequence[int], cores: int, entries: int) -> "RetaRule":
        """The rule, keeping only the masks that can change the core: with 2^k cores, x's low k bits."""
        if cores & (cores - 1) == 0:
            masks = masks[:max(1, (cores - 1).bit_length())]
        return RetaRule(tuple(masks), cores, entries)

    def core(self, entry: int) -> int:
        x = sum(((entry & mask).bit_count() & 1) << t for t, mask in enumerate(self.masks))
        return x % self.cores

    def table(self) -> tuple[int, ...]:
        return tuple(self.core(e) for e in range(self.entries))

    def text(self) -> str:
        index_bits = self.entries.bit_length() - 1
        digits = max(1, (index_bits + 3) // 4)
        shift = (self.masks[0].bit_length() - 1) if self.masks and self.masks[0] else 0
        whole = self.cores == 1 << len(self.masks)  # x(e) < cores: no modulo
        if all(mask == 1 << (shift + t) for t, mask in enumerate(self.masks)) and \
                (whole or shift + len(self.masks) == index_bits):  # x(e) is e >> shift: a round robin
            return f"entry e -> core {'e' if shift == 0 else f'(e >> {shift})'} mod {self.cores}"
        parities = [f"parity(e & 0x{mask:0{digits}x})" for mask in self.masks]
        if whole:
            terms = [p if t == 0 else f"{1 << t}*{p}" for t, p in enumerate(parities)]
            return "entry e -> core " + " + ".join(terms)
        return (f"entry e -> core x mod {self.cores}, bit t of x the parity of e & m[t], m = "
                + " ".join(f"0x{mask:0{digits}x}" for mask in self.masks))


def rule_of(reta: Sequence[int]) -> Optional[RetaRule]:
    """The rule of ``reta`` when it is a round robin over the entry's top bits (core (e >> s) mod n)
    or, for a power-of-two number of cores, when each bit of the core is a parity of entry bits;
    None otherwise (a dealt table for other numbers of cores: ``reta.dealing`` knows its masks)."""
    table = tuple(int(c) for c in reta)
    size = len(table)
    if size < 2 or size & (size - 1) or min(table) < 0:
        return None
    index_bits = size.bit_length() - 1
    cores = max(table) + 1
    for shift in range(index_bits):
        if all(table[e] == (e >> shift) % cores for e in range(size)):
            return RetaRule.of(tuple(1 << t for t in range(shift, index_bits)), cores, size)
    if cores & (cores - 1) or table[0] != 0:
        return None
    width = max(1, (cores - 1).bit_length())
    masks = tuple(sum(((table[1 << j] >> t) & 1) << j for j in range(index_bits)) for t in range(width))
    rule = RetaRule(masks, cores, size)
    return rule if rule.table() == table else None


def reta_text(reta: Sequence[int], known: Callable[[], Optional[RetaRule]] = lambda: None) -> str:
    """``reta`` in a line: its repeating prefix ("0 1 2 3 x128"), else its rule (``rule_of``, or
    ``known()`` when that gives this very table: the plan's dealing, computed only when needed), else
    its first entries and where the rest is (``plan.json`` and ``nf_plan.c`` of a generated project)."""
    table = tuple(int(c) for c in reta)
    for period in range(1, min(SHORT_PERIOD, len(table)) + 1):
        if len(table) % period == 0 and all(table[i] == table[i % period] for i in range(len(table))):
            head = " ".join(map(str, table[:period]))
            repeats = len(table) // period
            return head if repeats == 1 else f"{head} x{repeats}"
    rule = rule_of(table)
    if rule is None:
        rule = known()
        rule = rule if rule is not None and rule.table() == table else None
    if rule is not None:
        return rule.text()
    if len(table) <= SHOWN:
        return " ".join(map(str, table))
    return (" ".join(map(str, table[:SHOWN])) + f" ... ({len(table)} entries: plan.json and nf_plan.c "
            "list them all)")
