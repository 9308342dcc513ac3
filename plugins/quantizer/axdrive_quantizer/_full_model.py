"""``quantized_full_model.onnx``: the whole quantized model in one file that onnxruntime runs as is.

``quantized_model.onnx`` is the integer core (QDQ, float inputs and outputs);
the host parts the graph cleaner split off are files of their own, and a
model with a host node in the middle has several cores. For accuracy checks
on the CPU a user wants the original model's inputs and outputs in one file:
this joins the chain of ``manifest.json`` ``parts`` (host parts in float, each
device segment's QDQ model) by tensor name (:func:`axdrive.onnx_io.chain_models`).
Written when the compile ends, because the chain is complete only once every
device segment has been quantized; a host part at another opset than the
cores is converted to theirs first (``onnx.version_converter``).
"""

from __future__ import annotations

__all__ = ["FULL_MODEL", "write_full_model"]

from typing import Any

FULL_MODEL = "quantized_full_model.onnx"
_CORE = "quantized_model.onnx"


def write_full_model(session: Any) -> str | None:
    """Stage :data:`FULL_MODEL` for a compile whose chain is complete. Returns ``None`` when it was written
    or when there is nothing to join (no chain, or a part not written: the compile stopped early); otherwise
    why the chain could not be joined (a warning for the compile report)."""
    import onnx
    from onnx import version_converter

    from axdrive.errors import ModelError
    from axdrive.onnx_io import chain_models

    stage = session.artifacts
    if stage is None or not session.parts or not session.model_outputs:
        return None
    loaded: list[tuple[dict[str, Any], Any]] = []
    for part in session.parts:
        name = part["file"] if part["kind"] == "host" else str(part.get("prefix", "")) + _CORE
        try:
            loaded.append((part, onnx.load(str(stage.staged(name)))))
        except KeyError:  # the compile stopped before that part was written
            return None
    opset = max((next((i.version for i in m.opset_import if i.domain in ("", "ai.onnx")), 0)
                 for p, m in loaded if p["kind"] == "device"), default=0)
    models = []
    for part, model in loaded:
        current = next((i.version for i in model.opset_import if i.domain in ("", "ai.onnx")), opset)
        if part["kind"] == "host" and opset and current != opset:
            try:
                model = version_converter.convert_version(model, opset)
            except Exception as exc:  # noqa: BLE001 - the converter raises its own types
                return f"{part['file']} (opset {current}) does not convert to opset {opset}: {str(exc).splitlines()[0]}"
        models.append((part["name"], model))
    try:
        merged = chain_models(models, None, session.model_outputs,
                              name=f"{session.graph.name if session.graph is not None else 'model'}_quantized_full")
    except ModelError as exc:
        return str(exc)
    stage.for_writer("quantizer (the joined chain)").write_onnx(FULL_MODEL, merged)
    return None
