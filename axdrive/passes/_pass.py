"""What a pass is: a named unit of work with declared requirements and effects.

A pass never decides its own position in the pipeline. It declares what it
``requires`` and ``provides`` (analyses or IR properties such as ``quantized``
or ``pword_padded``) and the pass manager derives the order. Whether it runs is
decided by an ``enabled`` predicate over the config that also says *why*; the
reason ends up in ``axdrive passes`` and the pass-dependency graph.
"""

from __future__ import annotations

__all__ = ["Pass", "Phase", "Enablement", "compiler_pass", "always", "when", "when_not", "when_mode", "all_of"]

import inspect
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from ..config import CompilerConfig
    from ._context import PassContext


class Phase(IntEnum):
    """Coarse position of a pass. Only breaks ties between passes that have no
    requirement relation, so that the order is deterministic *and* natural to
    read; requirements always win over phases."""

    IMPORT = 100
    CLEAN = 200
    OPTIMIZE = 300
    QUANTIZE = 400
    LEGALIZE = 500
    TILE = 600
    MEMPLAN = 700
    SCHEDULE = 800
    CODEGEN = 900
    EMIT = 1000


@dataclass(frozen=True)
class Enablement:
    """The answer of an ``enabled`` predicate: whether the pass runs and why."""

    enabled: bool
    reason: str

    def __bool__(self) -> bool:
        return self.enabled


Predicate = Callable[["CompilerConfig"], Enablement]


def always(config: "CompilerConfig") -> Enablement:
    """The default predicate: the pass always runs."""
    return Enablement(True, "always")


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(getattr(value, "value", value))


def when(prop: str) -> Predicate:
    """Enabled when the boolean config property ``prop`` is true."""

    def predicate(config: "CompilerConfig") -> Enablement:
        value = getattr(config, prop)
        return Enablement(bool(value), f"{prop}={_fmt(value)}")

    predicate.__name__ = f"when({prop})"
    return predicate


def when_not(prop: str) -> Predicate:
    """Enabled when the boolean config property ``prop`` is false."""

    def predicate(config: "CompilerConfig") -> Enablement:
        value = getattr(config, prop)
        return Enablement(not value, f"{prop}={_fmt(value)}")

    predicate.__name__ = f"when_not({prop})"
    return predicate


def when_mode(*modes: str) -> Predicate:
    """Enabled when ``compiler_mode`` is one of ``modes``."""

    def predicate(config: "CompilerConfig") -> Enablement:
        mode = _fmt(config.compiler_mode)
        return Enablement(mode in modes, f"compiler_mode={mode}")

    predicate.__name__ = f"when_mode({','.join(modes)})"
    return predicate


def all_of(*predicates: Predicate) -> Predicate:
    """Enabled when every predicate is; the reason is the first that says no
    (or all reasons joined when enabled)."""

    def predicate(config: "CompilerConfig") -> Enablement:
        reasons = []
        for p in predicates:
            e = p(config)
            if not e.enabled:
                return e
            reasons.append(e.reason)
        return Enablement(True, ", ".join(reasons))

    return predicate


PassFn = Callable[["PassContext"], "Mapping[str, Any] | None"]


@dataclass(frozen=True)
class Pass:
    """A compiler pass.

    ``run(ctx)`` does the work and may return a mapping of statistics (numbers
    or short strings) that end up in the trace and the compile report. A pass
    with ``subpasses`` is a pass group: the manager runs the sub-passes, in
    order, nested inside the group's span, after the group's own ``run`` (if any).
    ``config_keys`` lists the config properties the pass reads: documentation,
    and the basis of the "every property has an effect" audit. ``before`` and
    ``after`` order a pass without a data dependency: each names a pass or a
    property some pass provides (``before=("quantized",)``: run on the float
    graph, before whatever quantizes it); a name that is neither is an error.
    ``phase`` only breaks ties between passes nothing else orders.
    """

    name: str
    run: PassFn | None = None
    requires: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    enabled: Predicate = always
    phase: int = Phase.OPTIMIZE
    description: str = ""
    config_keys: tuple[str, ...] = ()
    subpasses: tuple["Pass", ...] = ()
    plugin: str = ""  # the distribution that contributed it; stamped at registration
    #: ordering without a data dependency: pass names or provided properties this pass runs before / after
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or " " in self.name:
            raise ValueError(f"pass name must be a non-empty dotted name, got {self.name!r}")
        if self.run is None and not self.subpasses:
            raise ValueError(f"pass {self.name!r} has neither a run function nor sub-passes")

    @property
    def summary(self) -> str:
        """The first paragraph of the description, on one line (a docstring's first sentence may wrap)."""
        first = self.description.strip().split("\n\n", 1)[0]
        return " ".join(first.split())

    def with_plugin(self, plugin: str) -> "Pass":
        subs = tuple(s.with_plugin(plugin) for s in self.subpasses)
        return replace(self, plugin=plugin, subpasses=subs)


def compiler_pass(
    name: str,
    *,
    requires: tuple[str, ...] | list[str] = (),
    provides: tuple[str, ...] | list[str] = (),
    enabled: Predicate = always,
    phase: int = Phase.OPTIMIZE,
    config_keys: tuple[str, ...] | list[str] = (),
    subpasses: tuple[Pass, ...] | list[Pass] = (),
    before: tuple[str, ...] | list[str] = (),
    after: tuple[str, ...] | list[str] = (),
) -> Callable[[PassFn], Pass]:
    """Decorator turning ``def fn(ctx) -> stats`` into a :class:`Pass`.

    The function's docstring becomes the pass description shown by
    ``axdrive passes`` and in the docs::

        @compiler_pass("example.count_ops", provides=("op_histogram",))
        def count_ops(ctx):
            '''Count nodes per operator type.'''
            return {"nodes": len(ctx.graph.nodes)}
    """

    def deco(fn: PassFn) -> Pass:
        return Pass(
            name=name,
            run=fn,
            requires=tuple(requires),
            provides=tuple(provides),
            enabled=enabled,
            phase=int(phase),
            description=inspect.getdoc(fn) or "",
            config_keys=tuple(config_keys),
            subpasses=tuple(subpasses),
            before=tuple(before),
            after=tuple(after),
        )

    return deco


def pass_group(name: str, subpasses: list[Pass] | tuple[Pass, ...], **kwargs: Any) -> Pass:
    """A pass that only runs its sub-passes (nested spans in the trace)."""
    description = kwargs.pop("description", "")
    return Pass(name=name, run=None, subpasses=tuple(subpasses), description=description, **kwargs)


__all__.append("pass_group")
_ = field  # keep dataclasses import tidy for type checkers
