"""Inputs a user hands to axdrive: array files read within bounds, arrays checked against the model.

Why a module of its own: ``axdrive run --input``, calibration files and the
in-process API all take arrays from outside, and a hostile or careless one
(a forged ``.npy`` header declaring a TiB, a pickled object array, a 0-d
scalar, ``uint8`` pixels for a float input, NaN values) used to surface as a
``MemoryError``, an ``OverflowError`` deep in the device layout code, or as
plausible outputs computed from NaN. Every such case now stops here, before
any work, with one line naming the file (and ``.npz`` member) or the input,
what was expected and what was given.

Decisions (see ``docs/reliability.md``, "Inputs to compile and run"):

* **Reading** never allocates more than the file justifies: the ``.npy``
  header (also of each ``.npz`` member) is parsed first and its
  ``shape x itemsize`` compared with the bytes actually present (the file's
  size; a member's uncompressed size, itself bounded by what deflate can
  expand its compressed bytes to) and with the memory this process can still
  allocate (:func:`available_memory_bytes`). Object dtypes are refused: they
  are pickles, and unpickling runs code.
* **Integer arrays for a float input** are accepted when every value converts
  exactly to the input's float type (``uint8``/``int8``/``int16`` images
  always do for float32) and are cast explicitly; larger integers that would
  round are refused. For an accelerator input whose program takes quantized
  values, an array of exactly the device dtype (``int8``) is taken as already
  quantized, as ``--core-only`` documents.
* **NaN or Inf in an input is an error** naming the input and the counts: the
  device has no NaN, quantization would turn it into an arbitrary int8 and the
  outputs would look plausible.
"""

from __future__ import annotations

__all__ = ["InputSpec", "available_memory_bytes", "format_bytes", "read_array_file", "manifest_input_specs",
           "onnx_input_specs", "check_input", "check_inputs"]

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Mapping, Sequence

import numpy as np

from .errors import AxdriveError, ModelError, UsageError
from .files import format_bytes, not_regular

#: Deflate expands at most about 1032:1; a ``.npz`` member claiming more than this many uncompressed bytes per
#: compressed byte (plus slack for the stream's framing) has a forged size in its zip directory.
_DEFLATE_MAX_RATIO = 1032
_DEFLATE_SLACK = 1 << 16


# -- memory -----------------------------------------------------------------------------------------------------
def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def _proc_bytes(path: str, key: str) -> int | None:
    """A ``Key:  N kB`` line of a ``/proc`` file, in bytes."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _meminfo_available() -> int | None:
    avail = _proc_bytes("/proc/meminfo", "MemAvailable")
    if avail is not None:
        return avail
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _vm_size() -> int:
    return _proc_bytes("/proc/self/status", "VmSize") or 0


def available_memory_bytes() -> int | None:
    """Bytes this process can still allocate, or ``None`` when the system does not say.

    The smallest of: the machine's ``MemAvailable`` (``/proc/meminfo``, else
    ``sysconf``), the room left under the process's cgroup memory limit (v2
    ``memory.max``, v1 ``memory.limit_in_bytes``) and under its address-space
    limit (``RLIMIT_AS`` minus the current ``VmSize``). Why all three: a
    container or ``ulimit -v`` caps a process far below the machine, and an
    allocation past that cap kills it (OOM killer) or raises a bare
    ``MemoryError`` instead of the one-line refusal callers give with this.
    """
    candidates: list[int] = []
    avail = _meminfo_available()
    if avail is not None:
        candidates.append(avail)
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < 1 << 60:  # "max" or v1's page-rounded 2**63
            candidates.append(max(0, limit - usage))
            break
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY and soft > 0:
            candidates.append(max(0, soft - _vm_size()))
    except (ImportError, ValueError, OSError):
        pass
    return min(candidates) if candidates else None


# -- reading .npy / .npz ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Header:
    shape: tuple[int, ...]
    fortran_order: bool
    dtype: np.dtype
    offset: int  # bytes before the data

    @property
    def nbytes(self) -> int:
        count = 1
        for d in self.shape:
            count *= d
        return count * self.dtype.itemsize

    def describe(self) -> str:
        return f"{self.dtype}{list(self.shape)}"


def _read_header(f: BinaryIO, where: str, error: type[AxdriveError]) -> _Header:
    """The ``.npy`` header at the start of ``f`` (left just past it), checked before any data is read."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
    except (ValueError, EOFError, OSError) as exc:
        raise error(f"{where}: not a .npy array ({_first_line(exc)})") from None
    try:
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(f)
        else:
            raise error(f"{where}: .npy format version {version[0]}.{version[1]} is not read (1.0 and 2.0 are; "
                        "they hold every numeric array)")
    except AxdriveError:
        raise
    except (ValueError, EOFError, OSError, SyntaxError, TypeError) as exc:
        raise error(f"{where}: unreadable .npy header ({_first_line(exc)})") from None
    if any(d < 0 for d in shape):
        raise error(f"{where}: the .npy header declares a negative dimension in shape {list(shape)}")
    if dtype.hasobject:
        raise error(f"{where}: holds Python objects (dtype {dtype}), which only a pickle can restore; "
                    "unpickling runs code, so it is not read: save a numeric array")
    return _Header(tuple(int(d) for d in shape), bool(fortran), np.dtype(dtype), f.tell())


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _check_fits(total: int, where: str, error: type[AxdriveError], what: str) -> None:
    """Refuse arrays the process cannot hold, before allocating them."""
    room = available_memory_bytes()
    if room is not None and total > room:
        raise error(f"{where}: {what} needs {format_bytes(total)} of memory, more than the {format_bytes(room)} "
                    "this process can still allocate")


def _read_npy(path: Path, where: str, error: type[AxdriveError]) -> np.ndarray:
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = _read_header(f, where, error)
        present = size - head.offset
        if head.nbytes > present:
            raise error(f"{where}: the .npy header declares {head.describe()} ({format_bytes(head.nbytes)}) but the "
                        f"file holds {format_bytes(max(present, 0))} of data: truncated or not a real array")
        _check_fits(head.nbytes, where, error, f"the array {head.describe()}")
        f.seek(0)
        try:
            return np.lib.format.read_array(f, allow_pickle=False)
        except (ValueError, EOFError, OSError) as exc:
            raise error(f"{where}: unreadable .npy data ({_first_line(exc)})") from None


def _member_key(name: str) -> str:
    return name[:-4] if name.endswith(".npy") else name


def _read_npz(path: Path, where: str, error: type[AxdriveError]) -> dict[str, np.ndarray]:
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise error(f"{where}: not a readable .npz (zip) file ({_first_line(exc)})") from None
    with z:
        infos = [i for i in z.infolist() if not i.is_dir()]
        heads: list[tuple[zipfile.ZipInfo, str, _Header]] = []
        seen: set[str] = set()
        for info in infos:
            at = f"{where}: member {info.filename!r}"
            key = _member_key(info.filename)
            if key in seen:
                raise error(f"{at}: a second array named {key!r}")
            seen.add(key)
            if info.compress_type == zipfile.ZIP_STORED:
                bound = info.compress_size
            elif info.compress_type == zipfile.ZIP_DEFLATED:
                bound = info.compress_size * _DEFLATE_MAX_RATIO + _DEFLATE_SLACK
            else:
                raise error(f"{at}: compression method {info.compress_type} is not read (numpy writes stored or "
                            "deflated members)")
            if info.file_size > bound:
                raise error(f"{at}: the zip directory declares {format_bytes(info.file_size)} uncompressed from "
                            f"{format_bytes(info.compress_size)}, more than the compression can give: a forged size")
            try:
                with z.open(info) as f:
                    head = _read_header(f, at, error)  # type: ignore[arg-type]
            except AxdriveError:
                raise
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError, NotImplementedError) as exc:
                raise error(f"{at}: unreadable ({_first_line(exc)})") from None
            present = info.file_size - head.offset
            if head.nbytes > present:
                raise error(f"{at}: the .npy header declares {head.describe()} ({format_bytes(head.nbytes)}) but the "
                            f"member holds {format_bytes(max(present, 0))} of data: truncated or not a real array")
            heads.append((info, key, head))
        _check_fits(sum(h.nbytes for _, _, h in heads), where, error,
                    f"reading its {len(heads)} array(s)")
        out: dict[str, np.ndarray] = {}
        for info, key, _head in heads:
            try:
                with z.open(info) as f:
                    out[key] = np.lib.format.read_array(f, allow_pickle=False)  # type: ignore[arg-type]
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError) as exc:
                raise error(f"{where}: member {info.filename!r}: unreadable ({_first_line(exc)})") from None
        return out


def read_array_file(path: str | Path, *, where: str | None = None,
                    error: type[AxdriveError] = UsageError) -> np.ndarray | dict[str, np.ndarray]:
    """The array of a ``.npy`` file, or the arrays of a ``.npz`` file by name, read within bounds.

    ``where`` starts every error message (default: the path); ``error`` is the
    class raised (:class:`UsageError` for ``axdrive run``, the calibration
    loader passes :class:`CalibrationError`). Refused, each with one line: a
    missing or non-regular file, a header whose ``shape x itemsize`` exceeds
    the bytes present, a ``.npz`` member whose declared size its compressed
    bytes cannot give, object (pickled) dtypes, and arrays larger than the
    memory the process can still allocate. Nothing larger than the header is
    read before those checks pass.
    """
    p = Path(path)
    where = where or str(p)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise error(f"{where}: no such file") from None
    except OSError as exc:
        raise error(f"{where}: cannot read: {exc.strerror or exc}") from None
    problem = not_regular(st.st_mode)
    if problem:
        raise error(f"{where}: {problem}")
    try:
        if p.suffix == ".npz":
            return _read_npz(p, where, error)
        return _read_npy(p, where, error)
    except OSError as exc:  # opening or reading the file itself
        raise error(f"{where}: cannot read: {exc.strerror or exc}") from None


# -- what the model takes ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InputSpec:
    """One input the run takes: its name, element type and shape, as far as known.

    ``shape`` entries are ``None`` where the dimension is symbolic; ``shape``
    itself is ``None`` when not even the rank is known (an old manifest).
    ``device_dtype`` is set for an accelerator input whose program takes
    quantized values (``int8``): an array of exactly that dtype is taken as
    already quantized, any other numeric array as real values (float32).
    """

    name: str
    dtype: np.dtype | None
    shape: tuple[int | None, ...] | None
    device_dtype: np.dtype | None = None

    def real_dtype(self) -> np.dtype | None:
        """The dtype real values are taken in: float32 for a quantized input, else the declared one."""
        return np.dtype(np.float32) if self.device_dtype is not None else self.dtype

    def shape_text(self) -> str:
        """``[1, 3, ?, ?]``: the declared shape, ``?`` where symbolic."""
        return "[" + ", ".join("?" if d is None else str(d) for d in self.shape or ()) + "]"

    def dtype_text(self) -> str:
        """``float32``, or ``float32 or int8 (already quantized)`` for a quantized accelerator input."""
        real = self.real_dtype()
        text = str(real) if real is not None else "numeric"
        return f"{text} or {self.device_dtype} (already quantized)" if self.device_dtype is not None else text

    def describe(self) -> str:
        """``float32[1, 3, 8, 8]``: what the input takes, for messages."""
        real = self.real_dtype()
        text = f"{real if real is not None else 'numeric'}{self.shape_text() if self.shape is not None else ''}"
        return f"{text} (or {self.device_dtype} already quantized)" if self.device_dtype is not None else text


def _np_dtype(name: Any) -> np.dtype | None:
    try:
        return np.dtype(str(name)) if name is not None else None
    except TypeError:
        return None


def manifest_input_specs(entries: Sequence[Mapping[str, Any]]) -> list[InputSpec]:
    """Specs of the accelerator part's inputs from ``manifest.json`` ``"inputs"`` entries
    (``name``, ``shape``, ``dtype``, optional ``quantization`` with its ``dtype``)."""
    specs = []
    for e in entries:
        shape = e.get("shape")
        dims = tuple(int(d) if isinstance(d, int) and d > 0 else None for d in shape) \
            if isinstance(shape, (list, tuple)) else None
        q = e.get("quantization")
        device = _np_dtype(q.get("dtype", "int8")) if isinstance(q, Mapping) else None
        specs.append(InputSpec(str(e["name"]), _np_dtype(e.get("dtype")), dims, device))
    return specs


def onnx_input_specs(path: str | Path) -> list[InputSpec]:
    """Specs of an ONNX model's run-time inputs (initializers excluded), from its value infos."""
    import onnx
    from onnx.helper import tensor_dtype_to_np_dtype

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, ValueError, ...
        raise ModelError(f"not a readable ONNX model: {_first_line(exc)}", file=str(path)) from None
    inits = {t.name for t in model.graph.initializer}
    specs = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        ttype = vi.type.tensor_type
        try:
            dtype = np.dtype(tensor_dtype_to_np_dtype(ttype.elem_type)) if ttype.elem_type else None
        except Exception:  # a type numpy has no dtype for (strings, bfloat16 in old numpy)
            dtype = None
        shape = tuple(int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else None
                      for d in ttype.shape.dim) if ttype.HasField("shape") else None
        specs.append(InputSpec(vi.name, dtype, shape))
    return specs


# -- checking given arrays ---------------------------------------------------------------------------------------
def _check_shape(name: str, a: np.ndarray, spec: InputSpec | None) -> None:
    if a.ndim == 0:
        want = spec.describe() if spec is not None else "an array with a batch axis"
        raise UsageError(f"input {name!r}: got a 0-d array (one {a.dtype} number), expected {want}")
    if spec is not None and spec.shape is not None:
        want = f"shape {spec.shape_text()} (any number of frames along axis 0)"
        if a.ndim != len(spec.shape):
            raise UsageError(f"input {name!r}: expected {len(spec.shape)}-D {want}, got {a.ndim}-D {list(a.shape)}")
        for axis, (got, exp) in enumerate(zip(a.shape, spec.shape)):
            if axis > 0 and exp is not None and got != exp:
                raise UsageError(f"input {name!r}: expected {want}, got {list(a.shape)} (axis {axis} is {got}, "
                                 f"expected {exp})")
    if a.size == 0:
        axis = next(i for i, d in enumerate(a.shape) if d == 0)
        want = f", expected {spec.describe()}" if spec is not None else ""
        raise UsageError(f"input {name!r}: got an empty array {a.dtype}{list(a.shape)} (axis {axis} has size 0){want}")


def _to_float(name: str, a: np.ndarray, want: np.dtype) -> np.ndarray:
    """``a`` (integers) as ``want`` floats, if every value converts exactly."""
    exact_up_to = 2 ** (np.finfo(want).nmant + 1)  # every integer of smaller magnitude is representable
    info = np.iinfo(a.dtype)
    if -exact_up_to <= int(info.min) and int(info.max) <= exact_up_to:
        return a.astype(want)
    with np.errstate(invalid="ignore", over="ignore"):
        converted = a.astype(want)
        inexact = converted.astype(a.dtype) != a
    if inexact.any():
        first = a[np.unravel_index(int(np.argmax(inexact)), a.shape)]
        raise UsageError(f"input {name!r}: {int(np.count_nonzero(inexact))} {a.dtype} value(s) (e.g. {int(first)}) do "
                         f"not convert exactly to {want}; give {want} values")
    return converted


def _to_integer(name: str, a: np.ndarray, want: np.dtype) -> np.ndarray:
    info = np.iinfo(want)
    lo, hi = int(a.min()), int(a.max())
    if lo < int(info.min) or hi > int(info.max):
        raise UsageError(f"input {name!r}: {a.dtype} values in [{lo}, {hi}] do not fit {want} "
                         f"[{int(info.min)}, {int(info.max)}]")
    return a.astype(want)


def _check_finite(name: str, a: np.ndarray) -> None:
    finite = np.isfinite(a)
    if finite.all():
        return
    nan = int(np.count_nonzero(np.isnan(a)))
    inf = int(a.size - np.count_nonzero(finite)) - nan
    raise UsageError(f"input {name!r}: {nan} NaN and {inf} Inf value(s) among its {a.size}; inputs must be finite "
                     "(the device has no NaN: quantization would turn them into arbitrary int8 values)")


def check_input(name: str, value: Any, spec: InputSpec | None) -> np.ndarray:
    """``value`` checked against ``spec`` (``None``: only generic checks) and cast as the run takes it.

    One :class:`UsageError` line naming the input, what was expected and what
    was given, for: non-numeric or object arrays, 0-d arrays, a rank or
    non-batch dimension other than the model's (axis 0 may hold any number of
    frames), empty arrays, integers that do not convert exactly to a float
    input (cast explicitly when they do), floats or out-of-range integers for
    an integer input, and NaN or Inf values (counted). Float arrays for a float
    input are returned as given (the run converts them); an array of exactly a
    quantized input's ``device_dtype`` passes unchanged as device values.
    """
    a = np.asarray(value)
    want = f"{spec.dtype_text()} values" if spec is not None else "numbers"
    if a.dtype.hasobject or a.dtype.kind not in "biuf":
        raise UsageError(f"input {name!r}: got {a.dtype} values, expected {want}")
    _check_shape(name, a, spec)
    if spec is not None and spec.device_dtype is not None and a.dtype == spec.device_dtype:
        return a
    real = spec.real_dtype() if spec is not None else None
    if real is None or real.kind not in "biuf":
        if a.dtype.kind == "b":
            raise UsageError(f"input {name!r}: got bool values, expected {want}")
    elif real.kind == "f":
        if a.dtype.kind in "iu":
            a = _to_float(name, a, real)
        elif a.dtype.kind != "f":
            raise UsageError(f"input {name!r}: got {a.dtype} values, expected {want}")
    elif real.kind in "iu":
        if a.dtype.kind not in "iu":
            raise UsageError(f"input {name!r}: got {a.dtype} values, expected {want} (cast them yourself to say "
                             "how to round)")
        if a.dtype != real:
            a = _to_integer(name, a, real)
    elif a.dtype.kind != "b":  # a bool input
        raise UsageError(f"input {name!r}: got {a.dtype} values, expected {want}")
    if a.dtype.kind == "f":
        _check_finite(name, a)
    return a


def check_inputs(given: Mapping[str, Any], specs: Sequence[InputSpec]) -> dict[str, np.ndarray]:
    """Every given array through :func:`check_input` with the spec of its name (generic checks without one)."""
    by_name = {s.name: s for s in specs}
    return {name: check_input(name, value, by_name.get(name)) for name, value in given.items()}
