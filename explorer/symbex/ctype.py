"""C types as the path explorer sees them: x86-64 widths and layouts (LP64, natural alignment)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union


@dataclass(frozen=True)
class IntType:
    name: str
    bits: int
    signed: bool
    rank: int  # conversion rank (C11 6.3.1.1): _Bool < char < short < int < long < long long
    is_bool: bool = False

    @property
    def size(self) -> int:
        return self.bits // 8

    @property
    def align(self) -> int:
        return self.size

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class VoidType:
    size: int = 1  # gcc's void * arithmetic steps one byte
    align: int = 1

    def __str__(self) -> str:
        return "void"


@dataclass(frozen=True)
class PointerType:
    target: "CType"
    size: int = 8
    align: int = 8

    def __str__(self) -> str:
        return f"{self.target} *"


@dataclass(frozen=True)
class ArrayType:
    elem: "CType"
    length: int

    @property
    def size(self) -> int:
        return self.elem.size * self.length

    @property
    def align(self) -> int:
        return self.elem.align

    def __str__(self) -> str:
        return f"{self.elem}[{self.length}]"


@dataclass(frozen=True)
class Field:
    name: str
    ctype: "CType"
    offset: int


class StructType:
    """A struct or union; nominal (compared by identity) and completed after its fields resolve,
    so that a struct may point to itself."""

    def __init__(self, tag: Optional[str], union: bool = False):
        self.tag = tag
        self.union = union
        self.display: Optional[str] = None  # a typedef name for an anonymous struct
        self.fields: tuple[Field, ...] = ()
        self.size = 0
        self.align = 1
        self.complete = False
        self.padding: tuple[tuple[int, int], ...] = ()  # (offset, bytes) of padding holes

    def complete_with(self, members: list[tuple[str, "CType"]]) -> None:
        fields, offset, align, holes = [], 0, 1, []
        for name, ctype in members:
            a = ctype.align
            align = max(align, a)
            if self.union:
                fields.append(Field(name, ctype, 0))
                offset = max(offset, ctype.size)
                continue
            pad = (-offset) % a
            if pad:
                holes.append((offset, pad))
            offset += pad
            fields.append(Field(name, ctype, offset))
            offset += ctype.size
        pad = (-offset) % align
        if pad and not self.union:
            holes.append((offset, pad))
        self.fields = tuple(fields)
        self.size = offset + pad if not self.union else offset + (-offset) % align
        self.align = align
        self.padding = tuple(holes)
        self.complete = True

    def field(self, name: str) -> Optional[Field]:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    def __str__(self) -> str:
        if self.tag:
            return f"{'union' if self.union else 'struct'} {self.tag}"
        return self.display or f"anonymous {'union' if self.union else 'struct'}"

    def __repr__(self) -> str:
        return f"StructType({self})"


@dataclass(frozen=True)
class FunctionType:
    ret: "CType"
    params: tuple["CType", ...]
    variadic: bool = False
    size: int = 1
    align: int = 1

    def __str__(self) -> str:
        return f"{self.ret} (*)({', '.join(map(str, self.params))})"


CType = Union[IntType, VoidType, PointerType, ArrayType, StructType, FunctionType]

BOOL = IntType("_Bool", 8, False, 0, is_bool=True)
CHAR = IntType("char", 8, True, 1)
SCHAR = IntType("signed char", 8, True, 1)
UCHAR = IntType("unsigned char", 8, False, 1)
SHORT = IntType("short", 16, True, 2)
USHORT = IntType("unsigned short", 16, False, 2)
INT = IntType("int", 32, True, 3)
UINT = IntType("unsigned int", 32, False, 3)
LONG = IntType("long", 64, True, 4)
ULONG = IntType("unsigned long", 64, False, 4)
LLONG = IntType("long long", 64, True, 5)
ULLONG = IntType("unsigned long long", 64, False, 5)
VOID = VoidType()
SIZE_T = ULONG
PTRDIFF_T = LONG

UNSIGNED_OF = {INT: UINT, LONG: ULONG, LLONG: ULLONG, SHORT: USHORT, CHAR: UCHAR, SCHAR: UCHAR}


def compatible(a: "CType", b: "CType") -> bool:
    """Whether a declaration of type ``a`` and one of type ``b`` may name the same thing, as gcc
    judges a function's prototype against its definition. Integers compare by width, signedness
    and _Bool-ness only: the analyzer's own <stdint.h> may spell uint64_t as another type of the same
    width than the system's, and the same NF must pass both."""
    if isinstance(a, IntType) and isinstance(b, IntType):
        return (a.bits, a.signed, a.is_bool) == (b.bits, b.signed, b.is_bool)
    if isinstance(a, PointerType) and isinstance(b, PointerType):
        return compatible(a.target, b.target)
    if isinstance(a, ArrayType) and isinstance(b, ArrayType):
        return a.length == b.length and compatible(a.elem, b.elem)
    if isinstance(a, FunctionType) and isinstance(b, FunctionType):
        return (a.variadic == b.variadic and len(a.params) == len(b.params) and compatible(a.ret, b.ret)
                and all(compatible(x, y) for x, y in zip(a.params, b.params)))
    if isinstance(a, StructType) and isinstance(b, StructType):
        return a is b or (a.tag is not None and a.tag == b.tag and a.union == b.union)
    return type(a) is type(b)


_INTEGER_SPECIFIERS = ("_Bool", "char", "short", "int", "long", "signed", "unsigned")


def int_type_from_specifiers(names: list[str]) -> Optional[IntType]:
    """The integer type named by a list of basic specifiers (['unsigned', 'long', 'int']), or None
    when the list is one other name (void, float, a typedef). A list gcc refuses (``long char``,
    ``signed unsigned``, ``long long long``) or one with a specifier no integer type takes
    (``_Complex int``) raises ValueError with the sentence to show: such a list used to be read as
    the integer its known specifiers name."""
    if len(names) == 1 and names[0] not in _INTEGER_SPECIFIERS:
        return None
    spelled = " ".join(names)
    other = next((n for n in names if n not in _INTEGER_SPECIFIERS), None)
    if other == "_Complex":
        raise ValueError(f"complex types ({spelled}) are not supported: the analysis works on integers")
    if other is not None:
        raise ValueError(f"invalid type '{spelled}': the type specifier '{other}' does not combine with the others")
    counts = {n: names.count(n) for n in set(names)}
    kinds = {"_Bool", "char", "short"} & counts.keys()
    if (any(c > 1 for n, c in counts.items() if n != "long") or counts.get("long", 0) > 2 or len(kinds) > 1
            or ("signed" in counts and "unsigned" in counts) or (kinds and "long" in counts)
            or ("_Bool" in counts and len(counts) > 1) or ("char" in counts and "int" in counts)):
        raise ValueError(f"invalid type '{spelled}': C has no type with these specifiers")
    unsigned = "unsigned" in counts
    signed = "signed" in counts
    if "_Bool" in counts:
        return BOOL
    if "char" in counts:
        return UCHAR if unsigned else SCHAR if signed else CHAR
    if "short" in counts:
        return USHORT if unsigned else SHORT
    longs = counts.get("long", 0)
    if longs >= 2:
        return ULLONG if unsigned else LLONG
    if longs == 1:
        return ULONG if unsigned else LONG
    if "int" in counts or unsigned or signed:
        return UINT if unsigned else INT
    return None


def promote(t: IntType) -> IntType:
    """Integer promotion: every type of rank below int becomes int (all their values fit)."""
    return INT if t.rank < INT.rank else t


def common_type(a: IntType, b: IntType) -> IntType:
    """The usual arithmetic conversions (C11 6.3.1.8) for two promoted integer types."""
    a, b = promote(a), promote(b)
    if a == b:
        return a
    if a.signed == b.signed:
        return a if a.rank >= b.rank else b
    unsigned, signed = (a, b) if not a.signed else (b, a)
    if unsigned.rank >= signed.rank:
        return unsigned
    if signed.bits > unsigned.bits:
        return signed
    return UNSIGNED_OF[signed]


def strip_array(t: CType) -> CType:
    """The type an expression of type ``t`` has after array-to-pointer decay."""
    if isinstance(t, ArrayType):
        return PointerType(t.elem)
    return t
