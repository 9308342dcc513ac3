"""``backjump_recursive``: the fewest spilled values, by backtracking search.

The decision is which values to spill (everywhere, :mod:`._spill`); the
registers then follow by interval colouring, which is exact for straight-line
SSA code (its interference graph is an interval graph, colourable with R
registers iff at most R values are live at once). So the search is over one
keep/spill variable per value that has a reader, in order of definition,
under two kinds of register-capacity constraints per instruction ``j``:

* *reading*: the kept values live into ``j`` plus one reload temporary per
  spilled value ``j`` reads must fit in R;
* *writing*: the kept values live out of ``j`` plus the result of ``j``
  (kept or about to be stored) must fit in R.

Every decision is checked against the constraints of its value at once
(forward checking): too many kept values, or more spills needed among the
undecided values than the bound has left. When both
choices of a variable fail, the search jumps back to the most recent
variable that took part in a failure (conflict-directed backjumping,
Prosser 1993), not just to the previous one: values that cannot relieve the
overloaded instruction are skipped. The bound on the number of spills is
raised one at a time from a lower bound (iterative deepening), so the first
solution found has the fewest spills. A node budget keeps the search from
running away on big programs; when it is spent the algorithm fails cleanly.
"""

from __future__ import annotations

__all__ = ["allocate_backjump", "min_spill_set"]

import sys
from dataclasses import dataclass

from axdrive.ir.dpu import VProgram, live_intervals

from ._emit import PInstr, rename
from ._failure import AllocationFailed
from ._spill import colour_intervals, spill_everywhere

_KEEP, _SPILL = 0, 1


@dataclass(frozen=True)
class _Constraint:
    at: int  # instruction
    kind: str  # "reading" | "writing"
    fixed: int  # registers needed whatever is decided
    flexible: tuple[int, ...]  # variables that need a register only when kept


class _BudgetSpent(Exception):
    pass


def _constraints(program: VProgram, order: list[int]) -> list[_Constraint]:
    """Every capacity constraint; ``flexible`` holds positions in ``order``."""
    iv = live_intervals(program)
    pos = {v: k for k, v in enumerate(order)}
    out: list[_Constraint] = []
    for j, ins in enumerate(program.instrs):
        live_in = [v for v in iv if iv[v].start < j <= iv[v].end and iv[v].uses]
        reads = set(ins.uses)
        live_out = [v for v in iv if iv[v].start <= j < iv[v].end]
        for kind, members, always in (("reading", live_in, reads), ("writing", live_out, set(ins.defs))):
            flexible = tuple(sorted(pos[v] for v in members if v not in always and v in pos))
            fixed = sum(1 for v in members if v in always or v not in pos)
            out.append(_Constraint(j, kind, fixed, flexible))
    return out


def min_spill_set(program: VProgram, registers: int, *, budget: int = 50_000) -> set[int]:
    """The smallest set of values to spill so that ``registers`` suffice.

    Raises :class:`AllocationFailed` when no set works (an instruction alone
    needs more registers) or the search visits more than ``budget`` nodes.
    """
    iv = live_intervals(program)
    order = [v for v in program.values if iv[v].uses]  # a value nobody reads gains nothing from a spill
    every = _constraints(program, order)
    for c in every:
        if c.fixed > registers:
            raise AllocationFailed(f"instruction {c.at} ({program.instrs[c.at]}) alone needs {c.fixed} registers "
                                   f"for {c.kind}, more than {registers}")
    n = len(order)
    if n + 100 > sys.getrecursionlimit():
        raise AllocationFailed(f"{n} values is too deep for the recursive search")
    member_of: list[list[int]] = [[] for _ in range(n)]
    for ci, c in enumerate(every):
        for f in c.flexible:
            member_of[f].append(ci)
    lower = max((c.fixed + len(c.flexible) - registers for c in every), default=0)
    choice: list[int | None] = [None] * n
    kept_in = [0] * len(every)  # per constraint: members decided "keep"
    open_in = [len(c.flexible) for c in every]  # per constraint: members not decided yet
    spilled: list[int] = []
    nodes = 0

    def decide(k: int, value: int) -> None:
        choice[k] = value
        for ci in member_of[k]:
            open_in[ci] -= 1
            kept_in[ci] += value == _KEEP
        if value == _SPILL:
            spilled.append(k)

    def undo(k: int) -> None:
        for ci in member_of[k]:
            open_in[ci] += 1
            kept_in[ci] -= choice[k] == _KEEP
        if choice[k] == _SPILL:
            spilled.pop()
        choice[k] = None

    def check(k: int, spills_left: int) -> set[int] | None:
        """A conflict set if the decisions up to ``k`` already break a
        constraint ``k`` belongs to (forward checking), else ``None``."""
        for ci in member_of[k]:
            c = every[ci]
            if c.fixed + kept_in[ci] > registers:  # only spilling one of the kept members helps
                return {f for f in c.flexible if choice[f] == _KEEP}
            if c.fixed + kept_in[ci] + open_in[ci] - registers > spills_left:
                # Only undoing a spill elsewhere frees budget for this constraint.
                members = set(c.flexible)
                return {f for f in spilled if f not in members}
        return None

    def solve(k: int, spills_left: int) -> tuple[bool, set[int]]:
        nonlocal nodes
        if k == n:
            return True, set()
        nodes += 1
        if nodes > budget:
            raise _BudgetSpent
        conflict: set[int] = set()
        for value in (_KEEP, _SPILL):
            if value == _SPILL and spills_left == 0:
                conflict.update(spilled)
                continue
            decide(k, value)
            bad = check(k, spills_left - value)
            if bad is not None:
                undo(k)
                conflict |= bad - {k}
                continue
            ok, below = solve(k + 1, spills_left - value)
            if ok:
                return True, set()
            undo(k)
            if k not in below:  # nothing decided here can help: jump over this variable
                return False, below
            conflict |= below - {k}
        return False, conflict

    for bound in range(max(lower, 0), n + 1):
        try:
            ok, _ = solve(0, bound)
        except _BudgetSpent:
            raise AllocationFailed(f"search budget of {budget} nodes spent while trying {bound} spills") from None
        if ok:
            return {order[k] for k in range(n) if choice[k] == _SPILL}
    raise AllocationFailed(f"no spill set fits {registers} registers")


def allocate_backjump(program: VProgram, registers: int, spill_slots: int, *, budget: int = 50_000) -> list[PInstr]:
    spilled = min_spill_set(program, registers, budget=budget)
    rewrite = spill_everywhere(program, spilled, spill_slots)
    register = colour_intervals(rewrite.program, registers)
    return rename(rewrite.program, rewrite.origin, register)
