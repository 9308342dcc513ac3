"""Numba kernels of the AIPU units, one module per unit.

Every kernel is ``@njit(cache=True, nogil=True)`` so the multithread host
runtime can run cores in parallel, and casts to int64 before multiplying so
the results are the same with ``NUMBA_DISABLE_JIT=1``. Each has an
independent NumPy reference in :mod:`axdrive_hw.reference`.
"""

from axdrive_hw.kernels.dma import copy2d
from axdrive_hw.kernels.dpu import OPCODES, DpuProgramBuilder, run_dpu_program, validate_dpu_program
from axdrive_hw.kernels.dwpu import avg_pool2d, depthwise_conv2d_acc, max_pool2d, resize_nearest
from axdrive_hw.kernels.mvm import (conv2d_acc, conv2d_requant, conv_output_size, matmul_acc,
                                    matmul_weight_sets_acc, plan_weight_sets)

__all__ = ["copy2d", "OPCODES", "DpuProgramBuilder", "run_dpu_program", "validate_dpu_program", "avg_pool2d",
           "depthwise_conv2d_acc", "max_pool2d", "resize_nearest", "conv2d_acc", "conv2d_requant",
           "conv_output_size", "matmul_acc", "matmul_weight_sets_acc", "plan_weight_sets"]
