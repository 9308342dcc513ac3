"""Activation statistics, collected in one vectorised sweep per calibration batch.

Why a growable histogram: the range of a tensor is only known after the
last batch, yet the float executor should run once per batch. The histogram
covers ``[-R, R]`` with ``R`` a power of two; when a batch exceeds it, ``R``
doubles and adjacent bins merge pairwise (exact: the old edges are a subset of
the new ones), so one pass per batch suffices and no sample is kept.
"""

from __future__ import annotations

__all__ = ["NBINS", "bin_edges", "Histogram", "TensorStats", "Observer"]

import math
from dataclasses import dataclass, field

import numpy as np

#: Bins of every histogram (even: 0 is an edge, so a post-Relu range can start exactly at 0).
NBINS = 2048


def bin_edges(radius: float) -> np.ndarray:
    """The ``NBINS + 1`` edges of a histogram over ``[-radius, radius]``."""
    return np.linspace(-radius, radius, NBINS + 1)


@dataclass
class Histogram:
    """Counts over ``[-radius, radius]`` in ``NBINS`` bins; ``counts`` is ``(NBINS,)``
    or ``(C, NBINS)`` for a per-channel histogram."""

    counts: np.ndarray
    radius: float

    @property
    def edges(self) -> np.ndarray:
        return bin_edges(self.radius)

    def _grow(self, amax: float) -> None:
        while amax > self.radius:
            half = self.counts.reshape(*self.counts.shape[:-1], NBINS // 2, 2).sum(-1)
            pad = [(0, 0)] * (half.ndim - 1) + [(NBINS // 4, NBINS // 4)]
            self.counts = np.pad(half, pad)
            self.radius *= 2.0

    @classmethod
    def start(cls, amax: float, channels: int | None) -> "Histogram":
        radius = 2.0 ** math.ceil(math.log2(max(amax, 2.0 ** -24)))
        shape = (NBINS,) if channels is None else (channels, NBINS)
        return cls(np.zeros(shape, np.int64), radius)

    def add(self, x: np.ndarray, amax: float | None = None) -> None:
        """``x`` is flat for a per-tensor histogram, ``(C, n)`` per channel; ``amax``
        (``max |x|``, if the caller knows it) saves a pass over ``x``.

        Bin indices are computed in float32 for float32 data, in place: the
        histogram is the second largest cost of calibration after the float
        run itself, and float32 resolves a bin of a 2048-bin grid to about 1e-4
        of its width (a value that close to an edge may land in the neighbour).

        Why no floor and no clip: ``1 / width`` is a power of two and
        ``|x| <= radius``, so ``t = x / width + radius / width`` is exactly
        ``>= 0`` and the integer cast (truncation) is the floor; the one index
        past the last bin (``t == NBINS``, ``x`` at the top edge) is counted in
        an extra bin and folded into the last one, which is what clipping did."""
        self._grow(float(np.abs(x).max(initial=0.0)) if amax is None else amax)
        dtype = np.float32 if x.dtype == np.float32 else np.float64
        width = 2.0 * self.radius / NBINS
        t = np.multiply(x, dtype(1.0 / width), dtype=dtype)
        t += dtype(self.radius / width)
        idx = t.astype(np.int32)  # numpy casts float32 to int32 several times faster than to int64
        del t
        if self.counts.ndim == 1:
            self.counts += _fold_top(np.bincount(idx.ravel(), minlength=NBINS + 1))
        else:
            channels = idx.shape[0]
            idx += (np.arange(channels, dtype=np.int32) * (NBINS + 1))[:, None]
            counts = np.bincount(idx.ravel(), minlength=channels * (NBINS + 1))
            self.counts += _fold_top(counts.reshape(channels, NBINS + 1))


def _fold_top(counts: np.ndarray) -> np.ndarray:
    """``(..., NBINS + 1)`` bin counts -> ``(..., NBINS)``: the top edge belongs to the last bin."""
    if counts.shape[-1] != NBINS + 1:
        raise ValueError(f"histogram index {counts.shape[-1] - 1} out of range: a value beyond the radius")
    out = counts[..., :NBINS].copy()
    out[..., NBINS - 1] += counts[..., NBINS]
    return out


@dataclass
class TensorStats:
    """What calibration knows about one float activation."""

    minimum: float = math.inf
    maximum: float = -math.inf
    channel_min: np.ndarray | None = None  # per channel (axis 1), when asked for
    channel_max: np.ndarray | None = None
    histogram: Histogram | None = None
    channel_histogram: Histogram | None = None
    samples: int = 0


@dataclass
class Observer:
    """Accumulates :class:`TensorStats` for ``names``; ``per_channel`` names also get
    statistics per channel of axis 1; ``histograms`` switches histogram collection.

    Values come in either a whole batch at a time (:meth:`update`) or one
    tensor at a time (:meth:`fold`, the float executor's ``on_value``
    callback, used by calibration so each activation is folded in while it is
    still in cache and need not be kept). Either way each tensor's statistics
    see its batches in the same order, so the results are the same."""

    names: list[str]
    per_channel: set[str] = field(default_factory=set)
    histograms: bool = True
    stats: dict[str, TensorStats] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._wanted = set(self.names)

    def update(self, values: dict[str, np.ndarray]) -> None:
        """Fold one batch of activations (name -> array with the batch on axis 0) in."""
        for name in self.names:
            x = values.get(name)
            if x is not None:
                self.fold(name, x)

    def reset(self) -> None:
        """Forget everything folded in (a batched run that turned out not to work)."""
        self.stats.clear()

    def fold(self, name: str, x: np.ndarray) -> None:
        """Fold one batch of tensor ``name`` (batch on axis 0) in; ignores names not
        observed and non-float values."""
        if name not in self._wanted:
            return
        x = np.asarray(x)
        if x.dtype.kind != "f":
            return
        st = self.stats.setdefault(name, TensorStats())
        st.samples += int(x.shape[0]) if x.ndim else 1
        lo, hi = float(x.min(initial=math.inf)), float(x.max(initial=-math.inf))
        st.minimum = min(st.minimum, lo)
        st.maximum = max(st.maximum, hi)
        if self.histograms and x.size:
            if st.histogram is None:
                st.histogram = Histogram.start(max(abs(st.minimum), abs(st.maximum)), None)
            st.histogram.add(x.ravel(), max(abs(lo), abs(hi)))
        if name in self.per_channel and x.ndim >= 2:
            per = np.moveaxis(x, 1, 0).reshape(x.shape[1], -1)
            lo, hi = per.min(axis=1), per.max(axis=1)
            st.channel_min = lo if st.channel_min is None else np.minimum(st.channel_min, lo)
            st.channel_max = hi if st.channel_max is None else np.maximum(st.channel_max, hi)
            if self.histograms:
                if st.channel_histogram is None:
                    st.channel_histogram = Histogram.start(float(np.abs(per).max(initial=0.0)), per.shape[0])
                st.channel_histogram.add(per)
