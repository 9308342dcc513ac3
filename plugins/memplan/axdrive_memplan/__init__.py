"""axdrive pass plugin: memory planning.

``memplan.plan`` (provides ``memory_planned``) configures a
:class:`LifetimePlanner` from the config and hands it to the code generator
through the core's :data:`~axdrive.ir.program_plan.MEMORY_PLANNER` stash key:
the code generator alone knows which buffers a tiling produces, so it
describes them and asks the planner for homes and offsets (retrying with more
tiles when a layer's working set does not fit, up to ``max_memplan_attempts``).
See ``docs/memory-and-scheduling.md``.
"""

from __future__ import annotations

__all__ = ["axdrive_passes", "plan", "LifetimePlanner", "PlannerSettings"]

from typing import Any

from axdrive.errors import MemoryPlanError
from axdrive.ir.program_plan import MEMORY_PLANNER
from axdrive.passes import Phase, compiler_pass, hookimpl, when_mode

from ._planner import LifetimePlanner, PlannerSettings

_KEYS = ("enable_buffer_promotion", "split_buffer_promotion", "io_memory_pool", "constant_memory_pool",
         "workspace_memory_pool", "page_memory", "l1_constraint", "l2_constraint", "ddr_constraint",
         "resources_used", "ddr_size_max", "ddr_size_reserved", "max_memplan_attempts", "multicore_mode",
         "aipu_cores_used")


@compiler_pass("memplan.plan", requires=("tiled",), provides=("memory_planned",),
               enabled=when_mode("quantize_and_lower", "lower_only"), phase=int(Phase.CODEGEN), config_keys=_KEYS)
def plan(ctx: Any) -> dict[str, Any]:
    """Configure the lifetime-aware memory planner: buffers start in their pool (io/constant/workspace),
    the hottest move to L1 and L2 where they fit (``enable_buffer_promotion``, in two rounds with
    ``split_buffer_promotion``), L2/DDR activations are packed in pages (``page_memory``), and every level
    is held to ``*_size_used`` minus reservations, ``resources_used`` and the ``*_constraint``s. Cores
    that run different frames at once (``batch``, ``pipeline``) get bytes of their own.
    Statistics: the limits in bytes."""
    cfg = ctx.config
    settings = PlannerSettings.from_config(cfg)
    if cfg.ddr_size_used > cfg.ddr_size_max:
        raise MemoryPlanError(f"ddr_size_used={cfg.ddr_size_used} exceeds ddr_size_max={cfg.ddr_size_max}")
    ctx.stash[MEMORY_PLANNER] = LifetimePlanner(settings)
    return {"page_bytes": 4096 if settings.page_memory else 0, "promotion": bool(settings.enable_buffer_promotion),
            "split_promotion": bool(settings.split_buffer_promotion), "max_attempts": settings.max_memplan_attempts,
            "frame_parallel": settings.frame_parallel}


@hookimpl
def axdrive_passes() -> list[Any]:
    return [plan]
