"""ONNX operators: what each one is, and what axdrive's plugins do with it.

- :mod:`._classes`: properties of the operators themselves (multiply-accumulates, moves, views).
- :mod:`._registry`: the :class:`OperatorRegistry` of :class:`OperatorRule` entries that plugins register
  through the ``axdrive_operators`` hook (int8 kernels, AIPU mappings, rewrites), and the questions the
  compiler asks of it.
- :mod:`._report`: the supported-operators report (``axdrive ops``, ``docs/supported-operators.md``).
"""

from ._classes import MAC_OPS, MOVE_OPS, VIEW_OPS
from ._registry import (EVERY_OP, HEAD_UNITS, ROLES, UNITS, Check, Constraint, OperatorRegistry, OperatorRule,
                        build_registry)
from ._report import every_node, format_report, operator_report

__all__ = ["MAC_OPS", "MOVE_OPS", "VIEW_OPS", "Check", "Constraint", "OperatorRule", "OperatorRegistry",
           "build_registry", "EVERY_OP", "HEAD_UNITS", "ROLES", "UNITS", "operator_report", "format_report",
           "every_node"]
