"""Does the calibration data have the scale the model was trained on? A cheap signal at the first layer.

Why this signal: a first convolution trained with batch normalisation has, once
the normalisation is folded in, a bias ``b = beta - gamma * mu / sigma`` and a
weight ``gamma / sigma * W``. On inputs of the scale it was trained on, the
data-driven part ``W x`` varies across pixels by about ``|gamma|``, the order of
the bias too. Feed it inputs 255 times too small (pixels in [0, 1] for a model
trained on [0, 255]) and ``W x`` shrinks 255 times while the bias stays: the
first layer outputs nearly its bias everywhere. 255 times too large and ``W x``
swamps it. So the ratio

    R = rms over output channels of std(W x)  /  rms of the bias

moves by exactly the input's scale factor, whatever the model, and costs one
convolution on a few samples. Measured on the corpus with each model's own
preprocessing (``python benchmarks/bench_input_scale.py``; docs/quantization.md,
"Is the calibration data scaled right?"):

    model          right scale   x 1/255   x 255
    YOLOv8n          1.03         0.0040    263
    PP-OCR cls       0.53         0.0021    136
    PicoDet layout   0.25         0.00097    63
    PP-OCRv4 det     1.48         0.0058    378
    PP-OCRv4 rec     1.32         0.0052    336

:data:`BAND` lies between the groups with a margin of about 6x on each side
(geometric means of the gaps). A first layer without a bias, or one that reads
no model input, gives no signal and no warning.
"""

from __future__ import annotations

__all__ = ["BAND", "SAMPLES", "input_scale", "scale_warning"]

from typing import Any

import numpy as np

from axdrive.ir import Graph, Node
from axdrive.reference import run_float, run_node

#: ``(low, high)``: the ratio R of a first layer on inputs of its trained scale lies inside (see the table).
BAND = (0.04, 10.0)
#: Samples the ratio is measured on: enough for a stable standard deviation over every pixel, few enough to cost
#: less than one calibration batch.
SAMPLES = 4


def _first_layer(graph: Graph) -> Node | None:
    for node in graph.nodes:
        if node.op in ("Conv", "Gemm") and node.domain == "" and graph.is_constant(node.input(1)) \
                and node.input(2) and graph.is_constant(node.input(2)):
            return node
    return None


def input_scale(graph: Graph, feeds: dict[str, np.ndarray]) -> dict[str, Any] | None:
    """``{"node", "ratio", "band"}`` for the first Conv/Gemm with a constant bias, or None (no signal)."""
    node = _first_layer(graph)
    if node is None:
        return None
    bias = np.asarray(graph.constant(node.input(2)), np.float64).reshape(-1)
    bias_rms = float(np.sqrt(np.mean(bias ** 2))) if bias.size else 0.0
    if not bias_rms > 0:
        return None
    x_name = node.input(0)
    feeds = {k: v[:SAMPLES] for k, v in feeds.items()}
    if x_name in feeds:
        x = feeds[x_name]
    else:
        producer = graph.producers().get(x_name)
        if producer is None:
            return None  # a constant input: nothing the calibration data decides
        need = graph.upstream(producer)
        nodes = [n for n in graph.nodes if n.name in need]
        sub = Graph(graph.name, nodes, graph.tensors, list(graph.inputs), [x_name], graph.opset)
        count = int(next(iter(feeds.values())).shape[0])  # one sample at a time: the graph's batch is 1
        x = np.concatenate([run_float(sub, {k: v[i:i + 1] for k, v in feeds.items()})[x_name] for i in range(count)])
    w = graph.constant(node.input(1))
    plain = Node(node.name, node.op, [node.input(0), node.input(1)], list(node.outputs), dict(node.attrs))
    u = np.asarray(run_node(plain, [x, w], graph.opset)[0], np.float64)
    per_channel = np.moveaxis(u, 1, 0).reshape(u.shape[1], -1) if u.ndim >= 2 else u.reshape(1, -1)
    spread = float(np.sqrt(np.mean(per_channel.std(axis=1) ** 2)))
    return {"node": node.name, "ratio": float(f"{spread / bias_rms:.4g}"), "band": list(BAND)}


def scale_warning(found: dict[str, Any] | None) -> str | None:
    """The user's one line when the ratio leaves :data:`BAND`, naming the likely fix; else None."""
    if found is None:
        return None
    r, (low, high) = found["ratio"], BAND
    where = (f"the first layer {found['node']!r} responds to the calibration data at {r:g}x its bias "
             f"(inputs of the scale a model was trained on give {low:g} to {high:g})")
    if r < low:
        return (f"calibration data looks too small for this model: {where}; if the model takes pixels in "
                "[0, 255], do not scale them (--preprocess scale=1)")
    if r > high:
        return (f"calibration data looks too large for this model: {where}; if the model takes normalized "
                "input, scale the pixels (--preprocess scale=1/255, and mean/std if it was trained with them)")
    return None
