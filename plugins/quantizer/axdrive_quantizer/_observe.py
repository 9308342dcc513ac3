"""Activation statistics, collected in one vectorised sweep per calibration batch.

Why a growable histogram: the range of a tensor is only known after the
last batch, yet the float executor should run once per batch. The histogram
covers ``[-R, R]`` with ``R`` a power of two; when a batch exceeds it, ``R``
doubles and adjacent bins merge pairwise (exact: the old edges are a subset of
the new ones), so one pass per batch suffices and no sample is kept.
"""

from __future__ import annotations

__all__ = ["NBINS", "Histogram", "TensorStats", "Observer"]

import math
from dataclasses import dataclass, field

import numpy as np

#: Bins of every histogram (even: 0 is an edge, so a post-Relu range can start exactly at 0).
NBINS = 2048


@dataclass
class Histogram:
    """Counts over ``[-radius, radius]`` in ``NBINS`` bins; ``counts`` is ``(NBINS,)``
    or ``(C, NBINS)`` for a per-channel histogram."""

    counts: np.ndarray
    radius: float

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(-self.radius, self.radius, NBINS + 1)

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
        of its width (a value that close to an edge may land in the neighbour)."""
        self._grow(float(np.abs(x).max(initial=0.0)) if amax is None else amax)
        dtype = np.float32 if x.dtype == np.float32 else np.float64
        width = 2.0 * self.radius / NBINS
        t = np.multiply(x, dtype(1.0 / width), dtype=dtype)
        t += dtype(self.radius / width)
        np.floor(t, out=t)
        np.clip(t, 0, NBINS - 1, out=t)
        idx = t.astype(np.intp)
        if self.counts.ndim == 1:
            self.counts += np.bincount(idx.ravel(), minlength=NBINS)
        else:
            channels = idx.shape[0]
            idx += (np.arange(channels, dtype=np.intp) * NBINS)[:, None]
            self.counts += np.bincount(idx.ravel(), minlength=channels * NBINS).reshape(channels, NBINS)


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
    statistics per channel of axis 1; ``histograms`` switches histogram collection."""

    names: list[str]
    per_channel: set[str] = field(default_factory=set)
    histograms: bool = True
    stats: dict[str, TensorStats] = field(default_factory=dict)

    def update(self, values: dict[str, np.ndarray]) -> None:
        """Fold one batch of activations (name -> array with the batch on axis 0) in."""
        for name in self.names:
            x = values.get(name)
            if x is None or np.asarray(x).dtype.kind != "f":
                continue
            x = np.asarray(x)
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
