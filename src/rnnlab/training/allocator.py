"""Keep freed memory in the process instead of handing it back to the OS after every training step.

glibc's malloc serves a large buffer (a language model's (B·T, V) logits are 14 MB at 700 tokens × 5,000
words) from ``mmap`` or from the heap's top, and gives it back to the kernel when it is freed: ``munmap``,
or trimming the heap once its free top exceeds a threshold that glibc moves as it goes. Lightning's loop
frees every buffer of a step before the next one starts, so each step faults the same pages in again,
and the kernel's zeroing of them shows as system time. Whether a run falls into that pattern depends on the
order its buffers happen to be freed in (glibc moves its thresholds as it goes): most runs at
word_language_model's setting did, one in three did not (benchmarks/allocator.md; word_language_model itself
beside us in benchmarks/wlm_compare.md).
With both thresholds fixed the heap keeps its freed memory; the price is that the process keeps its peak
heap resident. It is glibc's own tuning knob (``mallopt``, as
``GLIBC_TUNABLES=glibc.malloc.trim_threshold=…:glibc.malloc.mmap_threshold=…`` would set at start-up),
applied at run time; other C libraries are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
MMAP_THRESHOLD = 256 * 2**20  # buffers below this come from the heap, whose freed top is kept up to:
TRIM_THRESHOLD = 2**30


def keep_freed_memory() -> bool:
    """Fix glibc's trim and mmap thresholds for this process; True if they were set (False elsewhere).

    Setting them also stops glibc from moving them on its own, which is what made the faults depend on the
    order in which a step's buffers happened to be freed."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD,
                                                                                         TRIM_THRESHOLD))
