"""Linear algebra over GF(2) with Python integers as bit rows: bit v of a row is the coefficient of
variable v. Small and exact; used to find the free key bits, to draw keys, and to check plans
without Z3."""
from __future__ import annotations

from typing import Iterable


def rank(rows: Iterable[int]) -> int:
    """The rank of a set of rows."""
    return len(Echelon(rows).rows)


class Echelon:
    """An echelon basis of a homogeneous system ``row . x = 0`` (one row per equation), kept by
    pivot = each row's highest set bit, so every other bit of a row is a lower variable."""

    def __init__(self, rows: Iterable[int] = ()):
        self.rows: dict[int, int] = {}
        for row in rows:
            self.add(row)

    def reduce(self, row: int) -> int:
        """``row`` minus its component in the span (0 when it is a combination of the rows)."""
        while row:
            top = row.bit_length() - 1
            pivot = self.rows.get(top)
            if pivot is None:
                return row
            row ^= pivot
        return 0

    def add(self, row: int) -> bool:
        """Add an equation; False if it was already implied by the others."""
        row = self.reduce(row)
        if not row:
            return False
        self.rows[row.bit_length() - 1] = row
        return True

    def implies_zero(self, variable: int) -> bool:
        """Whether every solution has ``variable`` = 0."""
        return self.reduce(1 << variable) == 0

    def free(self, count: int) -> list[int]:
        """The variables below ``count`` that are not pivots: any values for them extend to exactly
        one solution."""
        return [v for v in range(count) if v not in self.rows]

    def solve(self, free_values: int) -> int:
        """The solution whose free variables take the bits of ``free_values`` (pivot bits of
        ``free_values`` are ignored). Pivots are set from the lowest up: a row's other variables are
        lower, hence already known."""
        x = free_values
        for pivot in sorted(self.rows):
            x &= ~(1 << pivot)
        for pivot in sorted(self.rows):
            rest = self.rows[pivot] & ~(1 << pivot)
            if (rest & x).bit_count() & 1:
                x |= 1 << pivot
        return x
