"""Subcommand handlers. Heavy modules are imported inside each handler."""

from __future__ import annotations

import json
import sys
from argparse import Namespace
from pathlib import Path
from typing import Any


def _setup_logging(args: Namespace) -> None:
    from ..logging import configure

    configure(fmt=args.log_format, level="debug" if args.verbose else "warning")


def _load_config(args: Namespace) -> Any:
    return _load_config_and_placement(args)[0]


def _load_config_and_placement(args: Namespace) -> tuple[Any, dict[str, list[str]]]:
    """The config (file, then ``--set``) and the placement the user asked for (the file's ``[placement]``
    table, then ``--host-node`` / ``--device-input`` / ``--device-output``, appended)."""
    cfg, placement, _, _ = _load_everything(args)
    return cfg, placement


def _load_everything(args: Namespace) -> tuple[Any, dict[str, list[str]], dict[str, Any] | None, dict[str, Any]]:
    """The config file read once: its properties (then ``--set``), ``[placement]`` (then the placement flags),
    ``[preprocessing]`` (then ``--preprocess`` / ``--transform``) and ``[options]`` (then ``--option``)."""
    from ..config import PLACEMENT_KEYS, CompilerConfig, load_config_file

    cfg, tables = load_config_file(args.config) if getattr(args, "config", None) else (CompilerConfig(), {})
    if getattr(args, "set_values", None):
        cfg.set_from_strings(args.set_values)
    placement = {k: list(tables.get("placement", {}).get(k, [])) + list(getattr(args, k, None) or [])
                 for k in PLACEMENT_KEYS}
    pre = dict(tables.get("preprocessing", {}))
    if isinstance(pre.get("transform"), str) and getattr(args, "config", None):  # relative to the config file
        file, sep, func = pre["transform"].rpartition(":")
        pre["transform"] = f"{Path(args.config).parent / file}{sep}{func}" if sep else pre["transform"]
    if getattr(args, "transform", None):  # the flag replaces the file's built-in steps, as flags override keys
        pre = {k: v for k, v in pre.items() if k == "dtype"} | {"transform": args.transform}
    pre |= _assignments(getattr(args, "preprocess", None), "--preprocess", "KEY=VALUE, e.g. scale=1/255")
    options = {**tables.get("options", {}),
               **_assignments(getattr(args, "options", None), "--option", "NAMESPACE.NAME=VALUE, e.g. example.top=5")}
    return cfg, {k: v for k, v in placement.items() if v}, (pre or None), options


def _assignments(items: Any, flag: str, expected: str) -> dict[str, str]:
    """``KEY=VALUE`` flags as a mapping (a later one wins); one line naming the flag for anything else."""
    from ..errors import UsageError

    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{flag} {item!r}: expected {expected}")
        out[key.strip()] = value.strip()
    return out


# -- compile -------------------------------------------------------------------
def _parse_shapes(items: list[str]) -> dict[str, tuple[int, ...]]:
    from ..errors import UsageError

    shapes: dict[str, tuple[int, ...]] = {}
    for item in items:
        name, sep, dims = item.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            shape = tuple(int(d) for d in dims.lower().split("x"))
            if not shape or any(d <= 0 for d in shape):
                raise ValueError
        except ValueError:
            raise UsageError(f"--input-shape {item!r}: expected NAME=D1xD2x... with positive integers, e.g. images=1x3x320x320") from None
        shapes[name] = shape
    return shapes


def cmd_compile(args: Namespace) -> int:
    _setup_logging(args)
    from ..driver import compile as run_compile
    from ..passes import PluginHost
    from ._progress import Progress

    cfg, placement, preprocessing, options = _load_everything(args)
    if args.output_dir:
        cfg.output_dir = args.output_dir
    host = PluginHost.from_args(args.plugins)
    progress = Progress()
    host.register(progress, name="axdrive.cli.progress", distribution="axdrive", internal=True)
    progress.start()
    try:
        result = run_compile(
            args.model,
            cfg,
            calibration=args.calibration,
            input_shapes=_parse_shapes(args.input_shapes),
            plugins=host,
            disable_passes=args.disable_passes,
            stop_after=args.stop_after,
            verify=True if args.verify_each else None,
            dump_ir_dir=args.dump_ir,
            dump_ir_passes=args.dump_ir_passes,
            dump_ir_changed=args.dump_ir_changed,
            host_fallback=not args.no_host_fallback,
            placement=placement,
            preprocessing=preprocessing,
            target_sqnr=args.target_sqnr,
            options=options,
        )
    finally:
        progress.stop()
    _print_summary(result)
    return 0


def _print_summary(result: Any) -> None:
    rep = result.report
    ran = sum(1 for p in rep["passes"] if p["status"] == "ok" and p["parent"] is None)
    skipped = sum(1 for p in rep["passes"] if p["status"] == "skipped" and p["parent"] is None)
    print(f"compiled {rep['model']} in {rep['wall_s']:.2f} s: {ran} passes ran, {skipped} skipped")
    segments = [s for s in rep.get("segments", []) if isinstance(s, dict)]
    for key in ("placement", "performance", "memory"):
        per_segment = key != "placement" and segments  # each further segment's own figures, named
        sources = [(f"{key} [device1]" if per_segment else key, rep.get(key))]
        sources += [(f"{key} [{s.get('name')}]", s.get(key)) for s in (segments if per_segment else [])]
        for label, section in sources:
            if isinstance(section, dict):
                print(f"  {label}: " + ", ".join(f"{k}={v}" for k, v in section.items()
                                                 if not isinstance(v, (dict, list))))
    cal = rep.get("calibration")
    if isinstance(cal, dict):
        print("  " + _calibration_line(cal))
    for line in _sensitivity_table(rep):
        print(line)
    acc = rep.get("accuracy_fallback")
    if isinstance(acc, dict):
        moved = ", ".join(acc["host_nodes_added"]) or "none"
        print(f"  accuracy: target {acc['target_db']:g} dB {'met' if acc['met'] else 'NOT met'}, outputs at "
              f"{acc['output_sqnr_db']} dB after {len(acc['rounds'])} compile(s); moved to the host: {moved}; "
              f"AIPU MACs given up: {acc['device_macs_given_up']:,}" if acc.get("device_macs_given_up") is not None
              else f"  accuracy: target {acc['target_db']:g} dB, outputs at {acc['output_sqnr_db']} dB")
    for w in rep.get("warnings", []):
        print(f"  warning: {w}")
    print(f"artifacts in {result.output_dir}:")
    for name in sorted(result.artifacts):
        print(f"  {name}")


def _sensitivity_table(rep: dict[str, Any]) -> list[str]:
    """The most sensitive layers of each device segment, in graph order (quantization_debug.json has them all)."""
    from ..driver import quantization_sections

    lines: list[str] = []
    sections = quantization_sections(rep)
    for name, q in sections:
        rows = q.get("most_sensitive")
        if not rows:
            continue
        label = f" [{name}]" if len(sections) > 1 else ""
        lines.append(f"  most sensitive layers{label} (outputs at {q.get('output_sqnr_db')} dB SQNR; "
                     "all layers: quantization_debug.json):")
        width = max(len(str(r["node"])) for r in rows)
        lines.append(f"    {'#':>4}  {'node':<{width}}  {'op':<14} {'own dB':>8} {'cumul. dB':>10} {'MACs':>12}")
        for r in rows:
            cum = "" if r.get("cumulative_db") is None else f"{r['cumulative_db']:.2f}"
            lines.append(f"    {r['order']:>4}  {r['node']:<{width}}  {r['op']:<14} {r['own_db']:>8.2f} {cum:>10} "
                         f"{r['macs']:>12,}")
    return lines


def _calibration_line(cal: dict[str, Any]) -> str:
    """``calibration: 8 samples from DIR; images 3x320x320: channels [0, 1] [0, 1] [0, 1]`` (one line)."""
    parts = []
    for name, entry in cal.get("inputs", {}).items():
        ranges = entry.get("channel_ranges")
        shown = ("channels " + " ".join(f"[{lo:g}, {hi:g}]" for lo, hi in ranges) if ranges else
                 "range [{:g}, {:g}]".format(*entry["range"]))
        parts.append(f"{name} {'x'.join(str(d) for d in entry['shape'])}: {shown}")
    scale = cal.get("input_scale")
    tail = f"; first layer at {scale['ratio']:g}x its bias" if scale else ""
    return f"calibration: {cal.get('samples')} samples from {cal.get('source')}; " + "; ".join(parts) + tail


# -- run -----------------------------------------------------------------------
def _read_inputs(path: str, folder: str) -> Any:
    """The arrays of ``--input``: read within bounds (header checked against the file's bytes and the memory
    left, no pickles; see :func:`axdrive.inputs.read_array_file`), each refusal one line naming the file; or a
    photo, preprocessed as the compile in ``folder`` recorded it."""
    from ..calibration import IMAGE_SUFFIXES
    from ..errors import UsageError
    from ..inputs import read_array_file

    if path.lower().endswith(IMAGE_SUFFIXES):
        from ..runner import read_photo

        return read_photo(folder, path)
    if not path.endswith((".npy", ".npz")):
        raise UsageError(f"--input {path}: expected a .npy (one array), .npz (one array per input name) or a photo "
                         f"({', '.join(IMAGE_SUFFIXES)})")
    return read_array_file(path, where=f"--input {path}")


def _check_output_file(path: str) -> None:
    """Refuse ``-o OUT`` that cannot become the outputs file before the run spends time on the inputs."""
    from pathlib import Path

    from ..errors import UsageError

    if Path(path).is_dir():
        raise UsageError(f"-o {path}: is a directory (give a file name for the outputs, e.g. {Path(path) / 'out.npz'})")


def _fmt_seconds(s: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale:
            return f"{s / scale:.4g} {unit}"
    return f"{s / 1e-9:.4g} ns"


def _fmt_db(v: float) -> str:
    return "inf" if v == float("inf") else "-inf" if v == float("-inf") else f"{v:.2f}"


def _check_figures_dir(path: str) -> None:
    """Refuse an OUTDIR that cannot become a directory before the run spends time, without creating it yet
    (a run that fails should leave nothing behind)."""
    import os
    from pathlib import Path

    from ..errors import UsageError

    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UsageError(f"--figures {path}: exists and is not a directory")
    parent = p
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"--figures {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--figures {path}: {'it' if parent == p else parent} is not writable")


def _write_figures(path: str, figures: dict[str, str]) -> None:
    """Each figure through a temp file and a rename, like every other output; one error line if it fails."""
    from pathlib import Path

    from ..artifacts import atomic_write_bytes
    from ..errors import UsageError

    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, svg in figures.items():
            atomic_write_bytes(folder / name, svg.encode("utf-8"))
    except OSError as exc:
        raise UsageError(f"--figures {path}: cannot write: {exc.strerror or exc}") from None
    sizes = ", ".join(f"{name} ({len(svg.encode('utf-8')) / 1024:.0f} KiB)" for name, svg in figures.items())
    print(f"wrote figures into {folder}: {sizes}")


def cmd_run(args: Namespace) -> int:
    _setup_logging(args)
    from ..artifacts import protected_paths
    from ..runner import execute

    if args.figures is not None:
        _check_figures_dir(args.figures)
    if args.output:
        _check_output_file(args.output)
    with protected_paths(_run_reads(args)):
        return _run_and_write(args, execute)


def _run_reads(args: Namespace) -> dict[Any, str]:
    """What ``axdrive run`` reads, so no output of the run can replace it: the input and the compiled files."""
    from pathlib import Path

    from ..outdir import committed_dir

    reads: dict[Any, str] = {args.input: "the run's input"}
    folder = committed_dir(args.dir)
    try:
        for p in sorted(Path(folder).iterdir()):
            reads[p] = f"an artifact of {args.dir}"
    except OSError:
        pass
    return reads


def _run_and_write(args: Namespace, execute: Any) -> int:
    import io
    from pathlib import Path

    import numpy as np

    from ..artifacts import atomic_write_bytes, canonical_json

    result = execute(args.dir, _read_inputs(args.input, args.dir), core_only=args.core_only, profile=args.profile,
                     float_model=args.float_model,
                     compare=args.compare, plugins=args.plugins, figures=args.figures is not None)
    rep = result.report
    link = rep.get("host_link", {})
    if rep.get("target") == "cpu":  # a quantize_only directory: the quantized model in onnxruntime
        models = ", ".join(str(s.get("quantized_model")) for s in rep.get("segments", []))
        print(f"ran {args.dir} on the CPU: {rep.get('frames')} frame(s) through {models} in onnxruntime "
              "(compiler_mode=quantize_only wrote no device program)")
    else:
        print(f"ran {args.dir} on {rep.get('target')}: {rep.get('frames')} frame(s), {rep.get('cycles'):,} cycles = "
              f"{_fmt_seconds(rep.get('seconds', 0.0))} at {rep.get('frequency_hz', 0) / 1e6:g} MHz "
              f"(host link {link.get('input_cycles', 0):,} + {link.get('output_cycles', 0):,} cycles; "
              f"{rep.get('multicore_mode')} on {rep.get('host', {}).get('workers', 1)} {rep.get('host', {}).get('kind')})")
    busy = rep.get("unit_busy", {})
    if busy:
        print("  busy cycles: " + ", ".join(f"{k}={v:,}" for k, v in busy.items()))
    print("outputs:" if result else "outputs: none")
    for name, value in result.items():
        v = np.asarray(value)
        rng = f" [{v.min():.6g}, {v.max():.6g}]" if v.size and v.dtype.kind in "fiu" else ""
        print(f"  {name}: {v.dtype}{list(v.shape)}{rng}")
    if args.compare:
        print("compare (ours against each reference):")
        width = max((len(c.output) for c in result.comparisons), default=6)
        for c in result.comparisons:
            print(f"  {c.output:<{width}}  {c.reference:<40} max-abs {c.max_abs_error:<12.6g} "
                  f"SQNR {_fmt_db(c.sqnr_db)} dB")
        for note in result.notes:
            print(f"  note: {note}")
    if args.output:
        buf = io.BytesIO()
        np.savez(buf, **{k: np.asarray(v) for k, v in result.items()})
        atomic_write_bytes(args.output, buf.getvalue())
        print(f"wrote {args.output}")
    if result.trace_lines is not None:
        folder = Path(args.output).resolve().parent if args.output else Path(args.dir)
        atomic_write_bytes(folder / "profile.txt", "".join(line + "\n" for line in result.trace_lines).encode())
        atomic_write_bytes(folder / "profile_trace.json", canonical_json(result.chrome_trace).encode())
        print(f"wrote {folder / 'profile.txt'} ({len(result.trace_lines)} lines) and {folder / 'profile_trace.json'}")
    if result.figures is not None:
        _write_figures(args.figures, result.figures)
    return 0


# -- passes --------------------------------------------------------------------
def cmd_passes(args: Namespace) -> int:
    _setup_logging(args)
    from ..passes import PluginHost, resolve_pipeline

    cfg = _load_config(args)
    host = PluginHost.from_args(args.plugins)
    pipeline = resolve_pipeline(host.passes(), cfg, disabled=args.disable_passes, blocked=host.blocked)
    if args.format == "json":
        doc = {
            "plugins": [
                {"name": p.name, "distribution": p.distribution, "version": p.version, "source": p.source,
                 "passes": sorted(x.name for x in host.passes() if x.plugin == p.distribution)}
                for p in host.plugins if p.source != "internal"
            ],
            "pipeline": [
                {"name": e.name, "plugin": e.pass_.plugin, "enabled": e.enablement.enabled, "reason": e.enablement.reason,
                 "requires": list(e.pass_.requires), "provides": list(e.pass_.provides),
                 "before": list(e.pass_.before), "after": list(e.pass_.after),
                 "subpasses": [s.name for s in e.pass_.subpasses], "config_keys": list(e.pass_.config_keys),
                 "description": e.pass_.summary}
                for e in pipeline
            ],
            "edges": [{"from": a, "to": b, "property": prop} for a, b, prop in pipeline.edges],
        }
        print(json.dumps(doc, indent=1))
        return 0
    if args.format == "dot":
        print("digraph pipeline {\n  rankdir=LR;\n  node [shape=box];")
        for e in pipeline:
            style = "" if e.enablement.enabled else ", style=dashed, color=gray60"
            print(f'  "{e.name}" [label="{e.name}\\n{e.pass_.plugin}\\n{e.enablement.reason}"{style}];')
        for a, b, prop in pipeline.edges:
            print(f'  "{a}" -> "{b}" [label="{prop}"];')
        print("}")
        return 0
    print("installed plugins:")
    for p in host.plugins:
        if p.source == "internal":
            continue
        names = sorted(x.name for x in host.passes() if x.plugin == p.distribution)
        print(f"  {p.distribution} {p.version} ({p.source}: {p.name}): {', '.join(names) or 'no passes'}")
    if host.blocked:
        print("blocked: " + ", ".join(sorted(host.blocked)))
    print(f"pipeline ({len(pipeline)} passes):")
    width = max((len(e.name) for e in pipeline), default=10)
    for i, e in enumerate(pipeline, 1):
        mark = "run " if e.enablement.enabled else "skip"
        req = f" requires {', '.join(e.pass_.requires)}" if e.pass_.requires else ""
        order = "".join(f" {kind} {', '.join(names)}" for kind, names in (("before", e.pass_.before),
                                                                         ("after", e.pass_.after)) if names)
        print(f"  {i:3d}. {mark} {e.name:<{width}}  [{e.enablement.reason}]{req}{order}")
        if e.pass_.summary:
            print(f"         {e.pass_.summary}")
        for s in e.pass_.subpasses:
            print(f"         - {s.name}: {s.summary}" if s.summary else f"         - {s.name}")
    return 0


# -- config --------------------------------------------------------------------
def cmd_config_show(args: Namespace) -> int:
    """The properties, then (if installed plugins declare any) their options under ``"options"``."""
    from ..passes import PluginHost, resolve_options

    cfg, _, _, options = _load_everything(args)
    cfg.validate()
    doc = cfg.to_dict()
    declared = PluginHost.from_args(getattr(args, "plugins", None) or ()).options
    if declared or options:
        doc["options"] = resolve_options(declared, options, "--option")
    print(json.dumps(doc, indent=1))
    return 0


def cmd_config_validate(args: Namespace) -> int:
    """The file's properties and tables, and its ``[options]`` against what the installed plugins declare."""
    from ..config import load_config_file
    from ..errors import ConfigError
    from ..passes import PluginHost, resolve_options

    try:
        _, tables = load_config_file(args.file)
        resolve_options(PluginHost().options, tables.get("options", {}), str(args.file))
    except ConfigError as exc:
        if all(problem.prop == "<file>" for problem in exc.problems):
            raise  # the file as a whole (missing, not a regular file, too large, not parseable): one line
        for problem in exc.problems:
            print(f"axdrive: error: {problem}", file=sys.stderr)
        print(f"{args.file}: {len(exc.problems)} problem(s)", file=sys.stderr)
        return exc.exit_code
    print(f"{args.file}: valid")
    return 0


def cmd_config_schema(args: Namespace) -> int:
    """The config file's schema: the properties, the tables, and the installed plugins' ``[options]``."""
    from ..config import json_schema
    from ..passes import PluginHost, option_schema

    doc = json_schema()
    declared = PluginHost.from_args(getattr(args, "plugins", None) or ()).options
    if declared:
        doc["properties"]["options"] = option_schema(declared)
    print(json.dumps(doc, indent=1))
    return 0


def cmd_config_docs(args: Namespace) -> int:
    from ..config import markdown_reference

    sys.stdout.write(markdown_reference())
    return 0


# -- ops -----------------------------------------------------------------------
def cmd_ops(args: Namespace) -> int:
    """The placement of one model, computed by the compile itself (``--stop-after graph_cleaned``) in a
    temporary directory, so ``axdrive ops`` and ``axdrive compile`` cannot disagree."""
    _setup_logging(args)
    import tempfile

    from ..driver import compile as run_compile
    from ..errors import UsageError

    if args.model is None:
        from ..operators import format_report
        from ..passes import PluginHost

        sys.stdout.write(format_report(PluginHost.from_args(args.plugins).operators, args.format))
        return 0
    cfg, placement = _load_config_and_placement(args)
    if not cfg.run_graph_cleaner:
        raise UsageError("axdrive ops: run_graph_cleaner=false keeps every node in the core: there is no placement "
                         "to show (the lowering's validate_operators names what cannot run)")
    with tempfile.TemporaryDirectory(prefix="axdrive-ops-") as tmp:
        result = run_compile(args.model, cfg, output_dir=tmp, input_shapes=_parse_shapes(args.input_shapes),
                             plugins=args.plugins, disable_passes=args.disable_passes, stop_after="graph_cleaned",
                             placement=placement)
    placement = result.report.get("placement")
    if placement is None:
        raise UsageError("axdrive ops: no pass of the pipeline reported a placement (is the graph cleaner installed "
                         "and enabled? see axdrive passes)")
    doc = {"model": result.report.get("model"), **placement}
    core = placement.get("device", [])
    if args.format == "json":
        print(json.dumps(doc, indent=1))
        return 0
    segments = int(placement.get("device_segments", 1))

    def runs_on(part: str) -> str:
        if part.startswith("host"):
            return part.replace("_", " ")
        return "AIPU" if segments == 1 else f"AIPU {part}"

    rows = [(h["node"], h["op"], runs_on(h["part"]), h["reason"]) for h in placement["host"]]
    if args.all_nodes:  # every node, part by part in the order the run executes them
        order = {p["name"]: i for i, p in enumerate(placement.get("parts", []))}
        rows = [(n["node"], n["op"], runs_on(n.get("part", "device1")), "") for n in core] + rows
        part_of = {n["node"]: n.get("part", "device1") for n in core} | {h["node"]: h["part"] for h in placement["host"]}
        rows.sort(key=lambda r: order.get(part_of[r[0]], 0))
    total_macs = placement["device_macs"] + placement["host_macs"]
    summary = (f"{doc['model']}: {placement['device_nodes']} node(s) on the AIPU, {placement['host_nodes']} on the "
               f"host; {placement['device_macs']:,} of {total_macs:,} MACs on the AIPU "
               f"({100 * placement['device_mac_share']:.2f} %)"
               + (f" in {segments} device segments" if segments > 1 else ""))
    if args.format == "md":
        print(f"{summary}\n\n| node | op | runs on | why |\n|---|---|---|---|")
        for row in rows:
            print("| " + " | ".join(str(c).replace("|", "/") for c in row) + " |")
        return 0
    print(summary)
    if rows:
        widths = [max(len(str(r[i])) for r in rows + [("node", "op", "runs on", "why")]) for i in range(3)]
        print(f"  {'node':<{widths[0]}}  {'op':<{widths[1]}}  {'runs on':<{widths[2]}}  why")
        for node, op, part, why in rows:
            print(f"  {node:<{widths[0]}}  {op:<{widths[1]}}  {part:<{widths[2]}}  {why}")
    return 0


# -- report --------------------------------------------------------------------
_REPORT_SORT = {"cycles": lambda r: (-r["span_cycles"], r["order"]), "macs": lambda r: (-r["macs"], r["order"]),
                "bound_ratio": lambda r: (-(r["bound_ratio"] or 0.0), r["order"]), "order": lambda r: r["order"]}


def cmd_report(args: Namespace) -> int:
    """The per-layer performance a compile recorded (``compile_report.json`` -> ``layer_performance``)."""
    from ..errors import UsageError
    from ..files import read_input_file
    from ..outdir import committed_dir

    if args.top < 0:
        raise UsageError(f"--top {args.top}: give a count >= 0 (0: every layer)")
    path = committed_dir(args.dir) / "compile_report.json"
    try:
        report = json.loads(read_input_file(path, limit=256 << 20, what="a compile report"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{args.dir}: no readable compile_report.json ({exc})") from None
    perf = report.get("layer_performance") if isinstance(report, dict) else None
    if not isinstance(perf, dict) or not isinstance(perf.get("rows"), list):
        raise UsageError(f"{args.dir}: the compile report has no per-layer performance (a lowering mode writes it: "
                         "compiler_mode quantize_and_lower or lower_only)")
    rows = sorted(perf["rows"], key=_REPORT_SORT[args.sort])
    shown = rows if args.top == 0 else rows[:args.top]
    totals = perf.get("totals", {})
    if args.format == "json":
        print(json.dumps({"totals": totals, "rows": shown}, indent=1))
        return 0
    if args.format == "csv":  # the columns of layer_performance.csv, in the report's order
        import csv
        import io

        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(perf.get("columns") or sorted(rows[0] if rows else {})),
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in shown)
        sys.stdout.write(out.getvalue())
        return 0
    cols = ("order", "layer", "units", "macs", "mvm_cycles", "dpu_cycles", "dma_cycles", "span_cycles",
            "bound_cycles", "bound_ratio", "bounded_by", "share")
    multicore = report.get("multicore", {})
    head = (f"{report.get('model', '?')}: {totals.get('cycles', 0):,} cycles per frame "
            f"({report.get('performance', {}).get('frames_per_second')} frames/s on one run; "
            f"{multicore.get('throughput_fps')} frames/s {multicore.get('multicore_mode')} on "
            f"{multicore.get('aipu_cores_used')} core(s)); the layers' bounds sum to {totals.get('sum_of_bounds')} "
            f"cycles: {totals.get('cycles_over_bounds')}x. {len(shown)} of {len(rows)} layers, by {args.sort}:")
    if args.format == "md":
        lines = [head, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in shown]
        print("\n".join(lines))
        return 0
    widths = {c: max(len(c), *(len(f"{r.get(c, '')}") for r in shown)) if shown else len(c) for c in cols}
    widths["layer"] = min(widths["layer"], 40)
    print(head)
    print("  ".join(f"{c:>{widths[c]}}" if c != "layer" else f"{c:<{widths[c]}}" for c in cols))
    for r in shown:
        cells = [f"{str(r.get(c, ''))[:widths[c]]:<{widths[c]}}" if c == "layer" else f"{r.get(c, '')!s:>{widths[c]}}"
                 for c in cols]
        print("  ".join(cells))
    return 0


# -- trace ---------------------------------------------------------------------
def cmd_trace(args: Namespace) -> int:
    from ..tracing import format_critical_path, format_dot, format_tree, load_graph

    doc = load_graph(args.file)
    fmt = {"tree": format_tree, "dot": format_dot, "critical-path": format_critical_path}[args.format]
    print(fmt(doc))
    return 0
