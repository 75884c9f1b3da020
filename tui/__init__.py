"""The triage TUI (Textual): a thin app composing screens and widgets over the engine.

Importing the package first tells polars' allocator (jemalloc, configured when polars
loads) to hand freed pages back to the system after 200 ms, where polars' own setting
waits 0.5 s and keeps them mapped for 1 s more. A `detect` of a million events lasts
under two seconds, so with that setting the pages the load decoded and freed still
counted in the peak: 1M Parquet events peaked at 0.81-0.91 GB, now 0.64-0.67 GB, at
the same CPU. It also gives jemalloc one arena per core, where its default is four:
polars' threads (one per core) and the engine's own then reuse the pages each other
freed, where with an arena apiece each took fresh pages from the kernel (1M events:
a fifth fewer page faults, 0.8 -> 0.6 s of system time, ~5 % less wall time; the 100M
run that writes its partitions 225 -> 216 s; 10M unchanged). A value the user set is
kept; the one a parent process's polars wrote into the environment (its default, not a
choice) is not.

It also gives numpy's OpenBLAS one thread. Loading numpy otherwise starts a thread per
core that spins and is torn down again: ~0.04 s of CPU per run, for an engine whose only
BLAS call is a dot product of two vectors and whose hunts already run side by side. A
thread count the user chose (OpenBLAS's or OpenMP's variable) is kept.
"""

import os as _os

_POLARS_DEFAULT = "dirty_decay_ms:500,muzzy_decay_ms:1000"


def _cores() -> int:
    """The cores this process may run on (a container's or taskset's share)."""
    try:
        return max(1, len(_os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, _os.cpu_count() or 1)


if _os.environ.get("_RJEM_MALLOC_CONF", _POLARS_DEFAULT) == _POLARS_DEFAULT:
    _os.environ["_RJEM_MALLOC_CONF"] = f"narenas:{_cores()},dirty_decay_ms:200,muzzy_decay_ms:0"
if not any(
    k in _os.environ for k in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")
):
    _os.environ["OPENBLAS_NUM_THREADS"] = "1"
