"""beacon-triage's headless engine: loading, detectors, scoring, enrichment, allow-lists.

Nothing in this package imports Textual; the TUI in ``tui/`` and the CLI both drive it.
"""

__version__ = "0.1.0"
