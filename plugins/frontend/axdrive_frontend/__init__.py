"""axdrive-frontend: the passes that turn an ONNX file into an optimized,
verified float IR (``graph_loaded`` ... ``graph_optimized``).

Pipeline (each pass requires what the previous provides)::

    frontend.load -> frontend.check -> frontend.shape_infer
      -> frontend.fold_constants -> frontend.eliminate_dead_code
      -> frontend.fold_batchnorm -> frontend.fuse_activations
"""

from __future__ import annotations

__all__ = ["axdrive_passes", "PASSES"]

from axdrive.passes import Pass, hookimpl

from ._import import check, load, shape_infer
from ._optimize import eliminate_dead_code, fold_batchnorm, fold_constants, fuse_activations

PASSES: list[Pass] = [load, check, shape_infer, fold_constants, eliminate_dead_code, fold_batchnorm, fuse_activations]


@hookimpl
def axdrive_passes() -> list[Pass]:
    return list(PASSES)
