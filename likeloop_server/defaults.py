"""Every default and limit of the server side, named once, each with why it has its value.

Settings read from the environment (``settings.py``) default to these; the rest are fixed bounds
that the service, the workers and the command line share. Constants that only tune one
module's inner workings (upload part sizes, cache sizes, metric buckets) stay beside their code.
"""

from __future__ import annotations

# ---- Settings (each can be changed through the environment: settings.py) --------------------

REDIS_URL = "redis://127.0.0.1:6379/0"
S3_URL = "s3://likeloop-datasets/exports"
# Request bodies above this are refused with 413 before parsing: 1 MiB holds a batch of several
# hundred typical events, and a larger body is far more likely a bug than real traffic.
MAX_BODY_BYTES = 1024 * 1024
# Gzip bodies may expand; cap the inflated size so a small "zip bomb" cannot exhaust memory.
MAX_INFLATED_BYTES = 8 * 1024 * 1024
# One batch is one Redis transaction; this many events keeps that transaction well under 10 ms.
MAX_BATCH_EVENTS = 500
# Unlabelled responses are only useful while feedback may still arrive for them.
RESPONSE_TTL_DAYS = 30
# Feedback for a response that has not arrived yet waits this long for it.
PENDING_TTL_HOURS = 24
# Stats (and the leaderboard's results) are kept per hour this long, then per day.
STATS_HOURLY_DAYS = 7
STATS_ROLLUP_CRON = "23 * * * *"
# Prompt groups unchanged this long leave Redis for the archive (workers/compaction/compact.py), nightly.
HOT_DAYS = 30
COMPACT_CRON = "43 2 * * *"
COMPACTION_LOCK_TTL_S = 300
# Event ids are remembered this long to drop SDK retries of the same event.
DEDUPE_TTL_HOURS = 24
# Every chosen against every rejected grows quadratically; this bounds one prompt group.
MAX_PAIRS_PER_GROUP = 100
EXPORT_CRON = "0 3 * * *"
# Every stored event reaches the S3 archive within this many seconds: what Redis holds of events
# not yet archived is about this long's worth of traffic.
ARCHIVE_INTERVAL_S = 60
# An archive run holds its project's lock this long past its last sign of life, as an export does.
ARCHIVE_LOCK_TTL_S = 120
# An export holds its project's lock this long past its last sign of life (it renews the lock as
# it writes), so a killed export blocks the next one for at most this long.
EXPORT_LOCK_TTL_S = 120
# Per-key request limit on the write endpoints, in flask-limiter's syntax ("100/second"); empty
# means no limit.
RATE_LIMIT = ""
# Per feedback token, on POST /v1/feedback: a person clicks a few times a minute; a script
# replaying one token from a page gets 429 after this.
TOKEN_RATE_LIMIT = "30/minute"
# Per API key on the read endpoints (stats, prompts, leaderboard, exports...): a dashboard makes a
# few requests a page; a loop over long stats ranges or leaderboards must not take the service.
READ_RATE_LIMIT = "20/second"
# Feedback tokens carry their own authority, so any origin may post browser feedback.
CORS_ORIGINS = "*"
# Feedback tokens live at most this long, whatever expiry their minter wrote (the SDK caps it too):
# a leaked token stops working within a week.
MAX_TOKEN_LIFETIME_S = 7 * 86400
# API key records are cached this long per service process: revocation takes this long.
KEY_CACHE_S = 5
GROUP_COMMIT = False
# With group commit, the events one script call stores for several requests: a batch's worth,
# so one call holds Redis no longer than one full batch does.
GROUP_COMMIT_MAX_EVENTS = MAX_BATCH_EVENTS

# ---- Events ----------------------------------------------------------------------------------

# Bounds on single fields, so one event cannot dominate a batch or a Redis hash.
MAX_TEXT_CHARS = 200_000
MAX_NAME_CHARS = 200
MAX_MESSAGES = 500
MAX_METADATA_KEYS = 50
MIN_SCALE = 2
MAX_SCALE = 100
# A rating sent without a scale is out of five, as the SDK's rate() assumes.
RATING_SCALE = 5
# Timestamps are unix seconds; older than this or more than a day ahead are surely a bug.
MIN_TIMESTAMP = 946_684_800  # 2000-01-01
FUTURE_SLACK_S = 86_400
# Metadata values become stats dimensions ("route=chat"): only short scalars, and a few keys.
MAX_STAT_METADATA_KEYS = 10
MAX_STAT_VALUE_CHARS = 64
# The dashboard shows the latest comments; this many are kept per project.
RECENT_COMMENTS = 200
# Bounds on what one response's feedback can add: its comments (each short), and feedback that
# waits for a response not stored yet. Beyond them an event is refused, not stored.
MAX_COMMENT_CHARS = 2_000
MAX_COMMENTS_PER_RESPONSE = 50
MAX_PENDING_PER_RESPONSE = 100
# Responses one ranking may order (it judges every pair of them: 190 at 20).
MAX_RANKED = 20
# Distinct models and metadata values the stats count per project: the counters' fields stay
# bounded whatever a client sends. Values past the cap are counted in the totals only.
MAX_STAT_VALUES = 500
# A dataset row's provenance keeps a response's comment count and this many comments, each
# cut to this many characters: rows stay small however much was said.
PROVENANCE_COMMENTS = 3
PROVENANCE_COMMENT_CHARS = 280

# ---- Reading ---------------------------------------------------------------------------------

# Most disliked prompt groups and latest comments one request may ask for.
MAX_PROMPTS = 100
# Responses of one prompt group one request may ask for (each with all its feedback).
MAX_GROUP_RESPONSES = 200
MAX_COMMENTS = 200
# Export history pages are small; the dashboard and the CLI ask for the latest runs.
MAX_EXPORT_LIST = 500
# Key records cached per service process: a bound on memory (deployments use a handful of keys).
KEY_CACHE_ENTRIES = 10_000

# ---- Pairing ---------------------------------------------------------------------------------

# A group relabelled faster than it can be paired is tried this many times in a row, then left
# dirty for the next batch, so one hot group cannot hold a worker.
PAIRING_MAX_ROUNDS = 5
# Prompt groups a pairing job claims, reads and writes together: a few round trips per batch
# instead of several per group; small enough that a batch's writes take Redis a few ms.
PAIRING_BATCH_GROUPS = 200
# A group whose pairing worker stopped is claimable again this long after it was claimed: ample
# for a batch (a fraction of a second), short enough that a killed worker's groups wait seconds.
PAIRING_LEASE_S = 15
# A pairing job drains its project's dirty groups for at most this long, then hands over to a
# fresh job, so other projects' jobs and exports get a turn on a busy worker.
PAIRING_JOB_MAX_S = 60
# The sweep schedules pairing for a project whose groups have been claimable this long with no
# job to claim them (a job lost to a crash between storing and enqueuing) ...
STALE_DIRTY_S = 5
# ... and runs this often: such a group waits seconds, not minutes.
SWEEP_INTERVAL_S = 5

# ---- Jobs ------------------------------------------------------------------------------------

# Pairing is cheap and idempotent: retry soon, a few times; the sweeper catches anything left.
PAIRING_RETRY_INTERVALS_S = (1, 5, 30)
PAIRING_TIMEOUT_S = 300
# An export failure is usually S3 being unreachable: back off for minutes, not seconds.
EXPORT_RETRY_INTERVALS_S = (30, 120, 600)
EXPORT_TIMEOUT_S = 6 * 3600
# How long RQ keeps job outcomes: failed pairing a week, export results a week, failed exports
# a month (long enough to look into a failure after a holiday).
PAIRING_FAILURE_TTL_S = 7 * 86400
EXPORT_RESULT_TTL_S = 7 * 86400
EXPORT_FAILURE_TTL_S = 30 * 86400

# ---- Erasure ---------------------------------------------------------------------------------

# Response ids one erasure request may name (a bigger set is several requests).
MAX_ERASURE_RESPONSES = 1000
# Requests a project may have waiting for the erasure job: one job takes them all, so more
# only means a client looping (429 past it).
MAX_OPEN_ERASURES = 1000
# Erasure records kept for the history (an open one is never trimmed).
KEEP_ERASURE_RECORDS = 500
# Whether a project has an erasure ledger is cached this long per service process: an erasure
# job waits this long after a request before it runs, so every process refuses the erased
# subjects' events by then.
ERASURE_CACHE_S = 5
ERASURE_TIMEOUT_S = 6 * 3600
# The longest retention a project may set (a century: "for ever" is 0).
MAX_RETENTION_DAYS = 36_500
ERASURE_FAILURE_TTL_S = 30 * 86400

# ---- Exports ---------------------------------------------------------------------------------

# Finished export records are kept for the history page; older ones are trimmed.
KEEP_EXPORT_RECORDS = 500
# Exports a project may ask for through the API in one UTC hour: each writes the dataset again
# (a snapshot, all of it) and holds a worker; a dashboard's button pressed in a loop must not
# fill the shared queue. The nightly cron's are not counted.
EXPORTS_PER_HOUR = 12
# How long a queued export's name stands for its mode (a lost job's name lapses then).
EXPORT_QUEUED_TTL_S = 86400
# Pair-log entries read per chunk: a few MB of records, few enough round trips that Redis
# latency does not dominate.
EXPORT_READ_CHUNK = 2000
# Splits of this many recent prompt groups are remembered (a group's pairs arrive together).
EXPORT_SPLIT_CACHE = 4096

# The quality job (workers/quality/job.py) and its cached results (likeloop_server/quality_cache.py).
QUALITY_TIMEOUT_S = 3600
QUALITY_CACHE_TTL_S = 86400
# A range's report younger than this is answered as it is; an older one is computed again.
QUALITY_FRESH_S = 600
# Exports reuse the suspect voters computed this recently, and compute them again when older.
SUSPECTS_FRESH_S = 3600
QUALITY_RETRY_AFTER_S = 5
