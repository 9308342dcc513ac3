"""How closely onnxruntime, running the QDQ model, matches the integer reference.

Why measure it in every compile: the QDQ model is what users check accuracy
with, and the integer reference is what the hardware computes. They cannot be
bit-identical (onnxruntime requantizes in float32 and rounds half to even;
the AIPU uses an int32 multiplier and rounds half up) but they must agree to
within one LSB almost everywhere; the report states the exact figure.
"""

from __future__ import annotations

__all__ = ["quantize_feeds", "ort_agreement"]

from typing import Any

import numpy as np

from axdrive.ir import Graph
from axdrive.reference import run_integer


def quantize_feeds(qgraph: Graph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Float feeds onto the int8 grids of ``qgraph``'s inputs (QuantizeLinear semantics)."""
    return {name: qgraph.tensors[name].qparams.quantize(feeds[name]) for name in qgraph.inputs}


def ort_agreement(qgraph: Graph, qdq_model: Any, feeds_int8: dict[str, np.ndarray]) -> dict[str, Any]:
    """Compare onnxruntime (CPU, default optimizations) on ``qdq_model`` with
    :func:`run_integer` on ``qgraph``; both take and return int8."""
    import onnxruntime as ort

    session = ort.InferenceSession(qdq_model.SerializeToString(deterministic=True),
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    theirs = dict(zip(names, session.run(names, feeds_int8)))
    ours = run_integer(qgraph, feeds_int8)
    total = within = exact = 0
    worst = 0
    for name in qgraph.outputs:
        diff = np.abs(ours[name].astype(np.int64) - np.asarray(theirs[name]).astype(np.int64))
        total += diff.size
        within += int((diff <= 1).sum())
        exact += int((diff == 0).sum())
        worst = max(worst, int(diff.max(initial=0)))
    return {"ort_agreement_1lsb": within / max(total, 1), "ort_agreement_exact": exact / max(total, 1),
            "ort_max_abs_diff_lsb": worst, "ort_compared_elements": total}
