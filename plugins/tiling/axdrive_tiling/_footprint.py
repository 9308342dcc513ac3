"""How many L1 bytes a layer needs for a given number of height and output-channel tiles.

Why an estimate from the IR: the tiling decision comes before any buffer
exists. It counts what the code generator stages per tile (the input rows
with their halo, the unit's output rows, the DPU streams and result, times
the pipelining slots) plus the constants (weights, bias, requantization,
DPU code and tables); with ``ignore_weight_buffers`` the weights are left
out, because they stream through the IMC array one weight set at a time.
The code generator checks the exact bytes and adds tiles if this
estimate was short. :func:`rolling_bytes` is the same kind of estimate for the
rolling L1 buffer of a depth-first group's intermediate result.
"""

from __future__ import annotations

__all__ = ["Layer", "layer_of", "footprint", "rolling_bytes", "ALIGN"]

from dataclasses import dataclass

import numpy as np

from axdrive.ir import Graph, Node
from axdrive.operators import OperatorRegistry

ALIGN = 64


def _dshape(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    s = tuple(int(d) for d in shape)
    return (s[0], s[2], s[3], s[1]) if len(s) == 4 else (s[0], 1, 1, s[1])


@dataclass(frozen=True)
class Layer:
    """The geometry of one layer as far as tiling cares."""

    head: str
    out_shape: tuple[int, int, int, int]   # device NHWC of the layer's result
    in_shape: tuple[int, int, int, int] | None  # the unit's input (None: a DPU-only layer)
    window: tuple[int, int, int]  # kernel rows (dilated), stride, pad top; upsample layers: (0, -factor, 0)
    weight_bytes: int
    other_const_bytes: int
    dpu_bytes: int
    streams: int  # DPU streams loaded from homes (besides the unit's result)
    mvm: bool
    x: str | None
    output: str


def layer_of(g: Graph, head: Node, operators: OperatorRegistry) -> Layer:
    out = head.attrs.get("dpu_output", head.outputs[0])
    oshape = _dshape(g.tensors[out].shape)
    dpu = 0
    if head.attrs.get("dpu_program") is not None:
        for key in ("dpu_code", "dpu_consts", "dpu_luts"):
            v = head.attrs.get(key)
            if v is not None:
                dpu += int(np.asarray(v).nbytes) + ALIGN
    unit = operators.is_unit_head(head)
    streams = len(head.attrs.get("dpu_streams", [])) - (1 if unit else 0) if head.attrs.get("dpu_program") is not None \
        else 0
    if not unit:
        return Layer(head.name, oshape, None, (1, 1, 0), 0, 0, dpu, max(streams, 0), False, None, out)
    x = head.inputs[0]
    ishape = _dshape(g.tensors[x].shape)
    wbytes = other = 0
    window = (1, 1, 0)
    kind = head.attrs.get("integer_op")
    mvm = kind == "mac" and int(head.attrs.get("group", 1)) == 1
    if kind == "mac":
        w = g.constant(head.inputs[1])
        wbytes = int(w.size)
        other = 3 * 4 * int(w.shape[0]) + 3 * ALIGN
        if w.ndim == 4:
            dil = int(head.attrs.get("dilations", [1, 1])[0])
            window = ((int(w.shape[2]) - 1) * dil + 1, int(head.attrs.get("strides", [1, 1])[0]),
                      int(head.attrs.get("pads", [0, 0, 0, 0])[0]))
    elif kind == "avgpool":
        k = [ishape[1], ishape[2]] if head.op == "GlobalAveragePool" else list(head.attrs["kernel_shape"])
        other = int(k[0] * k[1] * ishape[3]) + 3 * 4 * ishape[3]
        s = 1 if head.op == "GlobalAveragePool" else int(head.attrs.get("strides", [1, 1])[0])
        p = 0 if head.op == "GlobalAveragePool" else int(head.attrs.get("pads", [0, 0, 0, 0])[0])
        window = (int(k[0]), s, p)
    elif head.op == "MaxPool":
        window = (int(head.attrs["kernel_shape"][0]), int(head.attrs.get("strides", [1, 1])[0]),
                  int(head.attrs.get("pads", [0, 0, 0, 0])[0]))
    elif head.op == "Resize":
        window = (0, -max(1, oshape[1] // max(ishape[1], 1)), 0)
    else:  # Expand: one input row broadcast
        window = (0, 0, 0)
    return Layer(head.name, oshape, ishape, window, wbytes, other, dpu, max(streams, 0), mvm, x, out)


def _in_rows(layer: Layer, rows: int) -> int:
    k, s, _p = layer.window
    if k == 0:
        return 1 if s == 0 else -(-rows // -s)
    return min((rows - 1) * s + k, layer.in_shape[1]) if layer.in_shape else 0


def footprint(layer: Layer, h_tiles: int, oc_tiles: int, slots: int, channel_slots: int,
              ignore_weights: bool) -> int:
    """Estimated L1 bytes of ``layer`` with ``h_tiles`` x ``oc_tiles`` tiles."""
    n, oh, ow, oc = layer.out_shape
    rows = -(-oh // max(1, min(h_tiles, oh)))
    tile = n * rows * ow * oc + ALIGN
    total = layer.dpu_bytes + (layer.streams + (1 if layer.dpu_bytes else 0)) * tile * slots
    if layer.in_shape is not None:
        _n, _h, iw, ic = layer.in_shape
        total += (n * _in_rows(layer, rows) * iw * ic + ALIGN) * slots + tile * slots
        chunks = max(1, oc_tiles) if layer.mvm else 1
        wb = 0 if ignore_weights else layer.weight_bytes
        if chunks > 1:
            total += (wb + layer.other_const_bytes) // chunks * channel_slots + tile // chunks * channel_slots
        else:
            total += wb + layer.other_const_bytes
    return total


def rolling_bytes(producer: Layer, consumer: Layer, producer_tiles: int, consumer_tiles: int) -> int:
    """Estimated L1 bytes of the rolling buffer between two layers of a depth-first group: the rows live at
    once, at most the input window of two consumer tiles (the code generator runs the producer one consumer
    tile ahead) plus one producer tile less a row, never more than the whole result."""
    n, h, w, c = producer.out_shape
    prows = -(-h // max(1, min(producer_tiles, h)))
    coh = consumer.out_shape[1]
    crows = -(-coh // max(1, min(consumer_tiles, coh)))
    rows = min(h, prows + max(1, _in_rows(consumer, min(2 * crows, coh))) - 1)
    return n * rows * w * c + ALIGN
