"""axdrive-frontend: the passes that turn an ONNX file into an optimized,
verified float IR (``graph_loaded`` ... ``graph_optimized``).

Pipeline (each top-level pass requires what the previous provides)::

    frontend.load -> frontend.check -> frontend.shape_infer
      -> frontend.optimize [fold_constants, eliminate_dead_code, fold_batchnorm, fuse_activations]

``PASSES`` lists the leaf passes in execution order (handy for tests that run
them one by one); the plugin contributes the three import passes and the group.
"""

from __future__ import annotations

__all__ = ["axdrive_passes", "PASSES"]

from axdrive.passes import Pass, hookimpl

from ._import import check, load, shape_infer
from ._optimize import eliminate_dead_code, fold_batchnorm, fold_constants, fuse_activations, optimize

PASSES: list[Pass] = [load, check, shape_infer, fold_constants, eliminate_dead_code, fold_batchnorm, fuse_activations]


@hookimpl
def axdrive_passes() -> list[Pass]:
    return [load, check, shape_infer, optimize]
