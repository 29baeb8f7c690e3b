"""Bearer tokens for the write API, from a TOML file.

    [[token]]
    name = "ecal-calibration"         # who, for logs and errors
    role = "writer"                   # writer | admin
    tags = ["ECAL_*", "EcalLaser*"]   # writer: tag-name globs it may create and append to
    token_sha256 = "9f86d0…"          # or token = "plain text" (tests, laptops)

Each subsystem writes only its own part: a writer may upload payloads and create and append to
tags matching its globs; only an admin locks tags and edits global tags. Reads need no token.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from outpost.config import SettingsError
from outpost.errors import Forbidden, Unauthorized

__all__ = ["Action", "Principal", "TokenBook"]

ROLES = ("writer", "admin")


class Action(StrEnum):
    UPLOAD_PAYLOAD = "upload payloads"
    WRITE_TAG = "create or append to a tag"
    LOCK_TAG = "lock tags"
    EDIT_GLOBAL_TAG = "edit global tags"


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
                accepted=list(self.tag_globs) if action is Action.WRITE_TAG else "role admin",
            )

    def may(self, action: Action, tag: str | None = None) -> bool:
        if self.role == "admin":
            return True
        if action is Action.UPLOAD_PAYLOAD:
            return True
        if action is Action.WRITE_TAG and tag is not None:
            return any(fnmatch.fnmatchcase(tag, glob) for glob in self.tag_globs)
        return False


class TokenBook:
    """The known tokens; `authorize` maps an Authorization header to a principal or an error."""

    def __init__(self, principals: list[Principal]) -> None:
        self._principals = principals

    @classmethod
    def from_file(cls, path: Path | None) -> TokenBook:
        if path is None:
            return cls([])
        try:
            document = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"tokens file {path}: {exc}") from exc
        principals = []
        for index, entry in enumerate(document.get("token", [])):
            where = f"tokens file {path}, token #{index + 1}"
            role = entry.get("role")
            if role not in ROLES:
                raise SettingsError(f"{where}: role={role!r}, expected one of {ROLES}")
            if "token_sha256" in entry:
                digest = str(entry["token_sha256"]).lower()
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
        return cls(principals)

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
