"""numpy executors: the float ground truth (:func:`run_float`).

Every operator is a kernel in one registry (:data:`KERNELS`, keyed by
``(domain, op)``); the importer uses the same table to reject operators
nothing downstream could run.
"""

from __future__ import annotations

__all__ = ["run_float", "run_node", "KERNELS", "kernel_for", "supported_ops", "run_integer"]

from ._executor import run_float, run_node
from ._registry import KERNELS, kernel_for, supported_ops
from .integer import run_integer  # the integer oracle (quantized graphs), see integer.py
