"""The triage TUI (Textual): a thin app composing screens and widgets over the engine."""
