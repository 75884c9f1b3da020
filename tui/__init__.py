"""The triage TUI (Textual): a thin app composing screens and widgets over the engine.

Importing the package first tells polars' allocator (jemalloc, read when polars loads)
to hand freed pages back to the system after 200 ms instead of its default 10 s. A
`detect` of a million events lasts a second or two, so with the default every page the
load decoded and freed still counted in the peak: 1M Parquet events peaked at
0.81-0.91 GB, now 0.66-0.70 GB, at the same CPU. A value the user set is kept.
"""

import os as _os

_os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:200,muzzy_decay_ms:0")
