"""`outpost sync`: copy global tags, their tags, IOVs and payloads from an Outpost origin (read
over the public read API, through proxies if wanted) into a database, once or continuously.

Pure core: `plan` (what to add, what conflicts). Edges: `source` (bounded, checked HTTP reads),
`target` (the database, written through `origin.writes`), `run` (one sync, following the
feed), `errors`.
"""

from outpost.sync.errors import (
    FeedPositionLost,
    SourceMissing,
    SourceUnreachable,
    SourceUnusable,
    SyncConflicts,
    SyncError,
)
from outpost.sync.plan import Plan, plan_sync

__all__ = [
    "FeedPositionLost",
    "Plan",
    "SourceMissing",
    "SourceUnreachable",
    "SourceUnusable",
    "SyncConflicts",
    "SyncError",
    "plan_sync",
]
