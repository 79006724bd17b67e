"""Erasure: a person (or some responses) taken out of every copy LikeLoop keeps: Redis, the
event archive, compacted snapshots, and the erasure ledger that keeps them out (docs/privacy.md).
``run`` is the job; ``scope`` the pure rules; ``archive_pass``, ``hot`` and ``segments`` one store
each; ``ledger`` the ledger's copy in the archive."""
