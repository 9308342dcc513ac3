"""axdrive pass plugin: lowering the quantized graph to an AIPU program.

The passes, in pipeline order (all only in ``compiler_mode`` =
``quantize_and_lower`` / ``lower_only``; see ``docs/lowering.md``)::

    lowering.validate_operators             validate_operators     every node the AIPU cannot run, at once
    lowering.remove_float_io                always                 the int8 core, float edges left to the host
    lowering.apply_arithmetic_simplification  flag                 exact identities removed
    lowering.simplify_mac_before_after_lut  flag                   scalar ops next to a LUT folded into it
    lowering.rewrite_dense_to_conv2d        flag                   Gemm/MatMul -> 1x1 Conv
    lowering.rewrite_concat_to_resadd       flag                   Concat -> shifted selection convs + adds
    lowering.legalize_channels              always                 ConvTranspose, unaligned grouped convs, channel Split/Slice/Gather, unaligned Concat, broadcasts
    lowering.apply_pword_padding            flag                   channels to whole PWORDs
    lowering.remove_io_padding_and_layout_transform  flag          I/O layout change on the host
    lowering.build_dpu_programs             always                 fused element-wise tails as VPrograms
    (dpu_alloc.allocate_registers)                                 VProgram -> DPU code
    lowering.emit_program                   always                 program.bin, program.json, host_io.json

Every rewrite is a list of :mod:`axdrive.ir.rewrite` rules; its statistics
are the rule hit counts.
"""

from __future__ import annotations

__all__ = ["axdrive_passes", "validate_operators", "remove_float_io", "apply_arithmetic_simplification",
           "simplify_mac_before_after_lut", "rewrite_dense_to_conv2d", "rewrite_concat_to_resadd",
           "legalize_channels", "apply_pword_padding", "remove_io_padding_and_layout_transform",
           "build_dpu_programs", "emit_program", "IO_ON_HOST", "PROGRAM", "LOWERING_MODES"]

from typing import Any

from axdrive.ir.rewrite import rewrite
from axdrive.numerics import QMIN
from axdrive.passes import Phase, StashKey, all_of, compiler_pass, hookimpl, when, when_mode

from . import _dpu_programs, _rules_channels, _rules_moves, _rules_spatial
from ._emit_pass import emit_program
from ._float_io import strip_float_io
from ._keys import IO_ON_HOST, PROGRAM
from ._layout import PWORD
from ._padding import pad_graph, softmax_is_neutral
from ._rules_dense import DENSE_RULES
from ._rules_simplify import LUT_RULES, SIMPLIFY_RULES
from ._validate import check_operators, float_reason, operator_rules

LOWERING_MODES = ("quantize_and_lower", "lower_only")
LOWERING = when_mode(*LOWERING_MODES)
#: Node name -> multiply-accumulates as the model has them (before channel padding), for the per-layer report.
MODEL_MACS: StashKey[dict[str, int]] = StashKey("lowering.model_macs")
_L = int(Phase.LEGALIZE)


@compiler_pass("lowering.validate_operators", requires=("quantized",), provides=("operators_validated",),
               enabled=all_of(LOWERING, when("validate_operators")), phase=_L, config_keys=("validate_operators",))
def validate_operators(ctx: Any) -> dict[str, Any]:
    """List every node the AIPU cannot run, with its name and the reason, in one error.

    Runs before any lowering so the user sees all problems at once (an
    ``UnsupportedOperatorError``: "3 nodes cannot run on the AIPU: 'n1'
    (Gather: ...), ..."). Statistics: nodes_checked."""
    return check_operators(ctx.graph, ctx.operators)


@compiler_pass("lowering.remove_float_io", requires=("quantized",), provides=("int8_core",), enabled=LOWERING,
               phase=_L + 1)
def remove_float_io(ctx: Any) -> dict[str, Any]:
    """Drop the float<->int8 conversions at the graph's edges: ``axdrive run`` quantizes and
    dequantizes at the device boundary with the manifest's parameters. Also records each node's MACs as the
    model has them (:data:`MODEL_MACS`), before channel padding inflates them: the per-layer report's bounds
    are the model's work. Statistics: edge_conversions_removed."""
    from axdrive.ir import node_macs

    ctx.stash[MODEL_MACS] = {n.name: m for n in ctx.graph.nodes if (m := node_macs(ctx.graph, n))}
    return strip_float_io(ctx.graph)


def _rewrite_pass(name: str, flag: str | None, phase: int, rules: list, doc: str, requires: tuple[str, ...] = ("int8_core",),
                  provides: tuple[str, ...] = ()) -> Any:
    def run(ctx: Any) -> dict[str, Any]:
        return rewrite(ctx.graph, rules)

    run.__doc__ = doc
    enabled = all_of(LOWERING, when(flag)) if flag else LOWERING
    return compiler_pass(name, requires=requires, provides=provides, enabled=enabled, phase=phase,
                         config_keys=(flag,) if flag else ())(run)


apply_arithmetic_simplification = _rewrite_pass(
    "lowering.apply_arithmetic_simplification", "apply_arithmetic_simplification", _L + 2, SIMPLIFY_RULES,
    """Remove element-wise nodes that compute nothing: adds of a real 0 with identity requantization,
    single-input Concats, Reshapes to the same shape. Exact. Statistics: hits per rule.""")

simplify_mac_before_after_lut = _rewrite_pass(
    "lowering.simplify_mac_before_after_lut", "simplify_mac_before_after_lut", _L + 3, LUT_RULES,
    """Fold a multiply or add by a scalar (or another table) next to a lookup table into the table:
    composed over all 256 inputs, so exact. Statistics: hits per rule.""")

rewrite_dense_to_conv2d = _rewrite_pass(
    "lowering.rewrite_dense_to_conv2d", "rewrite_dense_to_conv2d", _L + 4, DENSE_RULES,
    """Turn Gemm/MatMul with a constant weight into a 1x1 Conv between free Reshapes, so dense layers
    take the convolution path. Exact. Statistics: dense_to_conv2d.""")


@compiler_pass("lowering.rewrite_concat_to_resadd", requires=("int8_core",), enabled=all_of(LOWERING, when(
    "rewrite_concat_to_resadd")), phase=_L + 5, config_keys=("rewrite_concat_to_resadd",))
def rewrite_concat_to_resadd(ctx: Any) -> dict[str, Any]:
    """Lower every channel Concat as channel-shifted residual adds: each input moved to its channel
    offset by a 1x1 selection convolution that also does the Concat's requantization (folded into
    the producing convolution when it is the only reader and already on the output grid), then
    identity-requantized adds fused into one DPU program. Exact. Statistics: concat_to_resadd."""
    return rewrite(ctx.graph, _rules_channels.CONCAT_RULES)


@compiler_pass("lowering.legalize_channels", requires=("int8_core",), provides=("legalized",), enabled=LOWERING,
               phase=_L + 6, config_keys=("apply_pword_padding",))
def legalize_channels(ctx: Any) -> dict[str, Any]:
    """Make channel data movement and the convolutions the units lack computable: a ConvTranspose
    becomes a zero insertion (DMA scatter) and a stride-1 Conv with the flipped kernel; a grouped
    convolution whose groups channel padding would move becomes a block-diagonal dense one;
    Split/Slice along channels become 1x1 selection convolutions (along H/W they stay, as DMA
    copies; a Slice or Gather that picks both is split: a DMA move of the pixels, then a selection
    of the channels, which may pick any lanes in any order); a Concat that DMA copies cannot do (inputs not filling whole PWORDs when padding, or on
    another grid) takes the resadd form; a 1x1 operand of an element-wise node is broadcast with
    Expand (DWPU nearest resize). Exact. Statistics: hits per rule."""
    g = ctx.graph
    pword = PWORD if ctx.config.apply_pword_padding else 1
    _rules_channels.mark_unaligned_concats(g, pword)
    stats = rewrite(g, [*_rules_spatial.SPATIAL_RULES, *_rules_spatial.grouped_rules(pword),
                        *_rules_moves.MOVE_RULES, *_rules_channels.SLICE_RULES, *_rules_channels.UNALIGNED_CONCAT_RULES,
                        *_rules_channels.BROADCAST_RULES])
    for node in g.nodes:
        node.attrs.pop("_unaligned", None)
    g.toposort()
    return stats


@compiler_pass("lowering.apply_pword_padding", requires=("legalized",), provides=("pword_padded",),
               enabled=all_of(LOWERING, when("apply_pword_padding")), phase=_L + 7,
               config_keys=("apply_pword_padding", "softmax_neutral_value"))
def apply_pword_padding(ctx: Any) -> dict[str, Any]:
    """Pad every channel count to a multiple of PWORD (64): a zero-point Pad after each model input,
    a Slice before each output, zero weights/biases and identity requantization for padded channels,
    zero-point values in padded per-channel constants. Padded lanes never change a real output, except
    that a Softmax's padded input lanes read ``softmax_neutral_value`` (on the input grid): a value that
    is not far enough below the grid takes part in the sum, which this pass warns about, naming the node.
    Statistics: tensors_padded, io_edges, hits per rule, pad_softmax."""
    value = float(ctx.config.softmax_neutral_value)
    stats = pad_graph(ctx.graph, PWORD, value)
    for node in ctx.graph.nodes:
        pad = node.attrs.get("softmax_pad_value")
        if pad is not None and not softmax_is_neutral(int(pad)):
            lanes = int(ctx.graph.tensors[node.inputs[0]].shape[1]) - int(node.attrs["softmax_channels"])
            ctx.warn(f"softmax_neutral_value={value:g} is not neutral for Softmax {node.name!r}: on its input grid "
                     f"it is {int(pad)} (neutral at or below {QMIN - 256}), so its {lanes} padded lanes count in "
                     "the sum and change the real outputs")
    return stats


@compiler_pass("lowering.remove_io_padding_and_layout_transform", requires=("legalized",),
               enabled=all_of(LOWERING, when("remove_io_padding_and_layout_transform")), phase=_L + 8,
               config_keys=("remove_io_padding_and_layout_transform",))
def remove_io_padding_and_layout_transform(ctx: Any) -> dict[str, Any]:
    """Leave the model I/O's NCHW<->NHWC transposes and channel padding to the host: the program's
    inputs and outputs become NHWC, PWORD-padded buffers, and ``host_io.json`` tells ``axdrive run``
    how to convert. When this pass does not run, the program does it with DMA tasks.
    Statistics: inputs, outputs."""
    ctx.stash[IO_ON_HOST] = True
    return {"inputs": len(ctx.graph.inputs), "outputs": len(ctx.graph.outputs)}


@compiler_pass("lowering.build_dpu_programs", requires=("legalized",), provides=("dpu_programs_built",),
               enabled=LOWERING, phase=int(Phase.CODEGEN) - 1)
def build_dpu_programs(ctx: Any) -> dict[str, Any]:
    """Group nodes into layers (an MVM/DWPU node plus the element-wise nodes that only consume its
    result) and attach each layer's element-wise work as a virtual DPU program
    (``attrs["dpu_program"]``, an ``axdrive.ir.dpu.VProgram``) for the register allocator.
    Statistics: programs, fused_tail_nodes, standalone_dpu_nodes, instructions."""
    return _dpu_programs.build_dpu_programs(ctx.graph, ctx.operators)


@hookimpl
def axdrive_passes() -> list[Any]:
    return [validate_operators, remove_float_io, apply_arithmetic_simplification, simplify_mac_before_after_lut,
            rewrite_dense_to_conv2d, rewrite_concat_to_resadd, legalize_channels, apply_pword_padding,
            remove_io_padding_and_layout_transform, build_dpu_programs, emit_program]


@hookimpl
def axdrive_host_reason(graph: Any, node: Any, config: Any, operators: Any) -> str | None:
    """A float node whose operator, shape or attributes no AIPU mapping takes (the checks of
    ``lowering.validate_operators`` that do not depend on quantization) stays on the host. Also in
    ``quantize_only``: the quantized core is what a later ``lower_only`` compile lowers, so both modes place
    the model alike. Not in ``lower_only``: that model arrives in QDQ form, whose weights and biases are
    run-time DequantizeLinear outputs until the quantizer's import folds them."""
    if str(config.compiler_mode) == "lower_only":
        return None
    return float_reason(graph, node, operators)


@hookimpl
def axdrive_promises(config: Any) -> tuple[str, ...]:
    """A lowering mode writes program.bin."""
    return ("program_emitted",) if str(config.compiler_mode) in LOWERING_MODES else ()


@hookimpl
def axdrive_operators() -> list:
    """How the AIPU's units run ONNX operators: the ``aipu`` rules of the operator registry."""
    return operator_rules()
