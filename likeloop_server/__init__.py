"""The core the service, the workers and the command line stand on: settings and defaults, the
storage format (Redis keys, stored values, stats counters, the ingest script), the records of
keys, projects and exports, and identities. It imports nothing from the floors above it."""
