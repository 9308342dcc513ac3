"""Take the int8 core out of a graph that keeps float inputs and outputs.

Why: the quantizer (unless ``remove_io_quantization``) wraps the quantized
core in ``quantize``/``dequantize`` nodes so the graph takes and returns
float. Those conversions are the host's job at the device boundary
(``axdrive run`` quantizes with the manifest's parameters), so the lowering
works on the int8 core. The core's tensors get the float graph's names back,
so the manifest, the host pre/post-processing parts and the runner still
chain by name.
"""

from __future__ import annotations

__all__ = ["strip_float_io"]

from axdrive.ir import Graph


def strip_float_io(graph: Graph) -> dict[str, int]:
    """Remove edge ``quantize``/``dequantize`` nodes in place; returns statistics."""
    renames: dict[str, str] = {}
    kept = []
    removed = 0
    for node in graph.nodes:
        kind = node.attrs.get("integer_op")
        if kind == "quantize" and node.inputs[0] in graph.inputs:
            renames[node.outputs[0]] = node.inputs[0]
            removed += 1
            continue
        if kind == "dequantize" and node.outputs[0] in graph.outputs:
            renames[node.inputs[0]] = node.outputs[0]
            removed += 1
            continue
        kept.append(node)
    for int8_name, edge_name in renames.items():
        t = graph.tensors.pop(int8_name)
        t.name = edge_name
        graph.tensors[edge_name] = t
    for node in kept:
        node.inputs = [renames.get(x, x) for x in node.inputs]
        node.outputs = [renames.get(x, x) for x in node.outputs]
    graph.nodes = kept
    return {"edge_conversions_removed": removed}
