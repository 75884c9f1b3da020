"""Stage 2: canonical events become one PairContext: the sorted connection table, the
per-pair index and population facts, built once and handed to every hunt."""
