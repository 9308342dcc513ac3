"""Where a model's accelerator core begins and ends.

A model exported for deployment usually carries work that does not belong on
an int8 accelerator: input normalisation and layout changes at the front, and
at the back the decoding tail of a detector (reshapes into anchor lists,
distribution-focal-loss softmax, box arithmetic) or a classifier's final
softmax. The cleaner cuts the graph into three parts that, run in sequence,
compute exactly what the whole model computes:

* **pre** is *upstream-closed* from the inputs: normalisation by constants
  (and, with ``remove_layout_transform_from_preamble``, Transpose/Reshape);
* **post** is the *downstream closure* of the seed nodes, the first decoding
  operators after a convolution or dense layer (a softmax, an argmax or top-k,
  shape arithmetic, gathers, comparisons), or, with ``graph_cleaner_condition``,
  everything after the chosen node. A *final* Softmax (its output is a model
  output nobody else reads) over the channels of a batch-1 NC or NCHW tensor
  is no seed: the AIPU lowers it (DPU pixel reductions), so a classifier's
  probabilities come from the device (``keep_final_softmax``);
* **core** is the rest.

Because post is closed under consumers and pre under producers, no tensor
flows back from a later part to an earlier one, so the three parts chain.

A node with a host reason in the core (an operator without an int8 kernel or
an AIPU mapping, or one the user keeps on the host) then splits the core:
:func:`assign_levels` gives every node the earliest level of its kind (even:
host, odd: AIPU) not before its producers', and the levels become the parts,
in run order (:func:`build_parts`).
"""

from __future__ import annotations

__all__ = ["Part", "Split", "assign_levels", "build_parts", "find_split", "place_host_nodes", "is_lowerable_final_softmax", "choose_condition_node", "extract", "boundary_inputs", "boundary_outputs"]

from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np

from axdrive import operators
from axdrive.ir import Graph, Node, Tensor, graph_macs

#: Operators that only shape or decode results: they seed the post-processing tail.
HOST_TAIL_OPS = frozenset({
    "Softmax", "LogSoftmax", "ArgMax", "ArgMin", "TopK", "NonMaxSuppression", "NonZero", "Shape", "Size",
    "Gather", "GatherElements", "GatherND", "ScatterND", "Range", "Expand", "ConstantOfShape", "Tile",
    "Equal", "Greater", "Less", "Where", "Not", "And", "Or", "CumSum", "ReduceMax", "ReduceMin",
})
#: Layout operators: part of the preamble with ``remove_layout_transform_from_preamble``.
LAYOUT_OPS = frozenset({"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze"})
#: Operators that do the learned work (the core's operator class); the tail begins after the first of them.
MAC_OPS = operators.MAC_OPS
#: Element-wise operators by a constant: input normalisation in a preamble.
NORMALISE_OPS = frozenset({"Cast", "Div", "Mul", "Sub", "Add", "Identity"})


@dataclass
class Split:
    """Node names of each part, and the tensors that cross the cuts."""

    pre: list[str] = field(default_factory=list)
    core: list[str] = field(default_factory=list)
    post: list[str] = field(default_factory=list)
    core_inputs: list[str] = field(default_factory=list)
    core_outputs: list[str] = field(default_factory=list)
    cut_after: str | None = None  # the node chosen by a graph_cleaner_condition
    #: why each node of a host part runs on the host, in the user's terms
    reasons: dict[str, str] = field(default_factory=dict)
    #: every part in run order; ``core`` is the first device part, ``pre``/``post`` the host parts before
    #: every device part and after all of them
    parts: list["Part"] = field(default_factory=list)

    @property
    def device(self) -> list[str]:
        """The nodes of every device part."""
        return [n for p in self.parts if p.kind == "device" for n in p.nodes]

    def part_of(self) -> dict[str, str]:
        """The name of the part each node runs in."""
        return {n: p.name for p in self.parts for n in p.nodes}


def is_lowerable_final_softmax(graph: Graph, node: Node, users: dict[str, list[Node]] | None = None) -> bool:
    """A Softmax the AIPU runs: it ends the model (its output is a graph output, possibly through Identity
    nodes, and nothing else reads it) and it
    normalises over the channels (axis 1) of a batch-1 rank-2 or rank-4 tensor, which is what the DPU's
    pixel reductions compute (``lowering.validate_operators`` checks the same on the quantized node)."""
    if node.op != "Softmax" or len(node.outputs) != 1:
        return False
    users = graph.consumer_map() if users is None else users
    tensor = node.outputs[0]
    while tensor not in graph.outputs or users.get(tensor):  # through Identity nodes only (PP-OCR has one)
        readers = users.get(tensor, [])
        if tensor in graph.outputs or len(readers) != 1 or readers[0].op != "Identity":
            return False
        tensor = readers[0].outputs[0]
    shape = tuple(graph.tensors[node.inputs[0]].shape or ())
    if len(shape) not in (2, 4) or shape[0] != 1:
        return False
    default = -1 if graph.opset >= 13 else 1
    axis = int(node.attrs.get("axis", default)) % len(shape)
    # before opset 13 Softmax flattens everything from axis on: only the channels when nothing follows them
    return axis == 1 and (graph.opset >= 13 or len(shape) == 2)


def _is_tail_seed(graph: Graph, node: Node) -> bool:
    """A node whose downstream closure is post-processing: a decoding operator (:data:`HOST_TAIL_OPS`).

    A layout operator (Reshape, Transpose, ...) is no seed, wherever it is:
    the plugins judge it node by node (``axdrive_host_reason``: a reshape
    into a sequence has rank 3, a Transpose moves the channels), so it alone
    goes to the host and the network after it stays on the AIPU, as a further
    device segment. Measured when this replaced the older rule (a layout op
    seeded the tail unless it flattened a 1x1 map): the visible corpus and the
    PP-OCRv4 models place exactly as before (YOLOv8n's and PP-OCR's artifacts
    byte-identical); a convolution after an LSTM reached through Reshapes, or
    after a channel Transpose, stays on the AIPU (docs/benchmarks.md)."""
    return node.op in HOST_TAIL_OPS


def _constant_operand(graph: Graph, node: Node) -> bool:
    """True for an element-wise op whose other operands are constants that
    broadcast per channel or less (a normalisation, not a learned map)."""
    if node.op in ("Cast", "Identity"):
        return True
    consts = [graph.constant(i) for i in node.inputs if i and graph.is_constant(i)]
    if len(consts) != len(node.inputs) - 1:
        return False
    out = graph.tensors[node.outputs[0]].shape or ()
    return all(c is not None and c.size <= max(out[1] if len(out) > 1 else 1, out[-1] if out else 1) for c in consts)


def choose_condition_node(graph: Graph, op_type: str, condition: str, threshold: int) -> Node | None:
    """The node of type ``op_type`` with the largest weight measure above ``threshold``.

    The measure is the size of the node's largest constant input
    (``maximum_weight_tensor_size``) or that input's first dimension
    (``maximum_weight_tensor_first_dimension_size``). Ties go to the node
    furthest down the graph, which keeps the most work on the accelerator.
    """
    best: tuple[int, int, Node] | None = None
    for index, node in enumerate(graph.nodes):
        if node.op != op_type:
            continue
        weights = [graph.constant(i) for i in node.inputs if i and graph.is_constant(i)]
        if not weights:
            continue
        weight = max(weights, key=lambda w: w.size)
        measure = int(weight.size) if condition == "maximum_weight_tensor_size" else int(
            weight.shape[0] if weight.ndim else 1)
        if measure <= threshold:
            continue
        if best is None or (measure, index) > (best[0], best[1]):
            best = (measure, index, node)
    return best[2] if best else None


def _downstream(graph: Graph, seeds: Iterable[Node]) -> set[str]:
    users = graph.consumer_map()
    todo = list(seeds)
    seen: set[str] = set()
    while todo:
        node = todo.pop()
        if node.name in seen:
            continue
        seen.add(node.name)
        for out in node.outputs:
            todo.extend(users.get(out, ()))
    return seen


@dataclass
class Part:
    """One part of the chain ``axdrive run`` executes: host ONNX (onnxruntime, float) or a device segment."""

    kind: str  # "host" | "device"
    name: str  # host_preprocess, host_part1, host_postprocess; device1, device2, ...
    nodes: list[str]
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


#: Why a device segment goes to the host when the model has several (see :func:`assign_levels`).
NO_MACS_REASON = ("a device segment between host parts with no multiply-accumulate work: two boundary "
                  "crossings would cost more than running it on the host")


def assign_levels(graph: Graph, pre: set[str], post: set[str], host: Mapping[str, str]) -> dict[str, int]:
    """The part of every node: even levels run on the host, odd ones on the AIPU; the chain runs them in order.

    Each node goes to the earliest level of its kind that is not before any of
    its producers' levels, so every tensor flows from a level to the same or a
    later one and the parts chain (TVM's and onnxruntime's partitioners keep
    the same invariant). ``pre`` is level 0; ``post`` (closed under consumers)
    joins the last host level after the last device one. Every node the AIPU
    can run stays on it: a host node in the middle of a network gives two
    device segments, not a host closure.
    """
    producers = graph.producers()
    level: dict[str, int] = {}
    for node in graph.nodes:  # topological order
        if node.name in post:
            continue
        lo = max((level[producers[i].name] for i in node.inputs if i in producers and producers[i].name in level),
                 default=0)
        if node.name in pre:
            level[node.name] = 0
            continue
        parity = 0 if node.name in host else 1
        level[node.name] = lo if lo % 2 == parity else lo + 1
    top = max(level.values(), default=1)
    last_host = top + 1 if top % 2 else top
    level.update({name: last_host for name in post})
    return level


def _device_levels(graph: Graph, level: Mapping[str, int]) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for node in graph.nodes:
        if level.get(node.name, 0) % 2:
            found.setdefault(level[node.name], []).append(node.name)
    return found


def place_host_nodes(graph: Graph, pre: set[str], post: set[str],
                     host_reasons: Mapping[str, str]) -> tuple[dict[str, int], dict[str, str]]:
    """Levels for every node (:func:`assign_levels`), with each node that has a host reason on the host.

    When that leaves several device segments, a segment without
    multiply-accumulate work (a lone activation between two host nodes) goes
    to the host too, as long as one with MACs remains: it would cost two
    quantize/dequantize crossings and a program of its own for no MACs. Returns
    the levels and the reason of every node that runs on the host because of
    this placement (not pre- or post-processing).
    """
    host = {n: r for n, r in host_reasons.items() if n not in pre and n not in post}
    while True:
        level = assign_levels(graph, pre, post, host)
        segments = _device_levels(graph, level)
        costs = {lvl: graph_macs(graph, set(names)) for lvl, names in segments.items()}
        idle = [lvl for lvl, macs in costs.items() if macs == 0]
        if len(segments) < 2 or not idle or len(idle) == len(segments):
            return level, host
        for lvl in idle:
            host.update({name: NO_MACS_REASON for name in segments[lvl]})


def build_parts(graph: Graph, level: Mapping[str, int]) -> list[Part]:
    """The non-empty levels as :class:`Part` objects in run order, with the tensors crossing each boundary."""
    by_level: dict[int, list[str]] = {}
    for node in graph.nodes:
        by_level.setdefault(level[node.name], []).append(node.name)
    order = sorted(by_level)
    last_device = max((lvl for lvl in order if lvl % 2), default=-1)
    parts: list[Part] = []
    middle = device = 0
    for lvl in order:
        names = by_level[lvl]
        if lvl % 2:
            device += 1
            kind, name = "device", f"device{device}"
        elif lvl == 0:
            kind, name = "host", "host_preprocess"
        elif lvl > last_device:
            kind, name = "host", "host_postprocess"
        else:
            middle += 1
            kind, name = "host", f"host_part{middle}"
        later = [n for lv in order if lv > lvl for n in by_level[lv]]
        parts.append(Part(kind, name, names, boundary_inputs(graph, names), boundary_outputs(graph, names, later)))
    return parts


def find_split(graph: Graph, *, split_pre: bool, layout_preamble_to_host: bool,
               cut_after: Node | None = None, keep_final_softmax: bool = True,
               host_reasons: Mapping[str, str] | None = None,
               device_inputs: Iterable[str] = (), device_outputs: Iterable[str] = ()) -> Split:
    """Partition ``graph`` into pre, core and post (see the module docstring); then every node with a
    ``host_reasons`` entry leaves the core with the cheaper of its closures (:func:`place_host_nodes`).

    ``device_outputs`` / ``device_inputs`` are the user's cuts: what reads such a tensor goes to post
    (with everything after it), what computes one goes to pre (with everything before it)."""
    # a layout change or softmax *before* the first MAC op is preamble, not tail
    after_mac = _downstream(graph, [n for n in graph.nodes if n.op in MAC_OPS])
    users = graph.consumer_map()
    seeds = [n for n in graph.nodes if n.name in after_mac and n.op not in MAC_OPS and _is_tail_seed(graph, n)
             and not (keep_final_softmax and is_lowerable_final_softmax(graph, n, users))]
    if cut_after is not None:
        seeds += [u for out in cut_after.outputs for u in users.get(out, ())]
    seed_ops = {n.name: f"{n.op} begins the decoding tail" for n in seeds}
    for tensor in device_outputs:
        for reader in users.get(tensor, ()):
            seeds.append(reader)
            seed_ops[reader.name] = f"it reads {tensor!r}, where the user ends the device part (device_outputs)"
    post = _downstream(graph, seeds)

    pre: set[str] = set()
    if split_pre:
        available = set(graph.inputs)
        allowed = NORMALISE_OPS | (LAYOUT_OPS if layout_preamble_to_host else frozenset())
        for node in graph.nodes:  # topological order: a node's producers are decided first
            runtime = [i for i in node.inputs if i and not graph.is_constant(i)]
            if (node.name not in post and node.op in allowed and runtime and all(i in available for i in runtime)
                    and not any(o in graph.outputs for o in node.outputs)
                    and (node.op in LAYOUT_OPS or _constant_operand(graph, node))):
                pre.add(node.name)
                available.update(o for o in node.outputs if o)

    reasons = {n: (f"post-processing: {seed_ops[n]}" if n in seed_ops
                   else "post-processing: after the model's decoding or shaping tail") for n in post}
    reasons.update({n: "pre-processing: input normalisation or layout" for n in pre})
    producers = graph.producers()
    for tensor in device_inputs:
        if tensor not in producers:
            continue  # a model input: nothing computes it
        before = graph.upstream(producers[tensor])
        clash = sorted(before & post)
        if clash:
            raise ValueError(f"device_inputs {tensor!r}: node {clash[0]!r}, which computes it, also runs after "
                             "the device part (post-processing or device_outputs)")
        made = sorted(o for n in graph.nodes if n.name in before for o in n.outputs if o in graph.outputs)
        if made:
            raise ValueError(f"device_inputs {tensor!r}: what computes it also computes the model output "
                             f"{made[0]!r}, which host pre-processing cannot return")
        for name in before - pre:
            reasons[name] = f"pre-processing: it computes {tensor!r}, where the user starts the device part " \
                            "(device_inputs)"
        pre |= before
    level, host = place_host_nodes(graph, pre, post, host_reasons or {})
    reasons.update(host)
    # a node the tail or the preamble took anyway still says what it cannot do itself (an LSTM in a tail)
    reasons.update({n: r for n, r in (host_reasons or {}).items() if n in pre or n in post})

    parts = build_parts(graph, level)
    first = next((p for p in parts if p.kind == "device"), None)
    on_host = {n for p in parts if p.kind == "host" for n in p.nodes}
    split = Split(
        reasons={n.name: reasons[n.name] for n in graph.nodes if n.name in on_host},
        pre=next((p.nodes for p in parts if p.name == "host_preprocess"), []),
        core=first.nodes if first else [],
        post=next((p.nodes for p in parts if p.name == "host_postprocess"), []),
        cut_after=cut_after.name if cut_after is not None else None,
        parts=parts,
    )
    if first is not None:
        split.core_inputs, split.core_outputs = first.inputs, first.outputs
    return split


def boundary_inputs(graph: Graph, names: list[str]) -> list[str]:
    """Run-time tensors the given nodes read but do not produce, in first-use order."""
    members = {n.name: n for n in graph.nodes if n.name in set(names)}
    produced = {o for n in members.values() for o in n.outputs if o}
    seen: dict[str, None] = {}
    for node in graph.nodes:
        if node.name in members:
            for i in node.inputs:
                if i and i not in produced and not graph.is_constant(i):
                    seen.setdefault(i)
    return list(seen)


def boundary_outputs(graph: Graph, part: list[str], later: list[str]) -> list[str]:
    """Tensors ``part`` produces that a later part or the model's outputs read."""
    members = set(part)
    later_nodes = [n for n in graph.nodes if n.name in set(later)]
    wanted = set(graph.outputs) | {i for n in later_nodes for i in n.inputs if i}
    outs: list[str] = []
    for node in graph.nodes:
        if node.name in members:
            outs.extend(o for o in node.outputs if o and o in wanted)
    return outs


def extract(graph: Graph, names: list[str], inputs: list[str], outputs: list[str], name: str) -> Graph:
    """A standalone graph of the nodes ``names`` with the given boundary tensors."""
    keep = set(names)
    nodes = [n for n in graph.nodes if n.name in keep]
    used = set(inputs) | set(outputs) | {t for n in nodes for t in (*n.inputs, *n.outputs) if t}
    tensors: dict[str, Tensor] = {}
    for t in sorted(used):
        src = graph.tensors[t]
        tensors[t] = Tensor(src.name, src.shape, src.dtype, src.data, src.qparams)
    sub = Graph(name=name, nodes=[_copy_node(n) for n in nodes], tensors=tensors, inputs=list(inputs),
                outputs=list(outputs), opset=graph.opset)
    return sub


def _copy_node(node: Node) -> Node:
    attrs = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in node.attrs.items()}
    return Node(node.name, node.op, list(node.inputs), list(node.outputs), attrs, node.domain, node.source)
