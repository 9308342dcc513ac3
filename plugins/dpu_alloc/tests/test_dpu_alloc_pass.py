"""The pass: every node with a DPU program gets its physical code."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import structlog

from axdrive.config import CompilerConfig
from axdrive.ir import Graph, Node
from axdrive_dpu_alloc import DpuAllocationError, allocate_registers, axdrive_passes
from axdrive_dpu_alloc.examples import concat_add, hardswish, silu


def _ctx(algorithm: str, nodes: list[Node]) -> SimpleNamespace:
    from axdrive_hw.plugin import TARGET
    from axdrive_hw.target import target_for_config

    config = CompilerConfig(dpu_allocation_algorithm=algorithm)
    return SimpleNamespace(config=config, graph=Graph(nodes=nodes), log=structlog.get_logger(),
                           stash={TARGET: target_for_config(config)})  # what aipu.target provides


@pytest.mark.parametrize("algorithm", ["try_all", "graph", "lazy", "backjump_recursive"])
def test_every_dpu_program_is_allocated_and_summarised(algorithm):
    nodes = [Node("conv_silu", "Conv", attrs={"dpu_program": silu()}), Node("relu", "Relu"),
             Node("concat", "Concat", attrs={"dpu_program": concat_add(8)}),
             Node("hs", "HardSwish", attrs={"dpu_program": hardswish()})]
    stats = allocate_registers.run(_ctx(algorithm, nodes))
    expected = "graph" if algorithm == "try_all" else algorithm
    assert stats["programs"] == 3 and stats["spills"] == {"graph": 9, "lazy": 8, "backjump_recursive": 8}[expected]
    assert stats[f"allocated_by_{expected}"] == 3
    code = nodes[2].attrs["dpu_code"]
    assert code.dtype == np.int32 and code.shape[1] == 6
    assert nodes[2].attrs["dpu_allocation"]["algorithm"] == expected
    assert "dpu_code" not in nodes[1].attrs


def test_a_failure_names_the_node():
    from axdrive.ir import VInstr, VProgram

    wide = VProgram(tuple([VInstr("load", v, (), (0,)) for v in range(81)] +
                          [VInstr("store", None, (v,), (0, 1)) for v in range(81)]))
    with pytest.raises(DpuAllocationError, match="^node 'Concat_9': no DPU register allocation with 16 registers"):
        allocate_registers.run(_ctx("lazy", [Node("Concat_9", "Concat", attrs={"dpu_program": wide})]))


def test_the_pass_runs_after_the_dpu_programs_are_built_and_provides_registers_allocated():
    assert allocate_registers.requires == ("dpu_programs_built", "target_loaded")
    assert allocate_registers.provides == ("registers_allocated",)
    assert axdrive_passes() == [allocate_registers]
