"""The hand-over types between tiling, memory planning, scheduling and code generation.

Why in the core: the memory planner (``axdrive-memplan``) and the scheduler
(``axdrive-scheduler``) are separate distributions from the code generator
(``axdrive-lowering``) and may not import it, nor it them. They meet through
these plain data types and two protocols: the planner and scheduler passes put
a configured :class:`MemoryPlanner` / :class:`TaskScheduler` into the stash
under :data:`MEMORY_PLANNER` / :data:`TASK_SCHEDULER`; the code generator, which
alone knows the buffers and tasks a tiling produces, describes them as
:class:`BufferRequest` and :class:`PlanTask` and asks. Positions are indices
in program order (the order the code generator emits tasks in), which is what
lifetime-aware packing needs. Nothing here knows the hardware model.
"""

from __future__ import annotations

__all__ = ["BufferRequest", "Placement", "LevelUsage", "MemoryPlan", "InfeasiblePlan", "MemoryPlanner",
           "PlanTask", "SchedulePolicy", "TaskScheduler", "MEMORY_PLANNER", "TASK_SCHEDULER", "POOL_LEVELS"]

from dataclasses import dataclass, field
from typing import Protocol, Sequence

from axdrive.passes import StashKey

POOL_LEVELS: tuple[str, ...] = ("ddr", "l2", "l1")
"""Memory levels, outermost first (``global.<level>`` in the config's pool properties)."""


@dataclass(frozen=True)
class BufferRequest:
    """One buffer the program needs: what it is, how big, where it would start, when it is live.

    ``kind`` is ``input``, ``output``, ``constant``, ``workspace`` (an activation's
    home) or ``staging`` (a layer's L1 working set; always in the L1 of ``core``).
    ``first``/``last`` are program-order task positions; ``whole_run`` buffers
    (model I/O, constants) are live from the start to the end. ``traffic`` is
    the bytes DMA moves to or from it: the heat that ranks promotion.
    """

    name: str
    kind: str
    size: int
    pool: str
    first: int = 0
    last: int = 0
    core: int = 0
    whole_run: bool = False
    traffic: int = 0
    layer: str = ""
    pinned: bool = False
    shared: bool = False  # touched by tasks of several cores: never promoted into one core's L1


@dataclass(frozen=True)
class Placement:
    """Where a buffer lives: its level, byte offset in that level, and the core for L1."""

    level: str
    address: int
    core: int = 0


@dataclass(frozen=True)
class LevelUsage:
    """Peak bytes a plan uses in one level (one core's L1) against the lower bound and the capacity."""

    level: str
    peak: int
    bound: int
    capacity: int
    buffers: int
    limited_by: str = ""  # the property that sets ``capacity`` (``*_size_used``, ``*_constraint``, ...)

    def to_dict(self) -> dict[str, object]:
        ratio = round(self.peak / self.bound, 4) if self.bound else None
        return {"peak_bytes": self.peak, "lower_bound_bytes": self.bound, "capacity_bytes": self.capacity,
                "limited_by": self.limited_by, "peak_over_bound": ratio, "buffers": self.buffers}


@dataclass
class MemoryPlan:
    """The planner's answer: a placement per buffer, usage per level, which buffers were promoted."""

    placements: dict[str, Placement]
    usage: dict[str, LevelUsage]
    promoted: dict[str, str] = field(default_factory=dict)  # buffer -> level it was promoted to
    page_bytes: int = 0

    def to_dict(self) -> dict[str, object]:
        return {"levels": {k: v.to_dict() for k, v in sorted(self.usage.items())},
                "promoted": {"l1": sum(1 for v in self.promoted.values() if v == "l1"),
                             "l2": sum(1 for v in self.promoted.values() if v == "l2")},
                "page_bytes": self.page_bytes}


class InfeasiblePlan(Exception):
    """Limits cannot be met: the layer, level, bytes needed and available, and the property to change."""

    def __init__(self, layer: str, level: str, needed: int, available: int, prop: str) -> None:
        super().__init__(layer, level, needed, available, prop)
        self.layer, self.level, self.needed, self.available, self.prop = layer, level, needed, available, prop

    def message(self, attempts: int) -> str:
        return (f"layer {self.layer!r} needs {self.needed} bytes of {self.level.upper()} but {self.available} are "
                f"available after {attempts} memory-plan attempt(s); raise {self.prop}")


class MemoryPlanner(Protocol):
    """Places buffers; raises :class:`InfeasiblePlan` when a limit cannot be met."""

    max_attempts: int

    def plan(self, requests: Sequence[BufferRequest], *, end: int, usable: dict[str, int]) -> MemoryPlan:
        """Place ``requests``; ``end`` is one past the last task position, ``usable`` the target's bytes per
        level (per core for L1) before the config's ``resources_used`` and ``*_constraint`` limits."""
        ...


@dataclass(frozen=True)
class PlanTask:
    """One task as the scheduler sees it: its unit, estimated cycles and the tasks it must follow."""

    index: int
    core: int
    unit: str  # mvm, dwpu, dpu, dma
    cycles: float
    deps: tuple[int, ...]
    layer: int


@dataclass(frozen=True)
class SchedulePolicy:
    """How the code generator shapes the task graph (each field is one config property's effect)."""

    inter_operator_async: bool = True      # no barrier between layers
    tile_slots: int = 2                    # L1 slots per height-tile operand (2: pipelined)
    channel_slots: int = 2                 # L1 slots per output-channel-tile weight chunk
    unroll_prologue_epilogue: bool = False  # halve the first and last tile of a tiled layer
    hoist_weight_loads: bool = False       # load a layer's constants before the previous layer's tiles
    list_scheduler: bool = False           # reorder by a resource-aware list scheduler
    cores: int = 1
    multicore_mode: str = "multiprocess"


class TaskScheduler(Protocol):
    """Orders tasks (dependencies respected); the policy tells the code generator what graph to build."""

    policy: SchedulePolicy

    def order(self, tasks: Sequence[PlanTask]) -> list[int]: ...


MEMORY_PLANNER: StashKey[MemoryPlanner] = StashKey("program_plan.memory_planner")
TASK_SCHEDULER: StashKey[TaskScheduler] = StashKey("program_plan.task_scheduler")
