from __future__ import annotations

import pytest

from axdrive_hw.target import CONFIG_OVERRIDE_KEYS, load_target


def test_default_target_matches_the_public_figures():
    t = load_target()
    assert (t.cores, t.frequency_hz, t.pword) == (4, 800_000_000, 64)
    assert t.memory["l1"].size == 4 * 2**20 and t.usable("l1") == 4 * 2**20 - 512 * 2**10
    assert t.usable("l2") == 32 * 2**20 - 1_245_184 - 4 * 2**20
    assert t.memory["l1"].virtual_address == 0x3000000000 and t.memory["l1"].core0_physical_address == 0x18000000


def test_config_properties_override_the_description():
    t = load_target("aipu_v1", {"l1_size_used": 2 * 2**20, "frequency": 400_000_000, "aipu_cores_used": 2,
                                "memory.l2.bandwidth": 64})
    assert (t.memory["l1"].size, t.frequency_hz, t.cores, t.memory["l2"].bandwidth) == (2 * 2**20, 400_000_000, 2, 64)
    assert t.usable("l2") == 32 * 2**20 - 1_245_184 - 2 * 2**20  # task-list slots follow the core count
    assert set(CONFIG_OVERRIDE_KEYS) >= {"frequency", "l1_size_used", "l2_size_reserved_tasklist", "ddr_size_used"}


def test_bad_overrides_and_unknown_targets_are_named():
    with pytest.raises(KeyError, match="memory.l3.size"):
        load_target("aipu_v1", {"memory.l3.size": 1})
    with pytest.raises(ValueError, match="frequency 900000000 Hz outside"):
        load_target("aipu_v1", {"frequency": 900_000_000})
    with pytest.raises(KeyError, match="unknown target 'nope' \\(built-in: aipu_v1\\)"):
        load_target("nope")


def test_a_target_toml_in_device_dir_replaces_the_built_in_description(tmp_path):
    """``device_dir`` is how a user describes the machine they have: its ``target.toml`` is the base that the
    other config overrides then adjust; a directory without one leaves the built-in description."""
    from importlib import resources

    text = resources.files("axdrive_hw").joinpath("targets", "aipu_v1.toml").read_text()
    (tmp_path / "target.toml").write_text(text.replace("bandwidth = 256", "bandwidth = 128", 1))
    t = load_target("aipu_v1", {"device_dir": str(tmp_path), "frequency": 400_000_000})
    assert (t.memory["l1"].bandwidth, t.frequency_hz) == (128, 400_000_000)
    assert load_target("aipu_v1", {"device_dir": str(tmp_path / "empty")}) == load_target("aipu_v1")
    assert "device_dir" in CONFIG_OVERRIDE_KEYS  # so the compile and the runtime both pass it


def test_a_broken_target_toml_in_device_dir_is_one_named_error(tmp_path):
    (tmp_path / "target.toml").write_text("name = 'x'\ncores = \n")
    with pytest.raises(ValueError, match="target.toml: not valid TOML"):
        load_target("aipu_v1", {"device_dir": str(tmp_path)})
    (tmp_path / "target.toml").write_text("name = 'x'\ncores = 1\n")
    with pytest.raises(ValueError, match="target.toml: not a complete target description"):
        load_target("aipu_v1", {"device_dir": str(tmp_path)})
