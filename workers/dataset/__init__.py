"""What a dataset row is, as pure functions: stored pair and KTO records to the rows of each
format (``formats``), the provenance in their ``metadata`` (``provenance``), and the Hugging
Face dataset card of a snapshot (``card``). No Redis, no S3."""
