"""Depth-first groups: consecutive layers whose intermediate results stay in L1.

Why a search: keeping a layer's whole result in L1 saves its round trip to
the home level, but L1 is small, so a group may only hold so much. Cutting
the chain of layers into groups of at most ``tiling_depth`` layers is a
segmentation problem: the best cut points are where the intermediates are
small. ``dfs_search_constraint`` bounds how many group lengths are tried per
starting layer (longest first): 1 is greedy (the longest group that fits),
unbounded is the exact dynamic programme over the chain.
"""

from __future__ import annotations

__all__ = ["segment_chain"]

from typing import Sequence


def segment_chain(sizes: Sequence[int], linked: Sequence[bool], depth: int, budget: int,
                  candidates: int | None) -> list[int]:
    """Group lengths covering ``len(sizes)`` layers.

    ``sizes[i]`` is the byte size of layer ``i``'s result, ``linked[i]`` whether
    layer ``i + 1`` may join layer ``i``'s group (it reads that result and
    nothing else reads it). A group keeps the results of all but its last
    layer in L1 (at most ``budget`` bytes together); the score is the bytes kept.
    """
    n = len(sizes)
    best: list[tuple[int, list[int]]] = [(0, [])] * (n + 1)
    for i in range(n - 1, -1, -1):
        lengths: list[int] = []
        held = 0
        longest = 1
        for length in range(2, depth + 1):
            j = i + length - 1
            if j >= n or not linked[j - 1]:
                break
            held += sizes[j - 1]
            if held > budget:
                break
            longest = length
        lengths = list(range(longest, 0, -1))[: candidates or None]
        options = []
        for length in lengths:
            kept = sum(sizes[i: i + length - 1])
            options.append((kept + best[i + length][0], [length] + best[i + length][1]))
        best[i] = max(options, key=lambda o: o[0])
    return best[0][1]
