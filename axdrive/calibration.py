"""Calibration and evaluation inputs: arrays or photos, checked and preprocessed.

The quantizer needs a batch of realistic inputs. Users give either arrays
that are already preprocessed (``.npy`` with the batch on axis 0, or ``.npz``
with one array per model input) or a folder of images plus the preprocessing
the model expects (size, scale, mean/std, channel order, layout). Bad data is
caught here, with one line naming the file and the problem, before it can turn
into a NaN scale three passes later.
"""

from __future__ import annotations

__all__ = ["ImagePreprocessing", "load_images", "load_calibration", "MIN_SAMPLES", "IMAGE_SUFFIXES"]

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .errors import CalibrationError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: Fewer samples than this make a histogram observer meaningless.
MIN_SAMPLES = 1


@dataclass(frozen=True)
class ImagePreprocessing:
    """How a photo becomes a model input: ``((pixel * scale) - mean) / std``.

    ``mean``/``std`` are per channel (in the output channel order). ``layout``
    is ``NCHW`` or ``NHWC``; ``channel_order`` ``RGB`` or ``BGR``. The size
    comes from the model's input shape.
    """

    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    layout: str = "NCHW"
    channel_order: str = "RGB"
    resize: str = "bilinear"  # or "letterbox" (keep aspect, pad with 114 gray as YOLO does)

    def __post_init__(self) -> None:
        if self.layout not in ("NCHW", "NHWC"):
            raise CalibrationError(f"preprocessing layout {self.layout!r} is invalid: NCHW or NHWC")
        if self.channel_order not in ("RGB", "BGR"):
            raise CalibrationError(f"preprocessing channel_order {self.channel_order!r} is invalid: RGB or BGR")
        if self.resize not in ("bilinear", "letterbox"):
            raise CalibrationError(f"preprocessing resize {self.resize!r} is invalid: bilinear or letterbox")
        if any(s == 0 for s in self.std):
            raise CalibrationError("preprocessing std must not contain 0")

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> "ImagePreprocessing":
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(options) - known)
        if unknown:
            raise CalibrationError(f"unknown preprocessing option(s) {unknown}; known: {sorted(known)}")
        kw = dict(options)
        for key in ("mean", "std"):
            if key in kw and not isinstance(kw[key], tuple):
                v = kw[key]
                vals = [float(x) for x in (v.split(",") if isinstance(v, str) else v)]
                kw[key] = tuple(vals * 3 if len(vals) == 1 else vals)
        return cls(**kw)


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


def load_images(paths: Iterable[str | Path], shape: Sequence[int], pre: ImagePreprocessing = ImagePreprocessing()):
    """Decode and preprocess photos into a float32 batch matching ``shape`` (N ignored)."""
    import numpy as np
    from PIL import Image

    if len(shape) != 4:
        raise CalibrationError(f"image calibration needs a 4-D model input, got shape {tuple(shape)}")
    h, w = (shape[2], shape[3]) if pre.layout == "NCHW" else (shape[1], shape[2])
    channels = shape[1] if pre.layout == "NCHW" else shape[3]
    out = []
    for p in paths:
        p = Path(p)
        im = _decode(p)
        if pre.resize == "letterbox":
            r = min(w / im.width, h / im.height)
            nw, nh = max(1, round(im.width * r)), max(1, round(im.height * r))
            canvas = Image.new("RGB", (w, h), (114, 114, 114))
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
        x = (x * pre.scale - np.asarray(pre.mean[:channels], np.float32)) / np.asarray(pre.std[:channels], np.float32)
        out.append(x.transpose(2, 0, 1) if pre.layout == "NCHW" else x)
    if not out:
        raise CalibrationError("no images to load")
    return np.ascontiguousarray(np.stack(out).astype(np.float32))


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
