"""``program.bin``: the versioned binary encoding of a :class:`Program`, and the
assembler/disassembler pair that converts it to and from ``program.json``.

Layout (all integers little-endian, version 1)::

    header (64 bytes)
      0   8s   magic  b"AXPRGM\\r\\n"  (the CR LF catches text-mode mangling)
      8   u16  format version
      10  u16  header size (64)
      12  u32  number of sections
      16  u64  file size in bytes
      24  u32  CRC-32 of bytes [64, file size)
      28  u32  CRC-32 of header bytes [0, 28)
      32  32x  zero
    section table: one 24-byte entry per section
          4s   tag, u32 CRC-32 of the section, u64 offset, u64 size
    sections, each starting on an 8-byte boundary, in this order:
      STRS  string table: u32 count, then per string u32 length + UTF-8 bytes
      PROG  u32 target, u32 cores, u32 #inputs, u32 #outputs, then
            (u32 tensor, u32 buffer) pairs for inputs, then outputs
      BUFS  u32 count, then per buffer ``<IBBHQQqqiBB``: name, level, kind,
            core, address, size, live first, live last (-1 -1: whole run),
            init constant string (-1: none), dtype, ndim; + ndim u64 dims
      TASK  u32 cores, per core u32 task count, per task ``<BBBBHHHi``:
            kind, op, #inputs, #outputs, #wait, #signal, #params, stage
            string (-1: none); then each operand ``<IIBBQ`` (role string,
            buffer index, dtype, ndim, byte offset) + ndim u64 dims; then
            u32 wait tokens, u32 signal tokens; then params as
            (u32 key string, tagged value)
      CNST  u32 count, per constant ``<IBBQQ`` (name, dtype, ndim, data
            offset, nbytes) + ndim u64 dims
      DATA  the constants' bytes, each 64-byte aligned, zero padded

Codes: a task's kind and op, a buffer's level and kind, and a dtype are stored as
fixed numbers (:data:`KIND_CODES`, :data:`OP_CODES`, ...), written out here and
never derived from the order of a tuple: adding an op takes the next free
number, and every program written before still reads the same. Renumbering
one is a new format version.

Tagged values (task params): u8 tag then 0 none, 1 bool (u8), 2 int (i64),
3 float (f64), 4 string (u32), 5 list (u32 n + n values), 6 map (u32 n + n
(u32 key, value)).

Strings are interned in first-use order and sections are written in a fixed
order, so the same program always gives the same bytes. ``program.json`` is
``json.dumps(program.to_dict(), indent=1) + "\\n"``; assembling it and
disassembling the result gives it back character for character, and the
other way round byte for byte.
"""

from __future__ import annotations

__all__ = ["MAGIC", "HEADER_SIZE", "encode_program", "decode_program", "assemble", "disassemble", "program_json",
           "write_program", "read_program", "KIND_CODES", "OP_CODES", "BUFFER_KIND_CODES", "LEVEL_CODES", "DTYPE_CODES"]

import json
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from axdrive.errors import ProgramFormatError
from axdrive_hw.program.model import BUFFER_KINDS, FORMAT_VERSION, TASK_OPS, Buffer, Program, Ref, Task
from axdrive_hw.target import LEVELS

MAGIC = b"AXPRGM\r\n"
HEADER_SIZE = 64
_HEADER = struct.Struct("<8sHHIQII32x")
_SECTION = struct.Struct("<4sIQQ")
_SECTIONS = (b"STRS", b"PROG", b"BUFS", b"TASK", b"CNST", b"DATA")
_BUF = struct.Struct("<IBBHQQqqiBB")
_TASK = struct.Struct("<BBBBHHHi")
_OPERAND = struct.Struct("<IIBBQ")
_CONST = struct.Struct("<IBBQQ")
_DATA_ALIGN = 64

#: The numbers program.bin stores (see the module docstring): fixed by the format, one table per field.
KIND_CODES: dict[str, int] = {"dma": 0, "mvm": 1, "dwpu": 2, "dpu": 3}
OP_CODES: dict[str, dict[str, int]] = {
    "dma": {"copy2d": 0},
    "mvm": {"conv2d": 0, "matmul": 1},
    "dwpu": {"depthwise": 0, "maxpool": 1, "avgpool": 2, "resize_nearest": 3},
    "dpu": {"program": 0},
}
BUFFER_KIND_CODES: dict[str, int] = {"input": 0, "output": 1, "constant": 2, "workspace": 3}
LEVEL_CODES: dict[str, int] = {"ddr": 0, "l2": 1, "l1": 2}
DTYPE_CODES: dict[str, int] = {"int8": 0, "uint8": 1, "int16": 2, "uint16": 3, "int32": 4, "uint32": 5, "int64": 6,
                               "uint64": 7, "float32": 8, "float64": 9}


def _table(codes: dict[str, int]) -> tuple[str, ...]:
    """The names by code, for decoding (the codes of a table are 0..n-1, checked at import)."""
    names = tuple(sorted(codes, key=codes.__getitem__))
    if [codes[n] for n in names] != list(range(len(names))):
        raise RuntimeError(f"program.bin code table is not 0..n-1: {codes}")
    return names


_KINDS = _table(KIND_CODES)
_OPS = {kind: _table(ops) for kind, ops in OP_CODES.items()}
_BUFFER_KINDS = _table(BUFFER_KIND_CODES)
_LEVELS = _table(LEVEL_CODES)
_DTYPES = _table(DTYPE_CODES)
if {k: set(v) for k, v in OP_CODES.items()} != {k: set(v) for k, v in TASK_OPS.items()} or \
        set(BUFFER_KIND_CODES) != set(BUFFER_KINDS) or set(LEVEL_CODES) != set(LEVELS):
    raise RuntimeError("program.bin code tables and the program model disagree: every op, buffer kind and level "
                       "needs exactly one fixed number here")


# -- encoding ------------------------------------------------------------------------------------------
class _Writer:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def pack(self, fmt: str | struct.Struct, *values: Any) -> None:
        self.parts.append(fmt.pack(*values) if isinstance(fmt, struct.Struct) else struct.pack(fmt, *values))

    def raw(self, b: bytes) -> None:
        self.parts.append(b)

    def bytes(self) -> bytes:
        return b"".join(self.parts)


class _Strings:
    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def __call__(self, s: str) -> int:
        if not isinstance(s, str):
            raise ProgramFormatError(f"program.bin encoder: expected a string, got {s!r}")
        if s not in self.index:
            self.index[s] = len(self.index)
        return self.index[s]

    def opt(self, s: str | None) -> int:
        return -1 if s is None else self(s)


def _code(table: tuple[str, ...], value: str, what: str) -> int:
    try:
        return table.index(value)
    except ValueError:
        raise ProgramFormatError(f"program.bin encoder: {what} {value!r} is not one of {', '.join(table)}") from None


def _put_value(w: _Writer, strs: _Strings, v: Any, where: str) -> None:
    if v is None:
        w.pack("<B", 0)
    elif isinstance(v, bool):
        w.pack("<BB", 1, int(v))
    elif isinstance(v, (int, np.integer)):
        if not -(2**63) <= int(v) < 2**63:
            raise ProgramFormatError(f"program.bin encoder: {where}: integer {v} does not fit int64")
        w.pack("<Bq", 2, int(v))
    elif isinstance(v, (float, np.floating)):
        w.pack("<Bd", 3, float(v))
    elif isinstance(v, str):
        w.pack("<BI", 4, strs(v))
    elif isinstance(v, (list, tuple)):
        w.pack("<BI", 5, len(v))
        for i, item in enumerate(v):
            _put_value(w, strs, item, f"{where}[{i}]")
    elif isinstance(v, dict):
        w.pack("<BI", 6, len(v))
        for k, item in v.items():
            w.pack("<I", strs(str(k)))
            _put_value(w, strs, item, f"{where}.{k}")
    else:
        raise ProgramFormatError(f"program.bin encoder: {where}: cannot encode {type(v).__name__} value {v!r}")


def encode_program(program: Program) -> bytes:
    """The ``program.bin`` bytes of ``program`` (deterministic)."""
    if program.version != FORMAT_VERSION:
        raise ProgramFormatError(f"program.bin encoder: program version {program.version} is not {FORMAT_VERSION}")
    strs = _Strings()
    buf_index = {b.name: i for i, b in enumerate(program.buffers)}
    if len(buf_index) != len(program.buffers):
        raise ProgramFormatError("program.bin encoder: duplicate buffer names in the memory map")

    prog = _Writer()
    prog.pack("<IIII", strs(program.target), program.cores, len(program.inputs), len(program.outputs))
    for mapping in (program.inputs, program.outputs):
        for tensor, buffer in mapping.items():
            prog.pack("<II", strs(tensor), strs(buffer))

    bufs = _Writer()
    bufs.pack("<I", len(program.buffers))
    for b in program.buffers:
        first, last = b.live if b.live is not None else (-1, -1)
        bufs.pack(_BUF, strs(b.name), _code(_LEVELS, b.level, f"buffer {b.name!r} level"),
                  _code(_BUFFER_KINDS, b.kind, f"buffer {b.name!r} kind"), b.core, b.address, b.size, first, last,
                  strs.opt(b.init), _code(_DTYPES, b.dtype, f"buffer {b.name!r} dtype"), len(b.shape))
        bufs.pack(f"<{len(b.shape)}Q", *b.shape)

    tasks = _Writer()
    tasks.pack("<I", len(program.tasks))
    for tl in program.tasks:
        tasks.pack("<I", len(tl))
    for core, tl in enumerate(program.tasks):
        for i, t in enumerate(tl):
            where = f"core {core} task {i} ({t.kind}/{t.op})"
            kind = _code(_KINDS, t.kind, f"{where} kind")
            op = _code(_OPS[t.kind], t.op, f"{where} op")
            tasks.pack(_TASK, kind, op, len(t.inputs), len(t.outputs), len(t.wait), len(t.signal), len(t.params),
                       strs.opt(t.stage))
            for role, ref in list(t.inputs.items()) + list(t.outputs.items()):
                if ref.buffer not in buf_index:
                    raise ProgramFormatError(f"program.bin encoder: {where} operand {role!r} names unknown buffer "
                                             f"{ref.buffer!r}")
                tasks.pack(_OPERAND, strs(role), buf_index[ref.buffer], _code(_DTYPES, ref.dtype, f"{where} dtype"),
                           len(ref.shape), ref.offset)
                tasks.pack(f"<{len(ref.shape)}Q", *ref.shape)
            tasks.pack(f"<{len(t.wait)}I{len(t.signal)}I", *t.wait, *t.signal)
            for key, value in t.params.items():
                tasks.pack("<I", strs(key))
                _put_value(tasks, strs, value, f"{where} param {key!r}")

    consts = _Writer()
    data = _Writer()
    consts.pack("<I", len(program.constants))
    pos = 0
    for name, arr in program.constants.items():
        a = np.ascontiguousarray(arr)
        raw = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        consts.pack(_CONST, strs(name), _code(_DTYPES, str(a.dtype), f"constant {name!r} dtype"), a.ndim, pos,
                    len(raw))
        consts.pack(f"<{a.ndim}Q", *a.shape)
        pad = (-len(raw)) % _DATA_ALIGN
        data.raw(raw + b"\0" * pad)
        pos += len(raw) + pad

    table = _Writer()
    table.pack("<I", len(strs.index))
    for s in strs.index:
        enc = s.encode("utf-8")
        table.pack("<I", len(enc))
        table.raw(enc)

    bodies = [table.bytes(), prog.bytes(), bufs.bytes(), tasks.bytes(), consts.bytes(), data.bytes()]
    offset = HEADER_SIZE + _SECTION.size * len(bodies)
    entries, chunks = [], []
    for tag, body in zip(_SECTIONS, bodies):
        pad = (-offset) % 8
        chunks.append(b"\0" * pad + body)
        offset += pad
        entries.append(_SECTION.pack(tag, zlib.crc32(body), offset, len(body)))
        offset += len(body)
    payload = b"".join(entries) + b"".join(chunks)
    size = HEADER_SIZE + len(payload)
    head = struct.pack("<8sHHIQI", MAGIC, FORMAT_VERSION, HEADER_SIZE, len(bodies), size, zlib.crc32(payload))
    return _HEADER.pack(MAGIC, FORMAT_VERSION, HEADER_SIZE, len(bodies), size, zlib.crc32(payload),
                        zlib.crc32(head)) + payload


# -- decoding ------------------------------------------------------------------------------------------
class _Reader:
    """Bounds-checked reads inside one section; every failure names source, section and offset."""

    def __init__(self, data: bytes, source: str, section: str) -> None:
        self.data, self.pos, self.source, self.section = data, 0, source, section

    def fail(self, what: str) -> ProgramFormatError:
        return ProgramFormatError(f"{self.source}: section {self.section} at byte {self.pos}: {what}")

    def take(self, fmt: str | struct.Struct) -> tuple[Any, ...]:
        st = fmt if isinstance(fmt, struct.Struct) else struct.Struct(fmt)
        if self.pos + st.size > len(self.data):
            raise self.fail(f"truncated (needs {st.size} more bytes, {len(self.data) - self.pos} left)")
        values = st.unpack_from(self.data, self.pos)
        self.pos += st.size
        return values

    def one(self, fmt: str) -> Any:
        return self.take(fmt)[0]

    def count(self, limit_bytes_each: int = 1) -> int:
        n = self.one("<I")
        if n * limit_bytes_each > len(self.data) - self.pos:
            raise self.fail(f"count {n} exceeds the section's remaining {len(self.data) - self.pos} bytes")
        return n

    def end(self) -> None:
        if self.pos != len(self.data):
            raise self.fail(f"{len(self.data) - self.pos} trailing bytes")


def _pick(r: _Reader, table: tuple[str, ...] | list[str], i: int, what: str) -> str:
    if not 0 <= i < len(table):
        raise r.fail(f"{what} index {i} outside 0..{len(table) - 1}")
    return table[i]


def _get_value(r: _Reader, strs: list[str], depth: int = 0) -> Any:
    if depth > 32:
        raise r.fail("parameter nesting deeper than 32")
    tag = r.one("<B")
    if tag == 0:
        return None
    if tag == 1:
        return bool(r.one("<B"))
    if tag == 2:
        return r.one("<q")
    if tag == 3:
        return r.one("<d")
    if tag == 4:
        return _pick(r, strs, r.one("<I"), "string")
    if tag == 5:
        return [_get_value(r, strs, depth + 1) for _ in range(r.count())]
    if tag == 6:
        out = {}
        for _ in range(r.count(5)):
            key = _pick(r, strs, r.one("<I"), "string")
            out[key] = _get_value(r, strs, depth + 1)
        return out
    raise r.fail(f"unknown parameter value tag {tag}")


def decode_program(data: bytes, source: str = "program.bin") -> Program:
    """Parse and verify ``program.bin`` bytes; any defect raises a one-line :class:`ProgramFormatError`."""
    if len(data) < HEADER_SIZE:
        raise ProgramFormatError(f"{source}: truncated: {len(data)} bytes, the header alone is {HEADER_SIZE}")
    magic, version, header_size, n_sections, size, payload_crc, header_crc = _HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise ProgramFormatError(f"{source}: not an AIPU program (magic {magic!r}, expected {MAGIC!r})")
    if zlib.crc32(data[:28]) != header_crc:
        raise ProgramFormatError(f"{source}: header checksum mismatch (corrupt header)")
    if version != FORMAT_VERSION:
        raise ProgramFormatError(f"{source}: format version {version} is not supported (this axdrive-hw reads "
                                 f"version {FORMAT_VERSION})")
    if header_size != HEADER_SIZE or n_sections != len(_SECTIONS):
        raise ProgramFormatError(f"{source}: header size {header_size} / {n_sections} sections do not match "
                                 f"version {version} ({HEADER_SIZE} / {len(_SECTIONS)})")
    if len(data) != size:
        state = "truncated" if len(data) < size else "has trailing bytes"
        raise ProgramFormatError(f"{source}: {state}: {len(data)} bytes, header says {size}")
    if zlib.crc32(data[HEADER_SIZE:]) != payload_crc:
        bad = " in the section table or padding"
        for k in range(n_sections):
            tag, crc, off, sz = _SECTION.unpack_from(data, HEADER_SIZE + k * _SECTION.size)
            if off + sz <= len(data) and zlib.crc32(data[off:off + sz]) != crc:
                bad = f" in section {tag.decode('ascii', 'replace')} (bytes {off}..{off + sz})"
                break
        raise ProgramFormatError(f"{source}: checksum mismatch{bad}: the file is corrupt")
    sections: dict[bytes, bytes] = {}
    for k in range(n_sections):
        tag, crc, off, sz = _SECTION.unpack_from(data, HEADER_SIZE + k * _SECTION.size)
        if tag != _SECTIONS[k] or off + sz > len(data):
            raise ProgramFormatError(f"{source}: section table entry {k} ({tag!r}) is malformed")
        sections[tag] = data[off:off + sz]

    r = _Reader(sections[b"STRS"], source, "STRS")
    strs = []
    for _ in range(r.count(4)):
        n = r.one("<I")
        try:
            strs.append(r.one(f"<{n}s").decode("utf-8"))
        except UnicodeDecodeError:
            raise r.fail("string is not UTF-8") from None
    r.end()

    r = _Reader(sections[b"PROG"], source, "PROG")
    target_i, cores, n_in, n_out = r.take("<IIII")
    target = _pick(r, strs, target_i, "target string")
    io: list[dict[str, str]] = []
    for n in (n_in, n_out):
        io.append({_pick(r, strs, t, "string"): _pick(r, strs, b, "string") for t, b in
                   (r.take("<II") for _ in range(n))})
    r.end()

    r = _Reader(sections[b"BUFS"], source, "BUFS")
    buffers = []
    for _ in range(r.count(_BUF.size)):
        name, level, kind, core, address, size_b, first, last, init, dt, ndim = r.take(_BUF)
        shape = tuple(r.take(f"<{ndim}Q"))
        buffers.append(Buffer(_pick(r, strs, name, "string"), _pick(r, _LEVELS, level, "level"),
                              address, size_b, core, _pick(r, _BUFFER_KINDS, kind, "buffer kind"),
                              None if first == -1 and last == -1 else (first, last),
                              None if init == -1 else _pick(r, strs, init, "string"), shape,
                              _pick(r, _DTYPES, dt, "dtype")))
    r.end()

    r = _Reader(sections[b"TASK"], source, "TASK")
    counts = [r.one("<I") for _ in range(r.count(4))]
    tasks: list[list[Task]] = []
    for n_tasks in counts:
        tl = []
        for _ in range(n_tasks):
            kind_i, op_i, n_i, n_o, n_w, n_s, n_p, stage = r.take(_TASK)
            kind = _pick(r, _KINDS, kind_i, "task kind")
            op = _pick(r, _OPS[kind], op_i, f"{kind} op")
            refs = []
            for _ in range(n_i + n_o):
                role, bi, dt, ndim, offset = r.take(_OPERAND)
                shape = tuple(r.take(f"<{ndim}Q"))
                buf = buffers[bi].name if 0 <= bi < len(buffers) else _pick(r, [], bi, "buffer")
                refs.append((_pick(r, strs, role, "string"), Ref(buf, shape, _pick(r, _DTYPES, dt, "dtype"), offset)))
            wait = tuple(r.take(f"<{n_w}I"))
            signal = tuple(r.take(f"<{n_s}I"))
            params = {}
            for _ in range(n_p):
                key = _pick(r, strs, r.one("<I"), "string")
                params[key] = _get_value(r, strs)
            tl.append(Task(kind, op, dict(refs[:n_i]), dict(refs[n_i:]), params, wait, signal,
                           None if stage == -1 else _pick(r, strs, stage, "string")))
        tasks.append(tl)
    r.end()

    r = _Reader(sections[b"CNST"], source, "CNST")
    blob = sections[b"DATA"]
    constants = {}
    for _ in range(r.count(_CONST.size)):
        name_i, dt, ndim, off, nbytes = r.take(_CONST)
        shape = tuple(r.take(f"<{ndim}Q"))
        name = _pick(r, strs, name_i, "string")
        dtype = np.dtype(_pick(r, _DTYPES, dt, "dtype")).newbyteorder("<")
        if off + nbytes > len(blob) or int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != nbytes:
            raise r.fail(f"constant {name!r}: {nbytes} bytes at DATA+{off} do not fit shape {shape} / the section")
        constants[name] = np.frombuffer(blob, dtype=dtype, count=nbytes // dtype.itemsize, offset=off).astype(
            dtype.newbyteorder("="), copy=True).reshape(shape)
    r.end()
    return Program(target, cores, buffers, tasks, constants, io[0], io[1], version)


# -- the textual form ----------------------------------------------------------------------------------
def program_json(program: Program, *, include_data: bool = True) -> str:
    """The canonical ``program.json`` text (``include_data=False``: digests only, not assemblable)."""
    return json.dumps(program.to_dict(include_data=include_data), indent=1) + "\n"


def _parse_json(text: str, source: str) -> Program:
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise ProgramFormatError(f"{source}: not valid JSON: {e}") from None
    if not isinstance(d, dict) or d.get("format") != "axdrive-aipu-program":
        raise ProgramFormatError(f"{source}: not an AIPU program description (no \"format\": "
                                 "\"axdrive-aipu-program\")")
    if d.get("version") != FORMAT_VERSION:
        raise ProgramFormatError(f"{source}: format version {d.get('version')!r} is not supported (this axdrive-hw "
                                 f"reads version {FORMAT_VERSION})")
    try:
        return Program.from_dict(d)
    except KeyError as e:
        raise ProgramFormatError(f"{source}: missing field {e}") from None
    except (TypeError, ValueError, AttributeError) as e:
        raise ProgramFormatError(f"{source}: {str(e).splitlines()[0]}") from None


def assemble(json_text: str, source: str = "program.json") -> bytes:
    """``program.json`` text -> ``program.bin`` bytes."""
    return encode_program(_parse_json(json_text, source))


def disassemble(data: bytes, source: str = "program.bin") -> str:
    """``program.bin`` bytes -> ``program.json`` text (with constants, so it assembles back)."""
    return program_json(decode_program(data, source))


def write_program(program: Program, directory: str | Path, *, json_constants: bool = True) -> tuple[Path, Path]:
    """Write ``program.bin`` and ``program.json`` into ``directory``; returns both paths.

    ``json_constants=False`` writes digests instead of constant bytes into the
    JSON (smaller for large models; the binary stays the program).
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    bin_path, json_path = d / "program.bin", d / "program.json"
    bin_path.write_bytes(encode_program(program))
    json_path.write_text(program_json(program, include_data=json_constants))
    return bin_path, json_path


def read_program(path: str | Path) -> Program:
    """Load ``program.bin`` (or an assemblable ``program.json``) from ``path``."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ProgramFormatError(f"{p}: cannot read: {e.strerror}") from None
    if p.suffix == ".json":
        try:
            return _parse_json(data.decode("utf-8"), str(p))
        except UnicodeDecodeError:
            raise ProgramFormatError(f"{p}: not UTF-8 text") from None
    return decode_program(data, str(p))
