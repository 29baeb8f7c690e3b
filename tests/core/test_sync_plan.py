"""The sync plan (`outpost.sync.plan`), pure: what a copy adds and what it refuses, from what the
source says and what the target holds."""

from __future__ import annotations

import dataclasses

from outpost.sync.plan import Batch, GlobalTagState, Iov, MapEntry, TagState, plan_sync

P1, P2, P3 = "1" * 64, "2" * 64, "3" * 64


def tag(name: str = "EcalPedestals_v1", *batches: Batch, state: str = "open") -> TagState:
    modified = max([100, *(b.inserted for b in batches)])
    return TagState(name, "run", "EcalPedestals", "", state, 100, modified, tuple(batches))


def batch(at: int, *iovs: tuple[int, str]) -> Batch:
    return Batch(at, tuple(sorted(Iov(0, since, p) for since, p in iovs)))


def gt(*entries: MapEntry, name: str = "GT", state: str = "open") -> GlobalTagState:
    modified = max([50, *(e.inserted for e in entries)])
    return GlobalTagState(name, state, "", 50, modified, tuple(sorted(entries)))


SOURCE_TAG = tag("EcalPedestals_v1", batch(200, (1, P1)), batch(300, (1, P2), (10, P3)))
SOURCE_GT = gt(MapEntry(150, "EcalPedestalsRcd", "", "EcalPedestals_v1"))


def plan(target_tags: dict[str, TagState], target_gts: dict[str, GlobalTagState], **kw: object):  # type: ignore[no-untyped-def]
    held = {p for t in target_tags.values() for p in t.payloads}
    sources = kw.pop("sources", {SOURCE_TAG.name: SOURCE_TAG})
    return plan_sync([kw.pop("gt", SOURCE_GT)], sources, target_gts, target_tags, held, **kw)  # type: ignore[arg-type]


def test_an_empty_target_gets_everything_once() -> None:
    result = plan({}, {})
    assert [(t.source.name, t.create, len(t.batches)) for t in result.tags] == [
        ("EcalPedestals_v1", True, 2)
    ]
    assert result.payloads == (P1, P2, P3) and not result.conflicts
    assert result.globaltags[0].create and result.globaltags[0].entries == SOURCE_GT.entries


def test_a_target_that_holds_everything_needs_nothing() -> None:
    assert plan({SOURCE_TAG.name: SOURCE_TAG}, {"GT": SOURCE_GT}).empty


def test_only_the_batches_the_target_lacks_are_added() -> None:
    behind = tag("EcalPedestals_v1", batch(200, (1, P1)))
    result = plan({behind.name: behind}, {"GT": SOURCE_GT})
    assert [b.inserted for b in result.tags[0].batches] == [300]
    assert not result.tags[0].create and result.payloads == (P2, P3)


def test_the_same_since_with_another_payload_or_time_is_a_conflict() -> None:
    for other in (batch(300, (1, P1), (10, P3)), batch(250, (1, P2))):
        diverged = tag("EcalPedestals_v1", batch(200, (1, P1)), other)
        result = plan({diverged.name: diverged}, {"GT": SOURCE_GT})
        assert result.conflicts and "history differs on the target" in result.conflicts[0]


def test_a_locked_tag_the_source_extended_is_a_conflict() -> None:
    locked = tag("EcalPedestals_v1", batch(200, (1, P1)), state="locked")
    result = plan({locked.name: locked}, {"GT": SOURCE_GT})
    assert result.conflicts == (
        "tag EcalPedestals_v1 is locked on the target, and the source added 2 IOVs to it "
        "(1 batches) since",
    )


def test_a_lock_at_the_source_is_copied() -> None:
    locked = dataclasses.replace(SOURCE_TAG, state="locked", modified_at=400)
    result = plan({SOURCE_TAG.name: SOURCE_TAG}, {"GT": SOURCE_GT}, sources={locked.name: locked})
    assert result.tags[0].lock and not result.tags[0].batches


def test_another_tag_of_the_same_name_is_a_conflict() -> None:
    other = dataclasses.replace(SOURCE_TAG, payload_type="Other")
    assert "another tag of this name" in plan({other.name: other}, {}).conflicts[0]


def test_a_global_tag_edited_on_the_target_is_a_conflict() -> None:
    edited = gt(*SOURCE_GT.entries, MapEntry(160, "HcalGainsRcd", "", "EcalPedestals_v1"))
    result = plan({SOURCE_TAG.name: SOURCE_TAG}, {"GT": edited})
    assert "was edited on the target" in result.conflicts[0]


def test_a_global_tag_extended_at_the_source_gets_its_new_entries() -> None:
    newer = gt(*SOURCE_GT.entries, MapEntry(400, "EcalPedestalsRcd", "", None))
    result = plan({SOURCE_TAG.name: SOURCE_TAG}, {"GT": SOURCE_GT}, gt=newer)
    assert result.globaltags[0].entries == (MapEntry(400, "EcalPedestalsRcd", "", None),)


def test_a_tag_glob_leaves_out_the_global_tags_it_cannot_complete() -> None:
    result = plan({}, {}, glob="Hcal*", sources={})
    assert result.empty and result.skipped == ("GT",)
