"""C literals: the value and type of an integer constant (C11 6.4.4.1) and the bytes of character
and string literals (escape sequences)."""
from __future__ import annotations

from typing import Any

from explorer.symbex import ctype as ct
from explorer.symbex.ctype import IntType
from explorer.symbex.program import unsupported
from explorer.symbex.values import mask

_ESCAPES = {"n": 10, "t": 9, "r": 13, "0": 0, "\\": 92, "'": 39, '"': 34, "a": 7, "b": 8, "f": 12, "v": 11, "?": 63}


def int_constant(text: str) -> tuple[int, IntType]:
    """An integer literal's value and type: the first of its candidate types that holds the value."""
    lower = text.lower()
    suffix = ""
    while lower and lower[-1] in "ul":
        suffix = lower[-1] + suffix
        lower = lower[:-1]
    if lower.startswith("0x"):
        value, decimal = int(lower[2:], 16), False
    elif lower.startswith("0b"):
        value, decimal = int(lower[2:], 2), False
    elif len(lower) > 1 and lower.startswith("0"):
        value, decimal = int(lower, 8), False
    else:
        value, decimal = int(lower), True
    unsigned = "u" in suffix
    longs = suffix.count("l")
    candidates: list[IntType]
    if longs == 0:
        candidates = [ct.INT, ct.LONG, ct.LLONG] if decimal else [ct.INT, ct.UINT, ct.LONG, ct.ULONG, ct.LLONG, ct.ULLONG]
    elif longs == 1:
        candidates = [ct.LONG, ct.LLONG] if decimal else [ct.LONG, ct.ULONG, ct.LLONG, ct.ULLONG]
    else:
        candidates = [ct.LLONG] if decimal else [ct.LLONG, ct.ULLONG]
    if unsigned:
        candidates = [ct.UNSIGNED_OF.get(c, c) for c in candidates]
    for c in candidates:
        limit = 1 << (c.bits - 1 if c.signed else c.bits)
        if value < limit:
            return value, c
    return value & mask(64), ct.ULLONG


def unescape(body: str) -> bytes:
    """The bytes of a C string or character literal's body; ValueError for a malformed escape."""
    out = bytearray()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.extend(ch.encode())
            i += 1
            continue
        nxt = body[i + 1] if i + 1 < len(body) else ""
        if nxt == "x":
            j = i + 2
            while j < len(body) and body[j] in "0123456789abcdefABCDEF":
                j += 1
            if j == i + 2:
                raise ValueError("\\x without hex digits")
            out.append(int(body[i + 2:j], 16) & 0xFF)
            i = j
        elif nxt in "01234567":
            j = i + 1
            while j < len(body) and j < i + 4 and body[j] in "01234567":
                j += 1
            out.append(int(body[i + 1:j], 8) & 0xFF)
            i = j
        else:
            out.append(_ESCAPES.get(nxt, ord(nxt) if nxt else 0))
            i += 2
    return bytes(out)


def string_bytes(node: Any) -> bytes:
    """The bytes of a string literal node, with its terminating NUL."""
    text = node.value
    if not (text.startswith('"') and text.endswith('"')):
        raise unsupported(node, "wide or prefixed string literals are not supported")
    try:
        return unescape(text[1:-1]) + b"\0"
    except ValueError as error:
        raise unsupported(node, f"malformed string literal ({error})") from None


def char_value(node: Any) -> int:
    """The int value of a character constant node (char is signed, as on x86)."""
    text = node.value
    if not (text.startswith("'") and text.endswith("'")):
        raise unsupported(node, "wide character constants are not supported")
    try:
        data = unescape(text[1:-1])
    except ValueError as error:
        raise unsupported(node, f"malformed character constant ({error})") from None
    if len(data) != 1:
        raise unsupported(node, "multi-character constants are not supported")
    return data[0] - 256 if data[0] >= 128 else data[0]
