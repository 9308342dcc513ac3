"""CompilerConfig: the contract's 93 properties, validation, loading, docs."""

from __future__ import annotations

import json
import os
import re

import jsonschema
import pytest

from axdrive.config import BY_NAME, PROPERTIES, CompilerConfig, json_schema, markdown_reference
from axdrive.errors import ConfigError
from _support import REPO, SPEC, run_cli


def _spec_rows() -> dict[str, tuple[str, str]]:
    """``name -> (type, default)`` from the contract's tables."""
    path = SPEC / "compiler-config-reference.md"
    if not path.is_file():
        if os.environ.get("CI"):  # in CI the contract must be checked: a missing spec is a failure, not a skip
            pytest.fail(f"{path} is missing: CI checks the configuration contract against ../shared/spec")
        pytest.skip("shared/spec is not beside the checkout")
    rows = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([a-z0-9_]+) \| ([^|]+) \| ([^|]+) \|", line)
        if m:
            rows[m.group(1)] = (m.group(2).strip(), m.group(3).strip())
    return rows


def test_every_property_of_the_contract_exists_and_nothing_else():
    spec = _spec_rows()
    assert len(spec) == 93
    assert set(spec) == set(BY_NAME)


def _spec_default(text: str):
    text = text.strip()
    if text in ("—", "null"):
        return None
    if text in ("true", "false"):
        return text == "true"
    if text == "[]":
        return []
    if text.startswith('"'):
        return text.strip('"')
    return float(text) if "." in text else int(text)


@pytest.mark.parametrize("prop", PROPERTIES, ids=lambda p: p.name)
def test_default_matches_the_contract_and_is_accepted(prop):
    spec = _spec_rows()
    assert prop.plain(prop.default) == _spec_default(spec[prop.name][1])
    cfg = CompilerConfig()
    setattr(cfg, prop.name, prop.default)  # the default passes its own check
    assert getattr(cfg, prop.name) == prop.default


def _invalid_values(prop):
    """Values the property must refuse."""
    if prop.kind == "bool":
        return ["yes", 1]
    if prop.kind == "int":
        bad = ["4", 1.5, True]
        if prop.minimum is not None:
            bad.append(int(prop.minimum) - 1)
        if prop.maximum is not None:
            bad.append(int(prop.maximum) + 1)
        return bad
    if prop.kind == "float":
        bad = ["0.5", float("nan")]
        if prop.minimum is not None:
            bad.append(prop.minimum - 0.01)
        if prop.exclusive_minimum is not None:
            bad.append(prop.exclusive_minimum)
        if prop.maximum is not None:
            bad.append(prop.maximum + 0.01)
        return bad
    if prop.kind in ("enum", "enum_list"):
        return ["not-a-member", ["not-a-member"]] if prop.kind == "enum_list" else ["not-a-member", 3]
    if prop.choices:
        return ["global.l3", 3]
    return [3]


@pytest.mark.parametrize("prop", PROPERTIES, ids=lambda p: p.name)
def test_invalid_values_are_rejected_at_assignment_naming_property_value_and_allowed(prop):
    cfg = CompilerConfig()
    if not prop.nullable:
        with pytest.raises(ConfigError, match=re.escape(prop.name)):
            setattr(cfg, prop.name, None)
    for value in _invalid_values(prop):
        with pytest.raises(ConfigError) as err:
            setattr(cfg, prop.name, value)
        msg = str(err.value)
        assert "\n" not in msg and msg.startswith(f"{prop.name}=") and "must be" in msg, msg
    assert getattr(cfg, prop.name) == prop.default  # a refused value changes nothing


def test_assignment_error_states_the_allowed_range():
    cfg = CompilerConfig()
    with pytest.raises(ConfigError, match=r"^aipu_cores_used=5 is invalid: must be an integer in \[1, 4\]$"):
        cfg.aipu_cores_used = 5
    with pytest.raises(ConfigError, match=r"frequency=10 is invalid: must be an integer in \[20,000,000, 800,000,000\], in Hz"):
        cfg.frequency = 10
    with pytest.raises(ConfigError, match=r"resources_used=0.0 is invalid: must be a number in \(0, 1\]"):
        cfg.resources_used = 0.0


def test_unknown_property_suggests_the_closest_name():
    cfg = CompilerConfig()
    with pytest.raises(ConfigError, match=r"aipu_core_used: unknown property; did you mean 'aipu_cores_used'\?"):
        cfg.aipu_core_used = 2


def test_enum_values_compare_as_strings_and_serialise_plainly():
    cfg = CompilerConfig(multicore_mode="batch", aipu_cores_used=2, profiling_levels=["B", "K", "B"])
    assert cfg.multicore_mode == "batch"
    assert cfg.to_dict()["profiling_levels"] == ["B", "K"]
    with pytest.raises(ConfigError, match=r"did you mean 'cooperative'"):
        cfg.multicore_mode = "cooperativ"


@pytest.mark.parametrize(
    "values, prop, words",
    [
        ({"l1_constraint": 5 * 2**20}, "l1_constraint", "must not exceed l1_size_used"),
        ({"l2_constraint": 64 * 2**20}, "l2_constraint", "must not exceed l2_size_used"),
        ({"ddr_size_used": 2**31}, "ddr_size_used", "must not exceed ddr_size_max"),
        ({"l1_size_reserved": 4 * 2**20}, "l1_size_reserved", "must be smaller than l1_size_used"),
        ({"l2_size_reserved_tasklist": 8 * 2**20, "aipu_cores_used": 4}, "l2_size_reserved", "must be smaller than l2_size_used"),
        ({"ddr_size_reserved": 2**30}, "ddr_size_reserved", "must be smaller than ddr_size_used"),
        ({"graph_cleaner_node": "Gemm"}, "graph_cleaner_node", "needs graph_cleaner_condition"),
        ({"graph_cleaner_condition": "maximum_weight_tensor_size"}, "graph_cleaner_condition", "needs graph_cleaner_node"),
        ({"multicore_mode": "pipeline"}, "multicore_mode", "needs aipu_cores_used >= 2"),
        ({"host_processes_used": 2}, "host_processes_used", "must not exceed aipu_cores_used"),
        ({"host_processes_used": 2, "aipu_cores_used": 2, "multicore_mode": "multithread"}, "host_processes_used", "only multicore_mode='multiprocess'"),
        ({"split_buffer_promotion": True, "enable_buffer_promotion": False}, "split_buffer_promotion", "needs enable_buffer_promotion"),
        ({"dfs_search_constraint": 1}, "dfs_search_constraint", "tiling_depth > 1"),
        ({"icrx_force": 0}, "icrx_force", "-1 (automatic)"),
        ({"icrx_force": 4, "enable_icr": False}, "icrx_force", "needs enable_icr"),
    ],
)
def test_cross_property_rules_name_the_property_to_change(values, prop, words):
    cfg = CompilerConfig(**values)
    with pytest.raises(ConfigError) as err:
        cfg.validate()
    (problem,) = err.value.problems
    assert problem.prop == prop and words in problem.allowed


def test_valid_combinations_pass_the_rules():
    CompilerConfig(aipu_cores_used=4, multicore_mode="pipeline", host_processes_used=1).validate()
    CompilerConfig(aipu_cores_used=4, host_processes_used=4, l1_constraint=2**20).validate()
    CompilerConfig(tiling_depth=6, dfs_search_constraint=1, graph_cleaner_node="Gemm",
                   graph_cleaner_condition="maximum_weight_tensor_size").validate()


@pytest.mark.parametrize("suffix", [".toml", ".yaml", ".json"])
def test_files_load_in_every_format(tmp_path, suffix):
    body = {
        ".toml": 'aipu_cores_used = 4\nmulticore_mode = "batch"\nprofiling_levels = ["B", "K"]\nl1_constraint = 1048576\n',
        ".yaml": "aipu_cores_used: 4\nmulticore_mode: batch\nprofiling_levels: [B, K]\nl1_constraint: 1048576\n",
        ".json": '{"aipu_cores_used": 4, "multicore_mode": "batch", "profiling_levels": ["B", "K"], "l1_constraint": 1048576}',
    }[suffix]
    path = tmp_path / f"c{suffix}"
    path.write_text(body)
    cfg = CompilerConfig.from_file(path)
    assert (cfg.aipu_cores_used, cfg.multicore_mode, cfg.to_dict()["profiling_levels"], cfg.l1_constraint) == (
        4, "batch", ["B", "K"], 2**20)
    assert cfg.explicit == {"aipu_cores_used", "multicore_mode", "profiling_levels", "l1_constraint"}
    assert cfg.source_of("aipu_cores_used") == str(path)


def test_a_file_reports_every_problem_at_once_with_file_property_value_and_allowed(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('aipu_cores_used = 7\nfrequencey = 1\nquantization_scheme = "minmax"\nl1_constraint = 99999999\n'
                    'graph_cleaner_node = "Gemm"\n')
    with pytest.raises(ConfigError) as err:
        CompilerConfig.from_file(path)
    lines = [str(p) for p in err.value.problems]
    assert lines == [
        f"{path}: aipu_cores_used=7 is invalid: must be an integer in [1, 4]",
        f"{path}: frequencey: unknown property; did you mean 'frequency'?",
        f"{path}: quantization_scheme='minmax' is invalid: must be one of 'per_tensor_histogram', 'per_tensor_min_max', "
        "'hybrid_per_tensor_per_channel'",
        f"{path}: l1_constraint=99999999 is invalid: must not exceed l1_size_used (4,194,304 bytes)",
        f"{path}: graph_cleaner_node='Gemm' is invalid: needs graph_cleaner_condition to be set as well",
    ]


def test_a_syntax_error_or_unknown_format_is_one_line_naming_the_file(tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text("aipu_cores_used = = 4\n")
    with pytest.raises(ConfigError, match=r"c.toml: <file>='c.toml' is invalid: is not valid TOML") as err:
        CompilerConfig.from_file(bad)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="unknown format"):
        CompilerConfig.from_file(tmp_path / "c.ini").__class__ if (tmp_path / "c.ini").write_text("x") else None
    with pytest.raises(ConfigError, match="no such file"):
        CompilerConfig.from_file(tmp_path / "missing.json")


def test_set_strings_are_parsed_by_the_property_type():
    cfg = CompilerConfig()
    cfg.set_from_strings(["aipu_cores_used=4", "profiling_levels=B,K", "trace_tvm_passes=yes", "frequency=400_000_000",
                          "l1_constraint=0x100000", "mvm_utilization_limit=0.5", "graph_cleaner_node=null",
                          "model_name=yolo"])
    assert cfg.to_dict()["profiling_levels"] == ["B", "K"]
    assert (cfg.aipu_cores_used, cfg.trace_tvm_passes, cfg.frequency, cfg.l1_constraint, cfg.mvm_utilization_limit) == (
        4, True, 400_000_000, 2**20, 0.5)
    with pytest.raises(ConfigError) as err:
        cfg.set_from_strings(["aipu_cores_used=four", "trace_tvm_passes=maybe", "nonsense"])
    assert [p.prop for p in err.value.problems] == ["aipu_cores_used", "trace_tvm_passes", "nonsense"]
    assert cfg.aipu_cores_used == 4  # nothing applied when anything is bad


def test_presets_fill_only_what_the_user_did_not_set_and_are_validated():
    cfg = CompilerConfig(frequency=600_000_000)
    applied = cfg.apply_presets({"frequency": 400_000_000, "aipu_cores_used": 2}, source="preset x")
    assert applied == ["aipu_cores_used"] and cfg.frequency == 600_000_000 and cfg.aipu_cores_used == 2
    with pytest.raises(ConfigError, match=r"preset y: aipu_cores_used=9 is invalid"):
        CompilerConfig().apply_presets({"aipu_cores_used": 9}, source="preset y")


def test_hash_and_manifest_view_ignore_the_output_location():
    a, b = CompilerConfig(output_dir="/tmp/a"), CompilerConfig(output_dir="/tmp/b")
    assert a.config_sha256() == b.config_sha256()
    assert "output_dir" not in a.to_dict(include_location=False) and a.to_dict()["output_dir"] == "/tmp/a"
    assert CompilerConfig(aipu_cores_used=2).config_sha256() != a.config_sha256()


def test_copy_is_independent():
    a = CompilerConfig(aipu_cores_used=2)
    b = a.copy()
    b.aipu_cores_used = 3
    assert a.aipu_cores_used == 2 and b.explicit == {"aipu_cores_used"}


def test_json_schema_accepts_the_defaults_and_rejects_bad_values():
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(CompilerConfig().to_dict(), schema)
    for bad in ({"aipu_cores_used": 5}, {"multicore_mode": "x"}, {"nope": 1}, {"profiling_levels": ["Z"]}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_the_markdown_reference_in_docs_is_current():
    committed = (REPO / "docs" / "config-reference.md").read_text()
    assert committed == markdown_reference(), "docs/config-reference.md is stale: run `make docs`"


def test_cli_config_validate_prints_every_problem_and_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("aipu_cores_used: 0\nl1_size_used: nope\n")
    proc = run_cli("config", "validate", str(bad))
    assert proc.returncode == 2
    assert "aipu_cores_used=0 is invalid" in proc.stderr and "l1_size_used='nope' is invalid" in proc.stderr
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"aipu_cores_used": 2}))
    proc = run_cli("config", "validate", str(good))
    assert proc.returncode == 0 and "valid" in proc.stdout


def test_cli_config_show_applies_set_and_schema_is_json():
    proc = run_cli("config", "show", "--set", "aipu_cores_used=3")
    assert proc.returncode == 0 and json.loads(proc.stdout)["aipu_cores_used"] == 3
    proc = run_cli("config", "show", "--set", "aipu_cores_used=9")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "aipu_cores_used=9" in proc.stderr
    assert "properties" in json.loads(run_cli("config", "schema").stdout)
