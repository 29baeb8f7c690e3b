"""Bearer tokens for the write API, from a TOML file.

    [[token]]
    name = "ecal-calibration"         # who, for logs and errors
    role = "writer"                   # writer | admin | runcontrol
    tags = ["ECAL_*", "EcalLaser*"]   # writer: tag-name globs it may create and append to
    token_sha256 = "9f86d0…"          # or token = "plain text" (tests, laptops)

Each subsystem writes only its own part: a writer may upload payloads and create and append to
tags matching its globs; only an admin locks tags and edits global tags. Run control
(`runcontrol`) may only write run records (`POST /v1/runs/{run}`: which conditions a run was
taken with), nothing else: no payload, no tag, no global tag; and no writer may write run
records. An admin may do everything. Reads need no token.

SIGHUP re-reads the file (`TokenBook.reload`, through `outpost.hangup`): tokens are added and
revoked without a restart. A file that does not parse, or holds no token, keeps the tokens in
use, so a half-written file never leaves the origin refusing every write.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import logging
import re
import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from outpost.config import SettingsError
from outpost.errors import Forbidden, Unauthorized

__all__ = ["ROLES", "Action", "Principal", "TokenBook"]

log = logging.getLogger("outpost.origin.auth")

ROLES = ("writer", "admin", "runcontrol")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class Action(StrEnum):
    UPLOAD_PAYLOAD = "upload payloads"
    WRITE_TAG = "create or append to a tag"
    LOCK_TAG = "lock tags"
    EDIT_GLOBAL_TAG = "edit global tags"
    WRITE_RUN_RECORD = "write run records"


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    tag_globs: tuple[str, ...]
    token_sha256: str

    def require(self, action: Action, tag: str | None = None) -> None:
        """Raise `Forbidden` unless this principal may do `action` (on `tag`)."""
        if not self.may(action, tag):
            scope = f" on tag {tag!r}" if tag else ""
            raise Forbidden(
                f"{self.name} ({self.role}) may not {action}{scope}",
                accepted=_who_may(action, self),
            )

    def may(self, action: Action, tag: str | None = None) -> bool:
        if self.role == "admin":
            return True
        if self.role == "runcontrol" or action is Action.WRITE_RUN_RECORD:
            return self.role == "runcontrol" and action is Action.WRITE_RUN_RECORD
        if action is Action.UPLOAD_PAYLOAD:
            return True
        if action is Action.WRITE_TAG and tag is not None:
            return any(fnmatch.fnmatchcase(tag, glob) for glob in self.tag_globs)
        return False


def _who_may(action: Action, principal: Principal) -> str | list[str]:
    """What a refused principal is told would have been accepted."""
    if action is Action.WRITE_RUN_RECORD:
        return "role runcontrol or admin"
    if action is Action.WRITE_TAG and principal.role == "writer":
        return list(principal.tag_globs)
    if action in (Action.UPLOAD_PAYLOAD, Action.WRITE_TAG):
        return "role writer or admin"
    return "role admin"


class TokenBook:
    """The known tokens; `authorize` maps an Authorization header to a principal or an error."""

    def __init__(self, principals: list[Principal], path: Path | None = None) -> None:
        self._principals = principals
        self._path = path  # what `reload` re-reads

    @property
    def count(self) -> int:
        """How many tokens are in use."""
        return len(self._principals)

    @classmethod
    def from_file(cls, path: Path | None) -> TokenBook:
        if path is None:
            return cls([])
        try:
            document = tomllib.loads(path.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"tokens file {path}: {exc}") from exc
        entries = document.get("token", [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise SettingsError(f"tokens file {path}: expected [[token]] tables")
        principals = []
        for index, entry in enumerate(entries):
            where = f"tokens file {path}, token #{index + 1}"
            role = entry.get("role")
            if role not in ROLES:
                raise SettingsError(f"{where}: role={role!r}, expected one of {ROLES}")
            if "token_sha256" in entry:
                digest = str(entry["token_sha256"]).lower()
                if _SHA256.fullmatch(digest) is None:  # it could never match a token
                    raise SettingsError(
                        f"{where}: token_sha256 must be 64 hex digits "
                        '(printf %s "$TOKEN" | sha256sum)'
                    )
            elif "token" in entry:
                digest = hashlib.sha256(str(entry["token"]).encode()).hexdigest()
            else:
                raise SettingsError(f"{where}: needs token_sha256 (or token)")
            globs = entry.get("tags", [])
            if not isinstance(globs, list) or not all(isinstance(g, str) for g in globs):
                raise SettingsError(f"{where}: tags must be a list of glob strings")
            principals.append(
                Principal(str(entry.get("name", f"token-{index + 1}")), role, tuple(globs), digest)
            )
        return cls(principals, path)

    def reload(self) -> bool:
        """Re-read the tokens file (on SIGHUP); True if the new tokens are in use. A file that
        cannot be used, or that holds no token, keeps the current tokens; one log line says
        why. Without a tokens file there is nothing to re-read."""
        if self._path is None:
            return False
        try:
            fresh = TokenBook.from_file(self._path)
        except SettingsError as exc:
            log.warning("reload refused, keeping the %d tokens in use: %s", self.count, exc)
            return False
        if not fresh._principals:
            log.warning(
                "reload refused, keeping the %d tokens in use: tokens file %s holds no token",
                self.count,
                self._path,
            )
            return False
        self._principals = fresh._principals
        log.info("tokens file %s reloaded: %d tokens", self._path, self.count)
        return True

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal behind an Authorization header, or `Unauthorized` with a challenge."""
        challenge = {"WWW-Authenticate": 'Bearer realm="outpost"'}
        if not authorization:
            raise Unauthorized(
                "writes need a bearer token",
                accepted="Authorization: Bearer <token>",
                headers=challenge,
            )
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized(
                "the Authorization header is not a bearer token",
                accepted="Authorization: Bearer <token>",
                headers=challenge,
            )
        digest = hashlib.sha256(token.strip().encode()).hexdigest()
        for principal in self._principals:
            if hmac.compare_digest(principal.token_sha256, digest):
                return principal
        raise Unauthorized(
            "unknown token", accepted="a token from the origin's tokens file", headers=challenge
        )

    def authorize(
        self, authorization: str | None, action: Action, tag: str | None = None
    ) -> Principal:
        principal = self.authenticate(authorization)
        principal.require(action, tag)
        return principal
