"""Every allocator: verified, bit-exact on the hardware interpreter, and
backjump_recursive minimal against exhaustive search."""

from __future__ import annotations

import numpy as np
import pytest
from _dpu_programs import interpret, programs, run_physical, stimulus
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from axdrive.ir import VInstr, VProgram, max_pressure
from axdrive_dpu_alloc import ALGORITHMS, DpuAllocationError, allocate, verify_allocation
from axdrive_dpu_alloc._backjump import min_spill_set
from axdrive_dpu_alloc._exhaustive import exhaustive_min_spills
from axdrive_dpu_alloc.examples import concat_add, generated_suite, random_program

_SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check_bit_exact(program: VProgram, algorithm: str, **kwargs) -> None:
    result = allocate(program, algorithm, **kwargs)
    verify_allocation(program, result.code, result.origin, registers=16, spill_slots=64)
    assert result.registers_used <= 16
    inputs, consts, luts = stimulus(program)
    expected = interpret(program, inputs, consts, luts)
    np.testing.assert_array_equal(run_physical(program, result.code, inputs, consts, luts), expected)


@_SETTINGS
@given(programs(), st.sampled_from(("try_all", "graph", "lazy")))
def test_every_algorithm_computes_what_the_virtual_program_computes(program, algorithm):
    assert max_pressure(program) > 16
    _check_bit_exact(program, algorithm)


@_SETTINGS
@given(programs(17, 20, max_extra_ops=7))
def test_backjump_computes_what_the_virtual_program_computes(program):
    # The search is meant for small programs: a spent budget is a clean,
    # allowed failure (try_all moves on), anything else is a bug.
    assert max_pressure(program) > 16
    try:
        _check_bit_exact(program, "backjump_recursive", budget=5_000)
    except DpuAllocationError as exc:
        assert "search budget" in str(exc)
        reject()


@pytest.mark.parametrize("program", generated_suite()[:12], ids=lambda p: p.name)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_benchmark_tails_run_bit_exactly(program, algorithm):
    result = allocate(program, algorithm, budget=5_000)
    inputs, consts, luts = stimulus(program, seed=1)
    np.testing.assert_array_equal(run_physical(program, result.code, inputs, consts, luts),
                                  interpret(program, inputs, consts, luts))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(3, 6), st.integers(2, 4))
def test_backjump_spills_as_few_values_as_exhaustive_search(seed, sources, registers):
    rng = np.random.default_rng(seed)
    program = random_program(rng, sources, 7 - sources + int(rng.integers(0, 2)), n_outputs=2)
    if any(i.op in ("select", "mulq") for i in program.instrs):
        registers = max(registers, 3)  # they read three registers at once
    assert len(program.values) <= 8
    best = exhaustive_min_spills(program, registers)
    spilled = min_spill_set(program, registers)
    assert len(spilled) == best
    result = allocate(program, "backjump_recursive", registers=registers)
    assert result.spills == best
    inputs, consts, luts = stimulus(program, seed=seed % 1000)
    np.testing.assert_array_equal(run_physical(program, result.code, inputs, consts, luts, registers=registers),
                                  interpret(program, inputs, consts, luts))


def test_backjump_never_spills_more_than_graph_on_programs_without_copies():
    # Without copies both work in the same model (spill everywhere, one register
    # per value); with copies graph may share a register between a copy and its
    # source, which the search does not model.
    for program in generated_suite()[:9]:
        assert not any(i.is_copy for i in program.instrs)
        spills = {a: allocate(program, a).spills for a in ("graph", "backjump_recursive")}
        assert spills["backjump_recursive"] <= spills["graph"], program.name


def test_try_all_reports_which_algorithm_succeeded():
    result = allocate(concat_add(8), "try_all")
    assert result.algorithm == "graph"
    assert [(a.algorithm, a.ok) for a in result.attempts] == [("graph", True)]
    # Five registers and three slots: graph and lazy run out of slots; the
    # fewest spilled values fit.
    rng = np.random.default_rng(94)
    program = random_program(rng, int(rng.integers(6, 14)), int(rng.integers(6, 16)))
    result = allocate(program, "try_all", registers=5, spill_slots=3)
    assert [(a.algorithm, a.ok) for a in result.attempts] == [("graph", False), ("lazy", False),
                                                               ("backjump_recursive", True)]
    assert result.algorithm == "backjump_recursive"
    assert "spill slots" in result.attempts[0].reason and "spill slots" in result.attempts[1].reason
    assert result.slots_used <= 3
    inputs, consts, luts = stimulus(program)
    np.testing.assert_array_equal(run_physical(program, result.code, inputs, consts, luts, registers=5,
                                               spill_slots=3), interpret(program, inputs, consts, luts))


def test_backjump_fails_cleanly_when_its_budget_is_spent():
    program = random_program(np.random.default_rng(3), 40, 80)
    result = allocate(program, "try_all")
    assert result.algorithm == "graph"
    from axdrive_dpu_alloc._backjump import allocate_backjump
    from axdrive_dpu_alloc._failure import AllocationFailed
    with pytest.raises(AllocationFailed, match="search budget of 500 nodes spent"):
        allocate_backjump(program, 16, 64, budget=500)


def test_an_unallocatable_program_fails_with_one_line_naming_node_and_numbers():
    # 80 values all live at once: 16 registers + 64 slots is one too few.
    n = 81
    instrs = [VInstr("load", v, (), (0,)) for v in range(n)]
    instrs += [VInstr("store", None, (v,), (0, 1)) for v in range(n)]
    program = VProgram(tuple(instrs), name="wide")
    with pytest.raises(DpuAllocationError) as info:
        allocate(program, "try_all", node="Concat_17")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("node 'Concat_17': no DPU register allocation with 16 registers and 64 spill slots")
    assert "81 live at instruction 80" in message
    for name in ("graph:", "lazy:", "backjump_recursive:"):
        assert name in message


def test_too_few_registers_for_one_instruction_is_reported():
    program = VProgram((VInstr("load", 0, (), (0,)), VInstr("load", 1, (), (0,)), VInstr("load", 2, (), (0,)),
                        VInstr("select", 3, (0, 1, 2)), VInstr("store", None, (3,), (0, 1))))
    with pytest.raises(DpuAllocationError, match="alone needs 3 registers for reading, more than 2"):
        allocate(program, "backjump_recursive", registers=2)


def test_graph_coalesces_copies_away():
    program = VProgram((VInstr("load", 0, (), (0,)), VInstr("addi", 1, (0,), (0,)), VInstr("addi", 2, (1,), (5,)),
                        VInstr("store", None, (2,), (0, 1))))
    result = allocate(program, "graph")
    assert result.copies_removed == 1 and len(result.code) == 3


def test_unknown_algorithm_is_named():
    with pytest.raises(DpuAllocationError, match="unknown DPU allocation algorithm 'fast'"):
        allocate(concat_add(2), "fast")


@pytest.mark.parametrize("registers", (16, 4))
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_softmax_program_allocates_verifies_and_runs_bit_exactly(algorithm, registers):
    # pixel reductions, divr and lutw are ordinary register operands for every allocator; with 4 registers
    # the select (three operands) and the values live across the reductions force spills
    from axdrive_dpu_alloc.examples import softmax

    program = softmax()
    result = allocate(program, algorithm, registers=registers, budget=5_000)
    verify_allocation(program, result.code, result.origin, registers=registers, spill_slots=64)
    inputs, consts, luts = stimulus(program, seed=3)
    np.testing.assert_array_equal(run_physical(program, result.code, inputs, consts, luts, registers=registers),
                                  interpret(program, inputs, consts, luts))
