from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from _programs import conv_relu_program
from hypothesis import given
from hypothesis import strategies as st

from axdrive.errors import ProgramFormatError
from axdrive_hw.program.binary import (HEADER_SIZE, MAGIC, assemble, decode_program, disassemble, encode_program,
                                       program_json, read_program, write_program)


@pytest.fixture(scope="module")
def program():
    return conv_relu_program()[0]


def test_binary_starts_with_magic_and_version(program):
    data = encode_program(program)
    assert data[:8] == MAGIC and struct.unpack_from("<H", data, 8)[0] == 1


def test_encoding_is_deterministic(program):
    assert encode_program(program) == encode_program(conv_relu_program()[0])


def test_bin_to_json_to_bin_is_byte_identical(program):
    data = encode_program(program)
    assert assemble(disassemble(data)) == data


def test_json_to_bin_to_json_is_character_identical(program):
    text = program_json(program)
    assert disassemble(assemble(text)) == text


def test_decoded_program_equals_the_original(program):
    back = decode_program(encode_program(program))
    assert back.to_dict() == program.to_dict()
    for name, arr in program.constants.items():
        assert back.constants[name].dtype == arr.dtype and np.array_equal(back.constants[name], arr)


@given(st.dictionaries(st.text(min_size=1, max_size=8),
                       st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
                                    | st.floats(allow_nan=False) | st.text(max_size=5),
                                    lambda inner: st.lists(inner, max_size=3)
                                    | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=8),
                       max_size=4))
def test_any_json_task_parameters_round_trip(params):
    prog = conv_relu_program()[0]
    t = prog.tasks[0][0]
    prog.tasks[0][0] = type(t)(t.kind, t.op, t.inputs, t.outputs, {**t.params, **params}, t.wait, t.signal, t.stage)
    data = encode_program(prog)
    assert assemble(disassemble(data)) == data
    assert decode_program(data).tasks[0][0].params == {**t.params, **params}


def test_every_truncation_fails_with_a_one_line_format_error(program):
    data = encode_program(program)
    for cut in sorted({0, 7, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 30, len(data) // 2, len(data) - 1}):
        with pytest.raises(ProgramFormatError) as e:
            decode_program(data[:cut])
        assert "\n" not in str(e.value) and str(e.value).startswith("program.bin: truncated")


@pytest.mark.parametrize("pos, where", [(200, "the section table"), (300, "section STRS"), (-100, "section DATA")])
def test_a_flipped_byte_is_a_checksum_error_naming_the_section(program, pos, where):
    data = bytearray(encode_program(program))
    data[pos] ^= 0x40
    with pytest.raises(ProgramFormatError, match=f"checksum mismatch in {where}"):
        decode_program(bytes(data))


def test_corrupt_header_and_wrong_magic_and_unknown_version_are_named(program):
    data = bytearray(encode_program(program))
    with pytest.raises(ProgramFormatError, match="not an AIPU program"):
        decode_program(b"XXXXXXXX" + bytes(data[8:]))
    bad = bytearray(data)
    bad[16] ^= 1
    with pytest.raises(ProgramFormatError, match="header checksum"):
        decode_program(bytes(bad))
    import zlib
    v2 = bytearray(data)
    struct.pack_into("<H", v2, 8, 2)
    struct.pack_into("<I", v2, 28, zlib.crc32(bytes(v2[:28])))
    with pytest.raises(ProgramFormatError, match="format version 2 is not supported"):
        decode_program(bytes(v2))


def test_json_errors_are_one_line_and_name_the_problem(program):
    with pytest.raises(ProgramFormatError, match="not valid JSON"):
        assemble("{", "p.json")
    d = json.loads(program_json(program))
    del d["buffers"][0]["size"]
    with pytest.raises(ProgramFormatError, match="p.json: missing field 'size'"):
        assemble(json.dumps(d), "p.json")
    desc = program_json(program, include_data=False)
    with pytest.raises(ProgramFormatError, match="has no data"):
        assemble(desc)


def test_write_and_read_program_files(tmp_path, program):
    b, j = write_program(program, tmp_path)
    assert read_program(b).to_dict() == program.to_dict()
    assert read_program(j).to_dict() == program.to_dict()
    assert assemble(j.read_text()) == b.read_bytes()
    with pytest.raises(ProgramFormatError, match="cannot read"):
        read_program(tmp_path / "missing.bin")


def test_the_numbers_program_bin_stores_are_pinned_by_the_format():
    """Codes are part of the format, not positions in a tuple: these exact numbers (those of format version 1)
    must hold, so programs written by any earlier build still decode the same. A change here is a new format."""
    from axdrive_hw.program import binary
    from axdrive_hw.isa import OPCODES

    assert binary.KIND_CODES == {"dma": 0, "mvm": 1, "dwpu": 2, "dpu": 3}
    assert binary.OP_CODES == {"dma": {"copy2d": 0}, "mvm": {"conv2d": 0, "matmul": 1},
                               "dwpu": {"depthwise": 0, "maxpool": 1, "avgpool": 2, "resize_nearest": 3},
                               "dpu": {"program": 0}}
    assert binary.BUFFER_KIND_CODES == {"input": 0, "output": 1, "constant": 2, "workspace": 3}
    assert binary.LEVEL_CODES == {"ddr": 0, "l2": 1, "l1": 2}
    assert list(binary.DTYPE_CODES) == ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
                                        "float32", "float64"] and list(binary.DTYPE_CODES.values()) == list(range(10))
    # the DPU's instruction encoding, named once in isa.py and compared by name in the kernels
    assert OPCODES["load"] == 1 and OPCODES["spill_load"] == 17 and OPCODES["lutw"] == 23
    assert sorted(OPCODES.values()) == list(range(24))
