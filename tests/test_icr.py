"""ICR and SWICR (``axdrive-icr``, ``icr.choose_factors``): factors from the IMC geometry, each config property
changing the decision or the cycles, weight sets split to the array, and outputs bit-exact with and without."""

from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import helper

from axdrive.config import CompilerConfig
from axdrive.errors import SimulationError
from axdrive.passes import PluginHost, resolve_pipeline
from axdrive.runner import execute
from axdrive_hw.cycle_model import CycleModel
from axdrive_hw.imc import conv_mapping, output_channel_groups
from axdrive_hw.program.model import ProgramBuilder, Task
from axdrive_hw.target import load_target
from axdrive_icr import ConvShape, IcrOptions, choose
from _codegen_support import _calibration, _model, _w, assert_bit_exact, lower

TARGET = load_target("aipu_v1")
MVM = TARGET.mvm
OFF = {"enable_icr": False, "enable_swicr": False}

POINTWISE = ConvShape(kh=1, kw=1, channels=64, out_channels=64, stride_w=1, out_width=80, out_height=80)
CONV3X3 = ConvShape(kh=3, kw=3, channels=64, out_channels=64, stride_w=2, out_width=80, out_height=80)
FIRST = ConvShape(kh=3, kw=3, channels=64, out_channels=64, stride_w=2, out_width=160, out_height=160,
                  real_channels=3)


def decide(shape: ConvShape, **options):
    return choose(shape, MVM, TARGET.pword, IcrOptions(**options))


# -- the geometry ----------------------------------------------------------------------------------------------
def test_a_pointwise_layer_with_64_outputs_computes_8_x_positions_in_the_idle_columns():
    d = decide(POINTWISE)
    # 8 windows side by side: 8 x 64 rows, 8 x 64 columns = 1 row tile x 4 column tiles = the 4 blocks
    assert (d.factor, d.window, d.blocks, d.blocks_used) == (8, 8, 1, 4)
    assert d.load_bytes == 8 * 64 * 64


def test_a_3x3_layer_on_two_blocks_replicates_side_by_side_and_into_the_other_two_blocks():
    d = decide(CONV3X3)
    # 576 rows need 2 blocks; 2 windows (5 pixels x 3 rows x 64 = 960 rows, 128 columns) still 2 blocks,
    # copied into the other 2: 4 x positions per pass
    assert (d.factor, d.window, d.blocks, d.blocks_used) == (4, 2, 2, 4)


def test_the_mapping_counts_shared_pixels_once_and_checks_the_array():
    m = conv_mapping(MVM, 64, kh=3, kw=3, channels=64, out_channels=64, stride_w=2, window=3)
    assert (m.rows, m.columns, m.row_tiles, m.column_tiles, m.fits) == (3 * 7 * 64, 192, 3, 2, False)
    with pytest.raises(ValueError, match="cannot pack 22 pixels of 3 channels"):
        conv_mapping(MVM, 64, kh=3, kw=3, channels=64, out_channels=64, stride_w=2, pack=22, real_channels=3)


def test_a_layer_whose_weights_exceed_the_array_is_split_by_output_channels():
    assert output_channel_groups(576, 256, MVM) == [(0, 256)]             # 2 x 2 tiles: one set
    assert output_channel_groups(1152, 512, MVM) == [(0, 128), (128, 256), (256, 384), (384, 512)]  # 3 row tiles
    assert output_channel_groups(512, 1024, MVM) == [(0, 512), (512, 1024)]   # 1 row tile: 4 columns per task
    d = decide(ConvShape(kh=3, kw=3, channels=256, out_channels=256, stride_w=1, out_width=10, out_height=10))
    assert (d.factor, d.weight_sets) == (1, 4) and "several weight sets" in d.reason  # 2 groups x (5 tiles: 2 sets)


# -- each property changes the decision --------------------------------------------------------------------------
def test_max_factor_caps_the_automatic_factor():
    assert decide(POINTWISE, max_factor=2).factor == 2


def test_the_parallel_block_threshold_leaves_wider_layers_unreplicated():
    d = decide(CONV3X3, parallel_block_threshold=1)
    assert d.factor == 1 and "icrx_parallel_block_threshold=1" in d.reason
    assert decide(POINTWISE, parallel_block_threshold=1).factor == 8


def test_a_forced_factor_is_used_where_it_fits_and_the_largest_fitting_one_elsewhere():
    assert decide(POINTWISE, force=2).factor == 2
    assert decide(POINTWISE, force=1).factor == 1
    d = decide(CONV3X3, force=8)
    assert d.factor == 4 and "icrx_force=8 does not fit" in d.reason


def test_icr_off_keeps_one_x_position_per_pass():
    d = decide(POINTWISE, enable_icr=False)
    assert d.factor == 1 and not d.applied


def test_swicr_packs_a_3_channel_first_layer_into_one_pword_per_window():
    on = decide(FIRST)
    assert on.swicr_pack == 21 and on.swicr_channels == 3 and on.factor == 8
    off = decide(FIRST, enable_swicr=False)
    assert off.swicr_pack == 1 and off.factor == 4
    alone = decide(FIRST, enable_icr=False)  # SWICR without ICR: a third of the rows, a third of the load
    assert (alone.factor, alone.swicr_pack, alone.load_bytes) == (1, 21, 3 * 64 * 64)
    assert decide(CONV3X3).swicr_pack == 1  # not a first layer


def test_replication_is_not_chosen_where_its_weight_loads_cost_more_than_it_saves():
    tiny = ConvShape(kh=3, kw=3, channels=128, out_channels=64, stride_w=1, out_width=4, out_height=4)
    assert decide(tiny).factor == 1 and "pays" in decide(tiny).reason


# -- the cycle model -------------------------------------------------------------------------------------------
def _conv_task(**params):
    b = ProgramBuilder(TARGET, cores=1)
    x = b.buffer("x", "l1", (1, 8, 64, 64), "int8", address=0)
    w = b.buffer("w", "l1", (64, 1, 1, 64), "int8", address=64 * 1024)
    bias = b.buffer("bias", "l1", (64,), "int32", address=72 * 1024)
    y = b.buffer("y", "l1", (1, 8, 64, 64), "int32", address=80 * 1024)
    b.task(0, "mvm", "conv2d", {"x": x, "w": w, "bias": bias}, {"y": y}, {"x_zp": 0, **params})
    return b.build().tasks[0][0]


def test_the_cycle_model_charges_fewer_passes_and_more_weight_bytes_with_icr():
    model = CycleModel(TARGET)
    plain, plain_load, macs, _ = model.mvm_cycles(_conv_task(), None)
    icr, icr_load, icr_macs, _ = model.mvm_cycles(_conv_task(icr_factor=8, icr_window=8), None)
    spec = TARGET.mvm
    assert plain == spec.task_overhead_cycles + 64 * 64 / 64 + 8 * 64 * 8
    assert icr == spec.task_overhead_cycles + 8 * 64 * 64 / 64 + 8 * 8 * 8
    assert icr_macs == macs  # the same work
    with pytest.raises(SimulationError, match="needs 16 IMC blocks, the array has 4"):
        model.mvm_cycles(_conv_task(icr_factor=16, icr_window=16), None)


# -- compiled models -------------------------------------------------------------------------------------------
def two_convs():
    """A 3-channel first layer (SWICR) and a 3x3 layer on 2 IMC blocks (576 rows), both with 16 outputs."""
    return _model([helper.make_node("Conv", ["x", "w1", "b1"], ["a"], pads=[1, 1, 1, 1]),
                   helper.make_node("Relu", ["a"], ["r"]),
                   helper.make_node("Conv", ["r", "w2", "b2"], ["y"], pads=[1, 1, 1, 1])], [1, 3, 24, 32], ["y"],
                  {"w1": _w(16, 3, 3, 3), "b1": _w(16, scale=0.1), "w2": _w(16, 16, 3, 3), "b2": _w(16, scale=0.1)})


def _mvm_tasks(result):
    program = json.loads((result.output_dir / "program.json").read_text())
    return [t for t in program["tasks"][0] if t["kind"] == "mvm"]


def _cycles(result):
    return result.session.report["performance"]["estimated_cycles"]


def test_every_icr_property_changes_the_compiled_cycles_and_outputs_stay_bit_exact(tmp_path):
    model = two_convs()
    runs = {"default": {}, "off": OFF, "no_icr": {"enable_icr": False}, "no_swicr": {"enable_swicr": False},
            "forced_2": {"icrx_force": 2}, "max_2": {"icrx_max_factor": 2},
            "threshold_1": {"icrx_parallel_block_threshold": 1}}
    results = {k: lower(model, tmp_path, name=k, **props) for k, props in runs.items()}
    factors = {k: [t["params"].get("icr_factor", 1) for t in _mvm_tasks(r)] for k, r in results.items()}
    packs = {k: [t["params"].get("swicr_pack", 1) for t in _mvm_tasks(r)] for k, r in results.items()}
    assert factors["default"] == [8, 4] and packs["default"] == [21, 1]
    assert factors["off"] == [1, 1] and packs["off"] == [1, 1]
    assert factors["no_icr"] == [1, 1] and packs["no_icr"] == [21, 1]
    assert factors["no_swicr"] == [4, 4] and packs["no_swicr"] == [1, 1]
    assert factors["forced_2"] == [2, 2] and factors["max_2"] == [2, 2]
    assert factors["threshold_1"] == [8, 1]
    cycles = {k: _cycles(r) for k, r in results.items()}
    assert cycles["default"] < cycles["off"]
    for k in ("no_icr", "no_swicr", "forced_2", "max_2", "threshold_1"):
        assert cycles["default"] < cycles[k] < cycles["off"], k
    x = _calibration(model, n=1, seed=3)
    want = execute(results["off"].output_dir, x, core_only=True).core_outputs
    for k, r in results.items():
        got = execute(r.output_dir, x, core_only=True).core_outputs
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=f"{k}: {name}")
    assert_bit_exact(results["default"], model)
    stats = results["default"].session.report["icr"]
    assert [v["icr_factor"] for v in stats.values()] == [8, 4]


def test_a_layer_wider_than_the_array_becomes_one_mvm_task_per_output_channel_group_bit_exactly(tmp_path):
    # 3x3 x 192 (padded) = 1728 rows: 4 row tiles, so 1 column tile (128 output channels) per weight set
    model = _model([helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])], [1, 160, 6, 6], ["y"],
                   {"w": _w(200, 160, 3, 3, scale=0.05), "b": _w(200, scale=0.1)})
    result = lower(model, tmp_path)
    tasks = _mvm_tasks(result)
    assert [t["params"]["y_channels"] for t in tasks] == [[0, 128], [128, 256]]
    assert all(t["params"]["weight_sets"] == 1 for t in tasks)
    assert [t["inputs"]["w"]["shape"][0] for t in tasks] == [128, 128]
    assert_bit_exact(result, model)


def test_the_pass_runs_after_channel_padding_and_before_the_dpu_programs_are_built():
    host = PluginHost(autoload=True)
    pipeline = resolve_pipeline(host.passes(), CompilerConfig())
    order = [e.name for e in pipeline.entries]
    assert (order.index("lowering.apply_pword_padding") < order.index("icr.choose_factors")
            < order.index("lowering.build_dpu_programs") < order.index("lowering.emit_program"))
    off = CompilerConfig()
    off.enable_icr = off.enable_swicr = False
    entry = {e.name: e for e in resolve_pipeline(host.passes(), off).entries}["icr.choose_factors"]
    assert not entry.enablement.enabled and "enable_icr=false" in entry.enablement.reason


def test_ppocr_outputs_are_identical_with_and_without_icr(tmp_path, ppocr_model):
    from axdrive import driver
    from test_lowering_end_to_end import _photos

    cal = _photos((1, 3, 48, 192), 2, "bilinear")
    outs = {}
    for key, props in (("on", {}), ("off", OFF)):
        cfg = CompilerConfig()
        for k, v in props.items():
            setattr(cfg, k, v)
        r = driver.compile(str(ppocr_model), cfg, output_dir=tmp_path / key, input_shapes={"x": (1, 3, 48, 192)},
                           calibration={"x": cal})
        outs[key] = (execute(r.output_dir, {"x": cal[1:2]}, core_only=True).core_outputs, _cycles(r),
                     r.session.report.get("icr"))
    for name in outs["off"][0]:
        np.testing.assert_array_equal(outs["on"][0][name], outs["off"][0][name], err_msg=name)
    assert outs["on"][1] < outs["off"][1] and outs["off"][2] is None


def test_yolov8n_early_layers_take_fewer_estimated_cycles_with_icr_and_swicr(tmp_path, yolo_model):
    from axdrive import driver
    from test_lowering_end_to_end import _photos

    cal = _photos((1, 3, 320, 320), 2, "letterbox")
    mvm: dict[str, list[float]] = {}
    for key, props in (("on", {}), ("off", OFF)):
        cfg = CompilerConfig()
        for k, v in props.items():
            setattr(cfg, k, v)
        r = driver.compile(str(yolo_model), cfg, output_dir=tmp_path / key, input_shapes={"images": (1, 3, 320, 320)},
                           calibration={"images": cal})
        tasks = [t for t in _mvm_tasks(r)][:8]
        model = CycleModel(TARGET)
        mvm[key] = [model.mvm_cycles(Task.from_dict(t), None)[0] for t in tasks]
        if key == "on":
            decisions = r.session.report["icr"]
            assert decisions["/model.0/conv/Conv"]["swicr_pack"] == 21
            assert decisions["/model.0/conv/Conv"]["icr_factor"] == 8
            on_cycles = _cycles(r)
        else:
            off_cycles = _cycles(r)
    assert all(a < b for a, b in zip(mvm["on"], mvm["off"]))
    assert sum(mvm["off"]) / sum(mvm["on"]) > 4  # the early layers' MVM time
    assert off_cycles / on_cycles > 1.15          # the whole model
