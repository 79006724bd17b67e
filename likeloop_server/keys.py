"""The Redis key layout: the one place that names every key the service, the workers and the
ingest script use (the script gets its key names from here: ``ingest_script_keys``).

docs/redis-keys.md describes each key; keep the two in step. What the values hold, and how
they are read, is ``stored.py``'s (and ``counters.py``'s, for the stats counters).
"""

from __future__ import annotations

PREFIX = "ll:"

# Global keys. Those written together carry one hash tag, ``{global}``: on a Redis Cluster they
# share a slot, so a transaction over them (a key made: its hash, the ids, the projects) runs on
# one shard. Before layout 7 they were ``ll:projects``, ``ll:apikey:...``, ``ll:apikeyids``.
GLOBAL = PREFIX + "{global}:"
PROJECTS = GLOBAL + "projects"  # set of project names
API_KEY = GLOBAL + "apikey:"  # + sha256(key) -> hash {id, project, scopes, created_at, revoked}
API_KEY_IDS = GLOBAL + "apikeyids"  # hash key id -> sha256(key), for listing and revoking
LAYOUT = PREFIX + "layout"  # version of the key layout stored pairs are in (workers/migrate.py)
LAYOUT_VERSION = b"9"  # the layout this code reads and writes
RATE_LIMIT_PREFIX = PREFIX + "ratelimit"  # flask-limiter's counters (service/ratelimit.py)


def project_base(project: str) -> str:
    """What every key of a project starts with: ``ll:p:{<project>}:``. The braces make the
    project the key's hash tag: on a Redis Cluster, all of a project's keys are in one slot, so
    every script and transaction over them runs on one shard. (Before layout 7: ``ll:p:<project>:``.)"""
    return f"{PREFIX}p:{{{project}}}:"


class ProjectKeys:
    """Key names of one project; every per-project key starts with ``project_base``."""

    __slots__ = ("base", "project")

    def __init__(self, project: str) -> None:
        self.project = project
        self.base = project_base(project)

    @property
    def config(self) -> str:
        return f"{self.base}config"  # hash: the project's pairing and export settings

    # Ingest-side records.
    def response(self, response_id: str) -> str:
        return f"{self.base}resp:{response_id}"  # hash: the logged response

    def votes(self, response_id: str) -> str:
        # before layout 9: hash user -> "1|<hour>" (like) or "-1|<hour>"; since, the response
        # hash's fields ``v:<user>`` (stored.VOTE)
        return f"{self.base}votes:{response_id}"

    def ratings(self, response_id: str) -> str:
        return f"{self.base}ratings:{response_id}"  # hash user -> "<value>|<scale>|<hour>"

    def comments(self, response_id: str) -> str:
        return f"{self.base}comments:{response_id}"  # list of JSON {user, text, ts, response_id}

    @property
    def recent_comments(self) -> str:
        return f"{self.base}recentcomments"  # list of the latest comments, newest first (capped)

    def pending(self, response_id: str) -> str:
        return f"{self.base}pending:{response_id}"  # list of feedback waiting for its response

    @property
    def pending_marker(self) -> str:
        # Set whenever feedback starts waiting, expiring after the longest wait: absent means none waits.
        return f"{self.base}pendingany"

    def seen(self, event_id: str) -> str:
        return f"{self.base}seen:{event_id}"  # marker of an event id already stored

    def group(self, group_id: str) -> str:
        # hash: a prompt group, its members and its state (likeloop_server/group_state.py): its
        # response ids, version, current pairs' and KTO items' ids, head-to-head results and stats
        # counters; a set of its response ids before layout 9
        return f"{self.base}group:{group_id}"

    def group_id_of(self, group_key: str | bytes) -> str:
        """The group id in a ``group(...)`` key (as SCAN returns it)."""
        text = group_key.decode() if isinstance(group_key, bytes) else group_key
        return text.removeprefix(self.group(""))

    def judgements(self, group_id: str) -> str:
        # hash "<lower id>|<higher id>|<user>" -> "<verdict>|<hour>": each user's current judgement
        # of two of the group's responses; verdict "<" the lower id better, ">" the higher, "=" a
        # tie, "x" both bad
        return f"{self.base}judg:{group_id}"

    def matches_hour(self, hour: str) -> str:
        return f"{self.base}match:h:{hour}"  # hash match field -> net count added in one UTC hour

    @property
    def leaderboard_cache(self) -> str:
        return f"{self.base}lbcache"  # hash: a hash of a range's results -> its leaderboard rows (a day)

    @property
    def quality(self) -> str:
        # hash: the quality reports of time ranges ("r:<since>:<until>" -> JSON) and the suspect
        # voters with their rules and counts ("suspects" -> JSON), as the quality job last computed
        # them (likeloop_server/quality_cache.py); a day at most, dropped by erasure and retention
        return f"{self.base}quality"

    @property
    def quality_gen(self) -> str:
        return f"{self.base}quality:gen"  # counter: bumped when erasure or retention drops the quality hash

    @property
    def quality_job(self) -> str:
        return f"{self.base}quality:job"  # the id of the project's queued quality job, while one is

    @property
    def match_hours(self) -> str:
        return f"{self.base}matchhours"  # set of hours that have a matches hash

    def model_calls(self, kind: str, day: str) -> str:
        # model calls the judge (kind "judge") or the reference model ("reference") made on one
        # UTC day: its budget
        return f"{self.base}{kind}calls:{day}"

    def source_pairs(self, source: str) -> str:
        # set of the ids of current pairs whose preference came from one source (exports.PAIR_SOURCES)
        return f"{self.base}srcpairs:{source}"

    @property
    def dirty(self) -> str:
        # sorted set group id -> from when it may be claimed for pairing: when it became dirty,
        # or when the claim of the worker pairing it lapses
        return f"{self.base}dirty"

    @property
    def pair_claims(self) -> str:
        return f"{self.base}pairclaims"  # hash group id -> token of the pairing batch that claimed it

    @property
    def pairing_job(self) -> str:
        return f"{self.base}pairingjob"  # id of the project's queued pairing job, while one is queued

    # Stats counters, maintained at ingest time.
    @property
    def stats_total(self) -> str:
        return f"{self.base}stats"  # hash metric[|dimension] -> count

    def stats_hour(self, hour: str) -> str:
        return f"{self.base}stats:h:{hour}"  # same fields as stats_total, for one UTC hour

    @property
    def stats_hours(self) -> str:
        return f"{self.base}statshours"  # set of hours ("2026-11-27T13") that have a stats hash

    @property
    def stats_dimensions(self) -> str:
        return f"{self.base}statdims"  # set of the model and metadata dimensions counted (capped)

    @property
    def stats_rolled(self) -> str:
        # the last UTC day whose hourly stats (and matches) are rolled up into one bucket of the
        # day (workers/stats_rollup.py): counts for an hour of it go to the day's bucket
        return f"{self.base}statsrolled"

    @property
    def stats_users_pruned(self) -> str:
        # the last UTC day whose per-user counters (``<metric>|u:<user>``) left its stats bucket,
        # past the hot window (workers/stats_rollup.py): the project's total keeps them all-time,
        # and the ingest script counts a late event of such a day for its user in the total only
        return f"{self.base}statsusers"

    @property
    def disliked_groups(self) -> str:
        return f"{self.base}disliked"  # sorted set prompt group id -> its dislikes

    # Pairing output. Records live in one hash per project, so an export reads a chunk of them
    # with one command; each group keeps the ids of its own (in its ``group`` hash).
    @property
    def pair_records(self) -> str:
        return f"{self.base}pairrecs"  # hash pair id -> JSON pair record

    @property
    def quality_digests(self) -> str:
        # hash prompt group id -> its quality digest (workers/pairing/digest.py), written by the
        # pairing job with the group's pairs; leaves with the group (compaction, erasure)
        return f"{self.base}qdigest"

    @property
    def kto_records(self) -> str:
        return f"{self.base}ktorecs"  # hash item id -> JSON labelled completion (KTO)

    # Before layout 2, each group kept its records in a hash of its own (workers/migrate.py):
    # ``legacy_pairs("")`` is the prefix of every such key.
    def legacy_pairs(self, group_id: str) -> str:
        return f"{self.base}pairs:{group_id}"

    def legacy_kto(self, group_id: str) -> str:
        return f"{self.base}kto:{group_id}"

    # Before layout 9, a group's state was four keys of its own (workers/migrate.py): ``gver:``
    # its version (a counter), ``gpairs:`` and ``gkto:`` the sets of its pair and KTO item ids,
    # ``gmatch:`` the hash of its head-to-head results.
    def legacy_group_keys(self, group_id: str) -> tuple[str, str, str, str]:
        return (
            f"{self.base}gver:{group_id}",
            f"{self.base}gpairs:{group_id}",
            f"{self.base}gkto:{group_id}",
            f"{self.base}gmatch:{group_id}",
        )

    @property
    def pair_log(self) -> str:
        return f"{self.base}pairlog"  # stream of {op: add|retract (pairs), label|unlabel (KTO), pair, group}

    @property
    def exported(self) -> str:
        return f"{self.base}exported"  # set of pair ids present in the exported dataset

    # Exports.
    @property
    def export_cursor(self) -> str:
        return f"{self.base}export:cursor"  # last pair_log id covered by a committed manifest

    @property
    def export_committed(self) -> str:
        return f"{self.base}export:committed"  # key of the last manifest applied to Redis

    @property
    def export_lock(self) -> str:
        return f"{self.base}export:lock"  # held by the one export of this project running

    @property
    def exports(self) -> str:
        return f"{self.base}exports"  # sorted set export id -> created time

    def export_queued(self, mode: str) -> str:
        return f"{self.base}export:queued:{mode}"  # the id of the project's queued export of this mode

    def exports_hour(self, hour: str) -> str:
        return f"{self.base}export:hour:{hour}"  # exports requested through the API in one UTC hour

    def export(self, export_id: str) -> str:
        return f"{self.base}export:{export_id}"  # hash: one export's status and results

    def export_run_added(self, export_id: str) -> str:
        return f"{self.base}export:run:{export_id}:added"  # scratch set: ids one run wrote

    def export_run_retracted(self, export_id: str) -> str:
        return f"{self.base}export:run:{export_id}:retracted"  # scratch set: ids one run retracted

    # The event archive (workers/archive/run.py).
    @property
    def archive_log(self) -> str:
        # stream: one entry per stored batch {e: the script's events JSON, s: their statuses,
        # t: receive time}, until an archive run has committed it to S3
        return f"{self.base}archlog"

    @property
    def archive_cursor(self) -> str:
        return f"{self.base}archive:cursor"  # the last archive_log id a committed archive run covers

    @property
    def archive_run(self) -> str:
        # JSON {start, end}: the range of archive_log the current (or an interrupted) run writes;
        # a later run redoes exactly that range first, so its parts are rewritten, never doubled
        return f"{self.base}archive:run"

    @property
    def archive_lock(self) -> str:
        return f"{self.base}archive:lock"  # held by the one archive run of this project running

    @property
    def archive_job(self) -> str:
        return f"{self.base}archive:job"  # the id of the project's queued archive job, if one is

    @property
    def archive_state(self) -> str:
        # sha256 of the project state (settings, key hashes) last written to the archive
        # (workers/archive/state.py): written again only when it changes
        return f"{self.base}archive:state"

    @property
    def rebuild_expiry(self) -> str:
        # sorted set "<r|g|p>:<id>" -> when the replayed response, group or waiting list would
        # have expired: a rebuild's scratch (workers/rebuild.py), gone when it ends
        return f"{self.base}rebuild:expiry"

    # Compaction (workers/compaction/compact.py): groups past the hot window leave Redis for S3.
    @property
    def group_changed(self) -> str:
        # sorted set group id -> when a labelled group last changed (feedback, a response, a
        # model's label, a restore): what compaction picks groups by
        return f"{self.base}gchanged"

    def compacted_responses(self, bucket: str) -> str:
        # hash (one of 4096, likeloop_server/compacted.py) of a compacted response id's hash ->
        # its group id: how late feedback finds a compacted group
        return f"{self.base}cresp:{bucket}"

    def compacted_groups(self, bucket: str) -> str:
        # hash (one of 4096) compacted group id -> "<segment>|<offset>|<length>": where in the
        # archive its snapshot is
        return f"{self.base}cgroup:{bucket}"

    @property
    def compaction(self) -> str:
        # hash: groups, responses (compacted now), compacted, restored (all time), last_run
        return f"{self.base}compaction"

    @property
    def restored_log(self) -> str:
        # stream {g: group id} of groups brought back from the archive (capped): a snapshot export
        # running meanwhile reads those groups from Redis again (workers/export/compacted.py)
        return f"{self.base}compaction:restored"

    @property
    def compaction_lock(self) -> str:
        return f"{self.base}compaction:lock"  # held by the one compaction run of this project

    # Erasure (likeloop_server/erasures.py, workers/erasure/): requests and the ledger.
    @property
    def erased(self) -> str:
        # hash: keyed hash of an erased user id ("u") or response id ("r") -> "<u|r>|<erased at>":
        # what ingest, the archive and a rebuild refuse to bring back (never the ids themselves)
        return f"{self.base}erased"

    @property
    def erasures(self) -> str:
        return f"{self.base}erasures"  # sorted set erasure id -> requested time (the last 500 kept)

    def erasure(self, erasure_id: str) -> str:
        # hash: status, kind, requested/started/finished times, subjects (keyed hashes), counts;
        # the raw user id or response ids only until it is done
        return f"{self.base}erasure:{erasure_id}"

    @property
    def erasures_open(self) -> str:
        return f"{self.base}erasures:open"  # set of erasure ids not done yet: the next run takes them all

    @property
    def erasure_job(self) -> str:
        return f"{self.base}erasure:job"  # the id of the project's queued erasure job, if one is

    @property
    def erasure_lock(self) -> str:
        return f"{self.base}erasure:lock"  # held by the one erasure run of this project

    def ingest_script_keys(self) -> tuple[str, ...]:
        """The key names and prefixes the ingest script writes, in ``INGEST_SCRIPT_KEYS`` order.
        A prefix ends where the script appends a response, event, group id or hour."""
        return (
            self.response(""),
            self.ratings(""),
            self.comments(""),
            self.recent_comments,
            self.pending(""),
            self.pending_marker,
            self.seen(""),
            self.group(""),
            self.dirty,
            self.stats_total,
            self.stats_hour(""),
            self.stats_hours,
            self.config,
            self.stats_dimensions,
            self.disliked_groups,
            self.judgements(""),
            self.archive_log,
            self.stats_rolled,
            self.group_changed,
            self.compacted_responses(""),
            self.compacted_groups(""),
            self.compaction,
            self.stats_users_pruned,
        )


# The names ingest.lua knows the keys of ``ProjectKeys.ingest_script_keys`` by, in that order
# (likeloop_server/batch_store.py hands the script both).
INGEST_SCRIPT_KEYS = (
    "resp",
    "ratings",
    "comments",
    "recentcomments",
    "pending",
    "pendingany",
    "seen",
    "group",
    "dirty",
    "stats",
    "stats_hour",
    "statshours",
    "config",
    "statdims",
    "disliked",
    "judg",
    "archlog",
    "statsrolled",
    "gchanged",
    "cresp",
    "cgroup",
    "compaction",
    "statsusers",
)
