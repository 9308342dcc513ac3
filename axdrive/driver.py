"""``compile()``: the one place that runs a compile from start to finish.

It resolves the config (user values, then model-name presets from plugins),
resolves the pass pipeline, runs it under the built-in instruments, and
writes the output directory: artifacts staged and committed only on success,
the trace files (with ``trace_tvm_passes``) and ``error_artifact.zip`` (with
``save_error_artifact``) also on failure, when users need them most.
"""

from __future__ import annotations

__all__ = ["CompileResult", "compile", "resolve_config"]

import io
import json
import time
import traceback
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from . import __version__
from .artifacts import REPORT_FILES, ArtifactStage, canonical_json, protected_paths, sha256_file
from .outdir import OutputDir
from .errors import AxdriveError, ModelError, UsageError
from .passes import CompileSession, PassManager, Pipeline, PluginHost, resolve_options, resolve_pipeline
from .tracing import Tracer, chrome_trace, dependency_graph


@dataclass
class CompileResult:
    """What a successful compile produced."""

    output_dir: Path
    artifacts: dict[str, Path]
    report: dict[str, Any]
    manifest: dict[str, Any]
    pipeline: list[str]
    graph: Any = None
    session: Any = field(default=None, repr=False)

    def __getitem__(self, name: str) -> Path:
        return self.artifacts[name]


def _host(plugins: PluginHost | Iterable[str] | None) -> PluginHost:
    if isinstance(plugins, PluginHost):
        return plugins
    return PluginHost.from_args(plugins or ())


def resolve_config(config: Any, host: PluginHost) -> tuple[Any, list[dict[str, Any]]]:
    """Copy the config, apply model-name presets from plugins, validate.

    Returns the resolved config and the presets that were applied (for the manifest).
    """
    from .config import CompilerConfig

    if isinstance(config, Mapping):  # {"compiler_mode": "quantize_only"}: validated like a config file's table
        config = CompilerConfig.from_dict(config, source="the config mapping given to compile()")
    elif isinstance(config, (str, Path)):  # a config file, as --config reads it
        config = CompilerConfig.from_file(config)
    elif config is not None and not isinstance(config, CompilerConfig):
        raise UsageError(f"config must be a CompilerConfig, a mapping of properties or a config file path, got "
                         f"{type(config).__name__}")
    cfg = CompilerConfig() if config is None else config.copy()
    applied: list[dict[str, Any]] = []
    if cfg.model_name:
        for plugin, presets in reversed(host.presets(cfg.model_name)):
            keys = cfg.apply_presets(presets, source=f"preset from {plugin} for model_name={cfg.model_name!r}")
            if keys:
                applied.append({"plugin": plugin, "properties": {k: presets[k] for k in keys}})
    cfg.validate()
    host.hook.axdrive_configure(config=cfg)
    return cfg, applied


def _model_identity(model: Any) -> tuple[str, dict[str, Any]]:
    """Name and manifest entry of the model the user gave."""
    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.exists():
            raise ModelError("no such file", file=str(path))
        if not path.is_file():
            raise ModelError("not a file", file=str(path))
        return path.stem, {"file": path.name, "sha256": sha256_file(path)}
    serialize = getattr(model, "SerializeToString", None)
    if serialize is None:
        raise UsageError(f"model must be a path or an onnx.ModelProto, got {type(model).__name__}")
    import hashlib

    data = serialize(deterministic=True)
    name = getattr(getattr(model, "graph", None), "name", "") or "model"
    return name, {"file": None, "sha256": hashlib.sha256(data).hexdigest()}


def _pass_rows(tracer: Tracer) -> list[dict[str, Any]]:
    rows = []
    for s in tracer.spans:
        row: dict[str, Any] = {"name": s.name, "plugin": s.plugin, "status": s.status, "parent": s.parent}
        if s.reason:
            row["reason"] = s.reason
        row["wall_ms"] = round(s.duration_ns / 1e6, 3)
        if s.stats:
            row["stats"] = s.stats
        rows.append(row)
    return rows


def _io_signature(graph: Any) -> dict[str, list[dict[str, Any]]]:
    """Inputs/outputs of the final IR: shapes, dtypes and quantization params."""
    if graph is None or not hasattr(graph, "tensors"):
        return {"inputs": [], "outputs": []}

    def describe(name: str) -> dict[str, Any]:
        t = graph.tensors[name]
        entry: dict[str, Any] = {"name": name, "shape": list(t.shape), "dtype": str(getattr(t.dtype, "name", t.dtype))}
        q = getattr(t, "qparams", None)
        if q is not None:
            entry["quantization"] = q.to_dict() if hasattr(q, "to_dict") else str(q)
        return entry

    return {"inputs": [describe(n) for n in graph.inputs], "outputs": [describe(n) for n in graph.outputs]}


def _randomized_model(model: Any, seed: int = 0) -> Any:
    """A copy of an ONNX model with every weight replaced by seeded noise of the
    same shape and dtype: the structure a bug report needs, none of the weights
    the user may not share. Weights are initializers and the tensors of
    ``Constant`` nodes (exporters such as Paddle's keep all weights there)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    rng = np.random.default_rng(seed)

    def noise(tensor: Any) -> Any:
        """The randomized tensor, or ``None`` to keep it (small int tensors: shapes, axes, indices)."""
        arr = numpy_helper.to_array(tensor)
        if arr.dtype.kind == "f":
            return numpy_helper.from_array(rng.standard_normal(arr.shape).astype(arr.dtype), tensor.name)
        if arr.dtype.kind in "iu" and arr.size > 16:
            info = np.iinfo(arr.dtype)
            values = rng.integers(max(info.min, -128), min(info.max, 127) + 1, arr.shape).astype(arr.dtype)
            return numpy_helper.from_array(values, tensor.name)
        return None

    out = onnx.ModelProto()
    out.CopyFrom(model)
    for init in out.graph.initializer:
        new = noise(init)
        if new is not None:
            init.CopyFrom(new)
    for node in out.graph.node:
        if node.op_type != "Constant":
            continue
        for attr in node.attribute:
            if attr.name == "value" and attr.type == onnx.AttributeProto.TENSOR:
                new = noise(attr.t)
                if new is not None:
                    attr.t.CopyFrom(new)
    return out


def _current_onnx(session: CompileSession) -> Any:
    """The IR as ONNX if it can be exported, else the model the user gave."""
    import onnx

    graph = session.graph
    if graph is not None:
        try:
            from .onnx_io import to_onnx

            return to_onnx(graph)
        except Exception:  # the IR may be mid-lowering and not exportable
            pass
    if isinstance(session.model, (str, Path)):
        try:
            return onnx.load(str(session.model))
        except Exception:
            return None
    return session.model


def _error_zip(session: CompileSession, error: BaseException, trace_doc: dict[str, Any]) -> bytes:
    cfg = session.config
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:

        def add(name: str, data: bytes | str) -> None:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)

        add("error.txt", f"{type(error).__name__}: {error}\n\n" + "".join(traceback.format_exception(error)))
        add("config.json", canonical_json(cfg.to_dict()))
        add("log.jsonl", "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in session.log_records))
        add("pass_dependency_graph.json", canonical_json(trace_doc))
        # the model part is the one most likely to fail (an IR mid-lowering, a damaged input model): it
        # must not cost the user the rest of the ZIP, so its failure is written down instead
        try:
            model = _current_onnx(session)
            if model is not None and cfg.randomize_onnx_model:
                model = _randomized_model(model)
            model_line = (f"model.onnx: the model as far as it was lowered; weights "
                          f"{'randomized (randomize_onnx_model=true)' if cfg.randomize_onnx_model else 'as given'}")
            if model is not None:
                add("model.onnx", model.SerializeToString(deterministic=True))
            else:
                model_line = "model.onnx: not included (no model could be read)"
        except Exception as problem:  # noqa: BLE001
            model_line = f"model.onnx: not included ({type(problem).__name__}: {problem})"
        add("README.txt", (
            "axdrive error artifact\n"
            f"{model_line}\n"
            "config.json: the resolved configuration; error.txt: the error; log.jsonl: the compile log;\n"
            "pass_dependency_graph.json: which passes ran, with the failing one marked failed.\n"
        ))
    return buf.getvalue()


#: How many times a compile may start again with nodes the back end refused on the host (each round must refuse
#: new nodes; a model needing more rounds than this is refused with the last error).
FALLBACK_ROUNDS = 3


def compile(
    model: Any,
    config: Any = None,
    *,
    output_dir: str | Path | None = None,
    calibration: Any = None,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
    plugins: PluginHost | Iterable[str] | None = None,
    disable_passes: Iterable[str] = (),
    stop_after: str | None = None,
    verify: bool | None = None,
    dump_ir_dir: str | Path | None = None,
    dump_ir_passes: Iterable[str] = (),
    dump_ir_changed: bool = False,
    inputs: Mapping[str, Any] | None = None,
    host_fallback: bool = True,
    placement: Mapping[str, Iterable[str]] | None = None,
    preprocessing: Any = None,
    target_sqnr: float | None = None,
    options: Mapping[str, Any] | None = None,
) -> CompileResult:
    """Compile ``model`` (a path or an ``onnx.ModelProto``) per ``config`` (a :class:`CompilerConfig`, a
    mapping of properties, or a config file's path, each validated alike; ``None``: the defaults).

    ``plugins`` is a :class:`PluginHost` or ``-p`` style arguments
    (``"module"`` to load, ``"no:name"`` to block). ``stop_after`` (a pass name
    or a property such as ``"quantized"``) ends the compile there, like LLVM's
    ``-stop-after``; later passes are recorded as skipped. ``verify`` runs the IR
    verifier after every pass (default: the ``AXDRIVE_VERIFY`` environment
    variable). With ``host_fallback`` (the default) a node the accelerator
    cannot run goes to a host part with its reason; ``False`` keeps the strict
    behaviour: every such node is listed in one error. ``placement`` is what
    the user decides (``host_nodes``, ``device_inputs``, ``device_outputs``:
    ONNX node and tensor names; see :mod:`axdrive.config._tables`).
    ``options`` sets plugin options (``{"example.top": 5}``: what plugins
    declare through ``axdrive_addoption``, beside the compiler properties),
    checked like properties. ``preprocessing`` (an
    :class:`~axdrive.calibration.ImagePreprocessing` or
    its options as a mapping) says how photos become model inputs: the
    calibration folder's, the sample photos', and, recorded in the manifest,
    ``axdrive run --input PHOTO``'s. Raises an
    :class:`~axdrive.errors.AxdriveError` subclass on failure.

    With host fallback, a pass after the graph cleaner that refuses nodes
    (an :class:`~axdrive.errors.UnsupportedOperatorError` naming them, such as
    a check that depends on the quantized grid, which the cleaner cannot ask
    before quantization) does not end the compile: it starts again with those
    nodes on the host, up to :data:`FALLBACK_ROUNDS` times, and the compile
    report says so. A compile is deterministic, so the second attempt sees
    what the first saw, with the refused nodes moved.

    ``target_sqnr`` (dB) asks for accuracy-controlled fallback: the compile
    runs with ``quantization_debug`` (the per-layer sensitivity it needs), and
    while the worst device segment's output SQNR against float is under the
    target, the layer of lowest own SQNR goes to the host (in float) and the
    model compiles again, up to :data:`ACCURACY_ROUNDS` more times. The compile
    report's ``accuracy_fallback`` lists every round: the nodes moved, the SQNR
    reached, the AIPU MACs given up.
    """
    request = {k: v for k, v in locals().items() if k in _REQUEST}
    request["accuracy"] = None
    for key in ("disable_passes", "dump_ir_passes"):  # an iterator would be spent by the first attempt
        request[key] = tuple(request[key])
    if plugins is not None and not isinstance(plugins, PluginHost):
        request["plugins"] = tuple(plugins)
    if placement is not None:
        request["placement"] = {k: list(v) for k, v in placement.items()}
    if preprocessing is not None:  # checked before anything is opened, the user's transform imported once
        from .calibration import ImagePreprocessing, load_transform
        from .errors import CalibrationError

        try:  # a bad option is the user's usage (exit 2), as a bad property is
            if not isinstance(preprocessing, ImagePreprocessing):
                request["preprocessing"] = preprocessing = ImagePreprocessing.from_mapping(preprocessing)
            if preprocessing.transform:
                load_transform(preprocessing.transform)
        except CalibrationError as exc:
            raise UsageError(str(exc)) from None
    if target_sqnr is not None:
        return _compile_to_target(model, config, request, _target_db(target_sqnr))
    return _compile_with_fallback(model, config, request)


def _compile_with_fallback(model: Any, config: Any, request: Mapping[str, Any]) -> CompileResult:
    """Compile attempts until none refuses a new node (see :func:`compile`)."""
    from .errors import UnsupportedOperatorError

    refused: dict[str, str] = {}
    rounds = 0
    while True:
        try:
            return _compile_once(model, config, refused, request)
        except UnsupportedOperatorError as exc:
            new = {k: v for k, v in exc.reasons.items() if k not in refused}
            if not request["host_fallback"] or not new or rounds >= FALLBACK_ROUNDS:
                raise
            refused.update(new)
            rounds += 1


#: With ``target_sqnr``: at most this many compiles after the first, each moving one more layer to the host.
ACCURACY_ROUNDS = 8


def _target_db(value: Any) -> float:
    try:
        db = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"target_sqnr {value!r} is not a number of dB") from None
    if not 0 < db < 200:
        raise UsageError(f"target_sqnr {db:g} dB is out of range: give a target in (0, 200) dB")
    return db


def quantization_sections(report: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(segment name, quantization section)`` of every device segment in a compile report, the first
    segment's (``device1``) at the top level, the others under ``segments``."""
    sections = [("device1", report.get("quantization", {}))]
    sections += [(str(s.get("name")), s.get("quantization", {})) for s in report.get("segments", [])
                 if isinstance(s, dict)]
    return [(name, q) for name, q in sections if isinstance(q, dict)]


def output_sqnr(report: Mapping[str, Any]) -> float | None:
    """The worst device segment's output SQNR against float (dB) in a compile report, if it was measured."""
    found = [q.get("output_sqnr_db") for _, q in quantization_sections(report)]
    found = [f for f in found if isinstance(f, (int, float))]
    return min(found) if found else None


def _compile_to_target(model: Any, config: Any, request: dict[str, Any], target: float) -> CompileResult:
    """Accuracy-controlled fallback (see :func:`compile`): compile, then move the most sensitive layer to the
    host while the output SQNR is under ``target``."""
    if not request["host_fallback"]:
        raise UsageError("target_sqnr moves layers to the host: it cannot be combined with host_fallback=False")
    placement = {k: list(v) for k, v in (request.get("placement") or {}).items()}
    given = list(placement.get("host_nodes", []))
    moved: list[str] = []
    rounds: list[dict[str, Any]] = []
    while True:
        accuracy = {"target_db": target, "rounds": rounds, "moved": list(moved)}
        attempt = {**request, "placement": {**placement, "host_nodes": given + moved}, "accuracy": accuracy}
        result = _compile_with_fallback(model, config, attempt)
        section = result.report["accuracy_fallback"]  # this compile's round appended (_accuracy_section)
        rounds = section["rounds"]
        if section["met"] or section["output_sqnr_db"] is None or len(rounds) > ACCURACY_ROUNDS:
            return result
        candidate = _most_sensitive_left(result.report, set(given + moved))
        if candidate is None:
            return result
        moved.extend(candidate)


def _most_sensitive_left(report: Mapping[str, Any], on_host: set[str]) -> list[str] | None:
    """The ONNX nodes of the device layer of lowest own SQNR that is not on the host yet, or None."""
    rows = [r for _, q in quantization_sections(report) for r in q.get("most_sensitive", [])]
    for row in sorted(rows, key=lambda r: (r["own_db"], r["node"])):
        names = [n for n in (row.get("source") or [row["node"]]) if n not in on_host]
        if names:
            return names
    return None


#: The arguments of :func:`compile` one attempt takes as they are (``accuracy``: the target loop's state).
_REQUEST = ("output_dir", "calibration", "input_shapes", "plugins", "disable_passes", "stop_after", "verify",
            "dump_ir_dir", "dump_ir_passes", "dump_ir_changed", "inputs", "host_fallback", "placement", "preprocessing",
            "options", "accuracy")


def _compile_once(model: Any, config: Any, refused: Mapping[str, str], request: Mapping[str, Any]) -> CompileResult:
    """One attempt of :func:`compile`, with its arguments; ``refused`` maps ONNX node names an earlier
    attempt's back end refused to why (the graph cleaner places them on the host)."""
    import os

    (output_dir, calibration, input_shapes, plugins, disable_passes, stop_after, verify, dump_ir_dir,
     dump_ir_passes, dump_ir_changed, inputs, host_fallback, placement, preprocessing, options,
     accuracy) = (request[k] for k in _REQUEST)

    import structlog

    from .logging import capture, configure

    if not structlog.is_configured():
        configure()
    host = _host(plugins)
    cfg, presets = resolve_config(config, host)
    plugin_options = resolve_options(host.options, options or {}, "plugin options")
    if accuracy is not None:
        if str(cfg.compiler_mode) == "lower_only" or not cfg.run_graph_cleaner:
            raise UsageError("target_sqnr needs a quantizing compiler_mode and run_graph_cleaner=true: it measures "
                             "the quantized model and moves layers to the host")
        cfg.quantization_debug = True  # the per-layer sensitivity the target loop reads
    if output_dir is not None:
        cfg.output_dir = str(output_dir)
    if not cfg.output_dir:
        raise UsageError("output_dir is not set: pass -o DIR (CLI) or output_dir=... (API)")
    model_name, model_entry = _model_identity(model)
    model_name = cfg.model_name or model_name
    disabled = set(disable_passes)
    pipeline: Pipeline = resolve_pipeline(host.passes(), cfg, disabled=disabled, blocked=host.blocked)
    if stop_after is not None:
        _check_stop_after(stop_after, pipeline)
    else:
        _check_promises(host, cfg, pipeline)

    out_dir = OutputDir(cfg.output_dir, remove=cfg.remove_output_dir, inputs=_read_paths(model, calibration))
    out = out_dir.path
    early = ["manifest.json", "compile_report.json", *(("pass_dependency_graph.json", "pass_trace.json")
                                                       if cfg.trace_tvm_passes else ())]
    if verify is None:
        verify = os.environ.get("AXDRIVE_VERIFY", "").strip().lower() in ("1", "true", "yes", "on")
    manager: PassManager | None = None
    with protected_paths(_protected_files(model, calibration)):
        try:  # from the moment the output directory is opened, any way out goes through abandon()
            stage = out_dir.open(early_names=early)
            session = CompileSession(
                config=cfg,
                host=host,
                tracer=Tracer(),
                artifacts=stage,
                model=model,
                model_path=Path(model) if isinstance(model, (str, Path)) else None,
                inputs={"calibration": calibration, "input_shapes": dict(input_shapes or {}),
                        **({"preprocessing": preprocessing} if preprocessing is not None else {}), **dict(inputs or {})},
                options={"verify": bool(verify), "dump_ir_dir": dump_ir_dir, "dump_ir_passes": set(dump_ir_passes),
                         "dump_ir_changed": bool(dump_ir_changed),
                         "host_fallback": bool(host_fallback), "refused_nodes": dict(refused or {}),
                         "placement": {k: list(v) for k, v in (placement or {}).items()},
                         **({"accuracy": accuracy} if accuracy is not None else {})},
            )
            session.pipeline = pipeline
            session.plugin_options = plugin_options
            manager = PassManager(session, disabled=disabled)
            log = structlog.get_logger("axdrive.driver").bind(model=model_name)
            started = time.perf_counter()
            with capture(session.log_records), structlog.contextvars.bound_contextvars(model=model_name):
                log.info("compile started", passes=len(pipeline))
                try:
                    host.hook.axdrive_compile_start(session=session)
                    manager.run(pipeline, stop_after=stop_after)
                except BaseException as exc:
                    # info, not error: the caller (the CLI) reports the error itself, once
                    log.info("compile failed", error=str(exc))
                    try:
                        host.hook.axdrive_compile_finish(session=session, error=exc)
                    finally:
                        _write_failure_outputs(session, out_dir, model_name, exc)
                    raise
                host.hook.axdrive_compile_finish(session=session, error=None)
                wall = time.perf_counter() - started
                report = _report(session, model_name, wall)
                stage.write_json("compile_report.json", report)
                if cfg.trace_tvm_passes:
                    _stage_traces(session, stage, model_name)
                manifest = _manifest(session, model_name, model_entry, presets, pipeline)
                stage.write_json("manifest.json", manifest)
                moved = out_dir.commit()
                log.info("compile finished", wall_s=round(wall, 3), artifacts=len(moved))
        except BaseException:
            out_dir.abandon()
            raise
        finally:
            if manager is not None:
                manager.close()
    return CompileResult(
        output_dir=out,
        artifacts={p.name: p for p in moved},
        report=report,
        manifest=manifest,
        pipeline=[e.name for e in pipeline],
        graph=session.graph,
        session=session,
    )


def _check_promises(host: PluginHost, cfg: Any, pipeline: Pipeline) -> None:
    """Every property the plugins promise for this config (``axdrive_promises``) has an enabled provider in the
    pipeline, or the compile stops before it starts, naming what took the provider away."""
    promised = [p for answer in host.hook.axdrive_promises(config=cfg) for p in (answer or ())]
    for prop in dict.fromkeys(promised):
        providers = [e for e in pipeline if prop in e.pass_.provides]
        if any(e.enablement.enabled for e in providers):
            continue
        why = "; ".join(f"{e.name} is off ({e.enablement.reason})" for e in providers) or \
            f"no installed pass provides it{_blocked(host)}"
        raise UsageError(f"compiler_mode={cfg.compiler_mode} needs {prop!r}, and nothing in this pipeline will "
                         f"provide it: {why}")


def _blocked(host: PluginHost) -> str:
    return f" (blocked: {', '.join(sorted(host.blocked))})" if host.blocked else ""


def _check_stop_after(stop_after: str, pipeline: Pipeline) -> None:
    """``--stop-after`` must name a pass of the pipeline or a property one provides."""
    names = pipeline.names
    props = sorted({p for e in pipeline for p in e.pass_.provides})
    if stop_after in names or stop_after in props:
        return
    import difflib

    close = difflib.get_close_matches(stop_after, names + props, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise UsageError(f"--stop-after {stop_after!r} names no pass of the pipeline and no property a pass provides{hint}")


def _report(session: CompileSession, model_name: str, wall_s: float) -> dict[str, Any]:
    report: dict[str, Any] = {
        "schema": "axdrive.compile_report/1",
        "model": model_name,
        "status": "ok",
        "wall_s": round(wall_s, 4),
        "passes": _pass_rows(session.tracer),
        "warnings": list(session.warnings),
    }
    for key, value in session.report.items():
        report.setdefault(key, value)
    accuracy = session.options.get("accuracy")
    if accuracy is not None:
        section = report["accuracy_fallback"] = _accuracy_section(accuracy, report)
        if not section["met"]:
            report["warnings"].append(
                f"target_sqnr {section['target_db']:g} dB not met: the outputs reach {section['output_sqnr_db']} dB "
                f"with {len(section['host_nodes_added'])} layer(s) moved to the host in "
                f"{len(section['rounds'])} compile(s)")
    return report


def _accuracy_section(accuracy: Mapping[str, Any], report: Mapping[str, Any]) -> dict[str, Any]:
    """``--target-sqnr``'s rounds so far and this compile's: what moved to the host, the SQNR, the MACs."""
    reached = output_sqnr(report)
    macs = report.get("placement", {}).get("device_macs")
    rounds = [*accuracy["rounds"], {"host_nodes_added": list(accuracy["moved"]), "output_sqnr_db": reached,
                                    "device_macs": macs}]
    first = rounds[0].get("device_macs")
    return {"target_db": accuracy["target_db"], "met": reached is not None and reached >= accuracy["target_db"],
            "output_sqnr_db": reached, "host_nodes_added": list(accuracy["moved"]),
            "device_macs_given_up": (first - macs) if isinstance(first, int) and isinstance(macs, int) else None,
            "rounds": rounds}


def _stage_traces(session: CompileSession, stage: ArtifactStage, model_name: str) -> None:
    sha = session.config.config_sha256()
    stage.write_json("pass_dependency_graph.json", dependency_graph(session.tracer, model=model_name, config_sha256=sha))
    stage.write_json("pass_trace.json", chrome_trace(session.tracer, model=model_name))


def _write_failure_outputs(session: CompileSession, out_dir: OutputDir, model_name: str, exc: BaseException) -> None:
    """The trace files and the error ZIP of a failed compile, kept beside the last good compile.

    Never masks ``exc``: a failure here (a full disk, an IR that cannot be
    exported) becomes a warning, and the user still sees the original error.
    An interrupted compile (Ctrl-C, SIGTERM) writes nothing: the user asked it to stop.
    """
    from .errors import Interrupted

    cfg = session.config
    if isinstance(exc, (KeyboardInterrupt, Interrupted)) or not (cfg.trace_tvm_passes or cfg.save_error_artifact):
        return
    import structlog

    log = structlog.get_logger("axdrive.driver")
    files: dict[str, bytes] = {}
    try:
        doc = dependency_graph(session.tracer, model=model_name, config_sha256=cfg.config_sha256())
        if cfg.trace_tvm_passes:
            files["pass_dependency_graph.json"] = canonical_json(doc).encode()
            files["pass_trace.json"] = canonical_json(chrome_trace(session.tracer, model=model_name)).encode()
        if cfg.save_error_artifact:
            files["error_artifact.zip"] = _error_zip(session, exc, doc)
        out_dir.write_failure(files)
    except Exception as problem:  # noqa: BLE001 - the original error must reach the user
        log.warning("could not write the failure files", files=sorted(files) or ["error_artifact.zip"],
                    error=f"{type(problem).__name__}: {getattr(problem, 'strerror', None) or problem}")


def _read_paths(model: Any, calibration: Any) -> dict[str, Any]:
    """What the compile reads, by description (for the output directory's protected folders)."""
    found: dict[str, Any] = {}
    if isinstance(model, (str, Path)):
        found["the model"] = model
    if isinstance(calibration, (str, Path)):
        found["the calibration data"] = calibration
    return found


def _protected_files(model: Any, calibration: Any) -> dict[Path, str]:
    """Files no write of this compile may replace: the model, the calibration file or the files of its folder."""
    files: dict[Path, str] = {}
    for what, value in _read_paths(model, calibration).items():
        p = Path(value)
        if p.is_dir():
            try:
                for i, child in enumerate(sorted(p.iterdir())):
                    if i >= 10_000:
                        break
                    files[child] = what
            except OSError:
                pass
        else:
            files[p] = what
    return files


#: Location properties that describe the machine (where the compiler, host runtime and device resources
#: live) rather than the compile: recorded in the manifest under ``environment`` when set, kept out of
#: ``config`` and ``config_sha256`` so the same compile on another machine has the same identity.
ENVIRONMENT_PROPERTIES = ("compiler_dir", "runtime_dir", "device_dir")


def _environment(cfg: Any) -> dict[str, str]:
    """The set :data:`ENVIRONMENT_PROPERTIES` as given; ``axdrive run`` hands them to the device runtime."""
    return {name: str(getattr(cfg, name)) for name in ENVIRONMENT_PROPERTIES if getattr(cfg, name)}


#: The artifacts of one device segment that ``axdrive run`` reads, by role (a further segment's carry its prefix).
DEVICE_PART_FILES = {"program": "program.bin", "host_io": "host_io.json", "quantized_model": "quantized_model.onnx"}


def _parts(session: CompileSession) -> list[dict[str, Any]]:
    """The chain ``axdrive run`` executes, in order: host parts (an ONNX file and the tensors it reads and
    computes) and device segments (their files, and their I/O signature with quantization parameters)."""
    stage = session.artifacts
    assert stage is not None
    staged = set(stage.names)
    graphs = {s.name: s.final_graph for s in session.segments}
    parts = []
    for part in session.parts:
        entry = dict(part)
        if part.get("kind") == "device":
            prefix = str(part.get("prefix", ""))
            entry.pop("prefix", None)
            for role, name in DEVICE_PART_FILES.items():
                if prefix + name in staged:
                    entry[role] = prefix + name
            entry.update(_io_signature(graphs.get(part["name"], session.graph) if prefix else session.graph))
        parts.append(entry)
    return parts


def _manifest(
    session: CompileSession, model_name: str, model_entry: dict[str, Any], presets: list[dict[str, Any]], pipeline: Pipeline
) -> dict[str, Any]:
    stage = session.artifacts
    assert stage is not None
    artifacts = []
    reports = []
    for name in sorted(stage.names):
        if name == "manifest.json":
            continue
        if name in REPORT_FILES:
            reports.append(name)
        else:
            artifacts.append({"name": name, "sha256": stage.sha256(name)})
    status = {s.name: s for s in session.tracer.spans}
    return {
        "schema": "axdrive.manifest/1",
        "model": {"name": model_name, **model_entry},
        "axdrive_version": __version__,
        "plugins": [
            {"name": p.name, "distribution": p.distribution, "version": p.version}
            for p in sorted(session.host.plugins, key=lambda p: p.name)
            if p.source != "internal"
        ],
        # where the output goes is not part of what was compiled: leave it out so the
        # same compile into another directory gives a byte-identical manifest
        "config": session.config.to_dict(include_location=False),
        "config_sha256": session.config.config_sha256(),
        **({"environment": env} if (env := _environment(session.config)) else {}),
        "presets": presets,
        "pipeline": [
            {
                "name": e.name,
                "plugin": e.pass_.plugin,
                "status": status[e.name].status if e.name in status else "not-run",
                **({"reason": status[e.name].reason} if e.name in status and status[e.name].reason else {}),
            }
            for e in pipeline
        ],
        **_io_signature(session.graph),
        **({"parts": _parts(session), "model_outputs": list(session.model_outputs)} if session.parts else {}),
        **({"preprocessing": pre} if (pre := session.report.get("calibration", {}).get("preprocessing")) else {}),
        **({"plugin_options": dict(session.plugin_options)} if session.plugin_options else {}),
        "artifacts": artifacts,
        "reports": reports,
    }


_ = AxdriveError  # re-exported for type checkers of callers
