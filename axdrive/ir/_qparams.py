"""Quantization parameters of one tensor: what an int8 (or int32) value means in reals.

Why a small dataclass in the core rather than a dict in a plugin: the
quantizer writes it, and the integer reference executor, the quantized-graph
export, the manifest and the lowering passes all read it, so its shape is a
contract between distributions. ``real = scale * (q - zero_point)``; with
``axis`` set, ``scale`` and ``zero_point`` hold one entry per index of that
axis (per-channel), else they are 0-d arrays (per-tensor).
"""

from __future__ import annotations

__all__ = ["QParams"]

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..numerics import QMAX, QMIN


@dataclass(frozen=True, eq=False)
class QParams:
    """``scale`` (float64, > 0), ``zero_point`` (int64) and the channel ``axis``
    (``None`` for per-tensor). ``dtype`` is the integer type of the values."""

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None = None
    dtype: str = "int8"

    def __post_init__(self) -> None:
        scale = np.asarray(self.scale, dtype=np.float64)
        zp = np.asarray(self.zero_point, dtype=np.int64)
        if zp.shape != scale.shape:
            zp = np.broadcast_to(zp, scale.shape).copy()
        if self.axis is None and scale.ndim != 0:
            raise ValueError(f"per-tensor qparams need a scalar scale, got shape {scale.shape}")
        if self.axis is not None and scale.ndim != 1:
            raise ValueError(f"per-channel qparams need a 1-D scale, got shape {scale.shape}")
        if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            raise ValueError(f"quantization scale must be positive and finite, got {scale.tolist()}")
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "zero_point", zp)

    @classmethod
    def per_tensor(cls, scale: float, zero_point: int = 0, dtype: str = "int8") -> "QParams":
        return cls(np.asarray(scale, np.float64), np.asarray(zero_point, np.int64), None, dtype)

    @property
    def per_channel(self) -> bool:
        return self.axis is not None

    def broadcast(self, ndim: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scale, zero_point)`` reshaped to broadcast against an ``ndim``-D tensor."""
        if self.axis is None:
            return self.scale, self.zero_point
        shape = [1] * ndim
        shape[self.axis % ndim] = -1
        return self.scale.reshape(shape), self.zero_point.reshape(shape)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Real values onto this int8 grid: round half to even, then saturate (QuantizeLinear semantics)."""
        x = np.asarray(x, np.float64)
        scale, zp = self.broadcast(x.ndim)
        return np.clip(np.rint(x / scale) + zp, QMIN, QMAX).astype(np.int8)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """Real values of integer ``q`` (float64)."""
        q = np.asarray(q)
        scale, zp = self.broadcast(q.ndim)
        return (q.astype(np.float64) - zp) * scale

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form (lists for per-channel values); used by the manifest and exports."""
        return {"scale": self.scale.tolist(), "zero_point": self.zero_point.tolist(), "axis": self.axis,
                "dtype": self.dtype}

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, QParams) and self.axis == other.axis and self.dtype == other.dtype
                and np.array_equal(self.scale, other.scale) and np.array_equal(self.zero_point, other.zero_point))

    __hash__ = None  # type: ignore[assignment]
