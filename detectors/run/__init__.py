"""Run strategies: how a source becomes the per-pair context the hunts read."""
