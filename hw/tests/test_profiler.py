from __future__ import annotations

import json
import re

import pytest
from _programs import conv_relu_program

from axdrive_hw.profiler import (LEVELS, chrome_trace, parse_levels, profile_runs, summarize_runs, trace_lines,
                                 write_chrome_trace)
from axdrive_hw.simulator import Simulator


@pytest.fixture(scope="module")
def run():
    program, ins, _ = conv_relu_program()
    return program, ins, Simulator(program).run(ins)


def test_every_line_carries_one_of_the_documented_tags(run):
    program, _, res = run
    lines = trace_lines(res.timeline, program)
    tags = {re.match(r"\[(B|PB|PE|K|M|T|\?)\]", line).group(1) for line in lines}
    assert tags == set(LEVELS)


def test_levels_select_lines(run):
    program, _, res = run
    only_mem = trace_lines(res.timeline, program, "M")
    assert len(only_mem) == 7 and all(line.startswith("[M]") for line in only_mem)
    b = trace_lines(res.timeline, program, ["B", "K"])
    assert b[0].startswith("[B]") and "begin" in b[0] and b[-1].startswith("[B]") and "end" in b[-1]
    assert {line[:3] for line in b} == {"[B]", "[K]"}


def test_program_end_line_reports_total_cycles_and_seconds(run):
    program, _, res = run
    end = trace_lines(res.timeline, program, "B")[-1]
    assert f"cycles={int(res.cycles)}" in end and f"seconds={res.seconds:.9f}" in end


def test_trace_is_sorted_by_cycle_and_deterministic(run):
    program, ins, res = run
    lines = trace_lines(res.timeline, program)
    cycles = [int(line.split()[1]) for line in lines]
    assert cycles == sorted(cycles)
    assert lines == trace_lines(Simulator(program).run(ins).timeline, program)


def test_unknown_level_is_rejected_naming_it():
    assert parse_levels("all") == LEVELS and parse_levels("[K],T") == ("K", "T")
    with pytest.raises(ValueError, match="profiling level 'X' is not one of"):
        parse_levels("K,X")


def test_chrome_trace_has_one_track_per_core_and_unit(run, tmp_path):
    program, _, res = run
    trace = chrome_trace(res.timeline, program)
    names = {(e["pid"], e["args"]["name"]) for e in trace["traceEvents"] if e["name"] == "thread_name"}
    assert names == {(0, "mvm"), (0, "dpu"), (0, "tokens"), (1, "sysdma")}
    procs = {e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "process_name"}
    assert procs == {"core0", "chip"}
    spans = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert len(spans) == 9 and all(e["dur"] > 0 for e in spans)
    path = tmp_path / "trace.json"
    write_chrome_trace(str(path), res.timeline, program)
    assert json.loads(path.read_text()) == trace


def test_drop_percentile_trims_top_and_bottom():
    samples = [100.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, -50.0]
    full = summarize_runs(samples, 0)
    trimmed = summarize_runs(samples, 10)
    assert full["kept"] == 10 and full["max"] == 100.0
    assert trimmed["kept"] == 8 and (trimmed["min"], trimmed["max"]) == (1.0, 8.0) and trimmed["mean"] == 4.5
    assert summarize_runs([3.0], 40)["kept"] == 1
    with pytest.raises(ValueError, match="profiling_drop_percentile=50"):
        summarize_runs(samples, 50)


def test_profile_runs_summarises_repeated_runs(run):
    program, ins, res = run
    summary = profile_runs(Simulator(program), ins, runs=5, drop_percentile=20)
    assert summary["host_seconds"]["runs"] == 5 and summary["host_seconds"]["kept"] == 3
    assert summary["cycles"]["min"] == summary["cycles"]["max"] == res.cycles
