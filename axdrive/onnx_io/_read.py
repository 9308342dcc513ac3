"""Reading a model file safely: parse, external data, opset and domain checks.

Why separate from the conversion: everything here is about *trusting* the
input (a truncated download, a file that is not ONNX, external data that
points outside the model's folder, an opset we cannot read). Each problem is
reported as one line naming the file and, where there is one, the node.
"""

from __future__ import annotations

__all__ = ["read_model", "default_opset", "supported_max_opset", "MIN_OPSET", "MAX_OPSET"]

import os
from pathlib import Path
from typing import Any

import onnx
from google.protobuf.message import DecodeError
from onnx import ModelProto
from onnx.external_data_helper import ExternalDataInfo, _get_all_tensors, load_external_data_for_model, uses_external_data

from ..errors import ModelError, UnsupportedOperatorError
from ..reference import KERNELS

MIN_OPSET = 11
#: The newest default-domain opset read: what onnx 1.23 defines and onnxruntime 1.32 loads
#: (a model at 29 is refused by onnxruntime's model check). Every kernel follows the
#: semantics of 11..28; ``supported_max_opset()`` lowers it to an older installed onnx's.
MAX_OPSET = 28
_DEFAULT_DOMAINS = ("", "ai.onnx")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_model(source: Any) -> tuple[ModelProto, str, Path | None]:
    """Parse ``source`` (a path or a ModelProto, which is copied) into a
    checked ModelProto with external data loaded and the default-domain opset
    in MIN_OPSET..MAX_OPSET. Returns ``(model, label, folder)``; ``label``
    names the file in error messages."""
    if isinstance(source, ModelProto):
        model = ModelProto()
        model.CopyFrom(source)
        label, folder = f"<model {model.graph.name or 'unnamed'}>", None
    else:
        path = Path(os.fspath(source))
        label, folder = str(path), path.parent
        if not path.is_file():
            raise ModelError("model file does not exist", file=label)
        model = ModelProto()
        try:
            model.ParseFromString(path.read_bytes())
        except (DecodeError, ValueError, RuntimeError) as exc:
            raise ModelError(f"not a valid ONNX model (cannot be parsed: {_first_line(exc)})", file=label) from exc
    if model.ir_version <= 0 or not model.HasField("graph") or not model.graph.node:
        raise ModelError("not a valid ONNX model (no IR version or no graph nodes)", file=label)
    _load_external_data(model, label, folder)
    _check_domains_and_ops(model, label, ops=False)
    model = _upgrade_opset(model, label)
    _check_domains_and_ops(model, label, ops=True)
    return model, label, folder


def _load_external_data(model: ModelProto, label: str, folder: Path | None) -> None:
    """Load tensors stored in side files, only from inside the model's folder."""
    external = [t for t in _get_all_tensors(model) if uses_external_data(t)]
    if not external:
        return
    if folder is None:
        raise ModelError(f"tensor {external[0].name!r} uses external data; load the model from its file path",
                         file=label)
    root = folder.resolve()
    for tensor in external:
        info = ExternalDataInfo(tensor)
        location = info.location
        target = (root / location).resolve()
        if os.path.isabs(location) or not target.is_relative_to(root):
            raise ModelError(f"external data {location!r} of tensor {tensor.name!r} is outside the model's "
                             f"directory {str(root)!r}; refusing to read it", file=label)
        if not target.is_file():
            raise ModelError(f"external data file {location!r} of tensor {tensor.name!r} does not exist", file=label)
        size = target.stat().st_size
        if info.length and (info.offset or 0) + info.length > size:
            raise ModelError(f"external data file {location!r} is too short for tensor {tensor.name!r} "
                             f"(needs {(info.offset or 0) + info.length} bytes, has {size})", file=label)
    try:
        load_external_data_for_model(model, str(root))
    except Exception as exc:
        raise ModelError(f"cannot load external data: {_first_line(exc)}", file=label) from exc


def _check_domains_and_ops(model: ModelProto, label: str, *, ops: bool) -> None:
    for i, node in enumerate(model.graph.node):
        name = node.name or f"{node.op_type}_{i}"
        if node.domain not in _DEFAULT_DOMAINS:
            raise UnsupportedOperatorError(f"operator {node.op_type!r} of domain {node.domain!r} is not supported "
                                           "(only the default ONNX domain is)", file=label, node=name)
        # an ONNX operator without a numpy kernel is run by onnxruntime (axdrive.reference._onnxruntime)
        if ops and ("", node.op_type) not in KERNELS and not onnx.defs.has(node.op_type):
            raise UnsupportedOperatorError(f"operator {node.op_type!r} is not an ONNX operator", file=label, node=name)


def default_opset(model: ModelProto) -> int | None:
    for entry in model.opset_import:
        if entry.domain in _DEFAULT_DOMAINS:
            return int(entry.version)
    return None


def supported_max_opset() -> int:
    """MAX_OPSET, or the installed onnx package's newest opset if that is older (onnx's
    checker and shape inference cannot read a newer one)."""
    return min(MAX_OPSET, onnx.defs.onnx_opset_version())


def _upgrade_opset(model: ModelProto, label: str) -> ModelProto:
    version = default_opset(model)
    if version is None:
        raise ModelError("the model imports no version of the default ONNX opset", file=label)
    newest = supported_max_opset()
    if version > newest:
        why = "" if newest == MAX_OPSET else f" (the installed onnx {onnx.__version__} reads up to opset {newest})"
        raise ModelError(f"opset {version} is newer than the supported opsets {MIN_OPSET}..{newest}{why}", file=label)
    if version >= MIN_OPSET:
        return model
    from onnx import version_converter

    try:
        upgraded = version_converter.convert_version(model, MIN_OPSET)
    except Exception as exc:
        raise ModelError(f"cannot upgrade opset {version} to {MIN_OPSET}: {_first_line(exc)}", file=label) from exc
    return upgraded
