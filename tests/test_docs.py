"""README.md and docs/*.md stand alone in a clone: they point at nothing outside the
repository, and every relative link, `#anchor` and `docs/….md` they name is there."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")  # [text](target), ![alt](target)
DOC_MENTION = re.compile(r"(?<![\w/.-])docs/[\w/.-]+\.md")
SCRIPT = re.compile(r"(?<![\w/.-])\./scripts/[\w.-]+")
FENCE = re.compile(r"^\s*(```|~~~)")


def prose(path: Path) -> list[str]:
    """The lines of `path` outside fenced code blocks."""
    lines, fenced = [], False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def anchors(path: Path) -> set[str]:
    """GitHub's anchors of the headings of `path`: lower case, punctuation dropped, spaces
    turned into hyphens."""
    found = set()
    for line in prose(path):
        heading = re.match(r"#{1,6}\s+(.*)", line)
        if heading:
            text = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower())
            found.add(text.replace(" ", "-"))
    return found


def links(path: Path) -> list[str]:
    return [target for line in prose(path) for target in LINK.findall(line)]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_nothing_outside_the_repository_is_named(document: Path) -> None:
    text = document.read_text()
    for outside in ("../shared", "shared/DESIGN.md", "/work/"):
        assert outside not in text, f"{document.name} names {outside}"
    for target in links(document):
        if "://" in target or target.startswith(("#", "mailto:")):
            continue
        resolved = (document.parent / target.split("#")[0]).resolve()
        assert resolved.is_relative_to(ROOT), f"{document.name}: {target} is outside the clone"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_leads_somewhere(document: Path) -> None:
    broken = []
    for target in links(document):
        if "://" in target or target.startswith("mailto:"):
            continue
        file, _, anchor = target.partition("#")
        resolved = (document.parent / file).resolve() if file else document
        heading_missing = anchor and resolved.suffix == ".md" and anchor not in anchors(resolved)
        if not resolved.exists() or heading_missing:
            broken.append(target)
    for mention in DOC_MENTION.findall(document.read_text()):
        if not (ROOT / mention).is_file():
            broken.append(mention)
    assert broken == [], f"{document.name}: {broken}"


def test_the_scripts_the_readme_runs_are_there_and_executable() -> None:
    scripts = set(SCRIPT.findall((ROOT / "README.md").read_text()))
    assert "./scripts/outpost" in scripts
    for script in scripts:
        assert os.access(ROOT / script, os.X_OK), script


def test_the_anchor_rule_matches_githubs() -> None:
    sample = ROOT / "docs" / "operations.md"
    assert "epochs-and-how-a-child-catches-up" in anchors(sample)
    assert "reading-cache-status" in anchors(sample)
