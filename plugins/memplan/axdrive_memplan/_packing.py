"""Lifetime-aware packing of buffers into one address space, and its lower bound.

Why this algorithm: two buffers may share bytes exactly when their lifetimes
(program-order positions) do not overlap. Placing the largest buffers first,
each at the lowest offset that clashes with no already-placed buffer live at
the same time (first fit over the gaps), is the classic greedy for this
interval-packing problem and lands within a few percent of the bound on the
real models. The bound is the most bytes live at any one position: no
placement can use less.

Cores that work on different frames at the same time (``batch`` copies,
``pipeline`` stages) have no common clock of task positions: a buffer of core
0 at position 10 and one of core 1 at position 500 may well be live at the
same moment of a frame stream. Items therefore carry an ``owner`` (the core,
or -1 for buffers every core sees); items of two different owners always
clash, whatever their positions, so one core's copy never lands on bytes
another core may still be using.
"""

from __future__ import annotations

__all__ = ["Item", "pack", "first_fit", "live_bound", "peak_of", "align"]

from dataclasses import dataclass


@dataclass(frozen=True)
class Item:
    """A buffer to place: ``size`` bytes live over positions ``first..last`` (inclusive)."""

    name: str
    size: int
    first: int
    last: int
    owner: int = -1  # the core that alone uses it in a frame-parallel program; -1: positions decide


def align(n: int, to: int) -> int:
    return -(-n // to) * to


def _overlaps(a: Item, b: Item) -> bool:
    if a.owner >= 0 and b.owner >= 0 and a.owner != b.owner:
        return True  # different cores on different frames: their positions are not comparable
    return a.first <= b.last and b.first <= a.last


def first_fit(item: Item, placed: list[tuple[Item, int]], granule: int) -> int:
    """Lowest ``granule``-aligned offset where ``item`` clashes with no live-overlapping placed buffer."""
    busy = sorted((at, at + align(p.size, granule)) for p, at in placed if _overlaps(p, item))
    at = 0
    need = align(item.size, granule)
    for lo, hi in busy:
        if lo - at >= need:
            return at
        at = align(max(at, hi), granule)
    return at


def pack(items: list[Item], granule: int, fixed: list[tuple[Item, int]] | None = None) -> dict[str, int]:
    """Offsets for ``items`` (largest first, ties by first use and name), around already ``fixed`` ones."""
    placed = list(fixed or [])
    out: dict[str, int] = {}
    for it in sorted(items, key=lambda i: (-i.size, i.first, i.name)):
        at = first_fit(it, placed, granule)
        placed.append((it, at))
        out[it.name] = at
    return out


def live_bound(items: list[Item], granule: int) -> int:
    """The most bytes (each buffer rounded to ``granule``) live at one position; with owners, at least the
    sum of every owner's own bound (their items never share bytes) plus the ownerless items live throughout
    (they clash with every item)."""
    owners = {it.owner for it in items if it.owner >= 0}
    plain = _positions_bound(items, granule)
    if len(owners) < 2:
        return plain
    lo, hi = min(it.first for it in items), max(it.last for it in items)
    always = sum(align(it.size, granule) for it in items if it.owner < 0 and it.first <= lo and it.last >= hi)
    return max(plain, always + sum(_positions_bound([it for it in items if it.owner == o], granule) for o in owners))


def _positions_bound(items: list[Item], granule: int) -> int:
    """The most bytes live at one task position, owners aside."""
    events: list[tuple[int, int]] = []
    for it in items:
        size = align(it.size, granule)
        events.append((it.first, size))
        events.append((it.last + 1, -size))
    events.sort(key=lambda e: (e[0], e[1]))
    live = peak = 0
    for _pos, delta in events:
        live += delta
        peak = max(peak, live)
    return peak


def peak_of(items: list[Item], offsets: dict[str, int], granule: int) -> int:
    """Bytes from offset 0 to the end of the highest buffer."""
    return max((offsets[i.name] + align(i.size, granule) for i in items), default=0)
