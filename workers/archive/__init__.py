"""The event archive: every stored event as Parquet in S3, exactly once (``run``), in one
documented schema (``rows``), beside the project's settings and key hashes (``state``), and read
back in log order for a rebuild (``replay``). ``layout`` names its objects; ``model_labels``
writes what a model adds to the archive log as ingest does (docs/archive.md)."""
