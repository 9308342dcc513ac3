"""Config files on hostile input (``axdrive config validate FILE``, ``--config FILE``, ``CompilerConfig.from_file``):
bounded work, and a short error line, never a hang, a memory blow-up or an internal error.

Each hostile file runs the real command in a child process under an address-space limit and a timeout. A file
refused as a whole (not a regular file, too large, not parseable, a YAML alias) gives exit code 2 and exactly one
stderr line ``axdrive: error: FILE: PROBLEM``; a bad property value gives exit code 2, one ``axdrive: error:``
line per problem and the ``FILE: N problem(s)`` summary.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from axdrive.config import CompilerConfig
from axdrive.config._config import MAX_CONFIG_BYTES
from axdrive.errors import ConfigError, ConfigProblem, short_repr
from _support import refused, run_cli_limited

# measured: `axdrive config validate` runs within 256 MiB of address space; twice that leaves room, and is far
# below what reading /dev/zero or expanding a "billion laughs" file (gigabytes) would take
ADDRESS_SPACE = 512 << 20
TIMEOUT_S = 60


def run_limited(*args: str):
    """``python -m axdrive ARGS`` under the address-space limit, no stdin, killed after ``TIMEOUT_S``."""
    return run_cli_limited(*args, limit_bytes=ADDRESS_SPACE, timeout=TIMEOUT_S)


BILLION_LAUGHS = """\
# nine levels of nine aliases: 9**9 strings once expanded
lol1: &lol1 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
lol2: &lol2 [*lol1, *lol1, *lol1, *lol1, *lol1, *lol1, *lol1, *lol1, *lol1]
lol3: &lol3 [*lol2, *lol2, *lol2, *lol2, *lol2, *lol2, *lol2, *lol2, *lol2]
lol4: &lol4 [*lol3, *lol3, *lol3, *lol3, *lol3, *lol3, *lol3, *lol3, *lol3]
lol5: &lol5 [*lol4, *lol4, *lol4, *lol4, *lol4, *lol4, *lol4, *lol4, *lol4]
lol6: &lol6 [*lol5, *lol5, *lol5, *lol5, *lol5, *lol5, *lol5, *lol5, *lol5]
lol7: &lol7 [*lol6, *lol6, *lol6, *lol6, *lol6, *lol6, *lol6, *lol6, *lol6]
lol8: &lol8 [*lol7, *lol7, *lol7, *lol7, *lol7, *lol7, *lol7, *lol7, *lol7]
lol9: &lol9 [*lol8, *lol8, *lol8, *lol8, *lol8, *lol8, *lol8, *lol8, *lol8]
profiling_levels: *lol9
multicore_mode: *lol9
"""


# -- what the path names -------------------------------------------------------------
@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_config_validate_refuses_a_character_device_without_reading_it(device):
    refused(run_limited("config", "validate", device), device, "is a character device, not a regular file")


def test_a_config_option_naming_a_device_is_refused_the_same_way():
    refused(run_limited("config", "show", "--config", "/dev/zero"), "/dev/zero", "is a character device")


def test_config_validate_refuses_a_symlink_to_a_device(tmp_path):
    link = tmp_path / "c.yaml"
    link.symlink_to("/dev/urandom")
    refused(run_limited("config", "validate", str(link)), link, "is a character device")


def test_config_validate_refuses_a_fifo_without_opening_it(tmp_path):
    """Opening a FIFO nobody writes to blocks forever: the timeout would catch it."""
    fifo = tmp_path / "c.toml"
    os.mkfifo(fifo)
    refused(run_limited("config", "validate", str(fifo)), fifo, "is a FIFO (named pipe), not a regular file")


def test_config_validate_refuses_a_directory(tmp_path):
    folder = tmp_path / "c.json"
    folder.mkdir()
    refused(run_limited("config", "validate", str(folder)), folder, "is a directory, not a regular file")


def test_config_validate_refuses_a_file_over_the_size_cap_without_reading_it(tmp_path):
    big = tmp_path / "c.yaml"
    with open(big, "wb") as f:
        f.truncate(MAX_CONFIG_BYTES + 1)  # sparse
    refused(run_limited("config", "validate", str(big)), big,
            f"is {MAX_CONFIG_BYTES + 1:,} bytes, over the 1 MiB limit for a config file")


def test_config_validate_says_no_such_file_in_one_line(tmp_path):
    refused(run_limited("config", "validate", str(tmp_path / "nope.toml")), tmp_path / "nope.toml", "no such file")


# -- what the file holds -------------------------------------------------------------
def test_config_validate_refuses_a_yaml_alias_bomb_within_the_memory_limit(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(BILLION_LAUGHS)
    assert path.stat().st_size < 1100
    start = time.monotonic()
    proc = run_limited("config", "validate", str(path))
    refused(proc, path, "YAML aliases/anchors are not allowed in an axdrive config (line 2)")
    assert time.monotonic() - start < TIMEOUT_S


def test_a_yaml_anchor_alone_is_refused_with_its_line(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("aipu_cores_used: 2\nmulticore_mode: &m batch\n")
    refused(run_limited("config", "validate", str(path)), path, "YAML aliases/anchors are not allowed", "(line 2)")


def test_yaml_keys_that_are_not_strings_are_a_problem_not_a_crash(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("1: 2\n1.5: 3\n~: 4\n2024-01-01: 5\n")
    proc = run_limited("config", "validate", str(path))
    assert proc.returncode == 2 and "internal error" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("axdrive: error: ")]
    assert errors == [f"axdrive: error: {path}: {key}: property names must be strings"
                      for key in ("1", "1.5", "None", "datetime.date(2024, 1, 1)")]


@pytest.mark.parametrize("suffix, body", [
    (".json", '{"profiling_levels": ' + "[" * 5000 + "]" * 5000 + "}"),
    (".yaml", "profiling_levels: " + "[" * 5000 + "]" * 5000 + "\n"),
    (".toml", "profiling_levels = " + "[" * 5000 + "]" * 5000 + "\n"),
])
def test_config_validate_refuses_5000_levels_of_nesting_in_one_line(tmp_path, suffix, body):
    path = tmp_path / f"c{suffix}"
    path.write_text(body)
    refused(run_limited("config", "validate", str(path)), path, f"is not valid {suffix[1:].upper()}")


@pytest.mark.parametrize("suffix, body", [
    (".json", '{"aipu_cores_used": ' + "9" * 5000 + "}"),
    (".yaml", "aipu_cores_used: " + "9" * 5000 + "\n"),
])
def test_an_integer_literal_too_long_to_convert_is_a_syntax_error(tmp_path, suffix, body):
    path = tmp_path / f"c{suffix}"
    path.write_text(body)
    refused(run_limited("config", "validate", str(path)), path, "is not valid")


def test_bytes_that_are_not_utf8_are_refused_in_one_line(tmp_path):
    path = tmp_path / "c.toml"
    path.write_bytes(b"aipu_cores_used = 2\n\xff\xfe\n")
    refused(run_limited("config", "validate", str(path)), path, "cannot be read: not UTF-8 text")


def _problem_lines(proc: subprocess.CompletedProcess) -> list[str]:
    assert proc.returncode == 2 and "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert all(len(line) < 500 for line in proc.stderr.splitlines()), [len(x) for x in proc.stderr.splitlines()]
    return [line for line in proc.stderr.splitlines() if line.startswith("axdrive: error: ")]


def test_a_long_bad_value_gives_a_short_error_line(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"multicore_mode": "x" * (MAX_CONFIG_BYTES - 100)}))
    (line,) = _problem_lines(run_limited("config", "validate", str(path)))
    assert line.startswith(f"axdrive: error: {path}: multicore_mode='xxxx") and "...' is invalid" not in line
    assert "... is invalid: must be one of 'multiprocess'" in line and len(line) < 500


def test_a_long_unknown_property_name_gives_a_short_error_line(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"y" * (MAX_CONFIG_BYTES - 100): 1}))
    (line,) = _problem_lines(run_limited("config", "validate", str(path)))
    assert line.startswith(f"axdrive: error: {path}: yyyy") and line.endswith("unknown property; see `axdrive "
                                                                              "config docs` for the properties")


def test_a_long_set_value_gives_a_short_error_line():
    proc = run_limited("config", "show", "--set", "multicore_mode=" + "z" * 100_000)
    (line,) = _problem_lines(proc)
    assert line.startswith("axdrive: error: --set: multicore_mode=zzzz") and len(line) < 500


def test_a_10_mb_value_from_the_api_gives_a_short_message():
    start = time.monotonic()
    with pytest.raises(ConfigError) as err:
        CompilerConfig(multicore_mode="q" * 10_000_000, graph_cleaner_node=["n"] * 1_000_000)
    assert len(str(err.value)) < 500 and time.monotonic() - start < 5
    assert "multicore_mode='qqq" in str(err.value) and "graph_cleaner_node=['n', 'n'," in str(err.value)


def test_an_expanded_alias_bomb_value_is_shown_short_without_being_expanded():
    """The original blow-up: the message rendered the whole 9**9-string value. Shared references of nine
    levels (what PyYAML builds from aliases) are shown in bounded time and length."""
    value: object = ["lol"] * 9
    for _ in range(8):
        value = [value] * 9
    start = time.monotonic()
    text = str(ConfigProblem("profiling_levels", value, "must be a list of ...", "c.yaml"))
    assert len(text) < 200 and time.monotonic() - start < 1


# -- the shared helper ---------------------------------------------------------------------
@pytest.mark.parametrize("value, expected", [
    ("short", "'short'"),
    (42, "42"),
    (None, "None"),
    ("a\nb", "'a\\nb'"),
])
def test_short_repr_is_repr_for_short_values(value, expected):
    assert short_repr(value) == expected


@pytest.mark.parametrize("value", ["x" * 10_000_000, list(range(1_000_000)), {str(i): i for i in range(100_000)},
                                   10**100_000, b"\0" * 10_000_000],
                         ids=["10-MB-str", "million-list", "big-dict", "100000-digit-int", "10-MB-bytes"])
def test_short_repr_is_at_most_the_limit_and_marks_what_it_cut(value):
    text = short_repr(value, 80)
    assert len(text) <= 80 and "\n" not in text
    assert "..." in text or text.startswith("<integer of about 100001 digits>")


def test_short_repr_survives_a_repr_that_raises():
    class Bad:
        def __repr__(self):
            raise RuntimeError("no")

    assert short_repr(Bad()).startswith("<Bad")
