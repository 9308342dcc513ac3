"""axdrive pass plugin: the graph cleaner.

One pass, ``graph_cleaner.split``, cuts the optimized float model into host
pre-processing, the accelerator core and host post-processing (see
:mod:`axdrive_graph_cleaner._split` for the rules), and every node some plugin
says the AIPU cannot run into host parts of its own, so the model becomes a
chain of host parts and device segments. The host parts are written as
``host_preprocess.onnx`` / ``host_partN.onnx`` / ``host_postprocess.onnx``,
which onnxruntime runs between the device programs; the first device segment
replaces ``ctx.graph`` for every later pass, and each further one is a
:class:`~axdrive.passes.Segment` that the pass manager compiles with the same
passes. The chosen split is in the stash (:data:`SPLIT`) and in the compile
report under ``graph_cleaner`` and ``placement``.

Example: YOLOv8n at 320x320 keeps its 64 convolutions and the channel concats
of its three detection heads on the accelerator; the anchor/DFL decoding tail
(reshape, split, softmax, the DFL convolution, box arithmetic, sigmoid) goes
to ``host_postprocess.onnx``::

    axdrive compile 320n.onnx -o out --input-shape images=1x3x320x320
    python -c "import onnx; print(len(onnx.load('out/host_postprocess.onnx').graph.node))"
"""

from __future__ import annotations

__all__ = ["SPLIT", "split_host_parts", "axdrive_passes"]

from typing import Any

from axdrive.errors import ConfigError, ConfigProblem, ModelError, UnsupportedOperatorError, UsageError, did_you_mean
from axdrive.passes import FIRST_SEGMENT, Phase, Segment, StashKey, compiler_pass, hookimpl, when

from ._split import (Split, choose_condition_node, extract, find_split,
                     is_lowerable_final_softmax)

#: The split the cleaner chose, for later passes (e.g. reports naming host parts).
SPLIT: StashKey[Split] = StashKey("graph_cleaner.split")

_CONFIG_KEYS = (
    "run_graph_cleaner",
    "graph_cleaner_split_pre_post_processing",
    "graph_cleaner_condition",
    "graph_cleaner_node",
    "graph_cleaner_threshold",
    "graph_cleaner_dump_core_onnx",
    "graph_cleaner_dump_full_opt_onnx",
    "remove_layout_transform_from_preamble",
)


def _write_onnx(ctx: Any, prop: str | None, filename: str, graph: Any) -> None:
    from axdrive.onnx_io import to_onnx

    from axdrive.artifacts import check_artifact_name

    try:
        check_artifact_name(filename)
    except ValueError:
        raise ConfigError(ConfigProblem(prop or "artifact", filename,
                                        "must be a plain file name (it is written inside the output directory)")) from None
    stage = ctx.artifacts
    (stage.for_writer(f"{prop}={filename!r}") if prop else stage).write_onnx(filename, to_onnx(graph))


@compiler_pass(
    "graph_cleaner.split",
    requires=("graph_optimized",),
    provides=("graph_cleaned",),
    enabled=when("run_graph_cleaner"),
    phase=Phase.CLEAN,
    config_keys=_CONFIG_KEYS,
)
def split_host_parts(ctx: Any) -> dict[str, Any]:
    """Split host pre- and post-processing off the accelerator core.

    Post-processing is everything downstream of the first decoding operator
    (softmax, argmax, shape arithmetic, gathers) or, with ``graph_cleaner_condition``,
    downstream of the chosen MatMul/Gemm/Clip. A final Softmax over the
    channels is not such a node: the AIPU runs it (the report lists it under
    ``final_softmax_on_device``). Pre-processing is the run of
    constant normalisations (and, with ``remove_layout_transform_from_preamble``,
    layout changes) right after the inputs.
    """
    graph = ctx.graph
    cfg = ctx.config
    if cfg.graph_cleaner_dump_full_opt_onnx:
        _write_onnx(ctx, "graph_cleaner_dump_full_opt_onnx", cfg.graph_cleaner_dump_full_opt_onnx, graph)
    cut = None
    if cfg.graph_cleaner_condition is not None:
        cut = choose_condition_node(graph, str(cfg.graph_cleaner_node), str(cfg.graph_cleaner_condition),
                                    cfg.graph_cleaner_threshold)
        if cut is None:
            ctx.warn(f"no {cfg.graph_cleaner_node} node has a weight measure above graph_cleaner_threshold="
                     f"{cfg.graph_cleaner_threshold}; split at the first host-only operation instead")
    reasons = host_reasons(ctx, graph)
    user = ctx.session.options.get("placement") or {}
    kept = {name: "kept on the host by the user (host_nodes)" for name in _user_nodes(graph, user.get("host_nodes", ()))}
    reasons.update(kept)
    refused = ctx.session.options.get("refused_nodes") or {}
    for node in graph.nodes:  # what the back end refused in an earlier attempt of this compile
        why = next((refused[s] for s in (node.name, *node.source) if s in refused), None)
        if why is not None:
            reasons[node.name] = f"the back end refused it in an earlier attempt ({why})"
    if refused:
        ctx.warn(f"the back end refused {len(refused)} node(s) an earlier attempt left on the AIPU "
                 f"({', '.join(sorted(refused))}); compiling again with them on the host")
    cuts = {key: _user_tensors(graph, key, user.get(key, ())) for key in ("device_inputs", "device_outputs")}
    strict = not ctx.session.options.get("host_fallback", True)
    try:  # strict: only what the user asked for leaves the core; everything else must run on the AIPU
        split = find_split(graph, split_pre=cfg.graph_cleaner_split_pre_post_processing,
                           layout_preamble_to_host=cfg.remove_layout_transform_from_preamble, cut_after=cut,
                           host_reasons=kept if strict else reasons, **cuts)
    except ValueError as exc:  # a cut the chain cannot honour
        raise UsageError(str(exc)) from None
    if strict:
        device = set(split.device)
        left = [(n, reasons[n.name]) for n in graph.nodes if n.name in reasons and n.name in device]
        if left:
            listed = ", ".join(f"{n.name!r} ({why})" for n, why in left)
            raise UnsupportedOperatorError(f"{len(left)} node(s) cannot run on the AIPU and host fallback is off "
                                           f"(--no-host-fallback): {listed}", node=left[0][0].name)
    if not split.core:
        raise ModelError("the graph cleaner found nothing to run on the accelerator: every node is host "
                         "pre- or post-processing (set run_graph_cleaner=false to keep the whole model)",
                         node=graph.nodes[0].name if graph.nodes else None)
    segments = _write_parts(ctx, graph, split)
    core = extract(graph, split.core, split.core_inputs, split.core_outputs, graph.name)
    if cfg.graph_cleaner_dump_core_onnx:
        _write_onnx(ctx, "graph_cleaner_dump_core_onnx", cfg.graph_cleaner_dump_core_onnx, core)
    ctx.graph = core
    ctx.session.segments.extend(segments)
    ctx.stash[SPLIT] = split
    ctx.report["placement"] = placement_report(graph, split)
    ctx.report["graph_cleaner"] = {
        "pre_nodes": len(split.pre),
        "core_nodes": len(split.core),
        "post_nodes": len(split.post),
        "core_inputs": split.core_inputs,
        "core_outputs": split.core_outputs,
        "parts": [{"name": p.name, "kind": p.kind, "nodes": len(p.nodes)} for p in split.parts],
        "cut_after": split.cut_after,
        # a final Softmax over the channels stays in the core: the AIPU lowers it (see _split)
        "final_softmax_on_device": [n.name for n in graph.nodes if n.name in set(split.device)
                                    and is_lowerable_final_softmax(graph, n)],
    }
    return {"pre_nodes": len(split.pre), "core_nodes": len(split.core), "post_nodes": len(split.post),
            "core_outputs": len(split.core_outputs), "device_segments": 1 + len(segments),
            "host_parts": sum(1 for p in split.parts if p.kind == "host")}


def _write_parts(ctx: Any, graph: Any, split: Split) -> list[Segment]:
    """Write every host part as ONNX, describe the chain for ``axdrive run`` (``session.parts``) and return the
    device segments after the first, each with the float graph that computes its inputs (for calibration)."""
    segments: list[Segment] = []
    ctx.session.model_outputs = list(graph.outputs)
    done: list[str] = []  # the nodes of the parts before the current one
    for part in split.parts:
        if part.kind == "host":
            inputs = part.inputs
            if part.name == "host_preprocess":  # the model's inputs in the model's order
                inputs = [i for i in graph.inputs if any(i in n.inputs for n in graph.nodes if n.name in set(part.nodes))]
            file = f"{part.name}.onnx"
            suffix = {"host_preprocess": "pre", "host_postprocess": "post"}.get(part.name, part.name)
            _write_onnx(ctx, None, file, extract(graph, part.nodes, inputs, part.outputs, f"{graph.name}_{suffix}"))
            ctx.session.parts.append({"kind": "host", "name": part.name, "file": file, "inputs": inputs,
                                      "outputs": part.outputs})
        else:
            prefix = "" if part.name == FIRST_SEGMENT else f"{part.name}."
            ctx.session.parts.append({"kind": "device", "name": part.name, "prefix": prefix})
            if prefix:
                segments.append(Segment(part.name, extract(graph, part.nodes, part.inputs, part.outputs,
                                                           f"{graph.name}_{part.name}"),
                                        prefix=prefix, feeder=_feeder(graph, done, part.inputs)))
        done.extend(part.nodes)
    return segments


def _feeder(graph: Any, earlier: list[str], inputs: list[str]) -> Any:
    """The float graph from the model's inputs to ``inputs``: the nodes of earlier parts they depend on."""
    producers = graph.producers()
    # the parts chain, so everything upstream of a segment's inputs is in the parts before it
    need: set[str] = set()
    for i in inputs:
        if i in producers:
            need |= graph.upstream(producers[i])
    need &= set(earlier)
    names = [n.name for n in graph.nodes if n.name in need]
    used = {i for n in graph.nodes if n.name in need for i in n.inputs}
    return extract(graph, names, [i for i in graph.inputs if i in used], [i for i in inputs if i in producers],
                   f"{graph.name}_feeder")


def _user_nodes(graph: Any, names: Any) -> list[str]:
    """The IR nodes the user named (by ONNX node name: a fused node answers to each name it came from)."""
    found = []
    for name in names:
        hits = [n.name for n in graph.nodes if n.name == name or name in n.source]
        if not hits:
            known = {n.name for n in graph.nodes} | {s for n in graph.nodes for s in n.source}
            raise UsageError(f"host_nodes: the model has no node {name!r} (after constant folding){did_you_mean(name, sorted(known))}")
        found.extend(hits)
    return found


def _user_tensors(graph: Any, key: str, names: Any) -> list[str]:
    runtime = {t for t in graph.tensors if not graph.is_constant(t)}
    for name in names:
        if name not in runtime:
            raise UsageError(f"{key}: the model has no run-time tensor {name!r} (after constant folding)"
                             f"{did_you_mean(name, sorted(runtime))}")
    return list(names)


def host_reasons(ctx: Any, graph: Any) -> dict[str, str]:
    """Every node some plugin says the accelerator cannot run (``axdrive_host_reason``), with the reasons."""
    found = {}
    for node in graph.nodes:
        said = [r for r in ctx.session.host.hook.axdrive_host_reason(graph=graph, node=node, config=ctx.config,
                                                                      operators=ctx.operators) if r]
        if said:
            found[node.name] = "; ".join(dict.fromkeys(said))
    return found


def placement_report(graph: Any, split: Split) -> dict[str, Any]:
    """Where each node runs: the shares of nodes and MACs on the AIPU, and every host node with its reason."""
    from axdrive.ir import graph_macs

    total = graph_macs(graph)
    device = graph_macs(graph, set(split.device))
    part = split.part_of()
    nodes = {n.name: n for n in graph.nodes}
    device_nodes = set(split.device)
    host_nodes = [n.name for n in graph.nodes if n.name not in device_nodes]
    return {
        "device_nodes": len(device_nodes),
        "host_nodes": len(host_nodes),
        "device_segments": sum(1 for p in split.parts if p.kind == "device"),
        # the chain axdrive run executes, in order, with what each part costs
        "parts": [{"name": p.name, "kind": p.kind, "nodes": len(p.nodes), "macs": graph_macs(graph, set(p.nodes))}
                  for p in split.parts],
        "device_macs": device,
        "host_macs": total - device,
        "device_mac_share": round(device / total, 4) if total else 1.0,
        "host": [{"node": name, "op": nodes[name].qualified_op, "part": part[name], "reason": split.reasons[name]}
                 for name in host_nodes],
        "device": [{"node": name, "op": nodes[name].qualified_op, "part": part[name]} for name in split.device],
    }


@hookimpl
def axdrive_compile_start(session: Any) -> None:
    """The user's placement is read by ``graph_cleaner.split``: with the cleaner off it would be ignored."""
    placement = session.options.get("placement") or {}
    if any(placement.values()) and not session.config.run_graph_cleaner:
        given = ", ".join(k for k, v in placement.items() if v)
        raise UsageError(f"placement ({given}) needs run_graph_cleaner=true: the graph cleaner is the pass that "
                         "moves nodes to the host")


@hookimpl
def axdrive_passes() -> list:
    return [split_host_parts]
