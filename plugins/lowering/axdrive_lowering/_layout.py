"""How an IR tensor sits in AIPU memory: NHWC, channels innermost.

The IR keeps ONNX's NCHW shapes (so :func:`axdrive.reference.run_integer`
runs every stage of the lowering); the device stores the same values
channels-innermost, one PWORD-aligned row of channels per pixel. A 2-D
``(N, C)`` tensor is a ``1 x 1`` feature map. Two IR shapes with the same
device shape are the same bytes, which is what makes a Reshape between them
free.
"""

from __future__ import annotations

__all__ = ["device_shape", "PWORD", "padded"]

from typing import Sequence

PWORD = 64


def padded(channels: int, pword: int = PWORD) -> int:
    """``channels`` rounded up to a whole number of PWORDs."""
    return -(-int(channels) // pword) * pword


def device_shape(shape: Sequence[int]) -> tuple[int, int, int, int] | None:
    """``(N, H, W, C)`` of an NCHW (rank 4) or NC (rank 2) IR shape; ``None`` for any other rank."""
    s = tuple(int(d) for d in shape)
    if len(s) == 4:
        return (s[0], s[2], s[3], s[1])
    if len(s) == 2:
        return (s[0], 1, 1, s[1])
    return None
