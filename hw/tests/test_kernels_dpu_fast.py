"""The interpreter's compact form against the numpy reference.

``run_dpu_program_into`` turns a program into fewer, cheaper passes before running it: values set by
``movi`` become constant rows or immediates, values computed from one int8 stream become 256-entry tables
(one lookup, or a gather from the input straight into the output), adds that cannot overflow run without
saturation, spills disappear, registers are renamed, exact adds fuse into a following mulq and chains of
adds and clamps into one clamp. These tests run random programs over every opcode on int8 and int32
streams, requantization chains whose intermediate values are also read elsewhere, and the table lookups
on their own (the AVX-512 VBMI code and the portable loops), with int8 and int32 outputs, element counts
that are not a multiple of a pass, channel counts that do not divide it and several parallel parts, and
compare with :func:`axdrive_hw.reference.dpu_ref` (the simulator's int8 saturation of an int8 output on top).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from axdrive_hw.kernels.dpu import OPCODES, DpuProgramBuilder, run_dpu_program_into, validate_dpu_program
from axdrive_hw.reference import dpu_ref

from _programs import draw_dpu_body

REGS, LANES, SLOTS = 16, 64, 8
N_LUT, N_CONST = 5, 2


def _check(code, inputs, consts, luts, chans, n_out, threads=1):
    validate_dpu_program(code, registers=REGS, n_inputs=inputs.shape[0], n_outputs=n_out, n_luts=luts.shape[0],
                         n_consts=consts.shape[0], spill_slots=SLOTS)
    want = dpu_ref(code, inputs.astype(np.int32), consts, luts, chans, n_out, REGS)
    wide = np.full((n_out, inputs.shape[1]), 7, np.int32)
    run_dpu_program_into(code, inputs, consts, luts, chans, REGS, LANES, SLOTS, wide, threads)
    assert np.array_equal(wide, want)
    narrow = np.full((n_out, inputs.shape[1]), 7, np.int8)
    run_dpu_program_into(code, inputs, consts, luts, chans, REGS, LANES, SLOTS, narrow, threads)
    assert np.array_equal(narrow, np.clip(want, -128, 127).astype(np.int8))


@st.composite
def byte_programs(draw):
    """Random valid programs over every opcode, with loads, movi and luts frequent: chains of one stream."""
    n_in, n_out = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    b = DpuProgramBuilder()
    for i in range(n_in):
        b.load(i, i)

    def imm_of(draw, op, c, stored):
        small = draw(st.booleans())
        return {"load": lambda: draw(st.integers(0, n_in - 1)), "lut": lambda: draw(st.integers(0, N_LUT - 1)),
                "lutw": lambda: draw(st.integers(0, N_LUT - 4)), "loadc": lambda: draw(st.integers(0, N_CONST - 1)),
                "spill_store": lambda: draw(st.integers(0, SLOTS - 1)),
                "spill_load": lambda: draw(st.sampled_from(sorted(stored))),
                "select": lambda: c, "mulq": lambda: c, "shift_round": lambda: draw(st.integers(-40, 70)),
                "movi": lambda: draw(st.integers(-40, 70) if small else st.integers(-(2**31), 2**31 - 1)),
                }.get(op, lambda: draw(st.integers(-300, 300) if small else st.integers(-(2**31), 2**31 - 1)))()

    ops = [o for o in OPCODES if o not in ("store", "nop")] + ["load", "load", "movi", "movi", "lut", "mulq",
                                                                   "spill_store", "spill_load", "loadc", "add"]
    written = draw_dpu_body(draw, b, n_in, ops, draw(st.integers(1, 30)), REGS, imm_of,
                            lambda draw: draw(st.integers(-300, 300)))
    for o in range(n_out):
        b.store(draw(st.sampled_from(sorted(written))), o, int8=draw(st.booleans()))
    chans = draw(st.integers(1, 200))
    e = draw(st.integers(1, 5000))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    inputs = rng.integers(-128, 128, (n_in, e)).astype(np.int8)
    consts = rng.integers(-(2**31), 2**31, (N_CONST, chans)).astype(np.int32)
    luts = rng.integers(-128, 128, (N_LUT, 256)).astype(np.int8)
    return b.build(), inputs, consts, luts, chans, n_out


@settings(max_examples=300, deadline=None)
@given(byte_programs(), st.booleans())
def test_random_programs_on_int8_streams_match_the_reference(case, strided):
    code, inputs, consts, luts, chans, n_out = case
    if strided:  # streams that are not C-contiguous: the portable lookup loops
        inputs = np.repeat(inputs, 2, axis=1)[:, ::2]
    _check(code, inputs, consts, luts, chans, n_out)


@settings(max_examples=60, deadline=None)
@given(byte_programs())
def test_random_programs_on_int32_streams_match_the_reference(case):
    """int32 streams: no unary values, constants only (the int8 values, widened)."""
    code, inputs, consts, luts, chans, n_out = case
    _check(code, inputs.astype(np.int32), consts, luts, chans, n_out)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(0, 2**31), st.integers(1, 130_000), st.sampled_from([1, 3, 64, 70, 128, 384]),
       st.booleans(), st.integers(1, 3))
def test_lookup_programs_gather_from_the_input_into_the_output(n_in, seed, e, chans, int8_store, threads):
    """``load, lut, store`` per stream (chains of luts and arithmetic too): a gather, exact for any length."""
    rng = np.random.default_rng(seed)
    b = DpuProgramBuilder()
    for i in range(n_in):
        b.load(i, i)
        b.lut(i, i, table=int(rng.integers(0, N_LUT)))
        if seed % 3 == 1:
            b.addi(i, i, int(rng.integers(-300, 300)))
            b.lut(4, i, table=0)
            b.movi(5, int(rng.integers(-5, 5)))
            b.mul(i, 4, 5)
        b.store(i, i, int8=int8_store)
    inputs = rng.integers(-128, 128, (n_in, e)).astype(np.int8)
    luts = rng.integers(-128, 128, (N_LUT, 256)).astype(np.int8)
    _check(b.build(), inputs, np.zeros((1, chans), np.int32), luts, chans, n_in, threads)
    _check(b.build(), inputs.astype(np.int32), np.zeros((1, chans), np.int32), luts, chans, n_in, threads)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 4), st.integers(0, 2**31), st.integers(1, 70_000), st.sampled_from([1, 3, 64, 70, 128, 384]),
       st.integers(1, 3))
def test_requantizing_concats_and_adds_match_the_reference(n_in, seed, e, chans, threads):
    """The programs the lowering writes for a residual add / concat requantization (movi multipliers)."""
    rng = np.random.default_rng(seed)
    b = DpuProgramBuilder()
    acc = None
    for i in range(n_in):
        b.load(0, i)
        b.addi(2, 0, int(rng.integers(-128, 128)))
        b.movi(1, int(rng.integers(2**29, 2**31)))
        b.movi(0, int(rng.integers(0, 40)))
        b.mulq(3 if acc is None else 0, 2, 1, 0)
        if acc is not None:
            b.add(2, 3, 0)
            b.movi(1, int(rng.integers(2**29, 2**31)))
            b.movi(0, int(rng.integers(20, 40)))
            b.mulq(3, 2, 1, 0)
        acc = 3
    b.addi(0, 3, int(rng.integers(-128, 128)))
    b.clamp(0, 0, -128, 127)
    b.store(0, 0, int8=bool(seed % 2))
    inputs = rng.integers(-128, 128, (n_in, e)).astype(np.int8)
    _check(b.build(), inputs, np.zeros((1, chans), np.int32), np.zeros((1, 256), np.int8), chans, 1, threads)


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 2**31), st.integers(2, 3), st.sampled_from([64, 70, 384]))
def test_large_tasks_split_into_parallel_parts_match_the_reference(seed, threads, chans):
    """Enough work for several parallel parts (each with its own registers): a lookup, a requantizing add
    and per-channel constants, over int8 streams."""
    rng = np.random.default_rng(seed)
    b = DpuProgramBuilder()
    b.load(0, 0); b.lut(1, 0, table=1); b.load(2, 1); b.addi(2, 2, int(rng.integers(-128, 128)))
    b.movi(3, int(rng.integers(2**29, 2**31))); b.movi(4, int(rng.integers(20, 35))); b.mulq(5, 2, 3, 4)
    b.add(6, 1, 5); b.loadc(7, 0); b.mul(6, 6, 7); b.mulq(8, 6, 3, 4); b.loadc(9, 1); b.add(8, 8, 9)
    b.clamp(8, 8, -128, 127); b.store(8, 0); b.rmax(10, 8); b.sub(10, 10, 8); b.store(10, 1, int8=False)
    e = 300_000 + int(rng.integers(0, 1000))
    inputs = rng.integers(-128, 128, (2, e)).astype(np.int8)
    consts = rng.integers(-3, 4, (N_CONST, chans)).astype(np.int32)
    luts = rng.integers(-128, 128, (N_LUT, 256)).astype(np.int8)
    _check(b.build(), inputs, consts, luts, chans, 2, threads)


def _njit_lookups():
    from numba import njit

    from axdrive_hw.kernels.dpu import _lookup, _lookup32

    @njit
    def lookup(o, x, t):
        _lookup(o, x, t)

    @njit
    def lookup32(o, x, planes):
        _lookup32(o, x, planes)

    return _lookup, _lookup32, lookup, lookup32


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31), st.integers(0, 700), st.booleans(), st.booleans(), st.booleans())
def test_table_lookups_agree_with_numpy_compiled_portable_and_in_python(seed, n, wide_index, wide_out, strided):
    """``_lookup`` (lut) and ``_lookup32`` (lutw, the folded tables): the VBMI code where the CPU has it,
    the portable loop for a strided array, and the plain Python bodies (what NUMBA_DISABLE_JIT runs)."""
    lookup_py, lookup32_py, lookup, lookup32 = _njit_lookups()
    rng = np.random.default_rng(seed)
    t8 = rng.integers(-128, 128, 256).astype(np.int8)
    t32 = rng.integers(-(2**31), 2**31, 256).astype(np.int64)
    planes = np.stack([((t32 >> (8 * k)) & 0xFF).astype(np.uint8).view(np.int8) for k in range(4)])
    x = rng.integers(-300, 300, n).astype(np.int32) if wide_index else rng.integers(-128, 128, n).astype(np.int8)
    if strided:  # not C-contiguous: the portable loop
        x = np.repeat(x, 2)[::2]
    q = np.clip(x.astype(np.int64), -128, 127) + 128
    odt = np.int32 if wide_out else np.int8
    want8 = t8[q].astype(odt)
    want32 = (t32[q].astype(np.uint32).view(np.int32) if wide_out
              else np.clip(t32[q].astype(np.uint32).view(np.int32), -128, 127).astype(np.int8))
    for f8, f32 in ((lookup, lookup32), (lookup_py, lookup32_py)):
        o = np.full(n, 5, odt)
        f8(o, x, t8)
        assert np.array_equal(o, want8)
        o = np.full(n, 5, odt)
        f32(o, x, planes)
        assert np.array_equal(o, want32)


@st.composite
def chain_programs(draw):
    """Arithmetic on general values (two streams added, a per-channel constant): adds, immediates near the
    int32 limits, clamps (also empty ones), min/max with constants, mulq by constants, values read once or
    several times, stores in between: what the fused rows (exact adds into a mulq, adds and clamps into
    one clamp, a store's saturation) must get right."""
    wide = draw(st.booleans())
    b = DpuProgramBuilder()
    b.load(0, 0); b.load(1, 1); b.add(2, 0, 1); b.loadc(3, 0)
    live = [0, 1, 2, 3]
    stored = 0
    big = draw(st.booleans())  # immediates near the int32 limits, or the small ones a requantization has
    imm = st.one_of(st.integers(-300, 300), st.integers(-(2**31), 2**31 - 1),
                    st.sampled_from([2**31 - 1, -(2**31), 2**30, -(2**30), 127, -128, 0])) if big \
        else st.integers(-300, 300)
    for _ in range(draw(st.integers(3, 25))):
        op = draw(st.sampled_from(["addi", "addi", "add", "sub", "clamp", "clamp", "min", "max", "mulq", "mulq",
                                   "muli", "store"]))
        a = draw(st.sampled_from([live[-1]] * len(live) + live))  # mostly the last value: chains
        d = draw(st.sampled_from([a, draw(st.integers(0, 11))]))  # in place, or any register
        if op == "store":
            b.store(a, min(stored, 2), int8=draw(st.booleans()))
            stored += 1
            continue
        if op == "addi":
            b.addi(d, a, draw(imm))
        elif op == "muli":
            b.muli(d, a, draw(st.integers(-70000, 70000)))
        elif op in ("add", "sub"):
            other = draw(st.sampled_from(live))
            b.emit(op, d, *((a, other) if draw(st.booleans()) else (other, a)))
        elif op == "clamp":
            lo, hi = draw(imm), draw(imm)
            b.clamp(d, a, *(sorted((lo, hi)) if draw(st.booleans()) else (lo, hi)))
        elif op in ("min", "max"):
            b.movi(12, draw(imm))
            b.emit(op, d, a, 12)
        else:
            b.movi(13, draw(st.integers(-(2**31), 2**31 - 1) if big else st.integers(2**29, 2**31 - 1)))
            b.movi(14, draw(st.sampled_from([draw(st.integers(-5, 40)), 31, 30, 62, 0, -31]) if big
                            else st.integers(25, 40)))
            b.mulq(d, a, 13, 14)
        live.append(d)
    b.store(draw(st.sampled_from(live)), min(stored, 2), int8=draw(st.booleans()))
    n_out = min(stored, 2) + 1
    chans = draw(st.sampled_from([1, 3, 64, 70]))
    e = draw(st.integers(1, 3000))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    if wide:
        inputs = rng.integers(-(2**31), 2**31, (2, e)).astype(np.int32)
        if draw(st.booleans()):
            inputs = (inputs >> 16).astype(np.int32)
    else:
        inputs = rng.integers(-128, 128, (2, e)).astype(np.int8)
    consts = rng.integers(-1000, 1000, (N_CONST, chans)).astype(np.int32)
    return b.build(), inputs, consts, np.zeros((N_LUT, 256), np.int8), chans, n_out


@settings(max_examples=400, deadline=None)
@given(chain_programs())
def test_arithmetic_chains_on_general_values_match_the_reference(case):
    code, inputs, consts, luts, chans, n_out = case
    _check(code, inputs, consts, luts, chans, n_out)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**31), st.lists(st.booleans(), min_size=7, max_size=7), st.booleans(), st.booleans())
def test_fused_requantization_keeps_the_values_others_read(seed, also_stored, wide, int8_store):
    """``add, addi, mulq, addi, clamp, addi, clamp, store`` (the rows fuse to a mulq of a sum and one clamp),
    with intermediate values also stored at the end: a second reader, so they must not be fused away."""
    rng = np.random.default_rng(seed)
    b = DpuProgramBuilder()
    b.load(0, 0); b.load(1, 1)
    b.add(2, 0, 1)
    b.addi(3, 2, int(rng.integers(-300, 300)))
    b.movi(14, int(rng.integers(2**29, 2**31))); b.movi(15, int(rng.integers(20, 40)))
    b.mulq(4, 3, 14, 15)
    b.addi(5, 4, int(rng.integers(-(2**31), 2**31)) if wide else int(rng.integers(-300, 300)))
    b.clamp(6, 5, *sorted(int(v) for v in rng.integers(-400, 400, 2)))
    b.addi(7, 6, int(rng.integers(-300, 300)))
    b.clamp(8, 7, -128, 127)
    b.store(8, 0, int8=int8_store)
    n_out = 1
    for r, extra in zip(range(2, 9), also_stored):
        if extra:
            b.store(r, n_out, int8=int8_store)
            n_out += 1
    e = int(rng.integers(1, 5000))
    inputs = (rng.integers(-(2**31), 2**31, (2, e)).astype(np.int32) if wide
              else rng.integers(-128, 128, (2, e)).astype(np.int8))
    _check(b.build(), inputs, np.zeros((1, 3), np.int32), np.zeros((N_LUT, 256), np.int8), 3, n_out)
