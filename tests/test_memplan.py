"""The memory planner (axdrive-memplan): lifetime-aware packing, limits, promotion, paging, and the
one-line error when a limit cannot be met."""

from __future__ import annotations

import pytest

from axdrive.config import CompilerConfig
from axdrive.ir.program_plan import BufferRequest, InfeasiblePlan
from axdrive_memplan import LifetimePlanner, PlannerSettings
from axdrive_memplan._packing import Item, live_bound, pack, peak_of

USABLE = {"ddr": 1 << 30, "l2": 8 << 20, "l1": 1 << 20}


def _no_overlap(items, offsets):
    for i, a in enumerate(items):
        for b in items[i + 1:]:
            live = a.first <= b.last and b.first <= a.last
            space = offsets[a.name] < offsets[b.name] + b.size and offsets[b.name] < offsets[a.name] + a.size
            assert not (live and space), (a, b)


def test_buffers_with_disjoint_lifetimes_share_bytes_and_live_ones_never_do():
    items = [Item("a", 4096, 0, 3), Item("b", 4096, 4, 7), Item("c", 1024, 2, 5), Item("d", 2048, 6, 9)]
    offsets = pack(items, 64)
    _no_overlap(items, offsets)
    assert offsets["a"] == offsets["b"]  # a dies before b is born
    assert peak_of(items, offsets, 64) == live_bound(items, 64)


def test_packing_of_many_random_lifetimes_stays_within_five_percent_of_the_live_bound():
    import random

    rnd = random.Random(7)
    items = []
    for k in range(300):
        first = rnd.randrange(0, 1000)
        items.append(Item(f"b{k}", rnd.choice([64, 4096, 65536, 300_000]), first, first + rnd.randrange(1, 60)))
    offsets = pack(items, 64)
    _no_overlap(items, offsets)
    assert peak_of(items, offsets, 64) <= 1.05 * live_bound(items, 64)


def _planner(**kw):
    return LifetimePlanner(PlannerSettings(**kw))


def test_hottest_buffers_are_promoted_inward_where_they_fit():
    reqs = [BufferRequest("hot", "workspace", 200_000, "ddr", 0, 5, traffic=2_000_000, layer="conv1"),
            BufferRequest("cold", "workspace", 600_000, "ddr", 0, 5, traffic=600_000, layer="conv2"),
            BufferRequest("arena", "staging", 600_000, "l1", 0, 5, layer="conv1")]
    plan = _planner().plan(reqs, end=6, usable=USABLE)
    assert plan.placements["hot"].level == "l1"
    assert plan.placements["cold"].level == "l2"  # does not fit next to the arena in L1
    off = _planner(enable_buffer_promotion=False).plan(reqs, end=6, usable=USABLE)
    assert off.placements["hot"].level == off.placements["cold"].level == "ddr"


def test_split_promotion_ranks_the_l2_round_by_total_traffic():
    reqs = [BufferRequest("dense", "workspace", 10_000, "ddr", 0, 9, traffic=200_000, layer="a"),
            BufferRequest("big", "workspace", 90_000, "ddr", 0, 9, traffic=900_000, layer="b")]
    usable = {"ddr": 1 << 30, "l2": 95_000, "l1": 1 << 20}
    one = _planner(l1_constraint=0).plan(reqs, end=10, usable=usable)
    two = _planner(l1_constraint=0, split_buffer_promotion=True).plan(reqs, end=10, usable=usable)
    assert one.placements["dense"].level == "l2" and one.placements["big"].level == "ddr"
    assert two.placements["big"].level == "l2" and two.placements["dense"].level == "ddr"


def test_page_memory_puts_freed_activations_on_page_boundaries():
    reqs = [BufferRequest("w", "constant", 100, "ddr", whole_run=True, layer="x"),
            BufferRequest("t", "workspace", 5000, "ddr", 0, 3, layer="x")]
    paged = _planner(enable_buffer_promotion=False).plan(reqs, end=4, usable=USABLE)
    flat = _planner(enable_buffer_promotion=False, page_memory=False).plan(reqs, end=4, usable=USABLE)
    assert paged.placements["t"].address % 4096 == 0 and paged.page_bytes == 4096
    assert flat.placements["t"].address == 128 and flat.usage["ddr"].peak < paged.usage["ddr"].peak


def test_an_infeasible_limit_names_layer_level_bytes_and_the_property_to_change():
    reqs = [BufferRequest("arena", "staging", 900_000, "l1", 0, 3, layer="/model.0/conv/Conv")]
    with pytest.raises(InfeasiblePlan) as exc:
        _planner(l1_constraint=500_000).plan(reqs, end=4, usable=USABLE)
    msg = exc.value.message(5)
    assert msg == ("layer '/model.0/conv/Conv' needs 900000 bytes of L1 but 500000 are available after 5 "
                   "memory-plan attempt(s); raise l1_constraint")
    with pytest.raises(InfeasiblePlan) as exc:
        _planner(resources_used=0.5).plan(reqs, end=4, usable=USABLE)
    assert exc.value.prop == "resources_used"


def test_settings_come_from_the_compiler_config():
    cfg = CompilerConfig()
    cfg.page_memory = False
    cfg.max_memplan_attempts = 2
    s = PlannerSettings.from_config(cfg)
    assert s.page_memory is False and LifetimePlanner(s).max_attempts == 2
