"""The host allocator's state for jitted code (one process-wide, one-time adjustment)."""

from __future__ import annotations

import numpy as np

_malloc_nudged = False


def nudge_malloc():
    """Free one large, never-touched block, once: glibc then serves arrays up to its size from the heap.

    glibc's malloc maps every block above a threshold (initially 128 KiB) fresh from the kernel
    and unmaps it on free; the threshold rises to the size of the largest mapped block freed so
    far (and the heap is trimmed only past twice that). Without this, a jitted step whose
    largest arrays are a few MB can pay a page fault for every 4 KiB of each fresh result on
    every call (measured: 1500-2000 faults, ~2.5 ms, per step of the benchmarks' small CNN).
    Called when jitted code is compiled and before chunked convolutions. Elsewhere than glibc
    it is one harmless allocation.

    Example:
        >>> from funcgrad.jit.allocator import nudge_malloc
        >>> nudge_malloc()  # idempotent
    """
    global _malloc_nudged
    if not _malloc_nudged:
        _malloc_nudged = True
        block = np.empty(16 << 20, np.uint8)
        del block
