"""Ordering passes from what they require and provide.

The order is a topological sort of the graph whose edges go from every
provider of a property to every pass that requires it. Ties between passes
with no path between them are broken by ``(phase, name)``, which makes the
order deterministic and independent of plugin discovery order. Enablement is
resolved here too, so ``axdrive passes`` shows exactly what a compile will do.
"""

from __future__ import annotations

__all__ = ["PipelineEntry", "Pipeline", "resolve_pipeline", "WELL_KNOWN_PROVIDERS"]

import heapq
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

from ..errors import PassResolutionError, did_you_mean
from ._pass import Enablement, Pass

if TYPE_CHECKING:  # pragma: no cover
    from ..config import CompilerConfig

#: Distributions that ship with axdrive and what they provide. Used only to
#: tell a user which distribution to install when a requirement has no
#: installed provider; the resolver itself never consults it for ordering.
WELL_KNOWN_PROVIDERS: dict[str, str] = {
    "graph_loaded": "axdrive-frontend",
    "shapes_inferred": "axdrive-frontend",
    "graph_optimized": "axdrive-frontend",
    "graph_cleaned": "axdrive-graph-cleaner",
    "calibrated": "axdrive-quantizer",
    "quantized": "axdrive-quantizer",
    "legalized": "axdrive-lowering",
    "pword_padded": "axdrive-lowering",
    "icr_applied": "axdrive-icr",
    "registers_allocated": "axdrive-dpu-alloc",
    "tiled": "axdrive-tiling",
    "memory_planned": "axdrive-memplan",
    "scheduled": "axdrive-scheduler",
    "program_emitted": "axdrive-lowering",
}


@dataclass(frozen=True)
class PipelineEntry:
    """One pass in a resolved pipeline, with the verdict of its predicate."""

    pass_: Pass
    enablement: Enablement

    @property
    def name(self) -> str:
        return self.pass_.name


@dataclass
class Pipeline:
    """The passes of a compile in execution order.

    ``edges`` are ``(provider, requirer, property)`` triples between top-level
    passes, i.e. why one pass comes before another.
    """

    entries: list[PipelineEntry]
    edges: list[tuple[str, str, str]] = field(default_factory=list)

    def __iter__(self):
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def providers_of(self, prop: str) -> list[str]:
        return [e.name for e in self.entries if prop in e.pass_.provides]


def _find_cycle(names: Iterable[str], succ: dict[str, set[str]]) -> list[str]:
    """Return one cycle as a list of names, first == last, or [] if none."""
    color: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str]:
        color[n] = 1
        stack.append(n)
        for m in sorted(succ.get(n, ())):
            if color.get(m, 0) == 1:
                return stack[stack.index(m):] + [m]
            if color.get(m, 0) == 0:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        color[n] = 2
        return []

    for n in sorted(names):
        if color.get(n, 0) == 0:
            cyc = visit(n)
            if cyc:
                return cyc
    return []


def _missing_message(pass_: Pass, req: str, blocked: Iterable[str]) -> str:
    msg = f"pass {pass_.name!r} ({pass_.plugin or 'unknown plugin'}) requires {req!r}, which no installed pass provides"
    dist = WELL_KNOWN_PROVIDERS.get(req)
    if dist:
        msg += f"; it is provided by the distribution {dist!r}"
        short = dist.removeprefix("axdrive-").replace("-", "_")
        if any(b in (dist, short) for b in blocked):
            msg += f", which is blocked (-p no:{short})"
        else:
            msg += " (install it, or disable the requiring pass)"
    return msg


def order_passes(
    passes: list[Pass], blocked: Iterable[str] = (), *, tolerate_missing: Iterable[str] = ()
) -> tuple[list[Pass], list[tuple[str, str, str]]]:
    """Topologically order ``passes``; raise on a missing provider or a cycle.

    Passes named in ``tolerate_missing`` (those the config switches off) may
    require something no installed pass provides: they will not run, so what
    they would need does not matter, and ``-p no:quantizer`` with
    ``compiler_mode=quantize_only`` stays a valid way to stop early.
    """
    tolerate = set(tolerate_missing)
    by_name: dict[str, Pass] = {}
    for p in passes:
        if p.name in by_name:
            other = by_name[p.name]
            raise PassResolutionError(
                f"pass {p.name!r} is defined twice: by {other.plugin or '?'} and by {p.plugin or '?'}"
            )
        by_name[p.name] = p
    providers: dict[str, list[str]] = {}
    for p in passes:
        for prop in p.provides:
            providers.setdefault(prop, []).append(p.name)

    succ: dict[str, set[str]] = {n: set() for n in by_name}
    indeg: dict[str, int] = {n: 0 for n in by_name}
    edges: list[tuple[str, str, str]] = []

    def order(a: str, b: str, why: str) -> None:
        """``a`` runs before ``b``, because of ``why`` (a property, or ``before X`` / ``after X``)."""
        edges.append((a, b, why))
        if b not in succ[a]:
            succ[a].add(b)
            indeg[b] += 1

    for p in sorted(passes, key=lambda p: p.name):
        for req in p.requires:
            provs = providers.get(req)
            if not provs:
                if p.name in tolerate:
                    continue
                raise PassResolutionError(_missing_message(p, req, blocked) + did_you_mean(req, sorted(providers)))
            for prov in sorted(provs):
                if prov != p.name:  # a pass may refine what it requires
                    order(prov, p.name, req)

    for p in sorted(passes, key=lambda p: p.name):  # before= / after=: ordering without data
        for kind, targets in (("after", p.after), ("before", p.before)):
            for target in targets:
                others = [target] if target in by_name else providers.get(target)
                if not others:
                    raise PassResolutionError(
                        f"pass {p.name!r} ({p.plugin or 'unknown plugin'}) is to run {kind} {target!r}, which names "
                        f"no installed pass and no property a pass provides"
                        f"{did_you_mean(target, sorted(by_name) + sorted(providers))}")
                for other in sorted(others):
                    a, b = (other, p.name) if kind == "after" else (p.name, other)
                    if a != b:
                        order(a, b, f"{kind} {target}")

    heap = [(by_name[n].phase, n) for n, d in indeg.items() if d == 0]
    heapq.heapify(heap)
    order: list[Pass] = []
    while heap:
        _, n = heapq.heappop(heap)
        order.append(by_name[n])
        for m in succ[n]:
            indeg[m] -= 1
            if indeg[m] == 0:
                heapq.heappush(heap, (by_name[m].phase, m))
    if len(order) != len(by_name):
        remaining = [n for n, d in indeg.items() if d > 0]
        cycle = _find_cycle(remaining, {n: succ[n] & set(remaining) for n in remaining})
        links = []
        for a, b in zip(cycle, cycle[1:]):
            prop = next(e[2] for e in edges if e[0] == a and e[1] == b)
            links.append(f"{a} -[{prop}]-> {b}")
        raise PassResolutionError("cycle in pass requirements: " + ", ".join(links))
    return order, edges


def resolve_pipeline(
    passes: list[Pass],
    config: "CompilerConfig",
    *,
    disabled: Iterable[str] = (),
    blocked: Iterable[str] = (),
) -> Pipeline:
    """Order ``passes`` and evaluate each one's predicate against ``config``.

    ``disabled`` are pass names from ``--disable-pass``; naming a pass that is
    not installed is an error (a typo would otherwise silently do nothing).
    """
    disabled = set(disabled)
    known = {p.name for p in passes} | {s.name for p in passes for s in _walk_subpasses(p)}
    unknown = sorted(disabled - known)
    if unknown:
        import difflib

        hints = []
        for u in unknown:
            close = difflib.get_close_matches(u, sorted(known), n=1)
            hints.append(f"{u!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise PassResolutionError("--disable-pass names no installed pass: " + ", ".join(hints))
    verdicts = {p.name: evaluate(p, config, disabled) for p in passes}
    order, edges = order_passes(passes, blocked, tolerate_missing=[n for n, v in verdicts.items() if not v.enabled])
    entries = [PipelineEntry(p, verdicts[p.name]) for p in order]
    return Pipeline(entries, edges)


def evaluate(pass_: Pass, config: "CompilerConfig", disabled: Iterable[str] = ()) -> Enablement:
    """The verdict for one pass: ``--disable-pass`` first, then its predicate."""
    if pass_.name in set(disabled):
        return Enablement(False, f"--disable-pass {pass_.name}")
    return pass_.enabled(config)


def _walk_subpasses(p: Pass):
    for s in p.subpasses:
        yield s
        yield from _walk_subpasses(s)
