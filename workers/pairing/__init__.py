"""Pairing: a project's dirty prompt groups claimed in batches (``claims``) and brought in line
with their current labels (``drain``): pairs and KTO items by the pure ``rules``, and the
head-to-head results between models the leaderboard reads (``matches``)."""
