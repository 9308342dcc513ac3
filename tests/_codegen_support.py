"""Helpers of the code-generator tests, shared by the lowering, ICR and data-movement test modules:
random toy weights, a toy ONNX model with input ``x``, its calibration samples, a default compile without
the graph cleaner, and the bit-exactness check against the integer reference (a uniquely named module:
several test folders have a ``conftest``)."""

from __future__ import annotations

import numpy as np

from _toy_models import toy_model

from axdrive import driver
from axdrive.config import CompilerConfig
from axdrive.reference import run_integer
from axdrive.runner import dequantize, execute

__all__ = ["RNG", "_w", "_model", "_calibration", "int8_core", "lower", "assert_bit_exact"]

RNG = np.random.default_rng(7)


def _w(*shape, scale=0.3):
    return RNG.normal(0, scale, shape).astype(np.float32)


def _model(nodes, x_shape, outputs, inits, opset=17):
    return toy_model(nodes, inits, x_shape=x_shape, outputs=tuple(outputs), opset=opset, name="toy")


def int8_core(model, tmp_path, shape=(1, 3, 8, 8)):
    """The quantized core of ``model`` (input ``x`` of ``shape``) with int8 I/O and no host parts, calibrated
    on 4 random samples: what the lowering rewrites start from."""
    cfg = CompilerConfig()
    cfg.compiler_mode = "quantize_only"
    cfg.run_graph_cleaner = False
    cfg.remove_io_quantization = True
    cal = {"x": np.random.default_rng(0).uniform(-1, 1, (4, *shape[1:])).astype(np.float32)}
    return driver.compile(model, cfg, output_dir=tmp_path / "q", calibration=cal).graph


def _calibration(model, n=2, seed=0):
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    return {"x": np.random.default_rng(seed).uniform(-1, 1, (n, *shape[1:])).astype(np.float32)}


def lower(model, tmp_path, name="out", **props):
    cfg = CompilerConfig()
    cfg.run_graph_cleaner = False
    for k, v in props.items():
        setattr(cfg, k, v)
    return driver.compile(model, cfg, output_dir=tmp_path / name, calibration=_calibration(model))


def assert_bit_exact(result, model, seed=1):
    """The device's outputs equal run_integer on the quantized core for a fresh input."""
    from axdrive_quantizer import QUANTIZED_CORE

    core = result.session.stash[QUANTIZED_CORE]
    x = _calibration(model, n=1, seed=seed)["x"]
    qp = core.tensors["x"].qparams
    qx = np.clip(np.rint(x / float(qp.scale)) + int(qp.zero_point), -128, 127).astype(np.int8)
    ref = run_integer(core, {"x": qx})
    got = execute(result.output_dir, {"x": x}, core_only=True).core_outputs
    for name, value in ref.items():
        q = core.tensors[name].qparams
        want = dequantize(value, {"scale": float(q.scale), "zero_point": int(q.zero_point)})
        np.testing.assert_array_equal(got[name], want, err_msg=name)
