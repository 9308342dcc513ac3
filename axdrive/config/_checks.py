"""Cross-property checks: combinations a user would otherwise hit late.

Each rule looks at the whole config and returns the problems it finds; every
problem names the property to change, its value and what would be allowed.
They run at load (all problems of a file at once) and before every compile.
"""

from __future__ import annotations

__all__ = ["cross_check", "RULES"]

from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..errors import ConfigProblem

if TYPE_CHECKING:  # pragma: no cover
    from ._config import CompilerConfig

Rule = Callable[["CompilerConfig"], Iterator[ConfigProblem]]


def _constraints_within_sizes(c: "CompilerConfig") -> Iterator[ConfigProblem]:
    for level in ("l1", "l2", "ddr"):
        limit = getattr(c, f"{level}_constraint")
        size = getattr(c, f"{level}_size_used")
        if limit is not None and limit > size:
            yield ConfigProblem(f"{level}_constraint", limit, f"must not exceed {level}_size_used ({size:,} bytes)")


def _reserved_below_sizes(c: "CompilerConfig") -> Iterator[ConfigProblem]:
    if c.l1_size_reserved >= c.l1_size_used:
        yield ConfigProblem("l1_size_reserved", c.l1_size_reserved,
                            f"must be smaller than l1_size_used ({c.l1_size_used:,} bytes)")
    l2_reserved = c.l2_size_reserved + c.l2_size_reserved_tasklist * c.aipu_cores_used
    if l2_reserved >= c.l2_size_used:
        yield ConfigProblem("l2_size_reserved", c.l2_size_reserved,
                            f"l2_size_reserved + l2_size_reserved_tasklist x aipu_cores_used ({l2_reserved:,} bytes) "
                            f"must be smaller than l2_size_used ({c.l2_size_used:,} bytes)")
    if c.ddr_size_reserved >= c.ddr_size_used:
        yield ConfigProblem("ddr_size_reserved", c.ddr_size_reserved,
                            f"must be smaller than ddr_size_used ({c.ddr_size_used:,} bytes)")
    if c.ddr_size_used > c.ddr_size_max:
        yield ConfigProblem("ddr_size_used", c.ddr_size_used, f"must not exceed ddr_size_max ({c.ddr_size_max:,} bytes)")


def _graph_cleaner_pair(c: "CompilerConfig") -> Iterator[ConfigProblem]:
    if c.graph_cleaner_node is not None and c.graph_cleaner_condition is None:
        yield ConfigProblem("graph_cleaner_node", str(c.graph_cleaner_node),
                            "needs graph_cleaner_condition to be set as well")
    if c.graph_cleaner_condition is not None and c.graph_cleaner_node is None:
        yield ConfigProblem("graph_cleaner_condition", str(c.graph_cleaner_condition),
                            "needs graph_cleaner_node (MatMul, Gemm or Clip) to be set as well")


def _multicore(c: "CompilerConfig") -> Iterator[ConfigProblem]:
    mode = str(c.multicore_mode)
    if mode in ("cooperative", "pipeline") and c.aipu_cores_used < 2:
        yield ConfigProblem("multicore_mode", mode, f"needs aipu_cores_used >= 2 (it is {c.aipu_cores_used})")
    if c.host_processes_used > c.aipu_cores_used:
        yield ConfigProblem("host_processes_used", c.host_processes_used,
                            f"must not exceed aipu_cores_used ({c.aipu_cores_used}): each process drives whole cores")
    if c.host_processes_used > 1 and mode != "multiprocess":
        yield ConfigProblem("host_processes_used", c.host_processes_used,
                            f"only multicore_mode='multiprocess' uses several host processes (mode is {mode!r})")


def _promotion(c: "CompilerConfig") -> Iterator[ConfigProblem]:
    if c.split_buffer_promotion and not c.enable_buffer_promotion:
        yield ConfigProblem("split_buffer_promotion", True, "needs enable_buffer_promotion=true")


def _tiling(c: "CompilerConfig") -> Iterator[ConfigProblem]:
    if c.dfs_search_constraint is not None and c.tiling_depth == 1:
        yield ConfigProblem("dfs_search_constraint", c.dfs_search_constraint,
                            "only acts with tiling_depth > 1 (depth-first scheduling); set tiling_depth too")


def _icr(c: "CompilerConfig") -> Iterator[ConfigProblem]:
    if c.icrx_force == 0:
        yield ConfigProblem("icrx_force", 0, "must be -1 (automatic) or a factor from 1 to 8")
    elif c.icrx_force > 1 and not c.enable_icr:
        yield ConfigProblem("icrx_force", c.icrx_force, "forces an ICR factor, which needs enable_icr=true")


RULES: tuple[Rule, ...] = (
    _constraints_within_sizes,
    _reserved_below_sizes,
    _graph_cleaner_pair,
    _multicore,
    _promotion,
    _tiling,
    _icr,
)


def cross_check(config: "CompilerConfig", source: str | None = None) -> list[ConfigProblem]:
    """Every cross-property problem of ``config``, in rule order."""
    problems: list[ConfigProblem] = []
    for rule in RULES:
        for p in rule(config):
            problems.append(ConfigProblem(p.prop, p.value, p.allowed, source) if source else p)
    return problems


_ = Any
