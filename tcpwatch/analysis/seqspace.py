"""Modular 32-bit sequence-number arithmetic (RFC 9293 3.4: comparisons are modulo 2**32)."""

from typing import Final

MOD: Final = 1 << 32
HALF: Final = 1 << 31


def seq_add(a: int, n: int) -> int:
    return (a + n) & 0xFFFFFFFF


def seq_diff(a: int, b: int) -> int:
    """a - b as a signed distance in sequence space (wrap-around safe)."""
    d = (a - b) & 0xFFFFFFFF
    return d - MOD if d >= HALF else d


def seq_lt(a: int, b: int) -> bool:
    return 0 < ((b - a) & 0xFFFFFFFF) < HALF


def seq_le(a: int, b: int) -> bool:
    return a == b or seq_lt(a, b)


def seq_gt(a: int, b: int) -> bool:
    return 0 < ((a - b) & 0xFFFFFFFF) < HALF
