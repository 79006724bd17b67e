"""Exports: a project's pairs (and retractions) streamed to S3 in each format, manifest last.
``run`` is the job; ``logscan`` reads the pair log for an incremental run, ``compacted`` the
compacted groups for a snapshot; ``writers`` opens a run's objects, ``commit`` records a run in
Redis once its manifest is written (and repairs one a crash cut short); ``layout`` names the
objects (docs/export-layout.md)."""
