"""The run loop: a strategy builds the PairContext, the hunts run, the hits are merged."""
