"""ONNX's own backend node tests (``onnx.backend.test.case.node``), generated in the test session.

The onnx wheel ships the *generators* of its node tests, not their data: importing
``onnx.backend.test.case.node`` runs every ``export_*`` function, each of which builds a
one-node model (and, for operators defined by a function, its ``_expanded`` form) with
inputs and the expected outputs. :func:`all_cases` does that once per process (about 6 s,
most of it in onnx's pure-Python pooling references) and keeps the result.

:func:`static_case` turns a case into what axdrive compiles: a model whose shapes are static.
The backend tests feed shape *parameters* (Reshape's shape, Slice's starts, a reduction's
axes, ...) as run-time graph inputs; a static-shape compiler needs them constant, so they
become initializers holding the test's values (the model is otherwise untouched).
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

#: Inputs that parameterize an output *shape*, by operator (ONNX spec): bound as initializers.
SHAPE_INPUTS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,), "Expand": (1,), "Tile": (1,), "Squeeze": (1,), "Unsqueeze": (1,), "Split": (1,),
    "Slice": (1, 2, 3, 4), "Pad": (1, 3), "ConstantOfShape": (0,), "Range": (0, 1, 2), "Resize": (1, 2, 3),
    **{op: (1,) for op in ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
                           "ReduceL2", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp")},
}

#: Element types the importer and the float executor handle (numpy's own bool, integer and float types).
SUPPORTED_ELEM_TYPES = frozenset({
    TensorProto.BOOL, TensorProto.INT8, TensorProto.INT16, TensorProto.INT32, TensorProto.INT64,
    TensorProto.UINT8, TensorProto.UINT16, TensorProto.UINT32, TensorProto.UINT64,
    TensorProto.FLOAT16, TensorProto.FLOAT, TensorProto.DOUBLE,
})


@dataclass(frozen=True)
class NodeCase:
    name: str
    model: onnx.ModelProto
    inputs: tuple
    outputs: tuple
    rtol: float
    atol: float

    @functools.cached_property
    def opset(self) -> int:
        return next(o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx"))

    @functools.cached_property
    def ops(self) -> frozenset[tuple[str, str]]:
        """(domain, op type) of every node, subgraphs included."""
        found: set[tuple[str, str]] = set()

        def walk(graph: onnx.GraphProto) -> None:
            for node in graph.node:
                found.add(("" if node.domain == "ai.onnx" else node.domain, node.op_type))
                for attr in node.attribute:
                    if attr.type == onnx.AttributeProto.GRAPH:
                        walk(attr.g)
                    for sub in attr.graphs:
                        walk(sub)

        walk(self.model.graph)
        return frozenset(found)

    @functools.cached_property
    def elem_types(self) -> frozenset[int]:
        """Element types the model declares: inputs, outputs, initializers, Cast targets."""
        g = self.model.graph
        types = {vi.type.tensor_type.elem_type for vi in [*g.input, *g.output] if vi.type.HasField("tensor_type")}
        types |= {t.data_type for t in g.initializer}
        for node in g.node:
            for attr in node.attribute:
                if node.op_type == "Cast" and attr.name == "to" or attr.name == "output_dtype" and attr.i:
                    types.add(attr.i)
                if attr.type == onnx.AttributeProto.TENSOR:
                    types.add(attr.t.data_type)
        return frozenset(types)


def _array(value) -> np.ndarray:
    return numpy_helper.to_array(value) if isinstance(value, TensorProto) else value


@functools.cache
def all_cases() -> tuple[NodeCase, ...]:
    """Every node test case of the installed onnx package, in generation order (built once)."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        raw = collect_testcases()
    cases = []
    for case in raw:
        (inputs, outputs), = case.data_sets
        cases.append(NodeCase(case.name, case.model, tuple(inputs), tuple(outputs), case.rtol, case.atol))
    return tuple(cases)


def _shape_sources(graph: onnx.GraphProto) -> set[str]:
    """Every tensor whose *values* reach a shape parameter (directly, or through the
    arithmetic of an expanded function: a window's size feeding Range), walking back from
    the shape parameters through producers (not through Shape/Size, which read shapes only)."""
    producer = {out: node for node in graph.node for out in node.output if out}
    todo = [node.input[i] for node in graph.node for i in SHAPE_INPUTS.get(node.op_type, ())
            if i < len(node.input) and node.input[i]]
    found: set[str] = set()
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        node = producer.get(name)
        if node is not None and node.op_type not in ("Shape", "Size"):
            todo.extend(n for n in node.input if n)
    return found


def static_case(case: NodeCase) -> tuple[onnx.ModelProto, dict[str, object]]:
    """The case's model with its shape-parameter inputs bound as initializers, and the feeds
    (input name -> array) of the inputs that stay run-time inputs."""
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    g = model.graph
    init_names = {t.name for t in g.initializer}
    names = [vi.name for vi in g.input if vi.name not in init_names]
    values = dict(zip(names, case.inputs))
    bind = {name for name in _shape_sources(g) if name in values}
    if bind:
        kept = [vi for vi in g.input if vi.name not in bind]
        del g.input[:]
        g.input.extend(kept)
        for name in sorted(bind):
            value = values[name]
            g.initializer.append(value if isinstance(value, TensorProto) else numpy_helper.from_array(value, name))
            g.initializer[-1].name = name
    feeds = {name: _array(v) for name, v in values.items() if name not in bind}
    return model, feeds


def mismatch(name: str, got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> str | None:
    """Why ``got`` is not ``want`` (None if it is): shape and dtype exactly, ints and bools
    exactly, floats within ``rtol``/``atol`` like onnx's backend runner (NaN equals NaN)."""
    got, want = np.asarray(got), np.asarray(_array(want))
    if got.shape != want.shape or got.dtype != want.dtype:
        return f"output {name!r}: got {got.dtype}{list(got.shape)}, expected {want.dtype}{list(want.shape)}"
    if want.dtype.kind == "f":
        close = np.isclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol, equal_nan=True)
    else:
        close = got == want
    if np.all(close):
        return None
    bad = np.argwhere(~np.asarray(close).reshape(want.shape) if want.ndim else ~np.asarray([close]))
    at = tuple(int(i) for i in bad[0]) if want.ndim else ()
    return (f"output {name!r}: {len(bad)} of {want.size} values differ, first at {list(at)}: "
            f"got {got[at]!r}, expected {want[at]!r}")
