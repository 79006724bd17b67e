"""Code shared by the service, the workers and the CLI: settings, Redis key layout, storage."""
