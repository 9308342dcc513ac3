"""``run()``: execute a compiled output directory, host parts and accelerator part together.

Why here and not in ``axdrive_hw``: the run is a core workflow (read the
manifest, run the host pre/post-processing with onnxruntime, quantize and
dequantize at the device boundary, compare against references); only the
device execution depends on the hardware, and the core reaches it through the
``axdrive_runtime`` hook, exactly as it reaches passes. A missing runtime is
one error line naming the target and the distribution to install.

The parts are chained *by tensor name*: every value computed so far (the
user's inputs, ``host_preprocess.onnx``'s outputs, the device outputs) goes
into one environment, and each part takes its inputs from it. So the result
holds the original model's outputs under their original names, whichever way
the graph cleaner split the model.
"""

from __future__ import annotations

__all__ = ["run", "execute", "RunResult", "Comparison", "DeviceRuntime", "DeviceRun", "load_manifest",
           "quantize", "dequantize", "DEFAULT_TARGET", "PROGRAM_FILE", "HOST_IO_FILE", "to_device_layout",
           "from_device_layout", "CompiledFiles", "read_photo"]

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol

import numpy as np

from .artifacts import sha256_file
from .errors import AxdriveError, ModelError, ProgramFormatError, UsageError
from .inputs import InputSpec, check_inputs, manifest_input_specs, onnx_input_specs
from .outdir import committed_dir

DEFAULT_TARGET = "aipu_v1"
"""The target a manifest without a ``"target"`` entry was compiled for (the only built-in one)."""

PROGRAM_FILE = "program.bin"
HOST_IO_FILE = "host_io.json"
"""Written by a lowering: each device input/output's layout (``NHWC`` with ``channels`` real of the
padded last axis, filled with ``pad_value``; or ``NCHW`` as the model has it) and the ``target``."""
_PRE, _POST, _QDQ = "host_preprocess.onnx", "host_postprocess.onnx", "quantized_model.onnx"
_LOWERING_MODES = ("quantize_and_lower", "lower_only")


class DeviceRun(Protocol):
    """What a runtime's ``run`` returns.

    Optionally also ``figures() -> dict[str, str]``: figures of the run by file name (SVG text), for
    ``execute(..., figures=True)`` / ``axdrive run --figures``. Optional, so a runtime that draws nothing
    still satisfies the protocol; asking it for figures is then a usage error naming its distribution.
    """

    outputs: dict[str, np.ndarray]
    report: dict[str, Any]
    trace_lines: list[str] | None
    chrome_trace: dict[str, Any] | None


class DeviceRuntime(Protocol):
    """What the ``axdrive_runtime`` hook returns: runs ``output_dir``'s program on device-typed inputs.

    ``program`` names the program file; the runner passes it only for a further device segment of a
    partitioned model (``device2.program.bin``), so a runtime that takes no such keyword still runs every
    model with one device segment."""

    distribution: str

    def run(self, output_dir: str | Path, inputs: Mapping[str, np.ndarray], *, config: Mapping[str, Any],
            profile: str | Iterable[str] | None, program: str = PROGRAM_FILE) -> DeviceRun: ...


@dataclass(frozen=True)
class Comparison:
    """One output against one reference: ``max|ours - ref|`` and ``10 log10(sum ref^2 / sum (ours - ref)^2)``."""

    output: str
    reference: str
    max_abs_error: float
    sqnr_db: float

    def to_dict(self) -> dict[str, Any]:
        return {"output": self.output, "reference": self.reference, "max_abs_error": self.max_abs_error,
                "sqnr_db": self.sqnr_db}


class RunResult(dict):  # type: ignore[type-arg]
    """The outputs by name (a plain ``dict[str, np.ndarray]``) plus what else the run produced.

    ``report``: the device run report (cycles, seconds, per-unit busy, host
    link); ``core_outputs``: the accelerator part's outputs, dequantized;
    ``trace_lines``/``chrome_trace``: the profile (``None`` without levels);
    ``figures``: with ``figures=True``, the runtime's figures of the run by file
    name (SVG text: memory maps per level, the per-unit timeline), else ``None``;
    ``comparisons`` and ``notes`` (references that were skipped, and why).
    """

    report: dict[str, Any]
    core_outputs: dict[str, np.ndarray]
    trace_lines: list[str] | None
    chrome_trace: dict[str, Any] | None
    figures: dict[str, str] | None
    comparisons: list[Comparison]
    notes: list[str]


def load_manifest(output_dir: str | Path) -> dict[str, Any]:
    """The committed ``manifest.json`` of ``output_dir``, or a one-line :class:`UsageError` saying why it is
    not an axdrive output. Read from the folder ``.axdrive/current`` names (see :mod:`axdrive.outdir`)."""
    out = Path(output_dir)
    if not out.is_dir():
        raise UsageError(f"{out}: no such directory (expected an output directory written by axdrive compile)")
    path = committed_dir(out) / "manifest.json"
    if not path.is_file():
        raise UsageError(f"{out}: not an axdrive output directory (no manifest.json)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{out / 'manifest.json'}: unreadable manifest: {exc}") from None
    if not isinstance(manifest, dict) or not str(manifest.get("schema", "")).startswith("axdrive.manifest/"):
        raise UsageError(f"{out / 'manifest.json'}: not an axdrive manifest (no 'schema': 'axdrive.manifest/...')")
    return manifest


_VERIFIED: dict[tuple[str, int, int, int], str] = {}  # (path, inode, size, mtime_ns) -> sha256 already checked


def _is_host_part(name: str) -> bool:
    """A name the graph cleaner gives host parts (``host_preprocess.onnx``, ``host_part1.onnx``, ...)."""
    return name.startswith("host_") and name.endswith(".onnx")


class CompiledFiles:
    """The committed files of an output directory, each checked against the manifest's sha256 before use.

    ``out`` is the directory the user named; ``folder`` the committed folder
    the files are read from, resolved once so one run never mixes two
    compiles. A listed file whose hash differs, or a host part present but not
    listed, is refused with one line naming the file: running a program the
    compile did not write would give plausible, wrong outputs. Hashes are
    checked once per file version per process (a run per frame stays cheap).
    """

    def __init__(self, out: Path, manifest: Mapping[str, Any]) -> None:
        self.out = out
        self.folder = committed_dir(out)
        entries = [a for a in manifest.get("artifacts") or [] if isinstance(a, dict) and isinstance(a.get("name"), str)]
        self.listed: dict[str, str | None] = {a["name"]: a.get("sha256") for a in entries}

    def has(self, name: str) -> bool:
        """``name`` is an artifact of this compile; an unlisted host part present on disk is an error."""
        if name in self.listed:
            return True
        if _is_host_part(name) and (self.folder / name).exists():
            raise UsageError(f"{self.out / name}: a host part that the manifest does not list; refusing to run it "
                             "(it belongs to no compile of this directory: recompile, or remove the file)")
        return False

    def path(self, name: str) -> Path:
        """The verified path of artifact ``name``."""
        where = self.out / name
        if name not in self.listed:
            raise UsageError(f"{where}: not listed in the manifest of {self.out}")
        path = self.folder / name
        try:
            st = path.stat()
        except OSError:
            raise ProgramFormatError(f"{where}: listed in the manifest but missing; the output directory is "
                                     "damaged (recompile)") from None
        want = self.listed[name]
        key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
        if want and _VERIFIED.get(key) != want:
            got = sha256_file(path)
            if got != want:
                raise ProgramFormatError(f"{where}: sha256 {got[:12]}... differs from the manifest's {want[:12]}...; "
                                         "the file was changed after the compile (recompile)")
            _VERIFIED[key] = got
        return path


# -- quantization at the device boundary ------------------------------------------------------------------------
def _qparams(q: Mapping[str, Any], ndim: int) -> tuple[np.ndarray, np.ndarray, np.dtype]:
    scale = np.asarray(q["scale"], np.float64)
    zp = np.asarray(q.get("zero_point", 0), np.int64)
    axis = q.get("axis")
    if axis is not None and scale.ndim == 1:
        shape = [1] * ndim
        shape[int(axis) % ndim] = -1
        scale, zp = scale.reshape(shape), np.broadcast_to(zp, scale.shape).reshape(shape)
    return scale, zp, np.dtype(q.get("dtype", "int8"))


def quantize(x: np.ndarray, q: Mapping[str, Any]) -> np.ndarray:
    """``clamp(round_half_even(x / scale) + zero_point)`` in the integer ``dtype`` (ONNX ``QuantizeLinear``)."""
    x = np.asarray(x)
    scale, zp, dtype = _qparams(q, x.ndim)
    info = np.iinfo(dtype)
    return np.clip(np.rint(x.astype(np.float64) / scale) + zp, info.min, info.max).astype(dtype)


def dequantize(v: np.ndarray, q: Mapping[str, Any]) -> np.ndarray:
    """``scale * (v - zero_point)`` as float32 (ONNX ``DequantizeLinear``)."""
    v = np.asarray(v)
    scale, zp, _ = _qparams(q, v.ndim)
    return ((v.astype(np.float64) - zp) * scale).astype(np.float32)


# -- layout at the device boundary ----------------------------------------------------------------------------
def _host_io(files: "CompiledFiles", name: str = HOST_IO_FILE) -> dict[str, Any]:
    if not files.has(name):
        return {}
    path = files.path(name)
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: unreadable device I/O description: {exc}") from None
    return doc if isinstance(doc, dict) else {}


def to_device_layout(v: np.ndarray, io: Mapping[str, Any] | None) -> np.ndarray:
    """An NCHW (or NC) tensor in the device's NHWC, channel-padded layout (``host_io.json`` entry ``io``)."""
    if not io or io.get("layout") != "NHWC":
        return v
    a = np.asarray(v)
    a = a.transpose(0, 2, 3, 1) if a.ndim == 4 else a.reshape(a.shape[0], 1, 1, -1)
    width = int(io["device_shape"][-1])
    if width > a.shape[-1]:  # one pass: the padded tensor filled, then the real channels written over it
        padded = np.full((*a.shape[:-1], width), int(io.get("pad_value", 0)), a.dtype)
        padded[..., : a.shape[-1]] = a
        return padded
    return np.ascontiguousarray(a)


def from_device_layout(v: np.ndarray, io: Mapping[str, Any] | None, shape: Any = None) -> np.ndarray:
    """The inverse of :func:`to_device_layout`: real channels, back to the model's NCHW (or NC) ``shape``."""
    if not io or io.get("layout") != "NHWC":
        return v
    a = np.asarray(v)[..., : int(io["channels"])]
    if shape is not None and len(shape) == 2:
        return np.ascontiguousarray(a.reshape(a.shape[0], -1))
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2))


# -- onnxruntime ----------------------------------------------------------------------------------------------
_ORT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
              "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(int16)": np.int16,
              "tensor(int32)": np.int32, "tensor(int64)": np.int64, "tensor(bool)": np.bool_}


def _session(path: Path) -> Any:
    """An onnxruntime session for ``path``, reused while the file is unchanged (same size and mtime):
    building one costs milliseconds, as much as a small host part's run, and ``execute`` is called per frame."""
    st = path.stat()
    return _cached_session(str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=8)
def _cached_session(path: str, _mtime_ns: int, _size: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad models
        raise ModelError(f"onnxruntime cannot load it: {' '.join(str(exc).split())}", file=path) from None


def _run_onnx(path: Path, env: Mapping[str, np.ndarray], what: str) -> dict[str, np.ndarray]:
    """Run an ONNX file with its inputs taken from ``env`` by name; returns its outputs by name."""
    sess = _session(path)
    feeds = {}
    for i in sess.get_inputs():
        if i.name not in env:
            raise UsageError(f"{path.name} ({what}) needs input {i.name!r}, which is neither a given input nor "
                             f"computed so far (have: {', '.join(sorted(env)) or 'nothing'})")
        a = np.asarray(env[i.name])
        want = _ORT_TYPES.get(i.type)
        if want is not None and a.dtype != want:
            if np.dtype(want).kind == a.dtype.kind or (np.dtype(want).kind == "f" and a.dtype.kind in "iu"):
                a = a.astype(want)
            else:
                raise UsageError(f"{path.name} ({what}): input {i.name!r} is {i.type}, got {a.dtype}")
        feeds[i.name] = a
    frames = _frame_count(sess, feeds)
    if frames > 1:  # a batch-1 host part and a batch of frames: one run per frame, outputs concatenated
        runs = [_run_session(sess, {k: v[f: f + 1] for k, v in feeds.items()}, path, what) for f in range(frames)]
        return {k: np.concatenate([r[k] for r in runs], axis=0) for k in runs[0]}
    return _run_session(sess, feeds, path, what)


def _frame_count(sess: Any, feeds: Mapping[str, np.ndarray]) -> int:
    """``k`` when every input of ``sess`` has a fixed batch of 1 and every feed holds ``k`` > 1 frames along
    axis 0 (as ``axdrive run`` takes a batch of frames), else 1: the host parts exported from a batch-1 model
    then run frame by frame, like the device program."""
    inputs = sess.get_inputs()
    if not inputs or any(not i.shape or i.shape[0] != 1 for i in inputs):
        return 1
    counts = {np.shape(feeds[i.name])[0] if np.ndim(feeds[i.name]) == len(i.shape) else 1 for i in inputs}
    return counts.pop() if len(counts) == 1 and next(iter(counts), 1) > 1 else 1


def _run_session(sess: Any, feeds: Mapping[str, np.ndarray], path: Path, what: str) -> dict[str, np.ndarray]:
    try:
        values = sess.run(None, dict(feeds))
    except Exception as exc:
        raise ModelError(f"onnxruntime failed ({what}): {' '.join(str(exc).split())}", file=str(path)) from None
    return {o.name: np.asarray(v) for o, v in zip(sess.get_outputs(), values)}


def _onnx_io_names(path: Path) -> tuple[list[str], list[str]]:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ModelError(f"not a readable ONNX model: {exc}", file=str(path)) from None
    inits = {t.name for t in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits], [o.name for o in model.graph.output]


# -- the run --------------------------------------------------------------------------------------------------
def _check_program(out: Path, manifest: Mapping[str, Any], files: "CompiledFiles", program: str = PROGRAM_FILE) -> None:
    if files.has(program):
        files.path(program)
        return
    mode = str(manifest.get("config", {}).get("compiler_mode", "unknown"))
    if mode in _LOWERING_MODES:
        raise UsageError(f"{out}: no {program} although compiler_mode={mode!r} wrote it; the lowering produced "
                         "no program (recompile, or check that a lowering plugin is installed: axdrive passes)")
    raise UsageError(f"{out}: no {program} to run: compiler_mode={mode!r} wrote this directory and stops "
                     f"before lowering; compile with compiler_mode=quantize_and_lower (or run {_QDQ} in onnxruntime)")


def _runtime(host: Any, target: str) -> DeviceRuntime:
    runtime = host.hook.axdrive_runtime(target=target)
    if runtime is None:
        raise UsageError(f"no installed runtime runs target {target!r}: install the distribution axdrive-hw "
                         "(pip install axdrive-hw, or -e hw in a checkout), which provides the simulated AIPU")
    return runtime


_HOSTS: dict[tuple[str, ...], Any] = {}  # (-p args..., autoload setting) -> PluginHost


def _host(plugins: Any) -> Any:
    """The plugin host for ``-p`` style arguments, built once per process and
    argument list: discovering entry points costs more than a small program's
    whole run, and a runtime plugin keeps its loaded-program cache on it."""
    import os

    from .passes import AUTOLOAD_ENV, BUILTIN_ENV, PluginHost

    if isinstance(plugins, PluginHost):
        return plugins
    args = tuple(plugins or ())
    key = (*args, *(f"{e}={os.environ.get(e, '')}" for e in (AUTOLOAD_ENV, BUILTIN_ENV)))
    if key not in _HOSTS:
        _HOSTS[key] = PluginHost.from_args(args)
    return _HOSTS[key]


def _named_inputs(inputs: Any, specs: list[InputSpec], where: str) -> dict[str, np.ndarray]:
    """The given inputs by name, each checked against its spec and cast as the run takes it
    (:func:`axdrive.inputs.check_input`: dtype, rank, shape, finiteness), or one :class:`UsageError` line."""
    names = [s.name for s in specs]
    if isinstance(inputs, Mapping):
        given = {str(k): v for k, v in inputs.items()}
    elif not names:
        raise UsageError(f"{where} records no input names: give the inputs by name (a dict, or an .npz)")
    else:
        if len(names) != 1:
            raise UsageError(f"{where} takes {len(names)} inputs ({', '.join(names)}): give them by name "
                             "(a dict, or an .npz with one array per name)")
        given = {names[0]: inputs}
    unknown = sorted(set(given) - set(names))
    if unknown and names:  # without recorded names (an old manifest) the runtime checks them
        raise UsageError(f"input {unknown[0]!r} is not an input of {where} (inputs: {', '.join(names)})")
    missing = [n for n in names if n not in given]
    if missing:
        raise UsageError(f"input {missing[0]!r} of {where} is missing (inputs: {', '.join(names)})")
    return check_inputs(given, specs)


def _chain(out: Path, manifest: Mapping[str, Any], files: "CompiledFiles") -> list[dict[str, Any]]:
    """The parts ``axdrive run`` executes, in order (the manifest's ``parts``; a manifest without them, from a
    compile that split nothing or an earlier version, is host pre-processing, one device part, post-processing)."""
    parts = manifest.get("parts")
    if isinstance(parts, list) and parts:
        try:  # a host part on disk that the manifest does not list belongs to no compile of this directory
            strays = sorted(p.name for p in files.folder.iterdir() if _is_host_part(p.name))
        except OSError:
            strays = []
        for name in strays:
            files.has(name)
        chain = []
        for i, p in enumerate(parts):
            kind = p.get("kind") if isinstance(p, dict) else None
            key = "file" if kind == "host" else "program"
            if kind not in ("host", "device") or not isinstance(p.get(key, PROGRAM_FILE if kind == "device" else None), str):
                raise UsageError(f"{out / 'manifest.json'}: part {i} is not a host part with a 'file' or a device "
                                 "part; the manifest is damaged (recompile)")
            chain.append(p)
        return chain
    device = {"kind": "device", "name": "device1", "program": PROGRAM_FILE, "host_io": HOST_IO_FILE,
              "quantized_model": _QDQ, "inputs": manifest.get("inputs") or [], "outputs": manifest.get("outputs") or []}
    chain = [{"kind": "host", "name": "host_preprocess", "file": _PRE}] if files.has(_PRE) else []
    chain.append(device)
    if files.has(_POST):
        chain.append({"kind": "host", "name": "host_postprocess", "file": _POST})
    return chain


def _entries(p: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    return [e for e in p.get(key) or [] if isinstance(e, dict) and "name" in e]


def _part_label(p: Mapping[str, Any]) -> str:
    name = str(p.get("name", ""))
    return {"host_preprocess": "host pre-processing", "host_postprocess": "host post-processing"}.get(
        name, f"host part {name}" if p.get("kind") == "host" else f"device segment {name}")


def _input_specs(out: Path, chain: list[dict[str, Any]], files: "CompiledFiles") -> tuple[list[InputSpec], str]:
    """The run's inputs: what the parts read that no earlier part computes, in first-use order."""
    produced: set[str] = set()
    specs: dict[str, InputSpec] = {}
    for p in chain:
        if p["kind"] == "host":
            path = files.path(p["file"])
            part_specs = onnx_input_specs(path)
            outputs = p.get("outputs") if isinstance(p.get("outputs"), list) else _onnx_io_names(path)[1]
        else:
            part_specs = manifest_input_specs(_entries(p, "inputs"))
            outputs = [e["name"] for e in _entries(p, "outputs")]
        for spec in part_specs:
            if spec.name not in produced:
                specs.setdefault(spec.name, spec)
        produced.update(str(o) for o in outputs)
    first = chain[0]
    where = f"{out} ({first['file']})" if first["kind"] == "host" else f"{out} (accelerator part)"
    return list(specs.values()), where


@dataclass
class _DeviceStep:
    """One device segment's run: its part, the device-typed feeds and raw outputs, the runtime's run."""

    part: dict[str, Any]
    feeds: dict[str, np.ndarray]
    raw: dict[str, np.ndarray]
    run: Any


def _device_feeds(part: Mapping[str, Any], env: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A device segment's inputs from ``env``, quantized with their recorded grids as the device takes them."""
    feeds: dict[str, np.ndarray] = {}
    for e in _entries(part, "inputs"):
        if e["name"] not in env:
            raise UsageError(f"the accelerator input {e['name']!r} ({part.get('name', 'device')}) is neither a given "
                             "input nor computed by an earlier part")
        v = np.asarray(env[e["name"]])
        q = e.get("quantization")
        feeds[e["name"]] = quantize(v, q) if isinstance(q, dict) and v.dtype.kind == "f" else v
    return feeds


def _run_device(part: dict[str, Any], env: Mapping[str, np.ndarray], files: "CompiledFiles", runtime: Any,
                config: Mapping[str, Any], profile: Any) -> tuple[_DeviceStep, dict[str, np.ndarray]]:
    """Quantize the segment's inputs from ``env``, run its program, return the step and its dequantized outputs."""
    device_out = {e["name"]: e for e in _entries(part, "outputs")}
    program = str(part.get("program", PROGRAM_FILE))
    files.path(program)  # checked against the manifest's sha256 before the runtime reads it
    host_io = _host_io(files, str(part.get("host_io", HOST_IO_FILE)))
    feeds = _device_feeds(part, env)
    if not _entries(part, "inputs"):  # a manifest without an I/O signature: the program takes the values as given
        feeds = dict(env)
    io_in, io_out = host_io.get("inputs") or {}, host_io.get("outputs") or {}
    device_feeds = {k: to_device_layout(v, io_in.get(k)) for k, v in feeds.items()}
    extra = {} if program == PROGRAM_FILE else {"program": program}
    device = runtime.run(files.folder, device_feeds, config=config, profile=profile, **extra)
    raw = {k: from_device_layout(v, io_out.get(k), device_out.get(k, {}).get("shape")) for k, v in device.outputs.items()}
    values: dict[str, np.ndarray] = {}
    for name, v in raw.items():
        q = device_out.get(name, {}).get("quantization")
        values[name] = dequantize(v, q) if isinstance(q, dict) else np.asarray(v)
    return _DeviceStep(part, feeds, raw, device), values


_SUMMED = ("cycles", "seconds")
_SUMMED_SECTIONS = ("unit_busy", "host_link")


def _merge_reports(steps: list[_DeviceStep]) -> dict[str, Any]:
    """One run report for the chain: the first segment's, with cycles, seconds, unit busy cycles and the host
    link summed over every segment (they run one after the other) and each segment's figures under
    ``segments``."""
    report = dict(steps[0].run.report)
    if len(steps) == 1:
        return report
    for step in steps[1:]:
        rep = step.run.report
        for key in _SUMMED:
            if isinstance(rep.get(key), (int, float)) and isinstance(report.get(key), (int, float)):
                report[key] = report[key] + rep[key]
        for key in _SUMMED_SECTIONS:
            mine, theirs = report.get(key), rep.get(key)
            if isinstance(mine, dict) and isinstance(theirs, dict):
                report[key] = {k: (mine.get(k, 0) + v if isinstance(v, (int, float)) and
                                   isinstance(mine.get(k, 0), (int, float)) else mine.get(k, v))
                               for k, v in {**mine, **theirs}.items()}
    report["segments"] = [{"name": str(s.part.get("name")), **{k: s.run.report.get(k) for k in _SUMMED}}
                          for s in steps]
    return report


def execute(output_dir: str | Path, inputs: Any, *, core_only: bool = False, profile: str | Iterable[str] | None = None,
            compare: bool = False, plugins: Any = None, float_model: str | Path | None = None,
            figures: bool = False) -> RunResult:
    """Run ``output_dir`` on ``inputs`` and return everything the run produced (see :class:`RunResult`).

    ``inputs`` is a mapping of input names to arrays, or one array for a
    single-input model. The parts run in the manifest's order (host parts in
    onnxruntime, device segments on the runtime), each taking its inputs by
    name from what the run has computed so far. With ``core_only`` the inputs
    are the first device segment's inputs (float, or already of the device's
    dtype) and the result is its dequantized outputs. With ``figures`` the
    runtime also draws the run (``RunResult.figures``, of the first device
    segment); the core only hands the text on, so drawing stays the hardware
    distribution's business.
    """
    out = Path(output_dir)
    manifest = load_manifest(out)
    files = CompiledFiles(out, manifest)
    chain = _chain(out, manifest, files)
    devices = [p for p in chain if p["kind"] == "device"]
    on_cpu = _runs_on_cpu(manifest, files, devices)
    if not on_cpu:
        for p in devices:
            _check_program(out, manifest, files, str(p.get("program", PROGRAM_FILE)))
        if not devices:
            _check_program(out, manifest, files, PROGRAM_FILE)
    config = dict(manifest.get("config") or {})
    # the machine the compile ran for (``device_dir``'s target description, ...): the runtime must simulate it too
    environment = manifest.get("environment")
    if isinstance(environment, dict):
        config.update({str(k): v for k, v in environment.items() if v is not None})
    if core_only:
        chain = devices[:1]
    specs, where = _input_specs(out, chain, files)
    env: dict[str, np.ndarray] = _named_inputs(inputs, specs, where)
    given = dict(env)

    if on_cpu:
        if profile or figures:
            raise UsageError(f"{out}: compiler_mode={config.get('compiler_mode')!r} wrote no device program: the "
                             "quantized model runs on the CPU in onnxruntime, which has no profile or figures")
        runtime, target = None, "cpu"
    else:
        first_io = _host_io(files, str(devices[0].get("host_io", HOST_IO_FILE)))
        target = str(manifest.get("target") or first_io.get("target") or config.get("target") or DEFAULT_TARGET)
        runtime = _runtime(_host(plugins), target)
    steps: list[_DeviceStep] = []
    core: dict[str, np.ndarray] = {}
    for p in chain:
        if p["kind"] == "host":
            env.update(_run_onnx(files.path(p["file"]), env, _part_label(p)))
            continue
        if on_cpu:
            step, values = _run_quantized_on_cpu(p, env, files)
        else:
            step, values = _run_device(p, env, files, runtime, config, profile)
        steps.append(step)
        core.update(values)
        env.update(values)

    model_outputs = manifest.get("model_outputs")
    if core_only:
        outputs = dict(core)
    elif isinstance(model_outputs, list) and model_outputs and manifest.get("parts"):
        outputs = {str(n): env[str(n)] for n in model_outputs if str(n) in env}
    else:  # an earlier manifest: what the device computed and post-processing did not consume, then its outputs
        post = next((p for p in chain if p["kind"] == "host" and p is not chain[0]), None)
        if post is not None:
            consumed, made = _onnx_io_names(files.path(post["file"]))
            outputs = {**{k: v for k, v in core.items() if k not in set(consumed)}, **{k: env[k] for k in made}}
        else:
            outputs = dict(core)

    result = RunResult(outputs)
    result.report = _merge_reports(steps) if not on_cpu else {
        "target": "cpu", "runtime": "onnxruntime", "frames": _frames(given),
        "segments": [{"name": str(s.part.get("name")), "quantized_model": s.part.get("quantized_model", _QDQ)}
                     for s in steps]}
    result.core_outputs = core
    result.trace_lines = _joined_traces(steps) if not on_cpu else None
    result.chrome_trace = steps[0].run.chrome_trace if not on_cpu else None
    result.figures = None
    if figures:
        render = getattr(steps[0].run, "figures", None)
        if not callable(render):
            raise UsageError(f"the runtime of {getattr(runtime, 'distribution', 'an unnamed distribution')} for "
                             f"target {target!r} draws no figures")
        result.figures = {str(k): str(v) for k, v in render().items()}
    result.comparisons, result.notes = [], []
    if compare:
        _compare(out, manifest, files, given, env, steps, set(outputs) | set(core), result, float_model)
    return result


def _runs_on_cpu(manifest: Mapping[str, Any], files: "CompiledFiles", devices: list[dict[str, Any]]) -> bool:
    """A ``quantize_only`` directory: no device program, and a quantized model for every device segment,
    which onnxruntime runs on the CPU in its place (the accuracy check that mode is for)."""
    mode = str(manifest.get("config", {}).get("compiler_mode", ""))
    return (mode == "quantize_only" and bool(devices)
            and not any(files.has(str(p.get("program", PROGRAM_FILE))) for p in devices)
            and all(files.has(str(p.get("quantized_model", _QDQ))) for p in devices))


def _frames(given: Mapping[str, np.ndarray]) -> int:
    shapes = [np.shape(v) for v in given.values()]
    return int(shapes[0][0]) if shapes and shapes[0] else 1


def _run_quantized_on_cpu(part: dict[str, Any], env: Mapping[str, np.ndarray],
                          files: "CompiledFiles") -> tuple[_DeviceStep, dict[str, np.ndarray]]:
    """A device segment of a ``quantize_only`` compile: its QDQ model (float in, float out) in onnxruntime. The
    step keeps the inputs quantized as the device would take them, for ``--compare``'s integer reference."""
    qdq = files.path(str(part.get("quantized_model", _QDQ)))
    feeds = _device_feeds(part, env)
    values = _run_onnx(qdq, env, f"quantized segment {part.get('name', 'device1')}")
    return _DeviceStep(part, feeds, dict(values), None), values


def _joined_traces(steps: list[_DeviceStep]) -> list[str] | None:
    """The profile's text lines of every segment, each segment's under a heading when there are several."""
    lines = [s.run.trace_lines for s in steps]
    if all(x is None for x in lines):
        return None
    if len(steps) == 1:
        return lines[0]
    joined: list[str] = []
    for step, text in zip(steps, lines):
        joined.append(f"# device segment {step.part.get('name')}")
        joined.extend(text or [])
    return joined


def run(output_dir: str | Path, inputs: Any, *, core_only: bool = False, profile: str | Iterable[str] | None = None,
        compare: bool = False, plugins: Any = None, float_model: str | Path | None = None,
        figures: bool = False) -> dict[str, np.ndarray]:
    """Run a compiled program on its device, with the host parts in onnxruntime; outputs by original name.

    The returned dict is a :class:`RunResult`: its ``report``,
    ``comparisons`` (with ``compare=True``), ``trace_lines`` and
    ``chrome_trace`` (with ``profile`` levels) and ``figures`` (with
    ``figures=True``) ride along as attributes.
    """
    return execute(output_dir, inputs, core_only=core_only, profile=profile, compare=compare, plugins=plugins,
                   float_model=float_model, figures=figures)


def read_photo(output_dir: str | Path, photo: str | Path) -> dict[str, np.ndarray]:
    """``photo`` as the compiled model's input, preprocessed as the compile in ``output_dir`` recorded
    (``manifest.json`` -> ``preprocessing``: the calibration's, or ``--preprocess`` / ``--transform``); one line
    when there is no such record or the transform's file changed since."""
    from .calibration import ImagePreprocessing, load_images, transform_sha256

    out = Path(output_dir)
    doc = load_manifest(out).get("preprocessing")
    if not isinstance(doc, Mapping) or "input" not in doc or "shape" not in doc:
        raise UsageError(f"--input {photo}: {out} records no image preprocessing (it was calibrated on arrays); "
                         "give the preprocessed array (.npy), or compile with --preprocess / --transform")
    options = {k: v for k, v in doc.items() if k not in ("input", "shape", "transform_sha256")}
    pre = ImagePreprocessing.from_mapping(options)
    if pre.transform:
        digest = transform_sha256(pre.transform)
        if digest != doc.get("transform_sha256"):
            raise UsageError(f"--input {photo}: the preprocessing transform {pre.transform!r} is not the file the "
                             f"compile used ({'missing' if digest is None else 'its sha256 changed'}; run from the "
                             "directory you compiled in, or compile again)")
    batch = load_images([photo], doc["shape"], pre)
    return {str(doc["input"]): batch}


# -- comparison against references ------------------------------------------------------------------------------
def _metrics(ours: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    a, b = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    noise = float(np.sum((a - b) ** 2))
    signal = float(np.sum(b ** 2))
    max_abs = float(np.max(np.abs(a - b))) if a.size else 0.0
    if noise == 0.0:
        return max_abs, float("inf")
    if signal == 0.0:
        return max_abs, float("-inf")
    return max_abs, 10.0 * float(np.log10(signal / noise))


def _float_model(out: Path, manifest: Mapping[str, Any],
                 given: str | Path | None = None) -> tuple[Path | None, str | None]:
    """The float model the compile started from (``given``, else looked up by its
    recorded file name), or why it is not available. Either way its sha256 must
    be the one the manifest recorded: comparing against another model would lie."""
    entry = manifest.get("model") or {}
    name = str(given) if given is not None else (entry.get("path") or entry.get("file"))
    if not name:
        return None, "float model: skipped (the compile was given an in-memory model; the manifest records no file)"
    p = Path(name)
    candidates = [p] if p.is_absolute() else [out / p, Path.cwd() / p, out.parent / p]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        return None, (f"float model: skipped (the manifest names {name!r}, not found in {out} or the current directory; "
                      "give it with --float-model)")
    sha = entry.get("sha256")
    if sha and sha256_file(found) != sha:
        return None, f"float model: skipped ({found} is not the file that was compiled: sha256 differs)"
    return found, None


def _integer_reference(path: Path, env: Mapping[str, np.ndarray],
                       qenv: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """``run_integer`` on the quantized graph that ``quantized_model.onnx`` encodes.

    The graph is rebuilt the way a ``lower_only`` compile reads a QDQ model
    (through the installed passes, stopping once the graph is ``quantized``),
    so the reference is the same integer graph the lowering started from,
    without the runner knowing which plugin provides that step."""
    import tempfile

    from .config import CompilerConfig
    from .driver import compile as compile_model
    from .reference.integer import run_integer

    cfg = CompilerConfig(compiler_mode="lower_only", run_graph_cleaner=False, quantized_graph_export=False)
    try:
        with tempfile.TemporaryDirectory(prefix="axdrive-intref-") as tmp:
            result = compile_model(path, cfg, output_dir=tmp, stop_after="quantized", verify=False)
        graph = result.graph
        # a graph that keeps float I/O quantizes its inputs itself; one with int8 I/O takes the device's
        feeds = {n: (env if graph.tensors[n].dtype.kind == "f" else qenv)[n] for n in graph.inputs if n in qenv}
        return dict(run_integer(graph, feeds)), None
    except AxdriveError as exc:
        msg = " ".join(str(exc).split())
        return None, f"integer reference: skipped ({msg if path.name in msg else f'{path.name}: {msg}'})"


def _compare(out: Path, manifest: Mapping[str, Any], files: CompiledFiles, given: Mapping[str, np.ndarray],
             env: Mapping[str, np.ndarray], steps: list[_DeviceStep], names: set[str], result: RunResult,
             float_model: str | Path | None = None) -> None:
    """Every output against each reference: the integer reference of every device segment (its
    ``quantized_model.onnx`` rebuilt as the lowering saw it, fed exactly what the device was fed: bit-exact
    is the claim), onnxruntime on each segment's QDQ model, and onnxruntime on the float model."""
    refs: list[tuple[str, dict[str, np.ndarray]]] = []
    ints: dict[str, np.ndarray] = {}
    int_notes: list[str] = []
    for step in steps:
        qdq_name = str(step.part.get("quantized_model", _QDQ))
        if not files.has(qdq_name):
            result.notes.append(f"integer reference and quantized model: skipped (no {qdq_name} in {out})")
            continue
        qdq = files.path(qdq_name)
        device_out = {e["name"]: e for e in _entries(step.part, "outputs")}
        qenv = {**env, **step.feeds, **{k: np.asarray(v) for k, v in step.raw.items()}}
        values, note = _integer_reference(qdq, env, qenv)
        if values is not None:
            for k, v in values.items():
                q = device_out.get(k, {}).get("quantization")
                ints[k] = dequantize(v, q) if isinstance(q, dict) and np.asarray(v).dtype.kind in "iu" else v
        else:
            int_notes.append(note or "integer reference: skipped")
        if step.run is not None:  # on the CPU the run *is* onnxruntime on this model
            refs.append((f"onnxruntime {qdq_name}", _run_onnx(qdq, env, "quantized model")))
    if ints:
        refs.insert(0, ("integer reference", ints))
    result.notes.extend(int_notes)
    model, note = _float_model(out, manifest, float_model)
    if model is not None:
        refs.append((f"onnxruntime float {model.name}", _run_onnx(model, {**env, **given}, "float model")))
    else:
        result.notes.append(note or "float model: skipped")
    for label, values in refs:
        matched = False
        for name in sorted(values):
            if name not in names:
                continue
            ours = result[name] if name in result else result.core_outputs[name]
            ref = values[name]
            if np.shape(ours) != np.shape(ref):
                result.notes.append(f"{label}: output {name!r} has shape {list(np.shape(ref))}, ours "
                                    f"{list(np.shape(ours))}; not compared")
                continue
            result.comparisons.append(Comparison(name, label, *_metrics(ours, ref)))
            matched = True
        if not matched:
            result.notes.append(f"{label}: none of its outputs ({', '.join(sorted(values))}) is an output of this run")
