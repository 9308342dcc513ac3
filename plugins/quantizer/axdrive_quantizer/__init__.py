"""axdrive pass plugin: the quantizer.

Turns the optimized float core graph into the quantized graph whose integer
semantics :func:`axdrive.reference.run_integer` defines (int8 activations with
zero points, int8 per-channel weights, int32 biases, int32 multiplier + shift
requantization, 256-entry tables for non-linear functions), and writes it as a
QDQ ONNX model for onnxruntime. See ``docs/quantization.md``.

Passes (``compiler_mode`` decides which run; ``axdrive passes`` shows why)::

    quantizer.calibrate      quantize_only | quantize_and_lower   provides calibrated
    quantizer.quantize       quantize_only | quantize_and_lower   provides quantized
    quantizer.import_qdq     lower_only                           provides quantized
    quantizer.write_qdq      quantize_only | quantize_and_lower   quantized_model.onnx + agreement figure
    quantizer.export_graph   quantized_graph_export               quantized_graph.json
    quantizer.debug          quantization_debug                   per-layer SQNR report + model

Example::

    axdrive compile 320n.onnx -o out --input-shape images=1x3x320x320 \\
        --set compiler_mode=quantize_only --set quantization_scheme=per_tensor_min_max
    python -c "import json; print(json.load(open('out/compile_report.json'))['quantization'])"
"""

from __future__ import annotations

__all__ = ["CALIBRATION", "QUANTIZED_CORE", "Calibration", "axdrive_passes", "calibrate", "quantize",
           "import_qdq", "write_qdq", "export_graph", "debug", "axdrive_configure"]

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from axdrive.artifacts import atomic_write_bytes, atomic_write_text, canonical_json
from axdrive.ir import Graph, Node, QParams
from axdrive.passes import Phase, StashKey, all_of, compiler_pass, hookimpl, when, when_mode

from ._agreement import ort_agreement, quantize_feeds
from ._calibration import calibration_feeds, observe
from ._debug import debug_model, graph_order, layer_report, most_sensitive, sensitivity
from ._export import graph_document
from ._input_scale import input_scale, scale_warning
from ._observe import Observer
from ._qdq import qdq_opset, to_qdq_model
from ._qdq_import import import_qdq_graph
from ._quantize import quantize_graph, wrap_float_io
from ._ranges import activation_qparams, clip_weight
from ._rules import fusions, per_channel_candidates


@dataclass
class Calibration:
    """What ``quantizer.calibrate`` hands to the later quantizer passes."""

    float_graph: Graph  # the float core that was calibrated
    activations: dict[str, QParams]  # chosen grid of every float activation
    fused: dict[str, Node]  # producer node name -> fused Relu/Clip
    per_channel: set[str]  # tensors quantized per channel
    feeds: dict[str, np.ndarray]  # float feeds of the core (all samples)
    source: str
    stats: dict[str, Any] = field(default_factory=dict)


CALIBRATION: StashKey[Calibration] = StashKey("quantizer.calibration")
#: The quantized core with int8 inputs and outputs (before float I/O is wrapped around it).
QUANTIZED_CORE: StashKey[Graph] = StashKey("quantizer.quantized_core")

_QUANTIZING_MODES = ("quantize_only", "quantize_and_lower")
QUANTIZING = when_mode(*_QUANTIZING_MODES)
#: Samples used by the per-layer debug report (each runs both executors).
DEBUG_SAMPLES = 4
#: The most sensitive layers the compile report keeps (and the CLI prints); every layer is in the JSON.
SENSITIVE_SHOWN = 10


def _methods(scheme: str, dw_channel_wise: bool) -> tuple[str, str | None]:
    """(per-tensor method, per-channel method or None) of a ``quantization_scheme``."""
    if scheme == "per_tensor_min_max":
        return "min_max", ("min_max" if dw_channel_wise else None)
    if scheme == "hybrid_per_tensor_per_channel":
        return "histogram", "min_max"
    return "histogram", ("histogram" if dw_channel_wise else None)


@compiler_pass("quantizer.calibrate", requires=("graph_optimized",), provides=("calibrated",),
               enabled=QUANTIZING, phase=Phase.QUANTIZE,
               config_keys=("compiler_mode", "quantization_scheme", "quantize_dw_channel_wise"))
def calibrate(ctx: Any) -> dict[str, Any]:
    """Run the float core on the calibration data and choose every activation's int8 grid.

    Runs after the graph cleaner (phase order), on the accelerator core; when
    host pre-processing was split off, it runs in onnxruntime first. Ranges
    per ``quantization_scheme`` (see docs/quantization.md). Before any sample is
    loaded, the host memory the calibration needs is estimated from the shapes
    and a compile that cannot fit (host memory, or the program's I/O in the
    device DDR) is refused in one line (see _memory.py); all-zero or
    integer-valued [0, 255] calibration data is a warning, and so is data whose
    scale the first layer says is off by orders of magnitude (_input_scale.py).
    ``compile_report.json`` -> ``calibration`` sums up what was loaded. Statistics:
    samples, batches, tensors_calibrated, per_channel_tensors, constant_tensors,
    clip_weighted_tensors (histogram ranges of SiLU inputs, whose clipping weighs more),
    estimated_memory_bytes, estimated_peak_per_sample_bytes."""
    graph: Graph = ctx.graph
    cfg = ctx.config
    method, channel_method = _methods(str(cfg.quantization_scheme), bool(cfg.quantize_dw_channel_wise))
    fused = fusions(graph)
    per_channel = per_channel_candidates(graph, fused) if channel_method else set()
    names = list(graph.inputs) + [o for n in graph.nodes for o in n.outputs if o]
    data = calibration_feeds(ctx, graph)
    observer = Observer(names, per_channel=per_channel, histograms="histogram" in (method, channel_method))
    run_stats = observe(graph, data, observer)
    acts = {}
    readers = graph.consumer_map()
    weighted = 0
    for name, st in observer.stats.items():
        pc = name in per_channel
        weight = clip_weight(graph, name, readers)
        weighted += weight != 1.0 and method == "histogram" and not pc
        acts[name] = activation_qparams(st, channel_method if pc else method, pc, weight)  # type: ignore[arg-type]
    constant = sorted(n for n, st in observer.stats.items() if st.minimum == st.maximum)
    if constant:
        ctx.log.info("constant activations get a minimal grid", tensors=constant[:5], count=len(constant))
    stats = {**run_stats, "tensors_calibrated": len(acts), "per_channel_tensors": len(per_channel),
             "constant_tensors": len(constant), "clip_weighted_tensors": int(weighted), **data.memory}
    ctx.stash[CALIBRATION] = Calibration(graph, acts, fused, per_channel, data.feeds, data.source, stats)
    ctx.report.setdefault("quantization", {}).update(
        {"scheme": str(cfg.quantization_scheme), "calibration": data.source, "samples": data.samples})
    scale = input_scale(graph, data.feeds)
    ctx.report["calibration"] = {**data.summary, **({"input_scale": scale} if scale else {})}
    for why in (*data.hints, scale_warning(scale)):
        if why:
            ctx.warn(why)
    return stats


@compiler_pass("quantizer.quantize", requires=("calibrated",), provides=("quantized",), enabled=QUANTIZING,
               phase=Phase.QUANTIZE, config_keys=("remove_io_quantization",))
def quantize(ctx: Any) -> dict[str, Any]:
    """Replace the float core by the quantized graph.

    Every activation becomes int8 with QParams, weights int8 per output
    channel, biases int32; each node gets ``integer_op`` and its integer
    parameters (see axdrive/reference/integer.py); Relu/Clip after a MAC or
    Add fold into its clamp. Unless ``remove_io_quantization``, QuantizeLinear/
    DequantizeLinear nodes keep the graph's inputs and outputs float.
    Statistics: layers_quantized, luts_built, activations_fused,
    per_channel_activations, concat_inputs_aligned, integer_op.* counts."""
    cal = ctx.stash[CALIBRATION]
    qcore, stats = quantize_graph(cal.float_graph, cal.activations, cal.fused, operators=ctx.operators)
    ctx.stash[QUANTIZED_CORE] = qcore  # kept as quantized: later passes rewrite ctx.graph in place
    ctx.graph = qcore.copy() if ctx.config.remove_io_quantization else wrap_float_io(qcore, cal.float_graph)
    ctx.report.setdefault("quantization", {}).update({"layers_quantized": stats.get("layers_quantized", 0),
                                                      "luts_built": stats.get("luts_built", 0)})
    return stats


@compiler_pass("quantizer.import_qdq", requires=("graph_optimized",), provides=("quantized",),
               enabled=when_mode("lower_only"), phase=Phase.QUANTIZE,
               config_keys=("compiler_mode", "remove_io_quantization"))
def import_qdq(ctx: Any) -> dict[str, Any]:
    """Take the grids of an already-quantized QDQ model as they are.

    Reads every QuantizeLinear/DequantizeLinear pair into the QParams of the
    tensor between them, turns DequantizeLinear'd int8/int32 initializers back
    into integer weights and biases, removes the Q/DQ nodes and derives the
    integer parameters exactly as ``quantizer.quantize`` does, without
    calibrating. Like ``quantizer.quantize``, the graph keeps float inputs and
    outputs unless ``remove_io_quantization``. Statistics: qdq_pairs, weights,
    layers_quantized, luts_built."""
    qgraph, stats = import_qdq_graph(ctx.graph, ctx.operators)
    ctx.stash[QUANTIZED_CORE] = qgraph  # kept as quantized: later passes rewrite ctx.graph in place
    ctx.graph = qgraph.copy() if ctx.config.remove_io_quantization else wrap_float_io(qgraph, ctx.graph)
    ctx.report.setdefault("quantization", {}).update({"scheme": "from QDQ model", **stats})
    return stats


@compiler_pass("quantizer.write_qdq", requires=("quantized",), provides=("qdq_model_written",),
               enabled=QUANTIZING, phase=Phase.QUANTIZE,
               config_keys=("onnx_opset_version", "remove_io_quantization"))
def write_qdq(ctx: Any) -> dict[str, Any]:
    """Write ``quantized_model.onnx`` (QDQ, opset ``onnx_opset_version``, runs in
    onnxruntime CPU) and measure, on the first calibration sample, how many
    output elements onnxruntime and the integer reference agree on within 1 LSB
    (``compile_report.json`` -> ``quantization.ort_agreement_1lsb``). An operator
    ONNX only has from a later opset raises the model's opset to that one, with a warning."""
    opset, why = qdq_opset(ctx.graph, int(ctx.config.onnx_opset_version))
    if why:
        ctx.warn(f"quantized_model.onnx is written at opset {opset}, not onnx_opset_version="
                 f"{ctx.config.onnx_opset_version}: {why}")
    model = to_qdq_model(ctx.graph, opset)
    ctx.artifacts.write_onnx("quantized_model.onnx", model)
    cal = ctx.stash[CALIBRATION]
    qcore = ctx.stash[QUANTIZED_CORE]
    core_model = model if ctx.config.remove_io_quantization else to_qdq_model(qcore, opset)
    first = {k: v[:1] for k, v in cal.feeds.items()}
    agreement = ort_agreement(qcore, core_model, quantize_feeds(qcore, first))
    ctx.report.setdefault("quantization", {}).update(agreement)
    ctx.log.info("onnxruntime vs integer reference", **agreement)
    return {"nodes": len(model.graph.node), "opset": opset, **agreement}


@compiler_pass("quantizer.export_graph", requires=("quantized",), enabled=when("quantized_graph_export"),
               phase=Phase.QUANTIZE, config_keys=("quantized_graph_export",))
def export_graph(ctx: Any) -> dict[str, Any]:
    """Write ``quantized_graph.json``: nodes in order with their integer
    parameters (requantization multipliers/shifts, zero points, clamps, LUTs)
    and every integer tensor's scale and zero point. Canonical JSON."""
    doc = graph_document(ctx.graph)
    ctx.artifacts.write_json("quantized_graph.json", doc)
    return {"nodes": len(doc["nodes"]), "integer_tensors": len(doc["tensors"])}


@compiler_pass("quantizer.debug", requires=("quantized", "calibrated"),
               enabled=all_of(QUANTIZING, when("quantization_debug")), phase=Phase.QUANTIZE,
               config_keys=("quantization_debug", "model_debug_save_dir"))
def debug(ctx: Any) -> dict[str, Any]:
    """Per-layer SQNR of the quantized against the float core on calibration
    samples, worst layers first, plus the QDQ model with every quantized
    activation exposed as an output; and the per-layer sensitivity in graph
    order (each layer's own SQNR, the cumulative SQNR up to it, its MACs; the
    outputs' SQNR), with a warning for each layer whose output collapses. The
    compile report keeps the outputs' SQNR and the most sensitive layers (the
    CLI prints them as a table). Written as the artifacts
    ``quantization_debug.json`` and ``quantization_debug_model.onnx``, or, when
    ``model_debug_save_dir`` is set, atomically into that directory."""
    cal = ctx.stash[CALIBRATION]
    qcore = ctx.stash[QUANTIZED_CORE]
    rows = layer_report(cal.float_graph, qcore, cal.feeds, DEBUG_SAMPLES)
    layers, output_db = sensitivity(cal.float_graph, qcore, cal.feeds, DEBUG_SAMPLES,
                                    {r["tensor"]: r["sqnr_db"] for r in rows})
    doc = {"samples": min(DEBUG_SAMPLES, int(next(iter(cal.feeds.values())).shape[0])),
           "scheme": str(ctx.config.quantization_scheme), "output_sqnr_db": output_db, "layers": rows,
           "graph_order": graph_order(qcore, rows), "sensitivity": layers}
    collapsed = [r for r in layers if "collapsed" in r]
    for r in collapsed:
        ctx.warn(f"layer {r['node']!r} ({r['op']}) collapses when quantized: {r['collapsed']}")
    ctx.report.setdefault("quantization", {}).update(
        {"output_sqnr_db": output_db, "most_sensitive": most_sensitive(layers, SENSITIVE_SHOWN)})
    model = debug_model(to_qdq_model(qcore, qdq_opset(qcore, int(ctx.config.onnx_opset_version))[0]), qcore)
    target = ctx.config.model_debug_save_dir
    prefix = ctx.segment.prefix if ctx.segment is not None else ""
    if target:
        folder = Path(target)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / f"{prefix}quantization_debug.json", canonical_json(doc))
        atomic_write_bytes(folder / f"{prefix}quantization_debug_model.onnx",
                           model.SerializeToString(deterministic=True))
    else:
        ctx.artifacts.write_json("quantization_debug.json", doc)
        ctx.artifacts.write_onnx("quantization_debug_model.onnx", model)
    worst = rows[0] if rows else None
    return {"layers": len(rows), "worst_sqnr_db": worst["sqnr_db"] if worst else 0.0,
            "worst_tensor": worst["tensor"] if worst else "", "output_sqnr_db": output_db,
            "collapsed_layers": len(collapsed)}


@hookimpl
def axdrive_passes() -> list:
    return [calibrate, quantize, import_qdq, write_qdq, export_graph, debug]


@hookimpl
def axdrive_compile_finish(session: Any, error: BaseException | None) -> None:
    """Join the chain into ``quantized_full_model.onnx`` once every device segment is quantized (see
    :mod:`axdrive_quantizer._full_model`); a chain that cannot be joined is a warning, not a failure."""
    if error is not None or str(session.config.compiler_mode) not in _QUANTIZING_MODES or not session.parts:
        return
    from ._full_model import write_full_model

    why = write_full_model(session)
    if why:
        session.warnings.append(f"quantizer: no quantized_full_model.onnx: {why}")


@hookimpl
def axdrive_host_reason(graph: Any, node: Any, config: Any, operators: Any) -> str | None:
    """A node no integer kernel quantizes (the registry's ``int8`` rules) stays on the host, in float (nothing
    to say when the compile does not quantize: ``lower_only`` takes a model that is quantized already)."""
    from ._rules import integer_reason

    if str(config.compiler_mode) not in _QUANTIZING_MODES:
        return None
    return integer_reason(graph, node, operators)


@hookimpl
def axdrive_promises(config: Any) -> tuple[str, ...]:
    """A quantizing mode writes quantized_model.onnx; every mode needs the quantized graph."""
    if str(config.compiler_mode) in _QUANTIZING_MODES:
        return ("quantized", "qdq_model_written")
    return ("quantized",)


@hookimpl
def axdrive_operators() -> list:
    """The quantizer's integer kernels, as ``int8`` rules of the operator registry."""
    from ._rules import operator_rules

    return operator_rules()
