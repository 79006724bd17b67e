"""One module per ``likeloop`` subcommand, each with ``add_parser(subparsers)`` and ``run(args)``."""

from . import archive, compact, cron, export, judge, keys, project, pull, rebuild, reference, serve, stats, up, worker

# In the order ``likeloop --help`` lists them.
COMMANDS = (up, serve, worker, cron, keys, export, archive, compact, rebuild, pull, project, judge, reference, stats)
