"""Stage 4: hits of every hunt merged into one ranked candidate list, with evidence."""
