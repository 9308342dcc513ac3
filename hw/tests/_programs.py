"""Small programs the simulator, format, cycle-model and profiler tests share."""

from __future__ import annotations

import numpy as np

from axdrive_hw.kernels.dpu import DpuProgramBuilder
from axdrive_hw.numerics import quantize_multiplier
from axdrive_hw.program.model import Program, ProgramBuilder


def conv_relu_program(seed: int = 0, *, c: int = 5, o: int = 7, h: int = 6, w: int = 6, x_zp: int = 3,
                      tokens: bool = True) -> tuple[Program, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """DDR -> L1 (DMA), 3x3 conv with fused requant (MVM), ReLU via DPU, L1 -> DDR (DMA).

    Returns the program, its inputs and the raw parameters for a reference.
    """
    rng = np.random.default_rng(seed)
    wt = rng.integers(-127, 128, (o, 3, 3, c), dtype=np.int8)
    bias = rng.integers(-2000, 2000, o).astype(np.int32)
    m, s = quantize_multiplier(np.linspace(2e-3, 8e-3, o))
    pb = ProgramBuilder("aipu_v1", cores=1)
    x = pb.input("x", (1, h, w, c))
    y = pb.output("y", (1, h, w, o))
    wd = pb.constant("w", wt)
    bd = pb.constant("bias", bias)
    md = pb.constant("mult", m.astype(np.int32))
    sd = pb.constant("shift", s.astype(np.int32))
    relu = DpuProgramBuilder()
    relu.load(0, 0); relu.movi(1, -1); relu.max(2, 0, 1); relu.store(2, 0)  # max(x, zp_out=-1)
    code = pb.constant("relu_code", relu.build())
    l1 = {n: pb.buffer(f"{n}_l1", "l1", r.shape, r.dtype) for n, r in
          (("x", x), ("w", wd), ("bias", bd), ("mult", md), ("shift", sd), ("code", code))}
    acc = pb.buffer("conv_out", "l1", (1, h, w, o))
    act = pb.buffer("act", "l1", (1, h, w, o))
    tk = (lambda *t: t) if tokens else (lambda *t: ())
    for n, src in (("x", x), ("w", wd), ("bias", bd), ("mult", md), ("shift", sd), ("code", code)):
        pb.dma(0, src, l1[n], signal=tk(1))
    pb.conv2d(0, l1["x"], l1["w"], l1["bias"], acc, x_zp=x_zp, pads=(1, 1, 1, 1), requant=(l1["mult"], l1["shift"], -1),
              wait=tk(1, 1, 1, 1, 1, 1), signal=tk(2), stage="conv")
    pb.dpu(0, [acc], [act], l1["code"], channels=o, wait=tk(2), signal=tk(3), stage="relu")
    pb.dma(0, act, y, wait=tk(3))
    xin = rng.integers(-128, 128, (1, h, w, c), dtype=np.int8)
    return pb.build(), {"x": xin}, {"w": wt, "bias": bias, "m": m, "s": s, "x_zp": x_zp}


def draw_dpu_body(draw, b: DpuProgramBuilder, n_in: int, ops: list[str], steps: int, registers: int,
                  imm_of, imm1_of) -> set[int]:
    """Draw ``steps`` random instructions of ``ops`` into ``b`` after ``n_in`` loads into registers
    ``0..n_in-1``, keeping the program valid: every register or spill slot read was written before.
    ``imm_of(draw, op, c, stored)`` picks the first immediate (``c`` is a written register, ``stored`` the
    written slots), ``imm1_of(draw)`` the second. Returns the written registers."""
    from hypothesis import strategies as st

    written, stored = set(range(n_in)), set()
    for _ in range(steps):
        op = draw(st.sampled_from(ops))
        d = draw(st.integers(0, registers - 1))
        a, bb, c = (draw(st.sampled_from(sorted(written))) for _ in range(3))
        if op == "spill_load" and not stored:
            continue
        imm, imm1 = imm_of(draw, op, c, stored), imm1_of(draw)
        if op == "clamp":
            imm, imm1 = min(imm, imm1), max(imm, imm1)
        b.emit(op, d, a, bb, imm, imm1)
        if op == "spill_store":
            stored.add(imm)
        else:
            written.add(d)
    return written
