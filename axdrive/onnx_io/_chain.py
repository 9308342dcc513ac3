"""One ONNX model from a chain of ONNX parts joined by tensor name.

A compiled model is a chain (``manifest.json`` ``parts``): host parts in float
and, per device segment, a QDQ model with float inputs and outputs. Each part
reads its inputs by name from what the model's inputs and the earlier parts
provide. Joining them is a concatenation of their graphs, once the names that
are private to a part (initializers, intermediate values, node names) are
made unique: a private name that another part also uses gets the part's name
as a prefix, in the part and in any subgraph that refers to it. The names
that cross parts keep theirs, so the joined model takes the model's inputs
and returns its outputs under their original names (what ``onnx.compose``
does two models at a time with ``io_map`` and prefixes on every name).
"""

from __future__ import annotations

__all__ = ["chain_models"]

from typing import Iterable, Sequence

from ..errors import ModelError


def _names(graph) -> set[str]:  # type: ignore[no-untyped-def]
    """Every value and node name a graph (and its subgraphs) defines or reads."""
    import onnx

    found: set[str] = {i.name for i in graph.initializer} | {i.name for i in graph.input}
    found |= {o.name for o in graph.output}
    for node in graph.node:
        found.update(n for n in (*node.input, *node.output) if n)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                found |= _names(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    found |= _names(g)
    return found


def _rename(graph, mapping: dict[str, str], node_prefix: str, top: bool = True) -> None:  # type: ignore[no-untyped-def]
    """Rename values per ``mapping`` everywhere in ``graph``, subgraphs included (an outer name a subgraph reads
    is renamed with it); node names of the top graph get ``node_prefix``."""
    import onnx

    def fix(name: str) -> str:
        return mapping.get(name, name)

    for t in graph.initializer:
        t.name = fix(t.name)
    for vi in (*graph.input, *graph.output, *graph.value_info):
        vi.name = fix(vi.name)
    for node in graph.node:
        node.input[:] = [fix(n) if n else n for n in node.input]
        node.output[:] = [fix(n) if n else n for n in node.output]
        if top and node.name:
            node.name = node_prefix + node.name
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _rename(attr.g, mapping, node_prefix, top=False)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    _rename(g, mapping, node_prefix, top=False)


def _first_reads(models: Sequence[tuple[str, object]]) -> list[str]:
    """What the parts read that no earlier part computes, in first-use order: the chain's run-time inputs."""
    produced: set[str] = set()
    found: dict[str, None] = {}
    for _, model in models:
        inits = {i.name for i in model.graph.initializer}  # type: ignore[attr-defined]
        for i in model.graph.input:  # type: ignore[attr-defined]
            if i.name not in produced and i.name not in inits:
                found.setdefault(i.name)
        produced |= {o.name for o in model.graph.output}  # type: ignore[attr-defined]
    return list(found)


def chain_models(parts: Sequence[tuple[str, object]], inputs: Iterable[str] | None, outputs: Iterable[str],
                 name: str = "chain"):  # type: ignore[no-untyped-def]
    """Join ``parts`` (``(part name, onnx.ModelProto)`` in run order) into one model with the given inputs
    (``None``: what the parts read that no earlier part computes) and outputs (names the parts compute). The parts must agree on each domain's opset: a model
    cannot import one domain at two versions. Raises :class:`ModelError` (one line) when they do not, or
    when an input or output is not found in any part."""
    import copy

    import onnx
    from onnx import helper

    models = [(label, copy.deepcopy(m)) for label, m in parts]
    inputs = _first_reads(models) if inputs is None else list(inputs)
    outputs = list(outputs)
    opsets: dict[str, int] = {}
    for label, m in models:
        for imp in m.opset_import:
            domain = imp.domain or ""
            if opsets.setdefault(domain, imp.version) != imp.version:
                raise ModelError(f"the parts import domain {domain or 'ai.onnx'!r} at opsets {opsets[domain]} and "
                                 f"{imp.version} ({label}); one model cannot hold both")
    boundary: set[str] = set(inputs) | set(outputs)
    for _, m in models:
        boundary |= {i.name for i in m.graph.input} | {o.name for o in m.graph.output}
    seen: dict[str, str] = {}  # private name -> the part that used it first
    for label, m in models:
        private = _names(m.graph) - boundary
        mapping = {n: f"{label}/{n}" for n in private if n in seen}
        for n in private:
            seen.setdefault(n, label)
        _rename(m.graph, mapping, f"{label}/")
    producers = {}
    consumers = {}
    for _, m in models:
        for o in m.graph.output:
            producers.setdefault(o.name, o)
        for i in m.graph.input:
            consumers.setdefault(i.name, i)
    try:
        graph_inputs = [consumers[n] for n in inputs]
        graph_outputs = [producers[n] for n in outputs]
    except KeyError as exc:
        raise ModelError(f"no part reads or computes tensor {exc.args[0]!r}") from None
    inits = {i.name for _, m in models for i in m.graph.initializer}
    graph = helper.make_graph(
        [n for _, m in models for n in m.graph.node], name,
        [i for i in graph_inputs if i.name not in inits], graph_outputs,
        [t for _, m in models for t in m.graph.initializer])
    merged = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(opsets.items())])
    merged.ir_version = max(m.ir_version for _, m in models)
    try:
        onnx.checker.check_model(merged)
    except onnx.checker.ValidationError as exc:
        raise ModelError(f"the joined model is not valid ONNX: {str(exc).splitlines()[0]}") from None
    return merged
