"""The Markdown CLI reference, generated from the argparse definitions.

``docs/cli.md`` is this function's output; a test fails when it is stale
(regenerate with ``python -m axdrive.cli._reference > docs/cli.md``).
"""

from __future__ import annotations

__all__ = ["cli_reference"]

import argparse

from ._parser import build_parser

_INTRO = """# CLI reference

Generated from the argument parser (`python -m axdrive.cli._reference > docs/cli.md`); do not edit by hand.

`axdrive` and `python -m axdrive` are the same program. Exit codes: **0** success, **1** compile or run
failure, **2** usage or configuration error. Errors are one line on stderr; `-v` adds the traceback and
debug logging. Environment: `AXDRIVE_DISABLE_PLUGIN_AUTOLOAD=1` (no third-party entry-point plugins: axdrive's
own passes stay, as pytest's built-in plugins do; load others with `-p`), `AXDRIVE_DISABLE_BUILTIN_PLUGINS=1`
(leave axdrive's own passes out too: an empty pipeline for testing a pass in isolation),
`AXDRIVE_CACHE` (model and photo cache, default `~/.cache/axdrive`), `AXDRIVE_VERIFY=1` (IR verifier after every pass).
SIGINT and SIGTERM stop a command cleanly: staging is dropped, nothing is half-written, exit 130 / 143.

## What a compile writes

| file | when | what |
|---|---|---|
| `manifest.json`, `compile_report.json` | always | the compile's identity (config, plugins, pipeline, I/O signature, every artifact's sha256, the chain of `parts` and `model_outputs`) and its report |
| `quantized_model.onnx` | a quantizing mode | the first device segment's QDQ model (float in, float out) |
| `quantized_full_model.onnx` | a quantizing mode, graph cleaner on | the whole model in one file: host parts and every segment's QDQ model joined by tensor name |
| `host_preprocess.onnx`, `host_partN.onnx`, `host_postprocess.onnx` | the graph cleaner put nodes on the host | the host parts, in float, before, between and after the device segments |
| `program.bin`, `program.json`, `host_io.json` | a lowering mode | the first device segment's program, its readable form, its I/O layout |
| `deviceN.*` (`device2.program.bin`, ...) | a host part between device segments | each further segment's files, under its prefix |
| `quantized_graph.json`, `pass_dependency_graph.json`, `pass_trace.json`, ... | their properties | see the config reference |

## The output directory: what axdrive may delete

`axdrive compile -o DIR` deletes or replaces only files it can prove it wrote. The files live in
`DIR/.axdrive/` (the *store*, marked by `owner.json` with a random id written when axdrive created it); each
artifact appears in `DIR` as a symlink, e.g. `DIR/program.bin -> .axdrive/current/program.bin`.

- **What is axdrive's.** An entry of `DIR` is axdrive's only if it is a symlink whose text is exactly
  `.axdrive/current/NAME` or `.axdrive/failed/NAME`, `NAME` being its own name. A manifest proves nothing:
  one copied in, or one naming `thesis.tex`, never gets a file deleted. Every other entry of `DIR` is yours
  and is never removed, replaced or written through. Inside the store, a folder is removed name by name
  from its ledger (written before each file); a file you put there stays, and so does its folder.
- **Names.** An artifact name that stands in `DIR` as your file (your model named `quantized_model.onnx`,
  a foreign `manifest.json`, a file from an older axdrive) stops the compile with one line naming it, and
  so do two writers of one name (`graph_cleaner_dump_core_onnx=host_postprocess.onnx`).
- **Commit.** A compile writes into `.axdrive/staging-<id>/`; only after it has succeeded is that folder
  renamed to `gen-<id>`, links for new names made, and the one link `.axdrive/current` switched. A reader
  sees the old compile or the new one, never a mix, even after a SIGKILL at any point; whatever a killed
  compile left (staging folders, unreferenced folders, dangling links) is cleaned by the next compile. Files
  of earlier compiles that the new manifest does not list (traces, host parts, a failure's files) go.
- **Failures.** A failed compile leaves the previous good compile exactly as it was. Its trace and error ZIP
  (`trace_tvm_passes`, `save_error_artifact`) go beside it as `failed.pass_dependency_graph.json`,
  `failed.pass_trace.json` and `error_artifact.zip`; a failure writing them is a warning, never a
  replacement of the compile's own error. A failed compile into a new `DIR` leaves no folder behind.
- **`remove_output_dir=true`** asks for a `DIR` that holds only this compile: the compile refuses to start
  (naming the entries) if `DIR` holds anything axdrive did not write, and always refuses `/`, a home directory
  from the password database or `$HOME`, a mount point, the current directory or any ancestor of it, and any
  folder holding the model or the calibration data. It removes nothing itself: stale files of axdrive's own
  are dropped by every successful commit anyway.
- **Other outputs** (`axdrive run -o`, `--profile`, `--figures`, `model_debug_save_dir`) are written to a
  temp file and renamed, only over a regular file or a new path (a device, FIFO, socket or directory is
  refused; a symlink is followed), never over a file the command reads (the model, calibration data, the
  run's input, the compiled artifacts), with the umask's mode (`0666 & ~umask`; a replaced file keeps its mode).
- **Reading.** `axdrive run` reads `DIR/.axdrive/current` once, checks every file it uses against the
  manifest's sha256 and refuses a host part the manifest does not list, each with one line.

See [reliability](reliability.md) for every hostile case tried and what it gets.

## Placement: what runs on the host (options beside the 93 properties)

A node the AIPU cannot run goes to a host part (`host_preprocess.onnx` before the device program,
`host_partN.onnx` between two device segments, `host_postprocess.onnx` after them, run by onnxruntime in
float), with the reason in `compile_report.json` (`placement`); every node the AIPU can run stays on it, in
as many device segments as the host parts divide it into (`device2.program.bin`, ...); `axdrive ops MODEL` prints the same placement without compiling, `--no-host-fallback` makes
any such node an error. What the user decides about placement names nodes and tensors of *their* model, so
it is not one of the 93 compiler properties: it is given by flags of `compile` and `ops`, or by a
`[placement]` table in the `--config` file (TOML; the same keys in YAML or JSON), the flags adding to the
file's lists:

| table key | flag | meaning |
|---|---|---|
| `host_nodes` | `--host-node NAME` | run this ONNX node on the host (the nodes around it stay on the AIPU) |
| `device_inputs` | `--device-input TENSOR` | the AIPU's part starts here: what computes it runs on the host, before |
| `device_outputs` | `--device-output TENSOR` | the AIPU's part ends here: what reads it runs on the host, after |

Names are checked against the model after constant folding; an unknown one is an error with a did-you-mean,
and so is a cut that leaves the AIPU nothing or that the chain of parts cannot honour.

## Preprocessing: how photos become model inputs (options beside the 93 properties)

A `--calibration` folder of photos, the sample photos (no `--calibration`) and `axdrive run --input PHOTO`
turn a photo into a model input the same way: resized to the model's input size (stretched, or letterboxed
with a pad value), channels in RGB or BGR order, `(pixel * scale - mean) / std`, NCHW or NHWC. Give it with
`--preprocess KEY=VALUE` (repeatable) or a `[preprocessing]` table of the `--config` file; the flags override
the file's keys. `--transform FILE.py:FUNCTION` (or `transform = "FILE.py:FUNCTION"`) runs your own code
instead: `FUNCTION(image, input_shape)` gets the photo as an RGB `uint8` array `H x W x 3` and returns one
model input. The compile records the preprocessing in `manifest.json` (`preprocessing`, with the input it
applies to, and the transform file's sha256), so `axdrive run DIR --input photo.jpg` preprocesses exactly as
calibration did, and refuses when the transform file changed since.

| key | values | default |
|---|---|---|
| `resize` | `bilinear` (stretch to the input size), `letterbox` (keep the aspect ratio, pad) | `bilinear` |
| `pad_value` | 0..255, the letterbox's border | 114 |
| `channel_order` | `RGB`, `BGR` | `RGB` |
| `scale` | a positive number or a fraction (`1/255`) | `1/255` |
| `mean`, `std` | 1 or 3 numbers, after `scale`, in the channel order | 0 and 1 |
| `layout` | `NCHW`, `NHWC` | `NCHW` |
| `dtype` | `float32`; `uint8`, `int8` (rounded and clipped) for integer-pixel inputs | `float32` |
| `transform` | `FILE.py:FUNCTION`, instead of every key above but `dtype` | none |

Each compile that calibrates prints one line about what it loaded (`calibration: 8 samples from photos;
images 3x320x320: channels [0, 1] [0, 1] [0, 1]; first layer at 1.03x its bias`), and warns when the data
looks off by orders of magnitude from the scale the model was trained on (see
[quantization](quantization.md), "Is the calibration data scaled right?").
"""


def _subparsers(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices.items())
    return []


def _section(path: str, parser: argparse.ArgumentParser, out: list[str]) -> None:
    subs = _subparsers(parser)
    if not subs or any(a.option_strings or a.dest not in ("==SUPPRESS==",) for a in parser._actions
                       if not isinstance(a, (argparse._SubParsersAction, argparse._HelpAction))):
        usage = parser.format_usage().replace("usage: ", "").strip()
        out.append(f"## `{path}`\n")
        if parser.description:
            out.append(parser.description + "\n")
        out.append(f"```\n{' '.join(usage.split())}\n```\n")
        rows = []
        for a in parser._actions:
            if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            name = ", ".join(a.option_strings) if a.option_strings else (a.metavar or a.dest)
            if a.choices and not a.option_strings:
                name = a.metavar or a.dest
            extra = ""
            if a.choices:
                extra += " Choices: " + ", ".join(f"`{c}`" for c in a.choices) + "."
            if a.default not in (None, [], False, argparse.SUPPRESS) and a.option_strings:
                extra += f" Default: `{a.default}`."
            rows.append(f"| `{name}` | {(a.help or '').replace('|', '/')}{extra} |")
        if rows:
            out.append("| argument | meaning |\n|---|---|")
            out.extend(rows)
            out.append("")
    for name, sub in subs:
        _section(f"{path} {name}", sub, out)


def cli_reference() -> str:
    parser = build_parser()
    out = [_INTRO]
    for name, sub in _subparsers(parser):
        _section(f"axdrive {name}", sub, out)
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(cli_reference())
