"""Runs a :class:`~axdrive.ir.Graph` in float with numpy: the ground truth
every later stage (quantizer, lowering, the simulated AIPU) is compared to."""

from __future__ import annotations

__all__ = ["run_float", "run_node"]

from typing import Any, Callable, Mapping

import numpy as np

from ..errors import AxdriveError, ModelError, UnsupportedOperatorError, UsageError
from ..ir import Graph, Node
from ._registry import kernel_for


def run_node(node: Node, args: list[Any], opset: int) -> list[np.ndarray]:
    """Run one node on concrete inputs; returns one array per output.
    Any failure becomes a one-line ModelError naming the node."""
    kernel = kernel_for(node)
    try:
        result = kernel(node, args, opset)
    except AxdriveError:
        raise
    except Exception as exc:  # numpy's message plus the node gives the user what they need
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"{node.op} failed in the reference executor: {detail}", node=node.name) from exc
    outputs = list(result) if isinstance(result, (tuple, list)) else [result]
    missing = [name for i, name in enumerate(node.outputs) if name and i >= len(outputs)]
    if missing:  # an optional output the kernel does not compute: refused, never a KeyError later
        raise UnsupportedOperatorError(f"{node.op}'s output {len(outputs) + 1} ({missing[0]!r}) is not computed "
                                       "by the reference executor", node=node.name)
    return [np.asarray(o) for o in outputs]


def _check_feeds(graph: Graph, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
    unknown = sorted(set(feeds) - set(graph.inputs))
    if unknown:
        raise UsageError(f"unknown input {unknown[0]!r}; the model's inputs are {graph.inputs}")
    values: dict[str, np.ndarray] = {}
    for name in graph.inputs:
        if name not in feeds:
            raise UsageError(f"missing input {name!r}; the model's inputs are {graph.inputs}")
        tensor = graph.tensors[name]
        array = np.asarray(feeds[name])
        if tensor.shape is not None and tuple(array.shape) != tuple(tensor.shape):
            raise UsageError(f"input {name!r} has shape {list(array.shape)} but the model expects {list(tensor.shape)}")
        values[name] = array.astype(tensor.dtype, copy=False) if tensor.dtype is not None else array
    return values


def run_float(graph: Graph, feeds: Mapping[str, Any], *, keep_all: bool = False,
              on_value: Callable[[str, np.ndarray], None] | None = None) -> dict[str, np.ndarray]:
    """Execute ``graph`` on ``feeds`` (input name -> array).

    Returns the graph outputs by name; with ``keep_all=True`` every value
    computed (graph inputs and every node output) as well. ``on_value(name,
    value)`` is called for every graph input and every node output as soon as
    it exists: calibration folds its statistics there, while the value is
    still in cache and without keeping every activation of the batch alive."""
    env: dict[str, Any] = {name: t.data for name, t in graph.tensors.items() if t.data is not None}
    env.update(_check_feeds(graph, feeds))
    if on_value is not None:
        for name in graph.inputs:
            on_value(name, env[name])
    last_use: dict[str, int] = {}
    if not keep_all:
        for i, node in enumerate(graph.nodes):
            for name in node.inputs:
                last_use[name] = i
    keep = set(graph.outputs)
    computed: dict[str, np.ndarray] = {}
    for i, node in enumerate(graph.nodes):
        args = []
        for name in node.inputs:
            if not name:
                args.append(None)
            elif name in env:
                args.append(env[name])
            else:
                raise ModelError(f"input {name!r} has no value (not an input, constant or earlier output)",
                                 node=node.name)
        for name, value in zip(node.outputs, run_node(node, args, graph.opset)):
            if name:
                env[name] = value
                if keep_all:
                    computed[name] = value
                if on_value is not None:
                    on_value(name, value)
        if not keep_all:
            for name in node.inputs:
                if last_use.get(name) == i and name not in keep and graph.constant(name) is None:
                    env.pop(name, None)
    if keep_all:
        result = {name: env[name] for name in graph.inputs}
        result.update(computed)
        return result
    return {name: env[name] for name in graph.outputs}
