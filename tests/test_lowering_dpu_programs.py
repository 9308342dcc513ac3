"""``lowering.build_dpu_programs``: element-wise tails fused after a unit become one virtual DPU
program whose allocated code computes exactly what run_integer does."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from _toy_models import toy_model

from axdrive import driver
from axdrive.config import CompilerConfig
from axdrive.ir import VProgram
from axdrive.reference import run_integer
from axdrive_dpu_alloc import ALGORITHMS, allocate
from axdrive_hw.kernels.dpu import run_dpu_program, validate_dpu_program
from axdrive_lowering._dpu_programs import build_dpu_programs


def _model():
    """conv -> SiLU (Sigmoid*x) -> + other conv -> * per-channel constant: one layer with a 3-node tail."""
    rng = np.random.default_rng(9)
    inits = {"w1": rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32),
             "w2": rng.normal(0, 0.3, (8, 3, 1, 1)).astype(np.float32),
             "scale": rng.uniform(0.5, 2, (1, 8, 1, 1)).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["x", "w2"], ["r"]),
             helper.make_node("Sigmoid", ["c"], ["s"]),
             helper.make_node("Mul", ["c", "s"], ["silu"]),
             helper.make_node("Add", ["silu", "r"], ["a"]),
             helper.make_node("Mul", ["a", "scale"], ["y"])]
    return toy_model(nodes, inits)


@pytest.fixture(scope="module")
def core(tmp_path_factory):
    cfg = CompilerConfig()
    cfg.compiler_mode = "quantize_only"
    cfg.run_graph_cleaner = False
    cfg.remove_io_quantization = True
    cal = {"x": np.random.default_rng(0).uniform(-1, 1, (4, 3, 8, 8)).astype(np.float32)}
    return driver.compile(_model(), cfg, output_dir=tmp_path_factory.mktemp("q"), calibration=cal).graph


def test_an_elementwise_tail_fuses_into_the_layer_of_the_unit_before_it(core):
    g = core.copy()
    stats = build_dpu_programs(g)
    head = next(n for n in g.nodes if n.attrs.get("dpu_tail"))
    assert head.op == "Conv" and len(head.attrs["dpu_tail"]) == 3  # SiLU LUT, residual add, constant mul
    assert stats["fused_tail_nodes"] == 3 and stats["programs"] == 1 and stats["standalone_dpu_nodes"] == 0
    program = head.attrs["dpu_program"]
    assert isinstance(program, VProgram) and program.n_luts == 1 and program.n_consts == 1
    assert head.attrs["dpu_streams"][0] == head.outputs[0] and head.attrs["dpu_output"] == "y"
    assert all(g.node(n).attrs["fused_into"] == head.name for n in head.attrs["dpu_tail"])


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_allocated_program_computes_the_integer_semantics_of_the_tail(core, algorithm):
    g = core.copy()
    build_dpu_programs(g)
    head = next(n for n in g.nodes if n.attrs.get("dpu_tail"))
    x = np.random.default_rng(3).integers(-128, 128, (1, 3, 8, 8)).astype(np.int8)
    env = run_integer(g, {"x": x}, keep_all=True)
    code = allocate(head.attrs["dpu_program"], algorithm).code
    streams = np.stack([env[s].transpose(0, 2, 3, 1).astype(np.int32).ravel() for s in head.attrs["dpu_streams"]])
    consts, luts = head.attrs["dpu_consts"], head.attrs["dpu_luts"]
    validate_dpu_program(code, registers=16, n_inputs=len(streams), n_outputs=1, n_luts=len(luts),
                         n_consts=len(consts), spill_slots=64)
    out = run_dpu_program(code, streams, consts, luts, 8, 1, 16, 64, 64)[0]
    np.testing.assert_array_equal(out.reshape(1, 8, 8, 8).transpose(0, 3, 1, 2), env["y"])
