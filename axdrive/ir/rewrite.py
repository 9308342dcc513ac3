"""The one pattern-rewrite engine: rules are data, applied to a fixed point.

Why: fusions, simplifications and (later) hardware legalizations are all
"find this shape of subgraph, replace it by that". Writing each as its own
graph walk repeats the matching, the use checks and the bookkeeping, each
time slightly differently. Here a rule is a ``(name, pattern, rewrite)``
triple (as in tinygrad's ``PatternMatcher``); :func:`rewrite` matches every
rule at every node until nothing changes and returns per-rule hit counts,
which passes report as their statistics.

A pattern is built from three constructors::

    from axdrive.ir.rewrite import Rule, op, var, const

    silu = Rule("silu", op("Mul", var("x"), op("Sigmoid", var("x"))),
                lambda m: [m.node("SiLU", [m["x"]], domain="axdrive")])

``var(name)`` matches any tensor (the same name must bind the same tensor
everywhere in the pattern), ``const(name)`` a constant, ``op(ops, *inputs)``
the node producing the tensor. Binary ``Add``/``Mul``/``Max``/``Min`` are
matched in both input orders. Every matched node other than the root must
feed only the match (otherwise removing it would change another user).

A rewrite function gets a :class:`Match` and returns either ``None`` (no
change), a list of nodes that replace the root (they must produce the root's
used outputs, or the function turned those outputs into constants), or the
name of an existing tensor the root's single output is an alias for.
"""

from __future__ import annotations

__all__ = ["Pattern", "Rule", "Match", "op", "var", "const", "rewrite"]

from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np

from ..errors import AxdriveError
from ._graph import Graph
from ._node import DEFAULT_DOMAIN, Node

COMMUTATIVE = frozenset({"Add", "Mul", "Max", "Min", "Sum"})


@dataclass(frozen=True)
class Pattern:
    """One pattern element; build it with :func:`op`, :func:`var` or :func:`const`."""

    kind: str  # "op" | "var" | "const"
    name: str | None = None
    ops: frozenset[str] | None = None  # None: any op
    inputs: tuple["Pattern", ...] | None = None  # None: inputs are not checked
    domain: str = DEFAULT_DOMAIN
    where: Callable[[Any], bool] | None = None


def op(ops: str | Iterable[str] | None, *inputs: Pattern, name: str | None = None, domain: str = DEFAULT_DOMAIN,
       where: Callable[[Node], bool] | None = None, any_inputs: bool = False) -> Pattern:
    """The node producing a tensor. ``ops``: one op type, several, or ``None``
    for any. ``inputs`` are matched against the node's first inputs; with
    ``any_inputs=True`` (or no inputs given together with ``any_inputs``) the
    inputs are not checked. ``where(node)`` adds a condition on attributes."""
    op_set = None if ops is None else frozenset([ops] if isinstance(ops, str) else ops)
    return Pattern("op", name, op_set, None if any_inputs else tuple(inputs), domain, where)


def var(name: str | None = None) -> Pattern:
    """Any tensor; binds its name under ``name``."""
    return Pattern("var", name)


def const(name: str | None = None, where: Callable[[np.ndarray], bool] | None = None) -> Pattern:
    """A constant tensor, optionally with a condition on its value."""
    return Pattern("const", name, where=where)


@dataclass(frozen=True)
class Rule:
    """A named rewrite: where ``pattern`` matches, call ``apply``."""

    name: str
    pattern: Pattern
    apply: Callable[["Match"], "list[Node] | str | None"]

    def __post_init__(self) -> None:
        if self.pattern.kind != "op":
            raise ValueError(f"rule {self.name!r}: the root of a pattern must be op(...)")


class Match:
    """What a pattern matched: captures by name (tensor names for ``var`` and
    ``const``, :class:`Node` for named ``op``), the root and inner nodes."""

    def __init__(self, graph: Graph, root: Node, captures: dict[str, Any], inner: list[Node]) -> None:
        self.graph = graph
        self.root = root
        self.captures = captures
        self.inner = inner

    def __getitem__(self, key: str) -> Any:
        return self.captures[key]

    def value(self, key: str) -> np.ndarray:
        """The data of the constant captured as ``key``."""
        data = self.graph.constant(self.captures[key])
        if data is None:
            raise KeyError(f"capture {key!r} is not a constant")
        return data

    @property
    def source(self) -> tuple[str, ...]:
        """The ONNX origins of every matched node, in order, without repeats."""
        seen: dict[str, None] = {}
        for node in (*self.inner, self.root):
            seen.update(dict.fromkeys(node.source))
        return tuple(seen)

    def node(self, op_type: str, inputs: list[str], attrs: dict[str, Any] | None = None, *,
             domain: str = DEFAULT_DOMAIN, outputs: list[str] | None = None, name: str | None = None) -> Node:
        """A replacement node carrying the root's name and outputs (unless given)
        and the merged source of everything matched."""
        return Node(name or self.root.name, op_type, list(inputs), list(outputs or self.root.outputs),
                    dict(attrs or {}), domain, self.source)


class _Matcher:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.producers = graph.producers()

    def match_node(self, pat: Pattern, node: Node, caps: dict[str, Any], inner: list[Node]) -> bool:
        if pat.ops is not None and node.op not in pat.ops:
            return False
        if node.domain != pat.domain or (pat.where is not None and not pat.where(node)):
            return False
        if pat.inputs is not None:
            if len(node.inputs) < len(pat.inputs):
                return False
            orders = [list(range(len(pat.inputs)))]
            if node.op in COMMUTATIVE and len(pat.inputs) == 2:
                orders.append([1, 0])
            for order in orders:
                trial_caps, trial_inner = dict(caps), list(inner)
                if all(self.match_tensor(pat.inputs[k], node.inputs[i], trial_caps, trial_inner)
                       for k, i in enumerate(order)):
                    caps.clear(), caps.update(trial_caps)
                    inner[:] = trial_inner
                    break
            else:
                return False
        if pat.name is not None:
            if pat.name in caps and caps[pat.name] is not node:
                return False
            caps[pat.name] = node
        return True

    def match_tensor(self, pat: Pattern, tensor: str, caps: dict[str, Any], inner: list[Node]) -> bool:
        if not tensor:
            return False
        if pat.kind == "op":
            producer = self.producers.get(tensor)
            if producer is None or not self.match_node(pat, producer, caps, inner):
                return False
            if producer not in inner:
                inner.append(producer)
            return True
        if pat.kind == "const":
            data = self.graph.constant(tensor)
            if data is None or (pat.where is not None and not pat.where(data)):
                return False
        if pat.name is not None:
            if caps.setdefault(pat.name, tensor) != tensor:
                return False
        return True


def _inner_is_private(graph: Graph, root: Node, inner: list[Node], users: dict[str, list[Node]]) -> bool:
    """Every inner node's outputs feed only matched nodes and are no graph outputs."""
    members = {id(n) for n in inner} | {id(root)}
    for node in inner:
        for out in node.outputs:
            if out in graph.outputs or any(id(u) not in members for u in users.get(out, ())):
                return False
    return True


def _apply(graph: Graph, rule: Rule, match: Match, result: Any, users: dict[str, list[Node]]) -> bool:
    root = match.root
    index = next(i for i, n in enumerate(graph.nodes) if n is root)
    if isinstance(result, str):
        if len(root.outputs) != 1 or root.outputs[0] in graph.outputs:
            return False  # renaming a graph output would change the model's interface
        old = root.outputs[0]
        for user in users.get(old, ()):
            user.inputs = [result if x == old else x for x in user.inputs]
        del graph.nodes[index]
        graph.tensors.pop(old, None)
    else:
        made = {out for node in result for out in node.outputs}
        for out in root.outputs:
            used = out in graph.outputs or users.get(out)
            if out and used and out not in made and not graph.is_constant(out):
                raise AxdriveError(f"rewrite rule {rule.name!r} at node {root.name!r} dropped the used output {out!r}")
        graph.nodes[index:index + 1] = list(result)
    _remove_unused(graph, match.inner)
    return True


def _remove_unused(graph: Graph, candidates: list[Node]) -> None:
    """Drop matched inner nodes none of whose outputs is used any more."""
    changed = True
    while changed:
        changed = False
        used = {x for n in graph.nodes for x in n.inputs} | set(graph.outputs)
        for node in candidates:
            if any(n is node for n in graph.nodes) and not any(o in used for o in node.outputs):
                graph.nodes = [n for n in graph.nodes if n is not node]
                for out in node.outputs:
                    if not graph.is_constant(out):
                        graph.tensors.pop(out, None)
                changed = True


def rewrite(graph: Graph, rules: Iterable[Rule], *, max_sweeps: int = 100) -> dict[str, int]:
    """Apply ``rules`` to ``graph`` in place until none matches.

    Nodes are visited in order and rules tried in list order at each node, so
    the result is deterministic. Returns ``{rule name: hits}`` for every rule."""
    rules = list(rules)
    hits = {rule.name: 0 for rule in rules}
    for _ in range(max_sweeps):
        changed = False
        matcher, users = _Matcher(graph), graph.consumer_map()
        i = 0
        while i < len(graph.nodes):
            node = graph.nodes[i]
            applied = False
            for rule in rules:
                caps: dict[str, Any] = {}
                inner: list[Node] = []
                if not matcher.match_node(rule.pattern, node, caps, inner):
                    continue
                if not _inner_is_private(graph, node, inner, users):
                    continue
                match = Match(graph, node, caps, inner)
                result = rule.apply(match)
                if result is None or not _apply(graph, rule, match, result, users):
                    continue
                hits[rule.name] += 1
                changed = applied = True
                matcher, users = _Matcher(graph), graph.consumer_map()
                break
            if not applied:
                i += 1
            else:
                i = min(i, len(graph.nodes))
        if not changed:
            return hits
    names = ", ".join(name for name, n in hits.items() if n)
    raise AxdriveError(f"graph rewrite did not reach a fixed point after {max_sweeps} sweeps (rules: {names})")
