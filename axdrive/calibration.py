"""Calibration and evaluation inputs: arrays or photos, checked and preprocessed.

The quantizer needs a batch of realistic inputs. Users give either arrays
that are already preprocessed (``.npy`` with the batch on axis 0, or ``.npz``
with one array per model input) or a folder of images plus the preprocessing
the model expects (size, scale, mean/std, channel order, layout). Bad data is
caught here, with one line naming the file and the problem, before it can turn
into a NaN scale three passes later.
"""

from __future__ import annotations

__all__ = ["ImagePreprocessing", "load_images", "load_calibration", "MIN_SAMPLES", "IMAGE_SUFFIXES",
           "PREPROCESSING_KEYS", "load_transform", "transform_sha256"]

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from .errors import CalibrationError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: Fewer samples than this make a histogram observer meaningless.
MIN_SAMPLES = 1


#: The keys of an image preprocessing, in the order the manifest and ``axdrive run`` show them.
PREPROCESSING_KEYS = ("resize", "pad_value", "channel_order", "scale", "mean", "std", "layout", "dtype", "transform")
_DTYPES = {"float32": None, "uint8": (0, 255), "int8": (-128, 127)}


@dataclass(frozen=True)
class ImagePreprocessing:
    """How a photo becomes a model input: resized to the model's input size, then ``((pixel * scale) - mean) / std``.

    - ``resize``: ``bilinear`` stretches the photo to the input size; ``letterbox`` keeps its aspect ratio and
      pads the rest with ``pad_value`` (0..255, gray 114 as YOLO's exporters do).
    - ``channel_order``: ``RGB`` or ``BGR`` (OpenCV-trained models); ``mean``/``std`` per channel, in that order.
    - ``layout``: ``NCHW`` or ``NHWC``; ``dtype``: ``float32``, or ``uint8``/``int8`` (rounded and clipped) for
      a model that takes integer pixels.
    - ``transform``: ``FILE.py:FUNCTION`` replaces all of the above with the user's own code, called as
      ``FUNCTION(image, input_shape)`` with an RGB ``uint8`` array ``H x W x 3`` and the model input's shape; it
      returns one sample (``input_shape[1:]``, or with a leading 1).

    One definition serves calibration and inference: the compile records it in the manifest and
    ``axdrive run --input PHOTO.jpg`` applies it.
    """

    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    layout: str = "NCHW"
    channel_order: str = "RGB"
    resize: str = "bilinear"
    pad_value: int = 114
    dtype: str = "float32"
    transform: str = ""

    def __post_init__(self) -> None:
        def bad(key: str, value: Any, want: str) -> CalibrationError:
            return CalibrationError(f"preprocessing {key} {value!r} is invalid: {want}")

        for key in ("mean", "std"):
            if isinstance(getattr(self, key), list):
                object.__setattr__(self, key, tuple(getattr(self, key)))

        if self.layout not in ("NCHW", "NHWC"):
            raise bad("layout", self.layout, "NCHW or NHWC")
        if self.channel_order not in ("RGB", "BGR"):
            raise bad("channel_order", self.channel_order, "RGB or BGR")
        if self.resize not in ("bilinear", "letterbox"):
            raise bad("resize", self.resize, "bilinear or letterbox")
        if self.dtype not in _DTYPES:
            raise bad("dtype", self.dtype, ", ".join(_DTYPES))
        if isinstance(self.pad_value, bool) or not isinstance(self.pad_value, int) or not 0 <= self.pad_value <= 255:
            raise bad("pad_value", self.pad_value, "an integer in [0, 255]")
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float)) or not self.scale > 0 \
                or self.scale == float("inf"):
            raise bad("scale", self.scale, "a positive number")
        for key in ("mean", "std"):
            values = getattr(self, key)
            if not isinstance(values, tuple) or len(values) not in (1, 3) or \
                    not all(isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) < float("inf")
                            for v in values):
                raise bad(key, values, "1 or 3 finite numbers")
        if any(s == 0 for s in self.std):
            raise CalibrationError("preprocessing std must not contain 0")
        if self.transform:
            file, sep, func = self.transform.rpartition(":")
            if not sep or not file.endswith(".py") or not func.isidentifier():
                raise bad("transform", self.transform, "FILE.py:FUNCTION")
            changed = [k for k in PREPROCESSING_KEYS if k not in ("transform", "dtype")
                       and getattr(self, k) != getattr(ImagePreprocessing, k)]
            if changed:
                raise CalibrationError(f"preprocessing transform {self.transform!r} replaces the built-in steps; "
                                       f"it cannot be combined with {', '.join(changed)}")

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> "ImagePreprocessing":
        """From a config table or ``--preprocess KEY=VALUE`` strings (``mean=0.5,0.5,0.5``), checked."""
        unknown = sorted(set(options) - set(PREPROCESSING_KEYS))
        if unknown:
            import difflib

            close = difflib.get_close_matches(unknown[0], PREPROCESSING_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(PREPROCESSING_KEYS)})"
            raise CalibrationError(f"unknown preprocessing option {unknown[0]!r}{hint}")
        kw: dict[str, Any] = {}
        for key, v in options.items():
            try:
                if key in ("mean", "std"):
                    values = tuple(float(x) for x in (v.split(",") if isinstance(v, str) else
                                                      (v if isinstance(v, (list, tuple)) else [v])))
                    kw[key] = values * 3 if len(values) == 1 else values  # one value: every channel
                elif key == "scale":
                    kw[key] = _number(v)
                elif key == "pad_value":
                    kw[key] = int(v) if isinstance(v, str) else v
                else:
                    kw[key] = str(v) if key != "channel_order" and key != "layout" else str(v).upper()
            except (TypeError, ValueError, ZeroDivisionError):
                want = "an integer in [0, 255]" if key == "pad_value" else "not a number"
                raise CalibrationError(f"preprocessing {key} {v!r} is invalid: {want}") from None
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        """The canonical form the manifest records (``from_mapping`` reads it back)."""
        if self.transform:
            return {"transform": self.transform, "dtype": self.dtype}
        return {k: (list(v) if isinstance(v, tuple) else v) for k in PREPROCESSING_KEYS if k != "transform"
                for v in [getattr(self, k)]}


def _number(v: Any) -> float:
    """``1/255`` or ``0.0039``: a scale may be written as a fraction."""
    if isinstance(v, str):
        num, sep, den = v.partition("/")
        return float(num) / float(den) if sep else float(v)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(v)
    return float(v)


def _check_array(arr: Any, name: str, shape: Sequence[int] | None, where: str):
    import numpy as np

    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu":
        raise CalibrationError(f"{where}: {name} has dtype {getattr(arr, 'dtype', type(arr).__name__)}, expected a numeric array")
    arr = arr.astype(np.float32, copy=False)
    if shape is not None:
        want = tuple(shape[1:])
        if arr.ndim == len(shape) - 1 and tuple(arr.shape) == want:
            arr = arr[None]
        if arr.ndim != len(shape) or tuple(arr.shape[1:]) != want:
            raise CalibrationError(
                f"{where}: {name} has shape {tuple(arr.shape)}, expected (N, {', '.join(map(str, want))}) for the model input"
            )
    if arr.shape[0] < MIN_SAMPLES:
        raise CalibrationError(f"{where}: {name} has no samples (batch axis is empty)")
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise CalibrationError(f"{where}: {name} contains NaN or inf (first at index {idx})")
    return arr


def _decode(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CalibrationError(f"{path}: cannot decode image: {exc}") from None


def transform_sha256(spec: str) -> str | None:
    """The sha256 of a transform's file (``FILE.py:FUNCTION``), None if it is missing: what the manifest records
    and ``axdrive run --input PHOTO`` checks before it runs the same code again."""
    from .artifacts import sha256_file

    file = Path(spec.rpartition(":")[0])
    return sha256_file(file) if file.is_file() else None


def load_transform(spec: str) -> Callable[..., Any]:
    """The user's ``FILE.py:FUNCTION``, imported from that file (relative paths from the working directory).
    The module is executed once per version of the file, however often a compile asks (the driver's early
    check, every calibrated segment, every ``--target-sqnr`` round)."""
    file, _, func = spec.rpartition(":")
    path = Path(file)
    if not path.is_file():
        raise CalibrationError(f"preprocessing transform {spec!r}: {path}: no such file")
    st = path.stat()
    return _load_transform(str(path.resolve()), st.st_mtime_ns, st.st_size, func, spec)


@functools.lru_cache(maxsize=16)
def _load_transform(resolved: str, _mtime_ns: int, _size: int, func: str, spec: str) -> Callable[..., Any]:
    import importlib.util

    path = Path(resolved)
    name = f"axdrive_user_transform_{abs(hash(str(path.resolve())))}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise CalibrationError(f"preprocessing transform {spec!r}: {path} cannot be imported as Python")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:  # the user's module: any error is theirs to read, in one line
        raise CalibrationError(f"preprocessing transform {spec!r}: importing {path} failed: "
                               f"{type(exc).__name__}: {exc}") from None
    fn = getattr(module, func, None)
    if not callable(fn):
        raise CalibrationError(f"preprocessing transform {spec!r}: {path} has no function {func!r}")
    return fn


def _transformed(fn: Callable[..., Any], spec: str, image: Any, shape: Sequence[int], where: Path):
    import numpy as np

    try:
        x = fn(np.asarray(image, dtype=np.uint8), tuple(int(d) for d in shape))
    except Exception as exc:  # the user's code
        raise CalibrationError(f"{where}: preprocessing transform {spec!r} failed: {type(exc).__name__}: {exc}") \
            from None
    x = np.asarray(x)
    want = tuple(int(d) for d in shape[1:])
    if x.shape == (1, *want):
        x = x[0]
    if x.shape != want or x.dtype.kind not in "fiu":
        raise CalibrationError(f"{where}: preprocessing transform {spec!r} returned {x.dtype} {tuple(x.shape)}, "
                               f"expected numbers of shape {want} (the model input without its batch axis)")
    return x.astype(np.float32)


def load_images(paths: Iterable[str | Path], shape: Sequence[int], pre: ImagePreprocessing = ImagePreprocessing()):
    """Decode and preprocess photos into a float32 batch matching ``shape`` (N ignored)."""
    import numpy as np
    from PIL import Image

    if len(shape) != 4:
        raise CalibrationError(f"image input needs a 4-D model input, got shape {tuple(shape)}")
    transform = load_transform(pre.transform) if pre.transform else None
    h, w = (shape[2], shape[3]) if pre.layout == "NCHW" else (shape[1], shape[2])
    channels = shape[1] if pre.layout == "NCHW" else shape[3]
    out = []
    for p in paths:
        p = Path(p)
        im = _decode(p)
        if transform is not None:
            out.append(_transformed(transform, pre.transform, im, shape, p))
            continue
        if pre.resize == "letterbox":
            r = min(w / im.width, h / im.height)
            nw, nh = max(1, round(im.width * r)), max(1, round(im.height * r))
            canvas = Image.new("RGB", (w, h), (pre.pad_value,) * 3)
            canvas.paste(im.resize((nw, nh), Image.BILINEAR), ((w - nw) // 2, (h - nh) // 2))
            im = canvas
        else:
            im = im.resize((w, h), Image.BILINEAR)
        x = np.asarray(im, dtype=np.float32)
        if pre.channel_order == "BGR":
            x = x[..., ::-1]
        if channels == 1:
            x = x.mean(axis=-1, keepdims=True)
        elif channels != 3:
            raise CalibrationError(f"{p}: the model input has {channels} channels; images give 1 or 3")
        mean = np.asarray(pre.mean, np.float32)[:channels]
        std = np.asarray(pre.std, np.float32)[:channels]
        x = (x * np.float32(pre.scale) - mean) / std
        out.append(x.transpose(2, 0, 1) if pre.layout == "NCHW" else x)
    if not out:
        raise CalibrationError("no images to load")
    batch = np.stack(out).astype(np.float32)
    bounds = _DTYPES[pre.dtype]
    if bounds is not None:  # integer pixels: what the model's integer input would hold
        batch = np.clip(np.rint(batch), *bounds)
    return np.ascontiguousarray(batch.astype(np.float32))


def load_calibration(
    source: str | Path | Mapping[str, Any] | Any,
    input_shapes: Mapping[str, Sequence[int]],
    preprocessing: ImagePreprocessing | Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Calibration batches keyed by model input name.

    ``source``: a ``.npy`` file (single-input models), a ``.npz`` file (one
    array per input name), a folder of images (single 4-D input), a numpy
    array, or a mapping name -> array.
    """
    import numpy as np

    pre = preprocessing if isinstance(preprocessing, ImagePreprocessing) else ImagePreprocessing.from_mapping(preprocessing or {})
    names = list(input_shapes)
    if isinstance(source, np.ndarray):
        source = {names[0]: source} if len(names) == 1 else source
    if isinstance(source, Mapping):
        missing = [n for n in names if n not in source]
        if missing:
            raise CalibrationError(f"calibration data has no array for model input(s) {missing}")
        return {n: _check_array(np.asarray(source[n]), n, input_shapes[n], "calibration data") for n in names}
    path = Path(source)
    if not path.exists():
        raise CalibrationError(f"{path}: no such file or folder")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise CalibrationError(f"{path}: folder has no images ({', '.join(IMAGE_SUFFIXES)})")
        if len(names) != 1:
            raise CalibrationError(f"{path}: a folder of images can only feed a single-input model; this one has {names}")
        return {names[0]: _check_array(load_images(files, input_shapes[names[0]], pre), names[0], input_shapes[names[0]], str(path))}
    # read within bounds (header against the file's bytes and the free memory, no pickles): axdrive.inputs
    from .inputs import read_array_file

    if path.suffix == ".npy":
        if len(names) != 1:
            raise CalibrationError(f"{path}: a .npy file can only feed a single-input model; use .npz with arrays named {names}")
        arr = read_array_file(path, where=f"{path}: cannot read array file", error=CalibrationError)
        return {names[0]: _check_array(arr, names[0], input_shapes[names[0]], str(path))}
    if path.suffix == ".npz":
        z = read_array_file(path, where=f"{path}: cannot read array file", error=CalibrationError)
        assert isinstance(z, dict)
        missing = [n for n in names if n not in z]
        if missing:
            raise CalibrationError(f"{path}: no array for model input(s) {missing} (it has {sorted(z)})")
        return {n: _check_array(z[n], n, input_shapes[n], str(path)) for n in names}
    raise CalibrationError(f"{path}: unsupported calibration file; give .npy, .npz or a folder of images")
