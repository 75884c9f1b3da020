"""Freed arrays given back to the system, so a run's peak is what it holds, not what it held.

numpy allocates through the C library's ``malloc``. glibc serves a block above its mmap
threshold with its own mapping, returned to the system when freed, but it raises that
threshold to the size of every such block freed (up to 32 MB on 64-bit). After the first
hunt frees its per-pair arrays, every later multi-megabyte array comes from a heap, and a
heap keeps what is freed in it; each thread has its own heap (up to eight per core), so
memory one hunt freed is not there for the hunt on the other thread. Measured on 1M
Defender events (``detect --format json``, three interleaved runs each): peak 831-834 MB
as glibc decides, 708-731 MB with the threshold fixed at 4 MB and two heaps, at the same
CPU time within the machine's noise.

polars has its own allocator (jemalloc, which returns memory by itself), so only numpy
and the rest of the C code are concerned. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import sys

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameters (malloc.h)
M_ARENA_MAX = -8
MMAP_THRESHOLD = 4 << 20  # blocks from 4 MB up: a million events' int32 column and more
ARENA_MAX = 2  # one heap per worker thread of the run (``config.DEFAULT_WORKERS``)


def return_freed_memory() -> bool:
    """Fix glibc's mmap threshold and cap its heaps (see the module docstring).

    Called once by a run's entry point, before its threads start. True when the
    settings were taken (glibc on Linux), False elsewhere.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:  # the C library already loaded into this process (no search for the file)
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_ARENA_MAX, ARENA_MAX))
