"""Stage 5: what the analyst makes: the allow-list and triage marks, and the one step that
decorates candidates with them."""
