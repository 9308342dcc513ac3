"""How an allocator says no.

An allocator that cannot produce a valid allocation within its limits (spill
slots, a search budget, too few registers for one instruction's operands)
raises :class:`AllocationFailed` with a one-line reason; ``try_all`` records
the reason and moves on to the next algorithm.
"""

from __future__ import annotations

__all__ = ["AllocationFailed"]


class AllocationFailed(Exception):
    """This algorithm found no allocation; ``str(exc)`` says why in one line."""
