"""DMA kernel: a 2-D strided byte copy between (or within) memories."""

from __future__ import annotations

__all__ = ["copy2d", "copy2d_many"]

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def copy2d(src: np.ndarray, src_offset: int, src_stride: int, dst: np.ndarray, dst_offset: int,
           dst_stride: int, rows: int, row_bytes: int) -> None:
    """Copy ``rows`` rows of ``row_bytes`` bytes; row ``r`` starts at ``offset + r * stride``.

    Channel slices of NHWC tensors (concat, channel tiles) and height tiles are
    both a single 2-D copy. Source and destination must not overlap.
    """
    same = src.ctypes.data == dst.ctypes.data
    for r in range(rows):
        s = src_offset + r * src_stride
        d = dst_offset + r * dst_stride
        if same and s < d + row_bytes and d < s + row_bytes:
            # overlapping bytes of one array: byte by byte, front to back
            for i in range(row_bytes):
                dst[d + i] = src[s + i]
        else:
            # a row through two views and an index loop: LLVM turns it into a block copy (about 40 GB/s
            # here); a slice assignment checks for overlap and copies byte by byte (about 3 GB/s)
            dv = dst[d:d + row_bytes]
            sv = src[s:s + row_bytes]
            for i in range(row_bytes):
                dv[i] = sv[i]


@njit(cache=True, nogil=True)
def copy2d_many(mem: np.ndarray, desc: np.ndarray) -> None:
    """Run a sequence of :func:`copy2d` within one array, in order.

    ``desc`` is ``(n, 6)`` int64 rows ``(src_offset, src_stride, dst_offset,
    dst_stride, rows, row_bytes)``. A replayed program keeps all its buffers
    in one array, so the DMA tasks between two compute tasks are one call
    here instead of one Python-level call each (a YOLOv8n run has ~900).
    """
    for t in range(desc.shape[0]):
        copy2d(mem, desc[t, 0], desc[t, 1], mem, desc[t, 2], desc[t, 3], desc[t, 4], desc[t, 5])
