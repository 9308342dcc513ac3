"""Figures of a simulated run as plain SVG text: a memory level's map over time and the per-unit timeline.

Why figures at all: tiling, memory planning and scheduling are decisions about *where* bytes sit and
*when* units work, and a table of numbers (``compile_report.json`` ``memory``, the ``unit_busy`` of a run)
says how much, not how. A picture of one level's buffers (address against cycles) shows the packing, the
lifetimes the planner reused bytes across and the headroom under the peak; a Gantt chart of every unit shows
which unit bounds the model and where the DMA hides behind compute.

Why SVG written by hand: no plotting dependency for a simulator package, text that diffs and is checked
into ``docs/figures``, and output that is byte-identical for the same inputs (fixed iteration order, every
number formatted with one decimal). Files stay small: shapes share CSS classes, and the timeline merges runs
of sub-pixel tasks of one row that lie less than a pixel apart (detail no screen shows), so a 1,100-task
model's timeline is under a hundred KB.

Rules a test can count on:

* :func:`memory_map_svg`: exactly one ``<rect>`` per buffer of the level (of ``core`` for L1) with a non-zero
  size, inside ``<g id="buffers">``; each has a ``<title>`` naming the buffer.
* :func:`timeline_svg`: inside ``<g id="tasks">`` one ``<rect>`` per *bar*. Within one row (core x unit),
  the tasks sorted by start cycle, a task at least one pixel wide is a bar of its own; a run of consecutive
  tasks each narrower than a pixel, each starting less than a pixel after the previous one's end, is one bar
  (its ``<title>`` says how many tasks). A bar narrower than half a pixel is drawn half a pixel wide.
"""

from __future__ import annotations

__all__ = ["ROLES", "UNIT_ORDER", "buffer_roles", "memory_map_svg", "timeline_svg", "run_figures"]

import math
from typing import Callable, Iterable, Mapping, Sequence
from xml.sax.saxutils import escape

from axdrive_hw.cycle_model import TaskRecord, Timeline
from axdrive_hw.program.model import Buffer, Program

ROLES: dict[str, str] = {
    "activation": "#4e79a7",
    "weights": "#f28e2b",
    "constants": "#59a14f",
    "code": "#b07aa1",
    "io": "#e15759",
}
"""What a buffer holds, and its colour: activations (tensor homes, tile slots, rolling buffers), weights,
constants (bias, requantization multipliers and shifts, LUTs, DPU constants), DPU code, model I/O."""

UNIT_ORDER: tuple[str, ...] = ("mvm", "dwpu", "dpu", "dma0", "dma1", "sysdma")
"""Timeline rows per core, top to bottom (``sysdma`` is the chip's, one row)."""

UNIT_COLOURS: dict[str, str] = {
    "mvm": "#4e79a7", "dwpu": "#76b7b2", "dpu": "#f28e2b", "dma0": "#59a14f", "dma1": "#8cd17d", "sysdma": "#b07aa1",
}

_LINK_COLOUR = "#9c9c9c"

# operand names (``Task.inputs``/``outputs`` keys) -> role: what a unit does with a buffer says what it holds,
# whatever the compiler called it
_OPERAND_ROLES: dict[str, str] = {"w": "weights", "code": "code", "bias": "constants", "multiplier": "constants",
                                  "shift": "constants", "luts": "constants", "consts": "constants"}

_WIDTH = 1000.0
_LEFT, _RIGHT, _TOP, _BOTTOM = 86.0, 200.0, 54.0, 46.0


# -- formatting ----------------------------------------------------------------------------------------------
def _n(v: float) -> str:
    """One decimal, never ``-0.0``: the same geometry always gives the same bytes."""
    s = f"{v:.1f}"
    return "0.0" if s == "-0.0" else s


def _cycles_label(v: float) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.4g}{suffix}"
    return f"{v:.4g}"


def _bytes_label(v: float) -> str:
    for scale, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if abs(v) >= scale:
            return f"{v / scale:.4g} {suffix}"
    return f"{v:.4g} B"


def _nice_step(span: float, target: int) -> float:
    """A 1/2/5 x 10^k step giving about ``target`` intervals over ``span`` (cycles read best in decimal)."""
    raw = span / max(target, 1)
    if raw <= 0:
        return 1.0
    mag = 10.0 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1.0, 2.0, 5.0, 10.0) if m * mag >= raw)


def _pow2_step(span: float, target: int) -> float:
    """A power-of-two step (bytes read best as 256 KiB, 1 MiB, ...) giving at most about ``target`` intervals."""
    raw = max(span / max(target, 1), 1.0)
    return float(1 << math.ceil(math.log2(raw)))


def _ticks(hi: float, step: float) -> list[float]:
    return [i * step for i in range(int(hi // step) + 1)]


def _header(width: float, height: float, css: str) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_n(width)}" height="{_n(height)}" '
            f'viewBox="0 0 {_n(width)} {_n(height)}" font-family="sans-serif" font-size="11">',
            f"<style>{css}</style>",
            f'<rect x="0.0" y="0.0" width="{_n(width)}" height="{_n(height)}" fill="#ffffff"/>']


def _text(x: float, y: float, s: str, cls: str = "", anchor: str = "") -> str:
    attrs = f' class="{cls}"' if cls else ""
    attrs += f' text-anchor="{anchor}"' if anchor else ""
    return f'<text x="{_n(x)}" y="{_n(y)}"{attrs}>{escape(s)}</text>'


def _x_axis(parts: list[str], x_of: Callable[[float], float], hi: float, top: float, bottom: float,
            label: str, centre: float) -> None:
    """Vertical grid lines and cycle labels under the plot."""
    for t in _ticks(hi, _nice_step(hi, 8)):
        x = x_of(t)
        parts.append(f'<line class="grid" x1="{_n(x)}" y1="{_n(top)}" x2="{_n(x)}" y2="{_n(bottom)}"/>')
        parts.append(_text(x, bottom + 14, _cycles_label(t), anchor="middle"))
    parts.append(_text(centre, bottom + 32, label, "axis", "middle"))


def _legend(parts: list[str], entries: Sequence[tuple[str, str, str]], x: float, y: float,
            across: float = 0.0) -> None:
    """``(css class, colour, text)`` swatches from ``(x, y)``: one under another, or side by side ``across``
    pixels apart."""
    for i, (cls, colour, label) in enumerate(entries):
        sx, sy = (x + across * i, y) if across else (x, y + 18 * i)
        parts.append(f'<rect class="{cls}" x="{_n(sx)}" y="{_n(sy)}" width="12.0" height="12.0" fill="{colour}"/>')
        parts.append(_text(sx + 18, sy + 10, label))


# -- buffer roles ----------------------------------------------------------------------------------------------
def buffer_roles(program: Program) -> dict[str, str]:
    """Each buffer's role (a key of :data:`ROLES`), judged by how the program uses it.

    Why by use and not by name: the program format records only ``kind`` (input, output, constant,
    workspace), and names are the compiler's business. An MVM reads its weights as operand ``w``, a DPU its
    program as ``code`` and its tables as ``luts``/``consts``, requantization comes as ``bias``,
    ``multiplier``, ``shift``; a DMA copies a buffer into another of the same role, so the role of an L1
    copy carries back to the DDR/L2 constant it was loaded from (and the other way round). What is left is an
    activation, or a constant when its kind says so; model inputs and outputs are ``io``.
    """
    roles: dict[str, str] = {}
    for b in program.buffers:
        if b.kind in ("input", "output"):
            roles[b.name] = "io"
    edges: list[tuple[str, str]] = []
    for tasks in program.tasks:
        for t in tasks:
            if t.kind == "dma":
                edges += [(s.buffer, d.buffer) for s in t.inputs.values() for d in t.outputs.values()]
                continue
            for key, ref in t.inputs.items():
                roles.setdefault(ref.buffer, _OPERAND_ROLES.get(key, "activation"))
            for ref in t.outputs.values():
                roles.setdefault(ref.buffer, "activation")
    constants = {b.name for b in program.buffers if b.kind == "constant"}
    changed = True
    while changed:  # a chain DDR -> L2 -> L1 needs as many rounds as it has hops
        changed = False
        for src, dst in edges:
            for a, b in ((src, dst), (dst, src)):
                if a in roles and b not in roles and (roles[a] != "activation" or b not in constants):
                    roles[b] = roles[a] if roles[a] != "io" else "activation"
                    changed = True
    return {b.name: roles.get(b.name, "constants" if b.kind == "constant" else "activation") for b in program.buffers}


# -- the memory map ------------------------------------------------------------------------------------------
def _first_runs(timeline: Timeline) -> dict[tuple[int, int], TaskRecord]:
    """Per ``(core, task index)`` its earliest record: the first frame of a multi-frame timeline."""
    first: dict[tuple[int, int], TaskRecord] = {}
    for r in timeline.records:
        key = (r.core, r.index)
        if key not in first or r.start < first[key].start:
            first[key] = r
    return first


def _most_live(spans: Iterable[tuple[float, float, int]]) -> int:
    """The most bytes live at one cycle (a buffer's end frees before another's start at the same cycle)."""
    events = sorted(ev for x0, x1, size in spans for ev in ((x0, 1, size), (x1, 0, -size)))
    live = best = 0
    for _x, _order, delta in events:
        live += delta
        best = max(best, live)
    return best


def memory_map_svg(program: Program, timeline: Timeline, level: str = "l1", core: int = 0, *,
                   capacity: int | None = None, title: str | None = None) -> str:
    """One memory level's buffers over one inference, as SVG text.

    Each buffer (of ``core`` for ``l1``; every core's for ``l2``/``ddr``) is a rectangle: x from the start
    of the first task of its live range to the end of its last (the simulator frees a buffer then), mapped
    through ``timeline``'s records; buffers without a live range (inputs, outputs, constants) span the whole
    inference. y is its address range, address 0 at the bottom. A dashed line marks the peak (the highest byte
    used); the subtitle compares it with the most bytes live at one cycle, which no packing can go below.
    ``capacity`` (the level's usable bytes) is drawn too when it is at most a quarter above the peak, so a
    level that is nearly full shows how nearly. With a multi-frame timeline each task's first run counts.
    """
    if level == "l1":
        buffers = [b for b in program.buffers if b.level == "l1" and b.core == core and b.size > 0]
        where = f"l1 of core {core}"
    else:
        buffers = [b for b in program.buffers if b.level == level and b.size > 0]
        where = level
    if not buffers:
        raise ValueError(f"the program has no buffers in {where}")
    roles = buffer_roles(program)
    first = _first_runs(timeline)
    x_hi = max([r.end for r in first.values()] + [1.0])

    def span(b: Buffer) -> tuple[float, float]:
        if b.live is None:
            return 0.0, x_hi
        r0, r1 = first.get((b.core, b.live[0])), first.get((b.core, b.live[1]))
        if r0 is None or r1 is None:  # a task the timeline does not hold (a partial run): the whole inference
            return 0.0, x_hi
        return r0.start, max(r1.end, r0.start)

    spans = [span(b) for b in buffers]
    peak = max(b.address + b.size for b in buffers)
    show_capacity = capacity is not None and peak <= capacity <= 1.25 * peak
    y_hi = float(max(peak, capacity if show_capacity and capacity is not None else 0))
    most = _most_live((x0, x1, b.size) for (x0, x1), b in zip(spans, buffers))

    plot_h = 460.0
    height = _TOP + plot_h + _BOTTOM
    left, right, top, bottom = _LEFT, _WIDTH - _RIGHT, _TOP, _TOP + plot_h

    def x_of(c: float) -> float:
        return left + (right - left) * c / x_hi

    def y_of(a: float) -> float:
        return bottom - plot_h * a / y_hi

    css = ("text{fill:#222}.t{font-size:14px;font-weight:bold}.axis{font-size:12px}"
           ".grid{stroke:#e4e4e4;stroke-width:1}.frame{fill:none;stroke:#444}"
           ".peak{stroke:#d62728;stroke-width:1.2;stroke-dasharray:6 3}"
           ".cap{stroke:#222;stroke-width:1;stroke-dasharray:2 3}.b{stroke:#ffffff;stroke-width:0.5}"
           + "".join(f".{k}{{fill:{c}}}" for k, c in ROLES.items()))
    parts = _header(_WIDTH, height, css)
    seconds = x_hi / timeline.frequency_hz
    parts.append(_text(left, 20, title or f"Memory map: {where}, {len(buffers)} buffers over one inference", "t"))
    usable = f" of {_bytes_label(capacity)} usable" if capacity is not None and not show_capacity else ""
    parts.append(_text(left, 38, f"peak {_bytes_label(peak)} ({peak:,} B){usable}; most live at one cycle "
                       f"{_bytes_label(most)} ({most / peak:.1%} of the peak); {_cycles_label(x_hi)} cycles = "
                       f"{seconds * 1e3:.3f} ms at {timeline.frequency_hz / 1e6:g} MHz"))
    _x_axis(parts, x_of, x_hi, top, bottom, "cycles", (left + right) / 2)
    for t in _ticks(y_hi, _pow2_step(y_hi, 8)):
        y = y_of(t)
        parts.append(f'<line class="grid" x1="{_n(left)}" y1="{_n(y)}" x2="{_n(right)}" y2="{_n(y)}"/>')
        parts.append(_text(left - 6, y + 4, _bytes_label(t), anchor="end"))
    parts.append(f'<text class="axis" transform="translate(14 {_n(top + plot_h / 2)}) rotate(-90)" '
                 f'text-anchor="middle">address in {escape(level)}</text>')
    parts.append('<g id="buffers">')
    order = sorted(range(len(buffers)), key=lambda i: (buffers[i].address, spans[i][0], buffers[i].name))
    for i in order:
        b, (c0, c1) = buffers[i], spans[i]
        x0, x1 = x_of(c0), x_of(c1)
        y0, y1 = y_of(b.address + b.size), y_of(b.address)
        w, h = max(x1 - x0, 0.5), max(y1 - y0, 0.5)
        live = f"tasks {b.live[0]}..{b.live[1]}" if b.live is not None else "whole run"
        tip = (f"{b.name} [{roles[b.name]}] {level}+0x{b.address:x} {b.size:,} B; {live}, "
               f"cycles {int(c0)}..{int(c1)}")
        # a white edge separates neighbours, but would bleach a sliver of a pixel: only shapes of 3 px and more
        edge = " b" if w >= 3.0 and h >= 3.0 else ""
        parts.append(f'<rect class="{roles[b.name]}{edge}" x="{_n(x0)}" y="{_n(y0)}" width="{_n(w)}" height="{_n(h)}">'
                     f"<title>{escape(tip)}</title></rect>")
    parts.append("</g>")
    parts.append(f'<line class="peak" x1="{_n(left)}" y1="{_n(y_of(peak))}" x2="{_n(right)}" y2="{_n(y_of(peak))}"/>')
    parts.append(_text(right - 4, y_of(peak) - 4, f"peak {_bytes_label(peak)}", anchor="end"))
    if show_capacity and capacity is not None:
        parts.append(f'<line class="cap" x1="{_n(left)}" y1="{_n(y_of(capacity))}" x2="{_n(right)}" '
                     f'y2="{_n(y_of(capacity))}"/>')
        parts.append(_text(left + 4, y_of(capacity) - 4, f"usable {_bytes_label(capacity)}"))
    parts.append(f'<rect class="frame" x="{_n(left)}" y="{_n(top)}" width="{_n(right - left)}" height="{_n(plot_h)}"/>')
    totals = {k: (0, 0) for k in ROLES}
    for b in buffers:
        n, s = totals[roles[b.name]]
        totals[roles[b.name]] = (n + 1, s + b.size)
    _legend(parts, [(k, c, f"{k}: {totals[k][0]} ({_bytes_label(totals[k][1])})") for k, c in ROLES.items()
                    if totals[k][0]], right + 14, top + 4)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


# -- the timeline --------------------------------------------------------------------------------------------
def timeline_svg(timeline: Timeline, cores: Iterable[int] | None = None, *, title: str | None = None,
                 host_transfers: Iterable[tuple[float, float, str]] = ()) -> str:
    """A Gantt chart of a run, as SVG text: one row per core and unit, a bar per task (start to end cycle).

    Rows are the units in :data:`UNIT_ORDER` that ran at least one task, per core in ``cores`` (default:
    every core with a task), then the chip's system DMA. Bars are coloured by unit; runs of sub-pixel tasks
    less than a pixel apart are merged (module docstring), and each row's label gives its busy share of the
    run, so the unit that bounds the model reads at a glance. ``host_transfers`` (``(start, end, label)``
    cycles of the host runtime's uploads and downloads) add a last row ``host link`` in ``<g id="host">``,
    one bar each: without it a run's first cycles (the input upload) would look like idle hardware.
    """
    wanted = None if cores is None else set(cores)
    recs = [r for r in timeline.records if wanted is None or r.core in wanted]
    chosen = sorted({r.core for r in recs if r.unit != "sysdma"})
    rows: list[tuple[str, str, list[TaskRecord]]] = []  # (label, unit, records)
    for c in chosen:
        for u in UNIT_ORDER[:-1]:
            rr = [r for r in recs if r.core == c and r.unit == u]
            if rr:
                rows.append((f"core{c} {u}", u, rr))
    sys_recs = [r for r in recs if r.unit == "sysdma"]
    if sys_recs:
        rows.append(("chip sysdma", "sysdma", sys_recs))
    if not rows:
        raise ValueError("the timeline has no task records" + ("" if wanted is None else
                                                              f" on cores {sorted(wanted)}"))
    links = sorted((float(a), float(b), str(t)) for a, b, t in host_transfers if b > a)
    x_hi = max([timeline.cycles] + [r.end for r in recs] + [b for _a, b, _t in links] + [1.0])
    row_h, bar_h = 26.0, 18.0
    plot_h = row_h * (len(rows) + (1 if links else 0))
    height = _TOP + plot_h + _BOTTOM + 24  # the legend runs under the axis title
    left, right, top, bottom = _LEFT, _WIDTH - 48.0, _TOP, _TOP + plot_h
    px = (right - left) / x_hi

    def x_of(c: float) -> float:
        return left + px * c

    css = ("text{fill:#222}.t{font-size:14px;font-weight:bold}.axis{font-size:12px}"
           ".grid{stroke:#e4e4e4;stroke-width:1}.frame{fill:none;stroke:#444}.band{fill:#f6f6f6}"
           + "".join(f".{u}{{fill:{c}}}" for u, c in UNIT_COLOURS.items()) + f".link{{fill:{_LINK_COLOUR}}}")
    parts = _header(_WIDTH, height, css)
    parts.append(_text(left, 20, title or f"Timeline: {len(recs)} tasks on {len(chosen)} core(s)", "t"))
    parts.append(_text(left, 38, f"{_cycles_label(x_hi)} cycles = {x_hi / timeline.frequency_hz * 1e3:.3f} ms at "
                       f"{timeline.frequency_hz / 1e6:g} MHz; a bar is a task (runs of sub-pixel tasks merged); "
                       "busy share of the run at the right"))
    for i in range(0, len(rows) + (1 if links else 0), 2):
        parts.append(f'<rect class="band" x="{_n(left)}" y="{_n(top + i * row_h)}" width="{_n(right - left)}" '
                     f'height="{_n(row_h)}"/>')
    _x_axis(parts, x_of, x_hi, top, bottom, "cycles", (left + right) / 2)
    parts.append('<g id="tasks">')
    bars = 0
    for i, (label, unit, rr) in enumerate(rows):
        y = top + i * row_h + (row_h - bar_h) / 2
        rr = sorted(rr, key=lambda r: (r.start, r.end, r.core, r.index, r.frame))
        group: list[TaskRecord] = []
        end = -math.inf

        def flush() -> None:
            nonlocal bars
            if not group:
                return
            s, e = group[0].start, max(r.end for r in group)
            if len(group) == 1:
                r = group[0]
                stage = f" {r.stage}" if r.stage else ""
                frame = f" frame {r.frame}" if r.frame else ""
                tip = f"{label}: task {r.index} {r.kind}/{r.op}{stage}{frame}, cycles {int(s)}..{int(e)}"
            else:
                tip = f"{label}: {len(group)} tasks ({group[0].index}..{group[-1].index}), cycles {int(s)}..{int(e)}"
            parts.append(f'<rect class="{unit}" x="{_n(x_of(s))}" y="{_n(y)}" width="{_n(max((e - s) * px, 0.5))}" '
                         f'height="{_n(bar_h)}"><title>{escape(tip)}</title></rect>')
            bars += 1

        narrow = False  # the bar being built is a run of sub-pixel tasks
        for r in rr:
            thin = (r.end - r.start) * px < 1.0
            if group and narrow and thin and (r.start - end) * px < 1.0:
                group.append(r)
                end = max(end, r.end)
            else:
                flush()
                group, end, narrow = [r], r.end, thin
        flush()
    parts.append("</g>")
    labels = [(label, sum(r.end - r.start for r in rr)) for label, _unit, rr in rows]
    if links:
        y = top + len(rows) * row_h + (row_h - bar_h) / 2
        parts.append('<g id="host">')
        for a, b, tip in links:
            parts.append(f'<rect class="link" x="{_n(x_of(a))}" y="{_n(y)}" width="{_n(max((b - a) * px, 0.5))}" '
                         f'height="{_n(bar_h)}"><title>{escape(f"host link: {tip}, cycles {int(a)}..{int(b)}")}'
                         "</title></rect>")
        parts.append("</g>")
        labels.append(("host link", sum(b - a for a, b, _t in links)))
    for i, (label, busy) in enumerate(labels):
        y = top + i * row_h + row_h / 2 + 4
        parts.append(_text(left - 6, y, label, anchor="end"))
        parts.append(_text(right + 6, y, f"{busy / x_hi:.0%}"))
    parts.append(f'<rect class="frame" x="{_n(left)}" y="{_n(top)}" width="{_n(right - left)}" height="{_n(plot_h)}"/>')
    units = [u for u in UNIT_ORDER if any(row[1] == u for row in rows)]
    entries = [(u, UNIT_COLOURS[u], u) for u in units] + ([("link", _LINK_COLOUR, "host link")] if links else [])
    _legend(parts, entries, left, bottom + 44, 90.0)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


# -- one run's figures -------------------------------------------------------------------------------------
def run_figures(program: Program, inference: Timeline, timeline: Timeline | None = None, *,
                capacities: Mapping[str, int] | None = None,
                host_transfers: Iterable[tuple[float, float, str]] = ()) -> dict[str, str]:
    """Every figure of a run, by file name: what ``axdrive run --figures`` writes.

    ``memory_map_l1.svg`` (core 0; other cores ``memory_map_l1_core<N>.svg``), ``memory_map_l2.svg``,
    ``memory_map_ddr.svg`` for the levels that hold buffers, from ``inference`` (one inference's timing);
    ``timeline.svg`` from ``timeline`` (the whole run, every frame; ``inference`` when not given) with the
    ``host_transfers`` row. ``capacities``: usable bytes per level, for the capacity line.
    """
    caps = dict(capacities or {})
    figures: dict[str, str] = {}
    for c in sorted({b.core for b in program.buffers if b.level == "l1" and b.size > 0}):
        name = "memory_map_l1.svg" if c == 0 else f"memory_map_l1_core{c}.svg"
        figures[name] = memory_map_svg(program, inference, "l1", c, capacity=caps.get("l1"))
    for level in ("l2", "ddr"):
        if any(b.level == level and b.size > 0 for b in program.buffers):
            figures[f"memory_map_{level}.svg"] = memory_map_svg(program, inference, level, capacity=caps.get(level))
    figures["timeline.svg"] = timeline_svg(timeline if timeline is not None else inference,
                                           host_transfers=host_transfers)
    return figures

