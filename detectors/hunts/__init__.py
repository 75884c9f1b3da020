"""Stage 3: the hunts. Each takes a PairContext and its parameters and returns hits."""
