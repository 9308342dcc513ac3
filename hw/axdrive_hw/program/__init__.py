"""The AIPU program: the model a compiler builds (:mod:`.model`) and its files (:mod:`.binary`)."""

from axdrive_hw.program.binary import (assemble, decode_program, disassemble, encode_program, program_json,
                                       read_program, write_program)
from axdrive_hw.program.model import FORMAT_VERSION, Buffer, Program, ProgramBuilder, Ref, Task

__all__ = ["FORMAT_VERSION", "Buffer", "Program", "ProgramBuilder", "Ref", "Task", "assemble", "decode_program",
           "disassemble", "encode_program", "program_json", "read_program", "write_program"]
