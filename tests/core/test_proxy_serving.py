"""What a hit sends: prepared once per entry, rebuilt only when the age second or epoch moves."""

from __future__ import annotations

from proxy.core.entry import SECOND, Entry, make_entry
from proxy.core.serving import hit_head, hit_headers, prepare

NOW = 1_800_000_000 * SECOND


def stored(**headers: str) -> Entry:
    raw = [(k.encode(), v.encode()) for k, v in {"cache-control": "max-age=60", **headers}.items()]
    return prepare(make_entry(200, raw, b"body", NOW, NOW, epoch=3), "node-1")


def as_dict(headers: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    return dict(headers)


def test_a_hit_appends_this_cache_to_via_and_cache_status() -> None:
    entry = stored(via="1.1 site", **{"cache-status": "site; fwd=miss; stored"})
    sent = as_dict(hit_headers(entry, NOW + 5 * SECOND, 3))
    assert sent[b"via"] == b"1.1 site, 1.1 node-1"
    assert sent[b"cache-status"] == b"site; fwd=miss; stored, node-1; hit; ttl=55"
    assert sent[b"age"] == b"5"
    assert sent[b"outpost-epoch"] == b"3"
    assert sent[b"content-length"] == b"4"


def test_hits_within_one_second_share_their_headers_and_the_next_second_rebuilds() -> None:
    entry = stored()
    first = hit_headers(entry, NOW + 2 * SECOND, 3)
    assert hit_headers(entry, NOW + 2 * SECOND + 900_000, 3) is first
    later = hit_headers(entry, NOW + 3 * SECOND, 3)
    assert later is not first and as_dict(later)[b"age"] == b"3"
    assert as_dict(hit_headers(entry, NOW + 3 * SECOND, 4))[b"outpost-epoch"] == b"4"


def test_stored_cache_status_and_length_are_not_repeated() -> None:
    entry = stored(**{"content-length": "999", "outpost-epoch": "1"})
    names = [k for k, _ in hit_headers(entry, NOW, 3)]
    assert names.count(b"content-length") == 1 and names.count(b"outpost-epoch") == 1


def test_the_response_head_is_the_hit_headers_as_http_1_1_bytes_built_once_a_second() -> None:
    entry = stored(etag='"v1"')
    head = hit_head(entry, NOW + 2 * SECOND, 3)
    status, *lines = head.removesuffix(b"\r\n\r\n").split(b"\r\n")
    assert status == b"HTTP/1.1 200 OK"
    sent = hit_headers(entry, NOW + 2 * SECOND, 3)
    assert [tuple(line.split(b": ", 1)) for line in lines] == sent
    assert hit_head(entry, NOW + 2 * SECOND + 500_000, 3) is head
    assert b"age: 3\r\n" in hit_head(entry, NOW + 3 * SECOND, 3)


def test_a_status_without_a_registered_phrase_keeps_an_empty_reason() -> None:
    raw = [(b"cache-control", b"max-age=60")]
    entry = prepare(make_entry(299, raw, b"", NOW, NOW, epoch=1), "node-1")
    assert hit_head(entry, NOW, 1).startswith(b"HTTP/1.1 299 \r\n")
