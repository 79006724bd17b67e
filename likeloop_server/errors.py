"""The server side's exceptions, and what each means to an HTTP client and to a shell.

    LikeLoopError               400-class or 500 answer, exit status 1
    ├── ConfigError             the environment's configuration is wrong        500, exit 2
    ├── InvalidValue            a value given by a caller is not valid          400, exit 2
    ├── NotFound                what was named does not exist                   404, exit 2
    ├── Busy                    the work is held by another run; try later      409, exit 1
    ├── TooMany                 over a limit of requests in a while; try later  429, exit 1
    ├── CredentialRefused       a key or feedback token is not accepted         401 / 403, exit 2
    ├── StackError              an embedded server could not be started         500, exit 1
    ├── IntegrityError          data read back differs from its record          500, exit 1
    └── (service) ApiError      an answer the service builds itself             its own status

Kinds raised in one place are defined there, on this tree: ``queues.UnknownJob`` (a queued job
names no LikeLoop job), ``workers.rebuild.ProjectNotEmpty`` (409), ``workers.compaction.compact.
CompactionRefused`` (a ConfigError: the archive is off), ``workers.export.compacted.
RestoredLogTrimmed`` (an export outran the restored log; run it again).

The service turns any of them into its JSON error body (``service/errors.py``), the command line
into ``error: <message>`` and the exit status (``likeloop_cli/main.py``); both read the
``http_status`` and ``exit_code`` given here. Invalid values are also ``ValueError``s, so pure
code that checks its arguments raises what Python code expects.
"""

from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class LikeLoopError(Exception):
    """Base of every error the server side raises on purpose."""

    code = "error"
    http_status = 500
    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code


class ConfigError(LikeLoopError, ValueError):
    """A setting read from the environment is malformed (LIKELOOP_S3_URL, an integer, ...)."""

    code = "invalid_configuration"
    exit_code = EXIT_USAGE


class InvalidValue(LikeLoopError, ValueError):
    """A value a caller gave (a scope, a format, a project name, a stats filter) is not valid."""

    code = "invalid_field"
    http_status = 400
    exit_code = EXIT_USAGE


class NotFound(LikeLoopError):
    """A project, key, response or export that was named does not exist."""

    code = "not_found"
    http_status = 404
    exit_code = EXIT_USAGE


class Busy(LikeLoopError):
    """Another run holds the work (an export of the same project); the job is retried later."""

    code = "busy"
    http_status = 409


class TooMany(LikeLoopError):
    """Over a limit of requests in a window (a project's exports an hour); ``retry_after_s`` says
    when the window has room again."""

    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, retry_after_s: int, *, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.retry_after_s = retry_after_s


class CredentialRefused(LikeLoopError):
    """A presented key or feedback token is not accepted; ``code`` says why."""

    http_status = 401
    exit_code = EXIT_USAGE

    def __init__(self, code: str, message: str, *, http_status: int = 401, field: str | None = "Authorization"):
        super().__init__(message, field=field, code=code)
        self.http_status = http_status


class IntegrityError(LikeLoopError):
    """Data read back does not match what was recorded of it (an object's size or checksum)."""

    code = "integrity_error"


class StackError(LikeLoopError):
    """An embedded server (redis-server, SeaweedFS) could not be found or started."""

    code = "stack_failed"
