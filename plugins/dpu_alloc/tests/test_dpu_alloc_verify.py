"""The verifier rejects corrupted allocations, naming the instruction."""

from __future__ import annotations

import numpy as np
import pytest
from axdrive_hw.kernels.dpu import OPCODES

from axdrive.ir import VInstr, VProgram
from axdrive_dpu_alloc import AllocationVerifyError, allocate, verify_allocation
from axdrive_dpu_alloc.examples import concat_add


def _two_values() -> VProgram:
    return VProgram((VInstr("load", 0, (), (0,)), VInstr("load", 1, (), (1,)), VInstr("add", 2, (0, 1)),
                     VInstr("store", None, (2,), (0, 1))), n_inputs=2)


def test_a_correct_allocation_passes():
    result = allocate(_two_values(), "graph")
    verify_allocation(_two_values(), result.code, result.origin, registers=16, spill_slots=64)


def test_two_live_values_in_one_register_are_caught():
    program = _two_values()
    result = allocate(program, "lazy")
    code = result.code.copy()
    code[1, 1] = code[0, 1]  # the second load overwrites the first, still live
    with pytest.raises(AllocationVerifyError, match=r"instruction 1 \(load\): overwrites r\d+ holding %0, which "
                                                    r"virtual instruction 2 still reads .*two live values share"):
        verify_allocation(program, code, result.origin, registers=16, spill_slots=64)


def test_a_use_before_reload_is_caught():
    program = concat_add(6)
    result = allocate(program, "graph")
    assert result.reloads > 0
    rows = [i for i, op in enumerate(result.code[:, 0]) if op == OPCODES["spill_load"]]
    # Turn a reload into a nop (origin stays "spill code": drop the row instead).
    keep = np.ones(len(result.code), dtype=bool)
    keep[rows[0]] = False
    with pytest.raises(AllocationVerifyError, match=r"reads %\d+ from r\d+, which holds .*not reloaded|before any write"):
        verify_allocation(program, result.code[keep], result.origin[keep], registers=16, spill_slots=64)


def test_a_reload_from_the_wrong_slot_is_caught():
    program = concat_add(8)
    result = allocate(program, "backjump_recursive")
    code = result.code.copy()
    stores = [i for i, op in enumerate(code[:, 0]) if op == OPCODES["spill_store"]]
    loads = [i for i, op in enumerate(code[:, 0]) if op == OPCODES["spill_load"]]
    last = loads[-1]
    other = next(code[s, 4] for s in stores if s < last and code[s, 4] != code[last, 4])
    code[last, 4] = other
    with pytest.raises(AllocationVerifyError, match="reads %"):
        verify_allocation(program, code, result.origin, registers=16, spill_slots=64)


def test_too_many_slots_and_a_missing_instruction_are_caught():
    program = concat_add(8)
    result = allocate(program, "lazy")
    with pytest.raises(AllocationVerifyError, match="outside 0..1"):
        verify_allocation(program, result.code, result.origin, registers=16, spill_slots=2)
    with pytest.raises(AllocationVerifyError, match=r"virtual instruction \d+ \(store .*\) is missing"):
        verify_allocation(program, result.code[:-1], result.origin[:-1], registers=16, spill_slots=64)
