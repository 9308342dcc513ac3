"""A value in the graph: name, static shape, dtype, and data if it is a constant.

Why static shapes only: every later stage (quantization, tiling, memory
planning) sizes buffers from them, so the importer resolves every dimension
once, up front, and the IR never carries a symbolic one.
"""

from __future__ import annotations

__all__ = ["Tensor"]

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Tensor:
    """One named tensor. ``data`` is set for constants (initializers, folded
    values) and ``None`` for values computed at run time. ``qparams`` is the
    slot the quantizer fills (scale, zero point); ``None`` in a float graph."""

    name: str
    shape: tuple[int, ...] | None
    dtype: np.dtype | None
    data: np.ndarray | None = None
    qparams: Any = None

    def __post_init__(self) -> None:
        if self.dtype is not None:
            self.dtype = np.dtype(self.dtype)
        if self.shape is not None:
            self.shape = tuple(int(d) for d in self.shape)

    @classmethod
    def constant(cls, name: str, value: np.ndarray) -> "Tensor":
        """A constant whose shape and dtype are those of ``value``."""
        array = np.asarray(value)
        return cls(name, array.shape, array.dtype, array)

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        """Number of elements (requires a static shape)."""
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape is not None else 0

    def describe(self) -> str:
        """``float32[1,3,48,192]``: the compact form used in dumps and errors."""
        dtype = self.dtype.name if self.dtype is not None else "?"
        dims = ",".join(str(d) for d in self.shape) if self.shape is not None else "?"
        return f"{dtype}[{dims}]"
