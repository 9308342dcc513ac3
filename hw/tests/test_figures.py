"""The SVG figures of a run (axdrive_hw.figures): well-formed, one shape per buffer/task, deterministic."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from _programs import conv_relu_program

from axdrive_hw.cycle_model import TaskRecord, Timeline
from axdrive_hw.figures import ROLES, buffer_roles, memory_map_svg, run_figures, timeline_svg
from axdrive_hw.simulator import Simulator

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def run():
    program, ins, _ = conv_relu_program()
    return program, Simulator(program).run(ins).timeline


def _group(svg: str, gid: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    group = root.find(f".//{SVG}g[@id='{gid}']")
    assert group is not None, gid
    return group


def _title(rect: ET.Element) -> str:
    return rect.find(f"{SVG}title").text


def test_roles_follow_how_the_tasks_use_each_buffer(run):
    program, _ = run
    roles = buffer_roles(program)
    assert {n: roles[n] for n in ("x", "y", "w", "w_l1", "bias_l1", "mult", "relu_code", "code_l1", "conv_out",
                                  "act", "x_l1")} == {
        "x": "io", "y": "io", "w": "weights", "w_l1": "weights", "bias_l1": "constants", "mult": "constants",
        "relu_code": "code", "code_l1": "code", "conv_out": "activation", "act": "activation", "x_l1": "activation"}
    assert set(roles.values()) <= set(ROLES)


@pytest.mark.parametrize("level", ["l1", "ddr"])
def test_memory_map_has_one_rectangle_per_buffer_of_the_level(run, level):
    program, timeline = run
    svg = memory_map_svg(program, timeline, level)
    rects = _group(svg, "buffers").findall(f"{SVG}rect")
    names = sorted(b.name for b in program.buffers if b.level == level)
    assert len(rects) == len(names) == (8 if level == "l1" else 7)
    assert sorted(_title(r).split(" [")[0] for r in rects) == names
    roles = buffer_roles(program)
    assert all(r.get("class").split()[0] == roles[_title(r).split(" [")[0]] for r in rects)


def test_memory_map_places_buffers_by_live_range_and_address(run):
    program, timeline = run
    rects = {_title(r).split(" [")[0]: r for r in _group(memory_map_svg(program, timeline, "l1"), "buffers")}
    x = {n: float(r.get("x")) for n, r in rects.items()}
    # x_l1 is live from task 0 (the first DMA), conv_out from task 6 (the conv), act from task 7 (the DPU)
    assert x["x_l1"] < x["conv_out"] < x["act"]
    # address 0 at the bottom: a higher address is higher up (smaller y)
    assert float(rects["act"].get("y")) < float(rects["x_l1"].get("y"))
    # buffers without a live range span the whole inference: the same x and width
    ddr = _group(memory_map_svg(program, timeline, "ddr"), "buffers").findall(f"{SVG}rect")
    assert len({(r.get("x"), r.get("width")) for r in ddr}) == 1


def test_memory_map_draws_the_peak_and_a_capacity_close_above_it(run):
    program, timeline = run
    peak = max(b.address + b.size for b in program.buffers if b.level == "l1")
    svg = memory_map_svg(program, timeline, "l1", capacity=peak + 64)
    assert 'class="peak"' in svg and 'class="cap"' in svg and f"({peak:,} B)" in svg
    far = memory_map_svg(program, timeline, "l1", capacity=1 << 20)
    assert 'class="cap"' not in far and "of 1 MiB usable" in far


def test_a_level_without_buffers_is_an_error(run):
    program, timeline = run
    with pytest.raises(ValueError, match="no buffers in l2"):
        memory_map_svg(program, timeline, "l2")


def test_timeline_has_one_bar_per_task_when_every_task_is_wider_than_a_pixel(run):
    program, timeline = run
    svg = timeline_svg(timeline)
    bars = _group(svg, "tasks").findall(f"{SVG}rect")
    assert len(bars) == len(timeline.records) == sum(len(t) for t in program.tasks)
    units = {r.unit for r in timeline.records}
    assert {b.get("class") for b in bars} == units
    for unit in units:  # one labelled row per unit that ran (the system DMA is the chip's)
        assert (">chip sysdma<" if unit == "sysdma" else f">core0 {unit}<") in svg


def test_timeline_merges_runs_of_sub_pixel_tasks_and_counts_them():
    # 400 one-cycle DMA tasks back to back, then one long MVM task: the DMA row is far below a pixel per task
    recs = [TaskRecord(0, i, "dma", "copy2d", "dma0", i, i, i + 1) for i in range(400)]
    recs.append(TaskRecord(0, 400, "mvm", "conv2d", "mvm", 400, 400, 100_000))
    timeline = Timeline(recs, [], 100_000.0, 800_000_000, 1, [100_000.0])
    bars = _group(timeline_svg(timeline), "tasks").findall(f"{SVG}rect")
    dma = [b for b in bars if b.get("class") == "dma0"]
    assert len(dma) == 1 and _title(dma[0]).startswith("core0 dma0: 400 tasks (0..399)")
    assert len([b for b in bars if b.get("class") == "mvm"]) == 1


def test_host_transfers_add_a_host_link_row(run):
    _, timeline = run
    svg = timeline_svg(timeline, host_transfers=[(0, 20, "frame 0 input x"), (30, 30, "mapped: no bar")])
    assert len(_group(svg, "host").findall(f"{SVG}rect")) == 1 and ">host link<" in svg


def test_same_inputs_give_byte_identical_svg(run):
    program, timeline = run
    assert memory_map_svg(program, timeline, "l1") == memory_map_svg(program, timeline.copy(), "l1")
    assert timeline_svg(timeline) == timeline_svg(timeline.copy())
    first, again = run_figures(program, timeline), run_figures(program, timeline.copy())
    assert first == again and sorted(first) == ["memory_map_ddr.svg", "memory_map_l1.svg", "timeline.svg"]
    # fixed number formatting: every coordinate has exactly one decimal
    numbers = re.findall(r' (?:x|y|x1|y1|x2|y2|width|height)="([^"]*)"', first["timeline.svg"])
    assert numbers and all(re.fullmatch(r"-?\d+\.\d", v) for v in numbers)
