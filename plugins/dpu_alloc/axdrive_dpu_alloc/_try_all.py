"""``try_all``: the other algorithms in turn until one succeeds.

The order is the one ``dpu_allocation_algorithm`` lists them in: ``graph``
(good allocations, coalesces copies, always terminates), then ``lazy``
(cannot run out of colouring rounds, only of spill slots), then
``backjump_recursive`` (the fewest spills, but only within its search
budget). Every attempt is recorded with why it failed, so a report can say
which algorithm produced each program.
"""

from __future__ import annotations

__all__ = ["TRY_ALL_ORDER", "Attempt"]

from typing import NamedTuple

#: The order ``try_all`` tries the algorithms in.
TRY_ALL_ORDER: tuple[str, ...] = ("graph", "lazy", "backjump_recursive")


class Attempt(NamedTuple):
    """One algorithm's try: whether it produced a verified allocation, and why not."""

    algorithm: str
    ok: bool
    reason: str
