"""The core's virtual DPU program: SSA checks, text dump, liveness."""

from __future__ import annotations

import pytest

from axdrive.ir import VInstr, VProgram, live_intervals, max_pressure
from axdrive.ir.dpu import DpuProgramError, pressure_at


def _prog() -> VProgram:
    return VProgram((VInstr("load", 0, (), (0,)), VInstr("load", 1, (), (1,)), VInstr("add", 2, (0, 1)),
                     VInstr("movi", 3, (), (7,)), VInstr("lut", 4, (2,), (0,)), VInstr("store", None, (4,), (0, 1))),
                    n_inputs=2, n_luts=1, name="tail")


def test_dump_is_one_line_per_instruction_with_numbered_values():
    assert _prog().dump().splitlines() == [
        'dpu.program "tail" inputs=2 outputs=1 luts=1 consts=0 {', "  0: %0 = load 0", "  1: %1 = load 1",
        "  2: %2 = add %0, %1", "  3: %3 = movi 7", "  4: %4 = lut %2, 0", "  5: store %4, 0, 1", "}"]


def test_a_value_dies_at_its_last_use_and_an_unread_value_lives_one_instruction():
    iv = live_intervals(_prog())
    assert (iv[0].start, iv[0].end, iv[2].end) == (0, 2, 4)
    assert (iv[3].start, iv[3].end, iv[3].uses) == (3, 4, ())
    assert pressure_at(_prog()) == [1, 2, 1, 2, 1, 0]
    assert max_pressure(_prog()) == 2


def test_use_before_definition_names_the_instruction():
    with pytest.raises(DpuProgramError, match=r"instruction 0 \(%1 = addi %0, 1\): %0 is used before"):
        VProgram((VInstr("addi", 1, (0,), (1,)),))


def test_second_definition_is_rejected_because_values_are_ssa():
    with pytest.raises(DpuProgramError, match="already defined by instruction 0"):
        VProgram((VInstr("load", 0, (), (0,)), VInstr("addi", 0, (0,), (1,))))


def test_operand_shape_and_table_indices_are_checked():
    with pytest.raises(DpuProgramError, match="expects 2 register operand"):
        VInstr("add", 1, (0,))
    with pytest.raises(DpuProgramError, match=r"index 3 outside 0..0"):
        VProgram((VInstr("load", 0, (), (3,)),))
    assert VInstr("addi", 1, (0,), (0,)).is_copy and not VInstr("addi", 1, (0,), (2,)).is_copy
