"""The graph: nodes in topological order plus the table of every tensor.

Why a flat node list in topological order (and not a linked structure): every
consumer of the IR (executor, quantizer, scheduler) walks it front to back,
and keeping the list sorted is one invariant :meth:`Graph.verify` can check
after every pass.
"""

from __future__ import annotations

__all__ = ["Graph"]

import copy
import heapq
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from ..errors import ModelError
from ._node import Node
from ._tensor import Tensor


@dataclass
class Graph:
    """A model. ``inputs`` are the run-time inputs (never constants);
    ``tensors`` holds every value by name, constants carry their ``data``."""

    name: str = "graph"
    nodes: list[Node] = field(default_factory=list)
    tensors: dict[str, Tensor] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    opset: int = 17

    # -- queries ---------------------------------------------------------------
    def producer(self, name: str) -> Node | None:
        """The node whose outputs include ``name`` (``None`` for inputs and constants)."""
        for node in self.nodes:
            if name in node.outputs:
                return node
        return None

    def consumers(self, name: str) -> list[Node]:
        """The nodes reading ``name``, in graph order."""
        return [node for node in self.nodes if name in node.inputs]

    def producers(self) -> dict[str, Node]:
        """Tensor name -> producing node, for callers that query many tensors."""
        return {out: node for node in self.nodes for out in node.outputs if out}

    def upstream(self, node: Node) -> set[str]:
        """The names of ``node`` and of every node it depends on, transitively (what computing it needs)."""
        producers = self.producers()
        todo, seen = [node], set()
        while todo:
            n = todo.pop()
            if n.name in seen:
                continue
            seen.add(n.name)
            todo.extend(producers[i] for i in n.inputs if i in producers)
        return seen

    def consumer_map(self) -> dict[str, list[Node]]:
        """Tensor name -> consuming nodes (each node once per tensor), in graph order."""
        users: dict[str, list[Node]] = {}
        for node in self.nodes:
            for name in dict.fromkeys(node.inputs):
                if name:
                    users.setdefault(name, []).append(node)
        return users

    def is_constant(self, name: str) -> bool:
        tensor = self.tensors.get(name)
        return tensor is not None and tensor.data is not None

    def constant(self, name: str) -> np.ndarray | None:
        """The value of constant ``name`` or ``None`` if it is not a constant."""
        tensor = self.tensors.get(name)
        return None if tensor is None else tensor.data

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    # -- construction helpers ---------------------------------------------------
    def unique_name(self, base: str) -> str:
        """``base`` if no tensor or node uses it yet, else ``base_1``, ``base_2``, ..."""
        taken = set(self.tensors) | {n.name for n in self.nodes}
        if base not in taken:
            return base
        i = 1
        while f"{base}_{i}" in taken:
            i += 1
        return f"{base}_{i}"

    def add_constant(self, base: str, value: Any) -> str:
        """Add a constant under a fresh name derived from ``base``; returns the name."""
        name = self.unique_name(base)
        self.tensors[name] = Tensor.constant(name, np.asarray(value))
        return name

    def add_tensor(self, base: str, shape: Iterable[int], dtype: Any) -> str:
        """Add a run-time tensor under a fresh name derived from ``base``; returns the name."""
        name = self.unique_name(base)
        self.tensors[name] = Tensor(name, tuple(shape), np.dtype(dtype))
        return name

    def copy(self) -> "Graph":
        """A deep copy (constant arrays included) a pass can mutate freely."""
        return copy.deepcopy(self)

    # -- ordering ---------------------------------------------------------------
    def toposort(self) -> None:
        """Sort ``nodes`` topologically, keeping the current order where it is
        already valid (so sorting is deterministic and a sorted graph is unchanged).

        Raises ModelError naming a node on the cycle if there is one."""
        producers = self.producers()
        deps: list[set[int]] = []
        index = {id(n): i for i, n in enumerate(self.nodes)}
        users: list[list[int]] = [[] for _ in self.nodes]
        for i, node in enumerate(self.nodes):
            d = {index[id(producers[x])] for x in node.inputs if x in producers}
            deps.append(d)
            for j in d:
                users[j].append(i)
        remaining = [len(d) for d in deps]
        ready = [i for i, r in enumerate(remaining) if r == 0]
        heapq.heapify(ready)
        order: list[int] = []
        while ready:
            i = heapq.heappop(ready)
            order.append(i)
            for u in users[i]:
                remaining[u] -= 1
                if remaining[u] == 0:
                    heapq.heappush(ready, u)
        if len(order) != len(self.nodes):
            stuck = self._cycle({i for i, r in enumerate(remaining) if r > 0}, deps)
            names = " -> ".join(self.nodes[i].name for i in stuck)
            raise ModelError(f"the graph has a cycle: {names}", node=self.nodes[stuck[0]].name)
        self.nodes = [self.nodes[i] for i in order]

    def _cycle(self, stuck: set[int], deps: list[set[int]]) -> list[int]:
        """One cycle among the ``stuck`` nodes (every one of them has a stuck dependency)."""
        start = min(stuck)
        path, seen, i = [], {}, start
        while i not in seen:
            seen[i] = len(path)
            path.append(i)
            i = min(d for d in deps[i] if d in stuck)
        cycle = path[seen[i]:]
        return cycle + [cycle[0]]

    # -- checking ---------------------------------------------------------------
    def verify(self) -> None:
        """Check the IR invariants; raises ModelError naming the offending node.

        Checked: every referenced tensor is declared with a static shape and a
        dtype; no tensor is produced twice (or is both produced and an input or
        constant); every node input is a graph input, a constant or produced;
        there is no cycle and nodes are in topological order; every graph
        output exists."""
        for name in self.inputs:
            t = self.tensors.get(name)
            if t is None:
                raise ModelError(f"graph input {name!r} is not declared in the tensor table")
            if t.data is not None:
                raise ModelError(f"graph input {name!r} is also a constant")
        seen_nodes: set[str] = set()
        defined: dict[str, str] = {n: "graph input" for n in self.inputs}
        for node in self.nodes:
            if node.name in seen_nodes:
                raise ModelError("two nodes have this name", node=node.name)
            seen_nodes.add(node.name)
            for out in node.outputs:
                if not out:
                    continue
                if out in defined or self.is_constant(out):
                    what = defined.get(out, "a constant")
                    raise ModelError(f"tensor {out!r} is produced twice (also by {what})", node=node.name)
                defined[out] = f"node {node.name!r}"
        position = {out: i for i, node in enumerate(self.nodes) for out in node.outputs if out}
        order_problem: tuple[Node, str] | None = None
        for i, node in enumerate(self.nodes):
            for name in node.inputs:
                if not name or name in self.inputs or self.is_constant(name):
                    continue
                if name not in position:
                    raise ModelError(
                        f"dangling input {name!r}: neither a graph input, a constant nor produced by a node",
                        node=node.name)
                if position[name] >= i and order_problem is None:
                    order_problem = (node, name)
        if order_problem is not None:
            self.copy_order().toposort()  # raises with the cycle if there is one
            node, name = order_problem
            raise ModelError(f"nodes are not in topological order: input {name!r} is produced later",
                             node=node.name)
        for name in self.outputs:
            if name not in position and name not in self.inputs and not self.is_constant(name):
                raise ModelError(f"graph output {name!r} is not produced by any node")
        for node in self.nodes:
            for name in (*node.inputs, *node.outputs):
                if name:
                    self._check_declared(name, node)
        for name in self.outputs:
            self._check_declared(name, None)

    def copy_order(self) -> "Graph":
        """A shallow copy sharing nodes and tensors, for order experiments."""
        return Graph(self.name, list(self.nodes), self.tensors, list(self.inputs), list(self.outputs), self.opset)

    def _check_declared(self, name: str, node: Node | None) -> None:
        where = node.name if node is not None else None
        t = self.tensors.get(name)
        if t is None:
            raise ModelError(f"tensor {name!r} is not declared in the tensor table", node=where)
        if t.dtype is None:
            raise ModelError(f"tensor {name!r} has no dtype", node=where)
        if t.shape is None or any(d < 0 for d in t.shape):
            raise ModelError(f"tensor {name!r} has no static shape", node=where)

    # -- text -------------------------------------------------------------------
    def dump(self) -> str:
        """A deterministic, readable listing: inputs, constants, one line per
        node (``outputs = op(inputs) {attrs}``), outputs. Used by ``--dump-ir``."""
        lines = [f"graph {self.name} (opset {self.opset})"]
        for name in self.inputs:
            lines.append(f"  input {name}: {self._describe(name)}")
        for name in sorted(n for n, t in self.tensors.items() if t.data is not None):
            lines.append(f"  const {name}: {self._describe(name)}{_small_value(self.tensors[name].data)}")
        for node in self.nodes:
            attrs = ", ".join(f"{k}={_fmt_attr(v)}" for k, v in sorted(node.attrs.items()))
            outs = ", ".join(node.outputs)
            ins = ", ".join(node.inputs)
            text = f"  {outs} = {node.qualified_op}({ins})"
            if attrs:
                text += f" {{{attrs}}}"
            text += f"  # {node.name}"
            lines.append(text)
        for name in self.outputs:
            lines.append(f"  output {name}: {self._describe(name)}")
        return "\n".join(lines) + "\n"

    def _describe(self, name: str) -> str:
        t = self.tensors.get(name)
        return t.describe() if t is not None else "?"


def _small_value(data: np.ndarray | None) -> str:
    if data is None or data.size > 8:
        return ""
    return " = " + _fmt_attr(data)


def _fmt_attr(value: Any) -> str:
    if isinstance(value, np.ndarray):
        if value.size <= 8:
            return np.array2string(value.reshape(-1), separator=",", precision=6).replace("\n", "")
        return f"<{value.dtype.name}{list(value.shape)}>"
    if isinstance(value, float):
        return repr(round(value, 7))
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_fmt_attr(v) for v in value) + "]"
    return repr(value) if isinstance(value, str) else str(value)
