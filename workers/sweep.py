"""A cron job over every project: each project's run on its own, so that one project's failure
(a setting nothing else has, data nothing else holds) is logged and recorded for that project,
and never stops the others."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)


def each_project(what: str, projects: Iterable[str], run: Callable[[str], Any]) -> dict[str, Any]:
    """``run(project)`` for each project: project -> what it returned, or ``{"error": ...}`` if it
    raised (logged with its trace)."""
    done: dict[str, Any] = {}
    for project in projects:
        try:
            done[project] = run(project)
        except Exception as exc:  # noqa: BLE001 - one project's failure never stops the others
            log.exception("%s of project %s failed", what, project)
            done[project] = {"error": f"{type(exc).__name__}: {exc}"}
    return done
