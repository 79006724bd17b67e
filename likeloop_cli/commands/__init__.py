"""One module per ``likeloop`` subcommand, each with ``add_parser(subparsers)`` and ``run(args)``."""

from . import (
    archive,
    compact,
    cron,
    erase,
    export,
    judge,
    keys,
    project,
    pull,
    quality,
    rebuild,
    reference,
    retention,
    serve,
    stats,
    up,
    worker,
)

# In the order ``likeloop --help`` lists them.
COMMANDS = (
    up,
    serve,
    worker,
    cron,
    keys,
    export,
    archive,
    compact,
    rebuild,
    erase,
    retention,
    pull,
    project,
    judge,
    reference,
    stats,
    quality,
)
