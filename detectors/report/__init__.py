"""Stage 6: candidates as text: table, CSV, JSON, and the exports."""
