"""The proxy's feed core: reading an upstream's page (hostile input included), what entries ask
of the cache, and the bounded ring children are answered from."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.core.feed import (
    Entry,
    FeedRing,
    FeedUnreadable,
    changes_globaltag,
    mapped_tags,
    page_answer,
    parse_page,
    plan,
)

A, B = "a" * 64, "b" * 64


def entry(seq: int, kind: str = "iovs", tag: str | None = "EcalLaser", *urls: str) -> Entry:
    document = {"seq": seq, "kind": kind, "tag": tag, "urls": list(urls)}
    return Entry(seq, orjson.dumps(document), kind, tag, tuple(urls))


def page(*entries: dict[str, object], head: int = 10) -> bytes:
    return orjson.dumps({"after": 0, "head": head, "next": 0, "changes": list(entries)})


def test_a_page_is_read_with_its_entries_as_they_came() -> None:
    body = page(
        {"seq": 3, "time": "2026-12-06T20:00:00.000001Z", "kind": "iovs", "tag": "T", "urls": []},
        {"seq": 5, "kind": "payload", "urls": [f"/v1/payloads/{A}"]},
    )
    read = parse_page(body, after=2)
    assert read.head == 10
    assert [(e.seq, e.kind, e.tag) for e in read.entries] == [
        (3, "iovs", "T"),
        (5, "payload", None),
    ]
    assert read.entries[0].time == 1_796_587_200_000_001
    assert orjson.loads(read.entries[1].raw)["urls"] == [f"/v1/payloads/{A}"]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"head": "10", "changes": []}',
        b'{"head": true, "changes": []}',
        b'{"head": -1, "changes": []}',
        b'{"head": 10}',
        b'{"head": 99999999999999999999999999999, "changes": []}',
        page({"seq": 2, "kind": "tag", "urls": []}),  # not after the position asked for
        page({"seq": 4, "kind": "tag", "urls": []}, {"seq": 4, "kind": "tag", "urls": []}),
        page({"seq": 5, "kind": "tag", "urls": []}, {"seq": 4, "kind": "tag", "urls": []}),
        page({"seq": 4, "kind": 7, "urls": []}),
        page({"seq": 4, "kind": "tag", "urls": "/v1/tags/T"}),
        page({"seq": 4, "kind": "tag", "urls": ["http://elsewhere/v1/tags/T"]}),
        page({"seq": 4, "kind": "tag", "urls": [1]}),
        page({"seq": 40, "kind": "tag", "urls": []}, head=10),  # beyond its own head
        page("entry"),  # type: ignore[arg-type]
    ],
)
def test_an_answer_that_is_not_a_feed_page_is_refused(body: bytes) -> None:
    with pytest.raises(FeedUnreadable):
        parse_page(body, after=2)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(
    st.dictionaries(
        st.sampled_from(["head", "changes", "seq", "kind", "urls", "tag"]), json_values, max_size=6
    )
)
def test_any_json_an_upstream_sends_is_a_page_or_refused_and_never_an_error(
    document: dict[str, object],
) -> None:
    try:
        read = parse_page(orjson.dumps(document), after=0)
    except FeedUnreadable:
        return
    seqs = [e.seq for e in read.entries]
    assert seqs == sorted(set(seqs)) and all(s > 0 for s in seqs)


def test_entries_ask_for_their_payloads_and_drop_the_answers_they_change() -> None:
    entries = [
        entry(1, "iovs", "EcalLaser", "/v1/tags/EcalLaser/iovs", f"/v1/payloads/{A}"),
        entry(2, "iovs", "HcalGain", "/v1/tags/HcalGain/iovs", f"/v1/payloads/{B}"),
        entry(3, "globaltag", None, "/v1/globaltags/GT"),
    ]
    everything = plan(entries)
    assert everything.fetch == (f"/v1/payloads/{A}", f"/v1/payloads/{B}")
    assert everything.drop == (
        "/v1/tags/EcalLaser/iovs",
        "/v1/tags/HcalGain/iovs",
        "/v1/globaltags/GT",
    )
    ecal = plan(entries, tags=("Ecal*",))
    assert ecal.fetch == (f"/v1/payloads/{A}",)
    assert ecal.drop == everything.drop  # a changed answer is dropped whoever subscribes


@pytest.mark.parametrize(
    "url",
    [
        "/_outpost/flush",
        f"/v1/payloads/../../_outpost/flush{A}",
        "/v1/payloads/XYZ",
        f"/v1/payloads/{A.upper()}",
        "/v1/tags/EcalLaser/iovs?since=0",  # not the canonical spelling
        "/v1/tags/Ecal%2FLaser",
        "/v1/nothing",
    ],
)
def test_a_url_that_is_no_canonical_read_is_neither_fetched_nor_dropped(url: str) -> None:
    planned = plan([entry(1, "iovs", "EcalLaser", url)])
    assert planned.fetch == () and planned.drop == ()


def test_an_uploaded_payload_is_held_only_without_tag_globs() -> None:
    upload = [entry(1, "payload", None, f"/v1/payloads/{A}")]
    assert plan(upload).fetch == (f"/v1/payloads/{A}",)
    assert plan(upload, tags=("Ecal*",)).fetch == ()


def test_the_ring_answers_readers_it_holds_everything_for_and_sends_the_others_upstream() -> None:
    ring = FeedRing(max_entries=3, max_bytes=1 << 20)
    assert not ring.answers(0)  # not following yet
    ring.start(10)
    ring.upstream_head = 10
    assert ring.answers(10) and not ring.answers(9) and not ring.answers(11)
    ring.add([entry(11), entry(12)])
    ring.upstream_head = 14
    assert ring.head == 12
    assert [e.seq for e in ring.after(10, 10)] == [11, 12]
    assert [e.seq for e in ring.after(10, 1)] == [11]
    assert ring.answers(14)  # the upstream told of it: it arrives here soon
    assert not ring.answers(15)  # ahead of everything this proxy knows: upstream
    ring.add([entry(13), entry(14)])
    assert len(ring) == 3 and ring.base == 11  # bounded: the oldest went
    assert not ring.answers(10) and ring.answers(11)
    assert [e.seq for e in ring.after(11, 10)] == [12, 13, 14]


def test_a_resync_takes_the_upstreams_word_for_where_the_feed_stands() -> None:
    ring = FeedRing(max_entries=10, max_bytes=1 << 20)
    ring.start(20)
    ring.add([entry(21), entry(22)])
    ring.upstream_head = 30
    ring.start(5)  # the upstream's database was restored from an older copy
    assert ring.head == 5 and len(ring) == 0
    assert ring.answers(5) and not ring.answers(6)  # ahead of it now: asked upstream


def test_the_ring_is_bounded_in_bytes_too() -> None:
    ring = FeedRing(max_entries=100, max_bytes=150)
    ring.start(0)
    ring.add([entry(seq) for seq in range(1, 11)])
    assert ring.bytes <= 150 and len(ring) < 10
    assert ring.head == 10 and ring.base == 10 - len(ring)


def test_page_answer_is_what_the_origin_writes() -> None:
    entries = [entry(4), entry(6)]
    document = orjson.loads(page_answer(3, 9, [(e.seq, e.raw) for e in entries]))
    assert document["after"] == 3 and document["head"] == 9 and document["next"] == 6
    assert [e["seq"] for e in document["changes"]] == [4, 6]
    assert orjson.loads(page_answer(9, 9, [])) == {"after": 9, "head": 9, "next": 9, "changes": []}


def test_a_global_tag_subscription_holds_the_payloads_of_the_tags_it_maps() -> None:
    entries = [
        entry(1, "payload", None, f"/v1/payloads/{A}"),
        entry(2, "iovs", "EcalLaser", "/v1/tags/EcalLaser/iovs", f"/v1/payloads/{A}"),
        entry(3, "iovs", "HcalGain", "/v1/tags/HcalGain/iovs", f"/v1/payloads/{B}"),
    ]
    mapped = plan(entries, mapped=frozenset({"HcalGain"}))
    assert mapped.fetch == (f"/v1/payloads/{B}",)  # an upload alone names no tag: not held
    either = plan(entries, tags=("Ecal*",), mapped=frozenset({"HcalGain"}))
    assert either.fetch == (f"/v1/payloads/{A}", f"/v1/payloads/{B}")
    assert plan(entries, mapped=frozenset()).fetch == ()  # a global tag that maps nothing yet
    assert mapped.drop == plan(entries).drop


def test_a_globaltag_entry_names_the_map_it_changes() -> None:
    change = entry(1, "globaltag", None, "/v1/globaltags/GT")
    gt = Entry(1, b"{}", "globaltag", None, change.urls, document={"globaltag": "GT"})
    assert changes_globaltag([gt], ["GT"])
    assert not changes_globaltag([gt], ["OTHER"])
    assert not changes_globaltag([entry(2, "iovs", "GT", "/v1/tags/GT/iovs")], ["GT"])


def test_a_global_tag_map_answer_gives_its_tags() -> None:
    body = (
        b'{"name":"GT","map":[{"record":"A","label":"","tag":"EcalLaser"},'
        b'{"record":"B","label":"x","tag":"HcalGain"}]}'
    )
    assert mapped_tags(body) == {"EcalLaser", "HcalGain"}


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"map": {}}', b'{"map": [{"record": "A"}]}', b'{"map": [{"tag": 1}]}'],
)
def test_a_global_tag_map_that_is_not_one_is_unreadable(body: bytes) -> None:
    with pytest.raises(FeedUnreadable):
        mapped_tags(body)
