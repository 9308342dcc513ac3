"""Depth-first groups: consecutive layers whose intermediate results stay in L1.

Why a search: keeping a layer's result in L1 saves its round trip to the home
level (its whole size, written once and read once), but L1 is small, so a
group may only hold so much: its layers' working sets and, per intermediate,
a rolling buffer of the rows live at once. Cutting the chain of layers into
groups of at most ``tiling_depth`` layers is a segmentation problem: the best
cut points are where the intermediates are small. ``dfs_search_constraint``
bounds how many group lengths are tried per starting layer (longest first):
1 is greedy (the longest group that fits), unbounded is the exact dynamic
programme over the chain.
"""

from __future__ import annotations

__all__ = ["segment_chain"]

from typing import Callable, Sequence


def segment_chain(sizes: Sequence[int], linked: Sequence[bool], depth: int, budget: int,
                  candidates: int | None, fits: Callable[[int, int], bool] | None = None) -> list[int]:
    """Group lengths covering ``len(sizes)`` layers.

    ``sizes[i]`` is the byte size of layer ``i``'s result, ``linked[i]`` whether
    layer ``i + 1`` may join layer ``i``'s group (it reads that result and
    nothing else reads it). The score is the bytes kept in L1 (the results of
    all but a group's last layer). ``fits(i, length)`` says whether the group
    of ``length`` layers from ``i`` fits L1; without it, a group fits when the
    results it keeps hold at most ``budget`` bytes together.
    """
    n = len(sizes)

    def whole(i: int, length: int) -> bool:
        return sum(sizes[i: i + length - 1]) <= budget

    fit = fits or whole
    best: list[tuple[int, list[int]]] = [(0, [])] * (n + 1)
    for i in range(n - 1, -1, -1):
        longest = 1
        for length in range(2, depth + 1):
            j = i + length - 1
            if j >= n or not linked[j - 1] or not fit(i, length):
                break
            longest = length
        lengths = list(range(longest, 0, -1))[: candidates or None]
        options = []
        for length in lengths:
            kept = sum(sizes[i: i + length - 1])
            options.append((kept + best[i + length][0], [length] + best[i + length][1]))
        best[i] = max(options, key=lambda o: o[0])
    return best[0][1]
