"""The reference for ``backjump_recursive``: try every spill set, smallest first.

Independent of the search's constraint model: a spill set is feasible when
the *rewritten* program (:func:`~._spill.spill_everywhere`) never has more
values live than registers. Exponential, so for small programs only (tests
and the benchmark use at most 12 candidate values).
"""

from __future__ import annotations

__all__ = ["exhaustive_min_spills"]

from itertools import combinations

from axdrive.ir.dpu import VProgram, live_intervals, max_pressure

from ._spill import spill_everywhere


def exhaustive_min_spills(program: VProgram, registers: int, *, max_candidates: int = 12) -> int | None:
    """The fewest spilled values that make ``registers`` enough, or ``None`` if none does."""
    iv = live_intervals(program)
    candidates = [v for v in program.values if iv[v].uses]
    if len(candidates) > max_candidates:
        raise ValueError(f"{len(candidates)} spillable values is too many for exhaustive search "
                         f"(limit {max_candidates})")
    for k in range(len(candidates) + 1):
        for spilled in combinations(candidates, k):
            rewritten = spill_everywhere(program, spilled, spill_slots=len(candidates)).program
            if max_pressure(rewritten) <= registers:
                return k
    return None
