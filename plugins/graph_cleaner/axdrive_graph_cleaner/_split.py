"""Where a model's accelerator core begins and ends.

A model exported for deployment usually carries work that does not belong on
an int8 accelerator: input normalisation and layout changes at the front, and
at the back the decoding tail of a detector (reshapes into anchor lists,
distribution-focal-loss softmax, box arithmetic) or a classifier's final
softmax. The cleaner cuts the graph into three parts that, run in sequence,
compute exactly what the whole model computes:

* **pre** is *upstream-closed* from the inputs: normalisation by constants
  (and, with ``remove_layout_transform_from_preamble``, Transpose/Reshape);
* **post** is the *downstream closure* of the seed nodes, the first nodes after
  a convolution or dense layer that leave the world of feature maps (a
  softmax, shape arithmetic, a reshape that is not a mere flatten of a 1x1
  map), or, with ``graph_cleaner_condition``,
  everything after the chosen node. A *final* Softmax (its output is a model
  output nobody else reads) over the channels of a batch-1 NC or NCHW tensor
  is no seed: the AIPU lowers it (DPU pixel reductions), so a classifier's
  probabilities come from the device (``keep_final_softmax``);
* **core** is the rest.

Because post is closed under consumers and pre under producers, no tensor
flows back from a later part to an earlier one, so the three parts chain.
"""

from __future__ import annotations

__all__ = ["Split", "find_split", "place_host_nodes", "is_lowerable_final_softmax", "choose_condition_node", "extract", "boundary_inputs", "boundary_outputs"]

from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np

from axdrive.ir import Graph, Node, Tensor, graph_macs

#: Operators that only shape or decode results: they seed the post-processing tail.
HOST_TAIL_OPS = frozenset({
    "Softmax", "LogSoftmax", "ArgMax", "ArgMin", "TopK", "NonMaxSuppression", "NonZero", "Shape", "Size",
    "Gather", "GatherElements", "GatherND", "ScatterND", "Range", "Expand", "ConstantOfShape", "Tile",
    "Equal", "Greater", "Less", "Where", "Not", "And", "Or", "CumSum", "ReduceMax", "ReduceMin",
})
#: Layout operators: tail seeds unless they only flatten a 1x1 feature map.
LAYOUT_OPS = frozenset({"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze"})
#: Operators that do the learned work; the tail begins after the first of them.
MAC_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm"})
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
    #: why each node of pre and post runs on the host, in the user's terms
    reasons: dict[str, str] = field(default_factory=dict)


def _is_flatten_of_vector(graph: Graph, node: Node) -> bool:
    """A layout op that keeps the data of a (N, C, 1, ..., 1) map as (N, C) or back:
    for the hardware that is no change at all (a dense layer's input)."""
    src = graph.tensors[node.inputs[0]].shape or ()
    dst = graph.tensors[node.outputs[0]].shape or ()

    def vector(shape: tuple[int, ...]) -> bool:
        return len(shape) >= 2 and all(d == 1 for d in shape[2:])

    return vector(tuple(src)) and vector(tuple(dst)) and tuple(src)[:2] == tuple(dst)[:2]


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
    if node.op in HOST_TAIL_OPS:
        return True
    return node.op in LAYOUT_OPS and not _is_flatten_of_vector(graph, node)


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


def _upstream(graph: Graph, node: Node) -> set[str]:
    producers = graph.producers()
    todo, seen = [node], set()
    while todo:
        n = todo.pop()
        if n.name in seen:
            continue
        seen.add(n.name)
        todo.extend(producers[i] for i in n.inputs if i in producers)
    return seen


def place_host_nodes(graph: Graph, pre: set[str], post: set[str], host_reasons: Mapping[str, str]) -> dict[str, str]:
    """Move every node with a host reason out of the core, with the side of it that costs fewer MACs.

    A node the accelerator cannot run takes either its upstream closure into
    pre (everything it depends on) or its downstream closure into post
    (everything that depends on it): either way the three parts still chain.
    The side chosen keeps more multiply-accumulates on the accelerator; a tie
    goes to post (the front of a network is where its convolutions are). Pre
    cannot take a node whose closure reaches into post or produces a model
    output (the chain returns the outputs of core and post). Updates ``pre``
    and ``post``; returns, for every node moved, why.
    """
    by_name = {n.name: n for n in graph.nodes}
    outputs = set(graph.outputs)
    why: dict[str, str] = {}
    for node in graph.nodes:  # topological order: an earlier placement may already have taken a later node
        reason = host_reasons.get(node.name)
        if reason is None or node.name in pre or node.name in post:
            continue
        up, down = _upstream(graph, node), _downstream(graph, [node])
        cost_up = graph_macs(graph, up - pre)
        cost_down = graph_macs(graph, down - post)
        pre_ok = not (up & post) and not any(o in outputs for n in up for o in by_name[n].outputs)
        side, taken = ("pre", up - pre) if pre_ok and cost_up < cost_down else ("post", down - post)
        (pre if side == "pre" else post).update(taken)
        why[node.name] = reason
        relation = "upstream" if side == "pre" else "downstream"
        for name in taken - {node.name}:
            why.setdefault(name, f"{relation} of host node {node.name!r} ({reason})")
    return why


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
    seed_ops = {n.name: f"{n.op} leaves the feature maps" for n in seeds}
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
        before = _upstream(graph, producers[tensor])
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
    reasons.update(place_host_nodes(graph, pre, post, host_reasons or {}))
    # a node the tail or the preamble took anyway still says what it cannot do itself (an LSTM in a tail)
    reasons.update({n: r for n, r in (host_reasons or {}).items() if n in pre or n in post})

    split = Split(
        reasons={n.name: reasons[n.name] for n in graph.nodes if n.name in pre or n.name in post},
        pre=[n.name for n in graph.nodes if n.name in pre],
        core=[n.name for n in graph.nodes if n.name not in pre and n.name not in post],
        post=[n.name for n in graph.nodes if n.name in post],
        cut_after=cut_after.name if cut_after is not None else None,
    )
    split.core_inputs = boundary_inputs(graph, split.core)
    split.core_outputs = boundary_outputs(graph, split.core, split.post)
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
