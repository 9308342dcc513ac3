"""An operator application: op type, its input/output tensor names and attributes.

Nodes refer to tensors by name (as ONNX does) rather than by object, so a
rewrite replaces a node without chasing pointers, and a dump or an error
message can always name the values involved.
"""

from __future__ import annotations

__all__ = ["Node", "DEFAULT_DOMAIN", "AXDRIVE_DOMAIN"]

from dataclasses import dataclass, field
from typing import Any

DEFAULT_DOMAIN = ""  # the ONNX operator set
AXDRIVE_DOMAIN = "axdrive"  # fused operators that have no ONNX equivalent (SiLU, ...)


@dataclass
class Node:
    """One operator. ``inputs`` may contain ``""`` for an absent optional input.
    ``source`` holds the names of the ONNX nodes this node came from, so that
    errors and reports at any later stage can point back at the user's model."""

    name: str
    op: str
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)
    domain: str = DEFAULT_DOMAIN
    source: tuple[str, ...] = ()

    @property
    def qualified_op(self) -> str:
        """``op`` for ONNX operators, ``domain.op`` otherwise."""
        return f"{self.domain}.{self.op}" if self.domain else self.op

    def input(self, index: int) -> str:
        """The name of input ``index``, or ``""`` when it is absent."""
        return self.inputs[index] if index < len(self.inputs) else ""
