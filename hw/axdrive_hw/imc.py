"""How a layer's weights occupy the IMC array: weight sets, ICR and SWICR.

One definition shared by the compiler (which chooses the factors and splits
layers into tasks) and the cycle model (which charges them), so the two
cannot disagree about what fits.

The array is ``imc_blocks`` blocks of ``rows x columns`` cells. A block
multiplies one input vector (its rows) by the weights in its columns; blocks
may be fed different input vectors. A convolution's im2col row has
``kh x kw x channels`` elements and its weight matrix ``out_channels``
columns.

* **ICR along x** computes ``factor`` output x positions in one pass:
  ``window`` of them side by side in the same blocks (the input rows hold the
  ``(window - 1) x stride + kw`` pixels their windows span, overlapping pixels
  shared; the weights are copied ``window`` times, each shifted by
  ``stride`` pixels), and that arrangement copied into ``copies`` disjoint
  block groups, each fed its own x positions. ``factor = window x copies``.
* **SWICR** (sub-word ICR) packs ``pack`` pixels of a layer with few real
  input channels into one PWORD, so the rows a window needs shrink by about
  ``pack``: ``kh x ceil(pixels / pack)`` PWORDs instead of ``kh x pixels``.

Neither changes a computed number, only how many passes and weight bytes the
MVM needs, which is what :class:`~axdrive_hw.cycle_model.CycleModel` charges.
"""

from __future__ import annotations

__all__ = ["ConvMapping", "conv_mapping", "output_channel_groups", "matrix_tiles", "plan_weight_sets"]

from dataclasses import dataclass

from axdrive_hw.target import MvmSpec


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def matrix_tiles(k: int, o: int, spec: MvmSpec) -> tuple[int, int]:
    """``(row tiles, column tiles)`` of a ``K x O`` weight matrix cut into ``rows x columns`` blocks."""
    return _ceil(k, spec.rows), _ceil(o, spec.columns)


@dataclass(frozen=True)
class ConvMapping:
    """One pass of a convolution on the IMC array (see the module docstring)."""

    rows: int            # IMC rows of one block group: the im2col elements one pass reads
    columns: int         # IMC columns of one block group: out_channels x window
    row_tiles: int
    column_tiles: int
    window: int          # x positions side by side in one block group
    copies: int          # block groups, each fed its own x positions
    pack: int            # pixels per PWORD (SWICR); 1 without
    replica_bytes: int   # weight bytes of one copy of the layer's matrix as the array holds it
    blocks: int          # the array's block count

    @property
    def factor(self) -> int:
        """Output x positions computed per pass."""
        return self.window * self.copies

    @property
    def tiles(self) -> int:
        """IMC blocks the pass occupies."""
        return self.row_tiles * self.column_tiles * self.copies

    @property
    def fits(self) -> bool:
        """Whether the pass fits one weight set (every replica resident at once)."""
        return self.tiles <= self.blocks

    @property
    def load_bytes(self) -> int:
        """Weight bytes loaded into the array: every replica costs its own load."""
        return self.factor * self.replica_bytes


def conv_mapping(spec: MvmSpec, pword: int, *, kh: int, kw: int, channels: int, out_channels: int, stride_w: int,
                 window: int = 1, copies: int = 1, pack: int = 1, real_channels: int | None = None) -> ConvMapping:
    """The array occupancy of a convolution pass computing ``window x copies`` x positions.

    ``channels`` is the input channel count as stored (PWORD-padded);
    ``pack > 1`` (SWICR) needs ``real_channels x pack <= pword``: the pixels'
    real channels are packed ``pack`` to a PWORD.
    """
    if min(kh, kw, channels, out_channels, stride_w, window, copies, pack) < 1:
        raise ValueError(f"IMC mapping needs positive sizes, got kh={kh} kw={kw} channels={channels} "
                         f"out_channels={out_channels} stride_w={stride_w} window={window} copies={copies} pack={pack}")
    pixels = (window - 1) * stride_w + kw
    if pack > 1:
        real = real_channels if real_channels is not None else channels
        if real * pack > pword:
            raise ValueError(f"SWICR cannot pack {pack} pixels of {real} channels into a {pword}-lane PWORD")
        rows = kh * _ceil(pixels, pack) * pword
        replica_rows = kh * _ceil(kw, pack) * pword
    else:
        rows = kh * pixels * channels
        replica_rows = kh * kw * channels
    columns = window * out_channels
    rt, ct = matrix_tiles(rows, columns, spec)
    return ConvMapping(rows, columns, rt, ct, window, copies, pack, replica_rows * out_channels, spec.imc_blocks)


def output_channel_groups(k: int, o: int, spec: MvmSpec) -> list[tuple[int, int]]:
    """Output-channel ranges, one MVM task each, so that a task's ``K x O_g`` matrix needs as few weight
    sets as the geometry allows without sharing a set with another task.

    A matrix of ``row tiles`` x ``column tiles`` that fits the array (at most ``imc_blocks`` tiles) stays
    whole. Otherwise every group takes as many whole column tiles as fit beside its row tiles
    (at least one: a matrix deeper than the array keeps several sets, its partial sums accumulating
    in the int32 accumulator inside the task). Splitting by output channels is exact: each output
    channel is computed by exactly one task from exactly the weights it had.
    """
    rt, ct = matrix_tiles(k, o, spec)
    if rt * ct <= spec.imc_blocks:
        return [(0, o)]
    per_group = max(1, spec.imc_blocks // rt) * spec.columns
    return [(o0, min(o0 + per_group, o)) for o0 in range(0, o, per_group)]


def plan_weight_sets(k: int, o: int, rows: int, columns: int, blocks: int) -> list[list[tuple[int, int, int, int]]]:
    """Split a ``(K, O)`` weight matrix into the weight sets the IMC array holds.

    The matrix is cut into ``rows x columns`` tiles (one IMC block each),
    column range by column range, and consecutive tiles are grouped
    ``blocks`` at a time; each group is one weight set, loaded into the array
    before the activations stream through it. Returns, per set, its tiles as
    ``(k0, k1, o0, o1)``.
    """
    if k <= 0 or o <= 0:
        raise ValueError(f"weight matrix must be non-empty, got K={k}, O={o}")
    tiles = [(k0, min(k0 + rows, k), o0, min(o0 + columns, o))
             for o0 in range(0, o, columns) for k0 in range(0, k, rows)]
    return [tiles[i:i + blocks] for i in range(0, len(tiles), blocks)]
