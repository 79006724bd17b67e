"""The front door: the ``likeloop`` command, and the whole stack on one machine (``likeloop up``,
with embedded Redis and S3 servers that the tests use too). It stands on the core, the service
and the workers; none of them imports it."""
