"""Argument definitions for every subcommand (no heavy imports here)."""

from __future__ import annotations

__all__ = ["build_parser"]

import argparse


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="store_true", help="show tracebacks and debug logging")
    p.add_argument("--log-format", choices=("console", "json"), default="console", help="log line format (stderr)")


def _config_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="config file (TOML, YAML or JSON)")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="set_values",
                   help="override one property, typed (repeatable): --set aipu_cores_used=4 --set profiling_levels=B,K")


def _load_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("-p", metavar="PLUGIN", action="append", default=[], dest="plugins",
                   help="load a plugin module (-p mymod) or block an installed one (-p no:NAME); repeatable")


def _plugin_options(p: argparse.ArgumentParser) -> None:
    _load_arg(p)
    p.add_argument("--disable-pass", metavar="NAME", action="append", default=[], dest="disable_passes",
                   help="do not run this pass (repeatable); recorded as skipped")


def _placement_options(p: argparse.ArgumentParser) -> None:
    """What the user decides about placement (also a config file's ``[placement]`` table: docs/cli.md)."""
    p.add_argument("--host-node", metavar="NAME", action="append", default=[], dest="host_nodes",
                   help="run this ONNX node on the host, in float (repeatable)")
    p.add_argument("--device-input", metavar="TENSOR", action="append", default=[], dest="device_inputs",
                   help="the AIPU's part starts at this tensor: what computes it runs on the host (repeatable)")
    p.add_argument("--device-output", metavar="TENSOR", action="append", default=[], dest="device_outputs",
                   help="the AIPU's part ends at this tensor: what reads it runs on the host (repeatable)")


def _option_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--option", metavar="NAMESPACE.NAME=VALUE", action="append", default=[], dest="options",
                   help="set an option a plugin declares (beside the compiler properties; also an [options] table "
                   "of --config; `axdrive config show` lists them), e.g. example.top=5 (repeatable)")


def _preprocessing_options(p: argparse.ArgumentParser) -> None:
    """How photos become model inputs (also a config file's ``[preprocessing]`` table: docs/cli.md)."""
    p.add_argument("--preprocess", metavar="KEY=VALUE", action="append", default=[], dest="preprocess",
                   help="how photos (a --calibration folder, the sample photos, axdrive run --input PHOTO) become "
                   "model inputs: resize=bilinear|letterbox, pad_value=0..255, channel_order=RGB|BGR, scale=1/255, "
                   "mean=0.485,0.456,0.406, std=..., layout=NCHW|NHWC, dtype=float32|uint8|int8 (repeatable)")
    p.add_argument("--transform", metavar="FILE.py:FUNCTION",
                   help="your own preprocessing instead: FUNCTION(image, input_shape) gets an RGB uint8 HxWx3 array "
                   "and returns one model input")


def build_parser() -> argparse.ArgumentParser:
    from . import _commands as c  # light: defines handlers, imports lazily inside them

    parser = argparse.ArgumentParser(
        prog="axdrive",
        description="Compile float ONNX models for the simulated int8 AIPU: quantize, lower, run, inspect.",
        epilog="Environment: AXDRIVE_DISABLE_PLUGIN_AUTOLOAD=1 stops discovery of third-party plugins (axdrive's "
        "own passes stay; load others with -p); AXDRIVE_DISABLE_BUILTIN_PLUGINS=1 leaves axdrive's own passes out; "
        "AXDRIVE_CACHE moves the model cache; AXDRIVE_VERIFY=1 verifies the IR after every pass.",
    )
    parser.add_argument("--version", action="version", version=f"axdrive {_version()}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    p = sub.add_parser("compile", help="compile an ONNX model into an output directory",
                       description="Quantize and/or lower MODEL per compiler_mode and write the artifacts into -o DIR.")
    p.add_argument("model", metavar="MODEL.onnx", help="the float ONNX model (a QDQ model with compiler_mode=lower_only)")
    p.add_argument("-o", "--output-dir", metavar="DIR", help="output directory (the output_dir property)")
    _config_options(p)
    p.add_argument("--calibration", metavar="PATH",
                   help=".npy/.npz of preprocessed inputs, or a folder of images (default: the sample photos)")
    p.add_argument("--input-shape", metavar="NAME=SHAPE", action="append", default=[], dest="input_shapes",
                   help="fix a dynamic input shape, e.g. images=1x3x320x320 (repeatable)")
    _option_arg(p)
    _preprocessing_options(p)
    _plugin_options(p)
    _placement_options(p)
    p.add_argument("--target-sqnr", metavar="DB", type=float,
                   help="accuracy-controlled fallback: while the quantized outputs are under DB dB SQNR against "
                   "float, move the most sensitive layer to the host and compile again (implies "
                   "quantization_debug=true; the compile report's accuracy_fallback lists each round)")
    p.add_argument("--no-host-fallback", action="store_true",
                   help="every node must run on the AIPU: fail, listing each node that cannot and why, instead of "
                   "moving it to a host part (the graph cleaner's pre/post split still applies)")
    p.add_argument("--stop-after", metavar="PASS|PROPERTY",
                   help="stop once this pass has run or this property (e.g. quantized) is provided; "
                   "the rest is recorded as skipped")
    p.add_argument("--verify-each", action="store_true", help="verify the IR after every pass (debug mode)")
    p.add_argument("--dump-ir", metavar="DIR", help="write the IR before and after each pass into DIR")
    p.add_argument("--dump-ir-pass", metavar="NAME", action="append", default=[], dest="dump_ir_passes",
                   help="with --dump-ir: only around this pass (repeatable)")
    p.add_argument("--dump-ir-changed", action="store_true",
                   help="with --dump-ir: only the passes that changed the IR, each as a unified diff NNN-PASS.diff "
                   "(a failing pass always leaves NNN-PASS.failed.txt)")
    _common(p)
    p.set_defaults(handler=c.cmd_compile)

    p = sub.add_parser("run", help="run a compiled output directory on the simulated AIPU",
                       description="Run DIR's chain of parts: each device segment's program on the simulated AIPU, "
                       "the host parts in onnxruntime, so the outputs are the original model's, under their original "
                       "names. A quantize_only directory has no program: its quantized models run on the CPU in "
                       "onnxruntime instead.")
    p.add_argument("dir", metavar="DIR", help="an output directory written by axdrive compile")
    p.add_argument("--input", metavar="X.npy|X.npz|PHOTO", required=True,
                   help=".npy for a single-input model, .npz with one array per input name (a leading batch of "
                   "several frames is split across the cores), or a photo (.jpg, .png, ...), preprocessed as the "
                   "compile recorded it (--preprocess / --transform, or the calibration's)")
    p.add_argument("-o", "--output", metavar="OUT.npz", help="write the outputs, by name, to this .npz (atomically)")
    p.add_argument("--compare", action="store_true",
                   help="also run the integer reference and onnxruntime on quantized_model.onnx and the float model; "
                   "print max-abs error and SQNR (dB) per output")
    p.add_argument("--float-model", metavar="MODEL.onnx",
                   help="with --compare: the float model that was compiled (default: found by its file name "
                   "in DIR or the current directory; its sha256 must match the manifest)")
    p.add_argument("--profile", metavar="LEVELS",
                   help="trace levels, e.g. B,K or all: writes profile.txt and profile_trace.json (Chrome) next to "
                   "OUT.npz, or into DIR")
    p.add_argument("--core-only", action="store_true",
                   help="run the accelerator part alone: inputs and outputs are the program's (dequantized)")
    p.add_argument("--figures", metavar="OUTDIR",
                   help="write SVG figures of the run into OUTDIR (created if missing): memory_map_l1.svg, "
                   "memory_map_l2.svg, memory_map_ddr.svg (levels holding buffers; L1 of other cores as "
                   "memory_map_l1_coreN.svg) and timeline.svg (one row per core and unit)")
    _load_arg(p)
    _common(p)
    p.set_defaults(handler=c.cmd_run)

    p = sub.add_parser("passes", help="list installed pass plugins and the pipeline a config resolves to")
    _config_options(p)
    _plugin_options(p)
    p.add_argument("--format", choices=("text", "dot", "json"), default="text")
    _common(p)
    p.set_defaults(handler=c.cmd_passes)

    p = sub.add_parser("config", help="show, validate, or document the compiler configuration")
    csub = p.add_subparsers(title="actions", metavar="ACTION")
    q = csub.add_parser("show", help="print the resolved config as JSON (plugin options under \"options\")")
    _config_options(q)
    _option_arg(q)
    _load_arg(q)
    _common(q)
    q.set_defaults(handler=c.cmd_config_show)
    q = csub.add_parser("validate", help="validate a config file; prints every problem")
    q.add_argument("file", metavar="FILE", help="config file (TOML, YAML or JSON)")
    _common(q)
    q.set_defaults(handler=c.cmd_config_validate)
    q = csub.add_parser("schema", help="print the JSON Schema of the config (with installed plugins' options)")
    _load_arg(q)
    _common(q)
    q.set_defaults(handler=c.cmd_config_schema)
    q = csub.add_parser("docs", help="print the Markdown config reference")
    _common(q)
    q.set_defaults(handler=c.cmd_config_docs)
    p.set_defaults(handler=lambda a: (p.print_help(), 2)[1])

    p = sub.add_parser("ops", help="the supported operators, or where every node of a model will run and why",
                       description="Without MODEL: the supported-operators report (per operator: float reference, "
                       "int8 kernel, AIPU unit, each constraint in words, from the installed plugins). With MODEL: "
                       "run the compile up to the graph cleaner's placement (no calibration, nothing written) and "
                       "print, for every node, whether it runs on the AIPU or in a host part and the reason, with "
                       "the nodes and MACs on each side.")
    p.add_argument("model", metavar="MODEL.onnx", nargs="?", help="a float ONNX model (omit for the report)")
    p.add_argument("--input-shape", metavar="NAME=SHAPE", action="append", default=[], dest="input_shapes",
                   help="fix a dynamic input shape, e.g. images=1x3x320x320 (repeatable)")
    p.add_argument("--format", choices=("text", "md", "json"), default="text")
    p.add_argument("--all", action="store_true", dest="all_nodes", help="list the AIPU's nodes too (text, md)")
    _placement_options(p)
    _config_options(p)
    _plugin_options(p)
    _common(p)
    p.set_defaults(handler=c.cmd_ops)

    p = sub.add_parser("report", help="where a compiled program's cycles go, layer by layer",
                       description="The per-layer performance of DIR's program (the cycle model's timeline summed "
                       "per layer, beside each layer's lower bound from the target description), the largest "
                       "first, with the whole-model figures.")
    p.add_argument("dir", metavar="DIR", help="an output directory written by axdrive compile (a lowering mode)")
    p.add_argument("--top", type=int, default=20, metavar="N", help="show the first N layers (0: all; default 20)")
    p.add_argument("--sort", choices=("cycles", "bound_ratio", "macs", "order"), default="cycles",
                   help="cycles: span, largest first (default); bound_ratio: furthest from the bound first; "
                   "macs: most work first; order: program order")
    p.add_argument("--format", choices=("text", "csv", "json", "md"), default="text")
    _common(p)
    p.set_defaults(handler=c.cmd_report)

    p = sub.add_parser("trace", help="inspect a pass_dependency_graph.json")
    p.add_argument("file", metavar="FILE.json", help="a pass_dependency_graph.json written with trace_tvm_passes")
    p.add_argument("--format", choices=("tree", "dot", "critical-path"), default="tree")
    _common(p)
    p.set_defaults(handler=c.cmd_trace)

    return parser


def _version() -> str:
    from .. import __version__

    return __version__
