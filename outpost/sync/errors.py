"""What `outpost sync` raises. Each is an `OutpostError`, so the command shows it as one line
(JSON with `--json`) and exits 1; none leaves a partial write behind.

    SyncError
    ├── SourceUnreachable    the source did not answer (connection, timeout, 5xx): try again
    ├── SourceUnusable       the source answered what no Outpost origin answers (bytes that do
    │                        not hash to their name, an oversized or malformed answer, a
    │   │                    history that does not give the IOVs it claims, a feed that lies)
    │   └── FeedPositionLost  the feed does not reach the position the target stands at
    ├── SourceMissing        the source does not have a global tag or tag that was asked for
    └── SyncConflicts        the target holds something the copy would contradict
"""

from __future__ import annotations

from outpost.errors import OutpostError

__all__ = [
    "FeedPositionLost",
    "SourceMissing",
    "SourceUnreachable",
    "SourceUnusable",
    "SyncConflicts",
    "SyncError",
]


class SyncError(OutpostError):
    error = "sync"


class SourceUnreachable(SyncError):
    status = 502
    error = "source unreachable"


class SourceUnusable(SyncError):
    status = 502
    error = "source answer refused"


class FeedPositionLost(SourceUnusable):
    """The source's feed does not reach the position asked for (409): its database was
    replaced by an older copy. The sync reads the whole state again."""


class SourceMissing(SyncError):
    status = 404
    error = "not at the source"


class SyncConflicts(SyncError):
    status = 409
    error = "conflict"

    def __init__(self, conflicts: tuple[str, ...]) -> None:
        shown = "; ".join(conflicts[:5]) + ("; …" if len(conflicts) > 5 else "")
        super().__init__(
            f"{len(conflicts)} conflict(s), nothing was written: {shown}",
            accepted=list(conflicts),
        )
        self.conflicts = conflicts
