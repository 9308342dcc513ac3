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


@hookimpl
def axdrive_promises(config: object) -> tuple[str, ...]:
    """Every compile starts from a loaded, optimized graph."""
    return ("graph_loaded", "graph_optimized")


@hookimpl
def axdrive_operators() -> list:
    """The operators the frontend's rewrites replace before quantization (``rewrite`` rules of the registry)."""
    from axdrive.operators import OperatorRule

    return [
        OperatorRule("BatchNormalization", "rewrite", "folded into the preceding Conv, else a per-channel Mul + "
                        "Add (frontend.fold_batchnorm)", ("inference mode", "constant scale, bias, mean, variance")),
        OperatorRule("Identity", "rewrite", "removed (frontend.eliminate_dead_code)"),
        OperatorRule("Dropout", "rewrite", "removed (frontend.eliminate_dead_code)", ("its mask unused",)),
        OperatorRule("Constant", "rewrite", "folded into a constant tensor (frontend.fold_constants)"),
        *(OperatorRule(op, "rewrite", "folded when its input's shape is static (frontend.fold_constants)")
          for op in ("Shape", "Size")),
    ]
