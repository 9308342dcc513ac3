"""Calibration: from the user's calibration input to activation statistics of the core graph.

Where the data comes from (``ctx.inputs["calibration"]``): ``None`` (the sample
photos shipped through :mod:`axdrive.models`, with a warning), a path (``.npy``,
``.npz`` or a folder of images; :func:`axdrive.calibration.load_calibration`
checks it and names the file in any error), or arrays already loaded by an API
caller. Optional ``ctx.inputs["preprocessing"]`` (an
:class:`~axdrive.calibration.ImagePreprocessing` or its mapping) says how photos
become inputs.

The data is for the *model's* inputs; when the graph cleaner moved a
pre-processing part to the host, that part (``host_preprocess.onnx``) runs in
onnxruntime first, exactly as it will at deployment, to give the core's inputs.

The float executor then runs in batches and hands every activation to the
:class:`~axdrive_quantizer._observe.Observer` as soon as it is computed
(``on_value``): the statistics are taken while the tensor is still in cache,
and nothing is kept once its last reader has run.

Why calibration leaves one core to the rest of the machine (:func:`blas_threads`):
the float run is mostly matrix products in numpy's BLAS, whose worker
threads wait for each other at the end of every product. When the machine is
busy and a worker loses its core, every product waits for it: on a 2-core
machine under load the YOLOv8n calibration took 1.8-2.3 s with two BLAS
threads and 0.8-1.1 s with one. Thread counts do not change any result (BLAS
splits the output, never a dot product).
"""

from __future__ import annotations

__all__ = ["CalibrationData", "blas_threads", "calibration_feeds", "observe"]

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from axdrive.calibration import load_calibration
from axdrive.errors import CalibrationError, ModelError
from axdrive.ir import Graph
from axdrive.reference import run_float

from ._memory import check_calibration_memory, check_device_io
from ._observe import Observer

#: Upper bound of a calibration batch, as the bytes of all its activations together.
#: Why it still counts every activation although they are no longer all kept:
#: the batch boundaries decide at which radius a histogram first sees a value
#: (see _observe.py), and keeping them keeps every grid what it was.
BATCH_BYTES = 256 << 20


@dataclass
class CalibrationData:
    """Float feeds of the core graph, batch on axis 0, and where they came from."""

    feeds: dict[str, np.ndarray]
    source: str
    samples: int
    memory: dict[str, int] = field(default_factory=dict)  # the estimate checked before loading (see _memory.py)
    summary: dict[str, Any] = field(default_factory=dict)  # what was loaded, per model input (see summarize)
    #: guesses about the data's scale from its values, said unless the user gave the preprocessing
    hints: list[str] = field(default_factory=list)


def _host_preprocess(ctx: Any) -> Any | None:
    """The staged ``host_preprocess.onnx`` of this compile, if the graph cleaner wrote one."""
    try:
        path = ctx.artifacts.staged("host_preprocess.onnx")
    except (RuntimeError, KeyError):
        return None
    import onnx

    return onnx.load(str(path))


def _shape_of(value_info: Any) -> tuple[int, ...]:
    return tuple(int(d.dim_value) for d in value_info.type.tensor_type.shape.dim)


def calibration_feeds(ctx: Any, graph: Graph) -> CalibrationData:
    """Load, check and (through the host pre-processing) map the calibration input onto ``graph``'s inputs."""
    source = ctx.inputs.get("calibration")
    segment = getattr(ctx, "segment", None)
    feeder = getattr(segment, "feeder", None)
    pre_model = _host_preprocess(ctx) if feeder is None else None
    pre_outputs = {o.name for o in pre_model.graph.output} if pre_model is not None else set()
    if feeder is not None:
        pre_outputs = set(feeder.outputs)
    shapes = {name: graph.tensors[name].shape for name in graph.inputs if name not in pre_outputs}
    if pre_model is not None:
        for vi in pre_model.graph.input:
            shapes.setdefault(vi.name, _shape_of(vi))
    if feeder is not None:
        for name in feeder.inputs:
            shapes.setdefault(name, feeder.tensors[name].shape)
    memory = _check_memory(ctx, graph, shapes, source)
    if source is None:
        from axdrive.models import CALIBRATION_PHOTOS, fetch_photos

        ctx.warn(f"no calibration data given: calibrating on the {len(CALIBRATION_PHOTOS)} sample photos "
                 "(give --calibration for representative inputs)")
        paths = fetch_photos(CALIBRATION_PHOTOS)
        label = f"sample photos ({', '.join(CALIBRATION_PHOTOS)})"
        from axdrive.calibration import ImagePreprocessing, load_images

        pre = _preprocessing(ctx) or ImagePreprocessing()
        if len(shapes) != 1:
            raise CalibrationError(f"the sample photos can only calibrate a single-input model; this one has "
                                   f"{sorted(shapes)}: give calibration data as .npz")
        (name, shape), = shapes.items()
        data = {name: load_images(paths, shape, pre)}
        images, hints = True, []
    else:
        label = str(source) if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__") else "arrays"
        data = load_calibration(source, shapes, _preprocessing(ctx))
        images = isinstance(label, str) and Path(label).is_dir()
        hints = _warn_suspicious(ctx, data, label)
        if _preprocessing(ctx) is not None:
            hints = []  # the user chose the scale: integer pixels are what they asked for
    summary = summarize(data, label, _recorded_preprocessing(ctx, shapes, images))
    samples = int(next(iter(data.values())).shape[0])
    if any(int(a.shape[0]) != samples for a in data.values()):
        raise CalibrationError(f"{label}: calibration arrays have different sample counts "
                               f"{ {k: int(v.shape[0]) for k, v in data.items()} }")
    if pre_model is not None:
        data = _run_preprocess(pre_model, data, label)
    if feeder is not None:
        data = _run_feeder(feeder, data, label, segment.name)
    return CalibrationData({name: data[name] for name in graph.inputs}, label, samples, memory, summary, hints)


def _recorded_preprocessing(ctx: Any, shapes: dict[str, Any], images: bool) -> dict[str, Any] | None:
    """What the manifest records so that ``axdrive run --input PHOTO`` preprocesses as calibration did: the
    preprocessing that loaded photos, or the one the user gave, with the one 4-D input it applies to."""
    from axdrive.calibration import ImagePreprocessing

    given = _preprocessing(ctx)
    if not images and given is None:
        return None
    four_d = [(n, s) for n, s in shapes.items() if s is not None and len(s) == 4]
    if len(shapes) != 1 or not four_d:
        return None
    (name, shape), = four_d
    pre = given if isinstance(given, ImagePreprocessing) else ImagePreprocessing.from_mapping(given or {})
    doc = {"input": name, "shape": [int(d) for d in shape], **pre.to_dict()}
    if pre.transform:
        from axdrive.calibration import transform_sha256

        doc["transform_sha256"] = transform_sha256(pre.transform)
    return doc


#: Channels up to this count get a range each in the summary (image planes); more are summed up as one range.
SUMMARY_CHANNELS = 4


def summarize(data: dict[str, np.ndarray], label: str, preprocessing: dict[str, Any] | None) -> dict[str, Any]:
    """Count, shape and value ranges (per channel for image-like inputs) of what calibration loaded: what the CLI
    prints in one line and the compile report keeps, so a wrong scale or channel order shows at a glance."""
    inputs = {}
    for name, a in data.items():
        entry: dict[str, Any] = {"shape": [int(d) for d in a.shape[1:]],
                                 "range": [float(f"{a.min():.6g}"), float(f"{a.max():.6g}")]}
        if a.ndim >= 3 and 1 < a.shape[1] <= SUMMARY_CHANNELS:
            entry["channel_ranges"] = [[float(f"{a[:, c].min():.6g}"), float(f"{a[:, c].max():.6g}")]
                                       for c in range(a.shape[1])]
        inputs[name] = entry
    samples = int(next(iter(data.values())).shape[0])
    return {"source": label, "samples": samples, "inputs": inputs,
            **({"preprocessing": preprocessing} if preprocessing else {})}


def _check_memory(ctx: Any, graph: Graph, shapes: dict[str, Any], source: Any) -> dict[str, int]:
    """Refuse, before any sample is loaded, a calibration the host memory cannot hold, and (when the compile
    lowers) a program whose inputs and outputs cannot fit the device DDR; see _memory.py for the estimate."""
    from axdrive.models import CALIBRATION_PHOTOS

    resident = len(CALIBRATION_PHOTOS) if source is None else 1
    input_bytes = sum(4 * int(np.prod(s, dtype=object)) for s in shapes.values() if s)  # float32, one sample
    estimate = check_calibration_memory(graph, samples=resident, input_bytes=input_bytes,
                                        batch=_batch_size(graph, resident))
    if str(getattr(ctx.config, "compiler_mode", "")) == "quantize_and_lower":
        check_device_io(graph, ctx.config, [*graph.inputs, *graph.outputs])
    return estimate.to_stats()


def _warn_suspicious(ctx: Any, data: dict[str, np.ndarray], label: str) -> list[str]:
    """Warn (compile report and CLI) about calibration data that is valid but most likely not what the model
    sees at deployment: all-zero samples (every range collapses). Integer pixels in [0, 255] (ranges 255x too
    wide for a model that expects normalized input) are only a guess: returned, for the caller to say unless
    the user chose the preprocessing (``--preprocess scale=1`` means it). Checked sample by sample: no copy
    of the data."""
    hints: list[str] = []
    for name, a in data.items():
        n = int(a.shape[0])
        zero = sum(1 for i in range(n) if not np.any(a[i]))
        if zero == n:
            ctx.warn(f"calibration input {name!r}: all {n} samples are exactly zero ({label}): every activation "
                     "range collapses to a point; give representative inputs")
            continue
        if zero:
            ctx.warn(f"calibration input {name!r}: {zero} of {n} samples are exactly zero ({label}); blank samples "
                     "narrow nothing but weigh in the histograms")
        lo, hi = float(a.min()), float(a.max())
        if hi - lo > 1 and all(np.array_equal(np.rint(a[i]), a[i]) for i in range(n)):
            hints.append(f"calibration input {name!r}: all values are integers in [{lo:g}, {hi:g}] ({label}): if "
                         "the model expects normalized input, pass the preprocessing (e.g. scale 1/255, mean/std) "
                         "first")
    return hints


def _preprocessing(ctx: Any) -> Any:
    return ctx.inputs.get("preprocessing")


def _run_preprocess(model: Any, data: dict[str, np.ndarray], label: str) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(deterministic=True), providers=["CPUExecutionProvider"])
    in_names = [i.name for i in session.get_inputs()]
    out_names = [o.name for o in session.get_outputs()]
    rows: list[list[np.ndarray]] = []
    n = int(next(iter(data.values())).shape[0])
    try:
        for i in range(n):
            rows.append(session.run(out_names, {k: data[k][i:i + 1] for k in in_names}))
    except Exception as exc:  # onnxruntime's own exception types
        raise CalibrationError(f"{label}: host_preprocess.onnx failed on the calibration data: "
                               f"{str(exc).splitlines()[0]}") from None
    out = dict(data)
    out.update({name: np.concatenate([r[j] for r in rows]) for j, name in enumerate(out_names)})
    return out


def _run_feeder(feeder: Graph, data: dict[str, np.ndarray], label: str, segment: str) -> dict[str, np.ndarray]:
    """The float values at a further device segment's inputs: the model's earlier parts (host parts and the
    device segments before, all in float, with onnxruntime for what the float executor has no kernel for) run on
    each calibration sample, one at a time (an earlier part may have the batch of 1 baked into a Reshape)."""
    if not feeder.outputs:
        return dict(data)
    n = int(next(iter(data.values())).shape[0])
    rows: list[dict[str, np.ndarray]] = []
    for i in range(n):
        try:
            rows.append(run_float(feeder, {k: data[k][i:i + 1] for k in feeder.inputs}))
        except (ModelError, ValueError) as exc:
            raise CalibrationError(f"{label}: the parts before device segment {segment} failed on calibration "
                                   f"sample {i}: {str(exc).splitlines()[0]}") from None
    out = dict(data)
    out.update({name: np.concatenate([r[name] for r in rows]) for name in feeder.outputs})
    return out


def _batched(graph: Graph, size: int) -> Graph:
    """A shallow copy whose inputs declare batch ``size`` (kernels follow the arrays)."""
    g = graph.copy_order()
    g.tensors = dict(graph.tensors)
    for name in g.inputs:
        t = graph.tensors[name]
        g.tensors[name] = type(t)(t.name, (size, *t.shape[1:]), t.dtype)
    return g


def _batch_size(graph: Graph, samples: int) -> int:
    per_sample = sum(t.size * 4 for t in graph.tensors.values() if t.data is None and t.shape)
    return max(1, min(samples, BATCH_BYTES // max(per_sample, 1)))


def _batches(feeds: dict[str, np.ndarray], size: int) -> Iterator[dict[str, np.ndarray]]:
    n = int(next(iter(feeds.values())).shape[0])
    for start in range(0, n, size):
        yield {k: v[start:start + size] for k, v in feeds.items()}


def blas_threads(current: int) -> int:
    """BLAS threads for the calibration run: at most ``current`` (the user's or the
    library's setting) and one fewer than the cores this process may use (see
    the module doc), at least one."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 1
    return max(1, min(current, usable - 1))


@contextmanager
def _blas_limited() -> Iterator[None]:
    """numpy's BLAS limited to :func:`blas_threads` for the duration (a speed setting
    only: without threadpoolctl, an environment installed before it became a
    dependency, calibration runs as before)."""
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        yield
        return
    pools = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
    if not pools:
        yield
        return
    with threadpool_limits(limits=blas_threads(min(pools)), user_api="blas"):
        yield


def _batch_baked_in(graph: Graph, size: int) -> str | None:
    """A Reshape that cannot run on ``size`` samples, if the graph has one: its target
    is a constant of positive sizes (no ``-1``, no ``0``) that starts with the
    static batch of its input, which is the batch of the graph's inputs (a
    flatten exported for batch 1, as in PP-OCR). Such a graph fails the batched
    probe only at that Reshape, and in PP-OCR that is node 140 of 145, so the
    probe cost almost a third of the calibration."""
    batches = {graph.tensors[name].shape[0] for name in graph.inputs if graph.tensors[name].shape}
    if len(batches) != 1 or size in batches:
        return None
    batch = batches.pop()
    for node in graph.nodes:
        if node.op != "Reshape" or len(node.inputs) < 2 or graph.constant(node.inputs[0]) is not None:
            continue
        target = graph.constant(node.inputs[1])
        shape = graph.tensors[node.inputs[0]].shape
        if target is None or not shape or np.ndim(target) != 1 or np.size(target) == 0:
            continue
        target = np.asarray(target).astype(np.int64)
        if (target > 0).all() and int(target[0]) == shape[0] == batch and int(np.prod(target)) == int(np.prod(shape)):
            return node.name
    return None


def observe(graph: Graph, data: CalibrationData, observer: Observer) -> dict[str, int]:
    """Run the float graph over all calibration samples, batched, folding every
    activation into ``observer`` as it is computed. Falls back to one sample per
    run when the graph has the batch size baked in (a Reshape to ``[1, ...]``:
    seen in the graph when its target is a constant, else by the probe).
    Returns statistics.

    The first batch doubles as the probe of whether batching works: its
    statistics stand when it does (running the float core is most of the
    calibration time, so no batch is computed twice), and are dropped when it
    does not."""
    size = _batch_size(graph, data.samples)
    if size > 1 and _batch_baked_in(graph, size) is not None:
        size = 1  # exactly what the probe would conclude, without running it
    runs = done = 0
    with _Progress(data.samples) as advance, _blas_limited():
        if size > 1:
            probe = {k: v[:size] for k, v in data.feeds.items()}
            n = int(probe[graph.inputs[0]].shape[0])
            try:
                out = run_float(_batched(graph, n), probe, on_value=observer.fold)
                if any(np.ndim(out[o]) == 0 or np.shape(out[o])[0] != n for o in graph.outputs):
                    raise ModelError("batch axis not preserved")
            except ModelError:
                observer.reset()
                size = 1
            else:
                runs, done = 1, n
                advance(n)
        rest = {k: v[done:] for k, v in data.feeds.items()}
        for batch in _batches(rest, size):
            n = int(next(iter(batch.values())).shape[0])
            run_float(_batched(graph, n) if size > 1 else graph, batch, on_value=observer.fold)
            runs += 1
            advance(n)
    return {"samples": data.samples, "batches": runs, "batch_size": size}


class _Progress:
    """A rich progress bar on a TTY, nothing otherwise (logs and CI stay clean)."""

    def __init__(self, total: int) -> None:
        from rich.console import Console

        self.total = total
        self.console = Console(stderr=True)
        self.bar: Any = None

    def __enter__(self):  # noqa: ANN204 - returns the advance callback
        if self.console.is_terminal:
            from rich.progress import Progress

            self.bar = Progress(console=self.console, transient=True)
            self.bar.start()
            task = self.bar.add_task("calibrating", total=self.total)
            return lambda n: self.bar.advance(task, n)
        return lambda n: None

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()
