"""The graph IR every pass reads and rewrites: :class:`Graph` of :class:`Node`
and :class:`Tensor`, plus the pattern-rewrite engine in :mod:`axdrive.ir.rewrite`.

Why its own IR rather than ONNX protos: passes need typed, mutable nodes with
static shapes, quantization slots and source spans; ONNX stays the exchange
format at the edges (:mod:`axdrive.onnx_io`).
"""

from __future__ import annotations

__all__ = ["Tensor", "Node", "Graph", "DEFAULT_DOMAIN", "AXDRIVE_DOMAIN", "QParams"]

from ._graph import Graph
from ._node import AXDRIVE_DOMAIN, DEFAULT_DOMAIN, Node
from ._qparams import QParams
from ._tensor import Tensor
from .dpu import DpuProgramError, LiveInterval, VInstr, VProgram, live_intervals, max_pressure

from .cost import graph_macs, node_macs

__all__ += ["VInstr", "VProgram", "LiveInterval", "live_intervals", "max_pressure", "DpuProgramError",
            "node_macs", "graph_macs"]
