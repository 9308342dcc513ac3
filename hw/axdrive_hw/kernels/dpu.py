"""DPU: a vector processor on PWORD lanes, and its program interpreter.

A DPU program is data: an int32 array of shape ``(n, 6)``, one instruction per
row ``[opcode, dst, a, b, imm0, imm1]``. It is run once per chunk of ``lanes``
consecutive elements of the task's input streams (all streams have the same
element count ``E``; element ``e`` belongs to channel ``e % channels``).

Registers: ``registers`` (16) vector registers of int32 lanes. Every
arithmetic result is computed in int64 and **saturated** to int32.

======  ============  ===================================================
code    mnemonic      semantics (``r`` = registers, per lane)
======  ============  ===================================================
0       nop
1       load          ``r[dst] = input[imm0]``
2       store         ``output[imm0] = r[a]``; imm1=1 saturates to int8
3       add           ``r[dst] = r[a] + r[b]``
4       sub           ``r[dst] = r[a] - r[b]``
5       mul           ``r[dst] = r[a] * r[b]``
6       addi          ``r[dst] = r[a] + imm0``
7       muli          ``r[dst] = r[a] * imm0``
8       shift_round   ``r[dst] = (r[a] + 2**(s-1)) >> s``, s=clamp(imm0,-31,62); s<=0: ``sat32(r[a]) << -s``
9       clamp         ``r[dst] = clamp(r[a], imm0, imm1)``
10      min           ``r[dst] = min(r[a], r[b])``
11      max           ``r[dst] = max(r[a], r[b])``
12      select        ``r[dst] = r[imm0] != 0 ? r[a] : r[b]``
13      cmpgt         ``r[dst] = r[a] > r[b]`` (1 or 0)
14      lut           ``r[dst] = luts[imm0][clamp(r[a], -128, 127) + 128]``
15      movi          ``r[dst] = imm0``
16      spill_store   ``slot[imm0] = r[a]`` (L1 spill slot)
17      spill_load    ``r[dst] = slot[imm0]``
18      loadc         ``r[dst] = consts[imm0][channel]`` (per-channel constants)
19      mulq          ``r[dst] = round_shift(r[a] * r[b], r[imm0])`` (requant step)
20      rmax          ``r[dst] = max of r[a] over the pixel``, in every lane of the pixel
21      rsum          ``r[dst] = sat32(sum of r[a] over the pixel)`` (int64 adder), broadcast
22      divr          ``r[dst] = round_divide(r[a], r[b])``: ``floor((2a + b) / 2b)``, 0 if b == 0
23      lutw          ``r[dst] = int32 of bytes luts[imm0 + k][clamp(r[a], -128, 127) + 128]``, k = 0..3
======  ============  ===================================================

Opcodes 0-19 and 22-23 are lane-wise. ``rmax``/``rsum`` are the only
instructions that look across lanes: a *pixel* is the ``channels``
consecutive elements of one position (``channels / lanes`` PWORDs, the last
group shorter if ``E`` is not a multiple), and they reduce over it and write
the result back to each of its lanes. They exist for Softmax (the max to
subtract, the sum to divide by) and are the whole of the DPU's cross-lane
hardware: an adder/comparator tree per PWORD plus an accumulator across the
pixel's PWORDs. ``lutw`` reads the 256-entry tables ``imm0..imm0+3`` as the
four bytes (least significant first, each as unsigned) of one 32-bit entry,
so a fixed-point table wider than int8 (the softmax exponent) needs no
second table memory. ``divr`` is :func:`axdrive.numerics.round_divide`.
"""

from __future__ import annotations

__all__ = ["OPCODES", "DpuProgramBuilder", "validate_dpu_program", "run_dpu_program", "run_dpu_program_into"]

import numpy as np
from numba import njit, prange

# the ISA is data (axdrive_hw.isa), re-exported here next to its interpreter
from ..isa import OPCODES, DpuProgramBuilder, validate_dpu_program  # noqa: F401
from ..numerics import round_divide_nb

_I32MIN = np.int64(-(2**31))
_I32MAX = np.int64(2**31 - 1)

_BLOCK = 8  # PWORDs per interpreter pass
_PART_BLOCKS = 16  # blocks per parallel part, at least


@njit(cache=True, nogil=True)
def _sat(v: np.int64) -> np.int64:
    if v > _I32MAX:
        return _I32MAX
    if v < _I32MIN:
        return _I32MIN
    return v


@njit(cache=True, nogil=True)
def _rshift(x: np.int64, s: np.int64) -> np.int64:
    # Shift amounts are clamped to [-31, 62]; a left shift first saturates its
    # operand to int32 so the result fits int64 (the caller saturates it again).
    s = min(max(s, np.int64(-31)), np.int64(62))
    if s <= 0:
        return _sat(x) << (-s)
    return (x + (np.int64(1) << (s - 1))) >> s


@njit(cache=True, nogil=True)
def run_dpu_program(code: np.ndarray, inputs: np.ndarray, consts: np.ndarray, luts: np.ndarray, channels: int,
                    n_outputs: int, registers: int, lanes: int, spill_slots: int) -> np.ndarray:
    """Interpret ``code`` over ``inputs`` ``(k, E)`` int32; returns ``(n_outputs, E)`` int32.

    ``consts`` is ``(m, channels)`` int32, ``luts`` ``(t, 256)`` int8. The
    program must be validated first (:func:`validate_dpu_program`).
    """
    out = np.zeros((n_outputs, inputs.shape[1]), dtype=np.int32)
    run_dpu_program_into(code, inputs, consts, luts, channels, registers, lanes, spill_slots, out)
    return out


@njit(cache=True, nogil=True, parallel=True)
def run_dpu_program_into(code: np.ndarray, inputs: np.ndarray, consts: np.ndarray, luts: np.ndarray, channels: int,
                         registers: int, lanes: int, spill_slots: int, out: np.ndarray, threads: int = 1) -> None:
    """:func:`run_dpu_program` into ``out`` ``(n_outputs, E)``, int32 or int8, on up to ``threads`` threads.

    ``inputs`` may be any integer dtype (the simulator passes int8 streams as
    they are, without a widening copy). An int8 ``out`` stores saturate to
    int8, as the simulator does for an int8 output operand; int32 stores keep
    the register's (int32-saturated) value.
    """
    e = inputs.shape[1]
    narrow = out.itemsize == 1
    # Lanes are independent (registers and spill slots are per lane; a register read in a pass was written
    # earlier in the same pass), so the simulator runs _BLOCK PWORDs per pass: the same values, and the
    # instruction dispatch is paid once per _BLOCK * lanes elements instead of once per PWORD. The blocks
    # are split into contiguous parts run in parallel, each part with its own registers and spill slots.
    # Only the pixel reductions (rmax, rsum) couple lanes, within one pixel of `channels` elements: a pass
    # covers whole pixels.
    group = max(channels, 1)
    width_max = max((lanes * _BLOCK) // group, 1) * group
    n = code.shape[0]
    # mulq whose multiplier and shift registers hold one value in every lane (set by movi, not written
    # since, in program order): that multiplier qm and that shift qs (clamped as _rshift does), so the lane
    # loop has no per-lane shift; qs = 0 marks the general case
    uniform = np.zeros(registers, dtype=np.bool_)
    uval = np.zeros(registers, dtype=np.int64)
    qm = np.zeros(n, dtype=np.int64)
    qs = np.zeros(n, dtype=np.int64)
    has_loadc = False
    # the registers and spill slots the program names: each part zeroes only those (zeroing all 16 registers
    # and 64 spill slots of 512 lanes per part cost more than a short program's whole run)
    regs_used = 1
    slots_used = 1
    for pc in range(n):
        op = code[pc, 0]
        if op == 18:
            has_loadc = True
        hi = max(code[pc, 1], code[pc, 2], code[pc, 3])
        if op == 12 or op == 19:  # select's condition and mulq's shift register sit in imm0
            hi = max(hi, code[pc, 4])
        regs_used = max(regs_used, min(hi + 1, registers))
        if op == 16 or op == 17:
            slots_used = max(slots_used, min(code[pc, 4] + 1, max(spill_slots, 1)))
        if op == 19 and uniform[code[pc, 3]] and uniform[code[pc, 4]]:
            qm[pc] = uval[code[pc, 3]]
            qs[pc] = min(max(uval[code[pc, 4]], np.int64(-31)), np.int64(62))
        if op == 15:
            uniform[code[pc, 1]] = True
            uval[code[pc, 1]] = _sat(np.int64(code[pc, 4]))
        elif op != 0 and op != 2 and op != 16:  # every other instruction but store/spill_store writes dst
            uniform[code[pc, 1]] = False
    blocks = (e + width_max - 1) // width_max
    # parts of at least _PART_BLOCKS blocks (a small task is not worth waking the other threads), two per
    # thread (each part zeroes its own registers and spill slots, those the program names)
    parts = max(1, min(blocks // _PART_BLOCKS, 2 * threads))
    if parts == 1:
        _interpret(code, qm, qs, has_loadc, inputs, consts, luts, channels, regs_used, slots_used, out, narrow,
                   0, blocks, width_max)
        return
    for part in prange(parts):
        _interpret(code, qm, qs, has_loadc, inputs, consts, luts, channels, regs_used, slots_used, out, narrow,
                   blocks * part // parts, blocks * (part + 1) // parts, width_max)


# A function of its own, not the body of the prange: LLVM vectorises its lane loops only when it is compiled
# outside the parallel region.
@njit(cache=True, nogil=True)
def _interpret(code: np.ndarray, qm: np.ndarray, qs: np.ndarray, has_loadc: bool, inputs: np.ndarray,
               consts: np.ndarray, luts: np.ndarray, channels: int, registers: int, spill_slots: int,
               out: np.ndarray, narrow: bool, b_lo: int, b_hi: int, width_max: int) -> None:
    """Run the program over blocks ``b_lo .. b_hi`` (of ``width_max`` lanes), with registers of its own."""
    e = inputs.shape[1]
    n = code.shape[0]
    group = max(channels, 1)  # the lanes of one pixel (rmax/rsum); width_max is a multiple of it
    reg = np.zeros((registers, width_max), dtype=np.int64)
    spill = np.zeros((max(spill_slots, 1), width_max), dtype=np.int64)
    chan = np.zeros(width_max, dtype=np.int64)
    for blk in range(b_lo, b_hi):
        base = blk * width_max
        width = min(width_max, e - base)
        if has_loadc:  # the channel of each lane (element e is channel e % channels)
            c = base % channels
            for l in range(width):
                chan[l] = c
                c += 1
                if c == channels:
                    c = 0
        for pc in range(n):
            op = code[pc, 0]
            d = code[pc, 1]
            a = code[pc, 2]
            b = code[pc, 3]
            i0 = np.int64(code[pc, 4])
            i1 = np.int64(code[pc, 5])
            # one instruction over the chunk's lanes: the opcode test is out of the lane loop,
            # which then vectorises (every lane still sees the instructions in program order)
            if op == 0:
                pass
            elif op == 1:
                for l in range(width):
                    reg[d, l] = np.int64(inputs[i0, base + l])
            elif op == 2:
                for l in range(width):
                    v = reg[a, l]
                    if i1 == 1:
                        v = min(max(v, np.int64(-128)), np.int64(127))
                    if narrow:
                        v = min(max(v, np.int64(-128)), np.int64(127))
                    out[i0, base + l] = v
            elif op == 3:
                for l in range(width):
                    reg[d, l] = _sat(reg[a, l] + reg[b, l])
            elif op == 4:
                for l in range(width):
                    reg[d, l] = _sat(reg[a, l] - reg[b, l])
            elif op == 5:
                for l in range(width):
                    reg[d, l] = _sat(reg[a, l] * reg[b, l])
            elif op == 6:
                for l in range(width):
                    reg[d, l] = _sat(reg[a, l] + i0)
            elif op == 7:
                for l in range(width):
                    reg[d, l] = _sat(reg[a, l] * i0)
            elif op == 8:
                for l in range(width):
                    reg[d, l] = _sat(_rshift(reg[a, l], i0))
            elif op == 9:
                for l in range(width):
                    reg[d, l] = min(max(reg[a, l], i0), i1)
            elif op == 10:
                for l in range(width):
                    reg[d, l] = min(reg[a, l], reg[b, l])
            elif op == 11:
                for l in range(width):
                    reg[d, l] = max(reg[a, l], reg[b, l])
            elif op == 12:
                for l in range(width):
                    reg[d, l] = reg[a, l] if reg[i0, l] != 0 else reg[b, l]
            elif op == 13:
                for l in range(width):
                    reg[d, l] = np.int64(1) if reg[a, l] > reg[b, l] else np.int64(0)
            elif op == 14:
                for l in range(width):
                    q = min(max(reg[a, l], np.int64(-128)), np.int64(127))
                    reg[d, l] = np.int64(luts[i0, q + 128])
            elif op == 15:
                for l in range(width):
                    reg[d, l] = _sat(i0)
            elif op == 16:
                for l in range(width):
                    spill[i0, l] = reg[a, l]
            elif op == 17:
                for l in range(width):
                    reg[d, l] = spill[i0, l]
            elif op == 18:
                for l in range(width):
                    reg[d, l] = np.int64(consts[i0, chan[l]])
            elif op == 19 and qs[pc] > 0:
                m = qm[pc]
                sh = qs[pc]
                rnd = np.int64(1) << (sh - 1)
                for l in range(width):  # _rshift with a shift known to be positive: no branch per lane
                    reg[d, l] = _sat((reg[a, l] * m + rnd) >> sh)
            elif op == 19:
                for l in range(width):
                    reg[d, l] = _sat(_rshift(reg[a, l] * reg[b, l], reg[i0, l]))
            elif op == 20 or op == 21:
                # the pixel's value is complete before any of its lanes is written (dst may be a)
                for g0 in range(0, width, group):
                    g1 = min(g0 + group, width)
                    acc = reg[a, g0]
                    for l in range(g0 + 1, g1):
                        if op == 20:
                            acc = max(acc, reg[a, l])
                        else:
                            acc += reg[a, l]
                    if op == 21:
                        acc = _sat(acc)
                    for l in range(g0, g1):
                        reg[d, l] = acc
            elif op == 22:
                for l in range(width):
                    reg[d, l] = _sat(round_divide_nb(reg[a, l], reg[b, l]))
            elif op == 23:
                for l in range(width):
                    q = min(max(reg[a, l], np.int64(-128)), np.int64(127)) + 128
                    w = ((np.int64(luts[i0 + 3, q]) & 255) << 24) | ((np.int64(luts[i0 + 2, q]) & 255) << 16) \
                        | ((np.int64(luts[i0 + 1, q]) & 255) << 8) | (np.int64(luts[i0, q]) & 255)
                    reg[d, l] = w - (np.int64(1) << 32) if w >= (np.int64(1) << 31) else w
