"""The operator registry: ``(domain, op) -> kernel``, one table for all ops.

Why a table: "is this op supported?" (asked by the importer), "run this op"
(the executor, constant folding) and the documentation of supported ops all
read the same data, so they cannot disagree.
"""

from __future__ import annotations

__all__ = ["KERNELS", "Kernel", "kernel_for", "supported_ops"]

from typing import Any, Callable

from ..errors import UnsupportedOperatorError
from ..ir import AXDRIVE_DOMAIN, DEFAULT_DOMAIN, Node
from . import _kernels_math, _kernels_nn, _kernels_qdq, _kernels_shape
from ._onnxruntime import onnxruntime_kernel, onnxruntime_knows

Kernel = Callable[[Node, list[Any], int], Any]

KERNELS: dict[tuple[str, str], Kernel] = {
    **{(DEFAULT_DOMAIN, op): fn for op, fn in _kernels_math.KERNELS.items()},
    **{(DEFAULT_DOMAIN, op): fn for op, fn in _kernels_shape.KERNELS.items()},
    **{(DEFAULT_DOMAIN, op): fn for op, fn in _kernels_nn.KERNELS.items()},
    **{(DEFAULT_DOMAIN, op): fn for op, fn in _kernels_qdq.KERNELS.items()},
    **{(AXDRIVE_DOMAIN, op): fn for op, fn in _kernels_math.AXDRIVE_KERNELS.items()},
}


def kernel_for(node: Node) -> Kernel:
    """The kernel of ``node``'s operator: the numpy kernel, else (any other standard ONNX operator) one
    that runs the node in onnxruntime; UnsupportedOperatorError naming the node if neither."""
    domain = "" if node.domain == "ai.onnx" else node.domain
    fn = KERNELS.get((domain, node.op))
    if fn is None and onnxruntime_knows(node.op, domain):
        return onnxruntime_kernel  # an operator of ONNX without a numpy kernel here: onnxruntime runs it
    if fn is None:
        where = f" (domain {node.domain!r})" if node.domain else ""
        raise UnsupportedOperatorError(f"operator {node.op!r}{where} is not supported by the reference executor",
                                       node=node.name)
    return fn


def supported_ops(domain: str = DEFAULT_DOMAIN) -> list[str]:
    """Sorted op types the executor implements in ``domain``."""
    return sorted(op for d, op in KERNELS if d == domain)
