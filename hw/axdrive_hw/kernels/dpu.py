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
from llvmlite import ir
from numba import config, njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

# the ISA is data (axdrive_hw.isa), re-exported here next to its interpreter
from ..isa import OPCODES, DpuProgramBuilder, validate_dpu_program  # noqa: F401
from ..isa import (OP_ADD, OP_ADDI, OP_CLAMP, OP_CMPGT, OP_DIVR, OP_LOAD, OP_LOADC, OP_LUT, OP_LUTW, OP_MAX, OP_MIN,
                   OP_MOVI, OP_MUL, OP_MULI, OP_MULQ, OP_NOP, OP_RMAX, OP_RSUM, OP_SELECT, OP_SHIFT_ROUND,
                   OP_SPILL_LOAD, OP_SPILL_STORE, OP_STORE, OP_SUB)
from ._cpu import numba_target_has
from ..numerics import round_divide_nb

_I32MIN = np.int64(-(2**31))
_I32MAX = np.int64(2**31 - 1)

_BLOCK = 4  # PWORDs per interpreter pass
_PART_NS = 100_000  # work per parallel part, at least (an estimate: ~0.1 ns per element and instruction)

# The interpreter runs a compact form of the program (see _compile): rows of int64
# [op, dst, a, b, imm0, imm1, p0, p1, rec, p2]. op is an ISA opcode, its register fields naming rows of the
# pass's register file (a row per live value, then the constant rows), or one of these:
_MULQU = 24  # r[dst] = sat(((r[a] (+ r[b] if imm1) + imm0) * p0 + 2**(p1-1)) >> p1): mulq by a uniform
#               multiplier and shift p1 > 0, of an exact sum (see _fuse_mulq)
_TLOAD = 25  # r[dst] = table p0 [input[imm0] + 128]: a value that is a function of one int8 stream
_TSTORE = 26  # output[imm0] = table p0 [input[p1] + 128], saturated as store (imm1) is
_ADD32 = 27  # add, sub, addi that cannot overflow (operand ranges): int32 lanes, no saturation
_SUB32 = 28
_ADDI32 = 29
_ACL = 30  # dst (or output p2 if >= 0) = clamp(r[a] (+ r[b] if imm1) + imm0, p0, p1), int32: see _fuse_clamps
if min(_MULQU, _TLOAD, _TSTORE, _ADD32, _SUB32, _ADDI32, _ACL) <= max(OPCODES.values()):
    raise RuntimeError("the interpreter's private opcodes must come after every ISA opcode (isa.OPCODES)")
_COLS = 10
_REC = 8  # the table row the probe run records dst into, -1 for none

# kinds of a value (the result of one instruction) in _compile
_GEN = 0  # anything: computed per lane
_CONST = 1  # one value in every lane
_UNARY = 2  # a function of one int8 input stream: a 256-entry table
_NOVAL = -(2**62)  # no value in this register field


# VBMI code only where Numba targets a CPU with it; NUMBA_DISABLE_JIT runs the portable loop bodies
_VBMI = not config.DISABLE_JIT and numba_target_has("avx512bw", "avx512vbmi")
# what a _TLOAD costs per element, 1/100 ns (Zen 4): byte permutes with VBMI, else LLVM's vectorised gather
_GATHER_COST = 9 if _VBMI else 36

# Table lookups (lut, lutw, _TLOAD, _TSTORE) are the interpreter's hot spot: a 256-entry table indexed by a
# byte. LLVM vectorises them, if at all, as a gather of int32 entries (~1.3 cycles per element on Zen 4).
# With AVX-512 VBMI two vpermi2b look up 64 bytes in a 128-byte half each, and the index's sign picks the
# half: 64 elements in a handful of instructions. The intrinsics below emit that; _lookup and _lookup32
# are the loops, and the plain Python bodies are what runs without VBMI (and with NUMBA_DISABLE_JIT).
_I8 = ir.IntType(8)
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_V8 = ir.VectorType(_I8, 64)
_V16 = ir.VectorType(ir.IntType(16), 64)
_V32 = ir.VectorType(_I32, 64)
_INTERLEAVE = ir.Constant(ir.VectorType(_I32, 128), [v for i in range(64) for v in (i, 64 + i)])


def _vec_ptr(context, builder, arrty, arr, idx, vty):
    data = context.make_array(arrty)(context, builder, arr).data
    return builder.bitcast(builder.gep(data, [idx]), vty.as_pointer())


def _clamp_v32(builder, v, lo: int, hi: int):
    lo_v = ir.Constant(_V32, [lo] * 64)
    hi_v = ir.Constant(_V32, [hi] * 64)
    v = builder.select(builder.icmp_signed("<", v, lo_v), lo_v, v)
    return builder.select(builder.icmp_signed(">", v, hi_v), hi_v, v)


def _load_index(context, builder, xty, x, xi):
    """64 table indices from ``x[xi:]``: int8 as they are, int32 clamped to -128 .. 127 (the ISA's index)."""
    if xty.dtype.bitwidth == 8:
        return builder.load(_vec_ptr(context, builder, xty, x, xi, _V8), align=1)
    w = builder.load(_vec_ptr(context, builder, xty, x, xi, _V32), align=4)
    return builder.trunc(_clamp_v32(builder, w, -128, 127), _V8)


def _permute_plane(builder, tp, vec0: int, idx, neg):
    """Entries ``idx + 128`` of the 256 bytes at vector ``vec0`` of ``tp``: bits 0-6 of idx pick in a half,
    its sign the half (idx + 128 = idx ^ 0x80)."""
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_V8, [_V8, _V8, _V8]),
                                        "llvm.x86.avx512.vpermi2var.qi.512")
    t = [builder.load(builder.gep(tp, [ir.Constant(_I64, vec0 + k)]), align=1) for k in range(4)]
    return builder.select(neg, builder.call(fn, [t[0], idx, t[1]]), builder.call(fn, [t[2], idx, t[3]]))


def _vbmi_ok(o, x, table) -> bool:
    """Whether the VBMI code applies to these Numba types: this CPU, C-contiguous arrays (it reads 64
    elements from a pointer), an int8 table, int8 or int32 indices and output."""
    arrays = (o, x, table)
    if not (_VBMI and all(isinstance(a, types.Array) and a.layout == "C" for a in arrays)):
        return False
    return table.dtype == types.int8 and x.dtype in (types.int8, types.int32) and o.dtype in (types.int8, types.int32)


@intrinsic
def _vb_lookup(typingctx, t8, x, o, i):
    """``o[i:i+64] = t8[clamp(x[i:i+64]) + 128]``: int8 table, int8 or int32 index and output."""
    if not _vbmi_ok(o, x, t8):
        return None
    sig = types.void(t8, x, o, i)

    def codegen(context, builder, signature, args):
        tv, xv, ov, iv = args
        tty, xty, oty, _ = signature.args
        idx = _load_index(context, builder, xty, xv, iv)
        neg = builder.icmp_signed("<", idx, ir.Constant(_V8, None))
        r = _permute_plane(builder, _vec_ptr(context, builder, tty, tv, ir.Constant(_I64, 0), _V8), 0, idx, neg)
        if oty.dtype.bitwidth == 8:
            builder.store(r, _vec_ptr(context, builder, oty, ov, iv, _V8), align=1)
        else:
            builder.store(builder.sext(r, _V32), _vec_ptr(context, builder, oty, ov, iv, _V32), align=4)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _vb_lookup32(typingctx, planes, x, o, i):
    """``o[i:i+64]`` = the int32 entries ``clamp(x) + 128`` of ``planes`` ``(4, 256)`` (byte k of each entry,
    unsigned, in plane k), saturated to int8 for an int8 ``o``."""
    if not _vbmi_ok(o, x, planes):
        return None
    sig = types.void(planes, x, o, i)

    def codegen(context, builder, signature, args):
        pv, xv, ov, iv = args
        pty, xty, oty, _ = signature.args
        idx = _load_index(context, builder, xty, xv, iv)
        neg = builder.icmp_signed("<", idx, ir.Constant(_V8, None))
        tp = _vec_ptr(context, builder, pty, pv, ir.Constant(_I64, 0), _V8)
        b = [_permute_plane(builder, tp, 4 * k, idx, neg) for k in range(4)]
        # interleave the planes' bytes into words, the words into dwords (little-endian: byte k at 8k)
        w01 = builder.bitcast(builder.shuffle_vector(b[0], b[1], _INTERLEAVE), _V16)
        w23 = builder.bitcast(builder.shuffle_vector(b[2], b[3], _INTERLEAVE), _V16)
        w = builder.bitcast(builder.shuffle_vector(w01, w23, _INTERLEAVE), _V32)
        if oty.dtype.bitwidth == 8:
            builder.store(builder.trunc(_clamp_v32(builder, w, -128, 127), _V8),
                          _vec_ptr(context, builder, oty, ov, iv, _V8), align=1)
        else:
            builder.store(w, _vec_ptr(context, builder, oty, ov, iv, _V32), align=4)
        return context.get_dummy_value()

    return sig, codegen


def _lookup(o: np.ndarray, x: np.ndarray, t8: np.ndarray) -> None:
    """``o[l] = t8[clamp(x[l], -128, 127) + 128]`` (``lut``), ``t8`` 256 int8 entries."""
    for l in range(o.shape[0]):
        o[l] = t8[min(max(np.int64(x[l]), np.int64(-128)), np.int64(127)) + 128]


def _lookup32(o: np.ndarray, x: np.ndarray, planes: np.ndarray) -> None:
    """``o[l]`` = the int32 entry ``clamp(x[l], -128, 127) + 128`` of ``planes`` ``(4, 256)``, byte ``k``
    (unsigned) in plane ``k`` (``lutw``); saturated to int8 if ``o`` is int8."""
    narrow = o.itemsize == 1
    for l in range(o.shape[0]):
        q = min(max(np.int64(x[l]), np.int64(-128)), np.int64(127)) + 128
        w = ((np.int64(planes[3, q]) & 255) << 24) | ((np.int64(planes[2, q]) & 255) << 16) \
            | ((np.int64(planes[1, q]) & 255) << 8) | (np.int64(planes[0, q]) & 255)
        w = w - (np.int64(1) << 32) if w >= (np.int64(1) << 31) else w
        o[l] = min(max(w, np.int64(-128)), np.int64(127)) if narrow else w


_lookup32_tail = njit(nogil=True)(_lookup32)


# (the implementations' parameters, annotations included, must be the overload's)
@overload(_lookup, jit_options={"nogil": True})
def _lookup_impl(o: np.ndarray, x: np.ndarray, t8: np.ndarray):
    if not _vbmi_ok(o, x, t8):
        return _lookup

    def impl(o: np.ndarray, x: np.ndarray, t8: np.ndarray):
        n = o.shape[0]
        i = 0
        while i + 64 <= n:
            _vb_lookup(t8, x, o, i)
            i += 64
        for l in range(i, n):
            o[l] = t8[min(max(np.int64(x[l]), np.int64(-128)), np.int64(127)) + 128]

    return impl


@overload(_lookup32, jit_options={"nogil": True})
def _lookup32_impl(o: np.ndarray, x: np.ndarray, planes: np.ndarray):
    if not _vbmi_ok(o, x, planes):
        return _lookup32

    def impl(o: np.ndarray, x: np.ndarray, planes: np.ndarray):
        n = o.shape[0]
        i = 0
        while i + 64 <= n:
            _vb_lookup32(planes, x, o, i)
            i += 64
        if i < n:
            _lookup32_tail(o[i:], x[i:], planes)

    return impl


@njit(cache=True, nogil=True)
def _sat(v: np.int64) -> np.int64:
    return min(max(v, _I32MIN), _I32MAX)


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
    prog, tab8, planes, cvals, n_rows = _compile(code, inputs, consts, luts, channels, registers, spill_slots, out)
    # Lanes are independent (registers are per lane; a register read in a pass was written earlier in the
    # same pass), so the simulator runs _BLOCK PWORDs per pass: the same values, and the instruction dispatch
    # is paid once per _BLOCK * lanes elements instead of once per PWORD. The blocks are split into
    # contiguous parts run in parallel, each part with its own registers. Only the pixel reductions (rmax,
    # rsum) couple lanes, within one pixel of `channels` elements: a pass covers whole pixels.
    group = max(channels, 1)
    width_max = max((lanes * _BLOCK) // group, 1) * group
    width_max = min(width_max, max((e + group - 1) // group, 1) * group)  # a small task: smaller registers
    blocks = (e + width_max - 1) // width_max
    # parts of at least _PART_NS of work (waking the other threads costs more than a short task: the
    # lookups of a whole layer take tens of microseconds), two per thread
    gather = True
    for pc in range(prog.shape[0]):
        if prog[pc, 0] != _TSTORE:
            gather = False
    work_ns = e * prog.shape[0] * (3 if gather else 10) // 100
    parts = max(1, min(work_ns // _PART_NS, 2 * threads, blocks))
    if parts == 1:
        _interpret(prog, tab8, planes, cvals, inputs, consts, luts, channels, n_rows, out, narrow, gather,
                   np.int64(0), blocks, width_max)
        return
    for part in prange(parts):
        _interpret(prog, tab8, planes, cvals, inputs, consts, luts, channels, n_rows, out, narrow, gather,
                   blocks * part // parts, blocks * (part + 1) // parts, width_max)


@njit(cache=True, nogil=True)
def _compile(code: np.ndarray, inputs: np.ndarray, consts: np.ndarray, luts: np.ndarray, channels: int,
             registers: int, spill_slots: int, out: np.ndarray):
    """The program in the compact form :func:`_run_block` runs, once per call: fewer and cheaper instructions.

    Returns ``(prog, tab8, planes, cvals, n_rows)``: the rows, the 256-entry tables they read (saturated to
    int8, and as four byte planes: see :func:`_lookup32`), the values of the constant rows (register rows
    ``n_rows - len(cvals) ..``) and the register rows a pass needs.

    Each instruction's value is classified (straight-line code: the reaching definition of every operand is
    the last instruction that wrote it). A value set by ``movi``, or computed lane-wise from such values
    only, is the same in every lane (constant); one computed lane-wise from one int8 input stream and
    constants is a function of that stream's byte (unary): of at most 256 values. Only values the rest of
    the program reads (general values) are computed per lane:

    * constant and unary instructions are not run per pass; a constant a general instruction reads is a
      register row filled once (or its immediate: ``add``/``sub``/``mul``/``min``/``max`` with a constant
      become ``addi``/``muli``/``clamp``, ``mulq`` with a constant multiplier and shift the branch-free
      ``_MULQU``); a unary value a general instruction reads is one table lookup (``_TLOAD``) at its
      definition, unless computing it costs less than the lookup (``_lane_cost``: a plain ``load``; more
      without VBMI), and a stored one a lookup into the output (``_TSTORE``);
    * the tables are the values those instructions compute, in their own lanes, on a probe: a pass of 256
      lanes in which every int8 stream holds -128 .. 127 (the same code as the real passes, so the same
      bits);
    * an ``add``, ``sub`` or ``addi`` whose operands' ranges (interval arithmetic; a table's own range)
      cannot overflow int32 skips the saturation and runs on int32 lanes (twice as many per vector);
    * values nothing stores are not computed; spills and register moves disappear: values get rows of
      their own, never one their instruction reads (see the allocation below);
    * the exact adds before a ``_MULQU`` fuse into it (:func:`_fuse_mulq`), chains of exact adds and clamps
      (with the store they feed) into one ``_ACL`` (:func:`_fuse_clamps`).

    Every pass over the lanes costs about the same (Zen 4: 0.05 ns per element for an int32 add or clamp,
    0.1 for a lookup or a multiply), so the fewer the better: a lookup program (``load, lut, store``) becomes
    one ``_TSTORE``, the input gathered into the output; a requantizing add (``load, addi, movi, movi, mulq``
    per input, ``add, movi, movi, mulq, addi, clamp, store``: 17 instructions) two ``_TLOAD``, a ``_MULQU``
    of their sum and an ``_ACL`` that stores.
    """
    n = code.shape[0]
    c64 = code.astype(np.int64)
    info = np.iinfo(inputs.dtype)
    byte_in = info.min == -128 and info.max == 127  # int8 streams: a load is a unary value
    n_slots = max(spill_slots, 1)
    vdef = np.full(registers + n_slots, -1, np.int64)  # the instruction whose value a register / slot holds
    kind = np.zeros(n, np.int64)
    strm = np.full(n, -1, np.int64)
    src = np.full((n, 3), -1, np.int64)  # the reaching definitions of each instruction's operands
    regs_used = 1
    slots_used = 1
    for pc in range(n):
        op = c64[pc, 0]
        a = c64[pc, 2]
        b = c64[pc, 3]
        i0 = c64[pc, 4]
        if op == OP_SPILL_LOAD:
            src[pc, 0] = vdef[registers + i0]
        else:
            reads = _reads(op)
            for j in range(3):
                if reads & (1 << j):
                    src[pc, j] = vdef[(a, b, i0)[j]]
        k = _GEN
        s = np.int64(-1)
        if op == OP_MOVI:
            k = _CONST
        elif op == OP_LOAD:
            if byte_in:
                k = _UNARY
                s = i0
        elif op != OP_NOP and op != OP_LOADC and op != OP_RMAX and op != OP_RSUM:  # lane-wise: the kind of its operands
            k = _CONST
            for j in range(3):
                x = src[pc, j]
                if x < 0:
                    if j == 0:  # no operand: a program that is not valid
                        k = _GEN
                    continue
                if kind[x] == _GEN or (kind[x] == _UNARY and s >= 0 and strm[x] != s):
                    k = _GEN
                    break
                if kind[x] == _UNARY:
                    k = _UNARY
                    s = strm[x]
            if k != _UNARY:
                s = -1
        kind[pc] = k
        strm[pc] = s
        if op == OP_SPILL_STORE:
            vdef[registers + i0] = pc
        elif op != OP_NOP and op != OP_STORE:
            vdef[c64[pc, 1]] = pc
        # the probe's registers and spill slots: those the program names (zeroing all costs microseconds)
        regs_used = max(regs_used, c64[pc, 1] + 1, a + 1, b + 1, i0 + 1 if op == OP_SELECT or op == OP_MULQ else 0)
        if op == OP_SPILL_STORE or op == OP_SPILL_LOAD:
            slots_used = max(slots_used, i0 + 1)
    kind0 = kind.copy()  # what the probe computes
    # unary values general instructions read; those cheaper to compute than to look up become general
    # (with the unary values they are computed from)
    cost = np.zeros(n, np.int64)
    for pc in range(n):
        cost[pc] = _lane_cost(c64, pc, src)
    cone = np.zeros(n, np.bool_)
    stack = np.zeros(n, np.int64)
    for pc in range(n):
        if c64[pc, 0] == OP_NOP or c64[pc, 0] == OP_STORE or kind[pc] != _GEN:
            continue
        for j in range(3):
            x = src[pc, j]
            if x < 0 or kind[x] != _UNARY:
                continue
            # the unary instructions x is computed from, and what computing them costs
            cone[:] = False
            cone[x] = True
            stack[0] = x
            top = 1
            total = 0
            while top > 0:
                top -= 1
                y = stack[top]
                total += cost[y]
                for jj in range(3):
                    z = src[y, jj]
                    if z >= 0 and kind[z] == _UNARY and not cone[z]:
                        cone[z] = True
                        stack[top] = z
                        top += 1
            if total < _GATHER_COST:
                for y in range(n):
                    if cone[y]:
                        kind[y] = _GEN
    # tables: the unary values the per-lane program reads (general instructions: _TLOAD; stores: _TSTORE),
    # and the computed (not movi) constants it reads, whose value the probe gives
    row = np.full(n, -1, np.int64)
    mat = np.zeros(n, np.bool_)
    n_tabs = 0
    for pc in range(n):
        op = c64[pc, 0]
        if op == OP_NOP or (kind[pc] != _GEN and op != OP_STORE):
            continue
        for j in range(3):
            x = src[pc, j]
            if x < 0:
                continue
            if op != OP_STORE and kind[x] == _UNARY:
                mat[x] = True
            if row[x] < 0 and (kind[x] == _UNARY or (kind[x] == _CONST and c64[x, 0] != 15)):
                row[x] = n_tabs
                n_tabs += 1
    tabs = np.zeros((max(n_tabs, 1), 256), np.int32)
    if n_tabs > 0:
        # the probe: the constant and unary instructions, in program order, over 256 lanes (an instruction
        # of either kind reads only values of either kind, so the general ones can be left out)
        probe = np.zeros((n, _COLS), np.int64)
        m = 0
        for pc in range(n):
            if kind0[pc] != _GEN and c64[pc, 0] != OP_STORE:
                for j in range(6):
                    probe[m, j] = c64[pc, j]
                probe[m, _REC] = row[pc]
                m += 1
        pin = np.zeros((inputs.shape[0], 256), inputs.dtype)
        if byte_in:
            for i in range(inputs.shape[0]):
                for l in range(256):
                    pin[i, l] = l - 128
        # (no literal arguments: the same specialisation as the real passes, compiled once)
        _run_block(probe[:m], tabs, np.zeros((1, 256), np.int8), np.zeros((1, 4, 256), np.int8), pin, consts,
                   luts, channels, np.zeros((regs_used, 256), np.int32), np.zeros((slots_used, 256), np.int32),
                   np.zeros(256, np.int64), out, out.itemsize == 1, np.int64(0), np.int64(256))
    tab8 = np.empty((tabs.shape[0], 256), np.int8)
    planes = np.empty((tabs.shape[0], 4, 256), np.int8)
    for t in range(n_tabs):
        for q in range(256):
            w = np.int64(tabs[t, q])
            tab8[t, q] = min(max(w, np.int64(-128)), np.int64(127))
            for k in range(4):
                b = (w >> (8 * k)) & 255
                planes[t, k, q] = b - 256 if b >= 128 else b
    cval = np.zeros(n, np.int64)
    for x in range(n):
        if kind[x] == _CONST:
            cval[x] = _sat(c64[x, 4]) if c64[x, 0] == OP_MOVI else (np.int64(tabs[row[x], 0]) if row[x] >= 0 else 0)
    lo, hi, exact = _ranges(c64, src, row, tabs, consts, info.min, info.max)
    # the value an instruction's result is: itself, but a spill_store or spill_load of a general value is the
    # value it copies (it is left out: its readers read that value's row)
    canon = np.arange(n)
    for pc in range(n):
        op = c64[pc, 0]
        if (op == OP_SPILL_STORE or op == OP_SPILL_LOAD) and kind[pc] == _GEN and src[pc, 0] >= 0:
            canon[pc] = canon[src[pc, 0]]
    # the per-lane program, its register fields (dst, a, b, imm0) naming values: an instruction (>= 0) or a
    # constant row (-1 - its index); physical rows are allocated below
    crow = np.full(n, -1, np.int64)
    cvals = np.zeros(n, np.int64)
    n_const = 0
    prog = np.zeros((n, _COLS), np.int64)
    fv = np.full((n, 5), _NOVAL, np.int64)
    m = 0
    for pc in range(n):
        op = c64[pc, 0]
        if op == OP_NOP or op == OP_MOVI or op == OP_SPILL_STORE or (op == OP_SPILL_LOAD and kind[pc] == _GEN) or (kind[pc] == _CONST and op != OP_STORE) \
                or (kind[pc] == _UNARY and op != OP_STORE and not mat[pc]):
            continue
        r = prog[m]
        f = fv[m]
        m += 1
        for j in range(6):
            r[j] = c64[pc, j]
        r[_REC] = -1
        x0 = src[pc, 0]
        x1 = src[pc, 1]
        x2 = src[pc, 2]
        if op != OP_STORE and kind[pc] == _UNARY:
            r[0] = _TLOAD
            r[4] = strm[pc]
            r[6] = row[pc]
            f[1] = pc
            continue
        if op == OP_STORE and x0 >= 0 and kind[x0] == _UNARY:
            r[0] = _TSTORE
            r[6] = row[x0]
            r[7] = strm[x0]
            continue
        c0 = x0 >= 0 and kind[x0] == _CONST
        c1 = x1 >= 0 and kind[x1] == _CONST
        c2 = x2 >= 0 and kind[x2] == _CONST
        if op == OP_MULQ and c1 and c2 and min(max(cval[x2], np.int64(-31)), np.int64(62)) > 0:
            r[0] = _MULQU
            r[4] = 0
            r[5] = 0
            r[6] = cval[x1]
            r[7] = min(cval[x2], np.int64(62))
        elif (op == OP_ADD or op == OP_SUB or op == OP_MUL or op == OP_MIN or op == OP_MAX) and (c0 != c1) and (c1 or op != OP_SUB):
            if c0:  # commutative: the constant second
                x0, x1 = x1, x0
            v = cval[x1]
            r[0] = OP_CLAMP if op == OP_MIN or op == OP_MAX else (OP_MULI if op == OP_MUL else OP_ADDI)
            r[4] = -v if op == OP_SUB else (_I32MIN if op == OP_MIN else v)
            r[5] = v if op == OP_MIN else _I32MAX
        if exact[pc]:  # cannot overflow: int32 lanes, no saturation
            if r[0] == OP_ADD:
                r[0] = _ADD32
            elif r[0] == OP_SUB:
                r[0] = _SUB32
            elif r[0] == OP_ADDI:
                r[0] = _ADDI32
        if op != OP_STORE:
            f[1] = pc
        reads = _reads(r[0])
        for j in range(3):
            if reads & (1 << j):
                x = (x0, x1, x2)[j]
                if x < 0:
                    continue
                if kind[x] == _CONST:
                    if crow[x] < 0:
                        crow[x] = n_const
                        cvals[n_const] = cval[x]
                        n_const += 1
                    f[2 + j] = -1 - crow[x]
                else:
                    f[2 + j] = canon[x]
    # dead code: a general value nothing kept reads (the stores are kept)
    live = np.zeros(n, np.bool_)
    keep = np.zeros(m, np.bool_)
    for i in range(m - 1, -1, -1):
        if fv[i, 1] != _NOVAL and not live[fv[i, 1]]:
            continue
        keep[i] = True
        for j in range(2, 5):
            if fv[i, j] >= 0:
                live[fv[i, j]] = True
    _fuse_mulq(prog, fv, keep, m)
    _fuse_clamps(prog, fv, keep, m, lo, hi, out.itemsize == 1)
    # physical rows: a value gets a free row when it is computed and gives it back after its last reader;
    # never the row of one of its own operands, so no instruction writes a row it reads (its lane loop then
    # vectorises: LLVM's overlap check fails for a loop that reads and writes the same row)
    last = np.full(n, -1, np.int64)
    for i in range(m):
        if keep[i]:
            for j in range(2, 5):
                if fv[i, j] >= 0:
                    last[fv[i, j]] = i
    phys = np.full(n, -1, np.int64)
    free = np.zeros(n + 1, np.int64)
    n_free = 0
    n_phys = 0
    res = np.zeros((m, _COLS), np.int64)
    k = 0
    for i in range(m):
        if not keep[i]:
            continue
        v = fv[i, 1]
        if v != _NOVAL:
            if n_free > 0:
                n_free -= 1
                phys[v] = free[n_free]
            else:
                phys[v] = n_phys
                n_phys += 1
        for j in range(2, 5):
            x = fv[i, j]
            if x >= 0 and last[x] == i:
                free[n_free] = phys[x]
                n_free += 1
                last[x] = -1
        if v != _NOVAL and last[v] < 0:  # never read: an instruction not dead only in an invalid program
            free[n_free] = phys[v]
            n_free += 1
        res[k] = prog[i]
        k += 1
    k = 0
    for i in range(m):
        if not keep[i]:
            continue
        for j in range(1, 5):
            x = fv[i, j]
            if x != _NOVAL:
                res[k, j] = phys[x] if x >= 0 else n_phys - 1 - x
            elif j < 4:  # a register field the instruction does not use: a row that exists
                res[k, j] = 0
        k += 1
    return res[:k], tab8, planes, cvals[:n_const], n_phys + n_const


@njit(cache=True, nogil=True)
def _fuse_mulq(prog: np.ndarray, fv: np.ndarray, keep: np.ndarray, m: int) -> None:
    """Fuse the exact adds right before a ``_MULQU`` into it, in place: ``[_ADD32] [_ADDI32] _MULQU``, each
    the only reader of the row before (a residual add's sum, an input's zero point). The multiply takes the
    sum ``a + b`` as int32 and the constant in its rounding term: ``(v + k) * m + rnd = v * m + (k * m + rnd)``.
    """
    uses = np.zeros(prog.shape[0] + 1, np.int64)
    order = np.zeros(m, np.int64)
    n = 0
    for i in range(m):
        if keep[i]:
            order[n] = i
            n += 1
            for j in range(2, 5):
                if fv[i, j] >= 0:
                    uses[fv[i, j]] += 1
    for t in range(n):
        j = order[t]
        if prog[j, 0] != _MULQU:
            continue
        s = t
        while s > 0:
            i = order[s - 1]
            v = fv[i, 1]
            if v < 0 or uses[v] != 1 or fv[j, 2] != v or prog[j, 5] == 1 \
                    or (prog[i, 0] != _ADDI32 and prog[i, 0] != _ADD32):
                break
            if prog[i, 0] == _ADDI32:
                prog[j, 4] += prog[i, 4]
            else:
                prog[j, 5] = 1
                fv[j, 3] = fv[i, 3]
            fv[j, 2] = fv[i, 2]
            keep[i] = False
            s -= 1


@njit(cache=True, nogil=True)
def _fuse_clamps(prog: np.ndarray, fv: np.ndarray, keep: np.ndarray, m: int, lo: np.ndarray, hi: np.ndarray,
                 narrow: bool) -> None:
    """Fuse chains of exact adds and clamps into one ``_ACL`` row each, in place (the rows absorbed are no
    longer kept).

    A chain is consecutive kept rows, each the only reader of the one before: an ``_ADD32``, ``_ADDI32`` or
    ``clamp``, then ``_ADDI32``s and ``clamp``s (``min``/``max`` with a constant are clamps), and a store
    perhaps: the zero point and the saturation a requantization ends with, ``max`` for a ReLU. Any such
    chain is one add and one clamp: ``clamp(y, a, b) + k = clamp(y + k, a + k, b + k)``, and a clamp of a
    clamp is the clamp to the outer one's values at the inner bounds (both are monotonic). Each row of
    these is a pass over the registers costing about what the fused row does, and the store's saturation is
    one more clamp. A chain is fused when its sum cannot overflow int32 (the value's range): every step
    then runs on int32 lanes.
    """
    uses = np.zeros(prog.shape[0] + 1, np.int64)  # readers of each value (an instruction index)
    order = np.zeros(m, np.int64)
    n = 0
    for i in range(m):
        if keep[i]:
            order[n] = i
            n += 1
            for j in range(2, 5):
                if fv[i, j] >= 0:
                    uses[fv[i, j]] += 1
    for s in range(n):
        i = order[s]
        op = prog[i, 0]
        if not keep[i] or (op != _ADD32 and op != _ADDI32 and op != OP_CLAMP):
            continue
        # the chain's input value y (a, or a + b) and its range
        y = fv[i, 1] if op == _ADD32 else fv[i, 2]
        if y < 0:
            continue
        k = np.int64(0)
        c_lo = _I32MIN
        c_hi = _I32MAX
        store = np.int64(-1)
        cur = fv[i, 1]
        last = s
        for t in range(s, n):
            j = order[t]
            opj = prog[j, 0]
            if t > s and (cur < 0 or uses[cur] != 1 or fv[j, 2] != cur or fv[j, 3] == cur or
                          (opj != _ADDI32 and opj != OP_CLAMP and opj != OP_STORE)):
                break
            if opj == _ADDI32:
                k += prog[j, 4]
                c_lo += prog[j, 4]
                c_hi += prog[j, 4]
            elif opj == OP_CLAMP or (opj == OP_STORE and (prog[j, 5] == 1 or narrow)):
                b_lo = prog[j, 4] if opj == OP_CLAMP else np.int64(-128)
                b_hi = prog[j, 5] if opj == OP_CLAMP else np.int64(127)
                c_lo = min(max(c_lo, b_lo), b_hi)
                c_hi = min(max(c_hi, b_lo), b_hi)
            if opj == OP_STORE:
                store = prog[j, 4]
            last = t
            cur = fv[j, 1] if opj != OP_STORE else _NOVAL
            if opj == OP_STORE:
                break
        if last == s or k < _I32MIN or k > _I32MAX or lo[y] + k < _I32MIN or hi[y] + k > _I32MAX:
            continue
        r = prog[i]
        r[5] = 1 if op == _ADD32 else 0
        if op != _ADD32:
            fv[i, 3] = _NOVAL
        r[0] = _ACL
        r[4] = k
        r[6] = max(c_lo, _I32MIN)  # the sum is an int32: bounds past it clamp nothing
        r[7] = min(c_hi, _I32MAX)
        r[9] = store
        fv[i, 1] = cur
        fv[i, 4] = _NOVAL
        for t in range(s + 1, last + 1):
            keep[order[t]] = False


@njit(cache=True, nogil=True)
def _lane_cost(c64: np.ndarray, pc: int, src: np.ndarray) -> int:
    """About what computing instruction ``pc`` per lane costs, in 1/100 ns per element (Zen 4, int32 rows):
    the compiler computes a unary value rather than look it up (``_GATHER_COST``) when that is cheaper."""
    op = c64[pc, 0]
    if op == OP_MOVI or op == OP_SPILL_STORE or op == OP_SPILL_LOAD or op == OP_NOP:
        return 0
    if op == OP_LOAD:
        return 4
    if op == OP_ADD or op == OP_SUB or op == OP_ADDI or op == OP_CMPGT or op == OP_CLAMP or op == OP_MIN or op == OP_MAX:
        return 5
    if op == OP_SELECT:
        return 6
    if op == OP_MULI or op == OP_MUL:
        return 10
    if op == OP_SHIFT_ROUND:
        return 12
    if op == OP_MULQ:
        xb = src[pc, 1]
        xs = src[pc, 2]
        if xb >= 0 and xs >= 0 and c64[xb, 0] == OP_MOVI and c64[xs, 0] == OP_MOVI and c64[xs, 4] > 0:
            return 12  # _MULQU
    return 100


@njit(cache=True, nogil=True)
def _ranges(c64: np.ndarray, src: np.ndarray, row: np.ndarray, tabs: np.ndarray, consts: np.ndarray,
            in_min: int, in_max: int):
    """Interval arithmetic over the program: ``(lo, hi, exact)``, each value's bounds, and whether an add,
    sub or addi cannot overflow int32 (its result needs no saturation). A value with a table is bounded by
    the table."""
    n = c64.shape[0]
    lo = np.full(n, _I32MIN, np.int64)
    hi = np.full(n, _I32MAX, np.int64)
    exact = np.zeros(n, np.bool_)
    for pc in range(n):
        op = c64[pc, 0]
        i0 = c64[pc, 4]
        i1 = c64[pc, 5]
        x0 = src[pc, 0]
        x1 = src[pc, 1]
        if (x0 < 0 and _reads(op) & 1) or (x1 < 0 and _reads(op) & 2) or (src[pc, 2] < 0 and _reads(op) & 4):
            continue
        l0 = lo[x0] if x0 >= 0 else np.int64(0)
        h0 = hi[x0] if x0 >= 0 else np.int64(0)
        l1 = lo[x1] if x1 >= 0 else np.int64(0)
        h1 = hi[x1] if x1 >= 0 else np.int64(0)
        rl = _I32MIN
        rh = _I32MAX
        if op == OP_LOAD:
            rl = max(np.int64(in_min), _I32MIN)
            rh = min(np.int64(in_max), _I32MAX)
        elif op == OP_MOVI:
            rl = _sat(i0)
            rh = rl
        elif op == OP_SPILL_STORE or op == OP_SPILL_LOAD or op == OP_RMAX:
            rl = l0
            rh = h0
        elif op == OP_ADD or op == OP_SUB or op == OP_ADDI:
            if op == OP_ADD:
                rl = l0 + l1
                rh = h0 + h1
            elif op == OP_SUB:
                rl = l0 - h1
                rh = h0 - l1
            else:
                rl = l0 + i0
                rh = h0 + i0
            exact[pc] = rl >= _I32MIN and rh <= _I32MAX
        elif op == OP_MULI or op == OP_MUL:
            if op == OP_MULI:
                l1 = i0
                h1 = i0
            p = l0 * l1
            q = l0 * h1
            u = h0 * l1
            w = h0 * h1
            rl = min(min(p, q), min(u, w))
            rh = max(max(p, q), max(u, w))
        elif op == OP_SHIFT_ROUND:
            rl = _sat(_rshift(l0, i0))
            rh = _sat(_rshift(h0, i0))
        elif op == OP_MULQ and lo[src[pc, 1]] == hi[src[pc, 1]] and lo[src[pc, 2]] == hi[src[pc, 2]]:
            # a constant multiplier and shift (as _MULQU): monotonic in r[a]
            p = _sat(_rshift(l0 * lo[src[pc, 1]], lo[src[pc, 2]]))
            q = _sat(_rshift(h0 * lo[src[pc, 1]], lo[src[pc, 2]]))
            rl = min(p, q)
            rh = max(p, q)
        elif op == OP_CLAMP:
            rl = min(max(l0, i0), i1)
            rh = min(max(h0, i0), i1)
        elif op == OP_MIN:
            rl = min(l0, l1)
            rh = min(h0, h1)
        elif op == OP_MAX:
            rl = max(l0, l1)
            rh = max(h0, h1)
        elif op == OP_SELECT:
            rl = min(l0, l1)
            rh = max(h0, h1)
        elif op == OP_CMPGT:
            rl = np.int64(0)
            rh = np.int64(1)
        elif op == OP_LUT:
            rl = np.int64(-128)
            rh = np.int64(127)
        elif op == OP_LOADC and consts.shape[1] > 0:
            rl = np.int64(consts[i0].min())
            rh = np.int64(consts[i0].max())
        rl = _sat(rl)
        rh = _sat(rh)
        if row[pc] >= 0:  # a table: its own bounds
            rl = max(rl, np.int64(tabs[row[pc]].min()))
            rh = min(rh, np.int64(tabs[row[pc]].max()))
        lo[pc] = rl
        hi[pc] = rh
    return lo, hi, exact


@njit(cache=True, nogil=True)
def _reads(op: int) -> int:
    """The register fields an instruction of the compact form reads: bit 0 ``a``, bit 1 ``b``, bit 2 ``imm0``."""
    if op == OP_ADD or op == OP_SUB or op == OP_MUL or op == OP_MIN or op == OP_MAX or op == OP_CMPGT or op == OP_DIVR or op == _ADD32 \
            or op == _SUB32:
        return 3
    if op == OP_SELECT or op == OP_MULQ:
        return 7
    if op == OP_LOAD or op == OP_MOVI or op == OP_SPILL_LOAD or op == OP_LOADC or op == _TLOAD or op == _TSTORE or op == OP_NOP:
        return 0
    return 1


# A function of its own, not the body of the prange: LLVM vectorises its lane loops only when it is compiled
# outside the parallel region.
@njit(cache=True, nogil=True)
def _interpret(prog: np.ndarray, tab8: np.ndarray, planes: np.ndarray, cvals: np.ndarray, inputs: np.ndarray,
               consts: np.ndarray, luts: np.ndarray, channels: int, n_rows: int, out: np.ndarray, narrow: bool,
               gather: bool, b_lo: int, b_hi: int, width_max: int) -> None:
    """Run the compact program over blocks ``b_lo .. b_hi`` (of ``width_max`` lanes), with registers of its own."""
    e = inputs.shape[1]
    lo = b_lo * width_max
    hi = min(b_hi * width_max, e)
    if gather:  # only lookups from the inputs into the outputs: no registers, no passes
        for pc in range(prog.shape[0]):
            o = out[prog[pc, 4], lo:hi]
            x = inputs[prog[pc, 7], lo:hi]
            if prog[pc, 5] == 1 or narrow:
                _lookup(o, x, tab8[prog[pc, 6]])
            else:
                _lookup32(o, x, planes[prog[pc, 6]])
        return
    n_const = cvals.shape[0]
    # registers, int32 as every value is: a pass's working set stays in L1 (the compact program has no
    # spills and records no tables: those arrays are placeholders)
    reg = np.zeros((max(n_rows, 1), width_max), dtype=np.int32)
    for i in range(n_const):
        reg[n_rows - n_const + i, :] = cvals[i]
    spill = np.zeros((1, 1), dtype=np.int32)
    no_tabs = np.zeros((1, 1), dtype=np.int32)
    chan = np.zeros(width_max, dtype=np.int64)
    has_loadc = False
    for pc in range(prog.shape[0]):
        if prog[pc, 0] == OP_LOADC:
            has_loadc = True
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
        _run_block(prog, no_tabs, tab8, planes, inputs, consts, luts, channels, reg, spill, chan, out, narrow,
                   base, width)


@njit(cache=True, nogil=True)
def _add_clamp(o: np.ndarray, ra: np.ndarray, rb: np.ndarray, has_b: bool, k: np.int32, lo: np.int32,
               hi: np.int32) -> None:
    """An _ACL row's lanes: ``o = clamp(ra (+ rb) + k, lo, hi)``, every step exact in int32."""
    if has_b:
        for l in range(o.shape[0]):
            o[l] = min(max(np.int32(ra[l] + rb[l] + k), lo), hi)
    else:
        for l in range(o.shape[0]):
            o[l] = min(max(np.int32(ra[l] + k), lo), hi)


@njit(cache=True, nogil=True)
def _run_block(prog: np.ndarray, tabs: np.ndarray, tab8: np.ndarray, planes: np.ndarray, inputs: np.ndarray,
               consts: np.ndarray, luts: np.ndarray, channels: int, reg: np.ndarray, spill: np.ndarray,
               chan: np.ndarray, out: np.ndarray, narrow: bool, base: int, width: int) -> None:
    """One pass of the compact program over elements ``base .. base + width`` (lane ``l`` is element
    ``base + l``); an instruction with ``rec >= 0`` also copies its result into ``tabs[rec]`` (the probe)."""
    group = max(channels, 1)  # the lanes of one pixel (rmax/rsum); a pass covers whole pixels
    for pc in range(prog.shape[0]):
        op = prog[pc, 0]
        d = prog[pc, 1]
        a = prog[pc, 2]
        b = prog[pc, 3]
        i0 = prog[pc, 4]
        i1 = prog[pc, 5]
        # one instruction over the pass's lanes: the opcode test is out of the lane loop, which then vectorises
        # (every lane still sees the instructions in program order). The loops run over 1-d views from 0:
        # LLVM then knows the index is not negative and drops Numba's wrap-around test per element.
        rd = reg[d, :width]
        ra = reg[a, :width]
        if op == OP_NOP:
            pass
        elif op == OP_STORE or op == _TSTORE:
            lo = np.int32(-(2**31))
            hi = np.int32(2**31 - 1)
            if i1 == 1 or narrow:
                lo = np.int32(-128)
                hi = np.int32(127)
            o = out[i0, base:base + width]
            if op == OP_STORE:
                for l in range(width):
                    o[l] = min(max(ra[l], lo), hi)
            elif i1 == 1 or narrow:
                _lookup(o, inputs[prog[pc, 7], base:base + width], tab8[prog[pc, 6]])
            else:
                _lookup32(o, inputs[prog[pc, 7], base:base + width], planes[prog[pc, 6]])
        elif op == OP_LOAD:
            x = inputs[i0, base:base + width]
            for l in range(width):
                rd[l] = x[l]
        elif op == _TLOAD:
            _lookup32(rd, inputs[i0, base:base + width], planes[prog[pc, 6]])
        elif op == _ADD32:  # the sum fits int32 (operand ranges): computed in int64, LLVM narrows it
            rb = reg[b, :width]
            for l in range(width):
                rd[l] = np.int64(ra[l]) + np.int64(rb[l])
        elif op == _SUB32:
            rb = reg[b, :width]
            for l in range(width):
                rd[l] = np.int64(ra[l]) - np.int64(rb[l])
        elif op == _ADDI32:
            for l in range(width):
                rd[l] = np.int64(ra[l]) + i0
        elif op == OP_ADD:
            rb = reg[b, :width]
            for l in range(width):
                rd[l] = _sat(np.int64(ra[l]) + np.int64(rb[l]))
        elif op == OP_SUB:
            rb = reg[b, :width]
            for l in range(width):
                rd[l] = _sat(np.int64(ra[l]) - np.int64(rb[l]))
        elif op == OP_MUL:
            rb = reg[b, :width]
            for l in range(width):
                rd[l] = _sat(np.int64(ra[l]) * np.int64(rb[l]))
        elif op == OP_ADDI:
            for l in range(width):
                rd[l] = _sat(np.int64(ra[l]) + i0)
        elif op == OP_MULI:
            for l in range(width):
                rd[l] = _sat(np.int64(ra[l]) * i0)
        elif op == OP_SHIFT_ROUND:
            for l in range(width):
                rd[l] = _sat(_rshift(np.int64(ra[l]), i0))
        elif op == OP_CLAMP:
            lo = np.int32(i0)  # clamp bounds are int32 (immediates, or constants as min / max bounds)
            hi = np.int32(i1)
            for l in range(width):
                rd[l] = min(max(ra[l], lo), hi)
        elif op == OP_MIN:
            rb = reg[b, :width]
            for l in range(width):
                rd[l] = min(ra[l], rb[l])
        elif op == OP_MAX:
            rb = reg[b, :width]
            for l in range(width):
                rd[l] = max(ra[l], rb[l])
        elif op == OP_SELECT:
            rb = reg[b, :width]
            rc = reg[i0, :width]
            for l in range(width):
                rd[l] = ra[l] if rc[l] != 0 else rb[l]
        elif op == OP_CMPGT:
            rb = reg[b, :width]
            for l in range(width):
                rd[l] = 1 if ra[l] > rb[l] else 0
        elif op == OP_LUT:
            _lookup(rd, ra, luts[i0])
        elif op == OP_MOVI:
            v = _sat(i0)
            for l in range(width):
                rd[l] = v
        elif op == OP_SPILL_STORE:
            sp = spill[i0, :width]
            for l in range(width):
                sp[l] = ra[l]
        elif op == OP_SPILL_LOAD:
            sp = spill[i0, :width]
            for l in range(width):
                rd[l] = sp[l]
        elif op == OP_LOADC:
            cr = consts[i0]
            for l in range(width):
                rd[l] = cr[chan[l]]
        elif op == _ACL:
            k = np.int32(i0)
            lo = np.int32(prog[pc, 6])
            hi = np.int32(prog[pc, 7])
            if prog[pc, 9] >= 0:
                _add_clamp(out[prog[pc, 9], base:base + width], ra, reg[b, :width], i1 == 1, k, lo, hi)
            else:
                _add_clamp(rd, ra, reg[b, :width], i1 == 1, k, lo, hi)
        elif op == _MULQU:
            # _rshift with a shift known to be positive: no branch per lane; the exact add before it in the
            # rounding term, (v + k) * m + rnd; an int32 multiplier (a constant: saturated) and operand, so
            # LLVM multiplies 32 x 32 -> 64 bits
            m = np.int64(np.int32(prog[pc, 6]))
            sh = prog[pc, 7]
            c = i0 * m + (np.int64(1) << (sh - 1))
            if i1 == 1:
                rb = reg[b, :width]
                for l in range(width):
                    rd[l] = _sat((np.int64(np.int32(ra[l] + rb[l])) * m + c) >> sh)
            else:
                for l in range(width):
                    rd[l] = _sat((np.int64(ra[l]) * m + c) >> sh)
        elif op == OP_MULQ:
            rb = reg[b, :width]
            rc = reg[i0, :width]
            for l in range(width):
                rd[l] = _sat(_rshift(np.int64(ra[l]) * np.int64(rb[l]), np.int64(rc[l])))
        elif op == OP_RMAX or op == OP_RSUM:
            # the pixel's value is complete before any of its lanes is written (dst may be a)
            for g0 in range(0, width, group):
                g1 = min(g0 + group, width)
                acc = np.int64(ra[g0])
                if op == OP_RMAX:
                    for l in range(g0 + 1, g1):
                        acc = max(acc, np.int64(ra[l]))
                else:
                    for l in range(g0 + 1, g1):
                        acc += np.int64(ra[l])
                    acc = _sat(acc)
                for l in range(g0, g1):
                    rd[l] = acc
        elif op == OP_DIVR:
            rb = reg[b, :width]
            for l in range(width):
                rd[l] = _sat(round_divide_nb(np.int64(ra[l]), np.int64(rb[l])))
        elif op == OP_LUTW:
            _lookup32(rd, ra, luts[i0:i0 + 4])
        rec = prog[pc, _REC]
        if rec >= 0:
            t = tabs[rec]
            for l in range(width):
                t[l] = rd[l]
