"""What an ONNX operator *is*, stated once for every stage that asks.

These are properties of the ONNX operators themselves (does it multiply
against a weight, does it only move values), not of any back end: the cost
model counts MACs with them, the graph cleaner seeds its search with them, the
quantizer keeps a move's grid. How a unit runs an operator is a rule in the
:class:`~axdrive.operators.OperatorRegistry`, registered by the plugin that
lowers it.
"""

from __future__ import annotations

__all__ = ["MAC_OPS", "MOVE_OPS", "VIEW_OPS"]

#: Multiply-accumulates against a weight operand (input 1): the work the MVM does, what MAC counts measure,
#: where the graph cleaner's tail search starts, what the quantizer requantizes per output channel.
MAC_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
#: Operators that only move or select values (every output element is some input element, or padding): their
#: int8 output keeps the input's grid, and on the AIPU they are DMA copies, views or unit moves.
MOVE_OPS = frozenset({"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Slice", "Split", "Gather",
                      "MaxPool", "GlobalMaxPool", "Identity", "Dropout", "DepthToSpace", "SpaceToDepth",
                      "Resize", "Pad", "Tile", "Expand"})
#: Moves that keep the elements in memory order: a new shape over the same bytes (no copy when the layout allows).
VIEW_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"})
