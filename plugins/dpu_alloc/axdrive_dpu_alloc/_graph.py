"""``graph``: Chaitin/Briggs graph colouring with conservative coalescing.

Each round builds the interference graph of the current program (two values
interfere when their live intervals overlap, except a copy and its source,
which hold the same value), merges copy-related values whose merged node
still has fewer than K neighbours of degree >= K (Briggs' conservative test,
so coalescing never makes a colourable graph uncolourable), then simplifies:
nodes of degree < K are removed first; when none is left, the node with the
lowest spill cost per degree is removed *optimistically* (Briggs). Select
pops the stack and gives each node the lowest register none of its coloured
neighbours holds, preferring a copy partner's register. Nodes that find no
register are spilled everywhere (:mod:`._spill`) and the round repeats on the
rewritten program.

Spill cost of a value is (defs + uses) / interval length: a value read often
over a short range is expensive to spill, one that sits idle across many
instructions is cheap. Reload temporaries are unspillable.
"""

from __future__ import annotations

__all__ = ["allocate_graph"]

from axdrive.ir.dpu import VProgram, live_intervals

from ._emit import PInstr, rename
from ._failure import AllocationFailed
from ._spill import spill_everywhere


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, v: int) -> int:
        p = self.parent.setdefault(v, v)
        if p != v:
            p = self.parent[v] = self.find(p)
        return p

    def union(self, keep: int, other: int) -> None:
        self.parent[self.find(other)] = self.find(keep)


def _interference(program: VProgram) -> tuple[dict[int, set[int]], list[tuple[int, int]]]:
    iv = live_intervals(program)
    copies = [(ins.dst, ins.srcs[0]) for ins in program.instrs if ins.is_copy]
    same_value = {frozenset(c) for c in copies}
    adj: dict[int, set[int]] = {v: set() for v in iv}
    active: list[int] = []
    for v in sorted(iv, key=lambda v: iv[v].start):
        start = iv[v].start
        active = [a for a in active if iv[a].end > start]
        for a in active:
            if frozenset((a, v)) not in same_value:
                adj[a].add(v)
                adj[v].add(a)
        active.append(v)
    return adj, copies


def _colour(program: VProgram, registers: int, unspillable: frozenset[int]) -> tuple[dict[int, int], set[int]]:
    """One colouring round: (register of every coloured value, values to spill)."""
    k = registers
    adj, copies = _interference(program)
    iv = live_intervals(program)
    uf = _UnionFind()
    members: dict[int, set[int]] = {v: {v} for v in adj}
    # Conservative (Briggs) coalescing, to a fixed point.
    changed = True
    while changed:
        changed = False
        for dst, src in copies:
            a, b = uf.find(dst), uf.find(src)
            if a == b or b in adj[a]:
                continue
            merged = adj[a] | adj[b]
            significant = sum(1 for n in merged if len(adj[n]) - (1 if (a in adj[n] and b in adj[n]) else 0) >= k)
            if significant >= k:
                continue
            for n in adj[b]:
                adj[n].discard(b)
                adj[n].add(a)
            adj[a] |= adj[b]
            del adj[b]
            members[a] |= members.pop(b)
            uf.union(a, b)
            changed = True

    def cost(node: int) -> float:
        ms = members[node]
        if ms & unspillable or not any(iv[m].uses for m in ms):
            return float("inf")
        refs = sum(1 + len(iv[m].uses) for m in ms)
        span = max(iv[m].end for m in ms) - min(iv[m].start for m in ms)
        return refs / max(span, 1)

    # Simplify, with optimistic spill candidates.
    degree = {n: len(adj[n]) for n in adj}
    remaining = set(adj)
    stack: list[int] = []
    while remaining:
        low = [n for n in remaining if degree[n] < k]
        if low:
            node = min(low)
        else:
            node = min(remaining, key=lambda n: (cost(n) / max(degree[n], 1), n))
        remaining.discard(node)
        stack.append(node)
        for n in adj[node]:
            if n in remaining:
                degree[n] -= 1

    # Select.
    partners: dict[int, set[int]] = {}
    for dst, src in copies:
        a, b = uf.find(dst), uf.find(src)
        if a != b:
            partners.setdefault(a, set()).add(b)
            partners.setdefault(b, set()).add(a)
    colour: dict[int, int] = {}
    spill: set[int] = set()
    for node in reversed(stack):
        taken = {colour[n] for n in adj[node] if n in colour}
        options = [r for r in range(k) if r not in taken]
        if not options:
            spill.add(node)
            continue
        preferred = [colour[p] for p in sorted(partners.get(node, ())) if p in colour and colour[p] in options]
        colour[node] = preferred[0] if preferred else options[0]
    register = {m: colour[node] for node in colour for m in members[node]}
    to_spill = {m for node in spill for m in members[node] if m not in unspillable and iv[m].uses}
    if spill and not to_spill:
        raise AllocationFailed(f"cannot colour the reload temporaries with {registers} registers")
    return register, to_spill


def allocate_graph(program: VProgram, registers: int, spill_slots: int, *, max_rounds: int = 64) -> list[PInstr]:
    """Colour, spill what did not get a register, rewrite, repeat."""
    spilled: set[int] = set()
    for _ in range(max_rounds):
        rewrite = spill_everywhere(program, spilled, spill_slots)
        register, to_spill = _colour(rewrite.program, registers, rewrite.unspillable)
        if not to_spill:
            return rename(rewrite.program, rewrite.origin, register)
        spilled |= to_spill
    raise AllocationFailed(f"still spilling after {max_rounds} colouring rounds")
