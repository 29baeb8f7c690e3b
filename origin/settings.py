"""The origin's settings (`[origin]` in the TOML file, `OUTPOST_ORIGIN_*` variables)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from origin.db import FrontierLimits
from origin.query.table import DEFAULT_TABLES
from outpost.config import SettingsError
from outpost.logformat import FORMATS as LOG_FORMATS

__all__ = ["OriginSettings"]


PAYLOAD_STORES = ("database", "files")


@dataclass(frozen=True)
class OriginSettings:
    db: str = "sqlite:///outpost.sqlite"
    host: str = "127.0.0.1"
    port: int = 8080
    ttl_short_seconds: int = 300
    ttl_long_seconds: int = 21_600
    snapshot_settle_seconds: int = 10
    tokens_file: Path | None = None
    max_body_bytes: int = 64 * 1024 * 1024
    max_url_bytes: int = 8 * 1024
    gzip_min_bytes: int = 1024
    query_tables: tuple[str, ...] = DEFAULT_TABLES
    query_max_rows: int = 10_000
    statement_timeout_ms: int = 30_000
    # How often a long poll of /v1/changes reads the feed's head for writes of other processes
    # (this process's own writes wake it at once).
    feed_poll_seconds: float = 0.05
    workers: int = 1
    # Where payload bytes live (origin.payloadfiles): "database" (the payloads table) or
    # "files" (a content-addressed file tree in payload_dir; default: payloads/ beside a
    # SQLite database). The metadata stays in the database either way.
    payload_store: str = "database"
    payload_dir: Path | None = None
    frontier_require_id: bool = False  # refuse Frontier requests without X-Frontier-Id
    frontier_max_url_bytes: int = 64 * 1024  # squid's default request-line limit
    frontier_max_bytes: int = 128 * 1024 * 1024  # largest row stream of one Frontier payload
    # Frontier SQL is anyone's SQL: what one request, and all of them together, may cost
    frontier_max_payloads: int = 32  # payloads in one request (frontier_client sends at most 32)
    frontier_max_sql_bytes: int = 64 * 1024  # SQL text of one request, all payloads, before parsing
    frontier_concurrency: int = 2  # Frontier requests worked on at once (their own pool)
    frontier_queue_ms: int = 250  # longest wait for a free slot, then 503 with Retry-After
    frontier_heap_bytes: int = 128 * 1024 * 1024  # SQLite: hard heap limit of the process
    frontier_max_value_bytes: int = 64 * 1024 * 1024  # SQLite: longest string or blob in a query
    frontier_work_mem_bytes: int = 4 * 1024 * 1024  # PostgreSQL: work_mem of Frontier sessions
    frontier_temp_bytes: int = 128 * 1024 * 1024  # PostgreSQL: temp files of all Frontier sessions
    # What one client connection may hold (outpost.limits), as in [proxy]: head bytes (request
    # line + header fields: a 64 KiB Frontier URL and 64 KiB of fields), fields, time to send a
    # head, connections of a process (kept `fd_reserve` under RLIMIT_NOFILE).
    max_header_bytes: int = 128 * 1024
    max_header_count: int = 100
    header_timeout_seconds: float = 60.0
    max_connections: int = 4096
    fd_reserve: int = 128
    access_log: str = "-"  # "-": standard output; a file path; "off"
    access_log_format: str = "frontier"  # squid, frontier or json (outpost.logformat)

    def __post_init__(self) -> None:
        positive = (
            "port",
            "ttl_short_seconds",
            "ttl_long_seconds",
            "max_body_bytes",
            "max_url_bytes",
            "query_max_rows",
            "statement_timeout_ms",
            "feed_poll_seconds",
            "workers",
            "frontier_max_url_bytes",
            "frontier_max_bytes",
            "frontier_max_payloads",
            "frontier_max_sql_bytes",
            "frontier_concurrency",
            "frontier_queue_ms",
            "frontier_heap_bytes",
            "frontier_max_value_bytes",
            "frontier_work_mem_bytes",
            "frontier_temp_bytes",
            "max_header_bytes",
            "max_header_count",
            "header_timeout_seconds",
            "max_connections",
            "fd_reserve",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise SettingsError(f"origin.{name}={getattr(self, name)}: must be positive")
        if not 0 < self.port < 65536:
            raise SettingsError(f"origin.port={self.port}: expected 1..65535")
        if self.access_log_format not in LOG_FORMATS:
            raise SettingsError(
                f"origin.access_log_format={self.access_log_format!r}: expected one of"
                f" {tuple(LOG_FORMATS)}"
            )
        if self.payload_store not in PAYLOAD_STORES:
            raise SettingsError(
                f"origin.payload_store={self.payload_store!r}: expected one of {PAYLOAD_STORES}"
            )
        if self.payload_store == "files" and self.payload_files_dir() is None:
            raise SettingsError(
                "origin.payload_store = files needs origin.payload_dir (a directory for the "
                "payload files) with a database other than SQLite"
            )

    def payload_files_dir(self) -> Path | None:
        """Where payload files go: `payload_dir`, or payloads/ beside a SQLite database."""
        if self.payload_dir is not None:
            return self.payload_dir
        if self.db.startswith("sqlite:///"):
            return Path(self.db.removeprefix("sqlite:///")).parent / "payloads"
        return None

    def frontier_limits(self) -> FrontierLimits:
        """The database limits of Frontier connections."""
        return FrontierLimits(
            pool_size=self.frontier_concurrency,
            heap_bytes=self.frontier_heap_bytes,
            value_bytes=self.frontier_max_value_bytes,
            work_mem_bytes=self.frontier_work_mem_bytes,
            temp_bytes=self.frontier_temp_bytes,
        )
