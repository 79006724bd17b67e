"""The RQ workers: everything that can be retried runs here, never in a request.

``jobs`` lists every entry point a queued job may name; ``cron`` schedules the periodic ones;
``context`` holds a process's settings and connections. The rooms, one per job: ``pairing/``,
``export/``, ``archive/``, ``compaction/``, ``ai/``; pure dataset rows in ``dataset/``; shared
S3 and lock helpers in ``storage/``. ``rebuild`` restores Redis from S3, ``migrate`` older
Redis layouts, ``stats_rollup`` hourly counters to days.
"""
