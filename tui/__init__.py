"""The triage TUI (Textual): a thin app composing screens and widgets over the engine.

Importing the package first tells polars' allocator (jemalloc, configured when polars
loads) to hand freed pages back to the system after 200 ms, where polars' own setting
waits 0.5 s and keeps them mapped for 1 s more. A `detect` of a million events lasts
under two seconds, so with that setting the pages the load decoded and freed still
counted in the peak: 1M Parquet events peaked at 0.81-0.91 GB, now 0.64-0.67 GB, at
the same CPU. A value the user set is kept; the one a parent process's polars wrote
into the environment (its default, not a choice) is not.
"""

import os as _os

_POLARS_DEFAULT = "dirty_decay_ms:500,muzzy_decay_ms:1000"
if _os.environ.get("_RJEM_MALLOC_CONF", _POLARS_DEFAULT) == _POLARS_DEFAULT:
    _os.environ["_RJEM_MALLOC_CONF"] = "dirty_decay_ms:200,muzzy_decay_ms:0"
